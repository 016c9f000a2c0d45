"""The CLI is a thin layer: it imports only public names, and light commands do not pay for the search."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import piip_search

CLI = Path(piip_search.__file__).parent / "cli"


def test_the_cli_imports_only_public_names():
    for path in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("piip_search"):
                parts = node.module.split(".")
                if parts[1] == "cli":
                    continue
                assert not any(p.startswith("_") for p in parts), f"{path.name} imports {node.module}"
                module = __import__(node.module, fromlist=["__all__"])
                for alias in node.names:
                    assert alias.name in module.__all__, f"{path.name}: {alias.name} is not in {node.module}.__all__"


def test_light_commands_do_not_import_optuna_or_torch():
    code = ("import sys; from piip_search.cli import main; main(['models']); "
            "print('optuna' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_the_search_package_and_status_do_not_import_ray():
    # a local worker or `status` would pay seconds of start-up for Ray Tune's import; only the ray backends load it
    code = ("import sys, optuna; import piip_search.search as s; "
            "study = optuna.create_study(directions=['minimize', 'maximize']); "
            "print(s.tune_status(study, '.'), 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[] False"

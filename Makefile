# The two README commands: `make search` (set up + run the default search) and `make test` (set up + tests).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PYTHON ?= python3

.PHONY: setup search demo test test-slow lint bench clean

# torch/torchvision pinned for this machine and CI (local wheels); the package itself accepts a range.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

search: setup
	$(VENV)/bin/piip-search run --resume

demo: setup
	$(VENV)/bin/piip-search describe tiny-piip-3branch
	$(VENV)/bin/piip-search flops piip-tsb-1120-896-448

# The PostgreSQL server of the multi-worker storage test is installed/started by scripts/start-postgres.sh;
# the report's browser tests use Debian's chromium, installed by scripts/install-chromium.sh.
test: setup
	scripts/install-chromium.sh
	PIIP_SEARCH_PG_URL=$$(scripts/start-postgres.sh) $(PY) -m pytest -q -m "not slow and not gpu" --timeout=900

test-slow: setup
	$(PY) -m pytest -q -m "slow" --timeout=3600

lint: setup
	$(VENV)/bin/ruff check piip_search tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

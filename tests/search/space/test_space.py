"""Search spaces: shipped files parse, every validation error names key path, rule and value, and sampling
always gives a valid, parameter-inverted config that its params rebuild."""

from __future__ import annotations

import copy
import json

import optuna
import pytest
import yaml

from piip_search.config import PRESET_ORDER, PIIPConfig, load_config
from piip_search.errors import SearchSpaceError
from piip_search.flops import count
from piip_search.search import SearchSpace, default_space_path, list_spaces, space_path

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

BASE = {
    "name": "t",
    "branches": {
        "count": [2, 3],
        "models": {"embed_dim": [32, 64, 96, 128], "depth": [2, 3, 4], "head_dim": 32},
        "resolutions": {"low": 64, "high": 256, "step": 32},
        "window_size": {"choices": [None, 8], "per_branch": True},
    },
    "interactions": {"count": [1, 2], "direction": ["bidirectional", "none"],
                     "attention": ["deformable", "regular"]},
    "fixed": {"task": "detection", "interactions": {"heads": 4}},
    "proxy": {"iters": 60},
}
PRESET_BASE = {
    "name": "p",
    "branches": {"count": [2, 3], "models": ["T", "S", "B"], "resolutions": [448, 672, 896, 1120],
                 "window_size": [14, None]},
    "interactions": {"count": [2, 4, 6]},
}


def _with(base: dict, path: str, value) -> dict:
    d = copy.deepcopy(base)
    keys = path.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
    if value is _DELETE:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return d


_DELETE = object()


# ---- shipped spaces ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["default", "paper"])
def shipped(request) -> SearchSpace:
    return SearchSpace.from_yaml(space_path(request.param), check_proxy=False)


def test_shipped_spaces_are_listed_and_resolve():
    assert {"default", "paper"} <= set(list_spaces())
    assert default_space_path().name == "default.yaml"
    assert space_path("paper.yaml") == space_path("paper")
    with pytest.raises(SearchSpaceError, match="nope: no such file, and not a shipped search space"):
        space_path("nope")


def test_shipped_space_parses_and_round_trips(shipped):
    d = shipped.to_dict()
    stored = json.loads(json.dumps(d))  # what a study's user attrs give back
    assert stored == d
    again = SearchSpace.from_dict(stored, source="stored")
    assert again == shipped and again.to_dict() == d
    assert SearchSpace.from_dict(yaml.safe_load(shipped.to_yaml())) == shipped
    assert shipped.directions == ["minimize", "maximize"]
    assert [tuple(o) for o in shipped.objectives] == [("flops", "minimize"), ("ap", "maximize")]


def test_shipped_space_details():
    default = SearchSpace.from_yaml("default", check_proxy=False)
    assert default.flops_convention == "model" and default.evaluator == "builtin:proxy"
    assert default.fidelity_schedule() is None and default.proxy["iters"] == 240
    tiny = load_config("tiny-piip-3branch")
    assert default.params_from_config(tiny)["b2.window_size"] == 8
    assert count(tiny, convention=default.flops_convention).gflops <= default.budgets.max_gflops
    paper = SearchSpace.from_yaml("paper", check_proxy=False)
    assert paper.flops_convention == "paper" and paper.budgets.max_gflops == 500
    assert paper.fidelity_schedule() is None  # multi-fidelity is opt-in (README, Measured figures)
    tsb = count(load_config("piip-tsb-1120-896-448"), convention=paper.flops_convention)
    assert tsb.gflops <= paper.budgets.max_gflops and tsb.params / 1e6 <= paper.budgets.max_params_m
    dims = paper.dimensions()
    assert dims["b3.model"] == ("T", "S", "B", "L") and dims["b0.resolution"][:2] == (448, 480)
    assert "window_size" in dims and "b0.window_size" not in dims


@pytest.mark.parametrize("name", ["piip-tsb-1120-896-448", "piip-sbl-1568-1120-672",
                                  "piip-tsbl-1568-1120-672-448"])
def test_published_configs_are_representable_in_paper_space(name):
    paper = SearchSpace.from_yaml("paper", check_proxy=False)
    cfg = load_config(name)
    params = paper.params_from_config(cfg)
    assert paper.config_from_params(params).canonical() == cfg.canonical()
    study = optuna.create_study(directions=paper.directions)
    study.enqueue_trial(params)
    assert paper.sample(study.ask()).fingerprint() == cfg.fingerprint()


@pytest.mark.parametrize("name, match", [
    ("vit-b-1024", r"number of branches: not among the choices of branches.count \[2, 3, 4\], got 1"),
    ("piip-h6b-1024-512", r"branches\[0\].model: not among the choices of branches.models .*got '6B'"),
    ("piip-sbl-1792-1120-672", r"branches\[\*\].window_size: not among the choices of branches.window_size "
                               r"\[14, 28, None\], got 24"),
    ("piip-sbl-augreg-1568-1120-672", r"branches\[0\].family: the space .* gives 'deit', got 'internvit'"),
    ("cls-piip-tsb-368-192-128", r"branches\[0\].resolution: not among the choices of branches.resolutions "
                                 r"\{'low': 448, 'high': 1792, 'step': 32\}, got 128"),
])
def test_unrepresentable_configs_say_why(name, match):
    paper = SearchSpace.from_yaml("paper", check_proxy=False)
    with pytest.raises(SearchSpaceError, match=f"paper: cannot represent {name}: {match}"):
        paper.params_from_config(load_config(name))


def test_non_inverted_config_is_not_representable():
    space = SearchSpace.from_dict(PRESET_BASE)
    cfg = PIIPConfig.from_dict({"branches": [{"model": "S", "resolution": 448},
                                             {"model": "B", "resolution": 896}],
                                "interactions": {"count": 2}})
    match = r"branches\[1\]: not parameter-inverted: larger than branches\[0\]"
    with pytest.raises(SearchSpaceError, match=match):
        space.params_from_config(cfg)


# ---- sampling ----------------------------------------------------------------------------------------------
def _assert_inverted(space: SearchSpace, cfg: PIIPConfig, strict: bool = False) -> None:
    bs = cfg.branches
    assert len(bs) in space.n_branches.values
    for a, b in zip(bs, bs[1:], strict=False):
        if space.presets is not None:
            ia, ib = PRESET_ORDER.index(a.model), PRESET_ORDER.index(b.model)
            assert ib < ia if strict else ib <= ia
        else:
            assert b.embed_dim <= a.embed_dim and b.depth <= a.depth
            assert b.embed_dim < a.embed_dim if strict else True
        assert b.resolution > a.resolution if strict else b.resolution >= a.resolution
    for b in bs:
        assert b.resolution in space.resolutions.values


@pytest.mark.parametrize("sampler, n", [("random", 300), ("tpe", 60), ("nsga2", 60)])
def test_samples_are_valid_inverted_and_rebuilt_from_params(shipped, sampler, n):
    make = {"random": lambda: optuna.samplers.RandomSampler(seed=1),
            "tpe": lambda: optuna.samplers.TPESampler(seed=1, n_startup_trials=10, multivariate=True,
                                                      group=True),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=1, population_size=10)}[sampler]
    study = optuna.create_study(directions=shipped.directions, sampler=make())
    seen = set()
    for i in range(n):
        trial = study.ask()
        cfg = shipped.sample(trial)
        _assert_inverted(shipped, cfg)
        assert shipped.config_from_params(trial.params) == cfg
        params = shipped.params_from_config(cfg)
        assert shipped.config_from_params(params).canonical() == cfg.canonical()
        seen.add(len(cfg.branches))
        # some signal for the model-based samplers: cost grows with width and resolution
        cost = sum(b.embed_dim * b.resolution for b in cfg.branches) / 1e4
        study.tell(trial, [cost, cost ** 0.5 + (i % 7)])
    assert seen == set(shipped.n_branches.values)


def test_parameter_names_are_stable_and_conditional():
    space = SearchSpace.from_dict(BASE)
    study = optuna.create_study(directions=space.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    names = set()
    for _ in range(100):
        t = study.ask()
        cfg = space.sample(t)
        n = len(cfg.branches)
        assert t.params["n_branches"] == n
        assert all(f"b{i}.resolution" in t.params for i in range(n)) and f"b{n}.resolution" not in t.params
        assert {"interactions.direction", "interactions.count", "interactions.attention"} <= set(t.params)
        names |= set(t.params)
        study.tell(t, [1.0, 1.0])
    assert names == set(space.dimensions())


def test_explicit_dims_sort_widths_and_depths_and_derive_heads():
    space = SearchSpace.from_dict(BASE)
    params = {"n_branches": 3, "b0.embed_dim": 32, "b0.depth": 4, "b0.resolution": 256, "b0.window_size": 8,
              "b1.embed_dim": 128, "b1.depth": 2, "b1.resolution": 64, "b1.window_size": None,
              "b2.embed_dim": 64, "b2.depth": 3, "b2.resolution": 128, "b2.window_size": None,
              "interactions.direction": "bidirectional", "interactions.count": 2,
              "interactions.attention": "regular"}
    cfg = space.config_from_params(params)
    assert [(b.embed_dim, b.depth, b.num_heads, b.resolution) for b in cfg.branches] == [
        (128, 4, 4, 64), (64, 3, 2, 128), (32, 2, 1, 256)]
    assert [b.window_size for b in cfg.branches] == [8, None, None]  # windows are positional
    assert cfg.interactions.heads == 4 and cfg.interactions.attention == "regular"
    with pytest.raises(SearchSpaceError, match=r"params: missing parameter 'b2.depth'"):
        space.config_from_params({k: v for k, v in params.items() if k != "b2.depth"})
    match = r"params.b0.embed_dim: must be one of \[32, 64, 96, 128\].*got 48"
    with pytest.raises(SearchSpaceError, match=match):
        space.config_from_params(params | {"b0.embed_dim": 48})


def test_strict_inversion_nudges_equal_draws_and_records_it():
    space = SearchSpace.from_dict(_with(PRESET_BASE, "inverted", "strict"))
    study = optuna.create_study(directions=space.directions)
    study.enqueue_trial({"n_branches": 3, "b0.model": "S", "b1.model": "S", "b2.model": "S",
                         "b0.resolution": 672, "b1.resolution": 672, "b2.resolution": 1120, "window_size": 14,
                         "interactions.count": 2})
    t = study.ask()
    cfg = space.sample(t)
    assert [b.model for b in cfg.branches] == ["B", "S", "T"]
    assert [b.resolution for b in cfg.branches] == [672, 896, 1120]
    assert len(t.user_attrs["space.repairs"]) == 2
    assert space.config_from_params(t.params) == cfg
    rs = optuna.create_study(directions=space.directions, sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(150):
        tr = rs.ask()
        c = space.sample(tr)
        _assert_inverted(space, c, strict=True)
        assert space.config_from_params(tr.params) == c
        rs.tell(tr, [0.0, 0.0])


def test_not_inverted_keeps_model_draws_in_place():
    space = SearchSpace.from_dict(_with(PRESET_BASE, "inverted", False))
    cfg = space.config_from_params({"n_branches": 2, "b0.model": "T", "b1.model": "B", "b0.resolution": 896,
                                    "b1.resolution": 448, "window_size": None, "interactions.count": 2})
    assert [(b.model, b.resolution) for b in cfg.branches] == [("T", 448), ("B", 896)]


def test_an_invalid_draw_is_recorded_and_raised():
    space = SearchSpace.from_dict(PRESET_BASE)
    with pytest.raises(AttributeError, match="frozen"):
        space.fixed = {"interactions": {"heads": 7}}
    object.__setattr__(space, "fixed", {"interactions": {"heads": 7}})  # bypass the read checks: 192 % 7 != 0
    study = optuna.create_study(directions=space.directions)
    t = study.ask()
    with pytest.raises(SearchSpaceError, match=r"sampled config: .*divisible by interactions.heads=7"):
        space.sample(t)
    assert "heads=7" in study.trials[0].user_attrs["space.invalid"]


# ---- validation errors -------------------------------------------------------------------------------------
ERRORS = [
    (BASE, "branches.resolutions.step", 20,
     "branches.resolutions.step: must be a multiple of 16, got 20"),
    (BASE, "branches.resolutions", [64, 100],
     r"branches.resolutions\[1\]: must be a multiple of 16, got 100"),
    (BASE, "branches.resolutions", {"low": 256, "high": 64, "step": 32},
     "branches.resolutions.high: must be >= low=256, got 64"),
    (BASE, "branches.resolutions", {"low": 64, "high": 240, "step": 32},
     "branches.resolutions.high: high - low must be a multiple of step=32 .*got 240"),
    (BASE, "branches.resolutions", [],
     r"branches.resolutions: needs at least one choice, got \[\]"),
    (BASE, "branches.resolutions", [64, 64],
     r"branches.resolutions: duplicate choice, got 64"),
    (BASE, "frobnicate", 1,
     r"frobnicate: unknown key \(allowed: name, .*\), got 'frobnicate'"),
    (BASE, "branches.modles", [1],
     r"branches.modles: unknown key \(allowed: count, models, resolutions, window_size\)"),
    (BASE, "branches", _DELETE,
     "branches: required key is missing"),
    (BASE, "branches.count", [0, 2],
     r"branches.count\[0\]: must be >= 1, got 0"),
    (BASE, "branches.count", [2, True],
     r"branches.count\[1\]: must be an integer, got True"),
    (BASE, "branches.models.embed_dim", [64, 80],
     "branches.models.embed_dim: every width must be divisible by head_dim=32, got 80"),
    (BASE, "branches.models.num_heads", 2,
     "branches.models: give exactly one of head_dim .* or num_heads"),
    (_with(BASE, "branches.models.head_dim", 16), "branches.models.embed_dim", [48, 64],
     r"branches.models.embed_dim: every width must be divisible by 32 with 2\+ branches .*got 48"),
    (PRESET_BASE, "branches.models", ["T", "X"],
     r"branches.models\[1\]: must be one of \['T', 'S', 'B', 'L', 'H', '6B'\], got 'X'"),
    (BASE, "interactions.count", [1, 3],
     r"interactions.count: every choice must be <= the smallest branch depth \(2.*got 3"),
    (BASE, "interactions.direction", ["sideways"],
     r"interactions.direction\[0\]: must be one of \['bidirectional', .*\], got 'sideways'"),
    (BASE, "interactions.attention", "flash",
     r"interactions.attention: must be one of \['deformable', 'regular'\], got 'flash'"),
    (BASE, "fixed.interactions.heads", 5,
     r"branches.models.embed_dim: with deformable interactions every width and width\*deform_ratio \(16\) "
     r"must be divisible by fixed.interactions.heads=5, got '32x2'"),
    (BASE, "fixed.interactions.heads", -1,
     "fixed.interactions.heads: must be > 0, got -1"),
    (BASE, "fixed.interactions.count", 2,
     "fixed.interactions.count: is searched in interactions.count, got 2"),
    (BASE, "fixed.interactions.indexes", [[[0, 1]]],
     "fixed.interactions.indexes: cannot be fixed"),
    (BASE, "fixed.branches.resolution", 64,
     "fixed.branches.resolution: is set by the search .*got 64"),
    (BASE, "fixed.branches.window_size", 8,
     "fixed.branches.window_size: is searched in branches.window_size"),
    (BASE, "fixed.branches.drop_path_rate", 2.0,
     "fixed.branches.drop_path_rate: must be < 1, got 2.0"),
    (BASE, "fixed.branches.colour", "red",
     "fixed.branches.colour: unknown key"),
    (BASE, "fixed.name", "x",
     "fixed.name: cannot be fixed: every sampled config gets its own name"),
    (BASE, "fixed.task", "segmentation",
     r"fixed.task: must be one of \['detection', 'classification'\], got 'segmentation'"),
    (_with(BASE, "fixed.task", "classification"), "fixed.interactions.heads", 4,
     r"branches.window_size.choices: classification branches use global attention \(null\), got 8"),
    (BASE, "budgets.max_gflops", -1,
     "budgets.max_gflops: must be > 0, got -1"),
    (BASE, "budgets.max_gflops", 1e-6,
     r"budgets.max_gflops: is below the cheapest architecture of the space \(.* GFLOPs, paper convention\): "
     r"no sample would be feasible, got 1e-06"),
    (BASE, "budgets.max_params_m", 1e-6,
     "budgets.max_params_m: is below the smallest architecture"),
    (BASE, "budgets.max_tflops", 1,
     "budgets.max_tflops: unknown key"),
    (BASE, "objectives", [{"ap": "minimize"}],
     r"objectives\[0\].ap: ap can only be maximized, got 'minimize'"),
    (BASE, "objectives", ["accuracy"],
     r"objectives\[0\]: unknown objective; known: .*got 'accuracy'"),
    (BASE, "objectives", ["flops", "flops"],
     r"objectives\[1\]: duplicate objective, got 'flops'"),
    (BASE, "objectives", [],
     "objectives: must be a non-empty list"),
    (BASE, "flops_convention", "fvcore",
     r"flops_convention: must be one of \['model', 'paper'\], got 'fvcore'"),
    (BASE, "sampler", "cmaes",
     r"sampler: must be one of \[.*'auto'.*'random'.*\], got 'cmaes'"),
    (BASE, "evaluator", "my_eval",
     "evaluator: must be 'builtin:<name>' or 'package.module:function', got 'my_eval'"),
    (BASE, "name", "my space",
     "name: must be letters, digits"),
    (BASE, "inverted", "yes",
     "inverted: must be true, false or 'strict', got 'yes'"),
    (BASE, "fidelity", {"rungs": [20, 60], "eta": 1},
     "fidelity.eta: must be > 1, got 1"),
    (BASE, "fidelity", {"rungs": [60, 20]},
     r"fidelity.rungs\[1\]: rungs must be strictly increasing \(previous 60\), got 20"),
    (BASE, "fidelity", {"min_iters": 20, "max_iters": 180},
     r"fidelity: the last rung .* must equal proxy.iters=60 .*got last rung 180"),
    (BASE, "fidelity", {"rungs": [20, 60], "max_iters": 60},
     "fidelity: give either rungs or min_iters/max_iters"),
    (BASE, "fidelity", {"min_iters": 20},
     "fidelity.max_iters: required key is missing"),
    (_with(PRESET_BASE, "inverted", "strict"), "branches.models", ["S", "B"],
     r"branches.count: inverted: strict needs a strictly smaller model on every later branch, but "
     r"branches.models has only 2 distinct choice\(s\): no inverted assignment exists, got 3"),
    (_with(PRESET_BASE, "inverted", "strict"), "branches.resolutions", [448, 896],
     r"branches.count: inverted: strict needs strictly increasing resolutions, .* no inverted assignment "
     r"exists, got 3"),
]


@pytest.mark.parametrize("base, path, value, match", ERRORS, ids=[f"{e[1]}={e[2]!r}"[:60] for e in ERRORS])
def test_validation_error_names_key_rule_and_value(base, path, value, match):
    data = _with(base, path, value)
    if path.startswith("budgets") and "is below" in match:
        data["flops_convention"] = "paper"
    with pytest.raises(SearchSpaceError, match=f"^test.yaml: {match}"):
        SearchSpace.from_dict(data, source="test.yaml")


def test_error_from_a_file_names_the_file(tmp_path):
    bad = tmp_path / "default.yaml"
    bad.write_text(yaml.safe_dump(_with(BASE, "branches.resolutions.step", 20)))
    with pytest.raises(SearchSpaceError) as e:
        SearchSpace.from_yaml(bad, check_proxy=False)
    assert str(e.value) == f"{bad}: branches.resolutions.step: must be a multiple of 16, got 20"
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SearchSpaceError, match="list.yaml: a search space must be a mapping"):
        SearchSpace.from_yaml(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SearchSpaceError, match="broken.yaml: not valid YAML"):
        SearchSpace.from_yaml(tmp_path / "broken.yaml")


def test_name_defaults_to_the_file_stem_and_proxy_settings_are_checked(tmp_path):
    f = tmp_path / "mine.yaml"
    data = {k: v for k, v in BASE.items() if k != "name"}
    f.write_text(yaml.safe_dump(data))
    assert SearchSpace.from_yaml(f, check_proxy=False).name == "mine"
    f.write_text(yaml.safe_dump(data | {"proxy": {"iters": 60, "colour": "red"}}))
    with pytest.raises(SearchSpaceError, match=r"mine.yaml: proxy: unknown setting\(s\) \['colour'\]"):
        SearchSpace.from_yaml(f)


@pytest.mark.parametrize(("path", "value", "match"), [
    ("branches.count", 10**12, r"branches.count: must be <= 8, got 1000000000000"),
    ("branches.count", {"low": 2, "high": 10**6}, r"branches.count.high: must be <= 8"),
    ("branches.models.depth", [2, 1000], r"branches.models.depth\[1\]: must be <= 256, got 1000"),
    ("branches.resolutions", [64, 16 * 10**6], r"branches.resolutions\[1\]: must be <= 8192"),
])
def test_sizes_that_can_only_be_mistakes_are_refused_quickly(path, value, match):
    with pytest.raises(SearchSpaceError, match=match):
        SearchSpace.from_dict(_with(BASE, path, value), source="test.yaml")

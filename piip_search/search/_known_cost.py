"""`known-cost`: an Optuna sampler that models AP alone, because FLOPs are known before anything is built.

Generic multi-objective samplers treat FLOPs as a black box and spend trials learning what the analytic counter
says in a millisecond. This sampler chooses a whole config per trial:

1. **Candidate pool.** Fresh random configs of the space plus neighbours of the current front (one draw
   changed: a branch's model or resolution one step, a branch added or removed at the end, the interaction
   count, direction or attention; and any branch copied next to itself or removed, so the pool reaches
   pyramids that differ in the middle). Every candidate's FLOPs/params are counted exactly (cached); candidates over a
   budget, already evaluated or pending on another trial are dropped *before* scoring.
2. **Surrogate of AP only.** A Gaussian process with per-dimension (ARD) Matern-5/2 length scales and a fitted noise
   term (Optuna's own GP code, which GPSampler uses, through `_optuna_internals/_gp_fit.py`) on a fixed-length
   encoding of the whole config: branches in order with absent ones padded by zeros, each with presence, log-width,
   depth, log-resolution and window/grid, then the highest-resolution branch again; branch count, interaction
   count, direction and attention one-hot, and log-FLOPs as a feature (AP is smooth in cost). The encoding is of
   the network, not of the draws: a pyramid without interaction units encodes the same whatever its count and
   attention draws, so the GP never fits draws that change nothing. A GP rather than a tree ensemble: EHVI needs
   a variance that grows away from the data, and a random forest in the GP's place (`surrogate="forest"`,
   `_forest.py`) reaches less of the true hypervolume at 200 trials on 18 of the sampler suite's 19 objectives
   and ties on the 19th (README "Sampler suite").
3. **Acquisition.** Expected hypervolume improvement in (GFLOPs, AP) with FLOPs exact and AP Gaussian, in
   closed form over the 2-D front staircase (`expected_hvi`, tested against Monte Carlo). The reference point
   is (FLOPs budget, `ap_ref`).
4. **Parallel workers.** Pending (RUNNING) trials are fantasised at their posterior mean (kriging believer):
   they join the GP's data and the front, so concurrent asks spread out.
5. **Cost past 1,000 trials.** The GP sees at most `max_train` points (`training_subset`): the half nearest the
   observed front (what EHVI compares against) plus a cost-stratified sample of the rest (so the model still
   knows the poor regions), because an exact GP's fit grows with the cube of its data. Kernel hyperparameters
   are fitted on an even sample of at most `max_fit` of those, refitted only when the data grew by
   `refit_growth` (and always below `refit_always_below` points), warm-started from the last fit; in between
   they are reused, so such an ask costs one Cholesky. Finished
   trials are read once (cached by trial id) and a trial told its GFLOPs is not counted again.

Optuna's define-by-run API asks one parameter at a time; the config is chosen in `sample_relative` (called when
a trial is created) and `sample_independent` then returns each of its draws, so every storage, worker, backend
and the dashboard work unchanged. Enqueued trials keep their fixed parameters.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from piip_search.config import DIRECTIONS, PIIPConfig
from piip_search.errors import SearchSpaceError
from piip_search.search._ehvi import config_means, expected_hvi, front_staircase, training_subset
from piip_search.search._forest import ForestModel
from piip_search.search._optuna_internals import GPModel, fit_kernel, trial_id_of

__all__ = ["KnownCostSampler", "supports"]

_ATTENTIONS = ("deformable", "regular")
_KNOWN = ("flops", "params")


def supports(space: Any) -> bool:
    """Whether the space's objectives are one counted (flops or params, minimised) and one measured, maximised."""
    names = [o.name for o in space.objectives]
    unknown = [i for i, n in enumerate(names) if n not in _KNOWN]
    return (len(names) == 2 and len(unknown) == 1 and names[1 - unknown[0]] in _KNOWN
            and space.objectives[unknown[0]].direction == "maximize"
            and space.objectives[1 - unknown[0]].direction == "minimize")


# ---- the encoding ------------------------------------------------------------------------------------------
def _branch_features(b: Any) -> list[float]:
    grid = max(1, b.resolution // 16)
    win = 1.0 if b.window_size is None else min(1.0, b.window_size / grid)
    return [math.log2(b.embed_dim), b.depth / 12.0, math.log2(b.resolution), win]


def _encode(cfg: PIIPConfig, max_branches: int, gflops: float) -> list[float]:
    """Fixed-length features of a whole config (absent branches are zeros)."""
    feats: list[float] = []
    for i in range(max_branches):
        feats += [1.0, *_branch_features(cfg.branches[i])] if i < len(cfg.branches) else [0.0] * 5
    # the highest-resolution branch again, wherever it is: configs that differ by a branch added or removed
    # in the middle then share these, where by position every later branch would differ
    feats += _branch_features(cfg.branches[-1])
    # a pyramid without interaction units is one network whatever its count and attention draws say (its
    # fingerprint drops them): equal configs get equal features, so the GP does not fit draws that do nothing
    inter = cfg.interactions
    units = bool(cfg.unit_pairs())
    direction = inter.direction if units else "none"
    feats += [len(cfg.branches), math.log2(1 + (cfg.n_interactions if units else 0))]
    feats += [float(direction == d) for d in DIRECTIONS]
    feats += [float(units and inter.attention == a) for a in _ATTENTIONS]
    feats.append(math.log(max(gflops, 1e-9)))
    return feats


def _is_branch_key(name: str) -> bool:
    head = name.split(".", 1)[0]
    return "." in name and head[:1] == "b" and head[1:].isdigit()


def _is_new(c: _Candidate, seen: set) -> bool:
    """Neither its fingerprint nor its draws are among `seen` (fingerprints of observed and pending trials, draws
    of the other finished ones)."""
    return c.fp not in seen and tuple(sorted(c.params.items())) not in seen


class _Candidate:
    __slots__ = ("params", "cfg", "fp", "gflops", "known", "feasible", "x")
    params: dict[str, Any]
    cfg: PIIPConfig
    fp: str
    gflops: float
    known: float  # the counted objective (GFLOPs or M params)
    feasible: bool
    x: Any


class KnownCostSampler(BaseSampler):
    """Pick a whole config per trial by closed-form EHVI on a GP of AP (module docstring).

    `space`: the `SearchSpace`; `count_fn(cfg) -> (flops, params)` defaults to the space's convention;
    `surrogate`: "gp" (the default) or "forest" (`_forest.py`, a random forest; README "Sampler suite" compares them).
    """

    def __init__(self, space: Any, *, seed: int | None = None, n_startup_trials: int = 8,
                 n_fresh: int = 256, n_neighbours: int = 512, ap_ref: float = 0.0,
                 refit_growth: float = 1.15, refit_always_below: int = 60, max_train: int = 200, max_fit: int = 128,
                 count_fn: Callable[[PIIPConfig], tuple[int, int]] | None = None, surrogate: str = "gp") -> None:
        names = [o.name for o in space.objectives]
        unknown = [i for i, n in enumerate(names) if n not in _KNOWN]
        if not supports(space):
            raise SearchSpaceError(f"{space.source}: sampler: known-cost needs two objectives, one counted "
                                   f"(flops or params, minimised) and one measured and maximised (e.g. ap), "
                                   f"got {names}")
        if surrogate not in ("gp", "forest"):
            raise SearchSpaceError(f"{space.source}: sampler: known-cost surrogate must be 'gp' or 'forest', "
                                   f"got {surrogate!r}")
        self.surrogate = surrogate
        self.space, self._ap_idx, self._cost_idx = space, unknown[0], 1 - unknown[0]
        self._cost_name = names[self._cost_idx]
        self._rng = random.Random(seed)
        self._seed = seed
        self.n_startup_trials, self.n_fresh, self.n_neighbours = n_startup_trials, n_fresh, n_neighbours
        self.ap_ref, self.refit_growth, self.refit_always_below = ap_ref, refit_growth, refit_always_below
        self.max_train, self.max_fit = max_train, max_fit
        if count_fn is None:
            from piip_search.search._driver import _default_flops_fn

            count_fn = _default_flops_fn(space)
        self._count = count_fn
        self._max_n = max(space.n_branches.values)
        self._cache: dict[tuple, _Candidate | None] = {}
        self._chosen: dict[int, dict[str, Any]] = {}
        self._gp_params: tuple[Any, int] | None = None  # (fitted GPRegressor, n points it was fitted on)
        self._finished: dict[int, tuple[Any, _Candidate | None, float | None]] = {}  # trial id -> its reading
        self._study_name: str | None = None  # the study the caches above belong to
        self._cost_ref = self._reference_cost()

    # ---- candidates ----------------------------------------------------------------------------------------
    def _candidate(self, params: dict[str, Any], told_gflops: float | None = None) -> _Candidate | None:
        """The counted candidate of `params` (cached); `told_gflops`: a finished trial's told FLOPs, not recounted."""
        key = tuple(sorted(params.items()))
        if key in self._cache:
            return self._cache[key]
        try:
            cfg = self.space.config_from_params(params)
        except (SearchSpaceError, ValueError):
            self._cache[key] = None
            return None
        c = _Candidate()
        c.params, c.cfg, c.fp = dict(params), cfg, cfg.fingerprint()
        if told_gflops is not None:  # a finished ok trial: on the budget by construction
            c.gflops = c.known = told_gflops
            c.feasible = True
        else:
            flops, n_params = self._count(cfg)
            c.gflops = flops / 1e9
            c.known = c.gflops if self._cost_name == "flops" else n_params / 1e6
            b = self.space.budgets
            c.feasible = ((b.max_gflops is None or c.gflops <= b.max_gflops)
                          and (b.max_params_m is None or n_params / 1e6 <= b.max_params_m))
        c.x = _encode(cfg, self._max_n, c.gflops)
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = c
        return c

    def _fresh_params(self) -> dict[str, Any]:
        drawn: dict[str, Any] = {}
        self.space._realise(lambda name, dim: drawn.setdefault(name, self._rng.choice(dim.values)), [])
        return drawn

    def _neighbours(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Configs one draw away: each searched parameter moved to an adjacent (ordered) or other choice."""
        dims = self.space.dimensions()
        out = []
        for name, value in params.items():
            values = dims.get(name)
            if values is None or value not in values:
                continue
            k = values.index(value)
            others = [values[j] for j in (k - 1, k + 1) if 0 <= j < len(values)]
            if isinstance(value, str) or value is None or name.endswith("model"):
                others = [v for v in values if v != value] if not name.endswith("model") else others
            for v in others:
                p = dict(params)
                p[name] = v
                if name == "n_branches" and v > value:  # a new branch: draw its parameters
                    extra = self._fresh_params()
                    p.update({k2: v2 for k2, v2 in extra.items() if k2.startswith(f"b{value}.")})
                    for k2, d2 in dims.items():
                        if k2.startswith(f"b{value}.") and k2 not in p:
                            p[k2] = self._rng.choice(d2)
                out.append(p)
        return out

    def _branch_moves(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Configs with one branch copied next to itself or one branch removed, anywhere in the pyramid (the
        n_branches move in `_neighbours` only appends or drops the last one)."""
        if "n_branches" not in params:
            return []
        n, counts = int(params["n_branches"]), self.space.n_branches.values
        branches = [{k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"b{i}.")} for i in range(n)]
        shared = {k: v for k, v in params.items() if not _is_branch_key(k)}

        def build(bs: list[dict[str, Any]]) -> dict[str, Any]:
            p = {**shared, "n_branches": len(bs)}
            for i, b in enumerate(bs):
                p.update({f"b{i}.{k}": v for k, v in b.items()})
            return p

        out = []
        if n + 1 in counts:
            out += [build(branches[: i + 1] + [branches[i]] + branches[i + 1:]) for i in range(n)]
        if n - 1 in counts:
            out += [build(branches[:i] + branches[i + 1:]) for i in range(n)]
        return out

    def _reference_cost(self) -> float:
        b = self.space.budgets
        cap = b.max_gflops if self._cost_name == "flops" else b.max_params_m
        if cap is not None:
            return float(cap)
        costs = [c.known for c in (self._candidate(self._fresh_params()) for _ in range(256)) if c]
        return 1.1 * max(costs)

    # ---- the study's data ----------------------------------------------------------------------------------
    def _observations(self, study: optuna.Study) -> tuple[list[_Candidate], list[float], list[_Candidate], set]:
        if study.study_name != self._study_name:
            self._study_name, self._finished, self._gp_params = study.study_name, {}, None
        done: list[_Candidate] = []
        ys: list[float] = []
        pending: list[_Candidate] = []
        seen: set[str] = set()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                chosen = self._chosen.get(trial_id_of(t)) or t.params
                c = self._candidate(chosen) if chosen else None
                if c is not None:
                    pending.append(c)
                    seen.add(c.fp)
                continue
            if t.state == TrialState.WAITING:
                continue
            fp, c, y = self._finished.get(trial_id_of(t)) or self._read_finished(t)
            if fp is not None:
                seen.add(fp)
            if c is not None and y is not None:
                done.append(c)
                ys.append(y)
        return done, ys, pending, seen

    def _read_finished(self, t: FrozenTrial) -> tuple[Any, _Candidate | None, float | None]:
        """(fingerprint, candidate and AP) of an ok observation, else (its sorted draws, None, None); cached by id."""
        status = t.user_attrs.get("status", "ok")
        cons = t.system_attrs.get("constraints") or ()
        ok = t.state == TrialState.COMPLETE and t.values is not None and status == "ok" and all(v <= 0 for v in cons)
        out: tuple[Any, _Candidate | None, float | None] = (None, None, None)
        if ok:
            told = float(t.values[self._cost_idx]) if self._cost_name == "flops" else None
            c = self._candidate(t.params, told_gflops=told)
            out = (c.fp, c, float(t.values[self._ap_idx])) if c is not None else out
        elif t.params:  # its draws, not its fingerprint: building thousands of over-budget configs costs seconds
            out = (tuple(sorted(t.params.items())), None, None)
        self._finished[trial_id_of(t)] = out
        return out

    def _fit(self, X: np.ndarray, y: np.ndarray, n_data: int) -> GPModel | ForestModel:
        """A GP on (X, y); hyperparameters refitted (warm-started) only when `n_data` grew (class docstring).
        With `surrogate="forest"`, a random forest refitted at every ask."""
        if self.surrogate == "forest":
            return ForestModel(X, y, seed=self._rng.randrange(2**31))
        kernel, n_fit = self._gp_params if self._gp_params is not None else (None, 0)
        refit = kernel is None or n_data < self.refit_always_below or n_data >= n_fit * self.refit_growth
        if refit:  # hyperparameters from an even sample of at most `max_fit` rows: the fit's cost jumps past ~150
            rows = np.linspace(0, len(y) - 1, min(len(y), self.max_fit)).round().astype(int)
            kernel = fit_kernel(X[rows], y[rows], warm=kernel)
            self._gp_params = (kernel, n_data)
            if len(rows) == len(y):
                return GPModel(X, y, kernel, fitted_on_all=True)
        return GPModel(X, y, kernel)

    # ---- choosing a config ---------------------------------------------------------------------------------
    def _choose(self, study: optuna.Study) -> dict[str, Any]:
        done, ys, pending, seen = self._observations(study)
        fresh = [self._candidate(self._fresh_params()) for _ in range(self.n_fresh)]
        if len(done) < self.n_startup_trials:
            pool = [c for c in fresh if c is not None and c.feasible and _is_new(c, seen)]
            return pool[0].params if pool else self._fresh_params()
        cost = np.array([c.known for c in done])
        ap = np.array(ys)  # per evaluation: the GP sees every seed (its noise term)
        front_ap = config_means([c.fp for c in done], ap)  # the front, as the study's, is on config means
        fc, fa = front_staircase(cost, front_ap, (self._cost_ref, self.ap_ref))
        on_front = set(zip(fc.tolist(), fa.tolist(), strict=True))
        front = list({c.fp: c for c, y in zip(done, front_ap.tolist(), strict=True)
                      if (c.known, y) in on_front}.values())
        front_params = [self.space.params_from_config(c.cfg) for c in front]
        neigh = [p for q in front_params for p in (*self._neighbours(q), *self._branch_moves(q))]
        self._rng.shuffle(neigh)
        cands, fps = [], set(seen)
        for c in [*fresh, *(self._candidate(p) for p in neigh[: self.n_neighbours])]:
            if c is not None and c.feasible and _is_new(c, fps):
                fps.add(c.fp)
                cands.append(c)
        if not cands:
            return self._fresh_params()
        keep = training_subset(cost, ap, self.max_train)
        X, y_train = np.array([done[i].x for i in keep]), ap[keep]
        lo, span = X.min(axis=0), np.maximum(X.max(axis=0) - X.min(axis=0), 1e-9)
        mean, std = y_train.mean(), max(y_train.std(), 1e-9)
        reg = self._fit((X - lo) / span, (y_train - mean) / std, len(done))
        if pending:
            Xp = (np.array([c.x for c in pending]) - lo) / span
            mp, _ = reg.posterior(Xp)
            reg.add_fantasies(Xp, mp)
            cost = np.concatenate([cost, [c.known for c in pending]])
            front_ap = np.concatenate([front_ap, mp * std + mean])
            fc, fa = front_staircase(cost, front_ap, (self._cost_ref, self.ap_ref))
        m, v = reg.posterior((np.array([c.x for c in cands]) - lo) / span)
        mu, sd = m * std + mean, np.sqrt(v + 1e-12) * std
        score = expected_hvi(np.array([c.known for c in cands]), mu, sd, fc, fa, (self._cost_ref, self.ap_ref))
        return cands[int(np.argmax(score))].params

    # ---- Optuna's sampler interface --------------------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial_id_of(trial) not in self._chosen:
            self._chosen[trial_id_of(trial)] = self._choose(study)
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        chosen = self._chosen.get(trial_id_of(trial))
        if chosen is None:
            chosen = self._chosen[trial_id_of(trial)] = self._choose(study)
        if param_name in chosen and param_distribution._contains(param_distribution.to_internal_repr(
                chosen[param_name])):
            return chosen[param_name]
        # an enqueued trial fixed other draws, or a branch the choice lacks: a random value keeps it valid
        return optuna.samplers.RandomSampler(seed=self._rng.randrange(2**31)).sample_independent(
            study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._chosen.pop(trial_id_of(trial), None)

    def reseed_rng(self) -> None:
        self._rng = random.Random()

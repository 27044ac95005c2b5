"""Sweep files: a base config plus a grid and/or a random search over dotted config keys, expanded
into trials whose configs are all validated before any trial starts.

```yaml
name: sine_families          # optional: names the sweep directory (default: the file's stem)
base: lstm_sine.yaml         # a config path (relative to this file) or an inline config mapping
grid:                        # every combination; the first key varies slowest
  model.name: [rnn, lstm, gru]
  model.hidden_size: [16, 64]
random:                      # `trials` draws, each crossed with every grid point
  trials: 8
  train.lr: {loguniform: [1.0e-4, 1.0e-1]}
seed: 0                      # seeds the random draws
repeats: 3                   # run every configuration with seeds train.seed, train.seed + 1, ...
# seeds: [0, 7, 42]          # ... or with these train.seed values (not both)
metric: mse                  # rank by this metric (default: the task's own) ...
mode: min                    # ... lower (min) or higher (max) is better; required with metric
split: val                   # ... at the best epoch on validation (default), or on test
slurm: {partition: gpu, time: 120, cpus: 4, mem: 16G, gpus: 1}   # per-trial resources (submitit)
```

With ``repeats`` (or ``seeds``) each configuration runs once per seed: ``train.seed`` is set in each
trial's values (it is not a swept key), and the results group the trials of one configuration
into mean, standard deviation and n.

Instead of grid/random, an Optuna search (``pip install 'rnnlab[optuna]'``, see ``optuna_search``):
``tpe: {trials: 20, pruner: median, train.lr: {loguniform: [1.0e-3, 3.0e-2]}}`` (or ``cmaes:``),
the same distributions; ``pruner: none | median | hyperband`` stops unpromising trials early.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from rnnlab.config.loading import build_experiment, set_dotted
from rnnlab.errors import ConfigError
from rnnlab.rundir.files import safe_name

TOP_KEYS = ("name", "base", "grid", "random", "tpe", "cmaes", "seed", "repeats", "seeds", "metric",
            "mode", "split", "slurm")
SEED_KEY = "train.seed"  # set per trial by repeats/seeds
SAMPLERS = ("tpe", "cmaes")  # Optuna searches: trials are asked for one by one (optuna_search)
PRUNERS = ("none", "median", "hyperband")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
# keys that only change how finished trials are ranked (or where they run); a resumed sweep may change them
RANKING_KEYS = ("name", "metric", "mode", "split", "slurm")


@dataclass(frozen=True)
class Distribution:
    """``{choice: [a, b]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``, ``{int: [lo, hi]}``
    (both ends inclusive). Floats are rounded to 4 significant digits, so names and configs stay
    readable and a value can be typed back exactly."""

    kind: str
    args: tuple[Any, ...]

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return copy.deepcopy(rng.choice(self.args))
        lo, hi = self.args
        if self.kind == "int":
            return rng.randint(lo, hi)
        if self.kind == "uniform":
            return float(f"{rng.uniform(lo, hi):.4g}")
        return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.4g}")

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"

    def to_yaml(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.args)}


@dataclass
class Trial:
    index: int  # 1-based, in expansion order
    values: dict[str, Any]  # dotted key -> value, in sweep-file key order
    config: dict[str, Any]  # the resolved config (every default written out)
    width: int = 3

    @property
    def id(self) -> str:
        return f"t{self.index:0{self.width}d}"

    def label(self) -> str:
        return ", ".join(f"{key}={show(value)}" for key, value in self.values.items())

    def run_name(self, attempt: int = 1) -> str:
        """The ``--name`` of the trial's run: unique per sweep and attempt, so its directory can be
        found again (``<stamp>_<name>``) even if the trial dies before printing it."""
        again = f"-a{attempt}" if attempt > 1 else ""
        slug = "_".join(f"{key.rsplit('.', 1)[-1]}={show(value)}" for key, value in self.values.items())
        return safe_name(f"{self.id}{again}_{slug}")


def show(value: Any) -> str:
    """A swept value as tables, plots and run names show it; a whole section (a grid over
    ``model:`` mappings, one recipe per family) as its name and then its other options."""
    if isinstance(value, dict):
        items = [show(value["name"])] if "name" in value else []
        return " ".join(items + [f"{k}={show(v)}" for k, v in value.items() if k != "name"])
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Search:
    """An Optuna search section: ``tpe:`` or ``cmaes:`` with ``trials``, ``pruner`` and the
    parameters' distributions."""

    sampler: str
    trials: int
    params: dict[str, Distribution]
    pruner: str = "none"

    def to_yaml(self) -> dict[str, Any]:
        return {"trials": self.trials, "pruner": self.pruner,
                **{key: dist.to_yaml() for key, dist in self.params.items()}}


@dataclass
class Sweep:
    name: str
    base: dict[str, Any]
    source: str  # the sweep file, for error messages
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    trials: int = 0  # random draws (0: grid only)
    seed: int = 0
    metric: Optional[str] = None
    mode: Optional[str] = None
    split: str = "val"
    seeds: Optional[list[int]] = None  # train.seed of each repeat (None: no repeats)
    search: Optional[Search] = None  # tpe/cmaes: trials come from Optuna, not from expansion
    slurm: dict[str, Any] = field(default_factory=dict)  # per-trial resources (submitit_backend)

    @property
    def keys(self) -> list[str]:
        return [*self.grid, *self.random, *(self.search.params if self.search else ())]

    def size(self) -> int:
        """How many trials the sweep runs, computed without expanding it."""
        if self.search is not None:
            return self.search.trials
        grid = math.prod(len(values) for values in self.grid.values())
        return grid * max(1, self.trials) * max(1, len(self.seeds or ()))

    def points(self) -> list[dict[str, Any]]:
        """Every grid combination crossed with the same ``trials`` seeded random draws, each
        repeated once per seed (the seed varies fastest); none for an Optuna search, whose trials
        are asked for as the sweep runs."""
        if self.search is not None:
            return []
        grid = [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]
        rng = random.Random(self.seed)
        draws = [{key: dist.sample(rng) for key, dist in self.random.items()}
                 for _ in range(self.trials)] or [{}]
        seeds: list[dict[str, Any]] = [{SEED_KEY: s} for s in self.seeds] if self.seeds else [{}]
        return [{**copy.deepcopy(g), **d, **s} for g in grid for d in draws for s in seeds]

    def to_dict(self) -> dict[str, Any]:
        """The sweep file as resolved: base inline, every option written out."""
        out: dict[str, Any] = {"name": self.name, "base": self.base, "grid": self.grid}
        if self.random:
            out["random"] = {"trials": self.trials,
                             **{key: dist.to_yaml() for key, dist in self.random.items()}}
        if self.search is not None:
            out[self.search.sampler] = self.search.to_yaml()
        out["seed"] = self.seed
        if self.seeds:
            out["seeds"] = list(self.seeds)
        out.update(metric=self.metric, mode=self.mode, split=self.split)
        if self.slurm:
            out["slurm"] = dict(self.slurm)
        return out

    def identity(self) -> dict[str, Any]:
        """What decides the trials; two sweeps with the same identity run the same trials."""
        return {k: v for k, v in self.to_dict().items() if k not in RANKING_KEYS}


# ----------------------------------------------------------------------------- trials


def expand(sweep: Sweep) -> list[Trial]:
    """Every trial with its resolved config. All are validated first: an invalid combination is
    reported with the trial's values, before anything runs."""
    points = sweep.points()
    width = max(3, len(str(len(points))))
    trials, problems = [], []
    for index, values in enumerate(points, 1):
        try:
            trials.append(resolve_trial(sweep, index, values, width))
        except ConfigError as exc:
            problems.append(exc)
    if problems:
        more = f" ({len(problems)} of {len(points)} trials are invalid)" if len(problems) > 1 else ""
        raise ConfigError(sweep.source, problems[0].line() + more)
    return trials


def resolve_trial(sweep: Sweep, index: int, values: dict[str, Any], width: int = 3) -> Trial:
    """The trial with these swept values: the base config with them set, validated."""
    trial = Trial(index, values, {}, width)
    raw = copy.deepcopy(sweep.base)
    for key, value in values.items():
        set_dotted(raw, key.split("."), value, sweep.source)
    raw["name"] = trial.id
    trial.config = build_experiment(raw, f"trial {trial.id} ({trial.label()})").to_dict()
    return trial


def check_search_space(sweep: Sweep) -> None:
    """An Optuna search's values are asked for while it runs: each parameter's ends (and every
    choice) are validated as trial configs first, so a bad range fails before the sweep exists."""
    if sweep.search is None:
        return
    for key, dist in sweep.search.params.items():
        for value in dist.args:
            try:
                resolve_trial(sweep, 0, {key: value})
            except ConfigError as exc:
                raise ConfigError(sweep.source, f"{sweep.search.sampler}.{key}: {value!r} is in its "
                                  f"range but not a valid value: {exc.what}") from None

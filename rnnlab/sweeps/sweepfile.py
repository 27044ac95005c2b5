"""Reading a sweep file (the format: ``sweeps.spec``): every key checked, with the file and key
in each error, into a ``Sweep``; distributions, seeds, ranking and per-trial resources validated
before any trial is expanded."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

from rnnlab.common.numbers import INT64_MAX, INT64_MIN, MAX_TRIALS, check_number
from rnnlab.config.loading import SECTIONS, read_yaml
from rnnlab.config.schema import FLOAT32_MAX, TrainConfig
from rnnlab.errors import ConfigError
from rnnlab.registry import did_you_mean
from rnnlab.rundir.files import safe_name
from rnnlab.sweeps.resources import parse_resources
from rnnlab.sweeps.spec import (
    DISTRIBUTIONS,
    PRUNERS,
    SAMPLERS,
    SEED_KEY,
    TOP_KEYS,
    Distribution,
    Search,
    Sweep,
)


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    return parse_sweep(read_yaml(path), str(path), path.parent, path.stem)


def parse_sweep(raw: dict[str, Any], where: str, base_dir: Path, default_name: str) -> Sweep:
    for key in raw:
        if key not in TOP_KEYS:
            hint = did_you_mean(str(key), list(TOP_KEYS))
            raise ConfigError(where, f"{key}: unknown key{hint}; allowed: {', '.join(TOP_KEYS)}")
    if "base" not in raw:
        raise ConfigError(where, "base: is required (a config path or an inline config)")
    sweep = Sweep(name=_name(raw.get("name"), default_name, where), base=_base(raw["base"], where, base_dir),
                  source=where, grid=_grid(raw.get("grid"), where),
                  seed=_int(raw.get("seed", 0), "seed", where))
    sweep.trials, sweep.random = _random(raw.get("random"), where)
    sweep.search = _search(raw, where)
    if sweep.search is not None:  # Optuna's samplers seed numpy, which takes 0 .. 2**32-1
        _int(sweep.seed, f"seed ({sweep.search.sampler})", where, 0, SEED_MAX)
    if sweep.search is not None and (sweep.grid or sweep.random):
        raise ConfigError(where, f"{sweep.search.sampler}: an Optuna search chooses every value itself; "
                          "drop grid: and random: (or use them without it)")
    both = set(sweep.grid) & set(sweep.random)
    if both:
        raise ConfigError(where, f"random.{min(both)}: also in grid; sweep each key one way")
    if not sweep.keys:
        raise ConfigError(where, "nothing to sweep: give grid: and/or random: with dotted config keys")
    sweep.seeds = _seeds(raw, sweep, where)
    if sweep.seeds and sweep.search is not None:
        raise ConfigError(where, f"repeats: not supported with an Optuna search ({sweep.search.sampler}) "
                          "yet: each Optuna trial is one seed")
    _ranking(sweep, raw, where)
    _count(sweep.size(), "the sweep", where, "grid points x random.trials x seeds: ")
    if "slurm" in raw:  # checked here, used by --backend slurm / submitit-local
        sweep.slurm = parse_resources(raw["slurm"], where)
    return sweep


def _count(n: int, key: str, where: str, what: str = "") -> int:
    """``n`` trials (or draws, or repeats), refused above ``MAX_TRIALS`` before any is drawn."""
    if n > MAX_TRIALS:
        raise ConfigError(where, f"{key}: {what}{n} trials is more than {MAX_TRIALS} (each trial is a "
                          "training run; split the sweep or search a smaller space)")
    return n


def _seeds(raw: dict[str, Any], sweep: Sweep, where: str) -> Optional[list[int]]:
    """``repeats: N`` -> seeds train.seed + i (train.seed of the base config); ``seeds: [...]``."""
    if "repeats" not in raw and "seeds" not in raw:
        return None
    if "repeats" in raw and "seeds" in raw:
        raise ConfigError(where, "seeds: give repeats: N or a seeds: list, not both")
    if SEED_KEY in sweep.keys:
        raise ConfigError(where, f"repeats: {SEED_KEY} is also swept in grid/random; repeats set it")
    if "seeds" in raw:
        seeds = raw["seeds"]
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise ConfigError(where, f"seeds: must be a non-empty list of integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(where, f"seeds: a seed is listed twice in {seeds!r}")
        return list(seeds)
    repeats = _count(_int(raw["repeats"], "repeats", where, minimum=1), "repeats", where)
    train = sweep.base.get("train") if isinstance(sweep.base.get("train"), dict) else {}
    start = train.get("seed", TrainConfig.model_fields["seed"].default)
    if not isinstance(start, int) or isinstance(start, bool):
        raise ConfigError(where, f"base: train.seed: must be an integer, got {start!r}")
    return [start + i for i in range(repeats)]


def _name(value: Any, default: str, where: str) -> str:
    if value is None:
        return safe_name(default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, f"name: must be a non-empty string, got {value!r}")
    return safe_name(value)


SEED_MAX = 2**32 - 1  # the largest seed numpy (under Optuna's samplers) takes


def _int(value: Any, key: str, where: str, minimum: Optional[int] = None,
         maximum: Optional[int] = None) -> int:
    if (not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        bound = (f" from {minimum} to {maximum}" if maximum is not None
                 else f" >= {minimum}" if minimum is not None else "")
        raise ConfigError(where, f"{key}: must be an integer{bound}, got {value!r}")
    return value


def _base(value: Any, where: str, base_dir: Path) -> dict[str, Any]:
    """The base config; its plugin files resolved against the file they are written in."""
    from rnnlab.config.plugins import resolve_specs

    if isinstance(value, dict):
        base = copy.deepcopy(value)
    elif isinstance(value, str) and value.strip():
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        base, base_dir = read_yaml(path), path.parent
    else:
        base = None
    if isinstance(base, dict):
        if "plugins" in base:
            base["plugins"] = resolve_specs(base["plugins"], base_dir, f"{where}: base")
        return base
    raise ConfigError(where, f"base: must be a config path or an inline config mapping, got {value!r}")


def _check_key(key: Any, where: str, section: str) -> str:
    parts = key.split(".") if isinstance(key, str) else []
    if not parts or any(not p.strip() for p in parts):
        raise ConfigError(where, f"{section}: bad key {key!r}: expected a dotted config key such as "
                          "model.hidden_size")
    if parts[0] not in SECTIONS or parts[0] in ("name", "sweep"):
        allowed = [s for s in SECTIONS if s not in ("name", "sweep")]
        raise ConfigError(where, f"{section}.{key}: unknown section '{parts[0]}'"
                          f"{did_you_mean(parts[0], allowed)}; sections: {', '.join(allowed)}")
    return key


def _grid(value: Any, where: str) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, f"grid: must map dotted config keys to lists of values, got {value!r}")
    grid = {}
    for key, values in value.items():
        _check_key(key, where, "grid")
        if not isinstance(values, list) or not values:
            raise ConfigError(where, f"grid.{key}: must be a non-empty list of values, got {values!r}")
        seen = [repr(v) for v in values]
        dup = next((v for i, v in enumerate(seen) if v in seen[:i]), None)
        if dup is not None:
            raise ConfigError(where, f"grid.{key}: value {dup} is listed twice")
        grid[key] = values
    return grid


def _random(value: Any, where: str, section: str = "random",
            skip: tuple[str, ...] = ()) -> tuple[int, dict[str, Distribution]]:
    if value is None:
        return 0, {}
    if not isinstance(value, dict):
        raise ConfigError(where, f"{section}: must be a mapping with trials: and dotted keys -> "
                          "distributions")
    if "trials" not in value:
        raise ConfigError(where, f"{section}.trials: is required (how many "
                          f"{'random draws' if section == 'random' else 'trials'})")
    trials = _int(value["trials"], f"{section}.trials", where, minimum=1)
    _count(trials, f"{section}.trials", where)
    dists = {_check_key(k, where, section): _distribution(v, f"{section}.{k}", where)
             for k, v in value.items() if k != "trials" and k not in skip}
    if not dists:
        raise ConfigError(where, f"{section}: give at least one dotted key with a distribution, "
                          "e.g. train.lr: {loguniform: [1.0e-4, 1.0e-2]}")
    return trials, dists


def _search(raw: dict[str, Any], where: str) -> Optional[Search]:
    """``tpe:`` or ``cmaes:``: shaped like ``random:``, plus ``pruner``."""
    given = [s for s in SAMPLERS if s in raw]
    if not given:
        return None
    if len(given) > 1:
        raise ConfigError(where, f"{given[1]}: give one Optuna search section, not both "
                          f"{' and '.join(given)}")
    sampler, value = given[0], raw[given[0]]
    trials, params = _random(value, where, sampler, skip=("pruner",))
    pruner = value.get("pruner", "none")
    if pruner is None or pruner is False:
        pruner = "none"
    if pruner not in PRUNERS:
        hint = did_you_mean(str(pruner), list(PRUNERS))
        raise ConfigError(where, f"{sampler}.pruner: must be one of {', '.join(PRUNERS)}, "
                          f"got {pruner!r}{hint}")
    return Search(sampler, trials, params, pruner)


def _distribution(value: Any, key: str, where: str) -> Distribution:
    usage = f"expected one of {{{', '.join(f'{d}: [...]' for d in DISTRIBUTIONS)}}}"
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(where, f"{key}: {usage}, got {value!r}")
    kind, args = next(iter(value.items()))
    if kind not in DISTRIBUTIONS:
        hint = did_you_mean(str(kind), list(DISTRIBUTIONS))
        raise ConfigError(where, f"{key}: unknown distribution {kind!r}{hint}; {usage}")
    if not isinstance(args, list) or not args:
        raise ConfigError(where, f"{key}.{kind}: must be a non-empty list, got {args!r}")
    if kind == "choice":
        return Distribution(kind, tuple(args))
    numbers = (int,) if kind == "int" else (int, float)
    if len(args) != 2 or not all(isinstance(a, numbers) and not isinstance(a, bool) for a in args):
        what = "integers" if kind == "int" else "numbers"
        raise ConfigError(where, f"{key}.{kind}: must be [low, high], two {what}, got {args!r}")
    for end, arg in zip(("low", "high"), args):
        check_number(arg, f"{where}: {key}.{kind}: {end}", integer=kind == "int",
                     low=INT64_MIN if kind == "int" else -FLOAT32_MAX,
                     high=INT64_MAX if kind == "int" else FLOAT32_MAX,
                     why="a 64-bit integer" if kind == "int" else "within float32's range")
    lo, hi = args
    if lo > hi:
        raise ConfigError(where, f"{key}.{kind}: low must be <= high, got {args!r}")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(where, f"{key}.loguniform: bounds must be > 0, got {args!r}")
    return Distribution(kind, (lo, hi) if kind == "int" else (float(lo), float(hi)))


def _ranking(sweep: Sweep, raw: dict[str, Any], where: str) -> None:
    metric, mode, split = raw.get("metric"), raw.get("mode"), raw.get("split", "val")
    if metric is not None and (not isinstance(metric, str) or not metric.strip()):
        raise ConfigError(where, f"metric: must be a metric name such as mse or accuracy, got {metric!r}")
    if mode not in (None, "min", "max"):
        raise ConfigError(where, f"mode: must be 'min' or 'max', got {mode!r}")
    if (metric is None) != (mode is None):
        missing = "mode" if mode is None else "metric"
        raise ConfigError(where, f"{missing}: required with {'metric' if mode is None else 'mode'} "
                          "(say which metric to rank by and whether min or max is better), "
                          "or leave both out to use the task's own")
    if split not in ("val", "test"):
        raise ConfigError(where, f"split: must be 'val' or 'test', got {split!r}")
    sweep.metric, sweep.mode, sweep.split = metric, mode, split



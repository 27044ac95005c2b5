"""The Optuna side of a ``tpe:``/``cmaes:`` sweep (extra ``rnnlab[optuna]``): the study in the sweep
directory (``optuna.journal``), its sampler and pruner, and the search space as Optuna distributions
(and back to config values). The driving of trials: ``sweeps.optuna_search``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.sweeps.spec import Sweep, check_search_space, resolve_trial

STUDY_FILE = "optuna.journal"


def require_optuna(sweep: Sweep) -> Any:
    """The optuna module, or one clear line saying how to install it."""
    assert sweep.search is not None
    where = f"{sweep.source}: {sweep.search.sampler}"
    try:
        import optuna
    except ImportError:
        raise ConfigError(where, "needs Optuna: pip install 'rnnlab[optuna]'") from None
    if sweep.search.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError(where, "needs the cmaes package: pip install 'rnnlab[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def prepare(sweep: Sweep) -> None:
    """Before anything is written: Optuna is there, and the metric to optimise is known (the
    task's own unless the sweep file names one), since the study's direction depends on it."""
    require_optuna(sweep)
    check_search_space(sweep)
    if sweep.metric is None:
        import torch

        from rnnlab.config.loading import build_experiment
        from rnnlab.training.build import build_task

        config = resolve_trial(sweep, 0, {}).config
        spec = build_task(build_experiment(config, sweep.source), torch.device("cpu")).spec
        sweep.metric, sweep.mode = spec.metric, spec.mode


# ----------------------------------------------------------------------------- the study


def distributions(sweep: Sweep) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    assert sweep.search is not None
    for key, dist in sweep.search.params.items():
        if dist.kind == "choice":  # by index: Optuna's choices must be plain scalars
            out[key] = CategoricalDistribution(list(range(len(dist.args))))
        elif dist.kind == "int":
            out[key] = IntDistribution(*dist.args)
        else:
            out[key] = FloatDistribution(*dist.args, log=dist.kind == "loguniform")
    return out


def decode(sweep: Sweep, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's parameters as config values, in sweep-file order; floats to 4 significant digits
    as random search writes them (readable names, values that can be typed back)."""
    assert sweep.search is not None
    values = {}
    for key, dist in sweep.search.params.items():
        value = params[key]
        if dist.kind == "choice":
            value = dist.args[int(value)]
        elif dist.kind in ("uniform", "loguniform"):
            value = float(f"{value:.4g}")
        values[key] = value
    return values


def open_study(sweep: Sweep, sweep_dir: Path) -> Any:
    import optuna
    from optuna.storages import JournalStorage

    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # optuna < 4
        from optuna.storages import JournalFileStorage as JournalFileBackend  # type: ignore[no-redef]

    search = sweep.search
    assert search is not None
    if search.sampler == "cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=sweep.seed, warn_independent_sampling=False)
    else:  # a quarter of the trials (at most Optuna's 10) are random starts before TPE models
        sampler = optuna.samplers.TPESampler(seed=sweep.seed,
                                             n_startup_trials=min(10, max(1, search.trials // 4)))
    if search.pruner == "median":
        pruner: Any = optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, search.trials // 4)))
    elif search.pruner == "hyperband":
        train = sweep.base.get("train")
        epochs = train.get("epochs") if isinstance(train, dict) else None
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    else:
        pruner = optuna.pruners.NopPruner()
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / STUDY_FILE)))
    return optuna.create_study(study_name=sweep.name, storage=storage, sampler=sampler, pruner=pruner,
                               direction="maximize" if sweep.mode == "max" else "minimize",
                               load_if_exists=True)


# ----------------------------------------------------------------------------- the driver

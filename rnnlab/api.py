"""The Python API: train, sweep and reopen runs from a script or a notebook.

    import rnnlab
    run = rnnlab.train("configs/lstm_sine.yaml", overrides={"train.epochs": 3})  # or ["train.epochs=3"]
    run.summary["test"]                     # what `rnnlab train` printed
    run.history_frame()                     # metrics.jsonl as a pandas DataFrame (rnnlab[pandas])
    rnnlab.load_run(run.path).evaluate()    # the same metrics, from the run directory alone
    model = run.model()                     # the built nn.Module with the best checkpoint loaded
    rnnlab.train(resume=run, overrides={"train.epochs": 6})   # as `rnnlab train --resume`
    rnnlab.runs("runs")                     # every run in a folder, newest first (as `rnnlab runs`)

Everything goes through the same code as the command line: a run trained here is a run directory
like any other (``rnnlab eval``, ``compare``, ``--resume`` ... all work on it). User errors raise
``rnnlab.ConfigError`` / ``DataError`` / ``RunDirError`` (all ``rnnlab.RnnlabError``), a divergence
``rnnlab.Diverged``, and a stop (Ctrl-C, a notebook's interrupt) ``rnnlab.Interrupted`` once the
checkpoint is saved. Signal handlers are installed only while a run trains; nothing reads
``sys.argv``; with ``quiet=False`` progress is printed as plain lines (which notebooks show).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from rnnlab.common.invocation import invoked_as
from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    import pandas
    import torch

    from rnnlab.config.loading import Experiment, Overrides
    from rnnlab.sweeps.results import TrialRecord

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], "Experiment"]
OverridesLike = Union[Mapping[str, Any], Sequence[str], None]
WHERE = "overrides"  # what errors in the API's overrides name (the command line's say --set)


def experiment(config: ConfigLike, overrides: OverridesLike = None,
               name: Optional[str] = None) -> "Experiment":
    """A validated ``Experiment`` from a YAML path, a config mapping or an ``Experiment``, with
    dotted ``overrides`` (``{"train.lr": 1e-3}``, or ``["train.lr=1e-3"]`` as ``--set`` takes them)
    and a run ``name`` applied."""
    from rnnlab.config.loading import Experiment, apply_overrides, build_experiment, load_experiment

    overrides = _overrides(overrides)
    if isinstance(config, (str, os.PathLike)):
        return load_experiment(config, overrides, name, WHERE)
    if isinstance(config, Experiment):
        raw = config.to_dict()
        where = "experiment"
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
        where = "config"
    else:
        raise ConfigError("config", f"must be a path, a mapping or an Experiment, got "
                          f"{type(config).__name__}")
    raw = apply_overrides(raw, overrides, WHERE)
    if name is not None:
        raw["name"] = name
    raw.setdefault("name", "run")
    return build_experiment(raw, where)


def _overrides(overrides: OverridesLike) -> "Overrides":
    """A mapping ``{"train.lr": 1e-3}`` (values as given) or a list of ``"KEY=VALUE"`` strings
    (values read as YAML, as ``--set`` reads them)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if (isinstance(overrides, (str, bytes)) or not isinstance(overrides, Sequence)
            or not all(isinstance(o, str) for o in overrides)):
        raise ConfigError(WHERE, 'must be a mapping such as {"train.lr": 1e-3} or a list of '
                          f'"KEY=VALUE" strings such as ["train.lr=1e-3"], got {type(overrides).__name__}')
    return list(overrides)


def _reporter(quiet: bool, log_every: int) -> Any:
    from rnnlab.common.console import Reporter, Silent

    return Silent() if quiet else Reporter(False, log_every)


def train(config: Optional[ConfigLike] = None, *, overrides: OverridesLike = None,
          runs_dir: Union[str, "os.PathLike[str]"] = "runs", name: Optional[str] = None,
          quiet: bool = True, resume: Union[str, "os.PathLike[str]", None] = None) -> "Run":
    """Train one run (as ``rnnlab train``) and return it. ``config``: a YAML path, a mapping with
    the config's sections, or an ``Experiment``; ``overrides``: a mapping ``{"train.epochs": 2}``
    or a list of ``"KEY=VALUE"`` strings. ``resume``: a ``Run``, a run directory or a run id in
    ``runs_dir`` to continue from its last checkpoint (as ``rnnlab train --resume``; ``config`` is
    then left out and ``overrides`` may change only safe keys such as ``train.epochs``)."""
    from rnnlab.common.allocator import keep_freed_memory
    from rnnlab.execution.launch import run_training

    keep_freed_memory()
    if resume is not None:
        return _resume(resume, config, overrides, runs_dir, name, quiet)
    if config is None:
        raise ConfigError("config", "missing: give a YAML path, a config mapping or an Experiment "
                          "(or resume=RUN to continue a run)")
    exp = experiment(config, overrides, name)
    reporter = _reporter(quiet, exp.train.log_every)
    with invoked_as(_call("train", config, overrides, name)):
        try:
            run_dir = run_training(exp, Path(runs_dir), reporter)
        finally:
            reporter.close()
    return Run(run_dir)


def _resume(run: Union[str, "os.PathLike[str]"], config: Optional[ConfigLike], overrides: OverridesLike,
            runs_dir: Union[str, "os.PathLike[str]"], name: Optional[str], quiet: bool) -> "Run":
    """``train(resume=RUN)``: the run goes on with its own config; a run already complete is
    returned as it is, with a warning saying so."""
    from rnnlab.execution.resume import resume_run

    if config is not None:
        raise ConfigError("config", "a resumed run keeps its own config: leave config out with resume= "
                          "(change safe keys such as train.epochs with overrides=)")
    if name is not None:
        raise ConfigError("name", "a resumed run keeps its name and directory")
    changes = _overrides(overrides)
    reporter = _reporter(quiet, 50)  # resume_run sets the run's own log_every
    with invoked_as(f"rnnlab.train(resume={os.fspath(run)!r}"
                    + (f", overrides={changes!r})" if changes else ")")):
        try:
            run_dir, note = resume_run(run, changes, Path(runs_dir), reporter, WHERE)
        finally:
            reporter.close()
    if note is not None:
        warnings.warn(f"{run_dir}: {note}", stacklevel=3)
    return Run(run_dir)


def load_run(path: Union[str, "os.PathLike[str]"]) -> "Run":
    """An existing run directory (checked to be one)."""
    from rnnlab.rundir import files as runs

    run_dir = runs.resolve_run(path)
    runs.read_summary(run_dir)  # a directory that is not a run fails here, in one line
    return Run(run_dir)


def sweep(config: Union[str, "os.PathLike[str]", Mapping[str, Any]], *,
          runs_dir: Union[str, "os.PathLike[str]"] = "runs", workers: int = 1,
          resume: Union[str, "os.PathLike[str]", None] = None, backend: str = "local",
          quiet: bool = True) -> "SweepResult":
    """Run a sweep (as ``rnnlab sweep``): ``config`` is a sweep file or the same as a mapping;
    ``resume``: a sweep directory whose unfinished trials to run (``config`` may then be None)."""
    from rnnlab.sweeps.runner import Options, run_sweep
    from rnnlab.sweeps.sweepfile import parse_sweep

    spec: Any = None
    if isinstance(config, Mapping) and resume is None:
        spec = parse_sweep(copy.deepcopy(dict(config)), "sweep", Path.cwd(), "sweep")
    elif isinstance(config, (str, os.PathLike)):
        spec = Path(config)
    elif config is not None or resume is None:
        raise ConfigError("config", "must be a sweep file's path or a sweep mapping (or None with "
                          f"resume=<sweep directory>), got {_shown_type(config)}")
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise ConfigError("resume", f"must be a sweep directory's path, got {_shown_type(resume)}")
    say = (lambda line: None) if quiet else print
    with invoked_as(_call("sweep", config, None, None)):
        outcome = run_sweep(spec, Path(runs_dir), Path(resume) if resume is not None else None,
                            Options(workers, backend), say)
    best = Run(Path(outcome.best.run)) if outcome.best is not None and outcome.best.run else None
    return SweepResult(outcome.sweep_dir, outcome.status, list(outcome.ordered), best)


def runs(runs_dir: Union[str, "os.PathLike[str]"] = "runs", *, task: Optional[str] = None,
         model: Optional[str] = None, status: Optional[str] = None) -> list["Run"]:
    """The runs under ``runs_dir`` (sweeps' trial runs included), newest first, as ``rnnlab runs``
    lists them, keeping those matching every filter given. A run whose summary cannot be read is
    listed too (its repr says why) and named in one warning. Also reachable as ``rnnlab.runs(...)``."""
    from rnnlab.analysis.compare import list_runs

    infos = list_runs(Path(runs_dir), task, model, status)
    bad = [i for i in infos if i.problem]
    if bad:
        named = "; ".join(f"{i.id}: {i.problem}" for i in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        warnings.warn(f"{len(bad)} run(s) in {runs_dir} could not be read: {named}{more}", stacklevel=2)
    return [Run(i.path) for i in infos]


def _shown_type(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _device(device: Optional[str]) -> str:
    """``device`` checked as the CLI checks ``--device`` (default cpu)."""
    from rnnlab.training.runtime import check_device

    return check_device("cpu" if device is None else device, "device")


def _call(verb: str, config: Any, overrides: OverridesLike, name: Optional[str]) -> str:
    shown = (repr(os.fspath(config)) if isinstance(config, (str, os.PathLike))
             else f"<{type(config).__name__}>")
    given = dict(overrides) if isinstance(overrides, Mapping) else list(overrides or [])
    extra = (f", overrides={given!r}" if given else "") + (f", name={name!r}" if name else "")
    return f"rnnlab.{verb}({shown}{extra})"


@dataclass
class Run:
    """A run directory, read from its own files (each attribute is read when asked for, so a run
    still training shows its progress)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser().resolve()  # absolute, however the run was reached

    def __fspath__(self) -> str:
        return str(self.path)

    def __hash__(self) -> int:  # runs go in sets and dict keys; equal when their paths are
        return hash(self.path)

    def __repr__(self) -> str:
        from rnnlab.notebook import run_repr

        return run_repr(self.path)

    def _repr_html_(self) -> str:
        from rnnlab.notebook import run_html

        return run_html(self.path)

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config the run was trained with (``config.yaml``)."""
        from rnnlab.config.loading import read_yaml
        from rnnlab.rundir import files as runs

        return read_yaml(self.path / runs.CONFIG)

    @property
    def summary(self) -> dict[str, Any]:
        from rnnlab.rundir import files as runs

        return runs.read_summary(self.path)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One row per epoch (``metrics.jsonl``): train loss, validation metrics, lr, grad norms."""
        from rnnlab.rundir import files as runs

        return runs.read_metrics(self.path)

    def history_frame(self) -> "pandas.DataFrame":
        """``history`` as a pandas DataFrame indexed by epoch (needs ``rnnlab[pandas]``)."""
        from rnnlab.notebook import history_frame, require_pandas

        require_pandas("history_frame")  # before reading anything
        return history_frame(self.history)

    def model(self, checkpoint: str = "best", device: Optional[str] = None) -> "torch.nn.Module":
        """The run's model, built from its config, with ``checkpoint`` ("best" or "last") loaded,
        in eval mode."""
        from rnnlab.training.evaluation import load_run as load

        _check_checkpoint(checkpoint)
        _, _, _, model, _ = load(self.path, checkpoint, _device(device), for_inference=True)
        return model.eval()

    def evaluate(self, split: str = "test", checkpoint: str = "best",
                 device: Optional[str] = None) -> dict[str, float]:
        """The task's metrics on ``split`` (as ``rnnlab eval``)."""
        from rnnlab.training.evaluation import evaluate_run

        _check_checkpoint(checkpoint)
        if split not in ("train", "val", "test"):
            raise ConfigError("split", f"must be train, val or test, got {split!r}")
        return evaluate_run(self.path, split, checkpoint, _device(device))

    def predict(self, texts: Union[str, Sequence[str]], checkpoint: str = "best",
                device: Optional[str] = None) -> list[Any]:
        """Text classification runs: a ``Prediction`` (label, probability, all probabilities) per text."""
        from rnnlab.execution.inference import predict

        _check_checkpoint(checkpoint)
        return predict(self.path, [texts] if isinstance(texts, str) else list(texts),
                       checkpoint=checkpoint, device=_device(device))

    def generate(self, prefix: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None, checkpoint: str = "best",
                 device: Optional[str] = None) -> str:
        """Char-LM runs: ``prefix`` followed by ``length`` sampled characters."""
        from rnnlab.execution.inference import generate_run

        _check_checkpoint(checkpoint)
        return generate_run(self.path, prefix, length, temperature, top_k, seed, checkpoint,
                            _device(device))


def _check_checkpoint(checkpoint: str) -> None:
    if checkpoint not in ("best", "last"):
        raise ConfigError("checkpoint", f"must be 'best' or 'last', got {checkpoint!r}")


@dataclass
class SweepResult:
    """A finished (or stopped) sweep: its directory, its status, its trials (best first) and the
    best trial's run."""

    path: Path
    status: str  # completed, incomplete or interrupted
    trials: list["TrialRecord"] = field(default_factory=list)
    best: Optional[Run] = None

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser().resolve()

    def runs(self) -> list[Run]:
        """The trials' run directories, best first (trials that never started have none)."""
        return [Run(Path(r.run)) for r in self.trials if r.run]

    def trials_dataframe(self) -> "pandas.DataFrame":
        """One row per trial, best first (as Optuna's ``Study.trials_dataframe()``): trial, rank,
        status, score, one column per swept key, ``val_<metric>``, ``test_<metric>``, times, error,
        run path. Needs ``rnnlab[pandas]``."""
        from rnnlab.notebook import trials_frame

        return trials_frame(self.trials)

    def __repr__(self) -> str:
        from rnnlab.notebook import sweep_repr

        return sweep_repr(self.path, self.status, self.trials, self.best.path if self.best else None)

    def _repr_html_(self) -> str:
        from rnnlab.notebook import sweep_html

        return sweep_html(self.path, self.status, self.trials)

"""The Python API: train, sweep and reopen runs from a script or a notebook.

    import rnnlab
    run = rnnlab.train("configs/lstm_sine.yaml", overrides=["train.epochs=3"])
    run.summary["test"]                     # what `rnnlab train` printed
    rnnlab.load_run(run.path).evaluate()    # the same metrics, from the run directory alone
    model = run.model()                     # the built nn.Module with the best checkpoint loaded

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from .errors import ConfigError
from .invocation import invoked_as

if TYPE_CHECKING:
    import torch

    from .config import Experiment
    from .sweeps.results import TrialRecord

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], "Experiment"]


def experiment(config: ConfigLike, overrides: Optional[Sequence[str]] = None,
               name: Optional[str] = None) -> "Experiment":
    """A validated ``Experiment`` from a YAML path, a config mapping or an ``Experiment``, with
    ``--set``-style dotted ``overrides`` ("train.lr=1e-3") and a run ``name`` applied."""
    from .config import Experiment, apply_overrides, build_experiment, load_experiment

    overrides = _override_list(overrides)
    if isinstance(config, (str, os.PathLike)):
        return load_experiment(config, overrides, name)
    if isinstance(config, Experiment):
        raw = config.to_dict()
        where = "experiment"
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
        where = "config"
    else:
        raise ConfigError("config", f"must be a path, a mapping or an Experiment, got "
                          f"{type(config).__name__}")
    raw = apply_overrides(raw, overrides)
    if name is not None:
        raw["name"] = name
    raw.setdefault("name", "run")
    return build_experiment(raw, where)


def _override_list(overrides: Optional[Sequence[str]]) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError("overrides", 'must be a list of "KEY=VALUE" strings, e.g. ["train.lr=1e-3"]')
    return list(overrides)


def _reporter(quiet: bool, log_every: int) -> Any:
    from .progress import Reporter, Silent

    return Silent() if quiet else Reporter(False, log_every)


def train(config: ConfigLike, *, overrides: Optional[Sequence[str]] = None,
          runs_dir: Union[str, "os.PathLike[str]"] = "runs", name: Optional[str] = None,
          quiet: bool = True) -> "Run":
    """Train one run (as ``rnnlab train``) and return it. ``config``: a YAML path, a mapping with
    the config's sections, or an ``Experiment``; ``overrides``: dotted ``KEY=VALUE`` strings."""
    from .allocator import keep_freed_memory
    from .distributed import run_training

    keep_freed_memory()
    exp = experiment(config, overrides, name)
    reporter = _reporter(quiet, exp.train.log_every)
    with invoked_as(_call("train", config, overrides, name)):
        try:
            run_dir = run_training(exp, Path(runs_dir), reporter)
        finally:
            reporter.close()
    return Run(run_dir)


def load_run(path: Union[str, "os.PathLike[str]"]) -> "Run":
    """An existing run directory (checked to be one)."""
    from . import runs

    run_dir = runs.resolve_run(path)
    runs.read_summary(run_dir)  # a directory that is not a run fails here, in one line
    return Run(run_dir)


def sweep(config: Union[str, "os.PathLike[str]", Mapping[str, Any]], *,
          runs_dir: Union[str, "os.PathLike[str]"] = "runs", workers: int = 1,
          resume: Union[str, "os.PathLike[str]", None] = None, backend: str = "local",
          quiet: bool = True) -> "SweepResult":
    """Run a sweep (as ``rnnlab sweep``): ``config`` is a sweep file or the same as a mapping;
    ``resume``: a sweep directory whose unfinished trials to run (``config`` may then be None)."""
    from .sweeps.runner import Options, run_sweep
    from .sweeps.spec import parse_sweep

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


def _shown_type(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _device(device: Optional[str]) -> str:
    """``device`` checked as the CLI checks ``--device`` (default cpu)."""
    from .runtime import check_device

    return check_device("cpu" if device is None else device, "device")


def _call(verb: str, config: Any, overrides: Optional[Sequence[str]], name: Optional[str]) -> str:
    shown = (repr(os.fspath(config)) if isinstance(config, (str, os.PathLike))
             else f"<{type(config).__name__}>")
    extra = (f", overrides={list(overrides)!r}" if overrides else "") + (f", name={name!r}" if name else "")
    return f"rnnlab.{verb}({shown}{extra})"


@dataclass
class Run:
    """A run directory, read from its own files (each attribute is read when asked for, so a run
    still training shows its progress)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config the run was trained with (``config.yaml``)."""
        from . import runs
        from .config import read_yaml

        return read_yaml(self.path / runs.CONFIG)

    @property
    def summary(self) -> dict[str, Any]:
        from . import runs

        return runs.read_summary(self.path)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One row per epoch (``metrics.jsonl``): train loss, validation metrics, lr, grad norms."""
        from . import runs

        return runs.read_metrics(self.path)

    def model(self, checkpoint: str = "best", device: Optional[str] = None) -> "torch.nn.Module":
        """The run's model, built from its config, with ``checkpoint`` ("best" or "last") loaded,
        in eval mode."""
        from .evaluation import load_run as load

        _check_checkpoint(checkpoint)
        _, _, _, model, _ = load(self.path, checkpoint, _device(device))
        return model.eval()

    def evaluate(self, split: str = "test", checkpoint: str = "best",
                 device: Optional[str] = None) -> dict[str, float]:
        """The task's metrics on ``split`` (as ``rnnlab eval``)."""
        from .evaluation import evaluate_run

        _check_checkpoint(checkpoint)
        if split not in ("train", "val", "test"):
            raise ConfigError("split", f"must be train, val or test, got {split!r}")
        return evaluate_run(self.path, split, checkpoint, _device(device))

    def predict(self, texts: Union[str, Sequence[str]], checkpoint: str = "best",
                device: Optional[str] = None) -> list[Any]:
        """Text classification runs: a ``Prediction`` (label, probability, all probabilities) per text."""
        from .predict import predict

        _check_checkpoint(checkpoint)
        return predict(self.path, [texts] if isinstance(texts, str) else list(texts),
                       checkpoint=checkpoint, device=_device(device))

    def generate(self, prefix: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None, checkpoint: str = "best",
                 device: Optional[str] = None) -> str:
        """Char-LM runs: ``prefix`` followed by ``length`` sampled characters."""
        from .generate import generate_run

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

    def runs(self) -> list[Run]:
        """The trials' run directories, best first (trials that never started have none)."""
        return [Run(Path(r.run)) for r in self.trials if r.run]

"""Shell completion (``rnnlab --install-completion``): registry names, fixed choices, run
directories and run ids, YAML config files. Each completer takes ``(ctx, incomplete)`` as Typer's
``autocompletion=`` callbacks do and returns candidates (Typer keeps those starting with
``incomplete``). Runs and files are found by listing folders only, without importing torch;
registry names come from the registries themselves (plugins' included)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

RUN_MARKER = "config.yaml"  # runs.CONFIG (rnnlab.rundir.files imports torch; a test keeps them equal)
SWEEP_MARKER = "sweep.yaml"  # sweeps.runner.SWEEP_FILE (likewise)
NOT_RUNS = {"checkpoints", "plots", "logs", "trials", "tensorboard", "results", "export"}
MAX_DEPTH = 3  # runs/<run>, runs/<sweep>/<run>, one level more (as `rnnlab runs` looks)
STATUSES = ("completed", "running", "interrupted", "diverged", "failed")
# sweeps.runner.BACKENDS (importing the runner would import the command line back: an import
# cycle, and torch; a test keeps the two equal)
BACKENDS = ("local", "ray", "slurm", "submitit-local")
CONFIG_SUFFIXES = (".yaml", ".yml")

Completer = Callable[[Any, str], list]


def choices(*values: str) -> Completer:
    """A completer offering fixed values, e.g. ``choices("cpu", "cuda", "auto")``."""

    def complete(ctx: Any, incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _registry(*kinds: str) -> Completer:
    def complete(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
        from rnnlab.cli.catalog import entries

        try:
            found = [(name, f"{kind}: {text}") for kind, name, text, _ in entries() if kind in kinds]
        except Exception:  # a broken plugin must not break the user's shell
            return []
        return [(name, help) for name, help in found if name.startswith(incomplete)]

    return complete


registry_names = _registry("task", "model", "optimizer", "scheduler")
models_and_tasks = _registry("model", "task")
task_names = _registry("task")
model_names = _registry("model")
statuses = choices(*STATUSES)
devices = choices("cpu", "cuda", "auto")
checkpoints = choices("best", "last")


backends = choices(*BACKENDS)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in NOT_RUNS)
    except OSError:
        return []


def _runs_under(folder: Path, depth: int = 1) -> Iterator[Path]:
    """Run directories under ``folder``, sweeps' trial runs included, newest (by name) first."""
    for child in reversed(_children(folder)):
        if (child / RUN_MARKER).is_file():
            yield child
        elif depth < MAX_DEPTH:
            yield from _runs_under(child, depth + 1)


def _runs_dir(ctx: Any) -> Path:
    given = (getattr(ctx, "params", None) or {}).get("runs_dir")
    return Path(given) if given else Path("runs")


def _listing(incomplete: str, keep: Callable[[Path], Optional[str]]) -> list[str]:
    """Entries of the folder typed so far (``configs/`` in ``configs/ls``), as typed, for which
    ``keep`` gives a suffix ("" for a file, "/" for a folder to go into) rather than None."""
    folder_text, _, typed_name = incomplete.rpartition("/")
    folder = Path(os.path.expanduser(folder_text or "/")) if "/" in incomplete else Path(".")
    prefix = folder_text + "/" if "/" in incomplete else ""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    out = []
    for child in children:
        if child.name.startswith(".") and not typed_name.startswith("."):
            continue
        suffix = keep(child)
        if suffix is not None:
            out.append(prefix + child.name + suffix)
    return out


def _run_or_folder(path: Path) -> Optional[str]:
    if not path.is_dir() or path.name in NOT_RUNS:
        return None
    return "" if (path / RUN_MARKER).is_file() else "/"


def run_dirs(ctx: Any, incomplete: str) -> list[str]:
    """Run directories as paths: before a ``/`` is typed, every run in the runs folder
    (``--runs-dir``, else ``./runs``); then the runs and folders in the folder typed so far."""
    out = [str(p) for p in _runs_under(_runs_dir(ctx))] if "/" not in incomplete else []
    out += _listing(incomplete, _run_or_folder)
    return [c for c in dict.fromkeys(out) if c.startswith(incomplete)]


def run_ids(ctx: Any, incomplete: str) -> list[str]:
    """Run ids in the runs folder (the paths under it, relative to it), then run directories."""
    root = _runs_dir(ctx)
    ids = [str(p.relative_to(root)) for p in _runs_under(root)]
    return list(dict.fromkeys([i for i in ids if i.startswith(incomplete)] + run_dirs(ctx, incomplete)))


def _config_or_folder(path: Path) -> Optional[str]:
    if path.is_dir():
        return "/"
    return "" if path.suffix.lower() in CONFIG_SUFFIXES else None


def config_files(ctx: Any, incomplete: str) -> list[str]:
    """``*.yaml``/``*.yml`` files and folders (ending in ``/``) in the folder typed so far."""
    return [c for c in _listing(incomplete, _config_or_folder) if c.startswith(incomplete)]


def _sweep_or_folder(path: Path) -> Optional[str]:
    if not path.is_dir() or path.name in NOT_RUNS:
        return None
    return "" if (path / SWEEP_MARKER).is_file() or (path / RUN_MARKER).is_file() else "/"


def runs_and_sweeps(ctx: Any, incomplete: str) -> list[str]:
    """Run directories (as ``run_dirs``) and sweep directories (in the runs folder, and in the
    folder typed so far)."""
    root = _runs_dir(ctx)
    sweeps = [] if "/" in incomplete else [str(p) for p in _children(root) if (p / SWEEP_MARKER).is_file()]
    out = run_dirs(ctx, incomplete) + sweeps + _listing(incomplete, _sweep_or_folder)
    return [c for c in dict.fromkeys(out) if c.startswith(incomplete)]


def sources(ctx: Any, incomplete: str) -> list[str]:
    """``gradflow``'s arguments: config files and run directories."""
    return list(dict.fromkeys(config_files(ctx, incomplete) + run_dirs(ctx, incomplete)))

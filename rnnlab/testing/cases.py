"""The tiny configurations the checker builds tasks and models with ("cases"): a few per built-in
task (every mode whose spec differs), on data that needs no download: generated series, the
built-in CO2 record, corpus and sentence set, and a fake MNIST written into a temporary folder.

A task of a plugin is checked with its default options, unless its class has a classmethod
``check_configs(folder: Path) -> list[dict]``: each dict holds ``task`` and optionally ``data``
sections, a ``label`` and the ``model`` to build the task with (data it needs may be written
into ``folder``, which is removed after the check).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from rnnlab.config.loading import Experiment, build_experiment
from rnnlab.errors import ConfigError

#: the train section of every experiment the checker builds (one thread: checks are small)
TRAIN: dict[str, Any] = {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "lr": 0.01, "seed": 0,
                         "threads": 1, "device": "cpu"}
#: model options that keep a check fast, used where the model's options have these fields
SMALL: dict[str, Any] = {"hidden_size": 8, "embedding_dim": 8, "hidden_sizes": [8]}


@dataclass(frozen=True)
class Case:
    task: str  # registry name
    label: str  # how findings name it, e.g. "sine (mode: window)"
    sections: dict[str, Any] = field(default_factory=dict)  # task and data sections
    model: str = "lstm"  # the model a task check builds the task with (a spec may depend on it)

    def raw(self, model: dict[str, Any]) -> dict[str, Any]:
        raw = {"name": "check", "task": dict(self.sections.get("task") or {"name": self.task}),
               "data": dict(self.sections.get("data") or {}), "model": dict(model),
               "train": dict(TRAIN), "logging": {"plots": False}}
        raw["task"].setdefault("name", self.task)
        return raw


# ----------------------------------------------------------------------------- built-in cases


def _sine(folder: Path) -> list[Case]:
    base = {"name": "sine", "n_points": 200}
    return [
        Case("sine", "sine (mode: window)", {"task": {**base, "mode": "window", "window": 4}}),
        Case("sine", "sine (mode: seq2seq)", {"task": {**base, "mode": "seq2seq", "seq_len": 20,
                                                        "stride": 5, "warmup": 2}}),
        Case("sine", "sine (mode: rollout)", {"task": {**base, "mode": "rollout", "window": 4,
                                                        "horizon": 3}}),
    ]


def _series(folder: Path) -> list[Case]:
    base = {"name": "series", "lookback": 24, "horizon": 6, "period": 12}
    data = {"fill": "interpolate"}  # the built-in CO2 record has five empty months
    return [
        Case("series", "series (mode: direct)", {"task": {**base, "mode": "direct"}, "data": data}, "linear"),
        Case("series", "series (mode: rollout)", {"task": {**base, "mode": "rollout"}, "data": data}),
        Case("series", "series (mode: encoder_decoder)",
             {"task": {**base, "mode": "encoder_decoder"}, "data": data}, "seq2seq"),
    ]


def _mnist(folder: Path) -> list[Case]:
    root = folder / "mnist"
    if not (root / "MNIST" / "raw").is_dir():
        write_fake_mnist(root)
    return [Case("mnist", "mnist (sequence: rows, fake images)",
                 {"task": {"name": "mnist", "sequence": "rows", "val_size": 20},
                  "data": {"root": str(root), "download": False}})]


def _charlm(folder: Path) -> list[Case]:
    task = {"name": "charlm", "bptt": 16, "eval_streams": 4, "eval_chunk": 64, "samples": 0}
    data = {"corpus": "python_docs", "max_chars": 6000}
    return [Case("charlm", f"charlm (batching: {b})", {"task": {**task, "batching": b}, "data": data})
            for b in ("random", "sequential")]


def _sentiment(folder: Path) -> list[Case]:
    return [Case("sentiment", "sentiment (built-in tiny set)", {"task": {"name": "sentiment"}})]


def _memory(name: str, **options: Any) -> Callable[[Path], list[Case]]:
    def cases(folder: Path) -> list[Case]:
        task = {"name": name, "n_train": 64, "n_val": 40, "n_test": 40, **options}
        return [Case(name, f"{name} (length: {options['length']}, generated)", {"task": task})]
    return cases


BUILTIN: dict[str, Callable[[Path], list[Case]]] = {
    "sine": _sine, "series": _series, "mnist": _mnist, "charlm": _charlm, "sentiment": _sentiment,
    "adding": _memory("adding", length=30), "copy": _memory("copy", length=12, n_tokens=6),
    "selective_copy": _memory("selective_copy", length=24, n_tokens=6, symbols=8, noise=3),
}


def cases_for(task: str, folder: Path) -> list[Case]:
    """The cases of a registered task (``folder``: where fake data may be written)."""
    from rnnlab.registry import TASKS

    cls = TASKS.get(task, "task")
    own = getattr(cls, "check_configs", None)
    if callable(own):
        out = []
        for i, entry in enumerate(own(folder)):
            if not isinstance(entry, dict) or not isinstance(entry.get("task", {}), dict):
                raise ConfigError(f"task '{task}': check_configs", f"entry {i} must be a mapping with "
                                  "a 'task' mapping (and optionally 'data', 'label', 'model')")
            sections = {"task": {"name": task, **entry.get("task", {})}, "data": entry.get("data") or {}}
            out.append(Case(task, str(entry.get("label") or f"{task} (config {i})"), sections,
                            str(entry.get("model") or "lstm")))
        return out
    if task in BUILTIN and cls.__module__.startswith("rnnlab."):
        return BUILTIN[task](folder)
    return [Case(task, task, {"task": {"name": task}})]


def all_cases(folder: Path, only: Optional[str] = None) -> list[Case]:
    from rnnlab.registry import TASKS

    names = [only] if only is not None else TASKS.names()
    return [case for name in names for case in cases_for(name, folder)]


# ----------------------------------------------------------------------------- experiments


def model_section(model: str, options: Optional[dict[str, Any]], small: bool) -> dict[str, Any]:
    """``{"name": model, ...}``: the given options over the SMALL sizes (where the model has them)."""
    from rnnlab.registry import MODELS

    fields = MODELS.get(model, "model").Options.model_fields
    section: dict[str, Any] = {k: v for k, v in SMALL.items() if small and k in fields}
    section.update(options or {})
    section["name"] = model
    return section


def sections(model: str, options: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """The model sections to try, in order: over the SMALL sizes, then (if that differs) over the
    model's own defaults, for a model that refuses the small sizes."""
    small, plain = model_section(model, options, True), model_section(model, options, False)
    return [small] if small == plain else [small, plain]


def experiment(case: Case, model: str, options: Optional[dict[str, Any]] = None) -> Experiment:
    """The case's experiment with ``model`` (small sizes where the options allow them)."""
    where = f"check case '{case.label}'"
    tries = sections(model, options)
    for section in tries[:-1]:
        try:
            return build_experiment(case.raw(section), where)
        except ConfigError:
            pass
    return build_experiment(case.raw(tries[-1]), where)


# ----------------------------------------------------------------------------- fake MNIST


def write_fake_mnist(root: Path, n_train: int = 80, n_test: int = 40, seed: int = 0) -> Path:
    """Four IDX files in torchvision's layout (``root/MNIST/raw``): faint noise with a bright bar
    whose row depends on the digit, so a few steps learn it. Every image differs from every other."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.randint(0, 10, (n,), generator=gen)
        images = torch.randint(0, 60, (n, 28, 28), generator=gen, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):
            images[i, 2 * label + 4:2 * label + 6, 4:24] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x0803, n, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, n) + labels.to(torch.uint8).numpy().tobytes())
    return root

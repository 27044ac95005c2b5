"""Sentence classification's files and splits: the vocabulary and label list a run saves
(``vocab.json``, ``labels.json``, read back by ``eval``, ``predict`` and inference without the data),
the label order, the stratified carving of a split out of the training data and the length-bucketed
training batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from rnnlab.errors import RunDirError
from rnnlab.tasks.text import Vocab
from rnnlab.tasks.text_files import Row, is_integer

VOCAB_FILE, LABELS_FILE = "vocab.json", "labels.json"
BUCKET_POOL = 50  # batches drawn together, then sorted by length and cut: little padding, still random


@dataclass(frozen=True)
class Example:
    tokens: list[str]
    label: int


def label_order(rows: list[Row]) -> list[str]:
    """Classes from the labels seen: numerically when every label is an integer, else sorted."""
    labels = {row.label for row in rows}
    if all(is_integer(label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def carve(examples: list[Example], fraction: float, gen: torch.Generator
          ) -> tuple[list[Example], list[Example]]:
    """(taken, rest): ``fraction`` of each class drawn with ``gen``; both keep the input order."""
    labels = torch.tensor([ex.label for ex in examples], dtype=torch.int64)
    take = torch.zeros(len(examples), dtype=torch.bool)
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        take[members[:round(len(members) * fraction)]] = True
    flags = take.tolist()
    return ([ex for ex, t in zip(examples, flags) if t], [ex for ex, t in zip(examples, flags) if not t])


def bucketed(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of similar length: shuffle, sort each pool of ``BUCKET_POOL`` batches by
    length, cut it into batches, and visit all batches in a random order."""
    order = torch.randperm(len(lengths), generator=generator)
    batches: list[torch.Tensor] = []
    for pool in order.split(batch_size * BUCKET_POOL):
        batches.extend(pool[torch.argsort(lengths[pool], stable=True)].split(batch_size))
    for i in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[i]


def load_artifacts(run_dir: Path) -> tuple[Vocab, list[str]]:
    def read(name: str) -> Any:
        path = run_dir / name
        if not path.is_file():
            raise RunDirError(path, f"{name} is missing (the vocabulary and labels the model was "
                              "trained with)")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunDirError(path, "corrupted (not valid JSON)") from None

    try:
        vocab = Vocab.from_json(read(VOCAB_FILE))
    except ValueError as exc:
        raise RunDirError(run_dir / VOCAB_FILE, f"not a vocabulary: {exc}") from None
    labels = read(LABELS_FILE)
    classes = labels.get("classes") if isinstance(labels, dict) else None
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise RunDirError(run_dir / LABELS_FILE, "expected {\"classes\": [two or more label names]}")
    return vocab, classes

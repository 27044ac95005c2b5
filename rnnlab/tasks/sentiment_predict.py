"""``rnnlab predict``: classify new sentences with a finished run's own vocabulary, labels and
weights (loaded by ``rnnlab.execution.inference``; the training data files are not needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch

from rnnlab.common.safeio import MAX_LINE_CHARS, MAX_TEXT_FILE_BYTES
from rnnlab.errors import DataError, RunDirError
from rnnlab.tasks.text_files import decode

if TYPE_CHECKING:
    from rnnlab.models.base import Model


@dataclass(frozen=True)
class Prediction:
    text: str
    label: str
    probability: float
    probabilities: dict[str, float]


def read_sentences(path: Path, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(where, text) for every non-blank line of a file, one sentence per line: a regular file of
    at most ``MAX_TEXT_FILE_BYTES``, lines of at most ``MAX_LINE_CHARS`` characters."""
    lines = decode(path, encoding, MAX_TEXT_FILE_BYTES, "sentence file", None).split("\n")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise DataError(path, f"line {number} is too long ({len(line)} characters; the limit is "
                            f"{MAX_LINE_CHARS}, one sentence per line)")
    out = [(f"{path} line {number}", line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
    if not out:
        raise DataError(path, "no sentences (the file is empty or blank)")
    return out


def sentences(texts: list[str], file: Optional[Path] = None) -> list[tuple[str, str]]:
    """(where, text) of every sentence to classify: the arguments first, then the file's lines."""
    items = [(f"text {i}", text) for i, text in enumerate(texts, 1)]
    if file is not None:
        items += read_sentences(file)
    if not items:
        raise DataError("predict", "nothing to classify: give sentences as arguments or --file")
    return items


def classify(run_dir: Path, task_name: str, task: Any, model: "Model", items: list[tuple[str, str]]
             ) -> list[Prediction]:
    """``rnnlab predict`` on a loaded run: the label and probabilities of each ``(where, text)``."""
    if not hasattr(task, "probabilities"):
        raise RunDirError(run_dir, f"predict needs a text classification run; this run's task is "
                          f"'{task_name}'")
    tokens = [task.tokenize(text) for _, text in items]
    for (where, _), toks in zip(items, tokens):
        if not toks:
            raise DataError(where, "no tokens to classify")
    model.eval()
    with torch.no_grad():
        probs = task.probabilities(model, tokens).double().cpu()
    classes = task.classes
    return [Prediction(text, classes[int(p.argmax())], float(p.max()),
                       {label: float(v) for label, v in zip(classes, p.tolist())})
            for (_, text), p in zip(items, probs)]

"""Pretrained word vectors for token tasks (``model.embedding_vectors``): word2vec/GloVe text files
and fastText ``.vec``, optionally gzipped, with or without a ``N D`` header line.

Only the rows of the run's vocabulary (built on the training split, as without vectors) are kept
while the file streams by, so a multi-gigabyte file needs no more memory than the embedding. The
vectors overwrite those rows of the model's embedding; the other words keep their usual random
initialisation. The weights are then part of the model's state (checkpoints), so evaluation and
``predict`` never read the file again. A malformed file is one error naming its line, before the run
directory exists.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator, Optional

import torch

from rnnlab.common.safeio import check_regular_file
from rnnlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rnnlab.models.base import Model
    from rnnlab.tasks.base import Task

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Vectors:
    """The vectors found for the vocabulary: ``rows`` (vocabulary id -> vector) of ``dim`` numbers."""

    path: Path
    dim: int
    rows: dict[int, list[float]]
    sha256: str


def open_text(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip (by its first bytes, whatever its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, decoded as UTF-8 (the formats' encoding)."""
    try:
        with open_text(path) as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8").rstrip()
                except UnicodeDecodeError:
                    raise DataError(f"{path}: line {number}", "not UTF-8 text (word vectors files are "
                                    "UTF-8)") from None
                if line:
                    yield number, line
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, f"cannot read the vectors file: {exc}") from None


def is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def read_vectors(path: Path, words: dict[str, int]) -> Vectors:
    """The vectors of ``words`` (word -> vocabulary id) in the file at ``path``. Every line must be a
    word and ``dim`` fields (the first line may be the ``N D`` header); the numbers of the
    vocabulary's words are parsed (finite floats), the other lines' only counted, for speed."""
    check_regular_file(path, "word vectors file")
    dim: Optional[int] = None
    rows: dict[int, list[float]] = {}
    for number, line in numbered_lines(path):
        fields = line.split()
        if number == 1 and is_header(fields):
            dim = int(fields[1])
            if dim < 1:
                raise DataError(f"{path}: line 1", "the header's dimension must be at least 1")
            continue
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise DataError(f"{path}: line {number}", "expected a word and its vector's numbers, got "
                                f"one field {fields[0][:40]!r}")
        word = line_word(fields, dim, f"{path}: line {number}")
        index = words.get(word)
        if index is not None and index not in rows:  # a repeated word: its first vector counts
            rows[index] = parse_numbers(fields[-dim:], f"{path}: line {number}")
    if dim is None:
        raise DataError(path, "the vectors file holds no vectors")
    return Vectors(path, dim, rows, file_sha256(path))


def line_word(fields: list[str], dim: int, where: str) -> str:
    """The word of a line split into ``fields``: all but the last ``dim`` fields (a few GloVe words
    hold spaces), refusing a line with too few numbers or with more than ``dim``."""
    head = fields[:-dim] if len(fields) > dim else []
    if not head or (len(head) > 1 and is_float(head[-1])):
        raise DataError(where, f"expected a word and {dim} numbers, got {len(fields)} field(s)")
    return " ".join(head)


def parse_numbers(numbers: list[str], where: str) -> list[float]:
    try:
        vector = [float(n) for n in numbers]
    except ValueError:
        bad = next(n for n in numbers if not is_float(n))
        raise DataError(where, f"{bad[:40]!r} is not a number") from None
    if not all(math.isfinite(v) for v in vector):
        raise DataError(where, "the vector holds a non-finite number (nan or inf)")
    return vector


def is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def vocabulary_words(task: "Task") -> dict[str, int]:
    """word -> id of the task's vocabulary, without its special tokens (padding, unknown)."""
    words = task.embedding_words()
    if words is None:
        raise ConfigError("model.embedding_vectors", f"task {type(task).__name__} has no vocabulary of "
                          "words to look up")
    return {word: i for i, word in enumerate(words) if word is not None}


def load_into(model: "Model", task: "Task", source: str) -> dict[str, Any]:
    """Read ``source`` (``model.embedding_vectors``), copy the vocabulary's vectors into the model's
    embedding and return what the summary records: ``{path, sha256, coverage}``."""
    embed = getattr(model, "embed", None)
    if not isinstance(embed, torch.nn.Embedding):
        raise ConfigError("model.embedding_vectors", f"model {model.options.name!r} has no token embedding")
    words = vocabulary_words(task)
    path = Path(source).expanduser()
    vectors = read_vectors(path, words)
    if vectors.dim != embed.embedding_dim:
        raise ConfigError("model.embedding_dim", f"is {embed.embedding_dim}, but the vectors in {path} have "
                          f"{vectors.dim} dimensions; set model.embedding_dim: {vectors.dim}")
    if vectors.rows:
        ids = torch.tensor(sorted(vectors.rows), dtype=torch.int64)
        values = torch.tensor([vectors.rows[i] for i in ids.tolist()], dtype=embed.weight.dtype)
        with torch.no_grad():
            embed.weight[ids.to(embed.weight.device)] = values.to(embed.weight.device)
    coverage = len(vectors.rows) / len(words) if words else 0.0
    return {"path": str(path.resolve()), "sha256": vectors.sha256, "coverage": round(coverage, 6)}

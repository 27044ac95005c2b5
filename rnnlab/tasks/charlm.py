"""Character-level language modelling: predict every next character of a text.

The corpus (a text file, Tiny Shakespeare or the built-in Python docs, see ``rnnlab.tasks.charlm_corpora``) is
split by position into train/val/test (default 90/5/5). The vocabulary is the set of Unicode code
points of the training part plus ``<unk>`` (id 0), which stands for any other character; it is saved
as ``vocab.json`` in the run. The whole text lives in one int64 tensor and batches are made by
indexing it.

Training windows are ``task.bptt`` characters, drawn by one of d2l's two schemes:

- ``random``: each pass starts at a random offset in [0, bptt), cuts the train split into
  non-overlapping windows from there and visits them in a random order; every window starts from a
  zero state.
- ``sequential``: each pass starts at a random offset and cuts the train split into ``batch_size``
  contiguous rows; batch k+1 continues every row exactly where batch k stopped, and the trainer
  carries the hidden state across batches, detached (truncated BPTT). The state is reset at the start
  of every pass and every epoch.

Validation and test score *every* character of their split once: the split is cut into
``eval_streams`` contiguous streams read side by side in chunks of ``eval_chunk`` characters with
the state carried from chunk to chunk; each stream starts from a zero state, reading the character
just before it as context. Metrics: ``loss`` (mean nats per character), ``bpc`` (bits per
character), ``perplexity`` and ``chars`` (characters scored).
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Optional

import numpy as np
import torch
from pydantic import Field, model_validator

from rnnlab.errors import ConfigError, DataError, RunDirError
from rnnlab.registry import TASKS
from rnnlab.rundir.files import write_json
from rnnlab.tasks import charlm_corpora as corpora
from rnnlab.tasks.base import (
    Batch,
    DataOptions,
    Encoding,
    Task,
    TaskContext,
    TaskOptions,
    TaskSpec,
    cache_dir,
    data_root,
)
from rnnlab.tasks.charlm_checks import CharLMChecks
from rnnlab.tasks.charlm_generate import describe_char, sample

if TYPE_CHECKING:
    from rnnlab.models.base import Model

VOCAB = "vocab.json"
SAMPLES = "samples.txt"
UNK = "<unk>"
IGNORE = -100  # target id of padding in evaluation streams (cross_entropy's ignore_index)


class CharLMOptions(TaskOptions):
    name: Literal["charlm"] = "charlm"
    bptt: int = Field(64, gt=0, description="characters per training window (truncated BPTT length)")
    batching: Literal["random", "sequential"] = Field(
        "random", description="random windows, or rows continued across batches with state carried")
    val_fraction: float = Field(0.05, gt=0, lt=1, description="the part of the text after train")
    test_fraction: float = Field(0.05, ge=0, lt=1, description="the end of the text; 0: test = val")
    eval_streams: int = Field(16, gt=0, description="val/test: contiguous streams read side by side")
    eval_chunk: int = Field(512, gt=0, description="val/test: characters per forward call, state carried")
    samples: int = Field(3, ge=0, description="samples written to samples.txt after training")
    sample_length: int = Field(300, ge=0, description="new characters per sample")
    sample_prefix: Optional[str] = Field(
        None, min_length=1, description="text the samples continue (default: a newline, if the text has one)")

    @model_validator(mode="after")
    def _check(self) -> "CharLMOptions":
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self


class CharLMData(DataOptions):
    corpus: Optional[Literal["python_docs", "tinyshakespeare"]] = Field(
        None, description="a named corpus (default python_docs, built in, unless data.path is set)")
    path: Optional[str] = Field(None, description="a text file")
    encoding: Encoding = Field("utf-8", description="the text file's encoding")
    download: bool = Field(False, description="tinyshakespeare: fetch it once if not found")
    max_chars: Optional[int] = Field(None, gt=0, description="use only the first max_chars characters")

    @model_validator(mode="after")
    def _one_source(self) -> "CharLMData":
        if self.path is not None and self.corpus is not None:
            raise ValueError("corpus: give data.path or data.corpus, not both")
        if self.path is None and self.corpus is None:
            self.corpus = "python_docs"  # written out in the run's resolved config
        if self.download and self.corpus != "tinyshakespeare":
            raise ValueError("download: only data.corpus: tinyshakespeare can be downloaded")
        return self


# ----------------------------------------------------------------------------- vocabulary


class Vocab:
    """Id 0 is ``<unk>``; ids 1.. are the known characters in code-point order."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = sorted(chars)
        self.itos = [UNK, *self.chars]
        self._points = np.array([ord(c) for c in self.chars], dtype=np.int64)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        """int64 ids, unknown characters -> 0; vectorised (a million characters in milliseconds)."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        if len(self._points) == 0:
            return torch.zeros(len(points), dtype=torch.int64)
        pos = np.minimum(np.searchsorted(self._points, points), len(self._points) - 1)
        ids = np.where(self._points[pos] == points, pos + 1, 0)
        return torch.from_numpy(ids.astype(np.int64))

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, in order of appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Text for ids; ``<unk>`` becomes U+FFFD so there is one character per id."""
        return "".join("\ufffd" if i == 0 else self.itos[i] for i in (int(i) for i in ids))

    def to_json(self, corpus: dict[str, Any]) -> dict[str, Any]:
        return {"unknown": UNK, "unknown_id": 0, "size": len(self), "chars": self.chars, "corpus": corpus}

    @classmethod
    def load(cls, path: Path) -> tuple["Vocab", dict[str, Any]]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            chars = data["chars"]
            if not all(isinstance(c, str) and len(c) == 1 for c in chars):
                raise ValueError("chars must be single characters")
            return cls(chars), data.get("corpus", {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirError(path, f"vocabulary is unreadable or corrupted ({exc})") from None


def shell_quote(text: str) -> str:
    """Quote for a POSIX shell on one line: bash's $'...' when the text has newlines or tabs."""
    if text.isprintable():
        return shlex.quote(text)
    escapes = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "'": "\\'", "\\": "\\\\"}
    body = "".join(escapes.get(c) or (c if c.isprintable() else f"\\u{ord(c):04x}") for c in text)
    return f"$'{body}'"


# ----------------------------------------------------------------------------- batching


def random_starts(n_chars: int, bptt: int, generator: torch.Generator) -> torch.Tensor:
    """Start positions of one pass of random windows: a random offset in [0, bptt), then
    non-overlapping windows in a random order. The count does not depend on the offset."""
    count = (n_chars - bptt) // bptt
    offset = int(torch.randint(bptt, (1,), generator=generator))
    return offset + bptt * torch.randperm(count, generator=generator)


def sequential_windows(n_chars: int, batch_size: int, bptt: int, offset: int) -> Iterator[torch.Tensor]:
    """(batch_size, bptt + 1) position tensors: row r reads its own contiguous stretch of the text
    and window w+1 starts exactly where window w ended (its last position is the next one's first:
    the target of the last step is the next window's first input)."""
    row_len = (n_chars - bptt) // batch_size  # so that any offset < bptt fits
    rows = offset + row_len * torch.arange(batch_size)
    steps = torch.arange(bptt + 1)
    for w in range(row_len // bptt):
        yield rows[:, None] + w * bptt + steps


def stream_positions(start: int, stop: int, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets ``start..stop-1`` as ``streams`` contiguous rows (lengths differing by at most one):
    (rows, L) target positions and a mask of the real ones (the rest is padding at row ends)."""
    count = stop - start
    streams = min(streams, count)
    lengths = torch.full((streams,), count // streams)
    lengths[: count % streams] += 1
    first = start + torch.cumsum(lengths, 0) - lengths
    steps = torch.arange(int(lengths.max()))
    positions = first[:, None] + steps
    mask = steps[None, :] < lengths[:, None]
    return positions.clamp(max=stop - 1), mask


# ----------------------------------------------------------------------------- the task


@TASKS.register("charlm", "character-level language modelling: any text, Tiny Shakespeare, built-in corpus")
class CharLM(CharLMChecks, Task):
    Options = CharLMOptions
    DataOptions = CharLMData
    options: CharLMOptions
    data: CharLMData

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        self._ids: Optional[torch.Tensor] = None
        self._bounds: dict[str, tuple[int, int]] = {}
        self.corpus_info: dict[str, Any] = {}
        saved = self.run_dir / VOCAB if self.run_dir is not None else None
        if saved is not None and saved.is_file():
            # a trained run: its own vocabulary; the text is read only when evaluation needs it
            self.vocab, self.corpus_info = Vocab.load(saved)
        else:
            self.vocab = None  # type: ignore[assignment]
            self._load()  # now, so bad data fails before anything is written
        size = len(self.vocab)
        self.spec = TaskSpec(input_kind="tokens", input_size=size, output_size=size, output="sequence",
                             causal=True, metric="loss", mode="min",
                             stateful=self.options.batching == "sequential")
        unknown = self.vocab.unknown(self.options.sample_prefix or "")
        if unknown:
            raise ConfigError("task.sample_prefix", f"character {describe_char(unknown[0])} is not in "
                              f"the vocabulary of the training text")

    def sample_prefix(self) -> str:
        """``task.sample_prefix``, else a newline (samples start a line), else the first known
        character."""
        if self.options.sample_prefix:
            return self.options.sample_prefix
        return "\n" if "\n" in self.vocab.chars else self.vocab.chars[0]

    # ------------------------------------------------------------------ data
    def read_corpus(self) -> corpora.Corpus:
        d = self.data
        if d.path is not None:
            corpus = corpora.read_text_file(Path(d.path).expanduser(), d.encoding, f"data.path: {d.path}")
        elif d.corpus == "tinyshakespeare":
            corpus = corpora.tiny_shakespeare(data_root(d), cache_dir(), d.download)
        else:
            corpus = corpora.python_docs()
        if d.max_chars is not None and d.max_chars < len(corpus.text):
            text = corpus.text[: d.max_chars]
            corpus = corpora.Corpus(text, f"{corpus.source} (first {d.max_chars:,} characters)",
                                    corpora.sha256_text(text))
        return corpus

    def _load(self) -> None:
        corpus = self.read_corpus()
        trained_on = self.corpus_info.get("sha256")
        if trained_on is not None and trained_on != corpus.sha256:
            raise DataError(corpus.source, "this text differs from the one the run was trained on "
                            f"(SHA-256 {corpus.sha256[:12]}..., the run's {trained_on[:12]}...)")
        text, o = corpus.text, self.options
        n = len(text)
        n_val, n_test = round(n * o.val_fraction), round(n * o.test_fraction)
        a, b = n - n_val - n_test, n - n_test
        self.check_sizes(corpus.source, a, n_val)
        self._bounds = {"train": (0, a), "val": (a, b), "test": (b, n) if n_test else (a, b)}
        if self.vocab is None:
            self.vocab = Vocab.from_text(text[:a])
        self.corpus_info = {"source": corpus.source, "sha256": corpus.sha256, "chars": n}
        self._ids = self.vocab.encode(text).to(self.device)

    def check_sizes(self, where: str, n_train: int, n_val: int) -> None:
        o, batch = self.options, self.batch_size
        if n_val < 1:
            raise DataError(where, "the text leaves no validation characters (raise task.val_fraction "
                            "or use a longer text)")
        need = o.bptt * (batch + 1) if o.batching == "sequential" else 2 * o.bptt
        if n_train < need:
            raise DataError(where, f"the train split has {n_train} characters, too few for task.bptt="
                            f"{o.bptt} with batching '{o.batching}' (needs {need}; lower task.bptt"
                            + (" or train.batch_size" if o.batching == "sequential" else "") + ")")

    @property
    def ids(self) -> torch.Tensor:
        """The whole text as ids on the device (read on first use when loaded from a run)."""
        if self._ids is None:
            self._load()
        assert self._ids is not None
        return self._ids

    @property
    def bounds(self) -> dict[str, tuple[int, int]]:
        """[start, stop) of each split in the text; test = val when task.test_fraction is 0."""
        if not self._bounds:
            self._load()
        return self._bounds

    # ------------------------------------------------------------------ training
    def steps_per_epoch(self, batch_size: int) -> int:
        n_train, bptt = self.bounds["train"][1], self.options.bptt
        if self.options.batching == "sequential":
            return (n_train - bptt) // batch_size // bptt
        return math.ceil((n_train - bptt) // bptt / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        ids, bptt, n_train = self.ids, self.options.bptt, self.bounds["train"][1]
        if self.options.batching == "sequential":
            offset = int(torch.randint(bptt, (1,), generator=generator))
            windows = sequential_windows(n_train, batch_size, bptt, offset)
        else:
            starts = random_starts(n_train, bptt, generator)
            steps = torch.arange(bptt + 1)
            windows = (starts[i:i + batch_size, None] + steps for i in range(0, len(starts), batch_size))
        for k, positions in enumerate(windows):
            chunk = ids[positions.to(self.device)]
            yield Batch(chunk[:, :-1], chunk[:, 1:], extra={"reset_state": k == 0})

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))

    def tokens(self, batch: Batch) -> int:
        return int(batch.y.numel())

    def tokens_per_step(self, batch_size: int) -> int:
        return batch_size * self.options.bptt

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        """Every character of the split scored once (see the module docstring); ``batch_size`` is
        not used: ``task.eval_streams`` sets the width."""
        ids = self.ids
        start, stop = self.bounds[split]
        first = max(start, 1)  # the text's very first character has nothing to be predicted from
        positions, mask = stream_positions(first, stop, self.options.eval_streams)
        positions = positions.to(self.device)
        x = ids[positions - 1]
        y = ids[positions].masked_fill(~mask.to(self.device), IGNORE)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        state = None
        for c in range(0, x.shape[1], self.options.eval_chunk):
            out, state = model(x[:, c:c + self.options.eval_chunk], None, state)
            target = y[:, c:c + self.options.eval_chunk]
            total += torch.nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), target.reshape(-1), ignore_index=IGNORE,
                reduction="sum").double()
        chars = int(mask.sum())
        loss = total.item() / chars
        return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss), "chars": float(chars)}

    # ------------------------------------------------------------------ artifacts
    def save_artifacts(self, run_dir: Path) -> None:
        write_json(run_dir / VOCAB, self.vocab.to_json(self.corpus_info))

    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        from rnnlab.common.plots import bpc_curve

        return [bpc_curve(history, run_dir / "plots" / "bpc.png")]

    def final_outputs(self, model: "Model", run_dir: Path) -> list[Path]:
        """``samples.txt``: a few samples, each headed by the ``rnnlab generate`` command that
        reproduces it exactly."""
        from rnnlab.rundir.files import write_text

        o = self.options
        if o.samples == 0:
            return []
        temperature, prefix = 0.8, self.sample_prefix()
        parts = []
        for seed in range(o.samples):
            text = sample(model, self.vocab, prefix, o.sample_length, temperature, None, seed)
            command = (f"rnnlab generate {shlex.quote(str(run_dir))} --prefix {shell_quote(prefix)} "
                       f"--length {o.sample_length} --temperature {temperature} --seed {seed}")
            parts.append(f"# {command}\n{text}\n")
        path = run_dir / SAMPLES
        write_text(path, "\n".join(parts))
        return [path]

    def sample_inputs(self, batch: int) -> torch.Tensor:
        """Test text: up to ``batch`` consecutive pieces of up to ``bptt`` characters."""
        start, stop = self.bounds["test"]
        steps = min(self.options.bptt, max(1, (stop - start) // batch))
        n = max(1, min(batch, (stop - start) // steps))
        return self.ids[start:start + n * steps].view(n, steps).cpu()

    def embedding_words(self) -> list[Optional[str]]:
        return [None, *self.vocab.chars]  # id 0 is <unk>

    def describe(self) -> dict[str, Any]:
        val_start, val_stop = self.bounds["val"]
        out: dict[str, Any] = {
            "corpus": self.corpus_info,
            "vocab_size": len(self.vocab),
            "batching": self.options.batching,
            "bptt": self.options.bptt,
        }
        for split, (start, stop) in self.bounds.items():
            out[split] = {"range": [start, stop], "chars": stop - start}
        if self.options.test_fraction == 0:
            out["test"] = {**out["test"], "note": "no test text (task.test_fraction 0): test = val"}
        out["val"]["unknown_chars"] = int((self.ids[val_start:val_stop] == 0).sum())
        return out

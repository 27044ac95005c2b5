"""Sentence classification (sentiment or any labels): one label per sentence.

Data: the tiny offline set shipped in ``rnnlab/data/sentiment_tiny.tsv`` (default), or TSV/CSV
files (``data.path``, split with a seed; or ``data.train`` with optional ``data.val``/``data.test``;
a split not given as a file is carved out of the training data, stratified by label). The
vocabulary is built on the training split only and, with the label list, saved in the run
directory (``vocab.json``, ``labels.json``) so ``eval`` and ``predict`` map text exactly as
training did.

Sentences keep their own lengths: batches carry ``lengths`` and the model packs them, so a
sentence's prediction does not depend on what it is batched with; training batches are bucketed
by length to cut padding.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Optional, Union

import torch
from pydantic import Field, field_validator, model_validator

from rnnlab.errors import ConfigError, DataError
from rnnlab.registry import TASKS
from rnnlab.rundir import files as runs
from rnnlab.tasks.base import (
    Batch,
    DataOptions,
    Encoding,
    Task,
    TaskContext,
    TaskOptions,
    TaskSpec,
    batch_indices,
    data_root,
)
from rnnlab.tasks.classify import classification_metrics, confusion_matrix
from rnnlab.tasks.sentiment_checks import SentimentChecks
from rnnlab.tasks.sentiment_data import (  # noqa: F401 - LABELS_FILE, VOCAB_FILE: re-exported
    LABELS_FILE,
    VOCAB_FILE,
    Example,
    bucketed,
    carve,
    label_order,
    load_artifacts,
)
from rnnlab.tasks.text import Vocab, pad_ids, tokenize
from rnnlab.tasks.text_files import BadLines, Row, TableFormat, read_labelled

if TYPE_CHECKING:
    from rnnlab.models.base import Model

SPLITS = ("train", "val", "test")
TINY_SET = Path(__file__).resolve().parents[1] / "data" / "sentiment_tiny.tsv"
TINY_FORMAT = TableFormat(format="tsv", header=True)

FileList = Union[str, list[str]]


class SentimentOptions(TaskOptions):
    name: Literal["sentiment"] = "sentiment"
    tokenizer: Literal["word", "char"] = Field(
        "word", description="word: lowercase words and punctuation marks; char: characters")
    lowercase: bool = True
    min_freq: int = Field(1, ge=1, description="training-split count a token needs to enter the vocabulary")
    max_size: Optional[int] = Field(None, gt=0,
                                    description="keep the most frequent tokens (plus <pad>, <unk>)")
    bucket: bool = Field(True, description="group training batches by sentence length")


class SentimentData(DataOptions):
    path: Optional[FileList] = Field(None, description="file(s) split with data.seed (default: the tiny set)")
    train: Optional[FileList] = None
    val: Optional[FileList] = Field(None, description="default: carved out of train (val_fraction)")
    test: Optional[FileList] = Field(None, description="default: carved out of train (test_fraction)")
    dir: Optional[str] = Field(None,
                               description="folder for relative file names, under data.root/$RNNLAB_DATA")
    format: Literal["auto", "tsv", "csv"] = "auto"
    header: Union[bool, Literal["auto"]] = "auto"
    text_column: Union[int, str] = Field(0, description="0-based index or header name")
    label_column: Union[int, str] = Field(1, description="0-based index or header name")
    labels: Optional[list[str]] = Field(None,
                                        description="the classes in order (default: sorted labels seen)")
    encoding: Encoding = "utf-8"
    skip_bad_lines: bool = False
    val_fraction: float = Field(0.1, gt=0, lt=1,
                                description="of the training part, when data.val is not given")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="of all data, when data.test is not given")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("text_column", "label_column")
    @classmethod
    def _column(cls, value: Union[int, str]) -> Union[int, str]:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"must be a 0-based column index >= 0 or a header name, got {value}")
        return value

    @model_validator(mode="after")
    def _check(self) -> "SentimentData":
        if self.path is not None and self.train is not None:
            raise ValueError("path: data.path and data.train are alternatives; give one")
        for key in ("val", "test"):
            if getattr(self, key) is not None and self.train is None:
                raise ValueError(f"{key}: needs data.train (with data.path or the tiny set, val and "
                                 "test are carved out with val_fraction/test_fraction)")
        if self.path is None and self.train is None:
            for key in ("dir", "format", "header", "text_column", "label_column", "encoding"):
                if getattr(self, key) != type(self).model_fields[key].default:
                    raise ValueError(f"{key}: describes data files, but none are given (data.path or "
                                     "data.train); the built-in tiny set has its own format")
        if self.text_column == self.label_column:
            raise ValueError(f"label_column: same column as text_column ({self.text_column!r})")
        named = isinstance(self.text_column, str) or isinstance(self.label_column, str)
        if named and self.header is False:
            raise ValueError("header: columns are named, so the files need a header line")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: repeated label in {self.labels}")
        if self.labels is not None and len(self.labels) < 2:
            raise ValueError("labels: needs at least 2 classes")
        return self

    def table(self) -> TableFormat:
        return TableFormat(self.format, self.header, self.text_column, self.label_column, self.encoding,
                           tuple(self.labels) if self.labels is not None else None)


@dataclass(frozen=True)
class Split:
    ids: torch.Tensor  # (N, longest) token ids padded with 0, on the task's device
    lengths: torch.Tensor  # (N,) CPU int64
    labels: torch.Tensor  # (N,) class ids, on the task's device


@TASKS.register("sentiment", "sentence classification from TSV/CSV files or the built-in tiny set")
class Sentiment(SentimentChecks, Task):
    Options = SentimentOptions
    DataOptions = SentimentData
    options: SentimentOptions
    data: SentimentData

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        self.bad = BadLines(self.data.skip_bad_lines)
        self.formats: dict[str, str] = {}
        if self.run_dir is None:  # training: everything from the data, every data error before the run exists
            self.classes = self.data.labels or label_order(self.sources["train"])
            if len(self.classes) < 2:
                where = f"data.{'path' if self.data.path else 'train'}"
                if not self.classes:  # every line was skipped (or none had a label)
                    skipped = f"; {self.bad.total} bad line(s) skipped" if self.bad.total else ""
                    raise DataError(where, f"no usable examples in the training data{skipped}; "
                                    "need examples of 2 or more classes")
                raise DataError(where, f"every example has the label {self.classes[0]!r}; need 2 or "
                                "more classes")
            self.vocab = Vocab.build((ex.tokens for ex in self.examples["train"]), self.options.min_freq,
                                     self.options.max_size)
            _ = self.splits
        else:  # eval/predict: the run's own mapping; data files are read only if a split is needed
            self.vocab, self.classes = load_artifacts(self.run_dir)
        self.spec = TaskSpec(input_kind="tokens", input_size=len(self.vocab), output_size=len(self.classes),
                             output="last", causal=False, metric="accuracy", mode="max")

    # ------------------------------------------------------------------ data
    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.options.tokenizer, self.options.lowercase)

    @cached_property
    def sources(self) -> dict[str, list[Row]]:
        """The rows of each source as read: "train" (data.path, data.train or the tiny set) and,
        when given as files, "val" and "test"."""
        d = self.data
        if d.path is None and d.train is None:
            return {"train": self.read(TINY_SET, TINY_FORMAT)}
        table = d.table()
        out = {"train": self.read_all(d.path if d.path is not None else d.train, table)}
        # the training labels tell a header line from data in small val/test files
        known = replace(table, labels=table.labels or tuple(label_order(out["train"])))
        out.update({split: self.read_all(names, known) for split, names in (("val", d.val), ("test", d.test))
                    if names is not None})
        return out

    def read_all(self, names: FileList, table: TableFormat) -> list[Row]:
        return [row for path in self.files(names) for row in self.read(path, table)]

    def read(self, path: Path, table: TableFormat) -> list[Row]:
        rows, self.formats[str(path)] = read_labelled(path, table, self.bad)
        return rows

    def files(self, names: FileList) -> list[Path]:
        base = self.base_dir()
        paths = [Path(n).expanduser() for n in ([names] if isinstance(names, str) else names)]
        return [p if base is None or p.is_absolute() else base / p for p in paths]

    def base_dir(self) -> Optional[Path]:
        """``data.dir`` resolved under the data root (``data.root``, else ``$RNNLAB_DATA``)."""
        if self.data.dir is None:
            return None
        folder = Path(self.data.dir).expanduser()
        if not folder.is_absolute():
            root = data_root(self.data)
            if root is None:
                raise ConfigError("data.dir", f"{self.data.dir!r} is looked up under the data root, but "
                                  "neither data.root nor RNNLAB_DATA is set "
                                  "(e.g. RNNLAB_DATA=../shared/data)")
            folder = root / folder
        if not folder.is_dir():
            raise DataError(folder, "data folder not found (data.dir under data.root or $RNNLAB_DATA)")
        return folder

    @cached_property
    def examples(self) -> dict[str, list[Example]]:
        """Tokenised, labelled examples of each split (lines with an unknown label or no token are
        bad lines), with the splits not given as files carved out of the training data."""
        kept = {split: [ex for ex in map(self.example, rows) if ex is not None]
                for split, rows in self.sources.items()}
        if self.bad.total:
            print(f"warning: data: skipped {self.bad.total} malformed line(s), e.g. "
                  f"{'; '.join(self.bad.examples)}", file=sys.stderr)
        gen = torch.Generator().manual_seed(self.seed)
        train = kept["train"]
        if "test" not in kept:
            kept["test"], train = carve(train, self.data.test_fraction, gen)
        if "val" not in kept:
            kept["val"], train = carve(train, self.data.val_fraction, gen)
        kept["train"] = train
        for split in SPLITS:
            if not kept[split]:
                raise DataError(f"data.{split}", "no usable examples in this split (too little data, or "
                                "every line was malformed)")
        return kept

    def example(self, row: Row) -> Optional[Example]:
        if row.label not in self.class_ids:
            self.bad.report(row.source, row.line, f"unknown label {row.label!r} (classes: "
                            f"{', '.join(self.classes)})")
            return None
        tokens = self.tokenize(row.text)
        if not tokens:
            self.bad.report(row.source, row.line, "empty text (no tokens)")
            return None
        return Example(tokens, self.class_ids[row.label])

    @cached_property
    def class_ids(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.classes)}

    @cached_property
    def splits(self) -> dict[str, Split]:
        out = {}
        for split in SPLITS:
            examples = self.examples[split]
            ids, lengths = pad_ids([self.vocab.encode(ex.tokens) for ex in examples])
            labels = torch.tensor([ex.label for ex in examples], dtype=torch.int64)
            out[split] = Split(ids.to(self.device), lengths, labels.to(self.device))
        return out

    # ------------------------------------------------------------------ training
    def batch(self, split: Split, idx: torch.Tensor) -> Batch:
        """Rows ``idx`` (CPU), cut to the longest sentence among them."""
        lengths = split.lengths[idx]
        at = idx.to(self.device)
        return Batch(split.ids[at, :int(lengths.max())], split.labels[at], lengths)

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.splits["train"].lengths) / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        split = self.splits["train"]
        if self.options.bucket:
            order = bucketed(split.lengths, batch_size, generator)
        else:
            order = batch_indices(len(split.lengths), batch_size, generator)
        for idx in order:
            yield self.batch(split, idx)

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, batch.y)

    def tokens(self, batch: Batch) -> int:
        assert batch.lengths is not None
        return int(batch.lengths.sum())

    # ------------------------------------------------------------------ evaluation
    def logits(self, model: "Model", split: Split, batch_size: int) -> torch.Tensor:
        """(N, classes) logits in the split's order; batched by length to skip most padding (the
        result does not depend on the batching)."""
        out = torch.empty(len(split.lengths), len(self.classes), device=self.device)
        for idx in torch.argsort(split.lengths, stable=True).split(batch_size):
            batch = self.batch(split, idx)
            out[idx.to(self.device)] = model(batch.x, batch.lengths)[0].float()
        return out

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        data = self.splits[split]
        return classification_metrics(self.logits(model, data, batch_size), data.labels)

    def probabilities(self, model: "Model", texts: list[list[str]], batch_size: int = 256) -> torch.Tensor:
        """(N, classes) class probabilities for tokenised texts (each with at least one token);
        unknown tokens map to <unk>. Call in eval mode under no_grad."""
        ids, lengths = pad_ids([self.vocab.encode(tokens) for tokens in texts])
        split = Split(ids.to(self.device), lengths, torch.zeros(len(texts), dtype=torch.int64))
        return self.logits(model, split, batch_size).softmax(-1)

    # ------------------------------------------------------------------ artifacts and reports
    def save_artifacts(self, run_dir: Path) -> None:
        o = self.options
        runs.write_json(run_dir / VOCAB_FILE, {"tokenizer": o.tokenizer, "lowercase": o.lowercase,
                                               **self.vocab.to_json()})
        runs.write_json(run_dir / LABELS_FILE, {"classes": self.classes})

    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        from rnnlab.common.plots import confusion_matrix_plot

        split = self.splits["test"]
        batch_size = self.eval_batch_size
        pred = self.logits(model, split, batch_size).argmax(1)
        matrix = confusion_matrix(pred, split.labels, len(self.classes))
        return [confusion_matrix_plot(matrix, self.classes, run_dir / runs.PLOTS / "confusion_matrix.png",
                                      "test split")]

    def embedding_words(self) -> list[Optional[str]]:
        return [None, None, *self.vocab.tokens[2:]]  # <pad> and <unk> have no pretrained vector

    def describe(self) -> dict[str, Any]:
        files = {split: sorted({row.source for row in rows}) for split, rows in self.sources.items()}
        out: dict[str, Any] = {"source": "tiny set" if self.data.path is None and self.data.train is None
                               else "files", "files": files, "formats": self.formats,
                               "classes": self.classes, "vocab_size": len(self.vocab)}
        for split in SPLITS:
            s = self.splits[split]
            unk = float((s.ids == 1).sum()) / max(int(s.lengths.sum()), 1)
            out[split] = {"examples": len(s.lengths),
                          "per_class": torch.bincount(s.labels.cpu(), minlength=len(self.classes)).tolist(),
                          "mean_length": round(float(s.lengths.double().mean()), 2),
                          "unknown_token_rate": round(unk, 4)}
        out["skipped_lines"] = {"total": self.bad.total, **self.bad.counts}
        return out

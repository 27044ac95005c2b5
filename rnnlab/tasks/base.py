"""What a task is: data for each split, a spec the model is built against, a loss, metrics."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Optional

import torch
from pydantic import AfterValidator, Field

from rnnlab.config.schema import Strict

if TYPE_CHECKING:
    from rnnlab.config.loading import Experiment
    from rnnlab.models.base import Model


#: the run's sample model inputs (``Task.sample_inputs``), saved at training time for ``rnnlab export``
SAMPLE_INPUTS = "sample_inputs.pt"
#: how many are saved (export's ``--batch`` up to this needs no data)
SAVED_INPUTS = 16
#: the run's ``TaskSpec`` as JSON, written at training time; inference checks its rebuilt task against it
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class TaskSpec:
    """What a model must accept and produce for a task."""

    input_kind: Literal["features", "tokens"]
    input_size: int  # features per step, or vocabulary size for tokens
    output_size: int  # per prediction: features, classes or vocabulary size
    output: Literal["last", "sequence", "horizon"]  # one per sequence, one per step, H future steps
    causal: bool  # predictions may only depend on the past (forbids bidirectional models)
    metric: str  # validation metric that selects the best checkpoint and drives early stopping
    mode: Literal["min", "max"]
    window: Optional[int] = None  # fixed input length, when there is one (needed by the MLP)
    horizon: Optional[int] = None  # steps to forecast when output == "horizon"
    stateful: bool = False  # carry (detached) hidden state across consecutive training batches
    targets: Optional[tuple[int, ...]] = None  # forecasting: the input channels forecast (default all)

    def to_json(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in self.__dict__.items()}


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    lengths: Optional[torch.Tensor] = None  # CPU int64, for variable-length batches
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


def _known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown text encoding {value!r}") from None
    return value


#: a text encoding name Python knows (``data.encoding`` of the text tasks)
Encoding = Annotated[str, AfterValidator(_known_encoding)]


@dataclass(frozen=True)
class TaskContext:
    """What a task is given beside its own two sections: where it lives and the numbers of ``train``
    it needs (a task never reads the whole config)."""

    device: torch.device
    seed: int  # data.seed, else train.seed: generated data and splits
    batch_size: int  # train.batch_size
    eval_batch_size: int  # train.eval_batch_size, else 4 x batch_size
    run_dir: Optional[Path] = None  # the run's directory (artifacts), None while only validating
    model: str = ""  # model.name, for a task whose windows depend on the model (series)

    @classmethod
    def of(cls, exp: "Experiment", device: torch.device, run_dir: Optional[Path] = None) -> "TaskContext":
        seed = exp.data.seed if getattr(exp.data, "seed", None) is not None else exp.train.seed
        return cls(device, seed, exp.train.batch_size, exp.train.eval_batch, run_dir, exp.model.name)


class TaskOptions(Strict):
    name: str


class DataOptions(Strict):
    root: Optional[str] = Field(None, description="data folder (default: $RNNLAB_DATA, then the cache)")
    seed: Optional[int] = Field(None, description="seed for data generation/splits (default: train.seed)")


def data_root(options: DataOptions) -> Optional[Path]:
    """``data.root``, else ``$RNNLAB_DATA``, else None (the caller picks its cache)."""
    if options.root:
        return Path(options.root).expanduser()
    env = os.environ.get("RNNLAB_DATA")
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnlab"


class Task:
    """Base class. A task builds its data in ``__init__(options, data, context)`` (its own section,
    the data section and a ``TaskContext``: device, seed, batch sizes, run directory; never the
    whole config) and keeps it as tensors on the device; batches are made by indexing, never item
    by item."""

    Options: type[TaskOptions] = TaskOptions
    DataOptions: type[DataOptions] = DataOptions
    spec: TaskSpec

    def __init__(self, options: Any, data: Any, context: "TaskContext") -> None:
        self.options = options  # the validated task section (``Options``)
        self.data = data  # the validated data section (``DataOptions``)
        self.device = context.device
        self.run_dir = context.run_dir
        self.seed = context.seed
        self.batch_size = context.batch_size
        self.eval_batch_size = context.eval_batch_size

    @classmethod
    def for_inference(cls, options: Any, data: Any, context: "TaskContext") -> "Task":
        """The task rebuilt from a finished run (``context.run_dir``) for inference: its spec and
        what the verbs and export need (vocabulary, labels, scaler, columns) read from the run's own
        files, never from the data (``Run.model()``, ``predict``, ``generate``, ``forecast``,
        ``export``). By default the task itself, for tasks that read no data when built from a run
        (generated data, or data read lazily); a task that loads its data when built overrides it."""
        return cls(options, data, context)

    # ---------------------------------------------------------------- validation
    @classmethod
    def check_compatible(cls, exp: "Experiment", where: str) -> None:
        """Cross-section checks that need no data (e.g. task options vs model options)."""

    # ---------------------------------------------------------------- training
    def steps_per_epoch(self, batch_size: int) -> int:
        raise NotImplementedError

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One pass over the training data in an order drawn from ``generator``."""
        raise NotImplementedError

    def loss(self, model: "Model", batch: Batch, state: Any = None) -> tuple[torch.Tensor, Any]:
        out, state = model(batch.x, batch.lengths, state)
        return self.criterion(out, batch), state

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def tokens(self, batch: Batch) -> int:
        """Predictions scored in a batch (for throughput); default one per sample."""
        return batch.size

    def tokens_per_step(self, batch_size: int) -> int:
        """Tokens in one full training batch, for epochs defined by ``train.tokens_per_epoch``;
        by default counted on a first batch drawn with a throwaway generator."""
        first = next(iter(self.train_batches(batch_size, torch.Generator().manual_seed(0))))
        return self.tokens(first)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        """Metrics on a split. Called by ``rnnlab.training.evaluation.evaluate`` in eval mode under
        no_grad."""
        raise NotImplementedError

    # ---------------------------------------------------------------- artifacts
    def save_artifacts(self, run_dir: Path) -> None:
        """Write what evaluation must reuse exactly (vocabularies, label maps) into the run."""

    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        """Task-specific figures into ``run_dir/plots``, from the model (the best checkpoint) and
        the run's per-epoch ``metrics.jsonl`` rows. Called in eval mode under no_grad."""
        return []

    def final_outputs(self, model: "Model", run_dir: Path) -> list[Path]:
        """Files beyond figures written once after training (e.g. text samples), whatever
        ``logging.plots`` says. Called in eval mode under no_grad with the best checkpoint loaded."""
        return []

    def sample_inputs(self, batch: int) -> torch.Tensor:
        """Up to ``batch`` model inputs from the task's own data, to export and verify a model
        with (``rnnlab export``); by default a training batch drawn with a fixed seed."""
        first = next(iter(self.train_batches(batch, torch.Generator().manual_seed(0))))
        return first.x[:batch].cpu()

    def saved_inputs(self, batch: int) -> Optional[torch.Tensor]:
        """Up to ``batch`` of the sample inputs the run saved at training time (``SAMPLE_INPUTS``,
        the first rows of ``sample_inputs``), so export needs no data; None when the run has none
        (written before they were saved) or too few."""
        path = self.run_dir / SAMPLE_INPUTS if self.run_dir is not None else None
        if path is None or not path.is_file():
            return None
        try:
            x = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable file: rebuild them from the data instead
            return None
        return x[:batch] if isinstance(x, torch.Tensor) and len(x) >= batch else None

    def describe(self) -> dict[str, Any]:
        """Facts about the data worth recording in the summary (sizes, vocabulary, ...)."""
        return {}

    def embedding_words(self) -> Optional[list[Optional[str]]]:
        """Token tasks: the token of each input id (None for special ids such as padding), which
        ``model.embedding_vectors`` looks up; None: no vocabulary of words."""
        return None


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Shuffled (or ordered) index batches; the permutation is drawn on the CPU generator."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]

"""Synthetic long-memory tasks, generated in process from the data seed (no files), at any length.

- ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015 / Arjovsky et al. 2016):
  ``length`` steps of two channels, a value drawn from U[0, 1] and a marker that is 1 at exactly two
  steps (one in the first half, one in the second); the target is the sum of the two marked values.
  Regression (MSE). Baseline: always answering 1.0 (the mean), MSE = Var(U1 + U2) = 1/6 ~ 0.167.
- ``copy`` (copy memory with a delay, Arjovsky et al. 2016): ``n_tokens`` symbols, ``length`` blank
  steps, a delimiter, then ``n_tokens`` blank steps at which the model must output the symbols in
  order. Per-step classification scored on those output steps only.
- ``selective_copy`` (Gu & Dao 2023, Mamba): ``n_tokens`` data tokens at random positions among
  ``length`` steps of noise tokens, then the delimiter and ``n_tokens`` output steps at which the
  model outputs the data tokens in their order. The gaps vary, so a fixed delay does not solve it.

Token ids of the copy tasks: ``0 .. noise-1`` noise (0 is also the blank of the output steps),
``noise .. noise+symbols-1`` the data symbols, ``noise+symbols`` the delimiter; the model's
``symbols`` classes are the data symbols. The three splits are drawn independently, each from its
own seed derived from the data seed, so changing ``n_train`` leaves the validation and test sets
as they were (except where one of their sequences had to be redrawn: a copy-task sequence that an
earlier split holds is redrawn, so no sequence is in two splits). Every task reports its trivial
baseline beside the model's figure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Literal

import torch
from pydantic import Field, model_validator
from torch.nn import functional as F

from rnnlab.errors import ConfigError
from rnnlab.registry import TASKS
from rnnlab.tasks.base import Batch, DataOptions, Task, TaskContext, TaskOptions, TaskSpec, batch_indices
from rnnlab.tasks.memory_checks import MemoryChecks

if TYPE_CHECKING:
    from rnnlab.config.loading import Experiment
    from rnnlab.models.base import Model

SPLITS = ("train", "val", "test")
MAX_VALUES = 2_000_000_000  # stored values over all splits: beyond this, name the options to lower
REDRAWS = 20  # rounds of redrawing a val/test sequence that an earlier split holds


class MemoryOptions(TaskOptions):
    length: int = Field(100, ge=1, description="the dependency length (see each task)")
    n_train: int = Field(10000, gt=0, description="training sequences (generated once, seeded)")
    n_val: int = Field(1000, gt=0, description="validation sequences")
    n_test: int = Field(1000, gt=0, description="test sequences")


class MemoryTask(MemoryChecks, Task):
    """Shared by the three tasks: seeded generation of each split into tensors on the device,
    batches by indexing; ``answer`` computes the targets from the inputs (``rnnlab check``'s
    perfect predictor)."""

    DataOptions = DataOptions
    options: Any
    CHANNELS: ClassVar[int] = 1  # stored values per step
    CAN_REPEAT: ClassVar[bool] = False  # two draws can give the same sequence (discrete tokens)

    @classmethod
    def steps(cls, options: Any) -> int:
        """Steps in one input sequence."""
        raise NotImplementedError

    @classmethod
    def check_compatible(cls, exp: "Experiment", where: str) -> None:
        o = exp.task
        values = (o.n_train + o.n_val + o.n_test) * cls.steps(o) * cls.CHANNELS
        if values > MAX_VALUES:
            raise ConfigError(where, f"task: {o.n_train + o.n_val + o.n_test} sequences of "
                              f"{cls.steps(o)} steps are {values:,} values, more than {MAX_VALUES:,}; "
                              "lower task.n_train or task.length")

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        o = self.options
        seeds = torch.randint(0, 2**62, (len(SPLITS),), generator=torch.Generator().manual_seed(self.seed))
        sizes = {"train": o.n_train, "val": o.n_val, "test": o.n_test}
        self.x: dict[str, torch.Tensor] = {}
        self.y: dict[str, torch.Tensor] = {}
        seen: set[bytes] = set()  # sequences of the earlier splits (tasks whose sequences can repeat)
        for split, seed in zip(SPLITS, seeds.tolist()):
            gen = torch.Generator().manual_seed(seed)
            x, y = self.generate(sizes[split], gen)
            if self.CAN_REPEAT:
                x, y = self.unseen(x, y, seen, gen, split)
                seen.update(row.numpy().tobytes() for row in x)
            self.x[split], self.y[split] = x.to(self.device), y.to(self.device)

    def unseen(self, x: torch.Tensor, y: torch.Tensor, seen: set[bytes], gen: torch.Generator,
               split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Redraw the sequences an earlier split holds (a test sequence the model trained on tests
        no memory): tasks with few distinct sequences (few symbols and tokens) could draw one."""
        for _ in range(REDRAWS):
            again = [i for i, row in enumerate(x) if row.numpy().tobytes() in seen]
            if not again:
                return x, y
            fresh_x, fresh_y = self.generate(len(again), gen)
            x[again], y[again] = fresh_x, fresh_y
        raise ConfigError("task", f"cannot draw {split} sequences unlike the earlier splits' (too few "
                          "distinct sequences); raise task.symbols or task.n_tokens, or lower task.n_train")

    # ------------------------------------------------------------------ per task
    def generate(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` (input, target) pairs drawn from ``gen``, as stored (see ``inputs``)."""
        raise NotImplementedError

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """The exact targets of stored inputs ``x``, computed from the inputs alone."""
        raise NotImplementedError

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Stored inputs as the model reads them."""
        return x

    # ------------------------------------------------------------------ training
    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.x["train"]) / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        x, y = self.x["train"], self.y["train"]
        for idx in batch_indices(len(x), batch_size, generator):
            idx = idx.to(self.device)
            yield Batch(self.inputs(x[idx]), y[idx])

    def outputs(self, model: "Model", split: str, batch_size: int) -> torch.Tensor:
        """The model's scored outputs over a split, in order."""
        x = self.x[split]
        outs = [self.scored(model(self.inputs(x[i:i + batch_size]))[0]) for i in range(0, len(x), batch_size)]
        return torch.cat(outs)

    def scored(self, out: torch.Tensor) -> torch.Tensor:
        """The part of the model's output that is scored."""
        return out

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {"length": o.length, "steps": self.steps(o),
                **{split: int(len(self.x[split])) for split in SPLITS}}


# ============================================================================= adding


class AddingOptions(MemoryOptions):
    name: Literal["adding"] = "adding"
    length: int = Field(100, ge=2, description="steps per sequence (T)")


@TASKS.register("adding", "adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values "
                "of a length-T sequence; MSE beside the constant-1.0 baseline")
class Adding(MemoryTask):
    Options = AddingOptions
    check_options = {"length": 30}
    CHANNELS = 2

    @classmethod
    def steps(cls, options: Any) -> int:
        return options.length

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        self.spec = TaskSpec(input_kind="features", input_size=2, output_size=1, output="last",
                             causal=False, metric="mse", mode="min", window=self.options.length)

    def generate(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        steps = self.options.length
        values = torch.rand(n, steps, generator=gen)
        first = torch.randint(0, steps // 2, (n,), generator=gen)
        second = torch.randint(steps // 2, steps, (n,), generator=gen)
        marks = torch.zeros(n, steps)
        rows = torch.arange(n)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        x = torch.stack([values, marks], dim=-1)
        return x, self.answer(x)

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        return (x[..., 0] * x[..., 1]).sum(1, keepdim=True)

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.mse_loss(out, batch.y)

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        y = self.y[split].double()
        mse = (self.outputs(model, split, batch_size).double() - y).pow(2).mean().item()
        baseline = (1.0 - y).pow(2).mean().item()  # always answering 1.0, the expected sum
        return {"loss": mse, "mse": mse, "baseline_mse": baseline, "mse_over_baseline": mse / baseline}


# ============================================================================= copy tasks


class CopyOptions(MemoryOptions):
    name: Literal["copy"] = "copy"
    length: int = Field(100, ge=1, description="blank steps between the symbols and the delimiter (delay)")
    symbols: int = Field(8, ge=2, le=10000, description="distinct data symbols (the model's classes)")
    n_tokens: int = Field(10, ge=1, description="symbols to remember and reproduce (K)")


class SelectiveCopyOptions(CopyOptions):
    name: Literal["selective_copy"] = "selective_copy"  # type: ignore[assignment]
    length: int = Field(256, ge=1, description="steps holding the data tokens among noise tokens")
    symbols: int = Field(16, ge=2, le=10000, description="distinct data symbols (the model's classes)")
    n_tokens: int = Field(16, ge=1, description="data tokens to remember and reproduce in order (K)")
    noise: int = Field(1, ge=1, le=10000, description="distinct noise tokens (1: a single blank, "
                       "as in the Mamba paper)")

    @model_validator(mode="after")
    def _fits(self) -> "SelectiveCopyOptions":
        if self.n_tokens > self.length:
            raise ValueError(f"n_tokens: {self.n_tokens} data tokens do not fit in length {self.length}")
        return self


class CopyTask(MemoryTask):
    """Token sequences whose last ``n_tokens`` steps are scored against the data symbols."""

    Options = CopyOptions
    CAN_REPEAT = True
    noise = 1

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        o = self.options
        self.spec = TaskSpec(input_kind="tokens", input_size=self.noise + o.symbols + 1,
                             output_size=o.symbols, output="sequence", causal=True, metric="accuracy",
                             mode="max", window=self.steps(o))
        counts = torch.bincount(self.y["train"].flatten().cpu(), minlength=o.symbols).double()
        # the best answer that ignores the input: the training targets' frequencies (add-one smoothed)
        self.prior = ((counts + 1) / (counts.sum() + o.symbols)).to(self.device)

    def symbols_of(self, data: torch.Tensor) -> torch.Tensor:
        """Class ids 0 .. symbols-1 as token ids."""
        return (data + self.noise).to(torch.int16)

    def tail(self, n: int) -> torch.Tensor:
        """The delimiter and the blank output steps that end every sequence."""
        end = torch.zeros(n, 1 + self.options.n_tokens, dtype=torch.int16)
        end[:, 0] = self.noise + self.options.symbols
        return end

    def answer(self, x: torch.Tensor) -> torch.Tensor:
        head = x[:, :x.shape[1] - self.options.n_tokens - 1].long()
        data = (head >= self.noise) & (head < self.noise + self.options.symbols)
        return (head[data] - self.noise).view(len(x), self.options.n_tokens)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def scored(self, out: torch.Tensor) -> torch.Tensor:
        return out[:, -self.options.n_tokens:]

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        logits = self.scored(out)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.y.reshape(-1))

    def tokens(self, batch: Batch) -> int:
        return int(batch.y.numel())

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        logits, y = self.outputs(model, split, batch_size).double(), self.y[split]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        right = logits.argmax(-1) == y
        baseline_loss = -self.prior.log()[y].mean().item()
        return {"loss": loss, "accuracy": right.double().mean().item(),
                "sequence_accuracy": right.all(1).double().mean().item(),
                "baseline_loss": baseline_loss,
                "baseline_accuracy": (y == self.prior.argmax()).double().mean().item()}

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {**super().describe(), "symbols": o.symbols, "n_tokens": o.n_tokens, "noise": self.noise}


@TASKS.register("copy", "copy memory (Arjovsky et al. 2016): reproduce n_tokens symbols after a delay "
                "of length blank steps; accuracy beside the best input-blind guess")
class Copy(CopyTask):
    Options = CopyOptions
    check_options = {"length": 12, "n_tokens": 6}

    @classmethod
    def steps(cls, options: Any) -> int:
        return 2 * options.n_tokens + options.length + 1

    def generate(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.options
        data = torch.randint(0, o.symbols, (n, o.n_tokens), generator=gen)
        blanks = torch.zeros(n, o.length, dtype=torch.int16)
        return torch.cat([self.symbols_of(data), blanks, self.tail(n)], dim=1), data


@TASKS.register("selective_copy", "selective copying (Mamba): output in order the n_tokens data tokens "
                "scattered among length noise steps; accuracy beside the best input-blind guess")
class SelectiveCopy(CopyTask):
    Options = SelectiveCopyOptions
    check_options = {"length": 24, "n_tokens": 6, "symbols": 8, "noise": 3}

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        self.noise = options.noise
        super().__init__(options, data, context)

    @classmethod
    def steps(cls, options: Any) -> int:
        return options.length + options.n_tokens + 1

    def generate(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.options
        positions = torch.rand(n, o.length, generator=gen).topk(o.n_tokens, dim=1).indices.sort(1).values
        data = torch.randint(0, o.symbols, (n, o.n_tokens), generator=gen)
        noise = torch.randint(0, self.noise, (n, o.length), generator=gen).to(torch.int16)
        region = noise.scatter(1, positions, self.symbols_of(data))
        return torch.cat([region, self.tail(n)], dim=1), data

"""How training is spread over processes: the trainer is handed a strategy and asks it, at a few
points of the loop, what one process alone would simply do. ``SingleProcess`` (the default) answers
each as the identity; the data-parallel strategy under torchrun (``rnnlab.execution.distributed``,
imported only there) shards batches, wraps the loss in DistributedDataParallel, reduces the epoch's
totals and makes every process take the main process's decisions."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from rnnlab.models.base import Model
from rnnlab.tasks.base import Batch, Task

LossFn = Callable[[Batch, Any], "tuple[torch.Tensor, Any]"]


class SingleProcess:
    """One process trains alone: it writes the run, and every decision is its own."""

    is_main = True

    def loss_fn(self, task: Task, model: Model) -> LossFn:
        """``(batch, state) -> (loss, state)``: the task's loss of the model."""
        return lambda batch, state: task.loss(model, batch, state)

    def shard(self, batch: Batch) -> Batch:
        """This process's share of a global batch."""
        return batch

    def reduce_totals(self, loss_sum: torch.Tensor, samples: int, tokens: int
                      ) -> tuple[torch.Tensor, int, int]:
        """An epoch's totals over every process."""
        return loss_sum, samples, tokens

    def validate(self, run: Callable[[], dict[str, float]]) -> dict[str, float]:
        """The validation metrics every process goes on with (``run`` computes them)."""
        return run()

    def should_stop(self, requested: bool, step: int, check_every: int) -> bool:
        """Whether to stop after ``step``, given whether this process was asked to."""
        return requested

    def agree(self, advance: int, stopping: Optional[str]) -> tuple[int, Optional[str]]:
        """The per-step schedule's advance and the budget's stop, as every process takes them."""
        return advance, stopping

"""Data-parallel training under torchrun: ``torchrun --nproc-per-node N -m rnnlab train CONFIG``.

Every process builds the same task and model (same seeds), draws the same batch order from the
same data generator and computes on its own contiguous share of every batch, so ``train.batch_size``
stays the global batch: one config gives the same optimisation (steps, learning-rate schedule,
effective batch) on 1 or N processes. DistributedDataParallel averages the gradients (gloo on CPU,
nccl on CUDA), so every process takes the same optimizer step. Epoch totals (loss, samples, tokens)
are summed over the processes; validation runs once, on rank 0, and its metrics are broadcast so
every process takes the same best-checkpoint and early-stopping decisions. Only rank 0 writes the
run directory and prints: the result is one normal run.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rnnlab.common.console import Reporter
from rnnlab.common.signals import GracefulStop
from rnnlab.config.loading import Experiment
from rnnlab.execution.lifecycle import open_run, prepare, start_run
from rnnlab.models.base import Model
from rnnlab.tasks.base import Batch, Task
from rnnlab.training.budget import STOP_TIME
from rnnlab.training.runtime import available_cores, resolve_device
from rnnlab.training.strategy import SingleProcess
from rnnlab.training.trainer import Trainer


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_group(device_name: str) -> Group:
    """Join the process group torchrun set up: gloo on CPU, nccl on CUDA (one GPU per process,
    by local rank). Non-zero ranks print nothing on stdout."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # DDP's constructor imports torch._dynamo, which, when first imported after the process group
    # exists, keeps a reference to it for the process's life: destroy_process_group then cannot
    # join gloo's worker threads, and one still releasing a finished collective while the
    # interpreter shuts down aborts the process ("terminate called without an active exception").
    # Imported before the group exists, it holds nothing of it.
    importlib.import_module("torch._dynamo")
    dist.init_process_group(backend, rank=rank, world_size=world)
    if rank != 0:  # one voice: the run directory is printed once, by rank 0
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (for the process's life)
    return Group(rank, world, local_rank, local_world, device, backend)


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """This rank's contiguous share of a global batch: rows [rank*n/world, (rank+1)*n/world).
    The same rows every step, so a state carried across batches stays with its streams. Tensors
    in ``extra`` with a leading batch dimension are split alike. A batch with fewer rows than
    processes goes whole to every rank: the averaged gradient is then the one-process gradient."""
    n = batch.size
    if n < world:
        return batch
    rows = slice(rank * n // world, (rank + 1) * n // world)

    def take(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            return value[rows]
        return value

    return Batch(batch.x[rows], batch.y[rows], take(batch.lengths),
                 {key: take(value) for key, value in batch.extra.items()})


class LossModule(nn.Module):
    """The task's loss as a module, so DDP wraps the whole loss computation: any model method a
    task calls (``forward``, ``forecast``, ...) then runs inside DDP's forward."""

    def __init__(self, task: Task, model: Model) -> None:
        super().__init__()
        self.task = task
        self.model = model

    def forward(self, batch: Batch, state: Any) -> tuple[torch.Tensor, Any]:
        return self.task.loss(self.model, batch, state)


class DataParallel(SingleProcess):
    """The data-parallel strategy: this process's share of every batch, the loss through
    DistributedDataParallel (which averages the gradients), epoch totals summed over the processes,
    validation on rank 0 broadcast to all, and rank 0's stop and budget decisions for everyone."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.is_main = group.is_main

    def loss_fn(self, task: Task, model: Model) -> Any:
        return DistributedDataParallel(LossModule(task, model))

    def shard(self, batch: Batch) -> Batch:
        return shard(batch, self.group.rank, self.group.world)

    def reduce_totals(self, loss_sum: torch.Tensor, samples: int, tokens: int
                      ) -> tuple[torch.Tensor, int, int]:
        totals = torch.stack([loss_sum.double(), torch.tensor(float(samples), dtype=torch.float64,
                                                              device=loss_sum.device),
                              torch.tensor(float(tokens), dtype=torch.float64, device=loss_sum.device)])
        dist.all_reduce(totals)
        return totals[0], int(totals[1].item()), int(totals[2].item())

    def validate(self, run: Callable[[], dict[str, float]]) -> dict[str, float]:
        return self.group.broadcast(run() if self.group.is_main else None)

    def should_stop(self, requested: bool, step: int, check_every: int) -> bool:
        """torchrun signals every process, each at its own step: all stop at the first step
        where any was asked (checked every ``check_every`` steps, to spare a sync per step)."""
        if step % check_every:
            return False
        flag = torch.tensor([float(requested)], device=self.group.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def agree(self, advance: int, stopping: Optional[str]) -> tuple[int, Optional[str]]:
        """The budget is the main process's clock: every process advances the schedule and stops
        as it does (one small broadcast per step, only under a time budget)."""
        flag = torch.tensor([advance, int(stopping is not None)], device=self.group.device)
        dist.broadcast(flag, src=0)
        taken, stop = (int(v) for v in flag.tolist())
        return taken, (stopping or STOP_TIME) if stop else None


def default_threads(group: Group) -> int:
    """Without ``train.threads``, the machine's cores are shared among the node's processes."""
    return max(1, available_cores() // group.local_world)


def train_run(exp: Experiment, runs_dir: Path, reporter: Reporter) -> Path:
    """``rnnlab train`` under torchrun (``lifecycle.run_training`` comes here only then): the
    data-parallel counterpart of ``rnnlab.execution.lifecycle.train_run``: rank 0 creates, fills and
    finishes the run directory (test metrics, plots, summary); the other ranks train beside it."""
    group = init_group(exp.train.device)
    try:
        return _train_run(exp, runs_dir, reporter, group)
    finally:
        # the group's worker threads are joined only once nothing references it (see init_group):
        # _train_run has dropped the DDP wrapper; collect any cycle still holding it, then destroy
        gc.collect()
        dist.destroy_process_group()


def _train_run(exp: Experiment, runs_dir: Path, reporter: Reporter, group: Group) -> Path:
    ready = prepare(exp, group.device, threads=exp.train.threads or default_threads(group))
    task, model, threads, precision = ready.task, ready.model, ready.threads, ready.precision
    run_dir: Optional[Path] = open_run(exp, runs_dir, task) if group.is_main else None
    run_dir = Path(group.broadcast(str(run_dir)))
    if not group.is_main:  # own dropout masks; the data order stays shared
        torch.manual_seed(exp.train.seed + group.rank)
    trainer = Trainer(exp, task, model, run_dir, reporter if group.is_main else Reporter(quiet=True),
                      group.device, threads, precision, strategy=DataParallel(group))
    try:
        if not group.is_main:
            with GracefulStop(trainer.request_stop):
                trainer.fit()
            return run_dir
        return start_run(trainer, {"distributed": {"world_size": group.world, "backend": group.backend,
                                                   "threads_per_process": threads}})
    finally:
        # an exception's traceback keeps this frame, and with it the trainer, alive: drop the
        # DDP wrapper (and its reference to the process group) here
        del trainer.compute_loss

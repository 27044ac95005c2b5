"""One training loop for every task.

The loop owns what is not the model's business: the optimizer and schedule steps, gradient clipping
(with the pre-clip norm recorded), validation in eval mode under no_grad, the best checkpoint,
early stopping, divergence and time budgets, and the checkpoint that resumes it exactly. Tasks
provide batches and the loss.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from rnnlab.common.console import Reporter
from rnnlab.config.loading import Experiment
from rnnlab.errors import DataError, RunDirError
from rnnlab.models.base import Model
from rnnlab.rundir import files as runs
from rnnlab.rundir import identity
from rnnlab.tasks.base import Batch, Task
from rnnlab.training.budget import Replay, StepPlan, load_replay
from rnnlab.training.evaluation import evaluate, load_weights
from rnnlab.training.optim import make_optimizer, make_scheduler, on_metric, per_step
from rnnlab.training.precision import Precision, resolve_precision
from rnnlab.training.runtime import rng_state, set_rng_state
from rnnlab.training.state import (
    CHECKPOINT_FORMAT,
    EpochProgress,
    TrainState,
    better,
    clip_grad_norm,
    detach_state,
    epoch_steps,
    require_training_state,
)
from rnnlab.training.stops import Diverged, Interrupted
from rnnlab.training.strategy import SingleProcess


class Trainer:
    def __init__(self, exp: Experiment, task: Task, model: Model, run_dir: Path,
                 reporter: Reporter, device: torch.device, threads: int,
                 precision: Optional[str] = None, strategy: Optional[SingleProcess] = None) -> None:
        self.exp, self.cfg = exp, exp.train
        self.strategy = strategy or SingleProcess()  # how the processes share the work (one: alone)
        self.task, self.model, self.run_dir = task, model, run_dir
        self.reporter, self.device, self.threads = reporter, device, threads
        self.steps_per_epoch = epoch_steps(self.cfg, task)
        # a fixed epoch length (steps or tokens) chains passes over the data instead of one pass
        self.chained = self.cfg.steps_per_epoch is not None or self.cfg.tokens_per_epoch is not None
        self.optimizer = make_optimizer(self.cfg, model)
        replay: Optional[Replay] = load_replay(exp.to_dict(), self.cfg.replay) if self.cfg.replay else None
        self.plan = StepPlan(self.cfg, self.steps_per_epoch,
                             per_step(self.cfg.scheduler.name), replay)
        self.scheduler, self.per_step = make_scheduler(self.cfg, self.optimizer, self.plan.schedule_steps,
                                                       task.spec.mode)
        self.plateau = on_metric(self.cfg.scheduler.name)  # stepped with the validation metric
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.eval_batch_size = self.cfg.eval_batch
        self.state = TrainState()
        self.progress = EpochProgress.start(device)
        self.stop_requested = False
        # the current pass over the training data: its order is drawn from ``generator``, whose
        # state at the pass start is kept so a resume can replay the pass to where it was
        self._pass: Optional[Iterator[Batch]] = None
        self.pass_rng: Optional[torch.Tensor] = None
        self.pass_batches = 0
        self.check_every = 1 if device.type == "cpu" else self.cfg.log_every
        self.amp = Precision(precision or resolve_precision(self.cfg.precision, device, model), device)
        # (batch, state) -> (loss, state); data-parallel strategies route it through DDP
        self.compute_loss: Callable[[Batch, Any], tuple[torch.Tensor, Any]] = \
            self.strategy.loss_fn(task, model)
        self.tensorboard: Optional[Any] = None  # a tblog.TensorBoardLog when logging.tensorboard
        self.mlflow: Optional[Any] = None  # a mlflow_log.LiveRun when logging.mlflow
        self.step_norms = torch.zeros(0)  # the last epoch's per-step pre-clip norms (for loggers)
        self.saved: Optional[str] = None  # what last.pt holds, for messages
        self._saved_at = time.monotonic()
        self._identity: Optional[dict[str, Any]] = None

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        s, p = self.state, self.progress
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.exp.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "trainer": {"epoch": s.epoch, "step": s.step, "best": s.best, "best_epoch": s.best_epoch,
                        "bad_epochs": s.bad_epochs, "train_seconds": s.train_seconds,
                        "stopped_early": s.stopped_early, "stopped": s.stopped,
                        "schedule_trace": list(s.schedule_trace),
                        "schedule_position": s.schedule_position},
            "history": list(s.history),
            "progress": p.to_state() if p.steps else None,
            "data_pass": ({"rng": self.pass_rng, "batches": self.pass_batches}
                          if self._pass is not None else None),
            "rng": rng_state(self.generator),
            "scaler": self.amp.state_dict(),
            "identity": self.identity(),
        }

    def identity(self) -> dict[str, Any]:
        """The run's id and config hash, carried by every checkpoint (see ``rnnlab.rundir.identity``)."""
        if self._identity is None:
            self._identity = identity.make_identity(self.run_dir, self.exp.to_dict())
        return self._identity

    def restore(self, ckpt: dict[str, Any], path: Path) -> None:
        """Continue exactly where ``checkpoint()`` (read from ``path``) left off."""
        require_training_state(ckpt, path)
        load_weights(self.model, ckpt["model"], path)
        try:
            self._restore_state(ckpt)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise RunDirError(path, f"checkpoint does not fit this run's optimizer, scheduler or data "
                              f"({type(exc).__name__}: {str(exc).strip()[:120]})") from None
        self.saved = self.position()

    def _restore_state(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        for key, value in ckpt["trainer"].items():
            setattr(self.state, key, value)
        self.state.history = list(ckpt.get("history") or [])
        progress = ckpt.get("progress")
        self.progress = (EpochProgress.from_state(progress) if progress
                         else EpochProgress.start(self.device))
        data_pass = ckpt.get("data_pass")
        if data_pass is not None:  # replay the pass's order from its start, skipping done batches
            self.generator.set_state(data_pass["rng"])
            self._pass = self.new_pass()
            for _ in range(data_pass["batches"]):
                if next(self._pass, None) is None:
                    raise ValueError("the training data has fewer batches than when it was saved")
            self.pass_batches = data_pass["batches"]
        # after the replay, which may have drawn from any RNG: every RNG exactly as it was saved
        set_rng_state(ckpt["rng"], self.generator)
        self.amp.load_state_dict(ckpt.get("scaler"))

    def save_last(self) -> None:
        if not self.strategy.is_main:  # one process writes the run
            return
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "last.pt", self.checkpoint())
        self.saved = self.position()
        self._saved_at = time.monotonic()

    def position(self) -> str:
        """Where training stands, in words: ``after epoch 2`` or ``at step 7 of epoch 3``."""
        p = self.progress
        return (f"at step {p.steps} of epoch {self.state.epoch + 1}" if p.steps
                else f"after epoch {self.state.epoch}")

    def request_stop(self) -> None:
        """Stop after the current step (with a checkpoint); called from a signal handler."""
        self.stop_requested = True

    def should_stop(self, step: int) -> bool:
        """Whether to stop after ``step`` (every process stops at the same step)."""
        return self.strategy.should_stop(self.stop_requested, step, self.check_every)

    def checkpoint_due(self) -> bool:
        """``train.checkpoint_every``: by optimizer steps (counted over the whole run, so resumes
        keep the same schedule) or by wall time since the last save."""
        every = self.cfg.checkpoint_every
        if every is None:
            return False
        if every.steps is not None:
            return self.state.step % every.steps == 0
        assert every.minutes is not None
        return time.monotonic() - self._saved_at >= every.minutes * 60

    def save_best(self, val: dict[str, float]) -> None:
        if not self.strategy.is_main:
            return
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "best.pt",
                        {"model": self.model.state_dict(), "epoch": self.state.epoch, "val": val,
                         "identity": self.identity()})

    def save_epoch(self, row: dict[str, Any]) -> None:
        if not self.strategy.is_main:
            return
        runs.append_jsonl(self.run_dir / runs.METRICS, row)
        if self.tensorboard is not None:
            self.tensorboard.epoch(row, self.step_norms)
        if self.mlflow is not None:
            self.mlflow.epoch(row)

    def validate(self) -> dict[str, float]:
        return self.strategy.validate(lambda: evaluate(self.task, self.model, "val", self.eval_batch_size))

    # ------------------------------------------------------------------ the loop
    def new_pass(self) -> Iterator[Batch]:
        self.pass_rng, self.pass_batches = self.generator.get_state(), 0
        return iter(self.task.train_batches(self.cfg.batch_size, self.generator))

    def batches(self) -> Iterator[Batch]:
        """The rest of this epoch's batches: one pass over the data, or with ``steps_per_epoch``
        (or ``tokens_per_epoch``) set, that many steps from chained passes (the next epoch
        continues the pass)."""
        remaining = self.steps_per_epoch - self.progress.steps if self.chained else None
        while remaining is None or remaining > 0:
            fresh = self._pass is None
            if self._pass is None:
                self._pass = self.new_pass()
            batch = next(self._pass, None)
            if batch is None:
                self._pass = None
                if fresh:
                    raise DataError(f"task {self.exp.task.name}", "the training split yields no batches")
                if remaining is None:
                    return
                continue
            self.pass_batches += 1
            if remaining is not None:
                remaining -= 1
            yield self.strategy.shard(batch)

    def clip(self) -> torch.Tensor:
        """Clip as configured; the total gradient norm before clipping."""
        norm = clip_grad_norm(self.params, self.cfg.clip_grad_norm)
        if self.cfg.clip_grad_value:
            torch.nn.utils.clip_grad_value_(self.params, self.cfg.clip_grad_value)
        return norm

    def train_epoch(self) -> dict[str, Any]:
        """Train the rest of the epoch (all of it unless resumed mid-epoch); its metrics row."""
        s, task, model, opt, p = self.state, self.task, self.model, self.optimizer, self.progress
        epoch = s.epoch + 1
        model.train()
        self.reporter.epoch_start(epoch, self.cfg.epochs, self.steps_per_epoch)
        start = time.perf_counter() - p.seconds
        for batch in self.batches():
            i = p.steps + 1
            if batch.extra.get("reset_state"):  # e.g. a new pass of sequential BPTT
                p.carry = None
            with self.amp.autocast():
                loss, carry = self.compute_loss(batch, p.carry if task.spec.stateful else None)
            for param in self.params:  # opt.zero_grad(set_to_none=True), without its ~40 us of Python
                param.grad = None
            self.amp.backward(loss)
            self.amp.unscale_(opt)  # clipping and the recorded norm see the true gradients
            norm = self.clip()
            if i % self.check_every == 0:
                self.check_finite(loss, norm, epoch, i)
            self.amp.step(opt)
            s.step += 1
            if self.tensorboard is not None:  # per-step loss, kept on the device until the epoch ends
                self.tensorboard.step(s.step, loss)
            elapsed = s.train_seconds + (time.perf_counter() - start)
            advance, stopping = self.plan_step(elapsed)
            if self.per_step:
                for _ in range(advance):
                    self.scheduler.step()
            p.carry = detach_state(carry)
            p.steps = i
            p.loss_sum.add_(loss.detach(), alpha=batch.size)
            p.norms.append(norm.detach())
            p.samples += batch.size
            p.tokens += task.tokens(batch)
            if self.reporter.wants_step(i):
                self.reporter.step(i, loss.item(), time.perf_counter() - start)
            stop = self.should_stop(i)
            if stop or self.checkpoint_due():
                self.check_finite(loss, norm, epoch, i)  # never save a diverged state
                p.seconds = time.perf_counter() - start
                self.save_last()
                if stop:
                    raise Interrupted()
            if stopping is not None:  # the rest of the epoch is not trained: close it as it is
                s.stopped = stopping
                break
        if self.scheduler is not None and not self.per_step and not self.plateau:
            self.scheduler.step()
        seconds = time.perf_counter() - start
        loss_sum, samples, tokens = self.strategy.reduce_totals(p.loss_sum, p.samples, p.tokens)
        self.step_norms = torch.stack(p.norms).double()
        all_norms = self.amp.taken(self.step_norms)
        train_loss = loss_sum / max(samples, 1)
        # catches what sparse per-step checks (on GPU) missed; the mean, as max_loss is per step
        self.check_finite(train_loss, all_norms.max(), epoch, p.steps)
        max_norm = self.cfg.clip_grad_norm
        self.progress = EpochProgress.start(self.device)
        return {
            "train_loss": train_loss.item(),
            "grad_norm_mean": all_norms.mean().item(),
            "grad_norm_max": all_norms.max().item(),
            "clip_frac": (all_norms > max_norm).double().mean().item() if max_norm else 0.0,
            "steps": len(p.norms),
            "train_seconds": seconds,
            "samples_per_s": samples / seconds,
            "tokens_per_s": tokens / seconds,
        }

    def plan_step(self, elapsed: float) -> tuple[int, Optional[str]]:
        """After optimizer step ``state.step``, ``elapsed`` seconds into training: how many steps
        the per-step schedule advances (recorded when it follows the budget) and why training
        stops now, if it does."""
        s, plan = self.state, self.plan
        advance = plan.advance(s.step, s.schedule_position, elapsed) if self.per_step else 1
        stopping = plan.stop_reason(s.step, elapsed)
        if plan.budget is not None:  # decided by the clock: every process must follow the same one
            advance, stopping = self.strategy.agree(advance, stopping)
        if plan.timed:
            s.schedule_trace.append(advance)
            s.schedule_position += advance
        return advance, stopping

    def check_finite(self, loss: torch.Tensor, norm: torch.Tensor, epoch: int, step: int) -> None:
        value = float(loss.detach())
        limit = self.cfg.max_loss
        reason = None
        if not math.isfinite(value):
            reason = f"loss became {value}"
        elif not math.isfinite(float(norm)) and self.amp.scaler is None:  # fp16 overflow: step skipped
            reason = f"gradient norm became {float(norm)}"
        elif limit is not None and value > limit:
            reason = f"loss {value:.4g} exceeded train.max_loss={limit:g}"
        if reason:
            clip = self.cfg.clip_grad_norm
            hint = (f"try a lower train.lr (now {self.cfg.lr:g}) or "
                    + (f"a smaller train.clip_grad_norm (now {clip:g})" if clip
                       else "gradient clipping (train.clip_grad_norm, e.g. 1.0)")
                    + (", or raise train.max_loss" if "max_loss" in reason else ""))
            raise Diverged(epoch, step, reason, hint, self.run_dir, self.saved)

    def fit(self) -> TrainState:
        s, cfg, spec = self.state, self.cfg, self.task.spec
        while s.epoch < cfg.epochs and not s.stopped_early and s.stopped is None:
            if self.should_stop(0):  # asked between epochs: last.pt already holds this state
                raise Interrupted()
            train = self.train_epoch()
            t0 = time.perf_counter()
            val = self.validate()
            s.epoch += 1
            s.train_seconds += train["train_seconds"]
            row: dict[str, Any] = {"epoch": s.epoch, "step": s.step,
                                   "lr": self.optimizer.param_groups[0]["lr"], **train}
            row.update({f"val_{k}": v for k, v in val.items()})
            row["seconds"] = train["train_seconds"] + (time.perf_counter() - t0)
            metric = val[spec.metric]
            if self.plateau:  # the next epoch's lr (the row keeps the lr this epoch trained with)
                self.scheduler.step(metric)
            es = cfg.early_stopping
            if better(metric, s.best, spec.mode, es.min_delta if es else 0.0):
                s.best, s.best_epoch, s.bad_epochs = metric, s.epoch, 0
                self.save_best(val)
            else:
                s.bad_epochs += 1
                if es is not None and s.bad_epochs >= es.patience:
                    s.stopped_early = True
            # best.pt, then last.pt (which holds the history), then the metrics line: a crash
            # between any two leaves files a resume from last.pt makes consistent again
            s.history.append(row)
            self.save_last()
            self.save_epoch(row)
            self.reporter.epoch_end(row, spec.metric)
        return s

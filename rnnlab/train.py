"""One training loop for every task.

The loop owns what is not the model's business: device, seeding, optimizer and scheduler, gradient
clipping (with the pre-clip norm recorded), validation in eval mode under no_grad, the best
checkpoint, early stopping, divergence, and the run directory. Tasks provide batches and the loss.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

import numpy as np
import torch

from . import __version__, runs
from .config import Experiment, TrainConfig
from .errors import ConfigError, RnnlabError
from .models import build_model
from .models.base import Model
from .progress import Reporter
from .tasks import TASKS
from .tasks.base import Batch, Task

# ----------------------------------------------------------------------------- environment


def resolve_device(name: str, where: str = "train.device") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(where, "'cuda' requested but no CUDA device is available "
                          "(use 'auto' or 'cpu')")
    return torch.device(name)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_threads(threads: Optional[int]) -> int:
    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu_model(),
        "threads": threads,
        "versions": {"rnnlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
    return env


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG a run draws from, in types ``torch.load(weights_only=True)`` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "data": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- building


def build_task(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None) -> Task:
    return TASKS.get(exp.task.name)(exp, device, run_dir)


def build(exp: Experiment, device: torch.device, run_dir: Optional[Path] = None
          ) -> tuple[Task, Model]:
    """Task, then the model against the task's spec (seeded, so init is reproducible)."""
    task = build_task(exp, device, run_dir)
    seed_everything(exp.train.seed)
    model = build_model(exp.model, task.spec, where="config").to(device)
    model.flatten_parameters()
    return task, model


def make_optimizer(cfg: TrainConfig, model: Model) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer in ("adam", "adamw"):
        adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        try:  # fused: one kernel per step instead of a loop over tensors (on CPU since torch 2.4)
            return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except RuntimeError:  # an older torch or a device without the fused kernel
            return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


OPTIMIZERS = {
    "adam": "Adam (torch.optim.Adam); train.lr, train.weight_decay",
    "adamw": "AdamW, decoupled weight decay; train.lr, train.weight_decay",
    "sgd": "SGD with momentum; train.lr, train.momentum, train.weight_decay",
}
SCHEDULERS = {
    "none": "constant learning rate",
    "step": "multiply lr by gamma every step_size epochs (per epoch)",
    "cosine": "cosine decay over all steps to lr * min_lr_ratio (per step)",
    "onecycle": "one-cycle: warm up to lr, then anneal (per step); pct_start, div_factor, final_div_factor",
}


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
                   ) -> tuple[Optional[Any], bool]:
    """(scheduler, steps_per_batch): step/none are per epoch, cosine/onecycle per batch."""
    s = cfg.scheduler
    if s.name == "none":
        return None, False
    if s.name == "step":
        step_size = s.step_size or max(1, cfg.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size, s.gamma or 0.1), False
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, total_steps), eta_min=cfg.lr * (s.min_lr_ratio or 0.0)), True
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=max(2, total_steps), pct_start=s.pct_start or 0.3,
        div_factor=s.div_factor or 25.0, final_div_factor=s.final_div_factor or 1e4), True


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the CPU computes bfloat16 natively (there oneDNN's LSTM trains about
    1.5x faster), fp32 elsewhere, including CUDA, where cuDNN's RNNs may lack bf16 kernels."""
    if precision != "auto":
        return precision
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence getattr
    native = device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return "bf16" if native else "fp32"


def autocast(precision: str, device: torch.device) -> Callable[[], ContextManager[Any]]:
    """The training forward pass's precision context: bf16 autocast (mixed precision: fp32 master
    weights, no loss scaling needed for bfloat16), or nothing."""
    if resolve_precision(precision, device) == "bf16":
        return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def detach_state(state: Any) -> Any:
    """Cut the graph between BPTT windows while keeping the values."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


def evaluate(task: Task, model: Model, split: str, batch_size: int) -> dict[str, float]:
    """Task metrics on a split, in eval mode (dropout off) under no_grad; restores the mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return task.evaluate(model, split, batch_size)
    finally:
        model.train(was_training)


def better(value: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Diverged(RnnlabError):
    """The loss or the gradient became non-finite (or exploded): status ``diverged``."""


class Interrupted(Exception):
    """Raised in the loop when a stop was requested (SIGINT/SIGTERM) after a step finished."""


# ----------------------------------------------------------------------------- the trainer


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: Optional[float] = None
    best_epoch: Optional[int] = None
    bad_epochs: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(self, exp: Experiment, task: Task, model: Model, run_dir: Path,
                 reporter: Reporter, device: torch.device, threads: int) -> None:
        self.exp, self.cfg = exp, exp.train
        self.task, self.model, self.run_dir = task, model, run_dir
        self.reporter, self.device, self.threads = reporter, device, threads
        self.steps_per_epoch = self.cfg.steps_per_epoch or task.steps_per_epoch(self.cfg.batch_size)
        self.optimizer = make_optimizer(self.cfg, model)
        self.scheduler, self.per_step = make_scheduler(
            self.cfg, self.optimizer, self.steps_per_epoch * self.cfg.epochs)
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.eval_batch_size = self.cfg.eval_batch_size or 4 * self.cfg.batch_size
        self.state = TrainState()
        self.stop_requested = False
        self._batches: Optional[Iterator[Batch]] = None
        self.check_every = 1 if device.type == "cpu" else self.cfg.log_every
        self.autocast = autocast(self.cfg.precision, device)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        s = self.state
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "trainer": {"epoch": s.epoch, "step": s.step, "best": s.best, "best_epoch": s.best_epoch,
                        "bad_epochs": s.bad_epochs, "train_seconds": s.train_seconds,
                        "stopped_early": s.stopped_early},
            "rng": rng_state(self.generator),
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.model.flatten_parameters()
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        for key, value in ckpt["trainer"].items():
            setattr(self.state, key, value)
        set_rng_state(ckpt["rng"], self.generator)

    def save_last(self) -> None:
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "last.pt", self.checkpoint())

    def save_best(self, val: dict[str, float]) -> None:
        runs.save_torch(self.run_dir / runs.CHECKPOINTS / "best.pt",
                        {"model": self.model.state_dict(), "epoch": self.state.epoch, "val": val})

    # ------------------------------------------------------------------ the loop
    def batches(self) -> Iterator[Batch]:
        """An epoch's batches. With ``steps_per_epoch`` set, passes over the data are chained and
        an epoch ends after that many steps (the next epoch continues the pass)."""
        if self.cfg.steps_per_epoch is None:
            yield from self.task.train_batches(self.cfg.batch_size, self.generator)
            return
        for _ in range(self.steps_per_epoch):
            batch = next(self._batches, None) if self._batches is not None else None
            if batch is None:
                self._batches = iter(self.task.train_batches(self.cfg.batch_size, self.generator))
                batch = next(self._batches)
            yield batch

    def clip(self) -> torch.Tensor:
        max_norm = self.cfg.clip_grad_norm
        if max_norm:
            norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        else:
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if self.cfg.clip_grad_value:
            torch.nn.utils.clip_grad_value_(self.params, self.cfg.clip_grad_value)
        return norm

    def train_epoch(self) -> dict[str, Any]:
        s, task, model, opt = self.state, self.task, self.model, self.optimizer
        epoch = s.epoch + 1
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        norms: list[torch.Tensor] = []
        samples = tokens = 0
        state = None  # recurrent state carried between batches (stateful tasks), reset each epoch
        self.reporter.epoch_start(epoch, self.cfg.epochs, self.steps_per_epoch)
        start = time.perf_counter()
        for i, batch in enumerate(self.batches(), 1):
            if batch.extra.get("reset_state"):  # e.g. a new pass of sequential BPTT
                state = None
            with self.autocast():
                loss, state = task.loss(model, batch, state if task.spec.stateful else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = self.clip()
            if i % self.check_every == 0:
                self.check_finite(loss, norm, epoch, i)
            opt.step()
            if self.per_step:
                self.scheduler.step()
            state = detach_state(state)
            s.step += 1
            loss_sum += loss.detach() * batch.size
            norms.append(norm.detach())
            samples += batch.size
            tokens += task.tokens(batch)
            if self.reporter.wants_step(i):
                self.reporter.step(i, loss.item(), time.perf_counter() - start)
            if self.stop_requested:
                raise Interrupted()
        if self.scheduler is not None and not self.per_step:
            self.scheduler.step()
        seconds = time.perf_counter() - start
        all_norms = torch.stack(norms).double()
        self.check_finite(loss_sum, all_norms.max(), epoch, len(norms))
        max_norm = self.cfg.clip_grad_norm
        return {
            "train_loss": (loss_sum / max(samples, 1)).item(),
            "grad_norm_mean": all_norms.mean().item(),
            "grad_norm_max": all_norms.max().item(),
            "clip_frac": (all_norms > max_norm).double().mean().item() if max_norm else 0.0,
            "steps": len(norms),
            "train_seconds": seconds,
            "samples_per_s": samples / seconds,
            "tokens_per_s": tokens / seconds,
        }

    def check_finite(self, loss: torch.Tensor, norm: torch.Tensor, epoch: int, step: int) -> None:
        value = float(loss.detach())
        limit = self.cfg.max_loss
        reason = None
        if not math.isfinite(value):
            reason = f"loss became {value}"
        elif not math.isfinite(float(norm)):
            reason = f"gradient norm became {float(norm)}"
        elif limit is not None and value > limit:
            reason = f"loss {value:.4g} exceeded train.max_loss={limit:g}"
        if reason:
            raise Diverged(f"epoch {epoch}, step {step}",
                           f"training diverged: {reason}; try a lower train.lr or "
                           f"train.clip_grad_norm (the last good checkpoint is kept)")

    def fit(self) -> TrainState:
        s, cfg, spec = self.state, self.cfg, self.task.spec
        while s.epoch < cfg.epochs and not s.stopped_early:
            train = self.train_epoch()
            t0 = time.perf_counter()
            val = evaluate(self.task, self.model, "val", self.eval_batch_size)
            s.epoch += 1
            s.train_seconds += train["train_seconds"]
            row: dict[str, Any] = {"epoch": s.epoch, "step": s.step,
                                   "lr": self.optimizer.param_groups[0]["lr"], **train}
            row.update({f"val_{k}": v for k, v in val.items()})
            row["seconds"] = train["train_seconds"] + (time.perf_counter() - t0)
            metric = val[spec.metric]
            es = cfg.early_stopping
            if better(metric, s.best, spec.mode, es.min_delta if es else 0.0):
                s.best, s.best_epoch, s.bad_epochs = metric, s.epoch, 0
                self.save_best(val)
            else:
                s.bad_epochs += 1
                if es is not None and s.bad_epochs >= es.patience:
                    s.stopped_early = True
            runs.append_jsonl(self.run_dir / runs.METRICS, row)
            s.history.append(row)
            self.save_last()
            self.reporter.epoch_end(row, spec.metric)
        return s


# ----------------------------------------------------------------------------- whole runs


def train_run(exp: Experiment, runs_dir: Path, reporter: Reporter) -> Path:
    """Validate, build, create the run directory, train, test, write the summary. Everything that
    can fail because of user input fails before the run directory exists."""
    device = resolve_device(exp.train.device)
    threads = set_threads(exp.train.threads)
    task, model = build(exp, device)
    run_dir = runs.create_run_dir(runs_dir, exp.name)
    runs.write_text(run_dir / runs.CONFIG, exp.to_yaml())
    task.save_artifacts(run_dir)
    trainer = Trainer(exp, task, model, run_dir, reporter, device, threads)
    summary = base_summary(exp, run_dir, task, model, device, threads)
    runs.write_json(run_dir / runs.SUMMARY, summary)
    reporter.run_start(run_dir, summary)
    return finish_run(trainer, summary)


def finish_run(trainer: Trainer, summary: dict[str, Any]) -> Path:
    run_dir = trainer.run_dir
    try:
        state = trainer.fit()
    except Interrupted:
        return close_run(trainer, summary, "interrupted")
    except Diverged as exc:
        summary["error"] = exc.line()
        close_run(trainer, summary, "diverged")
        raise
    except KeyboardInterrupt:
        close_run(trainer, summary, "interrupted")
        raise
    except BaseException as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}"
        close_run(trainer, summary, "failed")
        raise
    # final report: the best checkpoint on the test split, exactly as `rnnlab eval` does it
    best = runs.load_checkpoint(run_dir / runs.CHECKPOINTS / "best.pt", trainer.device)
    trainer.model.load_state_dict(best["model"])
    trainer.model.flatten_parameters()
    summary["test"] = evaluate(trainer.task, trainer.model, "test", trainer.eval_batch_size)
    summary["best_val"] = best["val"]
    trainer.reporter.plots(write_plots(trainer, run_dir))
    close_run(trainer, summary, "completed")
    trainer.reporter.run_end(run_dir, summary)
    del state
    return run_dir


def close_run(trainer: Trainer, summary: dict[str, Any], status: str) -> Path:
    s = trainer.state
    summary.update({
        "status": status,
        "epochs_completed": s.epoch,
        "best_epoch": s.best_epoch,
        "stopped_early": s.stopped_early,
        "steps": s.step,
        "train_seconds": round(s.train_seconds, 3),
        "finished": runs.now_iso(),
    })
    runs.write_json(trainer.run_dir / runs.SUMMARY, summary)
    return trainer.run_dir


def base_summary(exp: Experiment, run_dir: Path, task: Task, model: Model, device: torch.device,
                 threads: int) -> dict[str, Any]:
    return {
        "status": "running",
        "run_id": run_dir.name,
        "name": exp.name,
        "task": exp.task.name,
        "model": exp.model.name,
        "metric": task.spec.metric,
        "mode": task.spec.mode,
        "test": {},
        "best_epoch": None,
        "train_seconds": 0.0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": resolve_precision(exp.train.precision, device),
        "seed": exp.train.seed,
        "determinism": {
            "cpu": "bit-reproducible for a given seed, thread count and torch build",
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        },
        **environment(device, threads),
        "data": task.describe(),
        "command": " ".join(["rnnlab", *sys.argv[1:]]) if sys.argv else "",
        "started": runs.now_iso(),
    }


def write_plots(trainer: Trainer, run_dir: Path) -> list[Path]:
    if not trainer.exp.config.logging.plots:
        return []
    from .plots import learning_curves

    paths = [learning_curves(trainer.state.history, run_dir / runs.PLOTS / "learning_curves.png",
                             trainer.task.spec.metric, trainer.cfg.clip_grad_norm)]
    model = trainer.model
    model.eval()
    with torch.no_grad():
        paths += trainer.task.plots(model, run_dir)
    return paths


# ----------------------------------------------------------------------------- evaluation of runs


def load_run(run: str | os.PathLike[str], checkpoint: str = "best", device: str = "cpu"
             ) -> tuple[Path, Experiment, Task, Model, dict[str, Any]]:
    """Rebuild task and model from a run directory's own files."""
    from .config import build_experiment, read_yaml

    run_dir = runs.resolve_run(run)
    exp = build_experiment(read_yaml(run_dir / runs.CONFIG), str(run_dir / runs.CONFIG))
    summary = runs.read_summary(run_dir)
    dev = resolve_device(device, "--device")
    set_threads(summary.get("threads") or exp.train.threads)
    task, model = build(exp, dev, run_dir)
    ckpt = runs.load_checkpoint(run_dir / runs.CHECKPOINTS / f"{checkpoint}.pt", dev)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise runs.RunDirError(run_dir / runs.CHECKPOINTS / f"{checkpoint}.pt",
                               f"checkpoint does not match the run's model ({detail[:150]})") from None
    model.flatten_parameters()
    return run_dir, exp, task, model, summary


def evaluate_run(run: str | os.PathLike[str], split: str = "test", checkpoint: str = "best",
                 device: str = "cpu") -> dict[str, float]:
    _, exp, task, model, _ = load_run(run, checkpoint, device)
    batch = exp.train.eval_batch_size or 4 * exp.train.batch_size
    return evaluate(task, model, split, batch)

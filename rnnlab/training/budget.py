"""How long training goes: epochs, ``train.max_steps``, ``train.max_time``, and exact replays.

A time budget (``max_time``, Lightning's ``max_time``) stops training at the first optimizer step
boundary past the budget; the trainer then validates, saves and tests as after a last epoch. The
budget counts training time only (the steps' wall time, not validation), and a resumed run goes on
counting from the time already spent.

Under a budget, a per-step schedule (``cosine``, ``onecycle``) follows the elapsed fraction of the
budget, as a plain ``lr = f(elapsed / budget)`` recipe does: the scheduler is built over
``VIRTUAL_STEPS`` steps and, after each optimizer step, advanced to ``VIRTUAL_STEPS * elapsed /
budget``. How far it moved at each step is recorded (the run's *schedule trace*, kept in its
checkpoint), because a budgeted run is not bit-reproducible: how many steps fit in the budget, and
the learning rate of each, depend on the machine's speed. ``train.replay: RUN`` reruns exactly
RUN's steps with exactly its schedule and no budget, which on the same CPU and thread count gives
the same metrics, bit for bit. With ``max_steps`` given, schedules span those steps instead and
the budget only stops training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rnnlab.errors import ConfigError
from rnnlab.rundir import files as runs

VIRTUAL_STEPS = 10_000  # resolution of a time-driven schedule: 0.01 % of the budget

# keys a replay may differ in from the run it replays: they change how long or how verbosely
# training goes, not what a step computes
REPLAY_MAY_DIFFER = ("name", "train.max_time", "train.max_steps", "train.replay", "train.log_every",
                     "train.checkpoint_every", "train.early_stopping", "logging")

STOP_EPOCHS, STOP_EARLY, STOP_TIME, STOP_STEPS = "epochs", "early stopping", "time budget", "max_steps"


@dataclass
class Replay:
    """What a replay repeats: the run it comes from, its step count and its schedule trace."""

    run_dir: Path
    steps: int
    trace: Optional[list[int]]  # scheduler advances per step; None when the schedule was not timed


def load_replay(config: dict[str, Any], replay: str) -> Replay:
    """The run ``replay`` names, checked against ``config`` (the replaying run's resolved config):
    both must be the same experiment apart from ``REPLAY_MAY_DIFFER``."""
    from rnnlab.config.loading import read_yaml
    from rnnlab.config.schema import flatten

    where = "train.replay"
    run_dir = Path(replay).expanduser()
    if not (run_dir / runs.SUMMARY).is_file():
        raise ConfigError(where, f"{replay}: not a run directory (no {runs.SUMMARY})")
    summary = runs.read_summary(run_dir)
    if summary.get("status") != "completed":
        raise ConfigError(where, f"{replay}: status is {summary.get('status')!r}; only a completed "
                          "run can be replayed")
    last = run_dir / runs.CHECKPOINTS / "last.pt"
    ckpt = runs.load_checkpoint(last)
    trainer = ckpt.get("trainer") if isinstance(ckpt, dict) else None
    if not isinstance(trainer, dict) or not isinstance(trainer.get("step"), int):
        raise ConfigError(where, f"{last}: holds no training state to replay")
    saved = flatten(read_yaml(run_dir / runs.CONFIG))
    ours = flatten(config)
    for key in sorted(set(saved) | set(ours)):
        if any(key == k or key.startswith(k + ".") for k in REPLAY_MAY_DIFFER):
            continue
        if key not in saved and ours.get(key) == {}:  # added since the run (optimizer_options), empty
            continue
        if saved.get(key) != ours.get(key):
            raise ConfigError(where, f"{replay} was trained with {key}={saved.get(key)!r}, this config "
                              f"has {ours.get(key)!r}; a replay must be the same experiment")
    trace = trainer.get("schedule_trace")
    if trace is not None and len(trace) != trainer["step"]:
        raise ConfigError(where, f"{last}: its schedule trace has {len(trace)} steps, not "
                          f"{trainer['step']}")
    return Replay(run_dir, trainer["step"], list(trace) if trace is not None else None)


class StepPlan:
    """When training stops (``stop_reason``) and how far a per-step schedule advances after each
    optimizer step (``advance``), for one run's ``train`` settings."""

    def __init__(self, cfg: Any, steps_per_epoch: int, per_step_schedule: bool,
                 replay: Optional[Replay] = None) -> None:
        self.replay = replay
        self.budget: Optional[float] = None if replay is not None else cfg.max_time
        self.max_steps: Optional[int] = replay.steps if replay is not None else cfg.max_steps
        total = steps_per_epoch * cfg.epochs
        self.total_steps = min(total, self.max_steps) if self.max_steps is not None else total
        # the schedule follows the budget's elapsed fraction (or a replayed trace of it)
        self.timed = per_step_schedule and (
            (replay is not None and replay.trace is not None)
            or (replay is None and self.budget is not None and cfg.max_steps is None))

    @property
    def schedule_steps(self) -> int:
        """The length the scheduler is built for."""
        return VIRTUAL_STEPS if self.timed else self.total_steps

    def advance(self, step: int, position: int, elapsed: float) -> int:
        """Scheduler steps to take after global optimizer step ``step`` (1-based), the schedule
        standing at ``position`` (the sum of the steps taken so far)."""
        if not self.timed:
            return 1
        if self.replay is not None:
            assert self.replay.trace is not None
            return self.replay.trace[step - 1]
        assert self.budget is not None
        fraction = min(1.0, elapsed / self.budget)  # a tiny budget (5e-324 s) gives inf, not overflow
        target = math.floor(VIRTUAL_STEPS * fraction)
        return max(0, target - position)

    def stop_reason(self, steps: int, elapsed: float) -> Optional[str]:
        """Why training stops after ``steps`` steps and ``elapsed`` seconds of it, or None."""
        if self.max_steps is not None and steps >= self.max_steps:
            return STOP_STEPS
        if self.budget is not None and elapsed >= self.budget:
            return STOP_TIME
        return None

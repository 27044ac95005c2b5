"""A run's hyperparameters as trackers log them (MLflow params, TensorBoard's HPARAMS tab): the
resolved config flattened to dotted keys, without the options that had no effect on the run.

An option has no effect when it belongs to an optimizer or a scheduler other than the one the run
used: ``train.momentum`` (read by ``sgd`` only) under ``adam``, ``train.scheduler.gamma`` (``step``)
under ``cosine``. Each registry entry declares the keys it reads (``optim.optimizer_entry`` /
``scheduler_entry``); an optimizer or scheduler that is not registered in this process (a plugin
not loaded) keeps every key, as nothing says which it reads.
"""

from __future__ import annotations

from typing import Any


def unused_train_keys(train: dict[str, Any]) -> set[str]:
    """The dotted ``train.*`` keys that the run's optimizer and scheduler do not read."""
    from rnnlab.registry import OPTIMIZERS, SCHEDULERS
    from rnnlab.config.schema import Scheduler

    unused: set[str] = set()
    optimizer = train.get("optimizer")
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        reads = getattr(OPTIMIZERS.get(optimizer), "options", frozenset())
        everyone = set().union(*(getattr(OPTIMIZERS.get(n), "options", frozenset())
                                 for n in OPTIMIZERS.names()))
        unused |= {f"train.{key}" for key in everyone - set(reads) - {"lr"}}
    scheduler = train.get("scheduler")
    name = scheduler.get("name") if isinstance(scheduler, dict) else scheduler
    if isinstance(name, str) and name in SCHEDULERS:
        reads = getattr(SCHEDULERS.get(name), "options", frozenset())
        options = set(Scheduler.model_fields) - {"name"}
        unused |= {f"train.scheduler.{key}" for key in options - set(reads)}
    return unused


def in_effect(config: dict[str, Any]) -> dict[str, Any]:
    """The config as dotted keys (``train.lr``) with only the options in effect."""
    from rnnlab.config.schema import flatten

    train = config.get("train")
    unused = unused_train_keys(train) if isinstance(train, dict) else set()
    return {key: value for key, value in flatten(config).items() if key not in unused}

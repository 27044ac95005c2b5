"""What a plugin calls to add its entries: ``register_task``, ``register_model``,
``register_optimizer``, ``register_scheduler`` (also as ``rnnlab.register_*``). How plugins are found,
loaded and recorded in a run: ``rnnlab.config.plugins``."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, TypeVar

from rnnlab.registry import MODELS, TASKS

T = TypeVar("T")


def register_task(name: str, description: str = "") -> Callable[[T], T]:
    """Class decorator: a ``rnnlab.tasks.base.Task`` subclass under ``task.name: NAME``."""
    return TASKS.register(name, description)


def register_model(name: str, description: str = "") -> Callable[[T], T]:
    """Class decorator: a ``rnnlab.models.base.Model`` subclass under ``model.name: NAME``."""
    return MODELS.register(name, description)


def register_optimizer(name: str, description: str = "",
                       options: Sequence[str] = ("lr", "weight_decay", "momentum"),
                       schema: Optional[type] = None) -> Callable[[T], T]:
    """Function decorator: ``build(params, train) -> torch.optim.Optimizer`` under
    ``train.optimizer: NAME`` (``train`` is the validated train section); ``options``: the shared
    ``train.*`` keys it reads; ``schema``: a ``rnnlab.training.optim.OptimizerOptions`` subclass of
    its own options, set under ``train.optimizer_options`` and read as ``train.optimizer_settings``
    (defaults filled in). ``rnnlab list NAME`` shows both."""
    from rnnlab.training.optim import optimizer_entry

    return optimizer_entry(name, description, options, schema)  # type: ignore[return-value]


def register_scheduler(name: str, description: str = "", options: Sequence[str] = (),
                       per_step: bool = False, on_metric: bool = False,
                       schema: Optional[type] = None) -> Callable[[T], T]:
    """Function decorator: ``build(train, optimizer, total_steps, mode) -> scheduler or None`` under
    ``train.scheduler: NAME``. ``schema``: a ``rnnlab.training.optim.SchedulerOptions`` subclass of
    its options (set beside ``name``, read as ``train.scheduler.<option>``, defaults filled in); or,
    without one, ``options``: the names of the old ``train.scheduler.*`` keys it reads (None when not
    given). ``per_step``: stepped after each optimizer step (else each epoch); ``on_metric``: stepped
    with the validation metric, like ReduceLROnPlateau."""
    from rnnlab.training.optim import scheduler_entry

    return scheduler_entry(name, description, options, per_step, on_metric, schema)  # type: ignore[return-value]

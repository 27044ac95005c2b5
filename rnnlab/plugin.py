"""What a plugin calls to add its entries: ``register_task``, ``register_model``,
``register_optimizer``, ``register_scheduler`` (also as ``rnnlab.register_*``). How plugins are found,
loaded and recorded in a run: ``rnnlab.config.plugins``."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from rnnlab.registry import MODELS, TASKS

T = TypeVar("T")


def register_task(name: str, description: str = "") -> Callable[[T], T]:
    """Class decorator: a ``rnnlab.tasks.base.Task`` subclass under ``task.name: NAME``."""
    return TASKS.register(name, description)


def register_model(name: str, description: str = "") -> Callable[[T], T]:
    """Class decorator: a ``rnnlab.models.base.Model`` subclass under ``model.name: NAME``."""
    return MODELS.register(name, description)


def register_optimizer(name: str, description: str = "",
                       options: Sequence[str] = ("lr", "weight_decay", "momentum")) -> Callable[[T], T]:
    """Function decorator: ``build(params, train) -> torch.optim.Optimizer`` under
    ``train.optimizer: NAME`` (``train`` is the validated train section); ``options``: the
    ``train.*`` keys it reads, which ``rnnlab list NAME`` shows."""
    from rnnlab.training.optim import optimizer_entry

    return optimizer_entry(name, description, options)  # type: ignore[return-value]


def register_scheduler(name: str, description: str = "", options: Sequence[str] = (),
                       per_step: bool = False, on_metric: bool = False) -> Callable[[T], T]:
    """Function decorator: ``build(train, optimizer, total_steps, mode) -> scheduler or None`` under
    ``train.scheduler: NAME``. ``options``: the ``train.scheduler.*`` keys it reads; ``per_step``:
    stepped after each optimizer step (else each epoch); ``on_metric``: stepped with the validation
    metric, like ReduceLROnPlateau."""
    from rnnlab.training.optim import scheduler_entry

    return scheduler_entry(name, description, options, per_step, on_metric)  # type: ignore[return-value]

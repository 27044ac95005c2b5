"""A run's hyperparameters as trackers log them (MLflow params, TensorBoard's HPARAMS tab): the
resolved config flattened to dotted keys, with only the options in effect and their values in effect.

An option has no effect when it belongs to an optimizer or a scheduler other than the one the run
used: ``train.momentum`` (read by ``sgd`` only) under ``adam``, ``train.scheduler.gamma`` (``step``)
under ``cosine``. Each registry entry declares the shared keys it reads (``optim.optimizer_entry``)
and owns a schema of its options (``Options``): an option left at its default (null in the resolved
config) is logged with the default from that schema. An optimizer or scheduler that is not
registered in this process (a plugin not loaded) keeps every key as written, as nothing says which
it reads.
"""

from __future__ import annotations

from typing import Any

from rnnlab.config.schema import flatten
from rnnlab.registry import OPTIMIZERS, SCHEDULERS


def _in_effect(schema: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (null: the default) with the schema's defaults filled in; as written when it does not
    validate (a config from another version)."""
    try:
        known = {k: v for k, v in given.items() if v is not None and k in schema.model_fields}
        return schema.model_validate(known).model_dump(mode="json")
    except ValueError:
        return {k: v for k, v in given.items() if k in schema.model_fields}


def options_in_effect(train: dict[str, Any]) -> dict[str, Any]:
    """The dotted ``train.*`` keys of a resolved train section: the run's optimizer and scheduler
    options with their values in effect; the other optimizers' shared keys and the other
    schedulers' options left out."""
    train = dict(train)
    drop: set[str] = set()
    optimizer = train.get("optimizer")
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        build = OPTIMIZERS.get(optimizer)
        everyone = set().union(*(OPTIMIZERS.get(n).reads for n in OPTIMIZERS.names()))
        drop |= everyone - build.reads - {"lr"}
        if isinstance(train.get("optimizer_options"), dict):  # resolved configs have it (from 2026-12)
            train["optimizer_options"] = _in_effect(build.Options, train["optimizer_options"]) or None
            if train["optimizer_options"] is None:
                drop.add("optimizer_options")
    scheduler = train.get("scheduler")
    name = scheduler.get("name") if isinstance(scheduler, dict) else scheduler
    if isinstance(scheduler, dict) and isinstance(name, str) and name in SCHEDULERS:
        schema = SCHEDULERS.get(name).Options
        train["scheduler"] = {"name": name, **_in_effect(schema, scheduler)}
    flat = flatten(train, "train")
    return {k: v for k, v in flat.items() if k.partition(".")[2].split(".")[0] not in drop}


def in_effect(config: dict[str, Any]) -> dict[str, Any]:
    """The config as dotted keys (``train.lr``) with only the options in effect."""
    out = {k: v for k, v in flatten(config).items() if not k.startswith("train.")}
    train = config.get("train")
    if isinstance(train, dict):
        out.update(options_in_effect(train))
    elif "train" in config:
        out.update({k: v for k, v in flatten(config).items() if k == "train" or k.startswith("train.")})
    return out

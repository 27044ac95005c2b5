"""The config contract: YAML with sections ``task``, ``model``, ``train``, ``data``, ``logging``.

``task`` and ``model`` name registry entries; each entry declares a pydantic model for its own
options (and a task for its ``data`` section), so every key is validated before anything runs and
errors name the field: ``model.hidden_size: must be > 0, got -3``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from rnnlab.common.safeio import dump_yaml
from rnnlab.config.messages import _allowed_keys, _describe, _error_message
from rnnlab.config.schema import Config
from rnnlab.errors import ConfigError
from rnnlab.registry import did_you_mean

#: config keys a resumed run may change (``--resume --set``): how long or how verbosely training goes
#: on, not what a step does; a checkpoint's identity leaves them out too (``identity``)
SAFE_TO_CHANGE = (
    "train.epochs",  # extend or shorten a run (not with a per-step cosine/onecycle schedule)
    "train.early_stopping",
    "train.max_loss",
    "train.checkpoint_every",
    "train.log_every",
    "train.threads",  # results may differ in the last bits with another thread count
    "train.device",  # e.g. finish a GPU run on a CPU; not bit-exact across devices
    "logging.plots",
    "logging.tensorboard",
    "logging.mlflow",
)

SECTIONS = ("name", "plugins", "task", "model", "train", "data", "logging", "sweep")


class Experiment:
    """A validated config with its task and model option objects resolved."""

    def __init__(self, config: Config, task_options: BaseModel, data_options: BaseModel,
                 model_options: BaseModel) -> None:
        self.config = config
        self.task = task_options
        self.data = data_options
        self.model = model_options
        self.train = config.train

    @property
    def name(self) -> str:
        return self.config.name or "run"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.config.name}
        if self.config.plugins:  # absolute paths or module names: any directory finds them again
            out["plugins"] = list(self.config.plugins)
        out["task"] = self.task.model_dump(mode="json")
        out["model"] = self.model.model_dump(mode="json")
        out["train"] = self.train.model_dump(mode="json")
        out["data"] = self.data.model_dump(mode="json")
        out["logging"] = self.config.logging.model_dump(mode="json")
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


# ----------------------------------------------------------------------------- errors


def validate_section(model: type[BaseModel], data: Any, prefix: str, where: str) -> BaseModel:
    """Validate one section, turning the first pydantic error into a one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(where, f"{prefix}: must be a mapping, got {_describe(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        field, text = _error_message(errors[0], model)
        head, sep, rest = text.partition(": ")
        allowed = _allowed_keys(model, field.split(".") if field else [])
        if sep and (head.split(".")[0] in allowed or ("*" in allowed and head.isidentifier())):
            field, text = ".".join(p for p in (field, head) if p), rest  # a check naming its field
        full = ".".join(p for p in (prefix, field) if p)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(where, f"{full}: {text}{more}") from None


# ----------------------------------------------------------------------------- loading


def parse_override(item: str, where: str = "--set") -> tuple[list[str], Any]:
    """``"a.b=VALUE"`` -> (["a", "b"], VALUE read as YAML); errors name ``where``."""
    from rnnlab.common.safeio import load_yaml

    if "=" not in item:
        raise ConfigError(where, f"expected KEY=VALUE with a dotted key, got {item!r}")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(where, f"bad key {key!r} in {item!r}")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


Overrides = Union[Sequence[str], Mapping[str, Any]]


def override_pairs(overrides: Overrides, where: str = "--set") -> list[tuple[list[str], Any]]:
    """(dotted key parts, value) per override: ``"KEY=VALUE"`` strings (values read as YAML) or a
    mapping ``{"train.lr": 1e-3}`` (values taken as given; a nested mapping such as
    ``{"train": {"lr": 1e-3}}`` sets its keys one by one)."""
    if not isinstance(overrides, Mapping):
        return [parse_override(item, where) for item in overrides]
    pairs = []
    for key, value in overrides.items():
        parts = key.split(".") if isinstance(key, str) else []
        if not parts or any(not p.strip() for p in parts):
            raise ConfigError(where, f"bad key {key!r}: expected a dotted key such as 'train.lr'")
        parts = [p.strip() for p in parts]
        if isinstance(value, Mapping) and value:
            pairs += [(parts + sub, v) for sub, v in override_pairs(value, where)]
        else:
            pairs.append((parts, value))
    return pairs


def apply_overrides(raw: dict[str, Any], overrides: Overrides, where: str = "--set") -> dict[str, Any]:
    for parts, value in override_pairs(overrides, where):
        set_dotted(raw, parts, value, where)
    return raw


def set_dotted(raw: dict[str, Any], parts: list[str], value: Any, where: str = "--set") -> None:
    """Set ``raw[a][b][c] = value`` for the key ``a.b.c``, creating mappings on the way."""
    if parts[0] not in SECTIONS:
        raise ConfigError(
            where, f"{'.'.join(parts)}: unknown section '{parts[0]}'"
            f"{did_you_mean(parts[0], list(SECTIONS))}; sections: {', '.join(SECTIONS)}"
        )
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None or not isinstance(child, dict):
            if child is not None and not isinstance(child, dict):
                # e.g. train.scheduler=cosine then train.scheduler.min_lr_ratio=0.1
                child = {"name": child} if isinstance(child, str) else {}
            else:
                child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    from rnnlab.common.safeio import MAX_CONFIG_BYTES, load_yaml, read_bytes_bounded

    p = Path(path)
    if not p.exists():
        raise ConfigError(p, "config file not found")
    if p.is_dir():
        raise ConfigError(p, "is a directory, expected a YAML config file")
    raw_bytes = read_bytes_bounded(p, MAX_CONFIG_BYTES, "config file", ConfigError)
    if b"\x00" in raw_bytes or raw_bytes.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(p, "cannot read: not UTF-8 text (it holds NUL bytes or a UTF-16/32 "
                          "byte-order mark; save the config as UTF-8)")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(p, f"cannot read: not valid UTF-8 text (byte {exc.start}); save the "
                          "config as UTF-8") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(p, f"{at}invalid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(p, "config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(p, f"top level must be a mapping of sections, got {type(raw).__name__}")
    return raw


def build_experiment(raw: dict[str, Any], where: str = "config", base_dir: Path | None = None
                     ) -> Experiment:
    """Validate a raw config mapping (after overrides) into an Experiment. Its ``plugins`` (``.py``
    paths relative to ``base_dir``, default the working directory) are imported first."""
    from rnnlab.config.plugins import load_entry_points, load_plugins
    from rnnlab.registry import MODELS, TASKS

    raw = dict(raw)
    load_entry_points()
    if raw.get("plugins") is not None:
        raw["plugins"] = load_plugins(raw["plugins"], where, base_dir)
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(where, f"{key}: unknown section{did_you_mean(str(key), list(SECTIONS))}; "
                              f"sections: {', '.join(SECTIONS)}")
    for section in ("task", "model"):
        if section not in raw or raw[section] is None:
            raise ConfigError(where, f"{section}: section is required (with at least '{section}.name')")
        if not isinstance(raw[section], dict):
            raise ConfigError(where, f"{section}: must be a mapping, got {_describe(raw[section])}")
        if "name" not in raw[section]:
            raise ConfigError(where, f"{section}.name: is required")
    if raw.get("data") is None:
        raw["data"] = {}
    config = validate_section(Config, raw, "", where)
    assert isinstance(config, Config)
    task_cls = TASKS.get(str(config.task["name"]), f"{where}: task.name")
    model_cls = MODELS.get(str(config.model["name"]), f"{where}: model.name")
    task_opts = validate_section(task_cls.Options, config.task, "task", where)
    data_opts = validate_section(task_cls.DataOptions, config.data, "data", where)
    model_opts = validate_section(model_cls.Options, config.model, "model", where)
    exp = Experiment(config, task_opts, data_opts, model_opts)
    task_cls.check_compatible(exp, where)
    model_cls.check_options(model_opts, where)
    return exp


def load_experiment(path: str | os.PathLike[str], overrides: Overrides | None = None,
                    name: str | None = None, where: str = "--set") -> Experiment:
    """The config file with ``overrides`` (errors in them name ``where``) and a run name applied."""
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides or [], where)
    if name is not None:
        raw["name"] = name
    elif raw.get("name") is None:  # an empty name is refused like every invalid one (names.py)
        raw["name"] = Path(path).stem
    return build_experiment(raw, str(path), Path(path).parent)

"""The config contract: YAML with sections ``task``, ``model``, ``train``, ``data``, ``logging``.

``task`` and ``model`` name registry entries; each entry declares a pydantic model for its own
options (and a task for its ``data`` section), so every key is validated before anything runs and
errors name the field: ``model.hidden_size: must be > 0, got -3``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .registry import did_you_mean

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
INT64 = (-(2**63), 2**63 - 1)  # what torch (seeds, sizes, counts) can hold
FLOAT32_MAX = 3.4028234663852886e38  # what a float32 tensor (weights, biases, losses) can hold


def _scalar_kinds(annotation: Any) -> set[Any]:
    """The scalar types a field accepts: int/float/bool/str (a Literal of strings counts as str);
    a nested model or container counts as ``object`` (it has its own rules)."""
    import typing

    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    if origin is not None and typing.get_args(annotation) and origin not in (list, dict, tuple, set):
        kinds: set[Any] = set()
        for arg in typing.get_args(annotation):
            kinds |= _scalar_kinds(arg)
        return kinds
    if annotation in (int, float, bool, str, type(None)):
        return {annotation}
    return {object}


def coercion_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` would only fit ``annotation`` by a silent coercion, or None."""
    kinds = _scalar_kinds(annotation)
    if object in kinds:
        return None
    numbers = kinds & {int, float}
    noun = "an integer" if numbers == {int} else "a number"
    if isinstance(value, bool):
        if bool not in kinds and numbers:
            return f"must be {noun}, not a boolean, got {str(value).lower()}"
    elif isinstance(value, str):
        if str not in kinds and numbers:
            return f"must be {noun}, got {_describe(value)}"
    elif (isinstance(value, (int, float)) and float in kinds and int not in kinds
          and abs(value) > FLOAT32_MAX and value == value and abs(value) != float("inf")):
        return f"must be within float32's range (|x| <= 3.4e38: torch computes in it), got {value:.3g}"
    elif isinstance(value, int) and int in kinds and not INT64[0] <= value <= INT64[1]:
        shown = str(value) if len(str(value)) <= 30 else f"a {len(str(abs(value)))}-digit number"
        return f"must fit in 64 bits (between -2**63 and 2**63-1), got {shown}"
    return None


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated, and
    numbers must be finite (``.nan``/``.inf`` would only surface later as a diverged run)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)
    PARSES_TEXT: ClassVar[tuple[str, ...]] = ()  # number fields whose own validator reads text

    @model_validator(mode="before")
    @classmethod
    def _no_silent_coercion(cls, data: Any) -> Any:
        """What pydantic's lax mode would coerce is refused: a boolean is not an integer or a
        number, a string is not a number, and an integer must fit in 64 bits (torch's limit)."""
        if isinstance(data, dict):
            for key, value in data.items():
                info = cls.model_fields.get(key) if isinstance(key, str) else None
                if info is not None and key not in cls.PARSES_TEXT:
                    problem = coercion_problem(value, info.annotation)
                    if problem:
                        raise ValueError(f"{key}: {problem}")
        return data


class Scheduler(Strict):
    name: str = Field("none", description="a registered scheduler (rnnlab list): none, step, cosine, "
                      "onecycle, plateau, or a plugin's")
    step_size: Optional[int] = Field(None, gt=0, description="step: epochs between decays")
    gamma: Optional[float] = Field(None, gt=0, le=1, description="step: decay factor")
    min_lr_ratio: Optional[float] = Field(None, ge=0, le=1, description="cosine: final lr / lr")
    warmup_steps: Optional[int] = Field(
        None, ge=0, description="cosine: raise lr linearly from lr / warmup_steps to lr over the first "
        "N optimizer steps, then decay")
    factor: Optional[float] = Field(None, gt=0, lt=1, description="plateau: lr multiplier on a plateau")
    patience: Optional[int] = Field(
        None, ge=0, description="plateau: epochs without a better validation metric before lowering lr")
    pct_start: Optional[float] = Field(None, gt=0, lt=1, description="onecycle: warm-up fraction")
    div_factor: Optional[float] = Field(None, gt=0, description="onecycle: lr / initial lr")
    final_div_factor: Optional[float] = Field(None, gt=0, description="onecycle: initial lr / final lr")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) or value is None else value

    @model_validator(mode="after")
    def _options_match_name(self) -> "Scheduler":
        from .optim import SCHEDULERS

        if self.name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.name!r}{did_you_mean(self.name, SCHEDULERS.names())}; "
                             f"known: {', '.join(SCHEDULERS.names())}")
        allowed = SCHEDULERS.get(self.name).options
        for key in self.model_fields_set - {"name"}:
            if key not in allowed and getattr(self, key) is not None:
                raise ValueError(f"option '{key}' does not apply to scheduler '{self.name}'")
        return self


class EarlyStopping(Strict):
    patience: int = Field(5, gt=0)
    min_delta: float = Field(0.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_int(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"patience": value}
        return value


class CheckpointEvery(Strict):
    """Mid-epoch checkpoints (``last.pt`` is always written at each epoch end): every ``steps``
    optimizer steps or every ``minutes`` of wall time. ``500``, ``"500 steps"``, ``"10 min"``."""

    steps: Optional[int] = Field(None, gt=0)
    minutes: Optional[float] = Field(None, gt=0)

    _TEXT: ClassVar[re.Pattern[str]] = re.compile(
        r"^\s*(\d+(?:\.\d*)?)\s*(steps?|m|mins?|minutes?)\s*$", re.IGNORECASE)

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"steps": value}
        if isinstance(value, str):
            match = cls._TEXT.match(value)
            if match is None:
                raise ValueError(f"expected N steps or M minutes (e.g. 500, '500 steps', '10 min'), "
                                 f"got {value!r}")
            text, unit = match.groups()
            number = float(text)
            if unit.lower().startswith("step"):
                return {"steps": int(number) if number.is_integer() else number}
            return {"minutes": number}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "CheckpointEvery":
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give exactly one of 'steps' or 'minutes'")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?)?\s*$",
                       re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: ``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (an empty
    mapping stays a value)."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def parse_duration(value: Any) -> Any:
    """``"10 min"``, ``"90 s"``, ``"1.5 h"`` or a number of seconds -> seconds (other values are
    left for the field's own validation to reject)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10 min', '90 s' or seconds, got {value}")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as '10 min', '90 s', '1 h' or seconds, got {value!r}")
        number, unit = match.groups()
        return float(number) * _UNIT_SECONDS[(unit or "s")[0].lower()]
    return value


class TrainConfig(Strict):
    PARSES_TEXT: ClassVar[tuple[str, ...]] = ("max_time",)  # "10 min", "90 s": parse_duration
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: Optional[int] = Field(None, gt=0, description="default: 4 x batch_size")
    steps_per_epoch: Optional[int] = Field(
        None, gt=0, description="fixed number of optimizer steps per epoch (default: one pass)"
    )
    tokens_per_epoch: Optional[int] = Field(
        None, gt=0, description="an epoch is this many tokens (rounded up to whole steps; passes are chained)"
    )
    lr: float = Field(1e-3, gt=0)
    optimizer: str = Field(
        "adam", description="a registered optimizer (rnnlab list): adam, adamw, sgd, or a plugin's")
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="autocast dtype for training steps (fp16 adds a gradient scaler; CUDA "
        "only); auto: bf16 on CPUs with native bfloat16 (AVX512-BF16 or AMX), else fp32")
    threads: Optional[int] = Field(None, gt=0, description="torch CPU threads (default: all cores)")
    clip_grad_norm: Optional[float] = Field(1.0, ge=0, description="0 or null disables")
    clip_grad_value: Optional[float] = Field(None, gt=0)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    early_stopping: Optional[EarlyStopping] = None
    max_loss: Optional[float] = Field(
        None, gt=0, description="stop as diverged when a training loss exceeds this")
    max_time: Optional[float] = Field(
        None, gt=0, description="training time budget ('10 min', '90 s', seconds): stop at the first "
        "step past it, then validate, save and test; per-step schedules follow the elapsed fraction")
    max_steps: Optional[int] = Field(
        None, gt=0, description="stop after this many optimizer steps in all (schedules span them)")
    replay: Optional[str] = Field(
        None, description="a budgeted run's directory: rerun exactly its steps and schedule, no budget")
    log_every: int = Field(50, gt=0, description="steps between plain progress lines")
    checkpoint_every: Optional[CheckpointEvery] = Field(
        None, description="also checkpoint mid-epoch, every N steps or M minutes (null: epoch ends only)")

    @field_validator("tokens_per_epoch")
    @classmethod
    def _one_epoch_definition(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if value is not None and info.data.get("steps_per_epoch") is not None:
            raise ValueError("set either steps_per_epoch or tokens_per_epoch, not both")
        return value

    @model_validator(mode="after")
    def _warmup_needs_steps(self) -> "TrainConfig":
        warmup = getattr(self.scheduler, "warmup_steps", None)
        if self.max_time is not None and self.max_steps is None and warmup:
            raise ValueError("scheduler.warmup_steps: counts optimizer steps, which a time budget "
                             "(max_time) does not fix; set train.max_steps too, or drop the warm-up")
        return self

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        from .optim import OPTIMIZERS

        if value not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {value!r}{did_you_mean(value, OPTIMIZERS.names())}; "
                             f"known: {', '.join(OPTIMIZERS.names())}")
        return value

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("early_stopping", "checkpoint_every", mode="before")
    @classmethod
    def _zero_disables(cls, value: Any) -> Any:
        return None if value in (0, False) else value


class MlflowOptions(Strict):
    """``logging.mlflow: true`` or a mapping of these (see ``rnnlab.mlflow_log``)."""

    tracking_uri: Optional[str] = Field(
        None, description="MLflow tracking URI (default: sqlite:///<runs dir>/mlflow.db)")
    experiment: Optional[str] = Field(None, description="MLflow experiment (default: rnnlab)")
    log_checkpoint: bool = Field(False, description="also log checkpoints/best.pt as an artifact")


class LoggingConfig(Strict):
    plots: bool = True
    tensorboard: bool = Field(False, description="write TensorBoard scalars into <run>/tensorboard "
                              "(needs the 'tensorboard' extra)")
    mlflow: Optional[MlflowOptions] = Field(
        None, description="track the run in MLflow: true, or {tracking_uri, experiment, log_checkpoint} "
        "(needs the 'mlflow' extra)")

    @field_validator("mlflow", mode="before")
    @classmethod
    def _mlflow_switch(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value


class Config(Strict):
    """The whole experiment. ``task``/``model``/``data`` are validated by their registry entries."""

    name: Optional[str] = None
    task: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: dict[str, Any] = Field(default_factory=dict)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    sweep: Optional[dict[str, Any]] = None
    plugins: list[str] = Field(default_factory=list, description="modules or .py files to import first "
                               "(their registrations: tasks, models, optimizers, schedulers)")

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: Optional[str]) -> Optional[str]:
        from .names import name_problem

        problem = name_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(f"invalid run name {value[:60]!r}: {problem}")
        return value


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
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- errors


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) < 60 else text[:57] + "..."
    return repr(value) if isinstance(value, str) else str(value)


def _error_message(err: dict[str, Any], section_model: type[BaseModel] | None) -> tuple[str, str]:
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    # pydantic puts union/tagged branches in the location; keep the field path only.
    loc = [p for p in loc if p not in ("int", "float", "str", "bool", "list[int]", "EarlyStopping",
                                        "Scheduler", "CheckpointEvery", "none")]
    kind, ctx, given = err["type"], err.get("ctx", {}), err.get("input")
    field = ".".join(loc)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(section_model, loc[:-1])
        hint = did_you_mean(loc[-1], allowed)
        return field, f"unknown key{hint}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        return field, "is required"
    messages = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "literal_error": "must be one of {expected}",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "too_short": "must have at least {min_length} item(s)",
        "finite_number": "must be a finite number",
    }
    if kind in messages:
        text = messages[kind].format(**{k: str(v) for k, v in ctx.items()})
        return field, f"{text}, got {_describe(given)}"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    return field, msg[:1].lower() + msg[1:]


def _allowed_keys(model: type[BaseModel] | None, path: list[str]) -> list[str]:
    for part in path:
        if model is None:
            return []
        info = model.model_fields.get(part)
        if info is None:
            return []
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return sorted(model.model_fields) if model is not None else []


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
        if sep and head.split(".")[0] in _allowed_keys(model, field.split(".") if field else []):
            field, text = ".".join(p for p in (field, head) if p), rest  # a check naming its field
        full = ".".join(p for p in (prefix, field) if p)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(where, f"{full}: {text}{more}") from None


# ----------------------------------------------------------------------------- loading


def parse_override(item: str) -> tuple[list[str], Any]:
    from .safeio import load_yaml

    if "=" not in item:
        raise ConfigError("--set", f"expected KEY=VALUE with a dotted key, got {item!r}")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise ConfigError("--set", f"bad key {key!r} in {item!r}")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        set_dotted(raw, parts, value)
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
    from .safeio import MAX_CONFIG_BYTES, load_yaml, read_bytes_bounded

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
    from .models import MODELS
    from .plugins import load_entry_points, load_plugins
    from .tasks import TASKS

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


def load_experiment(path: str | os.PathLike[str], overrides: list[str] | None = None,
                    name: str | None = None) -> Experiment:
    raw = read_yaml(path)
    raw = apply_overrides(raw, list(overrides or []))
    if name is not None:
        raw["name"] = name
    elif raw.get("name") is None:  # an empty name is refused like every invalid one (names.py)
        raw["name"] = Path(path).stem
    return build_experiment(raw, str(path), Path(path).parent)

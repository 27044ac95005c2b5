"""The typed config sections: the strict base model every section and every task's and model's
options build on (unknown keys, wrong types and out-of-range values refused), and the train,
logging and top-level schemas.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from rnnlab.config.messages import _describe, entry_options
from rnnlab.registry import registered

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


#: the keys every resolved ``train.scheduler`` writes (null: not given, the option's default), as it
#: did when the built-in schedulers shared one schema: run directories keep one format, and the
#: config hash in checkpoints written before still matches (``rundir.identity``)
SCHEDULER_KEYS = ("step_size", "gamma", "min_lr_ratio", "warmup_steps", "factor", "patience",
                  "pct_start", "div_factor", "final_div_factor")


class Scheduler(Strict):
    """``train.scheduler``: a registered scheduler's name, or a mapping of ``name`` and that
    scheduler's options (its own schema, ``rnnlab list NAME``). Reading an option gives the value in
    effect (its default when not given); the config is written out as given, null where the default
    applies."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)
    name: str = Field("none", description="a registered scheduler (rnnlab list): none, step, cosine, "
                      "onecycle, plateau, or a plugin's")
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) or value is None else value

    @field_validator("name")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        from rnnlab.registry import SCHEDULERS

        return registered(SCHEDULERS, value)

    @model_validator(mode="after")
    def _options_of_the_scheduler(self) -> "Scheduler":
        from rnnlab.registry import SCHEDULERS

        schema = SCHEDULERS.get(self.name).Options
        extra = self.__pydantic_extra__ or {}
        # null: not given (every resolved config writes every key of the old closed schema)
        given = {k: v for k, v in extra.items()
                 if not (v is None and (k in SCHEDULER_KEYS or k in schema.model_fields))}
        options = entry_options(schema, given, f"scheduler {self.name!r}", "")
        self._given = options.model_dump(mode="json", exclude_unset=True)
        in_effect: dict[str, Any] = dict.fromkeys(SCHEDULER_KEYS)
        in_effect.update(dict(options))
        object.__setattr__(self, "__pydantic_extra__", in_effect)
        return self

    @model_serializer(mode="plain")
    def _as_given(self) -> dict[str, Any]:
        from rnnlab.registry import SCHEDULERS

        out: dict[str, Any] = {"name": self.name, **dict.fromkeys(SCHEDULER_KEYS)}
        out.update(dict.fromkeys(SCHEDULERS.get(self.name).Options.model_fields))
        out.update(self._given)
        return out

    def options(self) -> BaseModel:
        """The options in effect, as the scheduler's schema holds them."""
        from rnnlab.registry import SCHEDULERS

        schema = SCHEDULERS.get(self.name).Options
        return schema.model_validate(self._given)


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
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only (PyTorch's default: 0); other "
                            "optimizers leave it unused")
    optimizer_options: dict[str, Any] = Field(
        default_factory=dict, description="the optimizer's own options (rnnlab list NAME), e.g. "
        "{betas: [0.9, 0.95]} for adam/adamw; lr, weight_decay, momentum stay train keys")
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

    _optimizer_settings: Any = PrivateAttr(None)

    @field_validator("optimizer_options", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _options_of_the_optimizer(self) -> "TrainConfig":
        from rnnlab.registry import OPTIMIZERS

        schema = OPTIMIZERS.get(self.optimizer).Options
        given = {k: v for k, v in self.optimizer_options.items()
                 if not (v is None and k in schema.model_fields)}
        for key in given:
            if key in type(self).model_fields and key not in schema.model_fields:
                raise ValueError(f"optimizer_options.{key}: is a train key; set train.{key}")
        options = entry_options(schema, given, f"optimizer {self.optimizer!r}", "optimizer_options")
        check = getattr(options, "check", None)
        if check is not None:
            check(self)
        self._optimizer_settings = options
        self.__dict__["optimizer_options"] = options.model_dump(mode="json", exclude_unset=True)
        return self

    @property
    def optimizer_settings(self) -> Any:
        """The optimizer's own options in effect (its ``Options`` schema, defaults filled in)."""
        if self._optimizer_settings is None:
            from rnnlab.registry import OPTIMIZERS

            self._optimizer_settings = OPTIMIZERS.get(self.optimizer).Options.model_validate(
                self.optimizer_options)
        return self._optimizer_settings

    @property
    def eval_batch(self) -> int:
        """Validation and test batch size: ``eval_batch_size``, else 4 x ``batch_size``."""
        return self.eval_batch_size or 4 * self.batch_size

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        from rnnlab.registry import OPTIMIZERS

        return registered(OPTIMIZERS, value)

    @field_validator("max_time", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("early_stopping", "checkpoint_every", mode="before")
    @classmethod
    def _zero_disables(cls, value: Any) -> Any:
        return None if value in (0, False) else value


class MlflowOptions(Strict):
    """``logging.mlflow: true`` or a mapping of these (see ``rnnlab.integrations.mlflow_logging``)."""

    tracking_uri: Optional[str] = Field(
        None, description="MLflow tracking URI (default: sqlite:///<runs dir>/mlflow.db)")
    experiment: Optional[str] = Field(None, description="MLflow experiment (default: rnnlab)")
    log_checkpoint: bool = Field(False, description="also log the model: checkpoints/best.pt, and "
                                 "runs:/<id>/model (mlflow.pytorch) where the installed MLflow has it")


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
        from rnnlab.config.names import name_problem

        problem = name_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(f"invalid run name {value[:60]!r}: {problem}")
        return value

"""Config errors as one line naming the field (``train.lr: must be > 0, got -1``): pydantic's first
error turned into rnnlab's wording, and the check of a registry entry's options (an optimizer's or a
scheduler's) against its own schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from rnnlab.registry import did_you_mean


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
    if model is None:
        return []
    return sorted(model.model_fields) + (["*"] if model.model_config.get("extra") == "allow" else [])


def option_error(exc: ValidationError, prefix: str) -> ValueError:
    """An entry's options that failed their schema, as the validator error naming the key
    (``prefix.key: must be > 0, got -1``; ``prefix`` is the key's place in its section)."""
    field, text = _error_message(exc.errors(include_url=False)[0], None)
    if not field:  # a check of the whole schema naming its key: "eps: must be a number"
        head, sep, rest = text.partition(": ")
        if sep and head.isidentifier():
            field, text = head, rest
    return ValueError(".".join(p for p in (prefix, field) if p) + f": {text}" if field or prefix else text)


def entry_options(schema: type[BaseModel], given: dict[str, Any], entry: str, prefix: str) -> BaseModel:
    """``given`` validated by an optimizer's or scheduler's ``schema`` (``entry``: "optimizer 'sgd'"):
    a key the schema does not have is refused, naming it and the keys it has."""
    for key in given:
        if key not in schema.model_fields:
            has = ", ".join(schema.model_fields) or "none"
            raise ValueError(f"{'.'.join(p for p in (prefix, str(key)) if p)}: option {str(key)!r} does not "
                             f"apply to {entry} (its options: {has}; rnnlab list shows them)")
    try:
        return schema.model_validate(given)
    except ValidationError as exc:
        raise option_error(exc, prefix) from None

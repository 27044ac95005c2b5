"""Model families. Each registers a class with an ``Options`` pydantic model and a
``build(options, spec)`` classmethod; every model maps ``(x, lengths, state) -> (out, state)``."""

from __future__ import annotations

from ..registry import Registry

MODELS: Registry = Registry("model")

# registration side effects
from . import linear, mingru, mlp, recurrent, segrnn, seq2seq, ssm  # noqa: E402,F401
from .base import Model, build_model  # noqa: E402

__all__ = ["MODELS", "Model", "build_model"]

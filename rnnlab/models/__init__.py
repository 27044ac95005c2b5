"""Model families. Each registers a class with an ``Options`` pydantic model and a
``build(options, spec)`` classmethod; every model maps ``(x, lengths, state) -> (out, state)``.
Each registers itself in ``rnnlab.registry.MODELS``; importing this package imports every family.

May import: ``tasks`` (the task's spec: ``tasks.base``), ``rundir``, ``config``, ``common``.
"""

from __future__ import annotations

# registration side effects
from rnnlab.models import linear, mingru, mlp, recurrent, segrnn, seq2seq, ssm  # noqa: E402,F401
from rnnlab.models.base import Model, build_model  # noqa: E402
from rnnlab.registry import MODELS

__all__ = ["MODELS", "Model", "build_model"]

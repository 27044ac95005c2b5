"""Conformance checks for models and tasks, built-in or from a plugin (``rnnlab check``).

    from rnnlab.testing import check_model, check_task, assert_passes
    findings = check_model("mycell")             # every registered task it can be built for
    assert_passes(check_model("mycell", task="sine"))  # raises CheckFailed, one line per failure

Each ``Finding`` is one check in one place: passed, failed, or skipped with a note (a model that
refuses a task is skipped there, not failed). ``Finding.line()`` is the one line printed.

May import: ``execution`` and every package below it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from rnnlab.errors import ConfigError
from rnnlab.registry import did_you_mean
from rnnlab.testing.findings import CheckFailed, Finding, assert_passes, counts, failures
from rnnlab.testing.layouts import Layout, Oracle
from rnnlab.testing.model_checks import check_model
from rnnlab.testing.task_checks import check_task

__all__ = ["CheckFailed", "Finding", "Layout", "Oracle", "assert_passes", "check", "check_model",
           "check_task", "failures", "model_options", "run_check"]


def model_options(items: list[str]) -> dict[str, Any]:
    """``--set hidden_size=16`` (or ``model.hidden_size=16``) as a model options mapping."""
    from rnnlab.config.loading import parse_override

    out: dict[str, Any] = {}
    for item in items:
        parts, value = parse_override(item)
        if parts[0] == "model" and len(parts) > 1:
            parts = parts[1:]
        if parts == ["name"]:
            raise ConfigError("--set", "model.name is the checked model itself (MODEL_OR_TASK)")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError("--set", f"{item!r}: {part} is set to a value already")
        node[parts[-1]] = value
    return out


def check(name: str, task: Optional[str] = None, options: Optional[dict[str, Any]] = None
          ) -> list[Finding]:
    """``check_model`` when ``name`` is a registered model, ``check_task`` when it is a task."""
    from rnnlab.registry import MODELS, TASKS

    if name in MODELS:
        return check_model(name, task, options)
    if name in TASKS:
        if task is not None:
            raise ConfigError("--task", f"'{name}' is a task; --task is for checking a model")
        if options:
            raise ConfigError("--set", f"'{name}' is a task; model options are for checking a model")
        return check_task(name)
    known = MODELS.names() + TASKS.names()
    raise ConfigError("rnnlab check", f"unknown model or task '{name}'{did_you_mean(name, known)}; "
                      f"models: {', '.join(MODELS.names())}; tasks: {', '.join(TASKS.names())}")


def run_check(name: str, task: Optional[str] = None, options: Optional[dict[str, Any]] = None,
              verbose: bool = False, echo: Callable[[str], None] = print) -> int:
    """The ``rnnlab check`` command: each failure on one line (with ``verbose`` every check),
    then a count; 0 when nothing failed, 1 otherwise."""
    findings = check(name, task, options)
    for f in findings:
        if f.failed:
            echo(f.line())
        elif verbose:
            echo(f"{'ok' if f.status == 'pass' else 'skip'}: {f.line()}")
    n = counts(findings)
    echo(f"{name}: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped")
    return 1 if n["fail"] else 0

"""Every module imports on its own (the package's shape, cycles included: ``test_layout``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "rnnlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def test_every_module_imports_alone() -> None:
    """Each module imported first, in a fresh rnnlab state (torch stays loaded: that is the speed)."""
    code = f"""
import sys, importlib, torch
failed = []
for name in {MODULES!r}:
    for key in [k for k in sys.modules if k == "rnnlab" or k.startswith("rnnlab.")
                or k.startswith("rnnlab_plugin_")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_allocator_tuning_is_on_by_default_and_can_be_turned_off() -> None:
    code = "from rnnlab.common.allocator import keep_freed_memory as k; print(k(), k())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**__import__("os").environ, "RNNLAB_MALLOC": "system"})
    assert off.stdout.split() == ["False", "False"], off.stderr
    import platform
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert on.stdout.split() == ["True", "True"], on.stderr

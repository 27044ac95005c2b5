"""Every module imports on its own, and the package has no import cycle at module level."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "rnnlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def top_level_imports(path: Path) -> set[str]:
    """rnnlab modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in [node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node):
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("rnnlab")}
            elif isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = package.split(".")
                    base = base[: len(base) - (sub.level - 1)]
                    target = ".".join(base + ([sub.module] if sub.module else []))
                else:
                    target = sub.module or ""
                if target.startswith("rnnlab"):
                    found.add(target)
                    found |= {f"{target}.{a.name}" for a in sub.names if f"{target}.{a.name}" in MODULES}
    return {m for m in found if m in MODULES and m != name}


def test_no_import_cycle_at_module_level() -> None:
    graph = {module_name(p): top_level_imports(p) for p in PACKAGE.rglob("*.py")}
    # a package's __init__ importing its own submodules (registration) is not a cycle through them
    for name, deps in graph.items():
        is_package = PACKAGE.joinpath(*name.split(".")[1:], "__init__.py").exists()
        graph[name] = {d for d in deps if not (is_package and d.startswith(name + "."))}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


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
    code = "from rnnlab.allocator import keep_freed_memory as k; print(k(), k())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**__import__("os").environ, "RNNLAB_MALLOC": "system"})
    assert off.stdout.split() == ["False", "False"], off.stderr
    import platform
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert on.stdout.split() == ["True", "True"], on.stderr

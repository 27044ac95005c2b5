"""The package's shape: no import cycle at any depth (imports inside functions count; only those
under ``if TYPE_CHECKING:`` do not), each package imports only the packages below it, at most 10
modules at the top of ``rnnlab/``, no module over 400 lines, and every package says what it holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "rnnlab"
# lowest first; a package may import its own layer and the layers below it
LAYERS = [["common"], ["config"], ["rundir"], ["tasks"], ["models"], ["training"], ["integrations"],
          ["execution"], ["analysis"], ["sweeps", "testing"], ["cli"]]
BOTTOM = {"rnnlab.errors", "rnnlab.registry"}  # top-level modules every layer may use
TOP = {"rnnlab", "rnnlab.api", "rnnlab.notebook", "rnnlab.plugin", "rnnlab.__main__"}  # may use all
MAX_TOP_MODULES, MAX_LINES = 10, 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> dict[str, int]:
    """Every rnnlab module ``path`` imports anywhere (functions too), with a line number."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    hints = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
             and "TYPE_CHECKING" in ast.unparse(node.test) for stmt in node.body for n in ast.walk(stmt)}
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            # a module's own enclosing packages run before it anyway: not an edge
            if target.startswith("rnnlab") and target != name and not name.startswith(target + "."):
                found.setdefault(target, node.lineno)
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer(module: str) -> float:
    if module in BOTTOM:
        return -1
    if module in TOP:
        return len(LAYERS)
    package = module.split(".")[1]
    for index, names in enumerate(LAYERS):
        if package in names:
            return index
    raise AssertionError(f"{module}: its package '{package}' has no layer in LAYERS (add it)")


def test_no_import_cycle_at_any_depth() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in GRAPH[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" ".join(c) for c in cycles)


def test_a_lower_package_never_imports_a_higher_one() -> None:
    upward = [f"{MODULES[m].relative_to(REPO)}:{line} imports {dep}"
              for m, deps in sorted(GRAPH.items()) for dep, line in sorted(deps.items())
              if layer(dep) > layer(m)]
    assert upward == [], "\n".join(upward)


def test_the_layering_rule_catches_an_upward_import() -> None:
    assert layer("rnnlab.common.safeio") < layer("rnnlab.training.trainer") < layer("rnnlab.cli.frame")
    assert layer("rnnlab.errors") < layer("rnnlab.common.safeio")
    assert layer("rnnlab.api") > layer("rnnlab.cli")


def test_the_top_of_the_package_stays_small_and_modules_short() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_every_package_says_what_it_holds_and_what_it_may_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80 and "May import" in doc, f"{init.relative_to(REPO)}: docstring {doc[:60]!r}"


def test_single_process_training_never_imports_the_distributed_code(tmp_path: Path) -> None:
    config = REPO / "configs" / "lstm_sine.yaml"
    code = f"""
import sys
from rnnlab.cli import main
sys.argv = ["rnnlab", "train", {str(config)!r}, "--runs-dir", {str(tmp_path)!r}, "--quiet",
            "--set", "train.epochs=1", "--set", "train.steps_per_epoch=1", "--set", "train.threads=1",
            "--set", "logging.plots=false"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(sorted(m for m in sys.modules if "distributed" in m and m.startswith("rnnlab")))
print("torch.distributed.elastic" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2] == "[]", lines[-2]

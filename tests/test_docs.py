"""The documentation keeps up with the program: every registered task, model, optimizer and scheduler
and every command (sub-commands included) is in the hand-written pages and in the references that
docs/gen_reference.py generates (run here, into a temporary folder); the README stays a short
front page with the two set-up commands; the strict MkDocs build passes where mkdocs is installed."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _gen()


@pytest.fixture(scope="module")
def lab(gen):
    return gen._rnnlab()


@pytest.fixture(scope="module")
def generated(gen, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    assert gen.main([str(out)]) == 0
    return {page: (out / page).read_text(encoding="utf-8") for page in (gen.CONFIG_PAGE, gen.CLI_PAGE)}


def hand_written() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


def missing_names(text: str, names: list[str]) -> list[str]:
    """The names not written as code (`name`) anywhere in ``text``."""
    return [name for name in names if f"`{name}`" not in text]


def missing_commands(text: str, commands: list[str]) -> list[str]:
    """The command paths (``rnnlab sweep``) not mentioned as a command in ``text``."""
    return [c for c in commands if not re.search(rf"`{re.escape(c)}(`| )", text)]


def test_registries_and_commands_are_not_empty(gen, lab):
    kinds = {kind: registry.names() for kind, registry in lab.registries()}
    assert set(kinds) == {"task", "model", "optimizer", "scheduler"}
    assert "sine" in kinds["task"] and "lstm" in kinds["model"] and "adam" in kinds["optimizer"]
    commands = gen.cli_commands(lab)
    assert "rnnlab train" in commands and "rnnlab sweep" in commands and len(commands) > 10


def test_every_registered_name_is_in_the_hand_written_pages(lab):
    text = hand_written()
    for kind, registry in lab.registries():
        assert missing_names(text, registry.names()) == [], f"{kind}s missing from docs/*.md"


def test_every_command_is_in_the_hand_written_pages(gen, lab):
    commands = [c for c in gen.cli_commands(lab) if c != "rnnlab"]
    assert missing_commands(hand_written(), commands) == []


def test_the_checks_find_what_is_missing():
    text = "`lstm` and `gru`; run `rnnlab train CONFIG` or `rnnlab eval`"
    assert missing_names(text, ["lstm", "gru", "mycell"]) == ["mycell"]
    assert missing_names("lstm without backticks", ["lstm"]) == ["lstm"]
    assert missing_commands(text, ["rnnlab train", "rnnlab eval", "rnnlab sweep"]) == ["rnnlab sweep"]
    assert missing_commands("`rnnlab trainer`", ["rnnlab train"]) == ["rnnlab train"]


def test_config_reference_has_every_entry_and_section(lab, generated, gen):
    text = generated[gen.CONFIG_PAGE]
    for section in ("train", "logging"):
        assert f"## `{section}`" in text
    for kind, registry in lab.registries():
        for name in registry.names():
            assert f"### `{name}`" in text, f"{kind} {name} missing from the configuration reference"
    # rows come from the schemas: a known key of each section, and a task's data option
    assert "| `train.lr` |" in text and "| `logging.tensorboard` |" in text
    assert "| `train.scheduler.name` |" in text  # nested sections are expanded
    assert "| `model.hidden_size` |" in text and "| `data." in text
    # constraints read as a reader writes them, and nothing changes from one build to the next
    assert "| `train.lr` | `float` | `0.001` | (> 0) |" in text
    assert "Gt(" not in text and "Ge(" not in text and " at 0x" not in text


def test_constraints_are_written_readably(gen):
    assert gen._description("decay factor [Gt(gt=0), Le(le=1)]") == "decay factor (> 0, <= 1)"
    assert gen._description("[Ge(ge=2), MultipleOf(multiple_of=2)]") == "(>= 2, a multiple of 2)"
    assert gen._description("[AfterValidator(func=<function _known_encoding at 0x7f3>)]") \
        == "(checked: known encoding)"
    assert gen._description("plain [not a constraint]") == "plain [not a constraint]"


def test_cli_reference_has_every_command_and_option(gen, lab, generated):
    import typer

    text = generated[gen.CLI_PAGE]
    root = typer.main.get_command(lab.app)
    for path, command in gen._commands(root, ["rnnlab"]):
        title = " ".join(path)
        assert f"## `{title}`" in text, f"{title} missing from the CLI reference"
        section = text.split(f"## `{title}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            name = f"`{param.name.upper()}`" if param.param_type_name == "argument" else f"`{param.opts[0]}`"
            assert name in section, f"{title}: {name} missing from the CLI reference"
    assert "`--resume`" in text.split("## `rnnlab train`", 1)[1].split("\n## ", 1)[0]


def test_readme_is_a_short_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "make demo" in text and "make test" in text
    for target in re.findall(r"\]\((docs/[^)#]*)", text):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_nav_lists_every_page():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert page.relative_to(DOCS).as_posix() in nav, f"{page} is not in mkdocs.yml's nav"


def test_strict_build(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs is not installed (the docs extra); CI builds the site with `make docs`")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()


def api_directives() -> set[str]:
    """The objects docs/api.md renders with mkdocstrings (``::: module.name`` lines)."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    return set(re.findall(r"^::: ([\w.]+)\s*$", text, flags=re.M))


def test_api_page_renders_every_public_name():
    import rnnlab
    import rnnlab.testing

    rendered = {target.rsplit(".", 1)[1]: target for target in api_directives()}
    public = [name for name in rnnlab.__all__ if not name.startswith("_")]
    missing = [name for name in public if name not in rendered]
    assert missing == [], f"rnnlab.{missing} not rendered in docs/api.md (add `::: module.name`)"
    for name in public:  # each directive names where the object is really defined
        obj = getattr(rnnlab, name)
        assert rendered[name] == f"{obj.__module__}.{obj.__qualname__}", rendered[name]
    for name in ("check_model", "check_task", "assert_passes"):
        assert getattr(rnnlab.testing, name) and f"rnnlab.testing.{name}" in api_directives()


def test_architecture_page_names_every_package():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in (ROOT / "rnnlab").glob("*/__init__.py"))
    assert "tasks" in packages and "cli" in packages
    assert [p for p in packages if f"`rnnlab.{p}`" not in text] == []


def unclosed_fences(text: str) -> int:
    """The number of code fences (```) left open at the end of a page."""
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("```")) % 2


def test_code_fences_are_closed():
    assert unclosed_fences("```bash\nmake demo\n```\n") == 0
    assert unclosed_fences("```\na < b | table |\n") == 1
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md"]
    assert [p.name for p in pages if unclosed_fences(p.read_text(encoding="utf-8"))] == []


# dotted names in the pages that are not Python objects: MLflow tags, the plugins' entry-point group
NOT_PYTHON = {"rnnlab.model", "rnnlab.run_id", "rnnlab.run_uuid", "rnnlab.plugins"}


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is an rnnlab module, or an attribute path inside one."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        try:
            obj = importlib.import_module(module_name)
        except ImportError as e:  # an optional dependency missing here: the module exists
            return not (e.name or "").startswith("rnnlab")
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_dotted_rnnlab_names_in_the_pages_exist():
    """A module moved or renamed leaves no stale ``rnnlab.x.y`` on a page."""
    assert resolves("rnnlab.api.train") and resolves("rnnlab.training.trainer")
    assert not resolves("rnnlab.cliapp") and not resolves("rnnlab.api.no_such_function")
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md"]
    stale = sorted({(m.group(1), page.name) for page in pages
                    for m in re.finditer(r"(?<![\w/.])(rnnlab(?:\.\w+)+)", page.read_text(encoding="utf-8"))
                    if m.group(1) not in NOT_PYTHON and not resolves(m.group(1))})
    assert stale == []

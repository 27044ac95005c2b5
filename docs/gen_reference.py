"""Write the generated reference pages: the configuration reference (from the pydantic schemas and
every registered task's, model's, optimizer's and scheduler's options, as ``rnnlab list NAME``
shows them) and the CLI reference (from the Typer app: every command and sub-command, its
arguments and options with their help).

    python docs/gen_reference.py OUT_DIR      # writes OUT_DIR/reference/config.md and cli.md

``mkdocs build`` runs it through ``docs/hooks.py`` (the pages are generated in memory, nothing is
written into docs/); ``tests/test_docs.py`` runs it into a temporary folder.

Every import of rnnlab's internals is in ``_rnnlab()`` below: when a module moves, fix it there.
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

CONFIG_PAGE = "reference/config.md"
CLI_PAGE = "reference/cli.md"


def _rnnlab() -> SimpleNamespace:
    """The only place this script reaches into rnnlab (keep it that way)."""
    # the Typer app (rnnlab/cli/__init__ registers every command on it); catalog: what `rnnlab list` prints
    from rnnlab.cli import app, catalog
    from rnnlab.config.schema import Config, LoggingConfig, TrainConfig

    return SimpleNamespace(app=app, registries=catalog.registries, describe=catalog.describe,
                           option_rows=catalog.option_rows, type_name=catalog.type_name,
                           Config=Config, TrainConfig=TrainConfig, LoggingConfig=LoggingConfig)


# ---------------------------------------------------------------- configuration reference

def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_BOUNDS = {"Gt": ">", "Ge": ">=", "Lt": "<", "Le": "<=", "MultipleOf": "a multiple of",
           "MinLen": "length >=", "MaxLen": "length <="}


def _constraint(text: str) -> str:
    """One pydantic/annotated-types constraint as a reader writes it (``Gt(gt=0)`` -> ``> 0``);
    a validator function by its name (its repr carries a memory address, which would change each build)."""
    bound = re.fullmatch(r"(\w+)\(\w+=(.*)\)", text.strip())
    if bound and bound.group(1) in _BOUNDS:
        return f"{_BOUNDS[bound.group(1)]} {bound.group(2)}"
    function = re.search(r"<function (\w+)", text)
    return f"checked: {function.group(1).strip('_').replace('_', ' ')}" if function else text.strip()


def _description(text: str) -> str:
    """A description with its trailing ``[constraint, ...]`` list made readable."""
    found = re.search(r"\[([A-Z]\w*\(.*\))\]$", text)
    if not found:
        return text
    parts = re.split(r",\s*(?=[A-Z]\w*\()", found.group(1))
    return f"{text[:found.start()]}({', '.join(_constraint(p) for p in parts)})".strip()


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    if not rows:
        return ["(no options)", ""]
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{_cell(k)}` | `{_cell(t)}` | `{_cell(d)}` | {_cell(_description(str(desc)))} |"
              for k, t, d, desc in rows]
    return lines + [""]


def _sub_model(annotation: Any) -> Any:
    """The pydantic model a field holds (directly or as Optional[...]), else None."""
    from pydantic import BaseModel

    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _schema_rows(r: SimpleNamespace, model: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    """Every field of ``model`` as ``option_rows`` gives it, nested models' fields after their own row."""
    rows = []
    for row in r.option_rows(model, prefix, skip=()):
        nested = _sub_model(model.model_fields[row[0].rsplit(".", 1)[1]].annotation)
        if nested is None:
            rows.append(row)
        else:  # a section of its own: its fields follow, each with its default
            rows.append((row[0], row[1], "(section)", row[3] or "the keys below"))
            rows += _schema_rows(r, nested, row[0])
    return rows


def config_reference(r: SimpleNamespace | None = None) -> str:
    r = r or _rnnlab()
    out = [
        "# Configuration reference", "",
        "Generated from rnnlab's pydantic schemas and registries by `docs/gen_reference.py` when the",
        "docs are built (the same data as `rnnlab list NAME`). A config is a YAML file with the sections",
        "below; `task.name` and `model.name` pick registry entries and their options sit beside the name;",
        "the `data` options are the chosen task's. See [Configuration](../configuration.md) for the prose.",
        "",
        "## Top level", "",
    ]
    top = [row for row in r.option_rows(r.Config, "config", skip=())
           if row[0].split(".", 1)[1] in ("name", "plugins")]
    out += _table([(k.split(".", 1)[1], t, d, desc) for k, t, d, desc in top])
    out += ["## `train`", ""] + _table(_schema_rows(r, r.TrainConfig, "train"))
    out += ["## `logging`", ""] + _table(_schema_rows(r, r.LoggingConfig, "logging"))
    titles = {"task": "Tasks (`task` and `data`)", "model": "Models (`model`)",
              "optimizer": "Optimizers (`train.optimizer`)",
              "scheduler": "Schedulers (`train.scheduler.name`)"}
    for kind, registry in r.registries():
        out += [f"## {titles[kind]}", ""]
        for name in registry.names():
            _, description, origin, rows = r.describe(name)
            out += [f"### `{name}`", "", f"{description} (from `{origin}`)".strip(), ""]
            out += _table(rows)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- CLI reference

def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """(path, click command) of the app and every command and sub-command under it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():  # in --help order
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, path + [name])


def cli_commands(r: SimpleNamespace | None = None) -> list[str]:
    """Every command path, e.g. ``rnnlab train`` (sub-commands included)."""
    r = r or _rnnlab()
    import typer

    return [" ".join(path) for path, _ in _commands(typer.main.get_command(r.app), ["rnnlab"])]


def _type_name(param: Any) -> str:
    """What a parameter takes: from Typer's annotation, else click's type."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is None:
        kind = getattr(param, "type", None)
        return getattr(kind, "name", str(kind)) if kind is not None else "text"
    while typing.get_origin(annotation) in (list, tuple, typing.Union) or \
            type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis]
        annotation = args[0] if args else str
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(annotation))
    choices = getattr(annotation, "__members__", None)
    if choices:
        return " \\| ".join(str(m.value) for m in choices.values())
    return {"str": "text", "int": "integer", "float": "number", "bool": "boolean", "Path": "path"}.get(
        getattr(annotation, "__name__", ""), getattr(annotation, "__name__", str(annotation)))


def _param_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *getattr(param, "secondary_opts", [])])
    kind = "argument" if param.param_type_name == "argument" else "option"
    if kind == "argument":
        names = f"`{param.name.upper()}`"
    type_name = _type_name(param)
    if getattr(param, "is_flag", False):
        type_name = "flag"
    if getattr(param, "multiple", False) or (kind == "argument" and param.nargs == -1):
        type_name += " (repeatable)"
    default = param.default
    empty = default is None or callable(default) or default in ((), []) or \
        (getattr(param, "is_flag", False) and default is False)
    shown = "" if empty else f"`{_cell(default)}`"
    required = "yes" if param.required else ""
    help_text = _cell(getattr(param, "help", "") or "")
    return f"| {names} | {kind} | {_cell(type_name)} | {required} | {shown} | {help_text} |"


def cli_reference(r: SimpleNamespace | None = None) -> str:
    r = r or _rnnlab()
    import typer

    root = typer.main.get_command(r.app)
    out = ["# CLI reference", "",
           "Generated from the Typer app by `docs/gen_reference.py` when the docs are built: every command",
           "with its arguments and options (the same text as `rnnlab COMMAND --help`). `-h` is `--help`",
           "everywhere and `python -m rnnlab` is the same program. See [Quickstart](../quickstart.md) for",
           "the command table with examples.", ""]
    for path, command in _commands(root, ["rnnlab"]):
        title = " ".join(path)
        out += [f"## `{title}`", ""]
        help_text = (command.help or "").strip()
        if help_text:
            out += [help_text.replace("\b\n", ""), ""]
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        if params:
            out += ["| name | kind | type | required | default | help |", "|---|---|---|---|---|---|"]
            out += [_param_row(p) for p in params] + [""]
        subs = list(getattr(command, "commands", {}))
        if subs and path != ["rnnlab"]:
            out += ["Sub-commands: " + ", ".join(f"`{title} {s}`" for s in subs), ""]
    return "\n".join(out).rstrip() + "\n"


def generate() -> dict[str, str]:
    """{page path inside docs/: markdown} of the generated pages."""
    r = _rnnlab()
    return {CONFIG_PAGE: config_reference(r), CLI_PAGE: cli_reference(r)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python docs/gen_reference.py OUT_DIR", file=sys.stderr)
        return 2
    for page, text in generate().items():
        path = Path(argv[0]) / page
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

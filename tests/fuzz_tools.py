"""The fuzzer's cases for the commands ``tests/fuzzing.py`` does not reach: ``generate`` (hostile
numbers and prefixes), ``config`` (generated configs, and what it prints read back: the round
trip), ``check`` (plugins that fail or exit at import) and sweep files (hostile trial counts,
repeats, distribution bounds, names; a valid one runs a single tiny trial). Shared by
``tests/test_fuzz_tools.py`` (a short budget) and ``benchmarks/fuzz.py`` (a long one); each case
goes through ``fuzzing.check``: exit 0, or one line and exit 2/3, never a traceback, nothing that
existed changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from . import fuzzing

TOOLS = ("generate", "config", "check", "sweep")
NUMBERS = ["0", "1", "-1", "2.5", "inf", "-inf", "nan", "5e-324", "1e308", "1e11", "100000000000",
           "99999999999999999999999", "-99999999999999999999999", "abc", "", "0x10", "1_000", "true"]
PREFIXES = ["the ", "", "\x00", "\u202e\ud800", "a" * 5000, "1e3"]
PLUGINS = ["import sys\nsys.exit(0)\n", "raise SystemExit(3)\n", "raise SystemExit('bye')\n",
           "raise ValueError('plugin says no')\n", "def broken(:\n", "import nonexistent_module_xyz\n",
           "raise MemoryError\n"]
NAMES = ["1e3", ".inf", "true", "null", "~", "0x10", "é☃", "a/b", "", " ", "x" * 300, "ok"]
BAD_NUMBERS: list[Any] = [0, -1, 1.5, True, None, "1", float("nan"), float("inf"), -float("inf"), 1e308,
                          10**9, 2**63, 10**30]


@st.composite
def generate_args(draw: st.DrawFn, run: Path) -> list[str]:
    target = draw(st.sampled_from([str(run), str(run.parent / "missing")]))
    args = ["generate", target, "--prefix", draw(st.sampled_from(PREFIXES))]
    for option in draw(st.sets(st.sampled_from(["--length", "--temperature", "--top-k", "--seed"]))):
        args += [option, draw(st.sampled_from(NUMBERS))]
    return args


@st.composite
def sweep_body(draw: st.DrawFn, refused_only: bool = False) -> dict[str, Any]:
    """A sweep file: the tiny base, one grid value or one search section, and hostile numbers;
    when every value is valid it has exactly one trial. ``refused_only`` (the suite's share):
    ``repeats`` is always invalid, so no trial runs."""
    number = st.one_of(st.sampled_from(BAD_NUMBERS), st.just(1))
    body: dict[str, Any] = {"base": dict(fuzzing.BASE)}
    if draw(st.booleans()):
        body["name"] = draw(st.sampled_from(NAMES))
    section = draw(st.sampled_from(["grid", "random", "tpe"]))
    if section == "grid":
        key = draw(st.sampled_from(["model.hidden_size", "train.lr", "train.epochs"]))
        value = draw(st.one_of(number, st.sampled_from([4, 0.01])))
        if key == "train.epochs" and value == 10**9:  # valid: a trial (a subprocess, out of the
            value = 10**30                            # fuzzer's step budget) would run for days
        body["grid"] = {key: [value]}
    else:
        low, high = draw(number), draw(st.one_of(number, st.sampled_from([0.01, 0.1])))
        body[section] = {"trials": draw(number),
                         "train.lr": {draw(st.sampled_from(["uniform", "loguniform", "int"])): [low, high]}}
    if refused_only:
        body["repeats"] = draw(st.sampled_from([0, -1, True, 1.5, 10**12, "1", None]))
    elif draw(st.booleans()):
        body["repeats"] = draw(number)
    if draw(st.booleans()):
        body["seed"] = draw(number)
    return body


@st.composite
def tool_case(draw: st.DrawFn, command: str, refused_only: bool = False) -> dict[str, Any]:
    """What one case needs: ``generate`` args (given the run later), a config, a plugin body or a
    sweep file's text."""
    if command == "config":
        text, overrides = draw(fuzzing.configs())
        return {"text": text, "overrides": overrides}
    if command == "check":
        return {"plugin": draw(st.sampled_from(PLUGINS)), "model": draw(st.sampled_from(["lstm", "nosuch"]))}
    if command == "sweep":
        return {"text": yaml.safe_dump(draw(sweep_body(refused_only)), allow_unicode=True)}
    return {}


def run_case(command: str, case: dict[str, Any], root: Path, run: Path, data: st.DataObject) -> str:
    """Run one case in ``root`` (a fresh folder holding a copy of a finished run at ``run``);
    return its outcome for the counts."""
    runs_dir = run.parent
    if command == "generate":
        result = fuzzing.check(data.draw(generate_args(run)), root)
    elif command == "config":
        config = root / "c.yaml"
        config.write_bytes(case["text"].encode("utf-8", "surrogatepass"))
        args = ["config", str(config), *[a for o in case["overrides"] for a in ("--set", o)]]
        result = fuzzing.check(args, root)
        if result.exit_code == 0:  # what `config` prints is what a run saves: it must read back
            again = root / "again.yaml"
            again.write_text(result.stdout, encoding="utf-8")
            reread = fuzzing.check(["config", str(again)], root, lambda p: p == "again.yaml")
            assert reread.exit_code == 0 and reread.stdout == result.stdout, (result.stdout, reread.output)
            again.unlink()
    elif command == "check":
        plugin = root / "plugin_case.py"
        plugin.write_text(case["plugin"])
        result = fuzzing.check(["check", case["model"], "--plugin", str(plugin)], root)
        assert result.exit_code == 2, result.output  # every plugin body here fails at import
    else:
        sweep = root / "s.yaml"
        sweep.write_text(case["text"], encoding="utf-8")
        result = fuzzing.check(["sweep", str(sweep), "--runs-dir", str(runs_dir), "-q"], root,
                               allow_new=lambda p: Path(p).parts[0] == "runs" and not p.startswith(
                                   f"runs/{run.name}/"))
    return f"{command} exit {result.exit_code}"

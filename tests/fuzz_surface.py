"""The fuzzer's cases for every command that reads a finished run or a file rnnlab wrote: ``eval``,
``predict``, ``generate``, ``forecast``, ``export``, ``track``, ``runs``, ``show``, ``compare``
(with ``--plot FILE``), ``diff`` and ``plot``. Shared by ``tests/test_fuzz_surface.py`` (a short
budget) and ``benchmarks/fuzz.py`` (a long one).

Small runs of each kind (two sine runs, a sentiment, a character LM and a CSV series run) are
trained ONCE (``build_runs``) and copied into a fresh workspace per case. A case then damages one
of rnnlab's own output files (config.yaml, summary.json, metrics.jsonl, series.json, vocab and
label files, checkpoints: truncated, garbage, wrong types, foreign) or none, and calls one command
in process with hostile arguments (nan, inf, -1, 1e308, huge ints, unicode, missing paths,
directories, /dev/null, files inside run directories, the input itself as ``--out``). The
property is ``fuzzing.check``'s: exit 0, or one ``error:`` line and a non-zero exit, never a
traceback; after a refusal no file of the workspace that existed before changed or vanished.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch
import yaml

from . import fuzzing

COMMANDS = ("eval", "predict", "generate", "forecast", "export", "track", "runs", "show", "compare",
            "diff", "plot", "config", "rerun", "resume")  # rerun: train a run's config.yaml
NUMBERS = ["0", "1", "-1", "2", "nan", "inf", "-inf", "1e308", "5e-324", "99999999999999999999999",
           "2147483648", "abc", "", "é☃", "0x10", "1_000", "true", "3.5"]
RUN_FILES = ("config.yaml", "summary.json", "metrics.jsonl", "series.json", "vocab.json", "labels.json",
             "checkpoints/best.pt", "checkpoints/last.pt")


def _series_csv(path: Path, n: int, start: datetime = datetime(2020, 1, 1)) -> Path:
    lines = ["date,a,b"]
    for i in range(n):
        stamp = (start + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{stamp},{10 + (i % 24) / 10:.3f},{100 + 0.1 * i:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def build_runs(folder: Path) -> dict[str, Path]:
    """Train the tiny runs every case copies (seconds, once): sine ``a`` and ``b``, sentiment
    ``s``, character LM ``c`` and series ``r`` (trained on ``folder/series.csv``)."""
    from rnnlab.common.console import Reporter
    from rnnlab.config.loading import load_experiment
    from rnnlab.execution.lifecycle import train_run

    tiny = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "seed": 0, "threads": 1}
    corpus = folder / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    csv = _series_csv(folder / "series.csv", 120)
    configs = {
        "a": fuzzing.BASE, "b": fuzzing.BASE,
        "s": {"task": {"name": "sentiment"}, "model": {"name": "gru", "hidden_size": 4}, "train": tiny},
        "c": {"task": {"name": "charlm", "bptt": 8, "samples": 1, "sample_length": 10},
              "model": {"name": "lstm", "hidden_size": 8, "embedding_dim": 4},
              "data": {"path": str(corpus)}, "train": tiny},
        "r": {"task": {"name": "series", "lookback": 12, "horizon": 3},
              "data": {"path": str(csv), "time_column": "date"},
              "model": {"name": "gru", "hidden_size": 4}, "train": tiny},
    }
    out: dict[str, Path] = {"csv": csv}
    for name, cfg in configs.items():
        cfg = {**cfg, "logging": {"plots": False}}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out[name] = train_run(load_experiment(path), folder / "runs", Reporter(quiet=True))
    return out


# ----------------------------------------------------------------------------- own outputs damaged

def _garbage(rng: random.Random, text: str) -> bytes:
    options: list[bytes] = [b"", b"\x00\xff\xfe", b"{", b"[1, 2]", b"null", b"42", b'"s"', b"\xef\xbb\xbf{}",
                            text.encode()[: rng.randrange(max(1, len(text)))], b"a: [" * 200,
                            json.dumps({"kind": 1, "columns": "x", "stoi": [1],
                                        "itos": {"a": None}}).encode()]
    return rng.choice(options)


def _retype(value: Any, rng: random.Random) -> Any:
    """``value`` with one leaf replaced by a value of another type."""
    other = rng.choice([None, True, -1, 1e308, float("nan"), "x", "1e3", [], {}, [1, "a"], {"a": 1}, 2**70])
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value, key=str))
        value[key] = _retype(value[key], rng) if rng.random() < 0.5 else other
        return value
    if isinstance(value, list) and value:
        value[rng.randrange(len(value))] = other
        return value
    return other


def mutate_own_file(run: Path, others: list[Path], rng: random.Random) -> str:
    """Damage one of the files rnnlab wrote into ``run``; returns what was done."""
    present = [name for name in RUN_FILES if (run / name).is_file()]
    name = rng.choice(present)
    path = run / name
    how = rng.choice(["truncate", "garbage", "retype", "foreign", "delete", "directory", "dev null"])
    if how == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: rng.randrange(max(1, len(raw)))])
    elif how == "garbage":
        path.write_bytes(_garbage(rng, path.read_text(errors="replace") if path.suffix != ".pt" else ""))
    elif how == "retype" and path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = None
        path.write_text(json.dumps(_retype(data, rng)))
    elif how == "retype" and path.suffix == ".yaml":
        data = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump(_retype(data, rng), allow_unicode=True))
    elif how == "retype" and path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("\n".join(json.dumps(_retype(r, rng)) for r in rows or [{}]) + "\n")
    elif how == "retype":  # a checkpoint: a valid torch file holding the wrong things
        state = rng.choice([{"model": {}}, [1, 2], {"model": {"x": torch.zeros(2)}, "step": "x"},
                            {"model": None, "config": "a"}, torch.full((2,), float("nan"))])
        torch.save(state, path)
    elif how == "foreign":
        donors = [o / name for o in others if (o / name).is_file()]
        if not donors:
            return f"{name}: nothing"
        shutil.copy(rng.choice(donors), path)
    elif how == "delete":
        path.unlink()
    elif how == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.unlink()
        path.symlink_to("/dev/null")
    return f"{name}: {how}"


# ----------------------------------------------------------------------------- arguments

def _path(rng: random.Random, root: Path, run: Path, good: Path) -> str:
    """A path argument: usually ``good``, else something hostile."""
    return str(rng.choice([good] * 8 + [root / "missing.csv", root, Path("/dev/null"),
                           run / "config.yaml", run / "checkpoints" / "best.pt", run / "summary.json",
                           root / "é ☃.csv", run]))


def _out(rng: random.Random, root: Path, run: Path, suffix: str, inputs: list[Path]) -> list[str]:
    choice = rng.choice(["fresh"] * 4 + ["none", "existing", "input", "in run", "checkpoint", "directory",
                                         "dev null", "missing folder", "none"])
    target = {"fresh": root / f"out{suffix}", "existing": root / f"existing{suffix}",
              "input": rng.choice(inputs) if inputs else root / "x", "in run": run / f"extra{suffix}",
              "checkpoint": run / "checkpoints" / "best.pt", "directory": root,
              "dev null": Path("/dev/null"),
              "missing folder": root / "no" / "such" / f"o{suffix}"}.get(choice)
    if choice == "existing":
        target.write_text("the user's own file\n")  # type: ignore[union-attr]
    if target is None:
        return []
    return ["--out", str(target)] + (["--force"] if rng.random() < 0.3 else [])


def _opt(rng: random.Random, name: str, good: list[str], p: float = 0.5) -> list[str]:
    """``name`` with a valid value (most cases) or a hostile one, or nothing."""
    if rng.random() >= p:
        return []
    return [name, rng.choice(good if rng.random() < 0.6 else NUMBERS)]


def surface_args(command: str, root: Path, runs: dict[str, Path], rng: random.Random) -> list[str]:
    """Arguments of one case of ``command`` in workspace ``root`` (its copies of the runs)."""
    a, b, s, c, r = (runs[k] for k in "abscr")
    target = rng.choice([a, b, s, c, r, root / "missing", root, Path("/dev/null")] if rng.random() < 0.15
                        else {"predict": [s], "generate": [c], "forecast": [r], "export": [a, s, c, r]}
                        .get(command, [a, b, s, c, r]))
    ckpt = ["--checkpoint", rng.choice(["best", "last", "last", "nope", ""])] if rng.random() < 0.3 else []
    if command == "eval":
        return ["eval", str(target), *ckpt, *(["--json"] if rng.random() < 0.5 else [])]
    if command == "predict":
        texts = rng.choice([["good movie"], ["", "x"], ["\x00\u202e"], ["a" * 5000], ["bad", "é☃ great"]])
        return ["predict", str(target), *ckpt, *texts]
    if command == "generate":
        return ["generate", str(target), *ckpt, *_opt(rng, "--length", ["5", "20"], 0.9),
                *_opt(rng, "--temperature", ["0", "0.8", "2"]), *_opt(rng, "--top-k", ["1", "3", "1000"]),
                *_opt(rng, "--seed", ["0", "7", "4294967295"]),
                *(["--prefix", rng.choice(["the ", "", "\x00", "é☃", "zzz"])] if rng.random() < 0.5 else [])]
    if command == "forecast":
        csv = root / "recent.csv"
        return ["forecast", str(target), "--file", _path(rng, root, r, csv), *ckpt,
                *_opt(rng, "--horizon", ["1", "3", "7", "30"]),
                *_out(rng, root, r, rng.choice([".csv", ".png", ""]), [csv])]
    if command == "export":
        fmt = rng.choice(["onnx", "torchscript", "onnx", "torchscript", "", "pdf"])
        return ["export", str(target), *(["--format", fmt] if rng.random() < 0.9 else []), *ckpt,
                *_opt(rng, "--tolerance", ["0.001", "1", "0"]),
                *_out(rng, root, target, rng.choice([".onnx", ".pt", ""]), [])]
    if command == "track":
        store = rng.choice([f"file://{root / 'mlruns'}", str(root / "mlruns"), f"sqlite:///{root}/x.db",
                            "notascheme://x", "", str(target / "config.yaml"), f"file://{root}/é ☃"])
        return ["track", str(target), "--to", store,
                *(["--experiment", rng.choice(["e", "", "é☃", "1e3", "x" * 300])]
                  if rng.random() < 0.4 else [])]
    if command == "runs":
        return ["runs", str(rng.choice([a.parent, a.parent, a, root / "missing"])),
                *(["--json"] if rng.random() < 0.5 else [])]
    if command in ("show", "plot"):
        return [command, str(target)]
    if command == "config":  # a run's own config.yaml (damaged in some cases) and overrides
        return ["config", str(target / "config.yaml"),
                *(["--set", rng.choice(
                    ["train.epochs=2", "name=1e3", "train.lr=nan", "model.hidden_size=-1"])]
                  if rng.random() < 0.3 else [])]
    if command == "rerun":
        return ["train", str(target / "config.yaml"), "--runs-dir", str(root / "again"), "-q",
                "--set", "train.threads=1", *(["--name", rng.choice(["1e3", "é☃", "x", ""])]
                                               if rng.random() < 0.3 else [])]
    if command == "resume":
        return ["train", "--resume", str(target), "-q",
                "--set", f"train.epochs={rng.choice(['1', '2', '2', '0', '-1', 'nan', '1e308'])}",
                *(["--set", rng.choice(["train.lr=0.5", "model.hidden_size=9", "train.threads=1"])]
                  if rng.random() < 0.5 else [])]
    if command == "diff":
        other = rng.choice([a, b, s, c, r, root / "missing"])
        return ["diff", str(target), str(other), *(["--json"] if rng.random() < 0.5 else [])]
    others = rng.sample([a, b, s, c, r], rng.randint(1, 3))
    args = ["compare", str(target), *map(str, others), *(["--json"] if rng.random() < 0.3 else [])]
    if rng.random() < 0.5:
        plot = rng.choice([root / "o.png", root / "o.svg", root / "existing.png", a / "config.yaml",
                           root / "recent.csv", root / "no" / "o.png", root, a / "o.png"])
        if plot.name == "existing.png":
            plot.write_bytes(b"the user's picture")
        args += ["--plot", str(plot)] + (["--force"] if rng.random() < 0.3 else [])
    return args


def run_case(command: str, base: dict[str, Path], root: Path, rng: random.Random) -> str:
    """One case in the fresh folder ``root``: copy the runs, damage one file (most cases), run
    ``command`` through ``fuzzing.check``; returns the mutation applied."""
    runs_dir = root / "runs"
    runs = {k: runs_dir / p.name for k, p in base.items() if k != "csv"}
    for k, p in base.items():
        if k != "csv":
            shutil.copytree(p, runs[k])
    shutil.copy(base["csv"], root / "recent.csv")
    kind = "nothing"
    if rng.random() < 0.5:
        victim = rng.choice(list(runs.values()))
        kind = mutate_own_file(victim, [p for p in runs.values() if p != victim], rng)
    if command == "forecast" and rng.random() < 0.3:
        _mutate_csv(root / "recent.csv", rng)
    args = surface_args(command, root, runs, rng)
    forced = set()
    if "--force" in args and "--out" in args:
        out = Path(args[args.index("--out") + 1])
        forced = {str(p.relative_to(root)) for p in (out, out.with_suffix(".png"), Path(f"{out}.json"))
                  if p.is_relative_to(root)}
    if "--force" in args and "--plot" in args:
        plot = Path(args[args.index("--plot") + 1])
        forced |= {str(plot.relative_to(root))} if plot.is_relative_to(root) else set()
    if command == "resume":  # a resumed run rewrites its own files (only when it goes on)
        resumed = Path(args[2])
        forced = ({str(p.relative_to(root)) for p in resumed.rglob("*")}
                  if resumed.is_relative_to(root) else set())
    # in the case's folder: a default output (``compare --plot`` with no FILE writes compare.png in
    # the working directory) stays inside what the case hashes, never in the caller's folder
    with contextlib.chdir(root):
        fuzzing.check(args, root, allow_new=lambda p: True, allow_changed=lambda p: p in forced,
                      budget=command in ("rerun", "resume"), command=command)
    return kind


def _mutate_csv(path: Path, rng: random.Random) -> None:
    lines = path.read_text().splitlines()
    how = rng.choice(["cell", "stamp", "short", "header", "bytes"])
    i = rng.randrange(1, len(lines))
    if how == "cell":
        stamp, _, rest = lines[i].partition(",")
        lines[i] = f"{stamp},{rng.choice(['1e308', 'nan', 'inf', '', 'x', '-1e308'])},{rest.split(',')[-1]}"
    elif how == "stamp":
        lines[i] = rng.choice(["10000-01-01 00:00:00", "0001-01-01", "garbage", ""]) + lines[i][19:]
    elif how == "short":
        lines = lines[: rng.randrange(1, 14)]
    elif how == "header":
        lines[0] = rng.choice(["date,a", "date,b,a", "x,y,z", "date,a,b,c"])
    else:
        path.write_bytes(b"\x00\xff" * 10)
        return
    path.write_text("\n".join(lines) + "\n")


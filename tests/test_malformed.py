"""Bad input never produces a traceback: every malformed config, data/run file or command-line
argument gives one line ``error: <where>: <what>``, exit status 2, and writes or changes nothing
under the runs directory. A table of distinct cases, then a property-based (hypothesis) suite."""

from __future__ import annotations

import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import SECTIONS, load_experiment
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs

from .conftest import SINE_TINY, deep_merge

runner = CliRunner()


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``folder`` with its mtime, size and content."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size,
                                         p.read_bytes() if p.is_file() else b"")
            for p in sorted(folder.rglob("*"))}


def one_line_error(result: Any) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch run, copied into each case's runs directory and broken there."""
    folder = tmp_path_factory.mktemp("finished")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(deep_merge(SINE_TINY, {"train": {"epochs": 1}})))
    return train_run(load_experiment(path), folder / "runs", Reporter(quiet=True))


@dataclass
class Env:
    tmp: Path
    runs_dir: Path
    run: Path

    def config(self, extra: dict[str, Any] | None = None, *, text: str | bytes | None = None,
               drop: tuple[str, ...] = ()) -> str:
        """A config file outside the runs dir: the tiny sine config merged with ``extra`` (minus
        the dotted keys in ``drop``), or the raw ``text``."""
        path = self.tmp / "c.yaml"
        if text is None:
            cfg = deep_merge(SINE_TINY, extra or {})
            for key in drop:
                *parents, last = key.split(".")
                node = cfg
                for part in parents:
                    node = node[part]
                del node[last]
            text = yaml.safe_dump(cfg)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return str(path)

    def train(self, *args: str, **config: Any) -> list[str]:
        return ["train", self.config(**config), "--runs-dir", str(self.runs_dir), *args]

    def resume(self, *args: str) -> list[str]:
        return ["train", "--resume", str(self.run), "--runs-dir", str(self.runs_dir), *args]

    def eval(self, *args: str) -> list[str]:
        return ["eval", str(self.run), *args]

    def file(self, relative: str) -> Path:
        return self.run / relative

    def checkpoint(self, name: str) -> Path:
        return self.run / runs.CHECKPOINTS / name


def broken(edit: Callable[[Env], None], args: Callable[[Env], list[str]]) -> Callable[[Env], list[str]]:
    def setup(env: Env) -> list[str]:
        edit(env)
        return args(env)

    return setup


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def reshape(path: Path) -> None:
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["head.weight"] = torch.zeros(1, 5)  # as if saved from hidden_size 5
    torch.save(ckpt, path)


def pickled_object(path: Path) -> None:
    torch.save({"model": Path("/etc/passwd")}, path)  # weights_only must refuse it


def cfg(**kwargs: Any) -> Callable[[Env], list[str]]:
    return lambda env: env.train(**kwargs)


def args(*items: str) -> Callable[[Env], list[str]]:
    return lambda env: [item.format(run=env.run, runs=env.runs_dir, tmp=env.tmp) for item in items]


CASES: dict[str, tuple[Callable[[Env], list[str]], str]] = {
    # --- config files
    "config missing": (args("train", "{tmp}/missing.yaml", "--runs-dir", "{runs}"), "config file not found"),
    "config is a directory": (args("train", "{tmp}", "--runs-dir", "{runs}"), "is a directory"),
    "config empty": (cfg(text=""), "config file is empty"),
    "yaml syntax": (cfg(text="task: [unclosed\n"), "invalid YAML"),
    "yaml tab indent": (cfg(text="task:\n\tname: sine\n"), "invalid YAML"),
    "yaml python tag": (cfg(text="task: !!python/object/apply:os.system ['true']\n"), "invalid YAML"),
    "top level list": (cfg(text="- task\n- model\n"), "top level must be a mapping of sections, got list"),
    "top level scalar": (cfg(text="42\n"), "top level must be a mapping of sections, got int"),
    "not utf-8": (cfg(text=b"task: \xff\xfe\n"), "cannot read"),
    "unknown section": (cfg(extra={"trian": {}}), "trian: unknown section (did you mean 'train'?)"),
    "task section missing": (cfg(drop=("task",)), "task: section is required"),
    "task not a mapping": (cfg(extra={"task": ["sine"]}), "task: must be a mapping"),
    "model.name missing": (cfg(drop=("model.name",)), "model.name: is required"),
    "unknown task": (cfg(extra={"task": {"name": "sin"}}), "unknown task 'sin' (did you mean 'sine'?)"),
    "unknown model": (cfg(extra={"model": {"name": "lstn"}}), "unknown model 'lstn' (did you mean 'lstm'?)"),
    "misspelled key": (cfg(extra={"model": {"hiden_size": 8}}), "model.hiden_size: unknown key"),
    "negative size": (cfg(extra={"model": {"hidden_size": -3}}), "model.hidden_size: must be > 0, got -3"),
    "fractional size": (cfg(extra={"model": {"hidden_size": 8.5}}), "model.hidden_size: must be an integer"),
    "zero epochs": (cfg(extra={"train": {"epochs": 0}}), "train.epochs: must be > 0, got 0"),
    "epochs a word": (cfg(extra={"train": {"epochs": "many"}}),
                      "train.epochs: must be an integer, got 'many'"),
    "negative lr": (cfg(extra={"train": {"lr": -0.1}}), "train.lr: must be > 0"),
    "nan lr": (cfg(text=yaml.safe_dump(SINE_TINY).replace("lr: 0.01", "lr: .nan")),
               "train.lr: must be a finite number, got nan"),
    "infinite lr": (cfg(text=yaml.safe_dump(SINE_TINY).replace("lr: 0.01", "lr: .inf")),
                    "train.lr: must be a finite number, got inf"),
    "unknown optimizer": (cfg(extra={"train": {"optimizer": "adagrad"}}), "train.optimizer: must be one of"),
    "unknown device": (cfg(extra={"train": {"device": "tpu"}}), "train.device: must be one of"),
    "unknown scheduler": (cfg(extra={"train": {"scheduler": "linear"}}),
                          "train.scheduler.name: must be one of"),
    "scheduler option": (cfg(extra={"train": {"scheduler": {"name": "cosine", "gamma": 0.5}}}),
                         "option 'gamma' does not apply to scheduler 'cosine'"),
    "negative patience": (cfg(extra={"train": {"early_stopping": -2}}),
                          "train.early_stopping.patience: must be > 0"),
    "batch size list": (cfg(extra={"train": {"batch_size": [16]}}), "train.batch_size: must be an integer"),
    "negative clipping": (cfg(extra={"train": {"clip_grad_norm": -1}}), "train.clip_grad_norm: must be >= 0"),
    "checkpoint_every word": (cfg(extra={"train": {"checkpoint_every": "soon"}}),
                              "train.checkpoint_every: expected N steps or M minutes"),
    "checkpoint_every both": (cfg(extra={"train": {"checkpoint_every": {"steps": 5, "minutes": 1}}}),
                              "train.checkpoint_every: give exactly one of 'steps' or 'minutes'"),
    "zero max_loss": (cfg(extra={"train": {"max_loss": 0}}), "train.max_loss: must be > 0"),
    "unknown task mode": (cfg(extra={"task": {"mode": "forecast"}}), "task.mode: must be one of"),
    "horizon without rollout": (cfg(extra={"task": {"horizon": 3}}), "task.horizon: only mode 'rollout'"),
    "rollout without horizon": (cfg(extra={"task": {"mode": "rollout"}}),
                                "task.horizon: mode 'rollout' needs"),
    "bidirectional causal": (cfg(extra={"model": {"bidirectional": True}}),
                             "model.bidirectional: not allowed"),
    "mlp on seq2seq": (cfg(extra={"task": {"mode": "seq2seq", "seq_len": 20},
                                  "model": {"name": "mlp", "hidden_sizes": [4]}},
                           drop=("model.hidden_size",)),
                       "model.name: 'mlp' needs fixed-length"),
    "seq_len too long": (cfg(extra={"task": {"mode": "seq2seq", "seq_len": 250}}), "task.seq_len: must fit"),
    "fractions too large": (cfg(extra={"task": {"val_fraction": 0.5, "test_fraction": 0.45}}),
                            "val_fraction + test_fraction must leave"),
    "too few points": (cfg(extra={"task": {"n_points": 50}}), "task.n_points: must be >= 100"),
    "dropout above 1": (cfg(extra={"model": {"dropout": 1.5}}), "model.dropout: must be < 1"),
    "mlp zero width": (cfg(extra={"model": {"name": "mlp",
                       "hidden_sizes": [4, 0]}}, drop=("model.hidden_size",)),
                       "model.hidden_sizes: every width must be > 0"),
    "fp16 on cpu": (cfg(extra={"train": {"precision": "fp16", "device": "cpu"}}),
                    "train.precision: fp16 needs a CUDA device"),
    "unknown data key": (cfg(extra={"data": {"foo": 1}}), "data.foo: unknown key"),
    "plots not a bool": (cfg(extra={"logging": {"plots": "maybe"}}), "logging.plots: must be true or false"),
    "name not a string": (cfg(extra={"name": [1]}), "name: must be a string"),
    # --- command-line arguments of train
    "--set without =": (lambda env: env.train("--set", "train.lr"), "--set: expected KEY=VALUE"),
    "--set unknown section": (lambda env: env.train("--set", "tran.lr=1"), "unknown section 'tran'"),
    "--set empty key": (lambda env: env.train("--set", "=3"), "--set: bad key"),
    "--set bad value": (lambda env: env.train("--set", "train.lr=abc"),
                        "train.lr: must be a number, got 'abc'"),
    "--name climbing out": (lambda env: env.train("--name", "../escape"), "--name: invalid run name"),
    "--name with a slash": (lambda env: env.train("--name", "a/b"), "--name: invalid run name"),
    "unknown option": (lambda env: env.train("--bogus"), "No such option: --bogus"),
    "option without value": (lambda env: env.train("--runs-dir"), "Option '--runs-dir' requires an argument"),
    "no config": (args("train", "--runs-dir", "{runs}"), "CONFIG: missing argument"),
    "runs dir is a file": (args("train", "{run}/config.yaml", "--runs-dir", "{run}/summary.json"),
                           "summary.json is not a directory"),
    "path too long": (args("train", "x" * 300, "--runs-dir", "{runs}"), "File name too long"),
    "unknown command": (args("trian"), "No such command 'trian'"),
    # --- resume
    "resume with a config": (lambda env: [*env.resume(), env.config()],
                             "--resume: a resumed run keeps its own config"),
    "resume with --name": (lambda env: env.resume("--name", "x"), "--name: a resumed run keeps its name"),
    "resume missing run": (args("train", "--resume", "{tmp}/nope", "--runs-dir", "{runs}"),
                           "run directory not found"),
    "resume unknown id": (args("train", "--resume", "nope", "--runs-dir", "{runs}"),
                          "nope: run directory not found (neither a path nor a run id"),
    "resume a file": (args("train", "--resume", "{run}/summary.json", "--runs-dir", "{runs}"),
                      "not a directory"),
    "resume without last.pt": (broken(lambda env: env.checkpoint("last.pt").unlink(), Env.resume),
                               "no checkpoint to resume from"),
    "resume truncated last.pt": (broken(lambda env: truncate(env.checkpoint("last.pt")), Env.resume),
                                 "last.pt: checkpoint is truncated or corrupted"),
    "resume empty last.pt": (broken(lambda env: env.checkpoint("last.pt").write_bytes(b""), Env.resume),
                             "last.pt: checkpoint is empty (0 bytes)"),
    "resume from weights only": (broken(lambda env: shutil.copy(env.checkpoint("best.pt"),
                                                                env.checkpoint("last.pt")), Env.resume),
                                 "last.pt: not a full training checkpoint (no optimizer, trainer, rng)"),
    "resume pickled object": (broken(lambda env: pickled_object(env.checkpoint("last.pt")), Env.resume),
                              "last.pt: checkpoint holds a pickled object (pathlib.PosixPath), not a "
                              "state dict; refused"),
    "resume unsafe change": (lambda env: env.resume("--set", "train.lr=0.5"),
                             "--set: train.lr: cannot change when resuming"),
    "resume unknown key": (lambda env: env.resume("--set", "train.lrr=0.5"), "train.lrr: unknown key"),
    "resume bad config.yaml": (broken(lambda env: env.file("config.yaml").write_text("task: [\n"),
                                      Env.resume),
                               "config.yaml: line 2: invalid YAML"),
    "resume bad summary.json": (broken(lambda env: env.file("summary.json").write_text("{"), Env.resume),
                                "summary.json is corrupted (not valid JSON)"),
    # --- eval
    "eval missing run": (args("eval", "{tmp}/nope"), "run directory not found"),
    "eval a file": (args("eval", "{run}/config.yaml"), "not a directory"),
    "eval not a run": (args("eval", "{tmp}"), "config.yaml is missing"),
    "eval bad split": (args("eval", "{run}", "--split", "train"), "--split: must be 'test' or 'val'"),
    "eval bad checkpoint": (args("eval", "{run}", "--checkpoint", "middle"),
                            "--checkpoint: must be 'best' or 'last'"),
    "eval bad device": (args("eval", "{run}", "--device", "tpu"), "--device: must be cpu, cuda or auto"),
    "eval without best.pt": (broken(lambda env: env.checkpoint("best.pt").unlink(), Env.eval),
                             "best.pt: checkpoint not found"),
    "eval truncated best.pt": (broken(lambda env: truncate(env.checkpoint("best.pt")),
                                      Env.eval),
                               "best.pt: checkpoint is truncated or corrupted"),
    "eval garbage best.pt": (broken(lambda env: env.checkpoint("best.pt").write_bytes(b"not a checkpoint"),
                                    Env.eval),
                             "best.pt: checkpoint is truncated or corrupted"),
    "eval other model shape": (broken(lambda env: reshape(env.checkpoint("best.pt")),
                                      Env.eval),
                               "best.pt: checkpoint does not match the run's model (size mismatch for "
                               "head.weight"),
    "eval pickled object": (broken(lambda env: pickled_object(env.checkpoint("last.pt")),
                                   lambda env: env.eval("--checkpoint", "last")),
                            "last.pt: checkpoint holds a pickled object (pathlib.PosixPath), not a "
                            "state dict"),
    "eval not a checkpoint dict": (broken(lambda env: torch.save([1, 2], env.checkpoint("best.pt")),
                                          Env.eval),
                                   "best.pt: not an rnnlab checkpoint"),
    "eval edited config": (broken(lambda env: env.file("config.yaml").write_text(
        env.file("config.yaml").read_text().replace("hidden_size: 8", "hidden_size: x")),
        Env.eval), "config.yaml: model.hidden_size: must be an integer"),
    "eval without summary": (broken(lambda env: env.file("summary.json").unlink(),
                                    Env.eval), "summary.json is missing"),
    "eval missing argument": (args("eval"), "Missing argument"),
    # --- list
    "list extra argument": (args("list", "lstm", "extra"), "unexpected extra argument"),
    "list unknown name": (args("list", "lstn"), "no task, model, optimizer or scheduler named 'lstn'"),
    "list unknown option": (args("list", "--all"), "No such option: --all"),
}


@pytest.fixture
def env(tmp_path: Path, finished_run: Path) -> Env:
    runs_dir = tmp_path / "runs"
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    return Env(tmp_path, runs_dir, runs_dir / finished_run.name)


def test_there_are_at_least_40_distinct_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_one_line_exit_2_nothing_written(name: str, env: Env) -> None:
    setup, fragment = CASES[name]
    command = setup(env)
    before = snapshot(env.runs_dir)
    line = one_line_error(runner.invoke(app, command))
    assert fragment in line, line
    assert snapshot(env.runs_dir) == before


# ----------------------------------------------------------------------------- hypothesis

# fields and values that can never validate (pydantic never coerces a list or mapping to a
# scalar, and no number, bool word or known name starts with "x")
SCALAR_FIELDS = [("task", k) for k in ("mode", "n_points", "omega", "sigma", "window", "val_fraction")] + \
    [("model", k) for k in ("hidden_size", "num_layers", "dropout", "bidirectional", "init")] + \
    [("train", k) for k in ("epochs", "batch_size", "lr", "optimizer", "seed", "device", "threads",
                            "clip_grad_norm", "max_loss", "log_every", "momentum")] + \
    [("logging", "plots"), ("task", "name"), ("model", "name")]
POSITIVE_INTS = [("model", "hidden_size"), ("model", "num_layers"), ("train", "epochs"),
                 ("train", "batch_size"), ("train", "log_every"), ("task", "window")]
never_scalar = st.one_of(st.lists(st.integers(), min_size=1, max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2))
not_a_word = st.text(max_size=8).map(lambda s: "x" + s)
key_text = st.text(string.ascii_letters + "_", min_size=1, max_size=12)


@st.composite
def malformed_configs(draw: st.DrawFn) -> dict[str, Any]:
    """The valid tiny config with one or more mutations, each of which alone breaks it."""
    cfg = deep_merge(SINE_TINY, {})

    def section_of(name: str) -> dict[str, Any]:  # a section an earlier mutation replaced is reset
        if not isinstance(cfg.get(name), dict):
            cfg[name] = dict(SINE_TINY[name])
        return cfg[name]

    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["wrong type", "out of range", "unknown key", "not a mapping",
                                     "missing name", "unknown section"]))
        if kind == "wrong type":
            section, key = draw(st.sampled_from(SCALAR_FIELDS))
            section_of(section)[key] = draw(st.one_of(never_scalar, not_a_word))
        elif kind == "out of range":
            section, key = draw(st.sampled_from(POSITIVE_INTS))
            section_of(section)[key] = draw(st.integers(max_value=0))
        elif kind == "unknown key":
            section = draw(st.sampled_from(["task", "model", "train", "logging"]))
            section_of(section)["x" + draw(key_text)] = draw(st.integers())
        elif kind == "not a mapping":
            section = draw(st.sampled_from(["task", "model", "train", "logging"]))
            cfg[section] = draw(st.one_of(st.integers(), not_a_word, st.lists(st.integers(), min_size=1)))
        elif kind == "missing name":
            section_of(draw(st.sampled_from(["task", "model"]))).pop("name", None)
        else:
            cfg["x" + draw(key_text)] = draw(st.integers())
    return cfg


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
random_documents = st.one_of(
    st.text(max_size=200),  # arbitrary text: mostly scalars, broken YAML, odd characters
    st.dictionaries(st.sampled_from([s for s in SECTIONS if s not in ("name", "sweep")]) | key_text,
                    json_values, max_size=5).map(lambda d: yaml.safe_dump(d)),
)
bad_overrides = st.lists(st.one_of(
    st.text(max_size=20).filter(lambda s: "=" not in s),  # no '='
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["task", "model", "train", "logging"])
              .flatmap(lambda s: key_text.map(lambda k: f"{s}.x{k}")), st.integers()),  # unknown keys
), min_size=1, max_size=3)

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def assert_refused_without_a_run(document: str | bytes, *extra: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, runs_dir = Path(folder) / "c.yaml", Path(folder) / "runs"
        path.write_bytes(document.encode("utf-8", "surrogatepass") if isinstance(document, str)
                         else document)
        result = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs_dir), *extra])
        one_line_error(result)
        assert not runs_dir.exists()


@PROPERTY
@given(malformed_configs())
def test_mutated_configs_never_traceback_or_create_a_run(cfg: dict[str, Any]) -> None:
    assert_refused_without_a_run(yaml.safe_dump(cfg))


@PROPERTY
@given(random_documents)
def test_random_documents_never_traceback_or_create_a_run(document: str) -> None:
    assert_refused_without_a_run(document)


@PROPERTY
@given(bad_overrides)
def test_bad_overrides_never_traceback_or_create_a_run(overrides: list[str]) -> None:
    assert_refused_without_a_run(yaml.safe_dump(SINE_TINY), *[a for o in overrides for a in ("--set", o)])

"""``rnnlab check`` and ``rnnlab.testing``: three deliberately broken models (one reads future
steps, one ignores ``lengths``, one does not survive its checkpoint) and a task whose training
windows leak into validation are each rejected with one line naming the check; every registered
model on every task it supports, and every registered task, passes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.errors import ConfigError
from rnnlab.models import MODELS
from rnnlab.models.base import Model, ModelOptions
from rnnlab.tasks import TASKS
from rnnlab.tasks.base import TaskSpec
from rnnlab.tasks.forecasting import window_index
from rnnlab.tasks.sine import Sine, SineOptions
from rnnlab.testing import CheckFailed, Layout, assert_passes, check_model, check_task, failures
from rnnlab.testing.task_checks import disjoint, windows_inside

runner = CliRunner()


@contextlib.contextmanager
def registered(registry: Any, name: str, obj: Any) -> Iterator[None]:
    """``obj`` in ``registry`` for the block only (the parametrized runs must not see it)."""
    registry.register(name)(obj)
    try:
        yield
    finally:
        registry._items.pop(name, None)


class TinyOptions(ModelOptions):
    hidden_size: int = 8


class PeeksAhead(Model):
    """Per-step outputs where step t also reads step t + 1 (within each sequence's length)."""

    Options = TinyOptions

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.output != "sequence" or spec.input_kind != "features":
            raise ConfigError(where, "model.name: per-step feature tasks only")

    def __init__(self, options: TinyOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        self.rnn = nn.GRU(spec.input_size, options.hidden_size, batch_first=True)
        self.head = nn.Linear(options.hidden_size, spec.output_size)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Any]:
        ahead = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        if lengths is not None:  # the last real step reads itself: padding stays invisible
            last = torch.arange(x.shape[1])[None, :] == (lengths[:, None] - 1)
            ahead = torch.where(last[..., None].to(x.device), x, ahead)
        out, _ = self.rnn(x + ahead)
        return self.head(out), None


class IgnoresLengths(Model):
    """One label per sentence from the output at the last *padded* step."""

    Options = TinyOptions

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.output != "last" or spec.input_kind != "tokens":
            raise ConfigError(where, "model.name: token classification only")

    def __init__(self, options: TinyOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        self.embed = nn.Embedding(spec.input_size, options.hidden_size)
        self.rnn = nn.GRU(options.hidden_size, options.hidden_size, batch_first=True)
        self.head = nn.Linear(options.hidden_size, spec.output_size)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Any]:
        out, _ = self.rnn(self.embed(x))
        return self.head(out[:, -1]), None


class Unsaved(Model):
    """A window MLP whose input scaling is a random buffer left out of the state_dict."""

    Options = TinyOptions

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        if spec.window is None or spec.output != "last" or spec.input_kind != "features":
            raise ConfigError(where, "model.name: fixed feature windows, one output each")

    def __init__(self, options: TinyOptions, spec: TaskSpec) -> None:
        super().__init__(options, spec)
        width = (spec.window or 1) * spec.input_size
        self.register_buffer("scale", 1 + torch.rand(width), persistent=False)
        self.net = nn.Sequential(nn.Linear(width, options.hidden_size), nn.Tanh(),
                                 nn.Linear(options.hidden_size, spec.output_size))

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None, state: Any = None
                ) -> tuple[torch.Tensor, Any]:
        return self.net(x.flatten(1) * self.scale), None


BROKEN = [("peeks_ahead", PeeksAhead, "sine", "causality",
           "on task 'sine (mode: seq2seq)': causality: output at step "),
          ("ignores_lengths", IgnoresLengths, "sentiment", "padding",
           "on task 'sentiment (built-in tiny set)': padding: the output for sequence "),
          ("unsaved_buffer", Unsaved, "sine", "checkpoint round trip",
           "on task 'sine (mode: window)': checkpoint round trip: a freshly built model loaded from "
           "the saved state_dict gives other outputs")]


@pytest.mark.parametrize("name, cls, task, check, text", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_model_is_rejected_with_one_line_naming_the_check(name: str, cls: type, task: str,
                                                                    check: str, text: str) -> None:
    with registered(MODELS, name, cls):
        findings = check_model(name, task=task)
        bad = failures(findings)
        assert [f.check for f in bad] == [check], [f.line() for f in bad]
        line = bad[0].line()
        assert line.startswith(f"model '{name}' {text}") and "\n" not in line, line
        with pytest.raises(CheckFailed, match=check):
            assert_passes(findings)


def test_rnnlab_check_prints_the_failure_and_exits_1() -> None:
    with registered(MODELS, "peeks_ahead", PeeksAhead):
        result = runner.invoke(app, ["check", "peeks_ahead", "--task", "sine"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("model 'peeks_ahead' on task 'sine (mode: seq2seq)': causality: output "
                               "at step ") and "max diff" in line for line in lines), result.output
    assert lines[-1].startswith("peeks_ahead: ") and " 1 failed" in lines[-1]


def test_rnnlab_check_passes_with_exit_0_and_verbose_lists_every_check() -> None:
    result = runner.invoke(app, ["check", "gru", "--task", "sine", "--set", "hidden_size=6", "-v"])
    assert result.exit_code == 0, result.output
    assert "ok: model 'gru' on task 'sine (mode: seq2seq)': causality" in result.output
    assert "skip: model 'gru' on task 'sine (mode: window)': padding: " in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("gru: ") and " passed, 0 failed, " in last, last


@pytest.mark.parametrize("args, text", [
    (["check", "lstmm"], "error: rnnlab check: unknown model or task 'lstmm' (did you mean 'lstm'?)"),
    (["check", "lstm", "--task", "nope"], "error: --task: unknown task 'nope'"),
    (["check", "sine", "--task", "mnist"], "error: --task: 'sine' is a task"),
    (["check", "lstm", "--plugin", "no_such_module_here"],
     "error: --plugin: plugin module 'no_such_module_here' not found"),
])
def test_rnnlab_check_bad_names_are_one_line_and_exit_2(args: list[str], text: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    err = result.stderr if hasattr(result, "stderr") else result.output
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(text), err


def test_a_plugin_file_is_imported_and_its_model_checked(tmp_path: Path) -> None:
    plugin = tmp_path / "tinycell.py"
    plugin.write_text(
        "import torch\nfrom torch import nn\nfrom rnnlab.errors import ConfigError\n"
        "from rnnlab.models import MODELS\nfrom rnnlab.models.base import Model\n\n"
        "@MODELS.register('plugin_tanh_rnn')\nclass TanhRNN(Model):\n"
        "    @classmethod\n    def check_spec(cls, options, spec, where):\n"
        "        if spec.output != 'sequence' or spec.input_kind != 'features':\n"
        "            raise ConfigError(where, 'model.name: per-step feature tasks only')\n"
        "    def __init__(self, options, spec):\n        super().__init__(options, spec)\n"
        "        self.rnn = nn.RNN(spec.input_size, 8, batch_first=True)\n"
        "        self.head = nn.Linear(8, spec.output_size)\n"
        "    def forward(self, x, lengths=None, state=None):\n"
        "        out, state = self.rnn(x, state)\n        return self.head(out), state\n")
    try:
        result = runner.invoke(app, ["check", "plugin_tanh_rnn", "--plugin", str(plugin), "--task", "sine"])
        assert result.exit_code == 0, result.output
        assert result.output.strip().startswith("plugin_tanh_rnn: ")
    finally:
        MODELS._items.pop("plugin_tanh_rnn", None)


class LeakyOptions(SineOptions):
    name: Literal["leaky_sine"] = "leaky_sine"  # type: ignore[assignment]


class LeakySine(Sine):
    """Sine whose training windows run 3 steps into the validation split."""

    Options = LeakyOptions

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        return [{"label": "leaky, 200 points", "task": {"n_points": 200}}]

    def _windows(self, split: str) -> dict[str, torch.Tensor]:
        if split != "train":
            return super()._windows(split)
        start, stop = self.bounds["train"]
        return self._gather(*window_index(start, stop + 3, self.options.window, 1))


class OverlapOptions(SineOptions):
    name: Literal["overlap_sine"] = "overlap_sine"  # type: ignore[assignment]


class ClaimsOverlap(Sine):
    """A task describing its own splits (split_layout), one example in two of them."""

    Options = OverlapOptions

    def split_layout(self) -> Layout:
        return Layout("examples", {"train": torch.tensor([0, 1, 2]), "val": torch.tensor([2, 3]),
                                   "test": torch.tensor([4])})


def test_a_task_whose_training_windows_leak_is_rejected() -> None:
    with registered(TASKS, "leaky_sine", LeakySine):
        bad = {f.check: f.line() for f in failures(check_task("leaky_sine"))}
    assert set(bad) == {"windows inside splits"}, bad
    assert bad["windows inside splits"].startswith(
        "task 'leaky, 200 points': windows inside splits: a train window's target at position 120 lies "
        "outside the train split [0, 120) (it crosses into the val split)")


def test_a_task_layout_of_its_own_is_checked() -> None:
    with registered(TASKS, "overlap_sine", ClaimsOverlap):
        bad = [f.line() for f in failures(check_task("overlap_sine"))]
    # checked in each of the configs it inherits from sine (tasks.sine_checks), under its own name
    assert len(bad) == 3 and all(line.startswith("task 'overlap_sine (mode: ") and line.endswith(
        "': splits disjoint: train and val share 1 example(s), e.g. 2") for line in bad), bad


def test_layout_checks_catch_shared_examples_and_reads_of_a_later_split() -> None:
    shared = Layout("examples", {"train": torch.tensor([0, 1, 2]), "val": torch.tensor([2, 3]),
                                 "test": torch.tensor([4])})
    assert disjoint(shared) == ("fail", "train and val share 1 example(s), e.g. 2")
    ahead = Layout("positions", {"train": torch.tensor([[5]]), "val": torch.tensor([[12]])},
                   {"train": torch.tensor([[1, 2, 3, 4]]), "val": torch.tensor([[9, 10, 11, 17]])},
                   {"train": (0, 10), "val": (10, 15), "test": (15, 20)}, frozenset({"val"}))
    assert windows_inside(ahead) == ("fail", "a val window reads position 17, outside [0, 15): it "
                                     "crosses into the test split")


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_passes_on_every_task_it_supports(name: str) -> None:
    findings = check_model(name)
    assert not failures(findings), "\n".join(f.line() for f in failures(findings))
    built = [f for f in findings if f.check == "build" and f.status == "pass"]
    assert built, f"model '{name}' was built for no task"
    assert any(f.check == "eval equals summary" and f.status == "pass" for f in findings)


@pytest.mark.parametrize("name", TASKS.names())
def test_every_registered_task_passes(name: str) -> None:
    findings = check_task(name)
    assert not failures(findings), "\n".join(f.line() for f in failures(findings))
    checked = {f.check for f in findings if f.status == "pass"}
    assert {"build", "batches deterministic", "perfect predictor", "splits disjoint"} <= checked, checked

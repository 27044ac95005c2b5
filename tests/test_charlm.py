from __future__ import annotations

import io
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment, load_experiment
from rnnlab.errors import ConfigError, DataError
from rnnlab.execution.inference import generate_run
from rnnlab.execution.lifecycle import train_run
from rnnlab.models import build_model
from rnnlab.rundir import files as runs
from rnnlab.tasks import charlm_corpora as corpora
from rnnlab.tasks.charlm import CharLM, Vocab, sequential_windows, shell_quote
from rnnlab.training.build import build
from rnnlab.training.evaluation import evaluate, evaluate_run
from rnnlab.training.trainer import Trainer

from .conftest import deep_merge

DATA = os.environ.get("RNNLAB_DATA")
SHAKESPEARE = Path(DATA) / "tinyshakespeare" / "input.txt" if DATA else None
needs_shakespeare = pytest.mark.skipif(SHAKESPEARE is None or not SHAKESPEARE.is_file(),
                                       reason="needs RNNLAB_DATA with tinyshakespeare/input.txt")

WORDS = ("the quick brown fox jumps over a lazy dog while seven zebras quietly watch; "
         "ROMEO: but soft, what light through yonder window breaks?\n")


def text_file(tmp_path: Path, text: str, name: str = "corpus.txt", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def charlm_raw(path: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    base = {
        "name": "tiny_charlm",
        "task": {"name": "charlm", "bptt": 16, "samples": 2, "sample_length": 40},
        "model": {"name": "lstm", "hidden_size": 16, "embedding_dim": 8},
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "seed": 0, "threads": 1},
        "data": {"path": str(path)},
        "logging": {"plots": False},
    }
    return deep_merge(base, extra or {})


def make_task(path: Path, extra: dict[str, Any] | None = None, run_dir: Path | None = None) -> CharLM:
    task, _ = build(build_experiment(charlm_raw(path, extra)), torch.device("cpu"), run_dir)
    assert isinstance(task, CharLM)
    return task


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("charlm")
    path = text_file(tmp, WORDS * 60)
    exp = build_experiment(charlm_raw(path, {"task": {"sample_prefix": "ROMEO:"}}))
    return train_run(exp, tmp / "runs", Reporter(quiet=True))


# ----------------------------------------------------------------------------- split, vocabulary


def test_split_by_position_and_vocabulary_from_the_training_part(tmp_path: Path) -> None:
    text = "abcab" * 180 + "xyz" * 16 + "xy" + "abcab" * 10  # 900 + 50 + 50 characters
    task = make_task(text_file(tmp_path, text), {"task": {"bptt": 4}})
    assert task.bounds == {"train": (0, 900), "val": (900, 950), "test": (950, 1000)}
    assert task.vocab.itos == ["<unk>", "a", "b", "c"]  # x, y, z appear only after the train part
    ids = task.ids
    assert ids.dtype == torch.int64 and len(ids) == len(text)
    assert task.vocab.decode(ids[:5]) == "abcab"
    assert (ids[900:950] == 0).all() and (ids[950:] > 0).all()  # unknown characters map to <unk>
    assert task.describe()["val"]["unknown_chars"] == 50
    assert task.spec.input_size == task.spec.output_size == 4 and task.spec.causal


def test_vocab_encodes_any_code_point_and_round_trips(tmp_path: Path) -> None:
    vocab = Vocab.from_text("héllo wörld ✓ \U0001F600")
    text = "wörld ✓ \U0001F600 ok"
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    assert vocab.decode(ids) == "wörld ✓ \U0001F600 o\ufffd"  # 'o' known, 'k' not
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab.to_json({"sha256": "x"})))
    again, corpus = Vocab.load(path)
    assert again.itos == vocab.itos and corpus == {"sha256": "x"}


def test_split_fractions_are_configurable_and_test_can_be_the_val_split(tmp_path: Path) -> None:
    task = make_task(text_file(tmp_path, "ab" * 500), {"task": {"val_fraction": 0.1, "test_fraction": 0}})
    assert task.bounds["train"] == (0, 900) and task.bounds["val"] == task.bounds["test"] == (900, 1000)
    assert "test = val" in task.describe()["test"]["note"]


def test_vocabulary_is_saved_in_the_run_and_used_by_eval(trained_run: Path) -> None:
    saved = json.loads((trained_run / "vocab.json").read_text())
    assert saved["chars"] == sorted(set(WORDS)) and saved["unknown"] == "<unk>"
    assert saved["corpus"]["sha256"] == corpora.sha256_text(WORDS * 60)


# ----------------------------------------------------------------------------- batching


def test_sequential_rows_continue_across_batches() -> None:
    windows = list(sequential_windows(1000, 4, 10, offset=3))
    assert len(windows) == (1000 - 10) // 4 // 10
    starts = windows[0][:, 0]
    assert starts.tolist() == [3, 3 + 247, 3 + 2 * 247, 3 + 3 * 247]  # contiguous rows
    for prev, nxt in itertools.pairwise(windows):
        assert prev.shape == (4, 11)
        assert torch.equal(nxt[:, 0], prev[:, -1])  # the next window starts where this one ended
        assert torch.equal(nxt[:, 1:] - nxt[:, :-1], torch.ones(4, 10, dtype=torch.int64))
    assert int(windows[-1].max()) < 1000
    assert int(windows[-1][0, -1]) <= int(windows[0][1, 0])  # rows never overlap


def test_sequential_batches_continue_the_text_and_ask_for_a_state_reset_at_pass_start(tmp_path: Path) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(2000))
    task = make_task(text_file(tmp_path, text), {"task": {"batching": "sequential", "bptt": 8}})
    assert task.spec.stateful
    batches = list(task.train_batches(8, torch.Generator().manual_seed(0)))
    assert len(batches) == task.steps_per_epoch(8)
    assert [b.extra["reset_state"] for b in batches] == [True] + [False] * (len(batches) - 1)
    for prev, nxt in itertools.pairwise(batches):
        assert torch.equal(nxt.x[:, 0], prev.y[:, -1])
        assert torch.equal(prev.x[:, 1:], prev.y[:, :-1])


def test_random_windows_cover_the_train_split_once_per_pass(tmp_path: Path) -> None:
    task = make_task(text_file(tmp_path, "".join(chr(65 + i % 50) for i in range(1000))))
    batches = list(task.train_batches(8, torch.Generator().manual_seed(1)))
    assert len(batches) == task.steps_per_epoch(8)
    assert not task.spec.stateful
    x = torch.cat([b.x for b in batches])
    assert x.shape == ((900 - 16) // 16, 16)
    firsts = sorted(x[:, 0].tolist())
    assert len(firsts) == len(x)  # every window is a different stretch (letters cycle with period 50)


def test_sequential_training_carries_the_state_detached(tmp_path: Path) -> None:
    path = text_file(tmp_path, WORDS * 4)
    exp = build_experiment(charlm_raw(path, {"task": {"batching": "sequential"},
                                             "train": {"steps_per_epoch": 6}}))
    task, model = build(exp, torch.device("cpu"))
    seen: list[Any] = []
    original = task.loss

    def spy(model_, batch, state=None):
        seen.append((batch.extra["reset_state"], state))
        return original(model_, batch, state)

    task.loss = spy  # type: ignore[method-assign]
    trainer = Trainer(exp, task, model, tmp_path, Reporter(quiet=True), torch.device("cpu"), 1)
    trainer.train_epoch()
    per_pass = task.steps_per_epoch(8)
    assert 1 < per_pass < 6  # so the epoch crosses into a second pass
    for i, (reset, state) in enumerate(seen):
        if i == 0 or reset:
            assert state is None
        else:
            h, _ = state
            assert h.shape == (1, 8, 16) and not h.requires_grad and h.grad_fn is None
            assert h.abs().sum() > 0  # carried values, not a fresh zero state
    assert seen[per_pass][0] is True  # the second pass starts over


def test_epoch_by_tokens(tmp_path: Path) -> None:
    path = text_file(tmp_path, WORDS * 60)
    exp = build_experiment(charlm_raw(path, {"train": {"tokens_per_epoch": 1000}}))
    task, model = build(exp, torch.device("cpu"))
    trainer = Trainer(exp, task, model, tmp_path, Reporter(quiet=True), torch.device("cpu"), 1)
    assert trainer.steps_per_epoch == math.ceil(1000 / (8 * 16))
    row = trainer.train_epoch()
    assert row["steps"] == 8 and row["tokens_per_s"] > 0
    with pytest.raises(ConfigError, match="train.tokens_per_epoch: set either"):
        build_experiment(charlm_raw(path, {"train": {"tokens_per_epoch": 1000, "steps_per_epoch": 3}}))


@pytest.mark.parametrize("model", [
    {"name": "rnn", "one_hot": True},  # the tutorial's one-hot inputs
    {"name": "gru", "num_layers": 2, "dropout": 0.2},
    {"name": "lstm", "hidden_size": 8, "tie_weights": True, "embedding_dropout": 0},
])
def test_model_variants_train_on_the_task(tmp_path: Path, model: dict[str, Any]) -> None:
    path = text_file(tmp_path, WORDS * 20)
    exp = build_experiment(charlm_raw(path, {"model": model, "train": {"steps_per_epoch": 3}}))
    task, net = build(exp, torch.device("cpu"))
    if model.get("tie_weights"):
        assert net.head.weight is net.embed.weight
    if model.get("one_hot"):
        assert net.embed is None and net.rnn.input_size == len(task.vocab)
    batch = next(iter(task.train_batches(8, torch.Generator().manual_seed(0))))
    out, _ = net(batch.x)
    assert out.shape == (8, 16, len(task.vocab))
    row = Trainer(exp, task, net, tmp_path, Reporter(quiet=True), torch.device("cpu"), 1).train_epoch()
    assert math.isfinite(row["train_loss"]) and row["steps"] == 3


def test_weight_tying_needs_matching_sizes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.tie_weights: needs hidden_size"):
        build(build_experiment(charlm_raw(text_file(tmp_path, WORDS * 10), {"model": {"tie_weights": True}})),
              torch.device("cpu"))


# ----------------------------------------------------------------------------- metrics


def test_untrained_loss_is_about_ln_vocab_and_bpc_perplexity_agree(tmp_path: Path) -> None:
    task = make_task(text_file(tmp_path, WORDS * 40))
    torch.manual_seed(0)
    model = build_model(build_experiment(charlm_raw(tmp_path)).model, task.spec)
    m = evaluate(task, model, "val", 64)
    assert abs(m["loss"] - math.log(len(task.vocab))) < 0.1
    assert m["bpc"] == pytest.approx(m["loss"] / math.log(2))
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    start, stop = task.bounds["val"]
    assert m["chars"] == stop - start  # every character of the split, once


def test_evaluation_carries_state_across_chunks(tmp_path: Path) -> None:
    path = text_file(tmp_path, WORDS * 40)
    whole = make_task(path, {"task": {"eval_chunk": 100_000, "eval_streams": 3}})
    chunked = make_task(path, {"task": {"eval_chunk": 7, "eval_streams": 3}})
    torch.manual_seed(0)
    model = build_model(build_experiment(charlm_raw(path)).model, whole.spec)
    a, b = evaluate(whole, model, "test", 1), evaluate(chunked, model, "test", 1)
    assert a["chars"] == b["chars"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_training_learns_and_eval_reproduces_the_summary(trained_run: Path) -> None:
    rows = runs.read_jsonl(trained_run / runs.METRICS)
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] < math.log(len(set(WORDS)) + 1)
    assert all(r["tokens_per_s"] > 0 and "val_bpc" in r and "val_perplexity" in r for r in rows)
    summary = json.loads((trained_run / runs.SUMMARY).read_text())
    assert evaluate_run(trained_run, "test") == summary["test"]
    assert evaluate_run(trained_run, "val") == summary["best_val"]


@pytest.mark.parametrize("batching", ["random", "sequential"])
def test_same_seed_same_run(tmp_path: Path, batching: str) -> None:
    path = text_file(tmp_path, WORDS * 20)
    raw = charlm_raw(path, {"task": {"batching": batching, "samples": 1},
                            "model": {"dropout": 0.2, "num_layers": 2},
                            "train": {"epochs": 2, "steps_per_epoch": 3}})
    a, b = (train_run(build_experiment(raw), tmp_path / "runs", Reporter(quiet=True)) for _ in range(2))
    timing = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in runs.read_jsonl(run / runs.METRICS)]
            for run in (a, b)]
    assert rows[0] == rows[1]
    samples = [(run / "samples.txt").read_text().split("\n", 1)[1] for run in (a, b)]  # past the header
    assert samples[0] == samples[1]


# ----------------------------------------------------------------------------- generate


def test_generate_length_prefix_and_seed(trained_run: Path) -> None:
    a = generate_run(trained_run, "ROMEO:", 50, 0.8, seed=3)
    assert a.startswith("ROMEO:") and len(a) == len("ROMEO:") + 50
    assert "\ufffd" not in a  # <unk> is never drawn
    assert generate_run(trained_run, "ROMEO:", 50, 0.8, seed=3) == a
    assert generate_run(trained_run, "ROMEO:", 50, 1.5, seed=4) != a
    greedy = generate_run(trained_run, "the ", 30, 0.0, seed=1)
    assert greedy == generate_run(trained_run, "the ", 30, 0.0, seed=2)  # greedy ignores the seed
    assert generate_run(trained_run, "the ", 30, 1.0, top_k=1, seed=5) == greedy
    assert generate_run(trained_run, "x", 0, 0.5) == "x"


def test_generate_rejects_bad_settings(trained_run: Path) -> None:
    with pytest.raises(ConfigError, match="--temperature: must be a finite number from 0 to"):
        generate_run(trained_run, "the", 5, -0.5)
    with pytest.raises(ConfigError, match=r"--prefix: .*'é' \(U\+00E9\)"):
        generate_run(trained_run, "thé", 5, 0.5)
    with pytest.raises(ConfigError, match="--top-k"):
        generate_run(trained_run, "the", 5, 0.5, top_k=0)
    with pytest.raises(ConfigError, match="--prefix: must not be empty"):
        generate_run(trained_run, "", 5, 0.5)


def test_generate_needs_only_the_run_and_eval_notices_a_changed_corpus(tmp_path: Path) -> None:
    path = text_file(tmp_path, WORDS * 20)
    exp = build_experiment(charlm_raw(path, {"train": {"epochs": 1, "steps_per_epoch": 2},
                                             "task": {"samples": 0}}))
    run = train_run(exp, tmp_path / "runs", Reporter(quiet=True))
    assert not (run / "samples.txt").exists()
    path.unlink()
    assert len(generate_run(run, "the", 10, 0.5, seed=0)) == 13  # vocab.json + checkpoint suffice
    with pytest.raises(DataError, match="text file not found"):
        evaluate_run(run, "val")
    path.write_text(WORDS * 19 + "x" * len(WORDS))
    with pytest.raises(DataError, match="differs from the one the run was trained on"):
        evaluate_run(run, "val")


def test_samples_written_after_training_are_what_generate_prints(trained_run: Path) -> None:
    text = (trained_run / "samples.txt").read_text()
    blocks = text.split("# rnnlab generate ")[1:]
    assert len(blocks) == 2
    header, sample = blocks[1].split("\n", 1)
    assert "--prefix ROMEO: --length 40 --temperature 0.8 --seed 1" in header
    assert sample.rstrip("\n") == generate_run(trained_run, "ROMEO:", 40, 0.8, seed=1)


def test_shell_quote_keeps_a_command_on_one_line() -> None:
    assert shell_quote("ROMEO:") == "ROMEO:"
    assert shell_quote("it's") == "'it'\"'\"'s'"
    assert shell_quote("\nA") == "$'\\nA'"


def test_generate_cli(trained_run: Path) -> None:
    from typer.testing import CliRunner

    from rnnlab.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["generate", str(trained_run), "--prefix", "the", "--length", "20",
                             "--temperature", "0.8", "--top-k", "5", "--seed", "7"])
    assert ok.exit_code == 0 and ok.output.startswith("the") and len(ok.output.rstrip("\n")) == 23
    bad = runner.invoke(app, ["generate", str(trained_run), "--temperature", "-1"])
    assert bad.exit_code == 2 and "error: --temperature" in bad.output and "Traceback" not in bad.output


def test_plot_draws_the_bits_per_character_curve(trained_run: Path) -> None:
    from typer.testing import CliRunner

    from rnnlab.cli import app

    result = CliRunner().invoke(app, ["plot", str(trained_run)])  # the run was trained without plots
    assert result.exit_code == 0, result.output
    plots = trained_run / runs.PLOTS
    assert {p.name for p in plots.glob("*.png")} == {"learning_curves.png", "bpc.png"}
    assert (plots / "bpc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- corpora and errors


def test_builtin_corpus_needs_no_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    raw = charlm_raw(tmp_path, {"data": {"max_chars": 20_000}})
    del raw["data"]["path"]
    exp = build_experiment(raw)
    assert exp.data.corpus == "python_docs"  # the default, written out in the resolved config
    task, _ = build(exp, torch.device("cpu"))
    assert len(task.ids) == 20_000 and len(task.vocab) > 40
    assert "pydoc_data" in task.describe()["corpus"]["source"]
    assert not (tmp_path / "empty-cache").exists()
    full = corpora.python_docs()
    assert len(full.text) > 200_000 and full.sha256 == corpora.sha256_text(full.text)


def test_shipped_configs_validate() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("rnn_charlm", "gru_charlm", "lstm_charlm", "lstm_shakespeare"):
        exp = load_experiment(configs / f"{name}.yaml")
        assert exp.task.name == "charlm"


def test_text_file_in_another_encoding(tmp_path: Path) -> None:
    path = text_file(tmp_path, "café crème brûlée " * 100, encoding="latin-1")
    with pytest.raises(DataError, match="not valid utf-8 text"):
        make_task(path)
    task = make_task(path, {"data": {"encoding": "latin-1"}})
    assert "é" in task.vocab.chars


@pytest.mark.parametrize("extra, error, message", [
    ({"data": {"corpus": "tinyshakespeare"}}, ConfigError, "data.corpus: give data.path or data.corpus"),
    ({"data": {"encoding": "klingon"}}, ConfigError, "data.encoding: unknown text encoding"),
    ({"data": {"download": True}}, ConfigError, "data.download: only data.corpus: tinyshakespeare"),
    ({"task": {"batching": "shuffled"}}, ConfigError, "task.batching: must be one of"),
    ({"task": {"bptt": 700}}, DataError, "too few for task.bptt=700"),
    ({"task": {"bptt": 200, "batching": "sequential"}}, DataError, "or train.batch_size"),
    ({"task": {"sample_prefix": "Ω"}}, ConfigError, "task.sample_prefix"),
])
def test_bad_charlm_configs(tmp_path: Path, extra: dict[str, Any], error: type, message: str) -> None:
    path = text_file(tmp_path, WORDS * 10)
    with pytest.raises(error, match=message):
        make_task(path, extra)


def test_missing_text_file_is_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rnnlab.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(charlm_raw(tmp_path / "nope.txt")))
    result = CliRunner().invoke(app, ["train", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert result.output.strip().endswith("text file not found") and "data.path" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_tinyshakespeare_is_never_downloaded_unless_asked(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="data.download: true"):
        corpora.tiny_shakespeare(tmp_path / "data", tmp_path / "cache", download=False)


def test_download_is_verified_before_anything_is_saved(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_file(url: str, timeout: float) -> io.BytesIO:
        return io.BytesIO(b"First Citizen:\n")

    monkeypatch.setattr(corpora.urllib.request, "urlopen", wrong_file)
    with pytest.raises(DataError, match="failed verification"):
        corpora.tiny_shakespeare(None, tmp_path / "cache", download=True)
    assert not (tmp_path / "cache" / "tinyshakespeare" / "input.txt").exists()


@pytest.mark.realdata
@needs_shakespeare
def test_tinyshakespeare_download_path_caches_the_verified_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert SHAKESPEARE is not None
    payload = SHAKESPEARE.read_bytes()
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(corpora.urllib.request, "urlopen", fake_urlopen)
    first = corpora.tiny_shakespeare(None, tmp_path, download=True)
    second = corpora.tiny_shakespeare(None, tmp_path, download=True)  # from the cache
    assert calls == [corpora.TINY_SHAKESPEARE_URL]
    assert first == second and len(first.text) == corpora.TINY_SHAKESPEARE_BYTES


@pytest.mark.realdata
@needs_shakespeare
def test_lstm_shakespeare_config_reads_the_real_corpus_with_a_90_10_split() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs"
    exp = load_experiment(configs / "lstm_shakespeare.yaml")
    task, _ = build(exp, torch.device("cpu"))
    assert len(task.ids) == 1_115_394 and len(task.vocab) == 66
    assert task.bounds["val"] == (1_003_855, 1_115_394) == task.bounds["test"]

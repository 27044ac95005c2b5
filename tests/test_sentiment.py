from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment, load_experiment
from rnnlab.errors import ConfigError, DataError
from rnnlab.execution.lifecycle import train_run
from rnnlab.models import MODELS, build_model
from rnnlab.rundir import files as runs
from rnnlab.tasks.base import TaskSpec
from rnnlab.tasks.sentiment import bucketed
from rnnlab.tasks.text import UNK_ID, Vocab, tokenize
from rnnlab.tasks.text_files import BadLines, TableFormat, read_labelled
from rnnlab.training.build import build_task
from rnnlab.training.evaluation import evaluate_run

from .conftest import CONFIGS, REPO

CPU = torch.device("cpu")
TINY: dict[str, Any] = {
    "task": {"name": "sentiment"},
    "model": {"name": "gru", "embedding_dim": 8, "hidden_size": 8},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0, "threads": 1},
    "logging": {"plots": False},
}


def experiment(data: dict[str, Any] | None = None, task: dict[str, Any] | None = None):
    raw = {**TINY, "data": data or {}, "task": {"name": "sentiment", **(task or {})}}
    return build_experiment(raw, "test.yaml")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path, skip: bool = False, **table: Any):
    bad = BadLines(skip)
    rows, fmt = read_labelled(path, TableFormat(**table), bad)
    return rows, fmt, bad


# ----------------------------------------------------------------------------- tokeniser, vocabulary


def test_word_tokenizer_lowercases_and_splits_punctuation() -> None:
    assert tokenize("Wow... I didn’t LOVE it, 10/10!") == [
        "wow", ".", ".", ".", "i", "didn't", "love", "it", ",", "10", "/", "10", "!"]
    assert tokenize("Great", lowercase=False) == ["Great"]
    assert tokenize("Ab  c\td", level="char") == ["a", "b", " ", "c", " ", "d"]


def test_vocab_min_freq_max_size_and_unknowns() -> None:
    texts = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    vocab = Vocab.build(texts, min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]  # most frequent first
    assert vocab.encode(["b", "zzz", "d"]) == [3, UNK_ID, UNK_ID]
    assert Vocab.build(texts, max_size=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(texts).tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]  # ties alphabetical


def test_vocabulary_is_built_on_the_training_split_only(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "good film\t1\nbad film\t0\ngood good\t1\nbad bad\t0\n" * 3)
    write(tmp_path / "test.tsv", "wonderful film\t1\nawful film\t0\n")
    exp = experiment({"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.tsv"),
                      "val_fraction": 0.25}, {"min_freq": 1})
    task = build_task(exp, CPU)
    assert "wonderful" not in task.vocab.index and "awful" not in task.vocab.index
    test = task.splits["test"]
    assert test.ids[:, 0].tolist() == [UNK_ID, UNK_ID]  # words only in the test file are unknown
    assert task.describe()["test"]["unknown_token_rate"] == 0.5


# ----------------------------------------------------------------------------- file formats


def test_tsv_without_header_and_integer_labels(tmp_path: Path) -> None:
    rows, fmt, _ = read(write(tmp_path / "a.txt", 'A "quoted" word\t1\nbad\t0\r\n\nok\t1\n'))
    assert fmt == "tsv"
    assert [(r.text, r.label, r.line) for r in rows] == [('A "quoted" word', "1", 1), ("bad", "0", 2),
                                                         ("ok", "1", 4)]


def test_csv_with_header_quotes_and_named_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", 'id,sentiment,review\n7,pos,"Good, really good"\n8,neg,"Bad\n'
                 'and long"\n9,neg,meh\n')
    rows, fmt, _ = read(path, text_column="review", label_column="sentiment")
    assert fmt == "csv"
    assert [(r.text, r.label, r.line) for r in rows] == [("Good, really good", "pos", 2),
                                                         ("Bad\nand long", "neg", 3), ("meh", "neg", 5)]


@pytest.mark.parametrize("content,first", [
    ("text\tlabel\nx\tpos\ny\tneg\nz\tpos\nw\tneg\n", "x"),  # "label": not a label, all recur
    ("sentence\tstars\nx\t1\ny\t5\n", "x"),  # a word among integer labels
    ("text\tpos\nx\tpos\ny\tneg\n", "text"),  # "pos" is a label: data
    ("good\t1\nbad\t0\n", "good"),  # integers only: data
])
def test_header_detection(tmp_path: Path, content: str, first: str) -> None:
    rows, _, _ = read(write(tmp_path / "f.tsv", content))
    assert rows[0].text == first


def test_string_and_integer_labels_map_to_saved_classes(tmp_path: Path) -> None:
    write(tmp_path / "d.tsv", "".join(f"s{i} w{i % 3}\t{lab}\n" for i, lab in
                                      zip(range(60), ["neutral", "neg", "pos"] * 20)))
    task = build_task(experiment({"path": str(tmp_path / "d.tsv")}), CPU)
    assert task.classes == ["neg", "neutral", "pos"] and task.spec.output_size == 3
    write(tmp_path / "n.tsv", "".join(f"s{i}\t{lab}\n" for i, lab in zip(range(60), ["10", "2", "1"] * 20)))
    assert build_task(experiment({"path": str(tmp_path / "n.tsv")}), CPU).classes == ["1", "2", "10"]
    task.save_artifacts(tmp_path)
    assert json.loads((tmp_path / "labels.json").read_text()) == {"classes": ["neg", "neutral", "pos"]}


def test_bad_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", "good\t1\nno label here\nbad\t0\n\t1\n")
    with pytest.raises(DataError, match=r"d\.tsv: line 2: expected 2 tsv column\(s\), found 1"):
        read(path)
    rows, _, bad = read(path, skip=True)
    assert [r.text for r in rows] == ["good", "bad"]
    assert bad.total == 2 and bad.examples[1].endswith("line 4: empty text")


def test_unknown_label_in_a_test_file(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "good\tpos\nbad\tneg\n" * 10)
    write(tmp_path / "test.tsv", "fine\tpos\nso so\tmixed\nawful\tneg\n")
    data = {"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.tsv")}
    with pytest.raises(DataError, match=r"test\.tsv: line 2: unknown label 'mixed' \(classes: neg, pos\)"):
        build_task(experiment(data), CPU)
    task = build_task(experiment({**data, "skip_bad_lines": True}), CPU)
    assert len(task.splits["test"].lengths) == 2
    assert task.describe()["skipped_lines"] == {"total": 1, str(tmp_path / "test.tsv"): 1}


def test_encoding_option_and_undecodable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "l.tsv", "très bon\t1\nnul\t0\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"line 1: not valid utf-8 text .*data\.encoding"):
        read(path)
    assert read(path, encoding="latin-1")[0][0].text == "très bon"


@pytest.mark.parametrize("data,message", [
    ({"path": "a.tsv", "train": "b.tsv"}, "data.path: data.path and data.train are alternatives"),
    ({"val": "c.tsv"}, "data.val: needs data.train"),
    ({"path": "a.tsv", "encoding": "utf-9"}, "data.encoding: unknown text encoding 'utf-9'"),
    ({"train": "b.tsv", "label_column": "sentiment", "header": False},
     "data.header: columns are named, so the files need a header line"),
    ({"encoding": "latin-1"}, "data.encoding: describes data files, but none are given"),
    ({"path": "a.tsv", "text_column": 1}, "data.label_column: same column as text_column"),
])
def test_config_checks_on_the_data_section(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        experiment(data)


def test_data_dir_is_resolved_under_the_data_root(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "root" / "reviews"
    folder.mkdir(parents=True)
    write(folder / "a.txt", "good\t1\nbad\t0\n" * 10)
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    with pytest.raises(ConfigError, match="data.dir: 'reviews' is looked up under the data root"):
        build_task(experiment({"dir": "reviews", "path": ["a.txt"]}), CPU)
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "root"))
    task = build_task(experiment({"dir": "reviews", "path": ["a.txt"]}), CPU)
    assert task.describe()["files"]["train"] == [str(folder / "a.txt")]


def test_a_file_in_another_format_gets_one_clear_line(tmp_path: Path, write_config) -> None:
    data = write(tmp_path / "reviews.tsv", "text,label\nGood film,1\nBad film,0\n")
    config = write_config({"data": {"path": str(data)}}, base=TINY)
    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"error: {data}: data.label_column: column 1 (0-based) does not exist: "
                               "lines have 1 column(s) separated by tabs (read as tsv")
    assert not (tmp_path / "runs").exists()  # nothing written


# ----------------------------------------------------------------------------- padding invariance

SPEC = TaskSpec(input_kind="tokens", input_size=50, output_size=3, output="last", causal=False,
                metric="accuracy", mode="max")


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_prediction_does_not_depend_on_batch_padding(cell: str, bidirectional: bool, pooling: str) -> None:
    torch.manual_seed(0)
    options = MODELS.get(cell).Options(
        name=cell, hidden_size=16, embedding_dim=8, num_layers=2, dropout=0.3,
        bidirectional=bidirectional, pooling=pooling)
    model = build_model(options, SPEC).eval()
    short = torch.randint(2, 50, (1, 5))
    longer = torch.randint(2, 50, (3, 40))
    batch = torch.zeros(4, 40, dtype=torch.int64)  # padding id 0
    batch[0, :5], batch[1:] = short[0], longer
    lengths = torch.tensor([5, 40, 33, 17])
    with torch.no_grad():
        alone = model(short, torch.tensor([5]))[0].softmax(-1)
        batched = model(batch, lengths)[0].softmax(-1)
        naive = model(batch)[0].softmax(-1)  # tutorials: no lengths, padding read as input
    assert torch.allclose(alone[0], batched[0], atol=1e-6, rtol=0)
    assert not torch.allclose(alone[0], naive[0], atol=1e-3)  # the check above can fail


def test_bucketed_batches_cover_everything_with_less_padding() -> None:
    lengths = torch.randint(1, 60, (1000,))
    gen = torch.Generator().manual_seed(0)
    batches = list(bucketed(lengths, 16, gen))
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    shuffled = torch.randperm(1000, generator=gen).split(16)
    assert padded < 0.7 * sum(len(b) * int(lengths[b].max()) for b in shuffled)
    again = list(bucketed(lengths, 16, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


# ----------------------------------------------------------------------------- whole runs, predict


def test_tiny_run_eval_and_predict(tmp_path: Path, write_config, runs_dir: Path) -> None:
    config = write_config({"logging": {"plots": True}}, base=TINY)
    run = train_run(load_experiment(config), runs_dir, Reporter(quiet=True))
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert set(summary["test"]) == {"loss", "accuracy", "macro_f1", "samples"}
    assert summary["data"]["source"] == "tiny set" and summary["data"]["classes"] == ["negative", "positive"]
    assert evaluate_run(run, "test") == summary["test"]
    assert (run / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    vocab = json.loads((run / "vocab.json").read_text())
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"] and vocab["tokenizer"] == "word"

    sentences = write(tmp_path / "s.txt", "A wonderful film\n\nqwxzy vbnm\n")
    cli = CliRunner()
    result = cli.invoke(app, ["predict", str(run), "The food was awful.", "--file", str(sentences)])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [line[2] for line in lines] == ["The food was awful.", "A wonderful film", "qwxzy vbnm"]
    assert all(line[0] in ("negative", "positive") and 0.5 <= float(line[1]) <= 1 for line in lines)
    as_json = cli.invoke(app, ["predict", str(run), "qwxzy vbnm", "--json"])
    unknown = json.loads(as_json.stdout)  # only unknown words: the same as any other all-<unk> text
    other = json.loads(cli.invoke(app, ["predict", str(run), "zzzz yyyy", "--json"]).stdout)
    assert unknown["probabilities"] == other["probabilities"]
    assert sum(unknown["probabilities"].values()) == pytest.approx(1.0)

    empty = cli.invoke(app, ["predict", str(run), "  "])
    assert empty.exit_code == 2 and empty.stderr.strip() == "error: text 1: no tokens to classify"
    assert cli.invoke(app, ["predict", str(tmp_path)]).exit_code == 2


def test_two_runs_of_one_config_are_identical(write_config, runs_dir: Path) -> None:
    config = write_config({"model": {"bidirectional": True, "dropout": 0.3}}, base=TINY)
    timing = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
    rows = [[{k: v for k, v in row.items() if k not in timing}
             for row in runs.read_jsonl(train_run(load_experiment(config), runs_dir, Reporter(quiet=True))
                                        / runs.METRICS)] for _ in range(2)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


def test_predict_needs_no_data_files_and_a_text_run(tmp_path: Path, write_config, runs_dir: Path) -> None:
    data = write(tmp_path / "d.csv", "text,label\n" + "great stuff,good\nawful stuff,bad\n" * 20)
    config = write_config({"data": {"path": str(data)}, "train": {"epochs": 1}}, base=TINY)
    run = train_run(load_experiment(config), runs_dir, Reporter(quiet=True))
    data.unlink()  # predict uses the run's vocabulary and labels, not the data
    result = CliRunner().invoke(app, ["predict", str(run), "great"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\t")[0] in ("bad", "good")

    sine = write_config({"train": {"epochs": 1}}, name="sine")
    sine_run = train_run(load_experiment(sine), runs_dir, Reporter(quiet=True))
    result = CliRunner().invoke(app, ["predict", str(sine_run), "great"])
    assert result.exit_code == 2 and "predict needs a text classification run" in result.stderr


@pytest.mark.parametrize("name", ["rnn_sentiment", "bilstm_sentiment", "bilstm_reviews"])
def test_shipped_configs_are_valid(name: str) -> None:
    exp = build_experiment(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()), name)
    assert exp.task.name == "sentiment"


def data_root() -> Path:
    return Path(os.environ.get("RNNLAB_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.mark.realdata
def test_review_sentences_beat_75_percent(runs_dir: Path, monkeypatch) -> None:
    folder = data_root() / "sentiment-labelled-sentences"
    if not (folder / "imdb_labelled.txt").is_file():
        pytest.skip(f"the review sentences are not under RNNLAB_DATA ({folder})")
    monkeypatch.setenv("RNNLAB_DATA", str(data_root()))
    # the shipped config, shortened to fit the test suite's budget
    exp = load_experiment(CONFIGS / "bilstm_reviews.yaml", ["train.epochs=8", "train.threads=1",
                                                             "logging.plots=false"])
    summary = json.loads((train_run(exp, runs_dir, Reporter(quiet=True)) / runs.SUMMARY).read_text())
    assert summary["data"]["train"]["examples"] + summary["data"]["val"]["examples"] == 2400
    assert summary["data"]["test"]["examples"] == 600
    assert summary["test"]["accuracy"] > 0.75, summary["test"]

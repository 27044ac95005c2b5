"""Pretrained word vectors (``model.embedding_vectors``, ``model.freeze_embeddings``) on the bundled
review sentences, from vectors files the tests write (plain, with a header line, gzipped)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

import rnnlab
from rnnlab.cli import app
from rnnlab.config.loading import build_experiment
from rnnlab.errors import RunDirError
from rnnlab.execution.inference import predict
from rnnlab.rundir import files as runs
from rnnlab.rundir.readback import check_summary
from rnnlab.training.build import build_task, init_model

CPU = torch.device("cpu")
DIM = 50
BILSTM: dict[str, Any] = {
    "task": {"name": "sentiment"},
    "model": {"name": "lstm", "bidirectional": True, "embedding_dim": DIM, "hidden_size": 16},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0, "threads": 1},
    "logging": {"plots": False},
}
# words of the tiny set's reviews, plus some it never uses (they must not count towards coverage)
WORDS = ["the", "was", "great", "bad", "quick", "easy", "rude", "late", "music", "staff", ".",
         "zzz-unused", "qqqq", "xylophonic"]


def vector(i: int) -> list[float]:
    return [round(((i * 7 + j * 3) % 23) / 23 - 0.5, 4) for j in range(DIM)]


def write_vectors(path: Path, style: str, words: list[str] = WORDS) -> Path:
    lines = [f"{w} " + " ".join(str(v) for v in vector(i)) for i, w in enumerate(words)]
    if style == "header":
        lines.insert(0, f"{len(words)} {DIM}")
    text = "\n".join(lines) + "\n"
    if style == "gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def config(vectors: Path | None, **model: Any) -> dict[str, Any]:
    extra = {"embedding_vectors": str(vectors)} if vectors is not None else {}
    return {**BILSTM, "model": {**BILSTM["model"], **extra, **model}}


def embedding(run_dir: Path) -> torch.Tensor:
    state = torch.load(run_dir / runs.CHECKPOINTS / "best.pt", map_location="cpu", weights_only=False)
    return state["model"]["embed.weight"]


def vocab_tokens(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "vocab.json").read_text())["tokens"]


@pytest.mark.parametrize("style,name", [("plain", "glove.txt"), ("header", "wiki.vec"),
                                        ("gz", "vecs.txt.gz")])
def test_bilstm_trains_with_vectors_and_predicts_without_the_file(tmp_path: Path, style: str,
                                                                  name: str) -> None:
    path = write_vectors(tmp_path / name, style)
    run = rnnlab.train(config(path), runs_dir=tmp_path / "runs")
    summary = run.summary  # read back through the strict summary check
    tokens = vocab_tokens(run.path)
    words = tokens[2:]
    found = [w for w in WORDS if w in words]
    assert len(found) >= 8 and "xylophonic" not in words
    assert summary["status"] == "completed"
    assert summary["embedding_vectors"] == {"path": str(path.resolve()),
                                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                            "coverage": pytest.approx(len(found) / len(words), abs=1e-6)}
    texts = ["The staff were great.", "Bad music, rude staff."]
    before = predict(run.path, texts)
    path.unlink()  # the run holds the vectors: predicting needs no file, and gives the same answers
    after = predict(run.path, texts)
    assert [p.label for p in after] and all(p.label in ("negative", "positive") for p in after)
    assert [p.probabilities for p in after] == [p.probabilities for p in before]


def test_freeze_keeps_the_pretrained_embedding_and_missing_words_start_as_today(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "vectors.txt", "plain")
    run = rnnlab.train(config(path, freeze_embeddings=True), runs_dir=tmp_path / "runs")
    trained = embedding(run.path)
    exp = build_experiment(config(None), "plain.yaml")
    task = build_task(exp, CPU)
    today = init_model(exp, task, CPU).embed.weight.detach()  # the same seed, no vectors
    tokens = vocab_tokens(run.path)
    assert tokens == task.vocab.tokens  # the vocabulary is the training split's, as without vectors
    for i, token in enumerate(tokens):
        if token in WORDS:
            assert torch.equal(trained[i], torch.tensor(vector(WORDS.index(token)), dtype=trained.dtype))
        else:
            assert torch.equal(trained[i], today[i]), token
    unfrozen = rnnlab.train(config(path), runs_dir=tmp_path / "runs")
    moved = embedding(unfrozen.path)
    i = tokens.index("great")
    assert not torch.equal(moved[i], trained[i])  # without freeze the vectors are fine-tuned


def run_cli(tmp_path: Path, cfg: dict[str, Any]) -> tuple[int, str]:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"),
                                      "--quiet"])
    return result.exit_code, result.output


@pytest.mark.parametrize("body,line,what", [
    ("the 0.1 0.2\nwas 0.1 nope\n", 2, "'nope' is not a number"),
    ("3 2\nthe 0.1 0.2\nwas 0.1\n", 3, "expected a word and 2 numbers, got 2 field(s)"),
    ("the 0.1 0.2\ngreat 0.1 0.2 0.3\n", 2, "expected a word and 2 numbers, got 4 field(s)"),
    ("the 0.1 nan\n", 1, "non-finite"),
])
def test_a_bad_vectors_file_is_one_line_before_the_run_exists(tmp_path: Path, body: str, line: int,
                                                                what: str) -> None:
    path = tmp_path / "bad.vec"
    path.write_text(body)
    code, out = run_cli(tmp_path, config(path, embedding_dim=2))
    assert code == 2 and out.strip().splitlines() == [out.strip()]
    assert out.startswith(f"error: {path}: line {line}: ") and what in out, out
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_dimension_mismatch_and_options_name_the_field(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "v.txt", "plain")
    code, out = run_cli(tmp_path, config(path, embedding_dim=32))
    assert code == 2 and out.startswith("error: model.embedding_dim: is 32") and f"{DIM} dimensions" in out
    code, out = run_cli(tmp_path, config(None, freeze_embeddings=True))
    assert code == 2 and "model.freeze_embeddings: needs model.embedding_vectors" in out
    code, out = run_cli(tmp_path, config(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt: word vectors file not found" in out
    code, out = run_cli(tmp_path, config(path, one_hot=True))
    assert code == 2 and "model.embedding_vectors: needs token inputs with an embedding" in out


def test_summary_read_back_refuses_a_malformed_record(tmp_path: Path) -> None:
    good = {"embedding_vectors": {"path": "/v.txt", "sha256": "ab", "coverage": 0.5}}
    assert check_summary(good, tmp_path) == good
    with pytest.raises(RunDirError, match="'embedding_vectors' must be a mapping with path, sha256"):
        check_summary({"embedding_vectors": {"path": "/v.txt", "coverage": "half"}}, tmp_path)


def test_resume_needs_no_vectors_file_and_stays_frozen(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "vectors.txt.gz", "gz")
    run = rnnlab.train(config(path, freeze_embeddings=True), runs_dir=tmp_path / "runs")
    before = embedding(run.path)
    path.unlink()
    result = CliRunner().invoke(app, ["train", "--resume", str(run.path), "--set", "train.epochs=3",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    summary = runs.read_summary(run.path)
    assert summary["epochs_completed"] == 3 and summary["embedding_vectors"]["path"] == str(path.resolve())
    assert torch.equal(embedding(run.path), before)

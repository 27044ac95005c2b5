from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.common.console import Reporter
from rnnlab.config.loading import build_experiment, load_experiment
from rnnlab.errors import ConfigError, DataError
from rnnlab.execution.lifecycle import train_run
from rnnlab.rundir import files as runs
from rnnlab.tasks.mnist import FILES, MEAN, STD, Mnist, MnistData, confusion_matrix, mnist_root, translate
from rnnlab.training.build import build, build_task

from .conftest import CONFIGS
from .mnist_data import write_tiny_mnist
from .test_cli import assert_user_error

runner = CliRunner()
CPU = torch.device("cpu")


def tiny_config(root: Path, **task: Any) -> dict[str, Any]:
    return {
        "task": {"name": "mnist", "val_size": 50, **task},
        "model": {"name": "lstm", "hidden_size": 16},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 0, "threads": 1},
        "data": {"root": str(root), "download": False},
        "logging": {"plots": False},
    }


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    root = tmp_path / "data"
    return root, write_tiny_mnist(root)


def task_for(root: Path, **task: Any) -> Mnist:
    out = build_task(build_experiment(tiny_config(root, **task)), CPU)
    assert isinstance(out, Mnist)
    return out


def normalised(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - MEAN) / STD


# ----------------------------------------------------------------------------- loading and splits


def test_loader_reads_the_torchvision_layout_into_one_uint8_tensor(tiny) -> None:
    root, written = tiny
    task = task_for(root)
    train_x, train_y = written["train"]
    test_x, test_y = written["t10k"]
    assert task.images.dtype == torch.uint8 and task.images.shape == (400, 28, 28)
    assert torch.equal(task.images, torch.cat([train_x, test_x]))
    assert torch.equal(task.labels, torch.cat([train_y, test_y]))
    rows = task.rows
    assert (len(rows["train"]), len(rows["val"]), len(rows["test"])) == (250, 50, 100)
    assert sorted(torch.cat([rows["train"], rows["val"]]).tolist()) == list(range(300))
    assert rows["test"].tolist() == list(range(300, 400))
    assert task.describe()["root"] == str(root.resolve())
    # the hold-out is seeded: the same seed gives the same split, another seed another
    assert torch.equal(task_for(root).rows["val"], rows["val"])
    other = build_task(build_experiment({**tiny_config(root), "data": {"root": str(root), "seed": 1}}), CPU)
    assert not torch.equal(other.rows["val"], rows["val"])


def test_train_size_takes_a_subset_and_sizes_are_checked(tiny) -> None:
    root, _ = tiny
    assert len(task_for(root, train_size=40).rows["train"]) == 40
    with pytest.raises(ConfigError, match="task.val_size"):
        task_for(root, val_size=300)
    with pytest.raises(ConfigError, match="task.train_size: must be <= 250"):
        task_for(root, train_size=251)


def test_batches_index_every_training_image_once_per_epoch(tiny) -> None:
    root, _ = tiny
    task = task_for(root)
    gen = torch.Generator().manual_seed(0)
    batches = list(task.train_batches(64, gen))
    assert [b.size for b in batches] == [64, 64, 64, 58] and task.steps_per_epoch(64) == 4
    seen = torch.cat([b.x for b in batches])
    expected = normalised(task.images[task.rows["train"]])
    # same images, in a shuffled order: compare as sorted sets of rows
    assert torch.allclose(seen.flatten(1).sort(0).values, expected.flatten(1).sort(0).values, atol=1e-6)
    assert torch.equal(torch.cat([b.y for b in batches]).sort().values,
                       task.labels[task.rows["train"]].sort().values)


@pytest.mark.parametrize("sequence,shape", [("rows", (28, 28)), ("columns", (28, 28)), ("pixels", (784, 1))])
def test_sequence_modes(tiny, sequence: str, shape: tuple[int, int]) -> None:
    root, written = tiny
    task = task_for(root, sequence=sequence)
    assert task.spec.input_size == shape[1] and task.spec.window == shape[0]
    spec = task.spec
    assert (spec.output, spec.metric, spec.mode, spec.causal) == ("last", "accuracy", "max", False)
    batch = task.batch(torch.tensor([0, 5]))
    assert batch.x.shape == (2, *shape) and batch.x.dtype == torch.float32
    image = normalised(written["train"][0][5])
    expected = {"rows": image, "columns": image.T, "pixels": image.reshape(784, 1)}[sequence]
    assert torch.allclose(batch.x[1], expected, atol=1e-6)
    assert batch.y[1] == written["train"][1][5]


def test_permutation_is_fixed_by_its_seed(tiny) -> None:
    root, written = tiny
    a = task_for(root, sequence="pixels", permute=True)
    b = task_for(root, sequence="pixels", permute=True)
    three = torch.tensor([3])
    assert torch.equal(a.permutation, b.permutation) and torch.equal(a.sequences(three), b.sequences(three))
    assert sorted(a.permutation.tolist()) == list(range(784))
    flat = written["train"][0][3].reshape(784)
    assert torch.equal(a.sequences(three)[0, :, 0], flat[a.permutation])
    # the permutation is the task's, not the run's: train.seed leaves it alone, permute_seed moves it
    raw = tiny_config(root, sequence="pixels", permute=True)
    reseeded = build_task(build_experiment({**raw, "train": {**raw["train"], "seed": 7}}), CPU)
    assert torch.equal(reseeded.permutation, a.permutation)
    assert not torch.equal(task_for(root, sequence="pixels", permute=True, permute_seed=1).permutation,
                           a.permutation)
    # rows and columns read the same shuffled image as 28 rows (columns) of 28
    shuffled = flat[a.permutation].reshape(28, 28)
    assert torch.equal(task_for(root, permute=True).sequences(three)[0], shuffled)
    assert torch.equal(task_for(root, sequence="columns", permute=True).sequences(three)[0], shuffled.T)


def test_translate_moves_images_and_fills_with_zeros() -> None:
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    images[:, 10, 20] = 200
    images[:, 0, 0] = 100
    moved = translate(images, torch.tensor([[2, -1], [0, 0], [-2, 2]]), pad=2)
    assert moved.dtype == torch.uint8 and moved.shape == images.shape
    assert moved[0, 12, 19] == 200 and moved[0, 2, 0] == 0 and int(moved[0].sum()) == 200  # (0, 0) left
    assert torch.equal(moved[1], images[1])
    assert moved[2, 8, 22] == 200 and int(moved[2].sum()) == 200  # the corner pixel left the frame


def test_augment_shift_only_touches_training_batches(tiny) -> None:
    root, _ = tiny
    plain, shifted = task_for(root), task_for(root, augment_shift=2)

    def first_batch(task: Mnist, seed: int) -> torch.Tensor:
        return next(iter(task.train_batches(250, torch.Generator().manual_seed(seed)))).x

    a, b = first_batch(plain, 0), first_batch(shifted, 0)
    assert a.shape == b.shape and not torch.equal(a, b)
    assert torch.equal(b, first_batch(shifted, 0)) and not torch.equal(b, first_batch(shifted, 1))
    # the same images in the same order, each moved by at most 2 pixels: the bright bars survive
    assert torch.equal(a.amax((1, 2)), b.amax((1, 2)))
    rows = shifted.rows["val"]
    assert torch.equal(shifted.batch(rows).x, plain.batch(rows).x)  # validation images are never shifted


# ----------------------------------------------------------------------------- where the data comes from


def test_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    assert mnist_root(MnistData()) == tmp_path / "cache" / "rnnlab"
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "env"))
    assert mnist_root(MnistData()) == tmp_path / "env"
    assert mnist_root(MnistData(root=str(tmp_path / "given"))) == tmp_path / "given"


def test_missing_data_with_download_off_is_one_line(tmp_path: Path, write_config, runs_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "elsewhere"))
    empty = tmp_path / "empty"
    path = write_config(tiny_config(empty), base={})
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs_dir), "--data-dir", str(empty)])
    raw = empty.resolve() / "MNIST" / "raw"
    assert_user_error(result, f"error: {raw}: MNIST not found", "data.download is false", "RNNLAB_DATA",
                      "--data-dir", *FILES)
    assert not runs_dir.exists()
    # without --data-dir the folder searched is $RNNLAB_DATA's
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs_dir), "--set", "data.root=null"])
    assert_user_error(result, f"error: {tmp_path / 'elsewhere' / 'MNIST' / 'raw'}: MNIST not found")


def test_failed_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import MNIST

    # an unreachable mirror stands in for "no network": torchvision's own download code runs
    monkeypatch.setattr(MNIST, "mirrors", [f"file://{tmp_path}/no-mirror/"])
    exp = build_experiment({**tiny_config(tmp_path / "fresh"), "data": {"root": str(tmp_path / "fresh")}})
    with pytest.raises(DataError) as info:
        build_task(exp, CPU)
    line = info.value.line()
    assert "\n" not in line and "download from torchvision's mirrors failed" in line
    assert line.startswith(str(tmp_path / "fresh" / "MNIST" / "raw")) and "--data-dir" in line


def test_malformed_files_are_one_line(tiny) -> None:
    root, _ = tiny
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x09garbage")
    with pytest.raises(DataError, match="cannot read the MNIST IDX files"):
        task_for(root)
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 7)
    with pytest.raises(DataError, match="cannot read the MNIST IDX files"):
        task_for(root)


# ----------------------------------------------------------------------------- training end to end


def test_train_eval_plots_and_reproducibility(tiny, write_config, runs_dir: Path) -> None:
    root, _ = tiny
    cfg = tiny_config(root)
    cfg["logging"] = {"plots": True}
    path = write_config(cfg, base={})
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs_dir)])
    assert result.exit_code == 0, result.output
    assert "val_accuracy=" in result.stdout and "accuracy/" not in result.stdout.split("test ")[0]
    run = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run / runs.SUMMARY).read_text())
    test = summary["test"]
    assert set(test) == {"loss", "accuracy", *(f"accuracy/{d}" for d in range(10))}
    assert 0.0 <= test["accuracy"] <= 1.0 and summary["data"]["train"] == 250
    assert (run / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    rows = runs.read_jsonl(run / runs.METRICS)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and "val_accuracy/3" in rows[0]

    ev = runner.invoke(app, ["eval", str(run), "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["metrics"] == test
    ev_val = runner.invoke(app, ["eval", str(run), "--json", "--split", "val"])
    assert json.loads(ev_val.stdout)["metrics"] == summary["best_val"]

    again = runner.invoke(app, ["train", str(path), "--runs-dir", str(runs_dir), "-q"])
    rerun = Path(again.stdout.strip().splitlines()[-1])
    timing = ("seconds", "train_seconds", "samples_per_s", "tokens_per_s")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in runs.read_jsonl(rerun / runs.METRICS)]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in rows]


def test_per_class_accuracy_and_confusion_counts(tiny) -> None:
    root, _ = tiny
    exp = build_experiment(tiny_config(root))
    task, model = build(exp, CPU)
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, "test", 37)
        pred, true, _ = task.predictions(model, "test", 37)
    matrix = confusion_matrix(pred, true, 10)
    assert int(matrix.sum()) == 100 and torch.equal(matrix.sum(1), torch.bincount(true, minlength=10))
    assert metrics["accuracy"] == pytest.approx(float(matrix.trace()) / 100)
    for digit in range(10):
        n = int((true == digit).sum())
        assert n > 0  # every digit occurs among the 100 fixture test images
        hits = int(((pred == digit) & (true == digit)).sum())
        assert metrics[f"accuracy/{digit}"] == pytest.approx(hits / n)


SHIPPED = ["rnn_mnist.yaml", "lstm_mnist.yaml", "gru_mnist.yaml", "bilstm_mnist.yaml", "deep_lstm_mnist.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_train_on_the_loader(name: str, tiny, runs_dir: Path) -> None:
    root, _ = tiny
    exp = load_experiment(CONFIGS / name, ["train.epochs=1", "train.steps_per_epoch=2", "train.threads=1",
                                           "task.val_size=50", f"data.root={root}", "logging.plots=false"])
    assert exp.task.name == "mnist"
    run = train_run(exp, runs_dir, Reporter(quiet=True))
    assert json.loads((run / runs.SUMMARY).read_text())["status"] == "completed"


@pytest.mark.parametrize("name", ["rnn_mnist.yaml", "lstm_mnist.yaml"])
def test_pixel_sequences_with_the_shipped_configs(name: str, tiny) -> None:
    """The gradient-flow study reads the same configs with task.sequence=pixels (784 steps)."""
    root, _ = tiny
    exp = load_experiment(CONFIGS / name, ["task.sequence=pixels", "train.threads=1", "task.val_size=50",
                                           f"data.root={root}"])
    task, model = build(exp, CPU)
    batch = next(iter(task.train_batches(4, torch.Generator().manual_seed(0))))
    loss, _ = task.loss(model, batch)
    loss.backward()
    assert batch.x.shape == (4, 784, 1) and torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- real data


def real_mnist() -> Path:
    root = Path(os.environ.get("RNNLAB_DATA", "")).expanduser()
    if not os.environ.get("RNNLAB_DATA") or not all((root / "MNIST" / "raw" / f).is_file() for f in FILES):
        pytest.skip("needs MNIST under $RNNLAB_DATA/MNIST/raw (CI sets RNNLAB_DATA=../shared/data)")
    return root


@pytest.mark.realdata
def test_real_mnist_short_training_beats_90_percent(runs_dir: Path) -> None:
    real_mnist()
    # 6,000 training images seen twice by a small LSTM (about 5 s of CPU); held out: the 10,000 test images
    exp = load_experiment(CONFIGS / "lstm_mnist.yaml", [
        "task.train_size=6000", "task.val_size=1000", "model.hidden_size=64", "model.pooling=max",
        "train.epochs=2", "train.batch_size=32", "train.lr=0.005", "train.threads=1", "logging.plots=false",
        "data.download=false"])
    run = train_run(exp, runs_dir, Reporter(quiet=True))
    summary = json.loads((run / runs.SUMMARY).read_text())
    assert summary["data"]["test"] == 10_000
    assert summary["test"]["accuracy"] > 0.90, summary["test"]

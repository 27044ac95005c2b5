"""Row-MNIST speed: rnnlab against plain PyTorch, in one process and one invocation.

    python benchmarks/mnist.py loop [--config configs/lstm_mnist.yaml] [--epochs N] [--threads T]
    python benchmarks/mnist.py tutorial [--threads T] [--steps S]

``loop``: a plain PyTorch loop over in-memory tensors (pre-normalised float images indexed by a
shuffled permutation) against ``rnnlab train`` on the same config: the same model (``nn.LSTM``/
``nn.GRU``/``nn.RNN`` and a linear head on the last step, or the config's pooling), the same
training images (rnnlab's 55,000 after the validation hold-out) in the same seeded order, the
same optimizer (built by ``rnnlab.train.make_optimizer``), schedule, clipping, batch size and
epochs. Each epoch is timed from its first batch to its last optimizer step, evaluation excluded,
for both. Epoch 1 carries the process's warm-up (allocator, oneDNN kernels) for whichever runs
first, so the comparison is the mean of epochs 2..N for both. The plain loop's test accuracy is
measured after every epoch (untimed) to report when it first reaches ``--target``.

``tutorial``: the blog-tutorial setup (``torchvision.datasets.MNIST`` with
``transforms.ToTensor()`` converting one PIL image at a time, ``DataLoader(batch_size=8,
shuffle=True)``, a vanilla ``nn.RNN`` with hidden 64 fed an explicit zero h0, ``torch.optim.Adam``
at 1e-3, no clipping) against rnnlab at the same hyperparameters (``configs/rnn_mnist.yaml`` with
batch 8, lr 1e-3, no schedule, no clipping). Both first run ``--warmup`` steps untimed, then one
full epoch each (the tutorial's 60,000 images, rnnlab's 55,000) or, with ``--steps S``, S timed
steps each, extrapolated to an epoch. The speed-up is reported per epoch and per image (the
stricter one, since rnnlab's epoch holds 5,000 fewer images).

Both modes read MNIST from ``--data-dir``, else ``$RNNLAB_DATA``, else the cache (``<dir>/MNIST/raw``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rnnlab import runs  # noqa: E402
from rnnlab.config import Experiment, load_experiment  # noqa: E402
from rnnlab.progress import Reporter  # noqa: E402
from rnnlab.tasks.mnist import MEAN, STD, Mnist, MnistData, mnist_root  # noqa: E402
from rnnlab.train import (  # noqa: E402
    available_cores,
    build_task,
    make_optimizer,
    make_scheduler,
    seed_everything,
    set_threads,
    train_run,
)

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


# ----------------------------------------------------------------------------- plain PyTorch


class PlainRNN(nn.Module):
    """What a hand-written script defines: a recurrent layer and a linear head on its last step."""

    def __init__(self, cell: str, input_size: int, hidden: int, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                 pooling: str = "last", zero_h0: bool = False) -> None:
        super().__init__()
        kwargs: dict[str, Any] = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](input_size, hidden, layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0, **kwargs)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), 10)
        self.hidden, self.pooling, self.zero_h0 = hidden, pooling, zero_h0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = None
        if self.zero_h0:  # as the tutorials write it
            directions = 2 if self.rnn.bidirectional else 1
            h0 = torch.zeros(self.rnn.num_layers * directions, len(x), self.hidden)
        out, _ = self.rnn(x, h0)
        if self.pooling == "max":
            summary = out.amax(1)
        elif self.pooling == "mean":
            summary = out.mean(1)
        elif self.rnn.bidirectional:  # the forward direction ends at the last step, the backward at the first
            summary = torch.cat([out[:, -1, :self.hidden], out[:, 0, self.hidden:]], 1)
        else:
            summary = out[:, -1]
        return self.fc(self.drop(summary))


def plain_model(exp: Experiment, input_size: int) -> PlainRNN:
    """The config's model, written the plain way (built in the same order, so it starts from the
    same seeded weights as rnnlab's)."""
    m: Any = exp.model
    if m.name not in CELLS or m.init != "default":
        raise SystemExit(f"the plain loop covers rnn/lstm/gru with the default init, not "
                         f"model.name={m.name}, model.init={m.init}")
    return PlainRNN(m.name, input_size, m.hidden_size, m.num_layers, m.bidirectional, m.dropout,
                    getattr(m, "nonlinearity", "tanh"), m.pooling)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def plain_loop(exp: Experiment, task: Mnist, target: float) -> dict[str, Any]:
    """Train the config's model with a hand-written loop over pre-normalised in-memory tensors."""
    cfg = exp.train

    def normalised(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = task.rows[split]
        return (task.images[rows].float() / 255 - MEAN) / STD, task.labels[rows]

    x, y = normalised("train")
    x_test, y_test = normalised("test")
    seed_everything(cfg.seed)
    model = plain_model(exp, x.shape[-1])
    params = list(model.parameters())
    opt = make_optimizer(cfg, model)  # type: ignore[arg-type]
    sched, per_step = make_scheduler(cfg, opt, math.ceil(len(x) / cfg.batch_size) * cfg.epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    seconds, accs = [], []
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
            opt.step()
            if sched is not None and per_step:
                sched.step()
        if sched is not None and not per_step:
            sched.step()
        seconds.append(time.perf_counter() - start)
        accs.append(accuracy(model, x_test, y_test))
    reached = next((i for i, acc in enumerate(accs) if acc >= target), None)
    return {"seconds": seconds, "test_accuracy": accs,
            "optimizer": f"{type(opt).__name__}(fused={opt.defaults.get('fused')})",
            "time_to_target": None if reached is None else sum(seconds[:reached + 1]),
            "epoch_to_target": None if reached is None else reached + 1}


# ----------------------------------------------------------------------------- rnnlab


def rnnlab_run(config: Path, overrides: list[str], runs_dir: Path) -> dict[str, Any]:
    """``rnnlab train`` in this process (silent); its per-epoch figures from the run's files."""
    run = train_run(load_experiment(config, overrides), runs_dir, Reporter(quiet=True, stream=io.StringIO()))
    rows = runs.read_jsonl(run / runs.METRICS)
    summary = json.loads((run / runs.SUMMARY).read_text())
    return {"seconds": [r["train_seconds"] for r in rows], "steps": [r["steps"] for r in rows],
            "val_accuracy": [r["val_accuracy"] for r in rows], "test_accuracy": summary["test"]["accuracy"],
            "train_seconds": summary["train_seconds"], "train_images": summary["data"]["train"]}


def steady(seconds: list[float]) -> float:
    """Mean seconds per epoch without epoch 1 (it carries the warm-up), when there is more than one."""
    return statistics.fmean(seconds[1:] if len(seconds) > 1 else seconds)


# ----------------------------------------------------------------------------- modes


def loop_mode(args: argparse.Namespace) -> None:
    overrides = [*args.set, f"train.threads={args.threads}", "logging.plots=false"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    exp = load_experiment(args.config, overrides)
    task = build_task(exp, torch.device("cpu"))
    if not isinstance(task, Mnist):
        raise SystemExit(f"{args.config}: task.name must be mnist")
    t = exp.train
    print(f"{args.config} {' '.join(args.set)}")
    print(f"model {exp.model.model_dump()}; batch {t.batch_size}, {t.optimizer} lr {t.lr:g}, "
          f"scheduler {t.scheduler.name}, clip {t.clip_grad_norm}, {t.epochs} epochs, "
          f"{len(task.rows['train'])} training images; threads {args.threads}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:  # rnnlab builds its own task, as `rnnlab train` does
        if args.rnnlab_first:  # to check that the order (who pays the process warm-up) does not matter
            ours = rnnlab_run(args.config, overrides, Path(tmp))
            plain = plain_loop(exp, task, args.target)
        else:
            plain = plain_loop(exp, task, args.target)
            ours = rnnlab_run(args.config, overrides, Path(tmp))
    first = "rnnlab" if args.rnnlab_first else "plain"
    print(f"optimizer on both sides: {plain['optimizer']}; {first} ran first")
    print(f"{'epoch':>5} {'plain s':>8} {'rnnlab s':>9} {'plain test acc':>15} {'rnnlab val acc':>15}")
    for i, (a, b) in enumerate(zip(plain["seconds"], ours["seconds"])):
        accs = f"{plain['test_accuracy'][i]:15.4f} {ours['val_accuracy'][i]:15.4f}"
        print(f"{i + 1:>5} {a:8.2f} {b:9.2f} {accs}")
    p, r = steady(plain["seconds"]), steady(ours["seconds"])
    which = f"epochs 2..{len(plain['seconds'])}" if len(plain["seconds"]) > 1 else "epoch 1"
    print(f"seconds per epoch ({which}): plain {p:.3f}, rnnlab {r:.3f}; rnnlab / plain = {r / p:.3f}")
    print(f"training seconds, all epochs: plain {sum(plain['seconds']):.1f}, "
          f"rnnlab {ours['train_seconds']:.1f}")
    reached = ("not reached" if plain["time_to_target"] is None else
               f"after {plain['time_to_target']:.1f} s (epoch {plain['epoch_to_target']})")
    print(f"test accuracy: plain {plain['test_accuracy'][-1]:.4f} after the last epoch ({args.target:.1%} "
          f"{reached}); rnnlab {ours['test_accuracy']:.4f} (best checkpoint)")


def tutorial_data(root: Path, train: bool) -> torch.utils.data.Dataset:
    from torchvision import datasets, transforms

    return datasets.MNIST(str(root), train=train, transform=transforms.ToTensor())


def tutorial_steps(loader: torch.utils.data.DataLoader, model: PlainRNN, opt: torch.optim.Optimizer,
                   limit: int | None) -> tuple[float, int]:
    """The tutorial's loop body, as the blogs write it; returns (seconds, steps)."""
    criterion = nn.CrossEntropyLoss()
    start, steps = time.perf_counter(), 0
    for images, labels in loader:
        images = images.reshape(-1, 28, 28)
        outputs = model(images)
        loss = criterion(outputs, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if limit is not None and steps >= limit:
            break
    return time.perf_counter() - start, steps


@torch.no_grad()
def tutorial_accuracy(root: Path, model: PlainRNN) -> float:
    test = torch.utils.data.DataLoader(tutorial_data(root, False), batch_size=1000)
    correct = sum(int((model(images.reshape(-1, 28, 28)).argmax(1) == labels).sum())
                  for images, labels in test)
    return correct / len(test.dataset)  # type: ignore[arg-type]


def tutorial_mode(args: argparse.Namespace) -> None:
    root = args.data_dir or mnist_root(MnistData())
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(tutorial_data(root, True), batch_size=8, shuffle=True)
    model = PlainRNN("rnn", 28, 64, zero_h0=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tutorial_steps(loader, model, opt, args.warmup)
    tut_s, tut_steps = tutorial_steps(loader, model, opt, args.steps)
    tut_images, tut_epoch_images = tut_steps * 8, len(loader.dataset)  # type: ignore[arg-type]
    tut_acc = tutorial_accuracy(root, model)

    same = [*args.set, f"train.threads={args.threads}", "model.hidden_size=64", "train.batch_size=8",
            "train.lr=0.001", "train.scheduler=none", "train.clip_grad_norm=null", "logging.plots=false",
            "train.epochs=1"]
    with tempfile.TemporaryDirectory() as tmp:
        rnnlab_run(args.config, [*same, f"train.steps_per_epoch={args.warmup}"], Path(tmp))
        timed = [f"train.steps_per_epoch={args.steps}"] if args.steps else []
        ours = rnnlab_run(args.config, [*same, *timed], Path(tmp))
    our_s, our_steps, our_epoch_images = ours["seconds"][0], ours["steps"][0], ours["train_images"]
    our_images = min(our_steps * 8, our_epoch_images)
    tut_per_image, our_per_image = tut_s / tut_images, our_s / our_images
    tut_epoch, our_epoch = tut_per_image * tut_epoch_images, our_per_image * our_epoch_images
    how = ("one full epoch each" if args.steps is None
           else f"{args.steps} steps each, extrapolated to an epoch")
    print(f"tutorial setup vs rnnlab at its hyperparameters (vanilla RNN 64, batch 8, Adam 1e-3, "
          f"no clipping, no schedule); threads {args.threads}; {args.warmup} warm-up steps each "
          f"untimed; {how}")
    print(f"tutorial (DataLoader + ToTensor): {tut_steps} steps in {tut_s:.2f} s = {tut_epoch:.2f} s per "
          f"{tut_epoch_images}-image epoch, {tut_per_image * 1e6:.0f} us/image; test accuracy {tut_acc:.4f}")
    print(f"rnnlab ({args.config}): {our_steps} steps in {our_s:.2f} s = {our_epoch:.2f} s per "
          f"{our_epoch_images}-image epoch, {our_per_image * 1e6:.0f} us/image; "
          f"test accuracy {ours['test_accuracy']:.4f}")
    print(f"rnnlab is {tut_epoch / our_epoch:.2f}x faster per epoch, "
          f"{tut_per_image / our_per_image:.2f}x per image")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["loop", "tutorial"], nargs="?", default="loop")
    parser.add_argument("--config", type=Path, default=None,
                        help="default: configs/lstm_mnist.yaml (loop), configs/rnn_mnist.yaml (tutorial)")
    parser.add_argument("--set", action="append", default=[], help="rnnlab override KEY=VALUE (repeatable)")
    parser.add_argument("--threads", type=int, default=available_cores(), help="torch threads, both sides")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST/raw (default: $RNNLAB_DATA, then the cache)")
    parser.add_argument("--epochs", type=int, default=None, help="loop: train.epochs for both")
    parser.add_argument("--target", type=float, default=0.99,
                        help="loop: test accuracy the plain loop is timed to")
    parser.add_argument("--rnnlab-first", action="store_true", help="loop: run rnnlab before the plain loop")
    parser.add_argument("--steps", type=int, default=None, help="tutorial: timed steps (default: one epoch)")
    parser.add_argument("--warmup", type=int, default=50, help="tutorial: untimed warm-up steps, both sides")
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = REPO / "configs" / ("lstm_mnist.yaml" if args.mode == "loop" else "rnn_mnist.yaml")
    if args.data_dir is not None:
        args.data_dir = args.data_dir.resolve()
        args.set.append("data.root=" + json.dumps(str(args.data_dir)))
    set_threads(args.threads)
    (loop_mode if args.mode == "loop" else tutorial_mode)(args)


if __name__ == "__main__":
    main()

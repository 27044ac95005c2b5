"""Row-MNIST speed: rnnlab against plain PyTorch, in one process and one invocation.

    python benchmarks/mnist.py loop [--config configs/lstm_mnist.yaml] [--epochs N] [--threads T]
    python benchmarks/mnist.py target [--config configs/lstm_mnist.yaml] [--threads T]
    python benchmarks/mnist.py tutorial [--threads T] [--steps S]

``loop``: a plain PyTorch loop over in-memory tensors (pre-normalised float images indexed by a
shuffled permutation) against ``rnnlab train`` on the same config: the same model (``nn.LSTM``/
``nn.GRU``/``nn.RNN`` and a linear head on the last step, or the config's pooling), the same
training images (rnnlab's 55,000 after the validation hold-out) in the same seeded order, the
same optimizer (built by ``rnnlab.training.optim.make_optimizer``), schedule, clipping, precision (bf16
autocast around forward and loss when the config resolves to bf16), batch size and epochs. Each
epoch is timed from its first batch to its last optimizer step, evaluation excluded, for both.
Epoch 1 carries the process's warm-up (allocator, oneDNN kernels) for whichever runs first, so
the comparison is the mean of epochs 2..N for both. The plain loop's test accuracy is measured
after every epoch (untimed) to report when it first reaches ``--target``. By default the plain
loop runs all its epochs, then ``rnnlab train`` (``--rnnlab-first`` swaps them); on a busy
machine ``--interleave`` alternates a plain epoch with an epoch of rnnlab's ``Trainer`` (the code
``train_seconds`` times; validation skipped) so both see the same load, and adds process CPU
seconds per epoch, which load disturbs less than wall time.

``target``: time to ``--target`` test accuracy. The plain loop runs the reference recipe (LSTM
128, batch 128, stock ``torch.optim.Adam`` with a one-cycle schedule at ``--reference-lr``, clip
1.0, fp32, ``--reference-epochs`` epochs, on all 60,000 training images, as plain scripts do)
and reports the training seconds until its test accuracy (checked after every epoch, untimed)
first reaches the target; then ``rnnlab train CONFIG`` runs as shipped and reports its
``train_seconds`` and test accuracy.

``tutorial``: the blog-tutorial setup (``torchvision.datasets.MNIST`` with
``transforms.ToTensor()`` converting one PIL image at a time, ``DataLoader(batch_size=8,
shuffle=True)``, a vanilla ``nn.RNN`` with hidden 64 fed an explicit zero h0, ``torch.optim.Adam``
at 1e-3, no clipping) against rnnlab at the same hyperparameters (``configs/rnn_mnist.yaml`` with
batch 8, lr 1e-3, no schedule, no clipping). Both first run ``--warmup`` steps untimed, then one
full epoch each (the tutorial's 60,000 images, rnnlab's 55,000) or, with ``--steps S``, S timed
steps each, extrapolated to an epoch. The speed-up is reported per epoch and per image (the
stricter one, since rnnlab's epoch holds 5,000 fewer images).

Every mode reads MNIST from ``--data-dir``, else ``$RNNLAB_DATA``, else the cache
(``<dir>/MNIST/raw``).
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

from rnnlab.common.console import Reporter  # noqa: E402
from rnnlab.config.loading import Experiment, load_experiment  # noqa: E402
from rnnlab.execution.lifecycle import train_run  # noqa: E402
from rnnlab.rundir import files as runs  # noqa: E402
from rnnlab.tasks.mnist import MEAN, STD, Mnist, MnistData, mnist_root, translate  # noqa: E402
from rnnlab.training.build import build, build_task  # noqa: E402
from rnnlab.training.evaluation import evaluate  # noqa: E402
from rnnlab.training.optim import make_optimizer, make_scheduler  # noqa: E402
from rnnlab.training.precision import resolve_precision  # noqa: E402
from rnnlab.training.runtime import available_cores, seed_everything, set_threads  # noqa: E402
from rnnlab.training.trainer import Trainer  # noqa: E402

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
    model = PlainRNN(m.name, input_size, m.hidden_size, m.num_layers, m.bidirectional, m.dropout,
                     getattr(m, "nonlinearity", "tanh"), m.pooling)
    forget_bias = getattr(m, "forget_bias", None)
    if forget_bias is not None:  # as a script sets it: the forget-gate slice (gates i, f, g, o)
        with torch.no_grad():
            for name, param in model.rnn.named_parameters():
                if name.startswith("bias_"):
                    value = forget_bias if name.startswith("bias_ih") else 0.0
                    param[m.hidden_size:2 * m.hidden_size] = value
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def in_memory(task: Mnist, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-normalised float images and labels, all in memory (what a plain script prepares)."""
    return (task.images[rows].float() / 255 - MEAN) / STD, task.labels[rows]


class PlainLoop:
    """The config's model trained by a hand-written loop over in-memory tensors: on rnnlab's
    training split (same images, same seeded order), or on ``train_rows``."""

    def __init__(self, exp: Experiment, task: Mnist, train_rows: torch.Tensor | None = None,
                 stock_adam: bool = False) -> None:
        cfg = self.cfg = exp.train
        self.x, self.y = in_memory(task, task.rows["train"] if train_rows is None else train_rows)
        self.x_test, self.y_test = in_memory(task, task.rows["test"])
        seed_everything(cfg.seed)
        self.model = plain_model(exp, self.x.shape[-1])
        self.params = list(self.model.parameters())
        # rnnlab's optimizer (the comparison is of loops), or Adam as scripts write it
        self.opt = (torch.optim.Adam(self.params, lr=cfg.lr) if stock_adam
                    else make_optimizer(cfg, self.model))  # type: ignore[arg-type]
        steps = math.ceil(len(self.x) / cfg.batch_size) * cfg.epochs
        self.sched, self.per_step = make_scheduler(cfg, self.opt, steps)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.shift = task.options.augment_shift
        if self.shift and (task.options.sequence != "rows" or task.options.permute):
            raise SystemExit("the plain loop shifts images only when they are read as unpermuted rows")
        # the config's precision, written the plain way: bf16 autocast around forward and loss
        self.bf16 = resolve_precision(cfg.precision, torch.device("cpu")) == "bf16"

    def epoch(self) -> dict[str, float]:
        """One timed pass (wall and process CPU seconds), then the test accuracy, untimed."""
        cfg, model, opt, sched, x, y = self.cfg, self.model, self.opt, self.sched, self.x, self.y
        start, cpu = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(x), generator=self.gen)
        # random shifts drawn as rnnlab draws them (same generator, same order)
        shifts = (torch.randint(-self.shift, self.shift + 1, (len(x), 2), generator=self.gen)
                  if self.shift else None)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            images = x[idx]
            if shifts is not None:
                images = translate(images, shifts[i:i + cfg.batch_size], self.shift, fill=-MEAN / STD)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = nn.functional.cross_entropy(model(images), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm:
                nn.utils.clip_grad_norm_(self.params, cfg.clip_grad_norm)
            opt.step()
            if sched is not None and self.per_step:
                sched.step()
        if sched is not None and not self.per_step:
            sched.step()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"seconds": seconds, "cpu": cpu, "test_accuracy": accuracy(model, self.x_test, self.y_test)}

    def describe(self) -> str:
        return (f"{type(self.opt).__name__}(fused={self.opt.defaults.get('fused')}), "
                f"{'bf16 autocast' if self.bf16 else 'fp32'}, shifts up to {self.shift} px")


def time_to(target: float, epochs: list[dict[str, float]]) -> tuple[float, int] | None:
    """Training seconds until the test accuracy first reached ``target``, and that epoch."""
    for i, row in enumerate(epochs):
        if row["test_accuracy"] >= target:
            return sum(r["seconds"] for r in epochs[:i + 1]), i + 1
    return None


# ----------------------------------------------------------------------------- rnnlab


def rnnlab_run(config: Path, overrides: list[str], runs_dir: Path) -> dict[str, Any]:
    """``rnnlab train`` in this process (silent); its per-epoch figures from the run's files."""
    run = train_run(load_experiment(config, overrides), runs_dir, Reporter(quiet=True, stream=io.StringIO()))
    rows = runs.read_jsonl(run / runs.METRICS)
    summary = json.loads((run / runs.SUMMARY).read_text())
    return {"epochs": [{"seconds": r["train_seconds"], "val_accuracy": r["val_accuracy"], "steps": r["steps"]}
                       for r in rows],
            "test_accuracy": summary["test"]["accuracy"], "train_seconds": summary["train_seconds"],
            "train_images": summary["data"]["train"]}


def interleaved(exp: Experiment, plain: PlainLoop, runs_dir: Path) -> tuple[list[dict[str, float]],
                                                                             dict[str, Any]]:
    """Plain epoch, rnnlab epoch, plain epoch, ...: on a busy machine both see the same load.
    rnnlab's side is its Trainer's own epoch (what ``train_seconds`` times), validation skipped."""
    device = torch.device("cpu")
    task, model = build(exp, device)
    trainer = Trainer(exp, task, model, runs_dir, Reporter(quiet=True, stream=io.StringIO()), device,
                      exp.train.threads or available_cores())
    ours, epochs = [], []
    for _ in range(exp.train.epochs):
        epochs.append(plain.epoch())
        cpu = time.process_time()
        row = trainer.train_epoch()
        trainer.state.epoch += 1
        ours.append({"seconds": row["train_seconds"], "cpu": time.process_time() - cpu,
                     "val_accuracy": float("nan"), "steps": row["steps"]})
    test = evaluate(task, model, "test", exp.train.eval_batch_size or 4 * exp.train.batch_size)
    return epochs, {"epochs": ours, "test_accuracy": test["accuracy"],
                    "train_seconds": sum(r["seconds"] for r in ours), "train_images": len(task.rows["train"])}


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
        if args.interleave:
            plain = PlainLoop(exp, task)
            epochs, ours = interleaved(exp, plain, Path(tmp))
            order = "epochs interleaved (plain, rnnlab Trainer.train_epoch, ...)"
        elif args.rnnlab_first:  # to check that the order (who pays the process warm-up) does not matter
            ours = rnnlab_run(args.config, overrides, Path(tmp))
            plain = PlainLoop(exp, task)
            epochs = [plain.epoch() for _ in range(t.epochs)]
            order = "rnnlab train ran first, then the plain loop"
        else:
            plain = PlainLoop(exp, task)
            epochs = [plain.epoch() for _ in range(t.epochs)]
            ours = rnnlab_run(args.config, overrides, Path(tmp))
            order = "the plain loop ran first, then rnnlab train"
    print(f"on both sides: {plain.describe()}; {order}")
    cpu = args.interleave
    cpu_head = f" {'plain cpu':>9} {'rnnlab cpu':>10}" if cpu else ""
    print(f"{'epoch':>5} {'plain s':>8} {'rnnlab s':>9}{cpu_head} {'plain test acc':>15} "
          f"{'rnnlab val acc':>15}")
    for i, (a, b) in enumerate(zip(epochs, ours["epochs"])):
        cpus = f" {a['cpu']:9.2f} {b['cpu']:10.2f}" if cpu else ""
        print(f"{i + 1:>5} {a['seconds']:8.2f} {b['seconds']:9.2f}{cpus} {a['test_accuracy']:15.4f} "
              f"{b['val_accuracy']:15.4f}")
    which = f"epochs 2..{len(epochs)}" if len(epochs) > 1 else "epoch 1"
    for key in ("seconds", "cpu") if cpu else ("seconds",):
        p, r = steady([e[key] for e in epochs]), steady([e[key] for e in ours["epochs"]])
        what = "seconds" if key == "seconds" else "process CPU seconds"
        print(f"{what} per epoch ({which}): plain {p:.3f}, rnnlab {r:.3f}; rnnlab / plain = {r / p:.3f}")
    print(f"training seconds, all epochs: plain {sum(e['seconds'] for e in epochs):.1f}, "
          f"rnnlab {ours['train_seconds']:.1f}")
    reached = time_to(args.target, epochs)
    when = "not reached" if reached is None else f"after {reached[0]:.1f} s (epoch {reached[1]})"
    model = "last epoch" if args.interleave else "best checkpoint"
    print(f"test accuracy: plain {epochs[-1]['test_accuracy']:.4f} after the last epoch ({args.target:.1%} "
          f"{when}); rnnlab {ours['test_accuracy']:.4f} ({model})")


def target_mode(args: argparse.Namespace) -> None:
    """Time to the target accuracy: the reference plain loop (LSTM 128, batch 128, Adam with a
    one-cycle schedule, clip 1.0, on all 60,000 training images) against `rnnlab train CONFIG`."""
    threads = f"train.threads={args.threads}"
    reference = [*args.set, threads, "model.name=lstm", "model.hidden_size=128", "model.num_layers=1",
                 "model.bidirectional=false", "model.dropout=0", "model.pooling=last",
                 "train.batch_size=128", "train.optimizer=adam", "train.weight_decay=0",
                 f"train.lr={args.reference_lr}", "train.scheduler=onecycle", "train.clip_grad_norm=1.0",
                 f"train.epochs={args.reference_epochs}", "train.precision=fp32", "task.augment_shift=0"]
    exp = load_experiment(args.config, reference)
    task = build_task(exp, torch.device("cpu"))
    assert isinstance(task, Mnist)
    all_train = torch.cat([task.rows["train"], task.rows["val"]]).sort().values
    plain = PlainLoop(exp, task, all_train, stock_adam=True)
    epochs = [plain.epoch() for _ in range(args.reference_epochs)]
    recipe = plain.describe()
    del task, plain
    with tempfile.TemporaryDirectory() as tmp:
        ours = rnnlab_run(args.config, [*args.set, threads, "logging.plots=false"], Path(tmp))
    print(f"plain reference (LSTM 128, batch 128, {recipe} lr {args.reference_lr:g} one-cycle, "
          f"clip 1.0, {args.reference_epochs} epochs, {len(all_train)} images, threads {args.threads}):")
    seconds = " ".join(f"{e['seconds']:.2f}" for e in epochs)
    accs = " ".join(f"{e['test_accuracy']:.4f}" for e in epochs)
    print(f"  seconds per epoch {seconds}")
    print(f"  test accuracy after each epoch {accs}")
    reached = time_to(args.target, epochs)
    when = "never" if reached is None else f"after {reached[0]:.1f} s of training (epoch {reached[1]})"
    print(f"  reaches {args.target:.1%} test accuracy {when}")
    print(f"rnnlab train {args.config} {' '.join(args.set)}: train_seconds {ours['train_seconds']:.1f} over "
          f"{len(ours['epochs'])} epochs of {ours['train_images']} images, test accuracy "
          f"{ours['test_accuracy']:.4f} (best checkpoint)")


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
    our_s, our_steps = ours["epochs"][0]["seconds"], ours["epochs"][0]["steps"]
    our_epoch_images = ours["train_images"]
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
    parser.add_argument("mode", choices=sorted(MODES), nargs="?", default="loop")
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
    parser.add_argument("--interleave", action="store_true",
                        help="loop: alternate plain and rnnlab epochs (fairer on a busy machine) and "
                        "report process CPU seconds too")
    parser.add_argument("--reference-lr", type=float, default=0.005, help="target: the reference's lr")
    parser.add_argument("--reference-epochs", type=int, default=7, help="target: the reference's epochs")
    parser.add_argument("--steps", type=int, default=None, help="tutorial: timed steps (default: one epoch)")
    parser.add_argument("--warmup", type=int, default=50, help="tutorial: untimed warm-up steps, both sides")
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = REPO / "configs" / ("rnn_mnist.yaml" if args.mode == "tutorial" else "lstm_mnist.yaml")
    if args.data_dir is not None:
        args.data_dir = args.data_dir.resolve()
        args.set.append("data.root=" + json.dumps(str(args.data_dir)))
    set_threads(args.threads)
    MODES[args.mode](args)


MODES = {"loop": loop_mode, "target": target_mode, "tutorial": tutorial_mode}

if __name__ == "__main__":
    main()

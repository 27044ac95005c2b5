"""MNIST read as a sequence: 28 rows of 28 pixels (the tutorials' setup), 28 columns, or 784 single
pixels, optionally under a fixed seeded pixel permutation (permuted MNIST).

The files are read by ``torchvision.datasets.MNIST`` (its ``<root>/MNIST/raw/`` layout); its ``.data``
and ``.targets`` tensors are taken whole and kept as one uint8 tensor on the training device. A
batch is an index into that tensor, optionally shifted (``augment_shift``), read in the sequence
order (one gather when that is not the stored order), converted to float and normalised on the fly,
so no Python runs per image. A seeded ``val_size`` images of the 60,000 training images are held out
for checkpoint selection and early stopping; the 10,000 test images are only read for the final
report and ``rnnlab eval``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Optional

import torch
from pydantic import Field

from rnnlab.errors import ConfigError, DataError
from rnnlab.registry import TASKS
from rnnlab.tasks.base import (
    Batch,
    DataOptions,
    Task,
    TaskContext,
    TaskOptions,
    TaskSpec,
    cache_dir,
    data_root,
)
from rnnlab.tasks.classify import confusion_matrix
from rnnlab.tasks.mnist_checks import MnistChecks

if TYPE_CHECKING:
    from rnnlab.models.base import Model

SIDE = 28
CLASSES = 10
# torchvision's names for the uncompressed IDX files in <root>/MNIST/raw/
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# the usual MNIST training-set statistics of x / 255 (a permutation does not change them)
MEAN, STD = 0.1307, 0.3081


class MnistOptions(TaskOptions):
    name: Literal["mnist"] = "mnist"
    sequence: Literal["rows", "columns", "pixels"] = Field(
        "rows", description="rows/columns: 28 steps of 28 pixels; pixels: 784 steps of 1 pixel")
    permute: bool = Field(False, description="shuffle the 784 pixels with a fixed seeded permutation "
                          "before reading the image as a sequence (permuted MNIST)")
    permute_seed: int = Field(0, description="seed of that permutation (fixed: independent of train.seed)")
    val_size: int = Field(5000, gt=0, description="training images held out for validation (seeded)")
    train_size: Optional[int] = Field(
        None, gt=0, description="train on a seeded subset of this many images (default: all the rest)")
    augment_shift: int = Field(
        0, ge=0, le=4, description="shift each training image by up to this many pixels in each "
        "direction, drawn afresh every epoch (0: off; validation and test images are never shifted)")


class MnistData(DataOptions):
    download: bool = Field(True, description="fetch from torchvision's mirrors when the files are absent")


def mnist_root(options: MnistData) -> Path:
    """``--data-dir``/``data.root``, else ``$RNNLAB_DATA``, else the per-user cache."""
    return data_root(options) or cache_dir()


def load_mnist(root: Path, download: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (images, labels), "test": ...}``: uint8 (N, 28, 28) and int64 (N,), read by
    torchvision. Every failure is a one-line DataError naming the folder and what to do about it."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    missing = [name for name in FILES if not (raw / name).is_file()]
    if missing:
        found = "none" if len(missing) == len(FILES) else f"missing {', '.join(missing)}"
        what = f"MNIST not found ({found} of the four files {', '.join(FILES)})"
        where_to = ("put them there, or point rnnlab at a folder holding MNIST/raw/ with --data-dir, "
                    "data.root or the RNNLAB_DATA environment variable")
        if not download:
            raise DataError(raw, f"{what} and data.download is false; {where_to}")
        try:
            MNIST(str(root), train=False, download=True)  # fetches all four files
        except (OSError, RuntimeError) as exc:  # no network (URLError is an OSError), bad checksum
            raise DataError(raw, f"{what} and the download from torchvision's mirrors failed "
                            f"({one_line(exc)}); {where_to}") from None
    try:
        data = {"train": MNIST(str(root), train=True), "test": MNIST(str(root), train=False)}
    except (OSError, RuntimeError, AssertionError, ValueError, TypeError, KeyError) as exc:
        # torchvision's IDX parser asserts on a bad header and fails to reshape a truncated file
        raise DataError(raw, f"cannot read the MNIST IDX files ({type(exc).__name__}: "
                        f"{one_line(exc)}); expected torchvision's uncompressed {', '.join(FILES)}") from None
    out = {}
    for split, dataset in data.items():
        images, labels = dataset.data, dataset.targets
        if images.shape[1:] != (SIDE, SIDE) or len(images) != len(labels) or len(images) == 0:
            raise DataError(raw, f"{split}: expected N images of 28x28 and N labels, got images "
                            f"{tuple(images.shape)} and {len(labels)} labels")
        if int(labels.min()) < 0 or int(labels.max()) >= CLASSES:
            raise DataError(raw, f"{split}: labels must be digits 0-9, found {int(labels.max())}")
        out[split] = (images, labels)
    return out


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (torchvision's download errors span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def pixel_permutation(seed: int) -> torch.Tensor:
    return torch.randperm(SIDE * SIDE, generator=torch.Generator().manual_seed(seed))


def sequence_layout(sequence: str, permutation: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """For each position of the flattened (T, F) sequence, the image pixel it reads (None: the
    image's own row-major order). A permutation shuffles the 784 pixels first; the shuffled image
    is then read by rows, columns or pixels like any other."""
    order = permutation if permutation is not None else torch.arange(SIDE * SIDE)
    if sequence == "columns":
        order = order.view(SIDE, SIDE).t().reshape(-1)
    return None if torch.equal(order, torch.arange(SIDE * SIDE)) else order


def translate(images: torch.Tensor, shifts: torch.Tensor, pad: int, fill: float = 0) -> torch.Tensor:
    """Move each image (B, 28, 28) by its (dy, dx) in ``shifts`` (B, 2), |dy|, |dx| <= ``pad``,
    filling with ``fill``: one gather from the padded, flattened images."""
    width = SIDE + 2 * pad
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=fill).reshape(len(images), -1)
    grid = torch.arange(SIDE, device=images.device) + pad
    source = (grid[:, None] * width + grid[None, :]).reshape(1, -1)  # where each pixel sits, unshifted
    offset = shifts[:, :1] * width + shifts[:, 1:]
    return padded.gather(1, source - offset).view(len(images), SIDE, SIDE)


@TASKS.register("mnist", "MNIST digits read as sequences: rows, columns or pixels, optionally permuted")
class Mnist(MnistChecks, Task):
    Options = MnistOptions
    DataOptions = MnistData
    options: MnistOptions
    data: MnistData

    def __init__(self, options: Any, data: Any, context: TaskContext) -> None:
        super().__init__(options, data, context)
        self._reading()
        files = load_mnist(self.root, self.data.download)
        (train_x, train_y), (test_x, test_y) = files["train"], files["test"]
        self.images = torch.cat([train_x, test_x]).to(self.device)  # one tensor: train, then test
        self.labels = torch.cat([train_y, test_y]).to(self.device)
        rows = self.split_rows(len(train_x), len(test_x))
        self.rows = {split: index.to(self.device) for split, index in rows.items()}

    @classmethod
    def for_inference(cls, options: Any, data: Any, context: TaskContext) -> "Mnist":
        """How the run reads an image and its spec, from its options alone: no image is loaded
        (``sample_inputs`` then come from the run's saved ones)."""
        task = cls.__new__(cls)
        Task.__init__(task, options, data, context)
        task._reading()
        return task

    def _reading(self) -> None:
        """The order the model reads the pixels in and the spec: from the options, not the data."""
        o = self.options
        self.root = mnist_root(self.data)
        self.permutation = pixel_permutation(o.permute_seed) if o.permute else None
        layout = sequence_layout(o.sequence, self.permutation)
        self.layout = None if layout is None else layout.to(self.device)
        self.steps, self.features = (SIDE * SIDE, 1) if o.sequence == "pixels" else (SIDE, SIDE)
        self.spec = TaskSpec(input_kind="features", input_size=self.features, output_size=CLASSES,
                             output="last", causal=False, metric="accuracy", mode="max", window=self.steps)

    def split_rows(self, n_train: int, n_test: int) -> dict[str, torch.Tensor]:
        """Row indices into ``images`` per split: a seeded validation hold-out of the training
        images (and an optional seeded training subset); the test images follow the training ones."""
        o = self.options
        if o.val_size >= n_train:
            raise ConfigError("task.val_size", f"must leave training images: {self.root} has "
                              f"{n_train} training images, got {o.val_size}")
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.seed))
        val, train = order[:o.val_size], order[o.val_size:]
        if o.train_size is not None:
            if o.train_size > len(train):
                raise ConfigError("task.train_size", f"must be <= {len(train)} (training images left "
                                  f"after the {o.val_size} held out), got {o.train_size}")
            train = train[:o.train_size]
        return {"train": train.sort().values, "val": val.sort().values,
                "test": torch.arange(n_train, n_train + n_test)}

    # ------------------------------------------------------------------ data
    def sequences(self, rows: torch.Tensor, shifts: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 (B, T, F): the images at ``rows``, shifted by ``shifts`` (B, 2) if given, in the
        order the model reads them."""
        images = self.images[rows]
        if shifts is not None:
            images = translate(images, shifts, self.options.augment_shift)
        flat = images.reshape(len(rows), SIDE * SIDE)
        if self.layout is not None:
            flat = flat[:, self.layout]
        return flat.view(len(rows), self.steps, self.features)

    def batch(self, rows: torch.Tensor, shifts: Optional[torch.Tensor] = None) -> Batch:
        """Gather uint8 images and normalise them on the device: (x / 255 - MEAN) / STD."""
        x = self.sequences(rows, shifts).float().mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)
        return Batch(x, self.labels[rows])

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.rows["train"]) / batch_size)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        rows, shift = self.rows["train"], self.options.augment_shift
        # order and shifts are drawn on the CPU generator (reproducible), moved to the device once
        order = rows[torch.randperm(len(rows), generator=generator).to(rows.device)]
        shifts = (torch.randint(-shift, shift + 1, (len(rows), 2), generator=generator).to(rows.device)
                  if shift else None)
        for start in range(0, len(order), batch_size):
            stop = start + batch_size
            yield self.batch(order[start:stop], None if shifts is None else shifts[start:stop])

    def criterion(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, batch.y)

    # ------------------------------------------------------------------ evaluation
    def predictions(self, model: "Model", split: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 torch.Tensor]:
        """(predicted class, true class, summed cross-entropy) over a split, in file order."""
        preds, loss = [], torch.zeros((), dtype=torch.float64, device=self.device)
        rows = self.rows[split]
        for start in range(0, len(rows), batch_size):
            batch = self.batch(rows[start:start + batch_size])
            out, _ = model(batch.x)
            loss += torch.nn.functional.cross_entropy(out, batch.y, reduction="sum").double()
            preds.append(out.argmax(1))
        return torch.cat(preds), self.labels[rows], loss

    def evaluate(self, model: "Model", split: str, batch_size: int) -> dict[str, float]:
        pred, true, loss = self.predictions(model, split, batch_size)
        matrix = confusion_matrix(pred, true, CLASSES)
        correct, counts = matrix.diag().tolist(), matrix.sum(1).tolist()
        metrics = {"loss": loss.item() / len(true), "accuracy": (pred == true).double().mean().item()}
        # per-class details carry a "/" so progress lines leave them to metrics.jsonl; a digit
        # absent from the split (only in tiny subsets) has no accuracy rather than a made-up 0
        metrics.update({f"accuracy/{digit}": correct[digit] / counts[digit]
                        for digit in range(CLASSES) if counts[digit]})
        return metrics

    def sample_inputs(self, batch: int) -> torch.Tensor:
        """The first test images."""
        return self.batch(self.rows["test"][:batch]).x.cpu()

    def describe(self) -> dict[str, Any]:
        o = self.options
        return {"root": str(self.root.resolve()), "sequence": o.sequence, "steps": self.steps,
                "features": self.features, "permute": o.permute, "augment_shift": o.augment_shift,
                **{split: int(len(rows)) for split, rows in self.rows.items()}}

    # ------------------------------------------------------------------ plots
    def plots(self, model: "Model", run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        from rnnlab.common.plots import confusion_matrix_plot

        batch_size = self.eval_batch_size
        pred, true, _ = self.predictions(model, "test", batch_size)
        matrix = confusion_matrix(pred, true, CLASSES).cpu()
        return [confusion_matrix_plot(matrix, [str(d) for d in range(CLASSES)],
                                      run_dir / "plots" / "confusion_matrix.png", "test split")]


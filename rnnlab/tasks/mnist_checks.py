"""What ``rnnlab check`` sees of the ``mnist`` task (``contract``): a config on fake IDX files
written for the check (``write_fake_mnist``), the image rows of each split, and a perfect
predictor (a lookup of each image's label)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import torch

from rnnlab.tasks.contract import SPLITS, Layout, Oracle, Perfect, answer_from, lookup, one_hot_logits


def write_fake_mnist(root: Path, n_train: int = 80, n_test: int = 40, seed: int = 0) -> Path:
    """Four IDX files in torchvision's layout (``root/MNIST/raw``): faint noise with a bright bar
    whose row depends on the digit, so a few steps learn it. Every image differs from every other."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.randint(0, 10, (n,), generator=gen)
        images = torch.randint(0, 60, (n, 28, 28), generator=gen, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):
            images[i, 2 * label + 4:2 * label + 6, 4:24] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x0803, n, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, n) + labels.to(torch.uint8).numpy().tobytes())
    return root


class MnistChecks:
    rows: dict[str, torch.Tensor]
    labels: torch.Tensor

    @classmethod
    def check_configs(cls, folder: Path) -> list[dict[str, Any]]:
        root = folder / "mnist"
        if not (root / "MNIST" / "raw").is_dir():
            write_fake_mnist(root)
        return [{"variant": "sequence: rows, fake images",
                 "task": {"sequence": "rows", "val_size": 20},
                 "data": {"root": str(root), "download": False}}]

    def split_layout(self) -> Layout:
        return Layout("examples", {s: self.rows[s].cpu() for s in SPLITS})

    def perfect_predictor(self) -> Perfect:
        batch = self.batch  # type: ignore[attr-defined]
        table = lookup([(batch(self.rows[s]).x, self.labels[self.rows[s]]) for s in SPLITS])
        oracle = Oracle(lambda x, _: one_hot_logits(answer_from(table, x), 10).to(x.device))
        return Perfect(oracle, {"loss": 0.0, "accuracy": 1.0})

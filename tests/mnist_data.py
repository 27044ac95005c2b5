"""A tiny MNIST in torchvision's raw layout (``<root>/MNIST/raw/``, uncompressed IDX files), so the
real loader runs in tests without the real data or a download."""

from __future__ import annotations

import struct
from pathlib import Path

import torch

IMAGE_MAGIC, LABEL_MAGIC = 0x0803, 0x0801  # IDX: unsigned byte, 3 and 1 dimensions


def write_idx_images(path: Path, images: torch.Tensor) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", IMAGE_MAGIC, n, rows, cols) + images.numpy().tobytes())


def write_idx_labels(path: Path, labels: torch.Tensor) -> None:
    path.write_bytes(struct.pack(">II", LABEL_MAGIC, len(labels)) + labels.to(torch.uint8).numpy().tobytes())


def make_images(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Faint noise with a bright bar on rows 2*label+4 and 2*label+5: learnable in a few steps."""
    images = torch.randint(0, 60, (len(labels), 28, 28), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 * label + 4:2 * label + 6, 4:24] = 255
    return images


def write_tiny_mnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Write the four files under ``root/MNIST/raw`` and return what was written."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.randint(0, 10, (n,), generator=gen)
        images = make_images(labels, gen)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        written[prefix] = (images, labels)
    return written

"""Classification metrics shared by classification tasks: confusion matrix, accuracy, macro F1,
and the confusion-matrix figure."""

from __future__ import annotations

from pathlib import Path

import torch


def confusion_matrix(pred: torch.Tensor, true: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts: row = true class, column = predicted class."""
    return torch.bincount(true * classes + pred, minlength=classes * classes).view(classes, classes)


def macro_f1(matrix: torch.Tensor) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class that is neither
    present nor predicted is left out (its F1 is undefined)."""
    m = matrix.double()
    tp = m.diag()
    denom = 2 * tp + (m.sum(0) - tp) + (m.sum(1) - tp)
    present = denom > 0
    return (2 * tp[present] / denom[present]).mean().item() if bool(present.any()) else 0.0


def classification_metrics(logits: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """``loss`` (mean cross-entropy), ``accuracy`` and ``macro_f1`` from (N, C) logits."""
    loss = torch.nn.functional.cross_entropy(logits.double(), true, reduction="mean").item()
    pred = logits.argmax(1)
    matrix = confusion_matrix(pred, true, logits.shape[1])
    return {"loss": loss, "accuracy": (pred == true).double().mean().item(), "macro_f1": macro_f1(matrix),
            "samples": float(len(true))}


def confusion_matrix_plot(matrix: torch.Tensor, labels: list[str], path: Path, title: str) -> Path:
    """Counts with row-normalised colour (recall per true class), so small classes stay visible."""
    from .plots import _save, plt

    m = matrix.cpu().double()
    rates = m / m.sum(1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black")
    ticks = range(len(labels))
    rotate = max(map(len, labels)) > 3
    ax.set_xticks(ticks, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(ticks, labels)
    accuracy = m.diag().sum().item() / max(m.sum().item(), 1)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}: accuracy {accuracy:.1%}")
    return _save(fig, path)

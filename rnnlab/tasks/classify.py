"""Classification metrics shared by classification tasks: confusion matrix, accuracy, macro F1
(the figure is ``plots.confusion_matrix_plot``)."""

from __future__ import annotations

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


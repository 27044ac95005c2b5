"""Forecast metrics and the baselines every ``series`` run is compared with.

Metrics (over every window, horizon step and target channel of a split)
- ``mse``, ``mae``: on the scaled values, what the literature reports.
- ``mae_data``, ``rmse_data``: in the data's own units; ``smape``: symmetric MAPE in percent,
  100 * mean(2 |f - y| / (|f| + |y|)), a 0/0 term counting 0.
- ``mase``: MAE over the in-sample seasonal-naive MAE (Hyndman & Koehler 2006): per target channel,
  the mean |y_t - y_{t-m}| over the training rows is the scale; the ratios are averaged over the
  channels. Below 1: better than the seasonal-naive forecast made on the training data.

Baselines, computed on the identical windows (the same lookback rows) in the scaled space:
``last_value`` (repeat the lookback's last value), ``seasonal_naive`` (the value one ``period``
before, repeated over the horizon), ``train_mean`` (each channel's mean over the training rows) and
``linear`` (a least-squares map from the L lookback values plus a bias to the H future values,
shared by the channels and fitted on the training windows).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

BASELINES = ("last_value", "seasonal_naive", "train_mean", "linear")


def forecast_metrics(pred: torch.Tensor, y: torch.Tensor, to_units: Callable[[torch.Tensor], torch.Tensor],
                     mase_scale: torch.Tensor) -> dict[str, float]:
    """``pred``, ``y``: (N, H, C) scaled; ``to_units`` maps them to data units; ``mase_scale`` (C,)."""
    err = (pred - y).double()
    pu, yu = to_units(pred.double()), to_units(y.double())
    eu = (pu - yu).abs()
    denom = pu.abs() + yu.abs()
    smape = torch.where(denom > 0, 2 * eu / denom.clamp(min=1e-300), torch.zeros_like(eu))
    mae_c = eu.mean(dim=(0, 1))
    return {
        "mse": err.pow(2).mean().item(),
        "mae": err.abs().mean().item(),
        "mae_data": eu.mean().item(),
        "rmse_data": eu.pow(2).mean().sqrt().item(),
        "smape": 100 * smape.mean().item(),
        "mase": (mae_c / mase_scale.to(mae_c)).mean().item(),
    }


def per_step_mse(pred: torch.Tensor, y: torch.Tensor) -> list[float]:
    return (pred - y).double().pow(2).mean(dim=(0, 2)).tolist()


def seasonal_scale(train: np.ndarray, period: int) -> torch.Tensor:
    """In-sample seasonal-naive MAE per column of the (unscaled) training rows."""
    m = max(1, min(period, len(train) - 1))
    scale = np.abs(train[m:] - train[:-m]).mean(axis=0)
    return torch.from_numpy(np.where(scale > 0, scale, 1.0))


def last_value(x: torch.Tensor, horizon: int) -> torch.Tensor:
    return x[:, -1:, :].expand(-1, horizon, -1)


def seasonal_naive(x: torch.Tensor, horizon: int, period: int) -> torch.Tensor:
    """y_hat[T + h] = x[T + h - period * ceil(h / period)] for h = 1..H (period <= lookback)."""
    lookback = x.shape[1]
    steps = torch.arange(horizon)
    return x[:, lookback - period + steps % period, :]


def train_mean(x: torch.Tensor, horizon: int, mean: torch.Tensor) -> torch.Tensor:
    return mean.to(x).view(1, 1, -1).expand(x.shape[0], horizon, -1)


def fit_linear(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """(L + 1, H) weights minimising ||[x 1] W - y||^2 over windows and channels, in float64."""
    n, lookback, c = x.shape
    a = x.double().permute(0, 2, 1).reshape(n * c, lookback)
    b = y.double().permute(0, 2, 1).reshape(n * c, -1)
    a = torch.cat([a, torch.ones(n * c, 1, dtype=a.dtype)], dim=1)
    gram = a.T @ a + ridge * n * c * torch.eye(lookback + 1, dtype=a.dtype)
    return torch.linalg.solve(gram, a.T @ b)


def apply_linear(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    n, lookback, c = x.shape
    a = x.double().permute(0, 2, 1).reshape(n * c, lookback)
    out = a @ weights[:-1] + weights[-1]
    return out.view(n, c, -1).permute(0, 2, 1).to(x.dtype)


def baseline_forecasts(x: torch.Tensor, horizon: int, period: int, mean: torch.Tensor,
                       weights: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every baseline's forecast (N, H, C) from lookback windows of the target channels."""
    out = {"last_value": last_value(x, horizon), "seasonal_naive": seasonal_naive(x, horizon, period),
           "train_mean": train_mean(x, horizon, mean)}
    if weights is not None:
        out["linear"] = apply_linear(x, weights)
    return out

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import torch
from pydantic import Field
from torch import nn

from rnnlab.config.schema import Strict
from rnnlab.errors import ConfigError
from rnnlab.tasks.base import TaskSpec

State = Any  # a tensor, a tuple of tensors (LSTM), or None


class ModelOptions(Strict):
    name: str
    init: Literal["default", "orthogonal", "normal"] = Field(
        "default", description="default: PyTorch's; orthogonal: recurrent weights orthogonal")
    init_std: float = Field(0.02, gt=0, description="std for init: normal")


@dataclass
class ParamGroup:
    """Parameters a model trains with their own learning rate and weight decay: ``lr_scale`` times
    ``train.lr`` (schedules scale it like the main lr, so the ratio holds) and ``weight_decay``
    (None: ``train.weight_decay``). Every parameter no group names is in the group ``default``."""

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0
    weight_decay: Optional[float] = None


class Model(nn.Module):
    """Base class: subclasses implement ``forward(x, lengths=None, state=None) -> (out, state)``.

    ``out`` is (B, C) for last-step tasks, (B, T, C) for per-step tasks and (B, H, C) for
    horizon forecasting.
    """

    Options: type[ModelOptions] = ModelOptions
    #: whether forward() handles ``spec.output == "horizon"`` itself (seq2seq) or the generic
    #: autoregressive ``forecast`` is used.
    native_horizon = False
    #: what ``model.embedding_vectors`` loaded (path, sha256, coverage), for the run's summary
    embedding_vectors: Optional[dict[str, Any]] = None
    #: whether the model reads windows of exactly ``spec.window`` steps (a fixed time axis on export)
    fixed_window = False
    #: formats ``rnnlab export`` refuses for this family, with the reason (checked before any work)
    export_refusals: dict[str, str] = {}
    #: the parameter groups ``parameter_groups`` declares, name -> what it holds and how it is
    #: trained (``rnnlab list MODEL`` shows them)
    PARAM_GROUPS: ClassVar[dict[str, str]] = {}

    def __init__(self, options: ModelOptions, spec: TaskSpec) -> None:
        super().__init__()
        self.options = options
        self.spec = spec

    @classmethod
    def check_options(cls, options: Any, where: str) -> None:
        """Cross-field checks on the options alone (task-dependent checks go in ``check_spec``)."""

    @classmethod
    def check_spec(cls, options: Any, spec: TaskSpec, where: str) -> None:
        """Reject a task this model cannot serve, with a ConfigError naming the field."""

    def parameter_groups(self, train: Any) -> list[ParamGroup]:
        """Groups of parameters with their own lr scale and weight decay (``train``: the validated
        train section); none by default, so every parameter trains at ``train.lr``."""
        return []

    def forecast(self, x: torch.Tensor, horizon: int) -> torch.Tensor:
        """Predict ``horizon`` future steps of a feature series by feeding predictions back."""
        if self.native_horizon:
            out, _ = self(x)
            return out
        preds = []
        window = x
        for _ in range(horizon):
            out, _ = self(window)
            step = out[:, -1:, :] if out.dim() == 3 else out.unsqueeze(1)
            preds.append(step)
            window = torch.cat([window[:, 1:], step], dim=1)
        return torch.cat(preds, dim=1)

    def export_module(self) -> nn.Module:
        """The module ``rnnlab export`` traces: the model itself, or a twin computing the same
        function in a form the exporters can trace."""
        return self

    def reset_parameters_(self) -> None:
        opts = self.options
        if opts.init == "default":
            return
        for name, param in self.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)
            elif opts.init == "normal":
                nn.init.normal_(param, std=opts.init_std)
            elif "weight_hh" in name:
                # one orthogonal block per gate
                rows = param.shape[0] // param.shape[1] if param.shape[0] > param.shape[1] else 1
                for chunk in param.data.chunk(rows, dim=0):
                    nn.init.orthogonal_(chunk)
            elif param.dim() >= 2:
                nn.init.xavier_uniform_(param)

    def flatten_parameters(self) -> None:
        """cuDNN wants recurrent weights contiguous after ``.to(device)`` or loading."""
        for module in self.modules():
            if isinstance(module, nn.RNNBase):
                module.flatten_parameters()


def init_feedforward_(module: nn.Module, options: Any) -> None:
    """``init`` for a module's own (non-recurrent) parameters: biases 0; the others N(0, init_std)
    under ``normal``, else xavier for matrices (``orthogonal`` is for recurrent weights only)."""
    for name, param in module.named_parameters(recurse=False):
        if name == "bias":
            nn.init.zeros_(param)
        elif options.init == "normal":
            nn.init.normal_(param, std=options.init_std)
        elif param.dim() >= 2:
            nn.init.xavier_uniform_(param)


def build_model(options: ModelOptions, spec: TaskSpec, where: str = "config") -> Model:
    from rnnlab.registry import MODELS

    cls = MODELS.get(options.name, f"{where}: model.name")
    cls.check_spec(options, spec, where)
    model = cls(options, spec)
    model.reset_parameters_()
    return model


def target_channels(y: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """A channel-wise forecast (B, H, C_in) cut to the channels the task forecasts (``spec.targets``)."""
    targets = spec.targets
    if targets is None or list(targets) == list(range(y.shape[2])):
        return y
    return y[:, :, list(targets)]


__all__ = ["Model", "ModelOptions", "ParamGroup", "State", "build_model", "ConfigError", "Optional"]

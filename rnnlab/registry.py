"""The four registries (tasks, models, optimizers, schedulers) and their one tiny shape (timm-style).

They live here, at the bottom of the package, so that a task or model module registers itself
without importing its package's ``__init__``, and the config can validate names without importing
any family. A registry imports its built-in entries (the package named by ``builtins``) the first
time it is read, so ``import rnnlab.registry`` costs nothing and reading a registry always sees every
built-in entry; plugins add theirs with ``rnnlab.register_task`` and friends (``rnnlab.plugin``).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from rnnlab.errors import ConfigError

T = TypeVar("T")


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def not_one_of(word: str, choices: list[str]) -> str:
    """The config error for a name outside ``choices``, worded as for a fixed choice."""
    names = [repr(name) for name in choices]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
    return f"must be one of {listed}, got {word!r}{did_you_mean(word, choices)}"


def registered(registry: "Registry[Any]", name: str) -> str:
    """``name`` if ``registry`` holds it, else the ``not_one_of`` error (for config validators)."""
    if name not in registry:
        raise ValueError(not_one_of(name, registry.names()))
    return name


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, tuple[T, str]] = {}
        self._builtins = builtins  # the module registering the built-in entries, imported on first read

    def _load(self) -> None:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            doc = description or (getattr(obj, "__doc__", "") or "").strip().splitlines()[0:1]
            self._items[name] = (obj, doc if isinstance(doc, str) else (doc[0] if doc else ""))
            return obj

        return decorator

    def get(self, name: str, where: str | None = None) -> T:
        self._load()
        if name not in self._items:
            known = ", ".join(self.names())
            raise ConfigError(
                where or f"{self.kind}",
                f"unknown {self.kind} '{name}'{did_you_mean(str(name), self.names())}; known: {known}",
            )
        return self._items[name][0]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def describe(self) -> Iterator[tuple[str, str]]:
        self._load()
        for name in self.names():
            yield name, self._items[name][1]

    def listing(self) -> list[tuple[str, str, str]]:
        """(name, description, module) of every entry, sorted, without importing the built-in
        entries' modules when they are not loaded yet (their ``BUILTIN`` row stands in for them)."""
        rows = {name: (desc, getattr(obj, "__module__", "") or "")
                for name, (obj, desc) in self._items.items()}
        if self._builtins is not None:
            for name, row in BUILTIN.get(self.kind, {}).items():
                rows.setdefault(name, row)
        return [(name, *rows[name]) for name in sorted(rows)]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items


TASKS: Registry[Any] = Registry("task", builtins="rnnlab.tasks")
MODELS: Registry[Any] = Registry("model", builtins="rnnlab.models")
OPTIMIZERS: Registry[Any] = Registry("optimizer", builtins="rnnlab.training.optim")
SCHEDULERS: Registry[Any] = Registry("scheduler", builtins="rnnlab.training.optim")


# The built-in entries as their modules register them (name: description, module), so that listing
# them (``rnnlab list``, completion) needs no import of those modules, hence of torch.
# tests/test_registry.py checks this table against the real registrations.
BUILTIN: dict[str, dict[str, tuple[str, str]]] = {
    'task': {
        'adding': (
            'adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a '
            'length-T sequence; MSE beside the constant-1.0 baseline',
            'rnnlab.tasks.memory'),
        'charlm': (
            'character-level language modelling: any text, Tiny Shakespeare, built-in corpus',
            'rnnlab.tasks.charlm'),
        'copy': (
            'copy memory (Arjovsky et al. 2016): reproduce n_tokens symbols after a delay of '
            'length blank steps; accuracy beside the best input-blind guess',
            'rnnlab.tasks.memory'),
        'mnist': (
            'MNIST digits read as sequences: rows, columns or pixels, optionally permuted',
            'rnnlab.tasks.mnist'),
        'selective_copy': (
            'selective copying (Mamba): output in order the n_tokens data tokens scattered '
            'among length noise steps; accuracy beside the best input-blind guess',
            'rnnlab.tasks.memory'),
        'sentiment': (
            'sentence classification from TSV/CSV files or the built-in tiny set',
            'rnnlab.tasks.sentiment'),
        'series': (
            'forecast any CSV/TSV series (M/S/MS), ETT protocol, baselines in every run',
            'rnnlab.tasks.series'),
        'sine': (
            'noisy sine forecasting: one-step windows, seq2seq, multi-step rollout',
            'rnnlab.tasks.sine'),
    },
    'model': {
        'gru': ('GRU; num_layers, bidirectional, dropout', 'rnnlab.models.recurrent'),
        'linear': (
            'NLinear/DLinear: a linear map from the lookback to the horizon, per channel',
            'rnnlab.models.linear'),
        'lstm': ('LSTM; num_layers, bidirectional, dropout', 'rnnlab.models.recurrent'),
        'mingru': (
            'minGRU (Feng et al. 2024): gates from the input only, parallel/fused scan; '
            'num_layers, block plain|residual, conv, bidirectional, dropout',
            'rnnlab.models.mingru'),
        'minlstm': (
            'minLSTM (Feng et al. 2024): normalised forget/input gates, parallel/fused scan; '
            'num_layers, block plain|residual, conv, bidirectional, dropout',
            'rnnlab.models.mingru'),
        'mlp': ('feed-forward baseline on a flattened fixed-length window', 'rnnlab.models.mlp'),
        'rnn': (
            'vanilla (Elman) RNN, tanh or relu; num_layers, bidirectional, dropout',
            'rnnlab.models.recurrent'),
        's4d': (
            'S4D diagonal state-space blocks (FFT convolution in training, a recurrence when '
            'stepping); hidden_size, num_layers, d_state, pooling, dropout',
            'rnnlab.models.ssm'),
        'segrnn': (
            'SegRNN: segment-wise GRU, parallel multi-step decoding, channel independence',
            'rnnlab.models.segrnn'),
        'seq2seq': (
            'encoder-decoder (rnn/lstm/gru cells) for multi-step forecasting',
            'rnnlab.models.seq2seq'),
    },
    'optimizer': {
        'adam': (
            'Adam (torch.optim.Adam); train.lr, train.weight_decay; optimizer_options: betas, '
            'eps, amsgrad',
            'rnnlab.training.optim'),
        'adamw': (
            'AdamW, decoupled weight decay; train.lr, train.weight_decay (default 0, '
            "PyTorch's 0.01); optimizer_options: betas, eps, amsgrad",
            'rnnlab.training.optim'),
        'sgd': (
            "SGD with momentum; train.lr, train.momentum (default 0.9, PyTorch's 0), "
            'train.weight_decay; optimizer_options: dampening, nesterov',
            'rnnlab.training.optim'),
    },
    'scheduler': {
        'cosine': (
            'cosine decay over all steps to lr * min_lr_ratio (per step); warmup_steps: '
            'linear warm-up first',
            'rnnlab.training.optim'),
        'none': ('constant learning rate', 'rnnlab.training.optim'),
        'onecycle': (
            'one-cycle: warm up to lr, then anneal (per step); pct_start, div_factor, '
            'final_div_factor',
            'rnnlab.training.optim'),
        'plateau': (
            "ReduceLROnPlateau on the task's validation metric (per epoch); factor, patience",
            'rnnlab.training.optim'),
        'step': ('multiply lr by gamma every step_size epochs (per epoch)', 'rnnlab.training.optim'),
    },
}

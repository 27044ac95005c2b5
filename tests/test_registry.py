from __future__ import annotations

import pytest

from rnnlab.errors import ConfigError
from rnnlab.models import MODELS
from rnnlab.registry import Registry
from rnnlab.tasks import TASKS


def test_registry_register_get_and_errors() -> None:
    reg: Registry = Registry("widget")

    @reg.register("alpha", "first widget")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert list(reg.describe()) == [("alpha", "first widget")]
    with pytest.raises(ConfigError, match="unknown widget 'alpah' \\(did you mean 'alpha'\\?\\)"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(Alpha)


def test_builtin_entries() -> None:
    assert {"mlp", "rnn", "lstm", "gru", "seq2seq"} <= set(MODELS.names())
    assert "sine" in TASKS.names()
    assert all(desc for _, desc in MODELS.describe())

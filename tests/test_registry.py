from __future__ import annotations

import os

import pytest

from rnnlab.errors import ConfigError
from rnnlab.models import MODELS
from rnnlab.registry import Registry
from rnnlab.tasks import TASKS

from .conftest import REPO


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


def test_the_static_table_of_built_in_entries_matches_their_registrations() -> None:
    """``registry.BUILTIN`` (what ``rnnlab list`` shows without importing torch) is exactly what the
    built-in modules register: names, descriptions and modules."""
    from rnnlab.registry import BUILTIN, MODELS, OPTIMIZERS, SCHEDULERS, TASKS

    for registry in (TASKS, MODELS, OPTIMIZERS, SCHEDULERS):
        real = {name: (text, registry.get(name).__module__) for name, text in registry.describe()
                if registry.get(name).__module__.startswith("rnnlab.")}
        assert BUILTIN[registry.kind] == real, registry.kind
        assert [row[0] for row in registry.listing()] == registry.names()


def test_rnnlab_list_imports_no_torch_and_shows_every_entry() -> None:
    import subprocess
    import sys

    code = ("import sys, contextlib, io\nimport rnnlab.cli\nsys.argv = ['rnnlab', 'list']\n"
            "out = io.StringIO()\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(out):\n"
            "    rnnlab.cli.app(prog_name='rnnlab')\n"
            "print(out.getvalue())\nprint('torch' in sys.modules, 'matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    *listing, loaded = done.stdout.strip().splitlines()
    assert loaded == "False False"
    text = "\n".join(listing)
    for name in ("sine", "lstm", "mingru", "adamw", "onecycle", "selective_copy"):
        assert f" {name} " in text, name

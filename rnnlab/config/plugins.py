"""Users' own tasks, models, optimizers and schedulers: finding, loading and provenance.

A plugin is a Python module that registers entries with the decorators of ``rnnlab.plugin``::

    import rnnlab
    from rnnlab.models.recurrent import Recurrent

    @rnnlab.register_model("indrnn", "IndRNN (Li et al. 2018)")
    class IndRNN(Recurrent): ...

It is loaded from a config's ``plugins:`` list (module names, or ``.py`` files relative to the config
file) or, for an installed package, from the entry-point group ``rnnlab.plugins``. Every run records
the plugins it loaded (module, file, SHA-256) in ``summary.json``; ``eval``, ``--resume``,
``predict``, ``generate``, ``plot`` and sweep trials import the same files again (the run's
``config.yaml`` holds their absolute paths), and a plugin that is missing or has changed since the
run is one clear line.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from rnnlab.errors import ConfigError, RunDirError

ENTRY_POINT_GROUP = "rnnlab.plugins"

_records: dict[str, dict[str, str]] = {}  # module name -> {"module", "file", "sha256", "source"}
# ----------------------------------------------------------------------------- loading


def is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def resolve_specs(specs: Any, base_dir: Optional[Path], where: str) -> list[str]:
    """``plugins:`` as given -> module names and absolute ``.py`` paths (relative to ``base_dir``)."""
    if specs is None:
        return []
    if isinstance(specs, str) or not isinstance(specs, list):
        raise ConfigError(where, f"plugins: must be a list of module names or .py files, got {specs!r}")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(where, f"plugins[{i}]: must be a module name or a .py file, got {spec!r}")
        spec = spec.strip()
        if is_path(spec):
            path = Path(spec).expanduser()
            if not path.is_absolute():
                path = (base_dir or Path.cwd()) / path
            spec = str(path.resolve())
        out.append(spec)
    return out


def load_plugins(specs: Sequence[str], where: str = "plugins", base_dir: Optional[Path] = None
                 ) -> list[str]:
    """Import each plugin (once per process) and return the resolved specs (what config.yaml keeps)."""
    resolved = resolve_specs(list(specs) if isinstance(specs, tuple) else specs, base_dir, where)
    for i, spec in enumerate(resolved):
        _load(spec, where if where.startswith("--") else f"{where}: plugins[{i}]")
    return resolved


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"rnnlab_plugin_{stem}_{digest}"


def _load(spec: str, where: str) -> None:
    if is_path(spec):
        path = Path(spec)
        name = _module_name(path)
        if name in sys.modules:
            return
        if not path.is_file():
            raise ConfigError(where, f"plugin file not found: {path}")
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(where, f"cannot import {path} (not a Python file)")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            _run_plugin(lambda: module_spec.loader.exec_module(module), spec, where)  # type: ignore[union-attr]
        except BaseException:
            sys.modules.pop(name, None)
            raise
        _record(name, module, "file")
        return
    if spec in _records:
        return
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ConfigError(where, f"plugin module {spec!r} not found (not installed, or not on "
                          "PYTHONPATH; a file needs its .py path)")
    module = _run_plugin(lambda: importlib.import_module(spec), spec, where)
    _record(spec, module, "module")


def _run_plugin(load: Callable[[], Any], spec: str, where: str) -> Any:
    """A plugin's own error is the plugin's, reported in one line with where it happened."""
    from rnnlab.errors import RnnlabError

    try:
        return load()
    except RnnlabError:
        raise
    except (SystemExit, KeyboardInterrupt) as exc:
        if isinstance(exc, KeyboardInterrupt) and _real_interrupt(exc):
            raise
        what = (f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit)
                else "raised KeyboardInterrupt")
        raise ConfigError(where, f"plugin {spec} {what} while being imported; a plugin must not "
                          "end rnnlab (nothing was checked or run)") from None
    except ValueError as exc:
        if "registered twice" in str(exc):
            raise ConfigError(where, f"plugin {spec}: {exc} (a name can be registered once; "
                              "built-in names are taken)") from None
        raise ConfigError(where, f"plugin {spec} failed to import: ValueError: {exc}") from None
    except Exception as exc:
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename != __file__ and "importlib" not in f.filename]
        line = f" ({Path(frames[-1][0]).name}:{frames[-1][1]})" if frames else ""
        raise ConfigError(where, f"plugin {spec} failed to import{line}: "
                          f"{type(exc).__name__}: {exc}") from None


def _real_interrupt(exc: KeyboardInterrupt) -> bool:
    """A stop by a signal: rnnlab's handlers raise it with ``signum``; without them (the Python
    API) Python's own SIGINT handler may have. A bare KeyboardInterrupt while rnnlab's handlers are
    installed was raised by the plugin itself."""
    return getattr(exc, "signum", None) is not None or \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler


@functools.cache
def load_entry_points() -> None:
    """Import the plugins installed packages declare (entry-point group ``rnnlab.plugins``), once
    per process (``load_entry_points.cache_clear()`` forgets that it ran)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
        module = _run_plugin(ep.load, ep.value, where)
        name = getattr(module, "__name__", ep.module)
        _record(name, sys.modules.get(ep.module, module), "entry point")


# ----------------------------------------------------------------------------- provenance


def fingerprint(module: Any) -> tuple[str, str]:
    """(file, SHA-256) of a plugin: its file, or every ``.py`` file of a package, in path order."""
    file = getattr(module, "__file__", None)
    if not file:
        return "", ""
    path = Path(file).resolve()
    return str(path), file_digest(path, package=hasattr(module, "__path__"))


def file_digest(path: Path, package: bool = False) -> str:
    digest = hashlib.sha256()
    files = sorted(path.parent.rglob("*.py")) if package else [path]
    for f in files:
        if package:
            digest.update(str(f.relative_to(path.parent)).encode() + b"\0")
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _record(name: str, module: Any, source: str) -> None:
    file, sha = fingerprint(module)
    _records[name] = {"module": name, "file": file, "sha256": sha, "source": source,
                      "package": str(hasattr(module, "__path__")).lower()}


def records(specs: Sequence[str] = ()) -> list[dict[str, str]]:
    """For a run's summary: the plugins its config lists (resolved specs) and the installed
    entry-point plugins, as loaded in this process (not other configs' plugins loaded before)."""
    names = [_module_name(Path(s)) if is_path(s) else s for s in specs]
    chosen = [_records[n] for n in names if n in _records]
    chosen += [r for r in _records.values() if r["source"] == "entry point" and r not in chosen]
    return [dict(r) for r in chosen]


def origin(obj: Any) -> str:
    """Where a registry entry comes from: ``rnnlab`` or the plugin (module and file)."""
    return module_origin(getattr(obj, "__module__", "") or "")


def module_origin(module: str) -> str:
    """``origin`` of an entry defined in ``module``."""
    if module == "rnnlab" or module.startswith("rnnlab."):
        return "rnnlab"
    record = _records.get(module)
    if record is None:
        return module
    shown = module if record["source"] != "file" else Path(record["file"]).name
    return f"plugin {shown} ({record['file']})" if record["source"] != "file" else f"plugin {record['file']}"


def verify(recorded: Any, run_dir: Path) -> None:
    """The plugins a run recorded are the ones loaded now, unchanged (same SHA-256)."""
    if not isinstance(recorded, list):
        return
    for rec in recorded:
        if not isinstance(rec, dict) or not rec.get("sha256"):
            continue
        file = Path(str(rec.get("file", "")))
        module = rec.get("module", "?")
        if not file.exists():
            raise RunDirError(run_dir, f"plugin {module} that this run was trained with is missing "
                              f"({file}); install or restore it")
        now = file_digest(file, package=rec.get("package") == "true")
        if now != rec["sha256"]:
            raise RunDirError(run_dir, f"plugin {module} ({file}) has changed since this run was "
                              f"trained (sha256 {rec['sha256'][:12]}..., now {now[:12]}...); restore "
                              "that version, or train a new run")

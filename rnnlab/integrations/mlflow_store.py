"""The MLflow tracking store rnnlab logs to (``logging.mlflow``, ``rnnlab track --to``), reached
through MLflow's own client, with every way it can fail said in one line and quickly:

- the URI is checked before any work: a local path or ``file://`` (a file store directory),
  ``sqlite:///PATH`` (a database file), ``http(s)://HOST[:PORT]`` (a tracking server) or
  ``databricks``; anything else is refused, naming the supported forms;
- a local store must be writable (the file and its directory: SQLite writes a journal beside the
  database); a read-only one is refused up front instead of failing in MLflow's retry loop, and a
  missing directory is created when the store is opened;
- a server gets bounded HTTP retries and timeouts (``HTTP_BOUNDS``, set in rnnlab's process unless
  the user set those ``MLFLOW_HTTP_REQUEST_*`` variables), which the error names: an unreachable
  server fails in seconds, not minutes.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import unquote, urlsplit

from rnnlab.errors import ConfigError

DB, ARTIFACTS = "mlflow.db", "mlartifacts"
DEFAULT_EXPERIMENT = "rnnlab"
STATUS = {"completed": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "interrupted": "KILLED",
          "pruned": "KILLED", "running": "RUNNING", "incomplete": "FAILED"}
FORMS = "a directory, file://PATH, sqlite:///PATH, http(s)://HOST[:PORT] or databricks"
# MLflow's defaults (7 retries, backoff factor 2, 120 s per request) wait minutes on a dead server
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def require_mlflow(where: str = "logging.mlflow") -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError(where, "needs MLflow: pip install 'rnnlab[mlflow]' "
                          "(or set logging.mlflow: false)") from None
    return MlflowClient


def default_uri(runs_dir: Path) -> str:
    return f"sqlite:///{(runs_dir / DB).resolve()}"


def scheme(uri: str) -> str:
    """The URI's scheme, lower case; '' for a plain path."""
    if uri.startswith("databricks"):
        return "databricks"
    return urlsplit(uri).scheme.lower() if "://" in uri else ""


def local_store(uri: str) -> Optional[tuple[Path, bool]]:
    """(path, whether it is a directory) of a local store; None for a remote one."""
    kind = scheme(uri)
    if kind == "sqlite":
        return Path(uri[len("sqlite:///"):].split("?", 1)[0]), False
    if kind == "file":
        return Path(unquote(urlsplit(uri).path)), True
    return (Path(uri), True) if kind == "" else None


def check_uri(uri: str, where: str) -> None:
    """A tracking URI MLflow can use and, when local, rnnlab can write: else one line, before any
    work is done."""
    kind = scheme(uri)
    if not uri.strip():
        raise ConfigError(where, f"an empty tracking URI: give {FORMS}")
    if kind == "sqlite" and (not uri.startswith("sqlite:///") or not uri[len("sqlite:///"):].split("?")[0]):
        raise ConfigError(where, f"{uri!r}: give a database file as sqlite:///PATH "
                          "(sqlite:////abs/path.db for an absolute path)")
    if kind in ("http", "https") and not urlsplit(uri).hostname:
        raise ConfigError(where, f"{uri!r}: no host; give {kind}://HOST[:PORT]")
    if kind not in ("", "file", "sqlite", "http", "https", "databricks"):
        raise ConfigError(where, f"{uri!r}: unsupported tracking URI scheme {kind!r}; give {FORMS}")
    local = local_store(uri)
    if local is not None:
        check_writable(*local, where)


def check_writable(path: Path, is_dir: bool, where: str) -> None:
    """The store at ``path`` (a directory, or a database file) exists as that and is writable, or
    can be created: its nearest existing folder is writable."""
    what = "file store directory" if is_dir else "database"
    if path.exists():
        if path.is_dir() != is_dir:
            found = "not a directory" if is_dir else "a directory, not a database file"
            raise ConfigError(where, f"{path}: {found}")
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(where, f"{path}: the MLflow {what} is read-only; give one rnnlab can write")
        folder = path if is_dir else path.parent
    else:
        folder = path.absolute().parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise ConfigError(where, f"{path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(where, f"{path}: cannot write in {folder} (read-only), where the MLflow {what} "
                          "keeps its files")


def bound_http() -> str:
    """Bounded retries and timeouts for MLflow's HTTP client (those the user set stay), said in words."""
    for key, value in HTTP_BOUNDS.items():
        os.environ.setdefault(key, value)
    return (f"{os.environ['MLFLOW_HTTP_REQUEST_MAX_RETRIES']} retries, "
            f"{os.environ['MLFLOW_HTTP_REQUEST_TIMEOUT']} s a request; set MLFLOW_HTTP_REQUEST_MAX_RETRIES "
            "and MLFLOW_HTTP_REQUEST_TIMEOUT to wait longer")


def quoted(value: str) -> Optional[str]:
    """``value`` as a string literal of MLflow's filter syntax, which strips the quotes without
    unescaping: in single quotes, else in double quotes; None when it holds both kinds."""
    if "'" not in value:
        return f"'{value}'"
    return f'"{value}"' if '"' not in value else None


def first_line(exc: BaseException) -> str:
    """What went wrong, in a few words: the system's reason for a failed connection (MLflow wraps
    it in a page of urllib3 text), else the first line of the message."""
    text = str(exc).strip()
    refused = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if refused and ("Max retries" in text or "NewConnectionError" in text):
        return f"cannot connect: {refused.group(1).strip()}"
    lines = text.splitlines()
    return lines[0][:300] if lines else type(exc).__name__


class Store:
    """One tracking store and experiment, reached through MLflow's own client."""

    def __init__(self, uri: str, experiment: Optional[str], artifacts: Optional[Path], where: str) -> None:
        client_cls = require_mlflow(where)
        check_uri(uri, where)
        for name in ("mlflow", "alembic"):  # no alembic notes on a new store
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)  # errors come as one line
        remote = "" if local_store(uri) is not None else f" ({bound_http()})"
        self.uri, self.where = uri, where
        local = local_store(uri)
        new = [] if local is None else [p for p in (local[0], *local[0].parents) if not p.exists()]
        try:
            if local is not None:  # the folder of a new store (MLflow does not create it)
                (local[0] if local[1] else local[0].parent).mkdir(parents=True, exist_ok=True)
            if local is not None and local[1]:
                # a directory store the user asked for: MLflow >= 3.7 refuses its (maintenance-
                # mode) file store unless this is set; rnnlab documents directories as stores
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.client = client_cls(tracking_uri=uri)
            name = experiment or DEFAULT_EXPERIMENT
            found = self.client.get_experiment_by_name(name)
            if found is None:
                location = artifacts.resolve().as_uri() if artifacts is not None else None
                self.experiment_id = self.client.create_experiment(name, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id
        except Exception as exc:  # noqa: BLE001 - a store MLflow cannot open: the user's URI
            remove_new(new)  # a refused store leaves nothing behind: not the database, not its folders
            raise ConfigError(where, f"cannot open MLflow store {uri}{remote}: {first_line(exc)}") from None

    def failed(self, exc: BaseException) -> ConfigError:
        """An error of the store after it opened, as the one line to show."""
        return ConfigError(self.where, f"MLflow store {self.uri}: {first_line(exc)}")

    def search(self, tag: str, value: str) -> list[Any]:
        """The runs of the experiment whose tag ``tag`` is ``value``."""
        literal = quoted(value)
        if literal is not None:
            return list(self.client.search_runs([self.experiment_id],
                                                filter_string=f"tags.`{tag}` = {literal}", max_results=50))
        found, token = [], None  # a value no literal can hold: compared here, page by page
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token)
            found += [run for run in page if run.data.tags.get(tag) == value]
            token = page.token
            if not token:
                return found

    def find(self, tag: str, value: str) -> Optional[str]:
        found = self.search(tag, value)
        return found[0].info.run_id if found else None

    def create(self, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log(self, run_id: str, params: Optional[dict[str, str]] = None,
            metrics: list[tuple[str, float, int]] | tuple[()] = ()) -> None:
        import time

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        items = [Param(k, v[:6000]) for k, v in (params or {}).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])
        points = [Metric(k, v, now, step) for k, v, step in metrics]
        for i in range(0, len(points), 1000):
            self.client.log_batch(run_id, metrics=points[i:i + 1000])

    def artifacts(self, run_id: str, paths: list[Path], folder: Optional[str] = None) -> None:
        for path in paths:
            if path.is_file():
                self.client.log_artifact(run_id, str(path), folder)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, STATUS.get(status, "FAILED"))


def remove_new(paths: list[Path]) -> None:
    """Remove ``paths`` (a new store and the folders made for it, innermost first) where they now exist."""
    import shutil

    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
        for extra in (path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
            extra.unlink(missing_ok=True)


@contextmanager
def guarded(store: Store) -> Iterator[None]:
    """MLflow's errors while logging to ``store`` as one line naming the store."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise store.failed(exc) from None


def open_store(options: Any, runs_dir: Path, to: Optional[str] = None,
               experiment: Optional[str] = None) -> Store:
    """The store a run's ``logging.mlflow`` options (or ``--to``) name, else the default one."""
    uri = to or getattr(options, "tracking_uri", None)
    artifacts = None
    if uri is None:
        uri, artifacts = default_uri(runs_dir), runs_dir / ARTIFACTS
    elif scheme(uri) == "sqlite":  # artifacts beside the database, not in ./mlruns of the cwd
        local = local_store(uri)
        artifacts = local[0].parent / ARTIFACTS if local is not None else None
    return Store(uri, experiment or getattr(options, "experiment", None), artifacts, uri_where(options, to))


def uri_where(options: Any, to: Optional[str]) -> str:
    if to:
        return "--to"
    return "logging.mlflow.tracking_uri" if getattr(options, "tracking_uri", None) else "logging.mlflow"

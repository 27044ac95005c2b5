"""Errors a user can cause and fix. The CLI prints them as one line (``error: <where>: <what>``)
and exits with status 2; anything else that escapes is a bug in rnnlab."""

from __future__ import annotations


class RnnlabError(Exception):
    """A user-facing failure: bad config, missing data, unusable run directory, ..."""

    def __init__(self, where: str | None, what: str) -> None:
        self.where = str(where) if where is not None else None
        self.what = what
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


class ConfigError(RnnlabError):
    """The config (file, field or override) is invalid."""


class DataError(RnnlabError):
    """Input data is missing or malformed."""


class RunDirError(RnnlabError):
    """A run directory is missing, incomplete or corrupted."""


class MissingExtra(RnnlabError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it
    (also an ``ImportError``, so ``except ImportError`` catches it as it would the import's own)."""

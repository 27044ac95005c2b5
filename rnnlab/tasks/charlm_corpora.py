"""Text corpora for character-level language modelling.

- ``python_docs`` (built in): the topic help of Python's own reference manual, the text behind
  ``help("assert")``, which ships with CPython as ``pydoc_data.topics`` (about 465,000 characters of
  English technical prose and code on Python 3.11). No download and no data folder; the exact text
  depends on the Python version, so its SHA-256 is recorded with every run.
- ``tinyshakespeare``: ``<data root>/tinyshakespeare/input.txt`` (data root: ``data.root``, else
  ``$RNNLAB_DATA``); otherwise, only with ``data.download: true``, fetched once from the char-rnn
  repository into ``~/.cache/rnnlab/tinyshakespeare/`` and verified by length and SHA-256.
- any text file (``data.path``) in ``data.encoding``.
"""

from __future__ import annotations

import hashlib
import platform
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rnnlab.common.atomic import atomic_write
from rnnlab.common.safeio import MAX_DATA_BYTES, decode_text, read_bytes_bounded
from rnnlab.errors import DataError

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_BYTES = 1_115_394  # all ASCII: as many characters as bytes
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str  # where it came from: a path, or a description of the built-in text
    sha256: str  # of the text's UTF-8 encoding (whatever encoding the file had)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def python_docs() -> Corpus:
    """The pydoc topic help of this Python, topics in sorted order, blank line between them."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("data.corpus", "python_docs: this Python has no pydoc_data module (some "
                        "distributions strip it); use data.path or data.corpus: tinyshakespeare") from None
    text = "\n\n".join(topics[key].strip() + "\n" for key in sorted(topics))
    return Corpus(text, f"pydoc_data.topics of Python {platform.python_version()}", sha256_text(text))


def read_text_file(path: Path, encoding: str = "utf-8", where: Optional[str] = None) -> Corpus:
    where = where or str(path)
    if not path.exists():
        raise DataError(where, "text file not found")
    if not path.is_file():
        raise DataError(where, "is not a file (expected a text file)")
    raw = read_bytes_bounded(path, MAX_DATA_BYTES, "text file")
    text = decode_text(raw, encoding, where)
    if not text:
        raise DataError(where, "text file is empty")
    return Corpus(text, str(path), sha256_text(text))


def tiny_shakespeare(root: Optional[Path], cache: Path, download: bool) -> Corpus:
    """From the data root when present, else from the cache, else (only if allowed) downloaded."""
    if root is not None and (root / "tinyshakespeare" / "input.txt").is_file():
        return verified(read_text_file(root / "tinyshakespeare" / "input.txt"))
    cached = cache / "tinyshakespeare" / "input.txt"
    if cached.is_file():
        return verified(read_text_file(cached))
    if not download:
        looked = f"{root / 'tinyshakespeare' / 'input.txt'} and " if root is not None else ""
        raise DataError("data.corpus", f"tinyshakespeare: not found in {looked}{cached} (set RNNLAB_DATA "
                        "or data.root to a folder with tinyshakespeare/input.txt, or set "
                        "data.download: true to fetch it once)")
    fetch(TINY_SHAKESPEARE_URL, cached, TINY_SHAKESPEARE_BYTES, TINY_SHAKESPEARE_SHA256)
    return verified(read_text_file(cached))


def verified(corpus: Corpus) -> Corpus:
    """Tiny Shakespeare is a fixed text: anything else under its name would silently change every
    number measured on it."""
    if corpus.sha256 != TINY_SHAKESPEARE_SHA256:
        raise DataError(corpus.source, f"is not the Tiny Shakespeare text (SHA-256 {corpus.sha256[:12]}..., "
                        f"expected {TINY_SHAKESPEARE_SHA256[:12]}..., {TINY_SHAKESPEARE_BYTES:,} characters)")
    return corpus


def fetch(url: str, dest: Path, size: int, sha256: str, timeout: float = 60.0) -> None:
    """Download into ``dest``, written only once the length and checksum are right."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except OSError as exc:  # URLError, timeouts, connection resets
        raise DataError(url, f"download failed: {getattr(exc, 'reason', exc)}") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != size or digest != sha256:
        raise DataError(url, f"downloaded file failed verification ({len(data):,} bytes, SHA-256 "
                        f"{digest[:12]}...; expected {size:,} bytes, {sha256[:12]}...); nothing was saved")
    atomic_write(dest, lambda fh: fh.write(data))

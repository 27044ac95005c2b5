"""Reading user files without trusting them: bounded reads, encodings checked, YAML parsed safely.

- ``read_bytes_bounded``: only regular files (``/dev/zero``, a FIFO or a directory is refused
  before a byte is read), at most ``limit`` bytes (a bigger file is refused, naming the limit).
- ``decode_text``: bytes to text in the declared encoding; a byte-order mark or NUL bytes that do
  not fit the declared encoding (UTF-16/32 text read as UTF-8) are reported with the encoding to set.
- ``load_yaml``: ``yaml.safe_load`` that refuses duplicate keys in a mapping and nesting deeper
  than ``MAX_YAML_DEPTH`` (instead of a ``RecursionError`` deep in the parser); ``dump_yaml``, its
  writer, resolves scalars by the same rules, so whatever rnnlab writes reads back unchanged.
- ``is_disk_full``/``disk_full``: ENOSPC (and EDQUOT) turned into one user-facing line.

Other modules call these; they raise rnnlab's own errors with ``where`` set to the path.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from rnnlab.errors import DataError, RnnlabError

MiB = 1 << 20
MAX_CONFIG_BYTES = 4 * MiB  # a config or run file this large is not one rnnlab wrote
MAX_DATA_BYTES = 4096 * MiB  # data files (corpora, TSV/CSV): read whole into memory
MAX_TEXT_FILE_BYTES = 64 * MiB  # `rnnlab predict --file`
MAX_LINE_CHARS = 1 * MiB  # one sentence for `rnnlab predict --file`
MAX_YAML_DEPTH = 50  # rnnlab's own configs nest 3 levels

BOMS = (  # longest first: a UTF-32-LE BOM starts with the UTF-16-LE one
    (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
)


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def check_regular_file(path: Path, what: str = "file",
                       error: type[RnnlabError] = DataError) -> os.stat_result:
    """``stat`` of ``path``, refusing what is missing or not a regular file (device, FIFO,
    socket, directory) before anything is read from it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(path, f"{what} not found") from None
    except OSError as exc:
        raise error(path, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(path, f"is a directory, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(path, f"not a regular file (a device, pipe or socket); expected a {what}")
    return st


def read_bytes_bounded(path: Path, limit: int, what: str = "file",
                       error: type[RnnlabError] = DataError) -> bytes:
    """The whole file, which must be a regular file of at most ``limit`` bytes. Reads at most
    ``limit + 1`` bytes even when the file grows while it is read."""
    path = Path(path)
    st = check_regular_file(path, what, error)
    if st.st_size > limit:
        raise error(path, f"{what} is too large ({_size(st.st_size)}; the limit is {_size(limit)})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise error(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise error(path, f"{what} is too large (more than {_size(limit)}, the limit)")
    return raw


def encoding_hint(raw: bytes, declared: str) -> Optional[tuple[str, Optional[str]]]:
    """(what gives it away, the encoding to set) when ``raw`` is evidently not in ``declared``
    (a BOM of another Unicode encoding, or the NUL bytes of UTF-16/32 text), else None."""
    norm = declared.lower().replace("_", "").replace("-", "")  # "UTF_16-LE" -> "utf16le"
    for bom, name in BOMS:
        if raw.startswith(bom):
            if norm.startswith(name.replace("-", "")):
                return None
            return f"it starts with a {name.upper()} byte-order mark", name
    if b"\x00" not in raw[:65536] or norm.startswith(("utf16", "utf32")):
        return None
    head = raw[:4096]
    if len(head) >= 4:
        even = head[0::2].count(0) / max(1, len(head[0::2]))
        odd = head[1::2].count(0) / max(1, len(head[1::2]))
        quads = [head[i::4].count(0) / max(1, len(head[i::4])) for i in range(4)]
        if min(quads[1:4]) > 0.9 and quads[0] < 0.5:
            return "it holds NUL bytes like UTF-32-LE text without a byte-order mark", "utf-32-le"
        if min(quads[0:3]) > 0.9 and quads[3] < 0.5:
            return "it holds NUL bytes like UTF-32-BE text without a byte-order mark", "utf-32-be"
        if odd > 0.3 and even < 0.1:
            return "it holds NUL bytes like UTF-16-LE text without a byte-order mark", "utf-16-le"
        if even > 0.3 and odd < 0.1:
            return "it holds NUL bytes like UTF-16-BE text without a byte-order mark", "utf-16-be"
    return "it holds NUL bytes (binary data, or text in another encoding such as UTF-16)", None


def decode_text(raw: bytes, encoding: str, path: Path | str, setting: Optional[str] = "data.encoding",
                error: type[RnnlabError] = DataError) -> str:
    """``raw`` decoded as ``encoding``; a BOM or NUL bytes that say otherwise, or bytes that do
    not decode, are one error naming the file and the setting to change."""
    hint = encoding_hint(raw, encoding)
    if hint is not None:
        reason, name = hint
        if setting is None:  # the encoding is fixed (e.g. predict's UTF-8)
            fix = f"; save it as {encoding}" + (f" (it looks like {name})" if name else "")
        else:
            fix = f"; set {setting}: {name}" if name else f"; is it a text file? (see {setting})"
        raise error(path, f"not {encoding} text: {reason}{fix}")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        fix = f"set {setting} (e.g. latin-1)" if setting else f"save it as {encoding}"
        raise error(path, f"line {line}: not valid {encoding} text (byte {exc.start}); {fix}") from None
    except LookupError:
        raise error(path, f"unknown encoding {encoding!r}" + (f" ({setting})" if setting else "")) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise error(path, f"line {line}: holds a NUL character (binary data, or text in another "
                    f"encoding" + (f"; see {setting})" if setting else ")"))
    return text


# ----------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with duplicate keys refused and a nesting limit."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (each key may appear once in a mapping)",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class _StrictDumper(yaml.SafeDumper):
    """SafeDumper whose resolver is the reader's: a string the reader would take for a number,
    boolean or null (``1e3``, ``.inf``, ``true``, ``~``) is written quoted, so it reads back as a string."""


# YAML 1.2 floats without a dot (``1e-3``): YAML 1.1, and so PyYAML, reads them as strings. The
# writer resolves plain scalars with the same rules, so what one writes the other reads back.
for _cls in (_StrictLoader, _StrictDumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with duplicate keys and excessive nesting refused (``yaml.YAMLError``)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise yaml.YAMLError(f"nested too deeply (more than {MAX_YAML_DEPTH} levels)") from None


def dump_yaml(data: Any) -> str:
    """The YAML every file rnnlab writes uses (configs, sweep files, trial configs): keys in their
    order, and every string quoted where ``load_yaml`` would otherwise read it as another type."""
    return yaml.dump(data, Dumper=_StrictDumper, sort_keys=False)


# ----------------------------------------------------------------------------- disk full

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
LOW_SPACE = 1 * MiB  # less than this free where a write failed: the disk is taken to be full


def _full_cause(exc: BaseException) -> Optional[OSError]:
    """The ENOSPC/EDQUOT ``OSError`` behind ``exc``: itself, or one it was raised from or while
    handling (torch's zip writer turns a failed ``write`` into ``RuntimeError: [enforce fail at
    inline_container.cc] ... unexpected pos``, with the OSError as its context)."""
    seen: set[int] = set()
    cur: Optional[BaseException] = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in DISK_FULL:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _torch_write_failure(exc: BaseException) -> bool:
    """torch's C++ file writers (``torch.save`` to a path, ``torch.jit.save``) report a failed
    write without the OSError: only their own words say it."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("inline_container" in text or "file write failed" in text
                                              or "unexpected pos" in text)


def no_space_left(path: Path | str) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing folder) is out of space."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        st = os.statvfs(where)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE


def is_disk_full(exc: BaseException, path: Path | str | None = None) -> bool:
    """ENOSPC/EDQUOT, wherever it surfaces: an ``OSError``, an error raised while handling one
    (torch's zip writer), or, given the ``path`` written, torch's writer failing on a full disk."""
    if _full_cause(exc) is not None:
        return True
    return path is not None and _torch_write_failure(exc) and no_space_left(path)


def disk_full_error(path: Path | str, exc: BaseException) -> RnnlabError:
    """``<path>: no space left on device`` (or ``disk quota exceeded``) naming the user's file."""
    from rnnlab.errors import RunDirError

    cause = _full_cause(exc)
    quota = cause is not None and cause.errno != errno.ENOSPC
    return RunDirError(path, "disk quota exceeded" if quota else "no space left on device")


def disk_full_path(exc: BaseException) -> Optional[str]:
    """The file named by the OSError behind a disk-full ``exc``, if any."""
    cause = _full_cause(exc)
    return None if cause is None or cause.filename is None else str(cause.filename)


def guard_disk_full(path: Path | str, action: Callable[[], Any]) -> Any:
    """Run ``action``; a full disk becomes ``error: <path>: no space left on device``."""
    try:
        return action()
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc, path):
            raise disk_full_error(path, exc) from None
        raise


# ----------------------------------------------------------------------------- user paths

# ``.<name>.<8 random>.tmp`` (common.atomic.atomic_write), ``.<name>.<pid>.tmp`` (invocation), ``.<name>.tmp``
_TEMP_NAME = re.compile(r"(?:(?<=[/\s'\"(])|^)\.([^/\s'\"]+?)(?:\.[A-Za-z0-9_]{8}|\.\d+)?\.tmp\b")


def without_temp_names(text: str) -> str:
    """``text`` with rnnlab's temp files (written beside a file, then renamed over it) named by
    the file the user asked for: an error line says ``runs/x/summary.json``, not
    ``runs/x/.summary.json.k3j_x9a2.tmp``."""
    return _TEMP_NAME.sub(r"\1", text)

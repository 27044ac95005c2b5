"""Reading labelled text from TSV/CSV files: one example per line, a text and a label column.

- format: ``tsv`` (tab-separated, no quoting: a ``"`` is just a character), ``csv`` (comma-separated,
  standard double-quote quoting), or ``auto``: by extension (``.csv``/``.tsv``), else ``tsv`` when
  the first line holds a tab and ``csv`` otherwise.
- columns by 0-based index or, with a header, by name.
- header ``auto``: with ``labels`` known, the first line is a header when its label cell is not
  one of them; otherwise when its label cell is a label of no other line and either the other
  labels are integers (and it is not) or each of them occurs at least twice. Naming a column
  implies a header.
- lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only (a stray U+0085 inside a sentence stays text);
  blank lines are ignored; a UTF-8 byte-order mark is dropped.

A malformed line (wrong column count, empty text or label) goes to ``BadLines``: an error naming
the file and line, or, with ``skip_bad_lines``, counted and skipped.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional, Union

from rnnlab.common.safeio import MAX_DATA_BYTES, decode_text, read_bytes_bounded
from rnnlab.errors import DataError
from rnnlab.registry import did_you_mean

Column = Union[int, str]


@dataclass(frozen=True)
class TableFormat:
    format: Literal["auto", "tsv", "csv"] = "auto"
    header: Union[bool, Literal["auto"]] = "auto"
    text_column: Column = 0
    label_column: Column = 1
    encoding: str = "utf-8"
    labels: Optional[tuple[str, ...]] = None  # the known labels, when fixed in advance


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    source: str  # the file
    line: int  # 1-based line where the record starts


@dataclass
class BadLines:
    """Malformed lines: raise at the first one, or (``skip``) count them per file and go on."""

    skip: bool
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def report(self, source: str, line: int, what: str) -> None:
        if not self.skip:
            raise DataError(source, f"line {line}: {what} (data.skip_bad_lines: true skips such lines)")
        self.counts[source] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{source} line {line}: {what}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def decode(path: Path, encoding: str, limit: int = MAX_DATA_BYTES, what: str = "data file",
           setting: Optional[str] = "data.encoding") -> str:
    """A whole data file as text: a regular file of at most ``limit`` bytes, in ``encoding``
    (a BOM or NUL bytes of another encoding are reported with the encoding to set)."""
    raw = read_bytes_bounded(path, limit, what)
    return decode_text(raw, encoding, path, setting)


def detect_format(path: Path, text: str, declared: str) -> str:
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    first = next((line for line in text.splitlines() if line.strip()), "")
    return "tsv" if "\t" in first else "csv"


def records(text: str, fmt: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) for every non-blank record."""
    dialect = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if fmt == "tsv" else dict(delimiter=",")
    reader = csv.reader(io.StringIO(text, newline=""), **dialect)  # type: ignore[arg-type]
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:  # NUL bytes, an unterminated quote at the end of the file...
        raise DataError(source, f"line {start}: cannot parse as {fmt}: {exc}") from None


def read_labelled(path: Path, table: TableFormat, bad: BadLines) -> tuple[list[Row], str]:
    """All well-formed rows of a file, and the format it was read as."""
    source = str(path)
    text = decode(path, table.encoding)
    fmt = detect_format(path, text, table.format)
    recs = list(records(text, fmt, source))
    if not recs:
        raise DataError(source, "no data lines (the file is empty)")
    width = Counter(len(cells) for _, cells in recs).most_common(1)[0][0]
    header = recs[0][1] if has_header(recs, table, width) else None
    if header is not None:
        recs, width = recs[1:], len(header)
    text_at = column_index(table.text_column, header, width, "text_column", source, fmt)
    label_at = column_index(table.label_column, header, width, "label_column", source, fmt)
    rows = []
    for line, cells in recs:
        problem = row_problem(cells, width, text_at, label_at, fmt)
        if problem:
            bad.report(source, line, problem)
            continue
        rows.append(Row(cells[text_at].strip(), cells[label_at].strip(), source, line))
    return rows, fmt


def has_header(recs: list[tuple[int, list[str]]], table: TableFormat, width: int) -> bool:
    if table.header != "auto":
        return bool(table.header)
    if isinstance(table.text_column, str) or isinstance(table.label_column, str):
        return True
    at = table.label_column
    first = recs[0][1]
    if len(recs) < 2 or at >= len(first):
        return False
    label = first[at].strip()
    if table.labels is not None:
        return label not in table.labels
    others = Counter(cells[at].strip() for _, cells in recs[1:] if at < len(cells))
    if label in others:
        return False
    # a label of its own: a header if it is the odd one out among integer labels, or if every
    # real label recurs (a class seen once in a whole file is more likely a column name)
    integers = all(is_integer(k) for k in others)
    return (integers and not is_integer(label)) or min(others.values()) >= 2


def is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def column_index(column: Column, header: Optional[list[str]], width: int, key: str, source: str,
                 fmt: str) -> int:
    if isinstance(column, str):
        names = [h.strip() for h in header or []]
        if column not in names:
            raise DataError(source, f"data.{key}: no column named {column!r}{did_you_mean(column, names)}; "
                            f"the header has: {', '.join(map(repr, names))}")
        return names.index(column)
    if column >= width:
        sep = "tabs" if fmt == "tsv" else "commas"
        raise DataError(source, f"data.{key}: column {column} (0-based) does not exist: lines have "
                        f"{width} column(s) separated by {sep} (read as {fmt}; is that the file's "
                        "format? see data.format)")
    return column


def row_problem(cells: list[str], width: int, text_at: int, label_at: int, fmt: str) -> str:
    if len(cells) != width:
        return f"expected {width} {fmt} column(s), found {len(cells)}"
    if not cells[text_at].strip():
        return "empty text"
    if not cells[label_at].strip():
        return "empty label"
    return ""

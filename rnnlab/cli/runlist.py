"""How ``rnnlab runs`` lays its list out, honest about the width it has. The width is ``$COLUMNS``
when set, else the terminal's; piped without ``$COLUMNS`` there is no limit. When every run fits
on one line: a table on a terminal, plain aligned columns otherwise (one run a line, as wide as
its content, for grep and awk). When not: each run takes two lines, its whole id on the first and
the rest below, so no id is ever cut."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional

from rnnlab.analysis.compare import RUN_COLUMNS, RunInfo, run_cells, runs_table

GAP = "  "
INDENT = "    "


def available_width(terminal: bool) -> Optional[int]:
    """``$COLUMNS`` when it is a positive number, else the terminal's width, else None (piped)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    return shutil.get_terminal_size().columns if terminal else None


def _widths(rows: list[list[str]]) -> list[int]:
    return [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]


def _align(cells: list[str], widths: list[int]) -> str:
    justify = [j for _, j in RUN_COLUMNS[-len(cells):]]
    return GAP.join(c.rjust(w) if j == "right" else c.ljust(w)
                    for c, w, j in zip(cells, widths, justify)).rstrip()


def one_line_layout(title: str, rows: list[list[str]]) -> list[str]:
    """A header and one line per run, columns aligned, no trailing spaces."""
    table = [[name for name, _ in RUN_COLUMNS], *rows]
    widths = _widths(table)
    return [title, *(_align(row, widths) for row in table)]


def two_line_layout(title: str, rows: list[list[str]]) -> list[str]:
    """Per run: its id alone on a line, then the other cells (aligned across runs) indented."""
    names = [name for name, _ in RUN_COLUMNS]
    rest = [row[1:] for row in rows]
    widths = _widths([names[1:], *rest])
    lines = [title, names[0], INDENT + _align(names[1:], widths)]
    for row, cells in zip(rows, rest):
        lines += [row[0], INDENT + _align(cells, widths)]
    return lines


def table_width(rows: list[list[str]]) -> int:
    """The width of ``runs_table``: each column's content plus a space each side and its border."""
    widths = _widths([[name for name, _ in RUN_COLUMNS], *rows])
    return sum(widths) + 3 * len(widths) + 1


def print_runs(infos: list[RunInfo], title: str, terminal: Optional[bool] = None) -> None:
    """Print the list, laid out for the width there is (see the module's docstring)."""
    terminal = sys.stdout.isatty() if terminal is None else terminal
    width = available_width(terminal)
    rows = [run_cells(i) for i in infos]
    if terminal and (width is None or table_width(rows) <= width):
        from rich.console import Console

        Console(highlight=False, width=width).print(runs_table(infos, title))
        return
    plain = one_line_layout(title, rows)
    fits = width is None or max(len(line) for line in plain[1:]) <= width
    print("\n".join(plain if fits or not rows else two_line_layout(title, rows)), flush=True)

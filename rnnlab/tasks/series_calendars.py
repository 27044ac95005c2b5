"""Timestamps of a series and its grid: parsing, the frequency a file's steps follow, and continuing it.

A frequency is a fixed step (``seconds``: minutes, hours, days, weeks, ...), a calendar step of
``months`` (monthly 1, quarterly 3, yearly 12) anchored on a day of the month (``2000-01-15``,
``2000-02-15``, ...; month-start is day 1) or on the month's last day (``month_end``:
``2000-01-31``, ``2000-02-29``, ``2000-03-31``, ...), or plain row steps. Calendar steps are
recognised when the most common step is 28 to 366 days and every timestamp sits on the same day of
the month, or every one on its month's last day.

Dates end at 9999-12-31 (Python's ``datetime``): a timestamp past it in a file, or a forecast
continuing past it, is a ``CalendarError`` (one line) rather than ``year 10000 is out of range``.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from rnnlab.errors import DataError

DAY = 86400.0
LAST_DATE = "9999-12-31"
_BIG_YEAR = re.compile(r"^\s*[+-]?\d{5,}[-/]")


class CalendarError(DataError):
    """A date past the end of the representable range (or before year 1)."""


def parse_time(text: str) -> Optional[datetime]:
    text = text.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def beyond_range(text: str) -> bool:
    """Whether ``text`` looks like a date with a year of five digits or more."""
    return bool(_BIG_YEAR.match(text))


def _month_end(t: datetime) -> bool:
    return t.day == calendar.monthrange(t.year, t.month)[1]


@dataclass(frozen=True)
class Frequency:
    """A fixed step (``seconds``), a calendar step of ``months`` (on the month's last day when
    ``month_end``), or plain row ``steps`` (both None)."""

    seconds: Optional[float] = None
    months: Optional[int] = None
    month_end: bool = False

    def add(self, t: datetime, k: int) -> datetime:
        """``t`` plus ``k`` steps; past 9999-12-31 (or before year 1) a ``CalendarError``."""
        try:
            if self.months:
                month = t.month - 1 + k * self.months
                year, month = t.year + month // 12, month % 12 + 1
                if not 1 <= year <= 9999:
                    raise OverflowError
                day = calendar.monthrange(year, month)[1] if self.month_end else t.day
                return t.replace(year=year, month=month, day=day)
            assert self.seconds is not None
            return t + timedelta(seconds=self.seconds * k)
        except OverflowError:
            raise CalendarError(None, f"{k} {self.label()} step(s) after {t} is past {LAST_DATE}, the "
                                "last date rnnlab can represent") from None

    def steps_between(self, a: datetime, b: datetime) -> Optional[int]:
        """Whole steps from a to b, or None if b is not on the grid."""
        if self.months:
            k = (b.year - a.year) * 12 + (b.month - a.month)
            if k % self.months:
                return None
            try:
                return k // self.months if self.add(a, k // self.months) == b else None
            except ValueError:  # the anchor day does not exist in b's month (day 30 in February)
                return None
        assert self.seconds is not None
        k = (b - a).total_seconds() / self.seconds
        return int(round(k)) if abs(k - round(k)) < 1e-9 else None

    def label(self) -> str:
        if self.months:
            name = {1: "monthly", 3: "quarterly", 12: "yearly"}.get(self.months, f"{self.months} months")
            return f"{name} (month-end)" if self.month_end else name
        if self.seconds is None:
            return "steps"
        s = self.seconds
        for unit, size in (("week", 7 * DAY), ("day", DAY), ("hour", 3600), ("minute", 60)):
            if s >= size and s % size == 0:
                n = int(s // size)
                return f"{n} {unit}{'s' if n > 1 else ''}"
        return f"{s:g} seconds"

    def default_period(self) -> int:
        """The usual seasonal period: a day of hourly/minute data, a week of days, a year of
        months, quarters or weeks."""
        if self.months:
            return max(1, 12 // self.months)
        if self.seconds is None:
            return 1
        if self.seconds < DAY and DAY % self.seconds == 0:
            return int(DAY // self.seconds)
        if self.seconds == DAY:
            return 7
        if self.seconds == 7 * DAY:
            return 52
        return 1

    def rows_per_day(self) -> Optional[int]:
        if self.seconds and self.seconds <= DAY and DAY % self.seconds == 0:
            return int(DAY // self.seconds)
        return None

    def known(self) -> bool:
        return bool(self.seconds or self.months)

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "months": self.months, "month_end": self.month_end,
                "label": self.label()}


def _calendar_months(times: Sequence[datetime]) -> Optional[Frequency]:
    """A month-based frequency when every timestamp sits on one day of the month or on month ends."""
    if not all(t.time() == times[0].time() for t in times):
        return None
    if all(_month_end(t) for t in times) and not all(t.day == times[0].day for t in times):
        end = True
    elif all(t.day == times[0].day for t in times):
        end = False
    else:
        return None
    months = Counter((b.year - a.year) * 12 + b.month - a.month for a, b in zip(times, times[1:]))
    step = months.most_common(1)[0][0]
    return Frequency(months=step, month_end=end) if step > 0 else None


def infer_frequency(times: Sequence[datetime]) -> Frequency:
    """The most common step between timestamps (calendar months when they follow the calendar)."""
    if len(times) < 2:
        return Frequency(seconds=None)
    steps = Counter((b - a).total_seconds() for a, b in zip(times, times[1:]))
    seconds = steps.most_common(1)[0][0]
    if 28 * DAY <= seconds <= 366 * DAY:
        months = _calendar_months(times)
        if months is not None:
            return months
    return Frequency(seconds=seconds)


__all__ = ["CalendarError", "Frequency", "LAST_DATE", "beyond_range", "infer_frequency", "parse_time"]

"""What a conformance check reports: one ``Finding`` per check and place (passed, failed or
skipped with a note), each printable as one line: ``<subject>: <check>: <detail>``."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Optional

import torch

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    subject: str  # what was checked where, e.g. "model 'lstm' on task 'sine (mode: window)'"
    check: str  # e.g. "causality"
    status: Status
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        head = f"{self.subject}: {self.check}"
        return f"{head}: {self.detail}" if self.detail else head


class CheckFailed(AssertionError):
    """Raised by ``assert_passes``: the message is the failures, one line each."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(f.line() for f in findings))


def failures(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.failed]


def assert_passes(findings: list[Finding]) -> list[Finding]:
    """The findings, or ``CheckFailed`` naming every failure (one line each)."""
    bad = failures(findings)
    if bad:
        raise CheckFailed(bad)
    return findings


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    out = {"pass": 0, "fail": 0, "skip": 0}
    for f in findings:
        out[f.status] += 1
    return out


def describe_exception(exc: BaseException) -> str:
    """``TypeError: ... (at file.py:12)``: the exception on one line with where it was raised."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 200:
        text = text[:197] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"raised {type(exc).__name__}: {text}{where}"


class Recorder:
    """Collects findings for one subject; ``run`` turns an unexpected exception in a check into a
    failure of that check instead of stopping the whole check."""

    def __init__(self, subject: str, out: list[Finding]) -> None:
        self.subject = subject
        self.out = out

    def add(self, check: str, status: Status, detail: str = "") -> Finding:
        finding = Finding(self.subject, check, status, detail)
        self.out.append(finding)
        return finding

    def ok(self, check: str, detail: str = "") -> None:
        self.add(check, "pass", detail)

    def fail(self, check: str, detail: str) -> None:
        self.add(check, "fail", detail)

    def skip(self, check: str, detail: str) -> None:
        self.add(check, "skip", detail)

    def run(self, check: str, fn: Callable[[], Optional[tuple[Status, str]]]) -> bool:
        """Run ``fn`` (returning (status, detail), or None for a plain pass); True if it passed."""
        try:
            result = fn()
        except Exception as exc:  # a check must never take the others down with it
            self.fail(check, describe_exception(exc))
            return False
        status, detail = result if result is not None else ("pass", "")
        self.add(check, status, detail)
        return status == "pass"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Equal up to float rounding (results of different batch shapes differ in the last bits)."""
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=True))


def shape_text(shape: Iterable[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"

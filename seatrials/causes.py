"""The cause catalog and the findings that point at it.

`causes.yaml` is the single source: checks name a cause id, reports render the
title, fix and page from here, and docs/causes/<id>.md holds each long page.
A failing check raises `CauseFailure`; its message always carries the cause id,
the evidence seen and the fix, so a JUnit file or a terminal alone is enough
to act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, NoReturn

import pytest
import yaml

UNKNOWN = "unknown"
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "causes"


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    origin: str
    severity: str
    symptom: str
    signals: tuple[str, ...]
    fix: str

    @property
    def page(self) -> str:
        """Repository-relative path of the cause's page."""
        return f"docs/causes/{self.id}.md"


@cache
def catalog() -> dict[str, Cause]:
    raw = yaml.safe_load(resources.files("seatrials").joinpath("causes.yaml").read_text())
    causes = {}
    for entry in raw:
        cause = Cause(**{**entry, "signals": tuple(entry["signals"])})
        if cause.id in causes:
            raise ValueError(f"cause id {cause.id!r} appears twice in causes.yaml")
        causes[cause.id] = cause
    return causes


def cause(cause_id: str) -> Cause:
    try:
        return catalog()[cause_id]
    except KeyError:
        raise KeyError(f"{cause_id!r} is not in the cause catalog (seatrials/causes.yaml)") from None


@dataclass
class Finding:
    """What a failed check concluded: one cause, the evidence, an optional hint."""

    cause: str
    evidence: list[str]
    hint: str = ""
    corroboration: list[str] = field(default_factory=list)

    def __post_init__(self):
        cause(self.cause)  # an id outside the catalog is a bug in the check

    def message(self) -> str:
        c = cause(self.cause)
        lines = [f"[cause: {c.id}] {c.title}", "evidence:"]
        lines += [f"  - {e}" for e in self.evidence]
        if self.corroboration:
            lines.append("corroborated by:")
            lines += [f"  - {e}" for e in self.corroboration]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        lines.append(f"fix: {c.fix}")
        lines.append(f"page: {c.page}")
        return "\n".join(lines)


class CauseFailure(AssertionError):
    """A check failed and knows why. The plugin turns it into report properties."""

    def __init__(self, finding: Finding):
        super().__init__(finding.message())
        self.finding = finding


def fail(cause_id: str, evidence: list[str], hint: str = "", corroboration=()) -> NoReturn:
    raise CauseFailure(Finding(cause_id, list(evidence), hint, list(corroboration)))


@dataclass(frozen=True)
class Observation:
    """One signal a check read: healthy, faulty, or unreadable (then: why)."""

    signal: str
    state: Literal["ok", "fault", "unreadable"]
    detail: str

    def line(self) -> str:
        return f"{self.signal}: {self.detail}"


@dataclass
class Verdict:
    """The observations of one check about one subject, judged against one cause.

    A fault in any observation fails the check with `cause`; when nothing could
    be read the check is skipped as "not checked" (never passed), and signals
    that could not be read are listed next to a pass so nobody mistakes them
    for healthy.
    """

    cause: str
    observations: list[Observation] = field(default_factory=list)

    def add(self, signal: str, state: str, detail: str) -> Observation:
        obs = Observation(signal, state, detail)
        self.observations.append(obs)
        return obs

    def of_state(self, state: str) -> list[Observation]:
        return [o for o in self.observations if o.state == state]

    def judge(self) -> list[str]:
        """Fail on faults, skip when nothing was readable; return the not-checked notes."""
        faults = self.of_state("fault")
        unreadable = [f"not checked: {o.line()}" for o in self.of_state("unreadable")]
        if faults:
            fail(self.cause, [o.line() for o in faults] + unreadable)
        if not self.of_state("ok"):
            pytest.skip("; ".join(unreadable) or "not checked: no signal was readable")
        return unreadable

"""The cause catalog and the findings that point at it.

`causes.yaml` is the single source: checks name a cause id, reports render the
title, fix and page from here, and docs/causes/<id>.md holds each long page.
Every check returns one `Result`: passed, failed with a `Finding` (cause id,
evidence, fix), or not checked with the reason. Only the pytest plugin turns a
Result into pass, fail or skip; a failure's message always carries the cause
id, the evidence seen and the fix, so a JUnit file or a terminal alone is
enough to act on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from seatrials.data import load_yaml

UNKNOWN = "unknown"
SEVERITY = ("low", "medium", "high", "critical")
DOCS_DIR = Path(str(resources.files("seatrials.pages")))  # docs/causes in the checkout


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    origin: str
    severity: str
    symptom: str
    signals: tuple[str, ...]
    requires: tuple[str, ...]  # the evidence without which it is never named
    ruled_out_by: tuple[str, ...]  # the evidence that excludes it
    fix: str

    @property
    def page(self) -> str:
        """Repository-relative path of the cause's page."""
        return f"docs/causes/{self.id}.md"


@cache
def catalog() -> dict[str, Cause]:
    raw = load_yaml(resources.files("seatrials").joinpath("causes.yaml").read_text())
    causes = {}
    for entry in raw:
        cause = Cause(**{**entry, **{k: tuple(entry[k]) for k in ("signals", "requires", "ruled_out_by")}})
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


PASSED, FAILED, NOT_CHECKED, NOT_APPLICABLE = "passed", "failed", "not checked", "not applicable"


@dataclass
class Result:
    """What one check concluded: passed, failed (with its Finding), not checked (with the reason), or not
    applicable (the cluster has nothing of the kind: nothing is left unverified, so no --require misses it).

    `notes` are the signals that could not be read next to a pass, so nobody
    mistakes them for healthy; `properties` go into the reports as they are.
    """

    status: Literal["passed", "failed", "not checked", "not applicable"]
    finding: Finding | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    @classmethod
    def passed(cls, notes=(), **properties: str) -> Result:
        return cls(PASSED, notes=list(notes), properties=dict(properties))

    @classmethod
    def failed(cls, cause_id: str, evidence, hint: str = "", corroboration=()) -> Result:
        return cls(FAILED, Finding(cause_id, list(evidence), hint, list(corroboration)))

    @classmethod
    def not_checked(cls, reason: str) -> Result:
        return cls(NOT_CHECKED, reason=reason)

    @classmethod
    def not_applicable(cls, reason: str) -> Result:
        return cls(NOT_APPLICABLE, reason=reason)

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Result:
        """A Result as to_json wrote it (a process of the run hands its Results to the others)."""
        finding = Finding(**data["finding"]) if data["finding"] else None
        return cls(**{**data, "finding": finding})

    def __str__(self) -> str:
        if self.finding:
            return self.finding.message()
        return f"{self.status}: {self.reason}" if self.reason else self.status


@dataclass(frozen=True)
class Observation:
    """One signal a check read: healthy, faulty, unreadable (then: why), or absent (nothing of the kind is
    there to read: a path that never leaves its instance crosses no security group)."""

    signal: str
    state: Literal["ok", "fault", "unreadable", "absent"]
    detail: str
    cause: str | None = None  # a fault of another cause than the check's own (a graver one it also sees)

    def line(self) -> str:
        return f"{self.signal}: {self.detail}"


@dataclass
class Verdict:
    """The observations of one check about one subject, judged against one cause.

    A fault in any observation fails the check with `cause`; when nothing could
    be read the check is "not checked" (never passed), and signals that could
    not be read are listed next to a pass so nobody mistakes them for healthy.
    """

    cause: str
    observations: list[Observation] = field(default_factory=list)

    def add(self, signal: str, state: str, detail: str, cause: str | None = None) -> Observation:
        obs = Observation(signal, state, detail, cause)
        self.observations.append(obs)
        return obs

    def of_state(self, state: str) -> list[Observation]:
        return [o for o in self.observations if o.state == state]

    def result(self) -> Result:
        """Failed on any fault, not applicable when every signal is absent, not checked when nothing was
        readable, else passed with the unread signals."""
        unreadable = [o.line() for o in self.of_state("unreadable")]
        if faults := self.of_state("fault"):
            named = max((o.cause or self.cause for o in faults), key=lambda c: SEVERITY.index(cause(c).severity))
            return Result.failed(named, [o.line() for o in faults] + [f"not checked: {u}" for u in unreadable])
        if self.observations and self.observations == self.of_state("absent"):
            return Result.not_applicable("; ".join(o.line() for o in self.observations))
        if not self.of_state("ok"):
            return Result.not_checked("; ".join(unreadable) or "no signal was readable")
        return Result.passed(notes=unreadable)

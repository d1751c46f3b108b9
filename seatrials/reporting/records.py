"""What one test case leaves for the reports: a CheckReport per case, the finding of a
failure as plain data, its one-line message, and readable test parameters."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from _pytest._code.code import ReprExceptionInfo, ReprFileLocation, ReprTracebackNative

from seatrials import causes
from seatrials.reporting.redaction import redact, redact_lines

ONE_LINE_MAX = 300  # a CI view shows one line; JUnit cuts its message attribute at 500
OWN_PROPERTIES = ("area", "cause", "cause_page", "not checked")  # what the plugin itself records of a case


@dataclass
class CheckReport:
    nodeid: str
    check: str  # the test function, e.g. test_pod_to_pod
    case: str  # the parameter id, e.g. master-1->worker-2
    outcome: str  # passed, failed, skipped, error
    cause: str
    message: str
    duration: float
    area: str = ""  # what the check signs off (options.AREAS)
    summary: str = ""  # the one-line message of a failure
    evidence: list[str] = field(default_factory=list)
    corroboration: list[str] = field(default_factory=list)
    hint: str = ""
    notes: list[str] = field(default_factory=list)  # signals not read next to a pass
    tries: int = 0  # a probe that passed only on a later try says how many it took (flaky, baseline.py)
    read: dict[str, str] = field(default_factory=dict)  # what the check itself reports it read (its properties)

    @classmethod
    def of(cls, report) -> CheckReport:
        name = report.nodeid.split("::")[-1]
        check, _, case = name.partition("[")
        props = dict(report.user_properties)
        outcome = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        if report.skipped and isinstance(report.longrepr, tuple):
            message = report.longrepr[2].removeprefix("Skipped: ")
        else:
            message = str(report.longrepr or "")
        finding = getattr(report, "seatrials_finding", None) or {}
        if outcome == "error" and not finding:
            finding = {"summary": error_line(message)}
        return cls(report.nodeid, check, case.rstrip("]"), outcome, props.get("cause", ""), message,
                   round(report.duration, 3), props.get("area", ""),
                   notes=[value for key, value in report.user_properties if key == "not checked"],
                   tries=int(props.get("tries", 0)),
                   read={key: str(value) for key, value in report.user_properties if key not in OWN_PROPERTIES},
                   **finding)

    @property
    def name(self) -> str:
        return f"{self.check}[{self.case}]" if self.case else self.check

    @property
    def judged(self) -> str:
        """The outcome the verdict weighs: a skip of a check that found nothing of its kind is not applicable."""
        applicable = self.outcome != "skipped" or not self.message.startswith(f"{causes.NOT_APPLICABLE}:")
        return self.outcome if applicable else causes.NOT_APPLICABLE


def error_line(text: str) -> str:
    """The last line of a traceback says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return shorten(lines[-1]) if lines else ""


def shorten(text: str, limit: int = ONE_LINE_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(finding: causes.Finding) -> str:
    """`[cause: id] title: what failed where`, for JUnit's message, Allure and one-line CI views."""
    c = causes.cause(finding.cause)
    first = next((e for e in finding.evidence if not e.startswith("pattern: ")), "")
    more = len([e for e in finding.evidence if not e.startswith(("pattern: ", "not checked: "))]) - 1
    return shorten(f"[cause: {c.id}] {c.title}" + (f": {first}" if first else "") + (f" (+{more} more)" if more > 0
                                                                                     else ""))


def headline(cause_id: str) -> str:
    """The same for every failure of one cause, so Allure groups them as one."""
    c = causes.cause(cause_id)
    return f"[cause: {c.id}] {c.title}"


def finding_record(finding: causes.Finding, secrets: list[str]) -> dict:
    """A failure's finding as plain data: it travels with the test report (also through xdist)."""
    return {"summary": redact(one_line(finding), secrets),
            "evidence": redact_lines(finding.evidence, secrets),
            "corroboration": redact_lines(finding.corroboration, secrets),
            "hint": redact(finding.hint, secrets)}


def finding_html(finding: causes.Finding) -> str:
    """The whole finding as Allure's description (its status message is the cause's headline)."""
    return f"<pre>{html.escape(finding.message())}</pre>"


def failure_repr(finding: causes.Finding, location: tuple[str, int | None, str], secrets: list[str]):
    """pytest's long representation of a failure: the one-line message (JUnit's message attribute, the
    short summary) and the full finding as its text (JUnit's body, Allure's trace, the terminal)."""
    body = redact(finding.message(), secrets)
    path, lineno, _ = location
    return ReprExceptionInfo(reprtraceback=ReprTracebackNative([line + "\n" for line in body.splitlines()]),
                             reprcrash=ReprFileLocation(path, (lineno or 0) + 1, redact(one_line(finding), secrets)))


class Verbatim:
    """Allure quotes a str parameter ('master-1'); a value whose repr is its text shows as written."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def readable(value) -> str:
    """A node as `name (role, ip)`, a pair as `a -> b`, anything else as text."""
    if isinstance(value, tuple | list):
        return " -> ".join(getattr(v, "name", None) or str(v) for v in value)
    if hasattr(value, "role") and hasattr(value, "internal_ip"):  # a topology Node (by shape: modules reload)
        return f"{value.name} ({', '.join(x for x in (value.role, value.internal_ip) if x)})"
    return str(value)


def readable_parameters(item) -> dict[str, Verbatim]:
    """A test item's parameters as Allure should show them."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return {name: Verbatim(readable(value)) for name, value in params.items()}

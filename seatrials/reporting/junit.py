"""The JUnit file pytest wrote, completed: suite-level properties (the verdict, why, the run,
the cluster's fingerprint hash, what changed since --baseline) ahead of the cases, a `type` on
every failure (the cause id, or the exception's name), for CI views that show one line per
failure, and on each failed case since when it fails (`since_baseline`)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from seatrials.reporting.baseline import listed

CAUSE = re.compile(r"^\[cause: ([\w.-]+)\]")
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt|Exit)): ")


def suite_properties(signoff: dict) -> dict[str, str]:
    return {"verdict": signoff["verdict"], "verdict_reasons": "; ".join(signoff["verdict_reasons"]),
            "run_id": signoff.get("run_id") or "", "fingerprint_hash": signoff.get("fingerprint_hash", ""),
            "tool_version": signoff.get("tool", {}).get("version", ""), "started": signoff.get("started", ""),
            "ended": signoff.get("ended", ""), **since_properties(signoff.get("baseline"))}


def since_properties(since: dict | None) -> dict[str, str]:
    if not since:
        return {}
    counts = {f"baseline_{heading.replace(' ', '_')}": str(len(lines)) for heading, lines in listed(since)}
    return {"baseline_runs": str(since["runs"]), **counts, "exit_policy": since["exit_policy"]}


def case_since(since: dict | None) -> dict[str, str]:
    """Failed case -> `new`, or `failing since <start of the run>`."""
    if not since:
        return {}
    return {**{x["case"]: "new" for x in since["new"]},
            **{x["case"]: f"failing since {x['since']}" for x in since["still_failing"]}}


def complete(junit: Path, signoff: dict) -> None:
    tree = ET.parse(junit)
    root = tree.getroot()
    for suite in [root] if root.tag == "testsuite" else root.findall("testsuite"):
        element = suite.find("properties")
        if element is None:
            element = ET.Element("properties")
            suite.insert(0, element)
        for name, value in suite_properties(signoff).items():
            ET.SubElement(element, "property", name=name, value=value)
    for failure in root.iter("failure"):
        if not failure.get("type"):
            failure.set("type", failure_type(failure.get("message", "")))
    since = case_since(signoff.get("baseline"))
    for case in root.iter("testcase"):
        if (when := since.get(case.get("name", ""))) is not None:
            element = case.find("properties")
            if element is None:
                element = ET.Element("properties")
                case.insert(0, element)
            ET.SubElement(element, "property", name="since_baseline", value=when)
    tree.write(junit, encoding="utf-8", xml_declaration=True)


def failure_type(message: str) -> str:
    if match := CAUSE.match(message):
        return match.group(1)
    if match := EXCEPTION.match(message):
        return match.group(1)
    return "failure"


def not_started(reason: str) -> str:
    """The JUnit file of a run that could not start: one error saying why."""
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name="seatrials", errors="1", failures="0", skipped="0", tests="1")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value="INCOMPLETE")
    ET.SubElement(props, "property", name="verdict_reasons", value=reason)
    case = ET.SubElement(suite, "testcase", classname="seatrials", name="run")
    ET.SubElement(case, "error", type="INCOMPLETE", message=reason).text = reason
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

"""The JUnit file pytest wrote, completed: suite-level properties (the verdict, why, the run,
the cluster's fingerprint hash) ahead of the cases, and a `type` on every failure (the cause
id, or the exception's name), for CI views that show one line per failure."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

CAUSE = re.compile(r"^\[cause: ([\w.-]+)\]")
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt|Exit)): ")


def suite_properties(signoff: dict) -> dict[str, str]:
    return {"verdict": signoff["verdict"], "verdict_reasons": "; ".join(signoff["verdict_reasons"]),
            "run_id": signoff.get("run_id") or "", "fingerprint_hash": signoff.get("fingerprint_hash", ""),
            "tool_version": signoff.get("tool", {}).get("version", ""), "started": signoff.get("started", ""),
            "ended": signoff.get("ended", "")}


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

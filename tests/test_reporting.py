"""Reports: secrets never get through, matrices and categories are right."""

import json
import re
import xml.etree.ElementTree as ET

from seatrials import causes, reporting
from seatrials.network import ProbeResult
from seatrials.trial import Trial

KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----"


def test_known_secret_values_and_secret_shapes_are_redacted():
    text = (f"token=abcd1234efgh password: hunter2hunter Authorization: Bearer eyJhbGciOi.x.y "
            f"https://admin:s3cr3tpass@harbor.example.com/v2/ AKIAIOSFODNN7EXAMPLE {KEY} mysecretvalue")
    out = reporting.redact(text, ["mysecretvalue"])
    for secret in ("abcd1234efgh", "hunter2hunter", "eyJhbGciOi", "s3cr3tpass", "AKIAIOSFODNN7EXAMPLE",
                   "MIIEowIBAAKCAQEAx", "mysecretvalue"):
        assert secret not in out
    assert "harbor.example.com" in out and "https://admin:" in out


def test_categories_group_failures_by_cause_message():
    cats = reporting.allure_categories()
    by_name = {c["name"].split(":")[0]: c for c in cats}
    assert set(causes.catalog()) <= set(by_name)
    message = causes.Finding("kubelet-cgroups", ["worker-1: kubelet log: ..."]).message()
    regex = by_name["kubelet-cgroups"]["messageRegex"]
    assert re.fullmatch(regex, message)
    assert not re.fullmatch(by_name["ec2-source-dest-check"]["messageRegex"], message)


def test_matrix_picture_marks_failures():
    results = [ProbeResult("pod-to-pod", "a", "b", "x", "ok", ""), ProbeResult("pod-to-pod", "b", "a", "x",
                                                                                 "timeout", "")]
    trial = Trial("r", "ns", [], [], results)
    m = reporting.matrices(trial)["pod-to-pod"]
    assert m["cells"] == {"a": {"b": "ok"}, "b": {"a": "timeout"}}
    svg = reporting.matrix_svg("pod-to-pod", m)
    ET.fromstring(svg)  # well-formed
    assert svg.count(reporting.BAD_COLOUR) == 1 and "TIMEOUT" in svg


def test_markdown_and_html_carry_causes_and_matrix(tmp_path):
    s = {"run_id": "r1", "server": "https://127.0.0.1:6443", "context": "lab", "started": "t", "wall_seconds": 1,
         "api_requests": 9, "nodes": 2, "cluster": {"cni": "other"}, "verdict": "NOT SIGNED OFF",
         "verdict_reasons": ["1 failed"], "not_verified": {"aws": ["test_source_dest_check[a]"]},
         "outcomes": {"failed": 1},
         "causes_found": {"sg-node-to-apiserver": {"title": "T", "fix": "F", "page": "P", "cases": ["x[a]"]}},
         "checks": [{"check": "test_x", "case": "a", "outcome": "failed", "cause": "sg-node-to-apiserver",
                     "message": "m"}],
         "matrix": {"pod-to-pod": {"title": "t", "sources": ["a"], "targets": ["b"], "cells": {"a": {"b": "ok"}}}}}
    md = reporting.markdown(s)
    assert "sg-node-to-apiserver" in md and "| a | ok |" in md
    page = reporting.html_report(s)
    assert "<svg" in page and "NOT SIGNED OFF" in page and "1 failed" in page
    assert "aws: 1 cases not checked (test_source_dest_check[a])" in page and "- 1 failed" in md
    json.dumps(s)

"""Bad input stops the suite before any test runs, with one line naming the problem and a non-zero
exit, never a traceback; and the reports of such a run say INCOMPLETE, never last night's verdict."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

UNREACHABLE = """apiVersion: v1
kind: Config
current-context: lab
contexts: [{name: lab, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: secret-token-value}}]
"""


def suite(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120, env=env)


def one_line(run) -> str:
    lines = [x for x in (run.stdout + run.stderr).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: seatrials: "), run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    return lines[0]


@pytest.mark.parametrize("content,args,expected", [
    (None, [], "does not exist: pass --kubeconfig PATH or set KUBECONFIG"),
    ("contexts: [\n", [], "is not valid YAML"),
    (b"contexts: \xff\xfe\n", [], "is not UTF-8 text"),
    ("contexts: [a, b]\ncurrent-context: a\n", [], "contexts[0] must be a mapping with a name and a context"),
    (UNREACHABLE.replace("users: [{name: u, user: {token: secret-token-value}}]", "users: [u]"), [],
     "users[0] must be a mapping with a name and a user"),
    (UNREACHABLE.replace("{cluster: c, user: u}", "{cluster: gone, user: u}"), [],
     "names cluster 'gone', which is not in its clusters"),
    (UNREACHABLE.replace("{token: secret-token-value}", "{exec: {apiVersion: client.authentication.k8s.io/v1, "
                         "command: aws-iam-authenticator-not-installed, installHint: 'see the EKS docs'}}"), [],
     "exec credential plugin 'aws-iam-authenticator-not-installed', which is not installed here: see the EKS docs"),
    (UNREACHABLE, ["--context", "staging"], "context 'staging' is not in kubeconfig"),
    (UNREACHABLE, [], "cannot reach the cluster at https://127.0.0.1:9 (context 'lab'): Connection refused"),
    (UNREACHABLE, ["--expect-service-ip", "10.32.0.300"], "--expect-service-ip 10.32.0.300: is not an IP address"),
    (UNREACHABLE, ["--probe-ports", "9376,9377"], "--probe-ports 9376,9377: must be three different port numbers"),
    (UNREACHABLE, ["--probe-ports", "a,b,c"], "--probe-ports a,b,c: must be three port numbers"),
    (UNREACHABLE, ["--probe-timeout", "0"], "--probe-timeout 0: must be more than 0"),
    (UNREACHABLE, ["--ready-timeout", "-5"], "--ready-timeout -5: must be more than 0"),
    (UNREACHABLE, ["--lock-wait", "-1"], "--lock-wait -1: must be 0 or more"),
    (UNREACHABLE, ["--probe-retries", "x"], "--probe-retries x: is not a whole number"),
    (UNREACHABLE, ["--reports-dir", "/proc/seatrials"], "--reports-dir /proc/seatrials: cannot be created"),
    (UNREACHABLE, ["--harbor-url", "ftp://harbor"], "--harbor-url ftp://harbor: is not an http(s) URL with a host"),
    (UNREACHABLE, ["--harbor-url", "https://harbor:port"], "--harbor-url https://harbor:port: is not a URL"),
    (UNREACHABLE, ["--require", "aws,dns"], "--require aws,dns: names unknown areas dns"),
    (UNREACHABLE, ["--baseline", "/nowhere/signoff.json"], "--baseline /nowhere/signoff.json: does not exist"),
    (UNREACHABLE, ["--baseline", "/proc/self/status"], "--baseline /proc/self/status: not a seatrials signoff.json"),
    (UNREACHABLE, ["--baseline", str(ROOT / "docs")], f"--baseline {ROOT / 'docs'}: no signoff.json there"),
    (UNREACHABLE, ["--fail-on", "old"], "--fail-on old: must be any or new"),
])
def test_one_line_and_non_zero_exit(tmp_path, content, args, expected):
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_bytes(content if isinstance(content, bytes) else content.encode())
    run = suite("--kubeconfig", str(kubeconfig), "--reports-dir", str(tmp_path / "reports"), *args)
    assert run.returncode == 4
    line = one_line(run)
    assert expected in line, line
    assert "secret-token-value" not in run.stdout + run.stderr


def test_a_run_that_cannot_start_replaces_stale_reports_with_incomplete(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "signoff.json").write_text(json.dumps({"verdict": "SIGNED OFF"}))  # last night's
    (tmp_path / "kubeconfig").write_text(UNREACHABLE)
    run = suite("--kubeconfig", str(tmp_path / "kubeconfig"), "--reports-dir", str(reports))
    assert run.returncode == 4
    signoff = json.loads((reports / "signoff.json").read_text())
    assert signoff["verdict"] == "INCOMPLETE" and "Connection refused" in signoff["verdict_reasons"][0]
    assert 'name="verdict" value="INCOMPLETE"' in (reports / "junit.xml").read_text()
    assert "INCOMPLETE" in (reports / "signoff.html").read_text()


def test_an_apiserver_that_accepts_and_never_answers_is_one_line_within_30_s(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts TCP (backlog), never speaks TLS
        port = silent.getsockname()[1]
        (tmp_path / "kubeconfig").write_text(UNREACHABLE.replace("127.0.0.1:9", f"127.0.0.1:{port}"))
        started = time.monotonic()
        run = suite("--kubeconfig", str(tmp_path / "kubeconfig"), "--reports-dir", str(tmp_path / "r"))
        took = time.monotonic() - started
    assert run.returncode == 4 and took < 30, took
    assert f"cannot reach the cluster at https://127.0.0.1:{port}" in one_line(run)


def test_help_and_collect_only_need_no_cluster(tmp_path):
    assert "--probe-image" in suite("--help").stdout
    collected = suite("--collect-only", "-q", "--kubeconfig", str(tmp_path / "absent"))
    assert collected.returncode == 0 and "suites/test_network.py::test_pod_to_pod" in collected.stdout

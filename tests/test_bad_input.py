"""Bad input stops the suite before any test runs, with one line and a non-zero exit."""

import subprocess
import sys
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


def suite(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("content,args,expected", [
    (None, [], "does not exist: pass --kubeconfig PATH or set KUBECONFIG"),
    ("contexts: [\n", [], "is not valid YAML"),
    (UNREACHABLE, ["--context", "staging"], "context 'staging' is not in kubeconfig"),
    (UNREACHABLE, [], "cannot reach the cluster at https://127.0.0.1:9 (context 'lab'): Connection refused"),
])
def test_one_line_and_non_zero_exit(tmp_path, content, args, expected):
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    run = suite("--kubeconfig", str(kubeconfig), *args)
    assert run.returncode == 4
    lines = [x for x in (run.stdout + run.stderr).splitlines() if x.strip()]
    assert lines == [f"ERROR: seatrials: {lines[0].split('seatrials: ', 1)[1]}"] and expected in lines[0]
    assert "secret-token-value" not in run.stdout + run.stderr


def test_help_and_collect_only_need_no_cluster(tmp_path):
    assert "--probe-image" in suite("--help").stdout
    collected = suite("--collect-only", "-q", "--kubeconfig", str(tmp_path / "absent"))
    assert collected.returncode == 0 and "suites/test_network.py::test_pod_to_pod" in collected.stdout

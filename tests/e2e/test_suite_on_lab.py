"""The suite against the lab, as a user runs it: a healthy cluster signs off,
the reports are complete, nothing is left behind, bad input is one line."""

import base64
import datetime
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import suite_command

pytestmark = pytest.mark.lab


def leftovers(kube) -> list[str]:
    core, coordination = kube
    namespaces = core.list_namespace(label_selector="app.kubernetes.io/managed-by=seatrials").items
    live = [ns.metadata.name for ns in namespaces if ns.status.phase != "Terminating"]
    leases = [lease.metadata.name for lease in coordination.list_namespaced_lease("default").items
              if lease.metadata.name == "seatrials-lock"]
    return live + leases


def wait_for(condition, timeout=60.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def test_healthy_lab_signs_off_with_complete_reports(run_suite, kube):
    run = run_suite("-v")  # with -q (the default here) pytest hides the report header
    assert run.returncode == 0, run.output[-3000:]
    s = run.signoff
    assert s["verdict"] == "SIGNED OFF" and s["outcomes"].get("failed", 0) == 0
    nodes = s["nodes"]
    passed = {(c["check"], c["case"]) for c in s["checks"] if c["outcome"] == "passed"}
    for check in ("test_pod_to_pod", "test_host_to_pod", "test_external_ip_backends"):
        assert sum(1 for c, _ in passed if c == check) == nodes * nodes, check
    assert sum(1 for c, _ in passed if c == "test_host_to_host") == nodes * (nodes - 1)
    assert ("test_pod_to_apiserver_endpoint", "worker-1->10.240.0.11:6444") in passed  # the real port, not 6443
    ET.parse(run.reports / "junit.xml")
    assert (run.reports / "allure-results" / "categories.json").exists()
    assert list((run.reports / "allure-results").glob("*-result.json"))
    assert "<svg" in (run.reports / "signoff.html").read_text()
    assert (run.reports / "matrix-pod-to-pod.svg").exists()
    assert "seatrials run" in run.stdout and "apiserver endpoints: 10.240.0.11:6444" in run.stdout  # header
    assert s["api_requests"] > 0 and s["probe_namespace_deleted"]
    assert leftovers(kube) == []


def test_parallel_workers_share_one_measurement(run_suite, kube):
    run = run_suite("-n", "2")
    assert run.returncode == 0, run.output[-3000:]
    s = run.signoff
    assert s["verdict"] == "SIGNED OFF"
    # probes deployed and measured once: 2 execs per node, not per worker
    assert s["api_requests"] < 40 * s["nodes"], s["api_requests"]
    assert leftovers(kube) == []


def test_missing_probe_image_is_one_line_naming_the_image(run_suite, kube):
    image = "docker.io/library/busybox:0.0.0-not-mirrored"
    run = run_suite("--probe-image", image, "-k", "pod_to_pod", "--ready-timeout", "120")
    assert run.returncode != 0
    line = next(x for x in run.output.splitlines() if "cannot be pulled" in x)
    assert image in line and "mirror" in line and "--image-registry" in line
    assert "Traceback" not in run.output
    assert leftovers(kube) == []


def expired_client_certificate() -> tuple[str, str]:
    """A client certificate and key whose validity ended yesterday (base64 PEM, kubeconfig style)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            base64.b64encode(pem_key).decode())


@pytest.mark.parametrize("credentials,expected", [
    ("expired-certificate", "rejected the credentials (401 Unauthorized)"),
    ("unknown-token", "accepted the credentials but forbids listing nodes (403)"),  # anonymous, as the server says
])
def test_bad_credentials_are_one_line(run_suite, lab_env, tmp_path, credentials, expected):
    data = yaml.safe_load(Path(lab_env["KUBECONFIG"]).read_text())
    if credentials == "expired-certificate":
        cert, key = expired_client_certificate()
        data["users"][0]["user"] = {"client-certificate-data": cert, "client-key-data": key}
    else:
        data["users"][0]["user"] = {"token": "not-a-valid-token"}
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text(yaml.safe_dump(data))
    run = run_suite("--kubeconfig", str(bad))
    assert run.returncode == 4
    lines = [x for x in run.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: seatrials: ") and expected in lines[0], run.output
    assert "not-a-valid-token" not in run.output


def test_a_second_run_is_refused_while_the_first_holds_the_lock(run_suite, lab_env, kube, tmp_path):
    first = subprocess.Popen(suite_command(tmp_path / "first", "-k", "pod_to_pod or kubelet"),
                             env={**os.environ, **lab_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_for(lambda: "seatrials-lock" in leftovers(kube))
        second = run_suite("-k", "pod_to_pod")
        assert second.returncode == 4
        assert "another seatrials run" in second.output and "holds this cluster's lock" in second.output
        waited = run_suite("-k", "pod_to_pod", "--lock-wait", "300")  # waits for the first, then runs
        assert waited.returncode == 0, waited.output[-2000:]
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-2000:]
    assert leftovers(kube) == []


def test_ctrl_c_cleans_up(lab_env, kube, tmp_path):
    # as from a terminal: a shell that starts jobs in the background (CI scripts, nohup)
    # hands them SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(suite_command(tmp_path / "r"), env={**os.environ, **lab_env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: any(n.startswith("seatrials-2") for n in leftovers(kube)), interval=0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out[-2000:]  # pytest's "interrupted"
    assert "verdict: INTERRUPTED" in out, out[-2000:]
    assert json.loads((tmp_path / "r" / "signoff.json").read_text())["verdict"] == "INTERRUPTED"
    assert leftovers(kube) == [], out[-2000:]


def test_cleanup_only_removes_what_a_kept_run_left(run_suite, kube):
    kept = run_suite("-k", "pod_to_pod", "--keep-probes")
    assert kept.returncode == 0
    assert any(n.startswith("seatrials-2") for n in leftovers(kube))
    cleanup = run_suite("--cleanup-only")
    assert cleanup.returncode == 0 and "removed namespace/seatrials-" in cleanup.output
    assert leftovers(kube) == []

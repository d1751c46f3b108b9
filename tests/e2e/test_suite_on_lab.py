"""The suite against the lab, as a user runs it: a healthy cluster signs off,
the reports are complete, nothing is left behind, bad input is one line; a run
that could not do its job says INCOMPLETE, a selection says PARTIAL, a killed
run's leftovers do not break the next, and a least-privilege ServiceAccount
signs off as an admin would."""

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

from tests.e2e.conftest import LAB, suite_command

LAB_BUILD = LAB.parent / "build.sh"

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
    assert s["verdict_reasons"][0].startswith("the whole suite ran: ")
    assert 'name="verdict" value="SIGNED OFF"' in (run.reports / "junit.xml").read_text()
    assert "verdict=SIGNED OFF" in (run.reports / "allure-results" / "environment.properties").read_text()
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


def test_missing_probe_image_is_incomplete_with_one_line_naming_the_image(run_suite, kube):
    image = "docker.io/library/busybox:0.0.0-not-mirrored"
    run = run_suite("--probe-image", image, "--ready-timeout", "120")
    assert run.returncode == 3, run.output[-2000:]
    assert run.signoff["verdict"] == "INCOMPLETE"  # never SIGNED OFF, however many other checks passed
    assert run.signoff["outcomes"]["passed"] > 0
    line = next(x for x in run.output.splitlines() if "cannot be pulled" in x and "mirror it into" in x)
    assert image in line and "--image-registry" in line
    assert 'name="verdict" value="INCOMPLETE"' in (run.reports / "junit.xml").read_text()
    assert "Traceback" not in run.output
    assert leftovers(kube) == []


def test_a_selection_is_partial_never_signed_off(run_suite):
    run = run_suite("-k", "pod_to_pod")
    assert run.returncode == 6, run.output[-2000:]
    assert run.signoff["verdict"] == "PARTIAL"
    assert any("deselected (-k 'pod_to_pod')" in r for r in run.signoff["verdict_reasons"])
    subset = run_suite(target=Path(__file__).resolve().parents[2] / "suites" / "test_network.py")
    assert subset.returncode == 6 and "not collected: test_apiserver.py" in " ".join(subset.signoff["verdict_reasons"])


def test_a_run_after_a_sigkilled_one_signs_off_without_cleanup(run_suite, lab_env, kube, tmp_path):
    """A CI job cancelled hard: the next run waits at most the dead run's Lease, removes what it left, signs off."""
    killed = subprocess.Popen(suite_command(tmp_path / "killed"), env={**os.environ, **lab_env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(n.startswith("seatrials-2") for n in leftovers(kube)), interval=0.1)
    time.sleep(1.5)  # its probes are being deployed
    killed.kill()
    killed.wait()
    started = time.monotonic()
    run = run_suite("-v", "--lock-wait", "120")
    took = time.monotonic() - started
    assert run.returncode == 0, run.output[-3000:]
    assert run.signoff["removed_leftovers"] and "removed what earlier runs left: namespace/" in run.output
    assert took < 30 + 60, took  # the Lease (30 s) plus a run, never a 180 s wait for ports
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
    ("unknown-token", "rejected the credentials (401 Unauthorized)"),
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
        assert waited.returncode == 6 and waited.signoff["verdict"] == "PARTIAL", waited.output[-2000:]
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 6, out[-2000:]  # a selection: PARTIAL
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
    assert kept.returncode == 6
    assert any(n.startswith("seatrials-2") for n in leftovers(kube))
    cleanup = run_suite("--cleanup-only")
    assert cleanup.returncode == 0 and "removed namespace/seatrials-" in cleanup.output
    assert leftovers(kube) == []


RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml"


def kubectl(lab_env, *args, input=None) -> str:
    binary = Path(subprocess.run([str(LAB_BUILD), "--print"], capture_output=True, text=True,
                                 check=True).stdout.strip()) / "kubectl"
    return subprocess.run([str(binary), "--kubeconfig", lab_env["KUBECONFIG"], *args], input=input,
                          capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def service_account_kubeconfig(lab_env, tmp_path):
    """manifests/rbac.yaml applied, and a kubeconfig holding a token of its ServiceAccount; removed afterwards."""
    kubectl(lab_env, "apply", "-f", str(RBAC))
    token = kubectl(lab_env, "-n", "seatrials", "create", "token", "seatrials", "--duration=1h").strip()
    data = yaml.safe_load(Path(lab_env["KUBECONFIG"]).read_text())
    data["users"] = [{"name": "seatrials", "user": {"token": token}}]
    for context in data["contexts"]:
        context["context"]["user"] = "seatrials"
    path = tmp_path / "seatrials-sa.kubeconfig"
    path.write_text(yaml.safe_dump(data))
    yield path
    kubectl(lab_env, "delete", "-f", str(RBAC), "--ignore-not-found", "--wait=false")


def test_the_least_privilege_service_account_signs_off(run_suite, service_account_kubeconfig, lab_env, kube):
    run = run_suite("--kubeconfig", str(service_account_kubeconfig), "--namespace", "seatrials")
    assert run.returncode == 0, run.output[-3000:]
    assert run.signoff["verdict"] == "SIGNED OFF" and not run.signoff["not_verified"].get("kubelet")
    # a permission taken away: only the checks that need it are not checked, in one line each
    role = json.loads(kubectl(lab_env, "get", "clusterrole", "seatrials-reader", "-o", "json"))
    role["rules"] = [r for r in role["rules"] if "nodes/proxy" not in r["resources"]]
    kubectl(lab_env, "replace", "-f", "-", input=json.dumps(role))
    run = run_suite("--kubeconfig", str(service_account_kubeconfig), "--namespace", "seatrials")
    assert run.returncode == 0, run.output[-3000:]  # lenient policy: allowed, and said
    kubelet = [c for c in run.signoff["checks"] if c["check"] == "test_kubelet_cgroups"]
    assert kubelet and all(c["outcome"] == "skipped" and "forbidden (needs get nodes/proxy)" in c["message"]
                           for c in kubelet), kubelet
    assert "Traceback" not in run.output
    strict = run_suite("--kubeconfig", str(service_account_kubeconfig), "--namespace", "seatrials",
                       "--require", "kubelet")
    assert strict.returncode == 1 and strict.signoff["verdict"] == "NOT SIGNED OFF"
    assert any(r.startswith("required area kubelet not checked") for r in strict.signoff["verdict_reasons"])

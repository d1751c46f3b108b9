"""In-cluster configuration against the lab, as inside a pod of manifests/nightly-cronjob.yaml: no kubeconfig,
a real token of the `seatrials` ServiceAccount (TokenRequest) and the lab's CA at the real path
/var/run/secrets/kubernetes.io/serviceaccount (a tmpfs over /run in a mount namespace of the test's own, so
nothing on the machine changes), KUBERNETES_SERVICE_HOST/PORT the `kubernetes` Service as the kubelet sets
them, and the process in worker-1's network namespace, so the ClusterIP is reached through that node's
kube-proxy as from a pod. The CronJob's own command runs, from the wheel's venv, twice: the second night is
compared with the first. What this does not prove (a real pod: the lab has no image with Python) is said in
docs/ci.md."""

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, lab, terminal_summary
from tests.e2e.test_suite_on_lab import RBAC, kubectl

pytestmark = pytest.mark.lab
CRONJOB = ROOT / "manifests" / "nightly-cronjob.yaml"
NODE_NETNS = "/run/netns/st-worker-1"  # lab/README: netns st-<node>
SERVICE_HOST, SERVICE_PORT = "10.32.0.1", "443"  # the `kubernetes` Service, as the kubelet gives pods
# The manifest requires network, kubelet and apiserver; on the lab's native shape network holds a case nothing can
# check (no CNI agent DaemonSet seatrials knows), so the lab's nights require kubelet.
LAB_REQUIRE = "kubelet"
# In worker-1's network namespace and a mount namespace of its own: the ServiceAccount where the kubelet
# mounts it, then the CronJob's command.
POD = """mount -t tmpfs -o size=1m,mode=0755 seatrials-pod /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$SA/token" "$SA/ca.crt" "$SA/namespace" /run/secrets/kubernetes.io/serviceaccount/
exec /bin/sh -c "$COMMAND"
"""


@pytest.fixture
def service_account(lab_env, tmp_path) -> Path:
    """manifests/rbac.yaml applied; a folder holding what the kubelet would mount for its ServiceAccount: a
    token from the TokenRequest API, the cluster's CA and the namespace. Removed afterwards."""
    kubectl(lab_env, "apply", "-f", str(RBAC))
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(kubectl(lab_env, "-n", "seatrials", "create", "token", "seatrials",
                                          "--duration=1h").strip())
    cluster = yaml.safe_load(Path(lab_env["KUBECONFIG"]).read_text())["clusters"][0]["cluster"]
    (folder / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (folder / "namespace").write_text("seatrials")
    yield folder
    kubectl(lab_env, "delete", "-f", str(RBAC), "--ignore-not-found", "--wait=true")


def cronjob_documents() -> tuple[list[dict], dict]:
    """The manifest's objects, and the CronJob's container in them (with the lab's policy)."""
    documents = list(yaml.safe_load_all(CRONJOB.read_text()))
    [job] = [d for d in documents if d["kind"] == "CronJob"]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    [require] = [e for e in container["env"] if e["name"] == "SEATRIALS_REQUIRE"]
    assert require["value"] == "network,kubelet,apiserver"
    require["value"] = LAB_REQUIRE
    return documents, container


def test_the_cronjob_is_accepted_by_the_apiserver_under_its_rbac(service_account, lab_env):
    said = kubectl(lab_env, "apply", "--dry-run=server", "-f", str(CRONJOB))
    assert "cronjob.batch/seatrials-nightly created (server dry run)" in said, said
    assert "persistentvolumeclaim/seatrials-reports created (server dry run)" in said, said


def test_the_cronjobs_command_signs_off_from_the_service_account_alone(service_account, wheel_venv, tmp_path):
    container = cronjob_documents()[1]
    assert container["command"] == ["/bin/sh", "-c"] and "--namespace seatrials" in container["args"][0]
    reports, home = tmp_path / "reports", tmp_path / "home"
    reports.mkdir()
    home.mkdir()  # the manifest's HOME is /tmp; here an empty folder, so that no kubeconfig can be found
    pod_env = {e["name"]: e["value"] for e in container["env"]} | {"REPORTS": str(reports), "HOME": str(home)}
    env = {"PATH": f"{wheel_venv}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **pod_env,
           "KUBERNETES_SERVICE_HOST": SERVICE_HOST, "KUBERNETES_SERVICE_PORT": SERVICE_PORT,
           "SA": str(service_account), "COMMAND": container["args"][0]}
    nights = []
    for _ in range(2):
        proc = subprocess.run(["nsenter", f"--net={NODE_NETNS}", "--", "unshare", "--mount", "--propagation",
                               "private", "--", "/bin/sh", "-ec", POD], env=env, capture_output=True, text=True,
                              timeout=600, cwd=home)  # as a pod's: no checkout of seatrials where it runs
        print(f"\n--- in-cluster night {len(nights) + 1}: exit {proc.returncode}\n{terminal_summary(proc.stdout)}")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        [folder] = sorted(reports.glob("night-*"))[len(nights):]
        nights.append(json.loads((folder / "signoff.json").read_text()))
    first, second = nights
    assert first["server"] == f"https://{SERVICE_HOST}:{SERVICE_PORT}" and first["context"] == "in-cluster"
    assert first["verdict"] == "SIGNED OFF" and first["required_areas"] == [LAB_REQUIRE]
    assert not first["not_verified"].get("kubelet")
    assert first["options"]["namespace"] == "seatrials" and first["baseline"]["runs"] == 0
    assert second["verdict"] == "SIGNED OFF" and second["baseline"]["latest"]["run_id"] == first["run_id"]
    assert not Path("/run/secrets/kubernetes.io/serviceaccount/token").exists()  # the machine's /run untouched


def job_outcome(lab_env, name: str, timeout: float = 600) -> str:
    """`succeeded` or `failed` when the Job has finished (backoffLimit 0: one pod)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(kubectl(lab_env, "-n", "seatrials", "get", "job", name, "-o", "json"))["status"]
        for outcome in ("succeeded", "failed"):
            if status.get(outcome):
                return outcome
        time.sleep(3)
    raise AssertionError(f"job {name} still running after {timeout:.0f}s")


@pytest.fixture
def reports_volume(service_account, lab_env, tmp_path):
    """The CronJob's claim bound to a folder of this machine (the lab has no storage provisioner), open to the
    pod's user (nobody: a hostPath volume ignores fsGroup)."""
    folder = tmp_path / "volume"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "seatrials-reports-lab"},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                       "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(folder)},
                       "claimRef": {"namespace": "seatrials", "name": "seatrials-reports"}}}
    kubectl(lab_env, "apply", "-f", "-", input=json.dumps(volume))
    yield folder
    kubectl(lab_env, "delete", "-f", str(CRONJOB), "--ignore-not-found", "--wait=true")
    kubectl(lab_env, "delete", "pv", "seatrials-reports-lab", "--ignore-not-found")


def test_the_cronjob_signs_off_from_a_pod_of_the_lab(reports_volume, wheel_venv, lab_env):
    """The manifest as written, in a real pod: its image is the wheel's venv on the machine's Python (the lab
    builds it: lab/lab python-image), its ServiceAccount the kubelet's mount, its reports on the claim."""
    documents, container = cronjob_documents()
    imported = lab("python-image", str(wheel_venv.parent), "--ref", f"docker.io/library/{container['image']}",
                   check=False)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    print(f"\n{imported.stdout.strip()}")
    kubectl(lab_env, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
    nights = []
    for n in (1, 2):
        kubectl(lab_env, "-n", "seatrials", "create", "job", "--from=cronjob/seatrials-nightly", f"night-{n}")
        outcome = job_outcome(lab_env, f"night-{n}")
        logs = kubectl(lab_env, "-n", "seatrials", "logs", f"job/night-{n}")
        print(f"\n--- pod night {n}: {outcome}\n{terminal_summary(logs)}")
        assert outcome == "succeeded", logs[-3000:]
        [folder] = sorted(reports_volume.glob("night-*"))[len(nights):]
        nights.append(json.loads((folder / "signoff.json").read_text()))
    first, second = nights
    assert first["context"] == "in-cluster" and first["verdict"] == "SIGNED OFF" and first["required_areas"] == [
        LAB_REQUIRE]
    assert first["server"] == f"https://{SERVICE_HOST}:{SERVICE_PORT}"
    assert second["verdict"] == "SIGNED OFF" and second["baseline"]["latest"]["run_id"] == first["run_id"]

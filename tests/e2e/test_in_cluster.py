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
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, terminal_summary
from tests.e2e.test_suite_on_lab import RBAC, kubectl

pytestmark = pytest.mark.lab
CRONJOB = ROOT / "manifests" / "nightly-cronjob.yaml"
NODE_NETNS = "/run/netns/st-worker-1"  # lab/README: netns st-<node>
SERVICE_HOST, SERVICE_PORT = "10.32.0.1", "443"  # the `kubernetes` Service, as the kubelet gives pods
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


def cronjob_container() -> dict:
    [job] = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d["kind"] == "CronJob"]
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_cronjob_is_accepted_by_the_apiserver_under_its_rbac(service_account, lab_env):
    said = kubectl(lab_env, "apply", "--dry-run=server", "-f", str(CRONJOB))
    assert "cronjob.batch/seatrials-nightly created (server dry run)" in said, said
    assert "persistentvolumeclaim/seatrials-reports created (server dry run)" in said, said


def test_the_cronjobs_command_signs_off_from_the_service_account_alone(service_account, wheel_venv, tmp_path):
    container = cronjob_container()
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
                              timeout=600)
        print(f"\n--- in-cluster night {len(nights) + 1}: exit {proc.returncode}\n{terminal_summary(proc.stdout)}")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        [folder] = sorted(reports.glob("night-*"))[len(nights):]
        nights.append(json.loads((folder / "signoff.json").read_text()))
    first, second = nights
    assert first["server"] == f"https://{SERVICE_HOST}:{SERVICE_PORT}" and first["context"] == "in-cluster"
    assert first["verdict"] == "SIGNED OFF" and first["required_areas"] == ["network", "kubelet", "apiserver"]
    assert not first["not_verified"].get("kubelet") and not first["not_verified"].get("apiserver")
    assert first["options"]["namespace"] == "seatrials" and first["baseline"]["runs"] == 0
    assert second["verdict"] == "SIGNED OFF" and second["baseline"]["latest"]["run_id"] == first["run_id"]
    assert not Path("/run/secrets/kubernetes.io/serviceaccount/token").exists()  # the machine's /run untouched

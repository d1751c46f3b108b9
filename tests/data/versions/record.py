"""Record, from the lab that is up, what the suite reads that may differ between Kubernetes minors,
into tests/data/versions/<gitVersion>/ (tests/test_version_differences.py feeds it to seatrials).

    eval "$(lab/lab env)"; python tests/data/versions/record.py     # root; the lab up, healthy

On a kubeadm lab it records what only that layout has into <gitVersion>/kubeadm/ (kubeadm_layout).

Every file is an answer of the apiserver as the suite gets it, verbatim; logs are gzipped and
cut to the tail the suite reads (seatrials.checks.kubelet.TAIL_LINES lines). It injects and heals
kubelet-cgroups (worker-1) and apiserver-requestheader-allowed-names to record the faulty
shapes too, and the kubelet's log once healed. Nothing secret is recorded (the ConfigMap
holds CA certificates only); a body with a private key or a bearer token is refused.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from seatrials.checks.kubelet import TAIL_LINES, tail
from seatrials.cluster import connect

ROOT = Path(__file__).resolve().parents[3]
NODE, MASTER = "worker-1", "master-1"
SECRETS = ("PRIVATE KEY", "Bearer ", "client-key-data", "token:")
AUTH_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
API = {  # file: (path, query)
    "version.json": ("/version", None),
    "nodes.json": ("/api/v1/nodes", None),
    "endpointslices.json": ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                            {"labelSelector": "kubernetes.io/service-name=kubernetes"}),
    "extension-apiserver-authentication.json": (AUTH_CONFIGMAP, None),
}


def write(directory: Path, name: str, body: str) -> None:
    if leaked := [s for s in SECRETS if s in body]:
        sys.exit(f"record: {name} holds {leaked[0]!r}; not recorded")
    if name.endswith(".gz"):
        (directory / name).write_bytes(gzip.compress(body.encode(), mtime=0))
    else:
        (directory / name).write_text(body)


def lab(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "lab" / "lab"), *args], check=True)


def kubelet_answers(cluster, directory: Path, state: str) -> None:
    """The node's configz, stats/summary, its log query's first answer and the log it leads to."""
    proxy = f"/api/v1/nodes/{NODE}/proxy"
    write(directory, f"configz{state}.json", cluster.get(f"{proxy}/configz"))
    write(directory, f"stats-summary{state}.json", cluster.get(f"{proxy}/stats/summary"))
    write(directory, f"kubelet-query{state}.txt",
          cluster.get(f"{proxy}/logs/", {"query": "kubelet", "tailLines": str(TAIL_LINES)}))
    write(directory, f"kubelet{state}.log.gz", log_tail(cluster, NODE, "kubelet"))


def log_tail(cluster, node: str, service: str) -> str:
    body = cluster.get(f"/api/v1/nodes/{node}/proxy/logs/", {"query": service})
    return "\n".join(tail(body)) + "\n"


KUBE_SYSTEM_PODS = "/api/v1/namespaces/kube-system/pods"
KUBEADM_CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"  # kubeadm-config among them: a kubeadm cluster


def kubeadm_layout(cluster, directory: Path) -> None:
    """A kubeadm lab (lab/lab up --layout kubeadm), into <release>/kubeadm/: kube-system's pods (the static pods'
    mirrors, kube-proxy's DaemonSet pods), the DaemonSets, the ConfigMap and the apiserver pod's log; then the same
    under apiserver-requestheader-allowed-names (the static pod's flags faulted) and kube-proxy-not-forwarding
    (worker-2's kube-proxy pod gone)."""
    directory.mkdir(exist_ok=True)
    apiserver_log = f"{KUBE_SYSTEM_PODS}/kube-apiserver-{MASTER}/log"
    for name, path in (("pods.json", KUBE_SYSTEM_PODS), ("daemonsets.json", "/apis/apps/v1/daemonsets"),
                       ("extension-apiserver-authentication.json", AUTH_CONFIGMAP)):
        write(directory, name, cluster.get(path))
    write(directory, "kube-apiserver.log.gz", "\n".join(tail(cluster.get(apiserver_log))) + "\n")
    lab("fault", "apiserver-requestheader-allowed-names")
    try:
        write(directory, "pods-faulted.json", cluster.get(KUBE_SYSTEM_PODS))
        write(directory, "extension-apiserver-authentication-faulted.json", cluster.get(AUTH_CONFIGMAP))
    finally:
        lab("heal", "--all")
    lab("fault", "kube-proxy-not-forwarding", "--node", "worker-2")
    try:
        write(directory, "pods-kube-proxy-faulted.json", cluster.get(KUBE_SYSTEM_PODS))
    finally:
        lab("heal", "kube-proxy-not-forwarding")


def main() -> None:
    cluster = connect(os.environ["KUBECONFIG"], None)
    version = json.loads(cluster.get("/version"))["gitVersion"]
    directory = Path(__file__).parent / version
    directory.mkdir(exist_ok=True)
    if '"kubeadm-config"' in cluster.get(KUBEADM_CONFIGMAPS, {"fieldSelector": "metadata.name=kubeadm-config"}):
        kubeadm_layout(cluster, directory / "kubeadm")
        print(f"record: {version} (kubeadm) in {directory / 'kubeadm'}")
        return
    for name, (path, query) in API.items():
        write(directory, name, cluster.get(path, query))
    kubelet_answers(cluster, directory, "")
    write(directory, "kube-apiserver.log.gz", log_tail(cluster, MASTER, "kube-apiserver"))

    lab("fault", "kubelet-cgroups", "--node", NODE)
    try:
        kubelet_answers(cluster, directory, "-faulted")
    finally:
        lab("heal", "kubelet-cgroups")
    # Healed: the errors logged before the kubelet's restart are still in its log.
    write(directory, "kubelet-healed.log.gz", log_tail(cluster, NODE, "kubelet"))
    lab("fault", "apiserver-requestheader-allowed-names")
    try:
        write(directory, "extension-apiserver-authentication-faulted.json", cluster.get(AUTH_CONFIGMAP))
        write(directory, "kube-apiserver-faulted.log.gz", log_tail(cluster, MASTER, "kube-apiserver"))
    finally:
        lab("heal", "apiserver-requestheader-allowed-names")
    print(f"record: {version} in {directory}: {', '.join(sorted(p.name for p in directory.iterdir()))}")


if __name__ == "__main__":
    main()

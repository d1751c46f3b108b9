"""Fake nodes for the scale bench: KWOK registers hundreds of nodes with the lab's real apiserver.

`lab/lab fake-nodes N` starts KWOK (sigs.k8s.io/kwok, `lab/build.sh --kwok`) inside master-1 and
creates N Node objects it manages (annotation kwok.x-k8s.io/node=fake): 3 of them labelled as
the fake cluster's masters, the others as its workers, each with an address of its own in
10.241.0.0/16 and a pod CIDR in 10.242.0.0/16. KWOK marks them Ready, keeps their leases, marks
the pods scheduled on them Running (pod IPs from their CIDRs) and serves their kubelet API on
every one of their addresses: master-1 takes all of 10.241.0.0/16 as local (the other masters
route it to master-1), so the apiservers' exec and logs requests reach KWOK. A fake node runs no
container: an exec into a pod there is answered by lab/kwok_standin.py (labelled; see there),
which KWOK runs as `sh` on its own host. `lab/lab fake-nodes 0` removes them and stops KWOK.

The suite is then pointed at the fake nodes alone with the selectors in SUITE_ARGS: the lab's
real nodes keep running (the control plane, CoreDNS) and are left out of the trial.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import cluster, namespaces, processes
from .layout import API_SERVICE_IP, BALANCER_PORT, DNS_SERVICE_IP, HOST_IP
from .pki import Pki, kubeconfig
from .shell import LabError, run, wait_for

FAKE_NODE_NET = ipaddress.ip_network("10.241.0.0/16")  # the fake nodes' addresses: local on master-1
FAKE_POD_NET = ipaddress.ip_network("10.242.0.0/16")  # their pods' addresses (KWOK's own, never routed)
POD_PREFIX = 26  # 64 pod IPs per fake node, 1024 nodes at most
KWOK_PORT = 10247  # the fake kubelets' port (the real kubelet on master-1 has 10250)
# A Lease in kube-node-lease renewed every quarter of this, as a kubelet does (its default): the node lifecycle
# controller goes by the lease, and KWOK's heartbeat stage writes node status only every 10 to 20 minutes.
# Without it, at 500 fake nodes the controller kept marking a few nodes' pods NotReady.
NODE_LEASE_SECONDS = 40
MAX_FAKE_NODES = 1000
FAKE_LABEL = "seatrials-lab/fake"  # master or worker: the fake cluster's roles (SUITE_ARGS)
MANAGED = "kwok.x-k8s.io/node"
SUITE_ARGS = ["--master-selector", f"{FAKE_LABEL}=master", "--worker-selector", f"{FAKE_LABEL}=worker"]
STANDIN = Path(__file__).resolve().parent.parent / "kwok_standin.py"


@dataclass(frozen=True)
class FakeNode:
    name: str
    role: str
    ip: str
    pod_cidr: str


def plan(count: int) -> list[FakeNode]:
    """3 masters (fewer for a smaller count) and the rest workers; addresses and pod CIDRs by index."""
    if not 0 <= count <= MAX_FAKE_NODES:
        raise LabError(f"fake nodes: between 0 and {MAX_FAKE_NODES}, not {count}")
    masters = min(3, count)
    pod_nets = FAKE_POD_NET.subnets(new_prefix=POD_PREFIX)
    nodes = []
    for i in range(count):
        role, k = ("master", i + 1) if i < masters else ("worker", i + 1 - masters)
        nodes.append(FakeNode(f"kwok-{role}-{k}", role, str(FAKE_NODE_NET[i + 1]), str(next(pod_nets))))
    return nodes


def node_object(fake: FakeNode) -> dict:
    """A Node KWOK manages; its address is set here (KWOK keeps an InternalIP it finds)."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": fake.name, "annotations": {MANAGED: "fake"},
                     "labels": {FAKE_LABEL: fake.role, "kubernetes.io/hostname": fake.name, "type": "kwok"}},
        "spec": {"podCIDR": fake.pod_cidr, "podCIDRs": [fake.pod_cidr],
                 "taints": [{"key": MANAGED, "value": "fake", "effect": "NoSchedule"}]},  # real pods stay off
        "status": {"addresses": [{"type": "InternalIP", "address": fake.ip},
                                 {"type": "Hostname", "address": fake.name}]},
    }


def standin_network(fakes: list[FakeNode], broken: list[str]) -> dict:
    """What the stand-in answers from: the fake nodes, the services, the nodes whose pod IPs are dropped."""
    return {"nodes": {f.name: {"ip": f.ip, "pod_cidr": f.pod_cidr} for f in fakes}, "broken": sorted(broken),
            "service_ip": API_SERVICE_IP, "dns": DNS_SERVICE_IP, "gateway": HOST_IP}


def cluster_exec() -> dict:
    """KWOK's exec rule for every fake pod: run the command on KWOK's host, where `sh` is the stand-in."""
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterExec", "metadata": {"name": "seatrials-standin"},
            "spec": {"execs": [{"local": {"workDir": "/"}}]}}


def pod_ready_again() -> dict:
    """A stage of KWOK's doing what a kubelet does: a Running pod whose Ready condition was set False by the node
    lifecycle controller (its node missed a heartbeat on this busy machine: NodeNotReady) is reported Ready again.
    KWOK's own pod-ready stage readies Pending pods only, so such a probe stayed Running and not Ready until the
    suite's --ready-timeout (observed at 100 and 500 fake nodes: 387 of 1006 probes, kube-controller-manager the
    last writer of their status)."""
    selector = [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status', "operator": "In",
                 "values": ["False"]}]
    status = ('conditions:\n- lastTransitionTime: {{ Now | Quote }}\n  status: "True"\n  type: Ready\n')
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "seatrials-pod-ready-again"},
            "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"}, "selector": {"matchExpressions": selector},
                     "delay": {"durationMilliseconds": 1000}, "next": {"statusTemplate": status}}}


def kwok_dir(lab: cluster.Lab) -> Path:
    return lab.paths.state / "kwok"


def _files(lab: cluster.Lab, fakes: list[FakeNode]) -> Path:
    """Certificate, kubeconfig, configuration (KWOK's stages, one of ours, the exec rule), stand-in; the dir."""
    where = kwok_dir(lab)
    (where / "bin").mkdir(parents=True, exist_ok=True)
    pki = Pki(lab.paths.pki)
    # the apiservers check a kubelet's serving certificate (--kubelet-certificate-authority): one for every address
    serving = pki.ca.issue("kwok-serving", "kwok", server=True, ips=tuple(f.ip for f in fakes))
    client = pki.ca.issue("kwok-controller", "system:kwok-controller", ("system:masters",), client=True)
    (where / "kubeconfig").write_text(kubeconfig(f"https://{HOST_IP}:{BALANCER_PORT}", pki.ca.pair, "kwok", client))
    stages = sorted((lab.binaries / "kwok-stages").glob("*.yaml"))
    documents = [p.read_text() for p in stages] + [json.dumps(pod_ready_again()), json.dumps(cluster_exec())]
    (where / "kwok.yaml").write_text("\n---\n".join(documents))
    (where / "serving.crt").write_bytes(serving.cert_pem)
    (where / "serving.key").write_bytes(serving.key_pem)
    (where / "network.json").write_text(json.dumps(standin_network(fakes, [])))
    standin = where / "bin" / "sh"
    if not standin.is_symlink():
        standin.symlink_to(STANDIN)
    return where


def _routes(lab: cluster.Lab, present: bool) -> None:
    """master-1 takes the fake nodes' addresses as its own; the other masters send them to master-1."""
    home = lab.masters[0]
    verb = "replace" if present else "del"
    for m in lab.masters:
        route = ["local", str(FAKE_NODE_NET), "dev", "lo"] if m == home else [str(FAKE_NODE_NET), "via", home.ip]
        run(namespaces.enter(lab.paths, m) + ["ip", "route", verb, *route], check=present)


def start(lab: cluster.Lab, count: int) -> list[FakeNode]:
    """KWOK up in master-1 and exactly `count` fake nodes registered and Ready (kept when they are already)."""
    binary = lab.binaries / "kwok"
    if not binary.exists():
        raise LabError(f"{binary} is not built: lab/build.sh --kwok (with the lab's --kubernetes) builds it")
    fakes = plan(count)
    if processes.pid_of(lab.paths, "kwok") is not None and sorted(fake_nodes(lab)) == sorted(f.name for f in fakes):
        return fakes
    stop(lab)
    if not fakes:
        return fakes
    where = _files(lab, fakes)
    _routes(lab, present=True)
    home = lab.masters[0]
    argv = [str(binary), f"--kubeconfig={where / 'kubeconfig'}", f"--config={where / 'kwok.yaml'}",
            f"--manage-nodes-with-annotation-selector={MANAGED}=fake", f"--node-port={KWOK_PORT}",
            f"--server-address=0.0.0.0:{KWOK_PORT}", f"--tls-cert-file={where / 'serving.crt'}",
            f"--tls-private-key-file={where / 'serving.key'}", f"--cidr={FAKE_POD_NET}",
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}"]
    processes.start(lab.paths, "kwok", argv, log=lab.paths.logs / "kwok.log", cgroup=home.system_cgroup,
                    enter=namespaces.enter(lab.paths, home),
                    env={"PATH": f"{where / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
                         "SEATRIALS_STANDIN_NETWORK": str(where / "network.json")})
    kubectl = lab.kubectl
    kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                    "items": [node_object(f) for f in fakes]}), timeout=300)
    wait_for(f"{count} fake nodes to be Ready", lambda: _ready(lab) >= count, timeout=120 + count / 2, interval=2)
    return fakes


def _ready(lab: cluster.Lab) -> int:
    """How many fake nodes are Ready."""
    try:
        items = lab.kubectl.json("get", "nodes", "-l", FAKE_LABEL)["items"]
    except LabError:
        return 0
    return sum(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
               for n in items)


def stop(lab: cluster.Lab) -> None:
    """No fake node left, KWOK stopped, the routes gone (a no-op when there were none)."""
    lab.kubectl("delete", "nodes", "-l", FAKE_LABEL, "--wait=false", "--ignore-not-found", timeout=300)
    if processes.pid_of(lab.paths, "kwok") is not None:
        processes.stop(lab.paths, "kwok")
    _routes(lab, present=False)


def break_pod_network(lab: cluster.Lab, broken: list[str]) -> None:
    """The stand-in drops the pod IPs of these fake nodes from now on (as the EC2 check would); [] heals."""
    path = kwok_dir(lab) / "network.json"
    network = json.loads(path.read_text())
    network["broken"] = sorted(broken)
    path.write_text(json.dumps(network))


def chosen(fakes: list[FakeNode], text: str) -> list[str]:
    """--break: all, none, or a comma list of fake nodes."""
    names = [f.name for f in fakes]
    picked = names if text == "all" else [] if text == "none" else text.split(",")
    if unknown := sorted(set(picked) - set(names)):
        raise LabError(f"--break names no fake node: {', '.join(unknown)}")
    return picked


def fake_nodes(lab: cluster.Lab) -> list[str]:
    return [n["metadata"]["name"] for n in lab.kubectl.json("get", "nodes", "-l", FAKE_LABEL)["items"]]


def describe(fakes: list[FakeNode]) -> str:
    if not fakes:
        return "no fake nodes (KWOK stopped)"
    masters = sum(f.role == "master" for f in fakes)
    return (f"{len(fakes)} fake nodes ({masters} masters, {len(fakes) - masters} workers) Ready, served by KWOK in "
            f"master-1; run the suite on them with: {subprocess.list2cmdline(SUITE_ARGS)}")

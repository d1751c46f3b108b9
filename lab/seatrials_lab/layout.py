"""Where everything in the lab lives: nodes and their addresses, ports, directories.

The addresses follow the field report's cluster ("Kubernetes the hard way"), so what
users read in the causes is what the lab shows.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

VPC_CIDR = "10.240.0.0/16"
NODE_SUBNET = "10.240.0.0/24"  # the masters' subnet, and every node's in the default shape
HOST_IP = "10.240.0.1"  # the machine's end of the lab veth; the load balancer also listens here for nodes
SERVICE_CIDR = "10.32.0.0/24"
API_SERVICE_IP = "10.32.0.1"
DNS_SERVICE_IP = "10.32.0.10"
POD_CIDR = "10.200.0.0/16"
CLUSTER_DOMAIN = "cluster.local"

APISERVER_PORT = 6444
BALANCER_PORT = 6443
KUBELET_PORT = 10250
MOTO_PORT = 15000
REGISTRY_PORT = 15001
HARBOR_PORT = 15002
UNREACHABLE_PORT = 15009  # nothing listens here: the harbor-k8s-deploy-stale-ui fault sends notifications to it

REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b")  # subnet i lies in ZONES[i % 2]: the workers' subnets span both
AWS_KEY = "testing"  # moto accepts any credentials; these are its documented dummies
HARBOR_USER = "admin"
HARBOR_PASSWORD = "Harbor12345"  # Harbor's documented default; the double is lab-only
HARBOR_PROJECT = "library"

# Kernel objects the lab creates in the machine's namespace are named with these,
# so `down` can find them even when a crashed `up` left no record.
NETNS_PREFIX = "st-"
VPC_NETNS = "st-vpc"
VPC_BRIDGE = "vpc0"
HOST_VETH = "st-lab"  # machine side of the lab veth (10.240.0.1/24)
HOST_PORT = "p-host"  # its peer, a port on the VPC bridge
CGROUP = "seatrials-lab"  # top cgroup of every lab process, in every hierarchy
HOST_CGROUP = f"{CGROUP}/host/system.slice"  # moto, registry, Harbor double, load balancer
# The login-session cgroup of the field report's kubelet (the kubelet-cgroups fault starts a kubelet there).
SESSION_CGROUP = "user/9999.user/16.session"

MASTER_FIRST_IP = 11
WORKER_FIRST_IP = 21
MAX_WORKERS = 12
MAX_SUBNETS = 4
# How pods reach each other between nodes: native routing over the VPC (bridge CNI and static routes, the
# default), or flannel with the Kubernetes subnet manager and one of its two backends.
CNIS = ("native", "flannel-vxlan", "flannel-host-gw")
FLANNEL_VXLAN_PORT = 8472  # flannel's VXLAN port on Linux (not IANA's 4789)
# How the cluster is laid out: the field report's plain processes per node ("the hard way", the default), or
# kubeadm's static pods, kube-proxy DaemonSet and CoreDNS Deployment (kubeadm.py).
LAYOUTS = ("hard-way", "kubeadm")


def flannel_backend(cni: str) -> str | None:
    """flannel's Backend.Type ("vxlan", "host-gw") of a flannel shape; None for the native one."""
    return cni.removeprefix("flannel-") if cni.startswith("flannel-") else None


def pod_ips_between_nodes(cni: str) -> bool:
    """Whether pod IPs travel unencapsulated between nodes (so the VPC must route them, and the
    source/destination check drops them), as with native routing and host-gw; VXLAN carries them
    inside node-to-node UDP."""
    return cni != "flannel-vxlan"


def subnet_cidr(index: int) -> str:
    """Subnet i of the VPC: 10.240.i.0/24 (subnet 0 is the masters', and every node's with one subnet)."""
    return f"10.240.{index}.0/24"


def subnet_zone(index: int) -> str:
    return ZONES[index % len(ZONES)]


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "master" or "worker"
    ip: str
    subnet: int = 0  # index of its VPC subnet (subnet_cidr, subnet_zone)

    @property
    def zone(self) -> str:
        return subnet_zone(self.subnet)

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def pod_cidr(self) -> str:
        """One /24 of 10.200.0.0/16 per node, numbered like the node IP: 10.240.0.21 -> 10.200.21.0/24."""
        return f"10.200.{self.ip.rsplit('.', 1)[1]}.0/24"

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}"

    @property
    def port(self) -> str:
        """Its port on the VPC bridge (the other end of its eth0)."""
        return f"p-{self.name}"

    @property
    def cgroup(self) -> str:
        """The kubelet's cgroupRoot: pods go below it, kubepods/..."""
        return f"{CGROUP}/{self.name}"

    @property
    def system_cgroup(self) -> str:
        """Where the node's daemons run (like systemd's system.slice): kubeletCgroups and runtimeCgroups."""
        return f"{self.cgroup}/system.slice"


def plan(masters: int, workers: int, subnets: int = 1) -> list[Node]:
    """The nodes: masters in subnet 0; with several subnets the workers go round the others.

    A node's last address byte is the same in every shape (worker-2 is .22 in 10.240.0.0/24 or in
    10.240.2.0/24), so pod CIDRs, numbered like it, never collide."""
    if masters not in (1, 3):
        raise ValueError("--masters must be 1 or 3")
    if not 0 <= workers <= MAX_WORKERS:
        raise ValueError(f"--workers must be between 0 and {MAX_WORKERS}")
    if not 1 <= subnets <= MAX_SUBNETS:
        raise ValueError(f"--subnets must be between 1 and {MAX_SUBNETS}")
    if subnets > 1 and workers < subnets - 1:
        raise ValueError(f"--subnets {subnets} needs at least {subnets - 1} workers (the masters get one subnet)")
    nodes = [_node(f"master-{i}", "master", 0, MASTER_FIRST_IP - 1 + i) for i in range(1, masters + 1)]
    for i in range(1, workers + 1):
        subnet = 1 + (i - 1) % (subnets - 1) if subnets > 1 else 0
        nodes.append(_node(f"worker-{i}", "worker", subnet, WORKER_FIRST_IP - 1 + i))
    return nodes


def _node(name: str, role: str, subnet: int, host: int) -> Node:
    return Node(name, role, str(ipaddress.ip_network(subnet_cidr(subnet))[host]), subnet)


@dataclass(frozen=True)
class Paths:
    state: Path  # data that outlives a process: PKI, node disks, registry storage
    run: Path  # runtime: pid files, namespace files, sockets
    cache: Path  # built binaries and images, shared with lab/build.sh
    lab: Path  # the lab/ directory of the checkout

    @classmethod
    def from_env(cls) -> Paths:
        lab = Path(__file__).resolve().parent.parent
        return cls(
            state=Path(os.environ.get("SEATRIALS_LAB_STATE", "/var/lib/seatrials-lab")),
            run=Path(os.environ.get("SEATRIALS_LAB_RUN", "/run/seatrials-lab")),
            cache=Path(os.environ.get("SEATRIALS_LAB_CACHE", Path.home() / ".cache" / "seatrials-lab")),
            lab=lab,
        )

    @property
    def record(self) -> Path:
        """What `up` created, written before it creates it, so `down` can undo a partial `up`."""
        return self.run / "lab.json"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def lab_kubeconfig(self) -> Path:
        """The lab's own copy of the admin credentials: faults change admin.kubeconfig, never this one."""
        return self.state / "lab.kubeconfig"

    @property
    def faults(self) -> Path:
        """The faults injected now, and what each changed (lab/lab fault, heal, status)."""
        return self.state / "faults.json"

    @property
    def logs(self) -> Path:
        """Logs of the services in the machine's namespace (node logs are in each node's /var/log)."""
        return self.state / "logs"

    @property
    def registry(self) -> Path:
        return self.state / "registry"

    @property
    def namespaces(self) -> Path:
        """Files holding each node's mount and UTS namespace open."""
        return self.run / "ns"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    def node_disk(self, node: Node) -> Path:
        return self.state / "nodes" / node.name

    def node_run(self, node: Node) -> Path:
        return self.run / "nodes" / node.name

    def node_log(self, node: Node, component: str) -> Path:
        """The file a node's component logs to: /var/log/<component>.log inside the node."""
        return self.node_disk(node) / "log" / f"{component}.log"

    def node_etc(self, node: Node) -> Path:
        """The node's private /etc/kubernetes."""
        return self.node_disk(node) / "etc-kubernetes"

"""The lab's network: a "VPC" bridge in its own namespace, one network namespace per node.

    machine ns: st-lab 10.240.0.1/24 ---- p-host ┐
                                                  ├ vpc0 (bridge, in netns st-vpc; the VPC filter lives here)
    netns st-<node>: eth0 10.240.0.x/24 -- p-<node> ┘

The machine gets exactly one route (the connected 10.240.0.0/24 of st-lab; the VPC's
10.240.0.0/16 when the nodes span several subnets). Nodes have no default route, so nothing
leaves the lab; with native routing each node routes every other node's pod /24 to that
node's IP (like Calico without an overlay; flannel sets up its own), and the service CIDR to
eth0 so host-network processes can reach ClusterIPs. With several subnets a node's eth0
carries its subnet's /24 and the VPC's /16 is on-link: the VPC's router is the bridge, whose
filter applies the route tables and network ACLs between subnets (vpc_filter).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .layout import (
    HOST_IP,
    HOST_PORT,
    HOST_VETH,
    NETNS_PREFIX,
    NODE_SUBNET,
    POD_CIDR,
    SERVICE_CIDR,
    VPC_BRIDGE,
    VPC_CIDR,
    VPC_NETNS,
    Node,
)
from .shell import LabError, run

NETNS_DIR = Path("/run/netns")
PREFIX_LENGTH = NODE_SUBNET.split("/")[1]

NODE_DEVICES = ("flannel.", "cni0")  # made inside a node only
NODE_CHAINS = ("FLANNEL", "KUBE-", "LAB-", "CNI-")  # chains of flannel, kube-proxy, the lab, the CNI plugins

NODE_SYSCTLS = [
    "net.ipv4.ip_forward=1",  # nodes route pod traffic
    "net.ipv4.conf.all.rp_filter=2",  # loose: replies may come back on another interface
    "net.ipv4.conf.default.rp_filter=2",
    "net.bridge.bridge-nf-call-iptables=1",  # kube-proxy must see traffic between pods on cni0
]


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def in_netns(name: str, argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={netns_path(name)}", *argv]


def lab_netns() -> list[str]:
    """Network namespaces the lab created (by their prefix, so a crashed `up` is found too)."""
    return sorted(p.name for p in NETNS_DIR.glob(f"{NETNS_PREFIX}*")) if NETNS_DIR.is_dir() else []


def create_vpc(subnets: int) -> None:
    """The VPC bridge in its own namespace, and the machine's veth into it (on the VPC's /16 when the
    nodes span several subnets, so that the machine answers every node through it)."""
    run(["ip", "netns", "add", VPC_NETNS])
    vpc = ["ip", "-n", VPC_NETNS]
    run([*vpc, "link", "set", "lo", "up"])
    run([*vpc, "link", "add", VPC_BRIDGE, "type", "bridge"])
    run([*vpc, "link", "set", VPC_BRIDGE, "up"])
    # br_netfilter per namespace: the VPC filter (iptables FORWARD + physdev) sees bridged frames.
    run(in_netns(VPC_NETNS, ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"]))
    run(["ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", HOST_PORT, "netns", VPC_NETNS])
    # No IPv6 link-local address on the machine's side: it would add an fe80::/64 route there.
    run(["ip", "link", "set", HOST_VETH, "addrgenmode", "none"])
    run([*vpc, "link", "set", HOST_PORT, "master", VPC_BRIDGE, "up"])
    prefix = PREFIX_LENGTH if subnets == 1 else VPC_CIDR.split("/")[1]
    run(["ip", "addr", "add", f"{HOST_IP}/{prefix}", "dev", HOST_VETH])
    run(["ip", "link", "set", HOST_VETH, "up"])


def create_node(node: Node, nodes: list[Node], static_routes: bool) -> None:
    """The node's namespace, its eth0 on the VPC bridge, its routes, sysctls and, with static routes,
    the routes to the other nodes' pods and the pod NAT (flannel brings its own routes and NAT)."""
    run(["ip", "netns", "add", node.netns])
    run(["ip", "-n", VPC_NETNS, "link", "add", node.port, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
    run(["ip", "-n", VPC_NETNS, "link", "set", node.port, "master", VPC_BRIDGE, "up"])
    inside = ["ip", "-n", node.netns]
    run([*inside, "link", "set", "lo", "up"])
    # IPv4 only, as the VPC: an IPv6 link-local address would let nodes talk past the VPC filter.
    run([*inside, "link", "set", "eth0", "addrgenmode", "none"])
    run([*inside, "addr", "add", f"{node.ip}/{PREFIX_LENGTH}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    if len({n.subnet for n in nodes}) > 1:
        run([*inside, "route", "add", VPC_CIDR, "dev", "eth0"])  # the VPC's `local` route
    for other in nodes if static_routes else []:
        if other != node:
            run([*inside, "route", "add", other.pod_cidr, "via", other.ip, "dev", "eth0"])
    run([*inside, "route", "add", SERVICE_CIDR, "dev", "eth0"])
    run(in_netns(node.netns, ["sysctl", "-q", "-w", *NODE_SYSCTLS]))
    if static_routes:
        run(in_netns(node.netns, ["iptables-restore", "--noflush"]), input=pod_nat_rules(node))


def pod_route(node: Node, to: Node, present: bool) -> None:
    """Add or remove `node`'s route to `to`'s pod CIDR (native routing: via `to`'s IP)."""
    if has_pod_route(node, to) != present:
        run(["ip", "-n", node.netns, "route", "add" if present else "del", to.pod_cidr, "via", to.ip, "dev", "eth0"])


def has_pod_route(node: Node, to: Node) -> bool:
    return bool(run(["ip", "-n", node.netns, "route", "show", to.pod_cidr]).strip())


def pod_nat_rules(node: Node) -> str:
    """Pod traffic to anything but another pod leaves with the node's IP (like Calico's natOutgoing).

    So pod -> node IP and pod -> apiserver look like the node to the VPC, while pod -> pod keeps pod IPs.
    """
    return "\n".join(
        [
            "*nat",
            ":LAB-NAT-OUTGOING - [0:0]",
            "-A POSTROUTING -j LAB-NAT-OUTGOING",
            f"-A LAB-NAT-OUTGOING -s {node.pod_cidr} ! -d {POD_CIDR} -j MASQUERADE",
            "COMMIT",
            "",
        ]
    )


def remove() -> None:
    """Delete every lab namespace (their veths and bridges go with them) and the machine's lab veth."""
    for name in lab_netns():
        run(["ip", "netns", "delete", name])
    if Path(f"/sys/class/net/{HOST_VETH}").exists():
        with contextlib.suppress(LabError):  # already gone with its peer's namespace
            run(["ip", "link", "delete", HOST_VETH])


def links_in_machine() -> list[str]:
    """Lab interfaces left in the machine's namespace (for the leftover check): its veth, and any of
    the devices a node's CNI makes (flannel's VXLAN device, the pods' bridge) had one escaped its node."""
    text = run(["ip", "-o", "link", "show"])
    names = [line.split(":")[1].strip().split("@")[0] for line in text.splitlines()]
    return [name for name in names if name == HOST_VETH or name.startswith(NODE_DEVICES)]


def rules_in_machine() -> list[str]:
    """iptables rules of a lab component in the machine's namespace (the lab never writes any there)."""
    text = run(["iptables-save"])
    return [line for line in text.splitlines() if line.startswith("-A") and any(c in line for c in NODE_CHAINS)]


def routes_in_machine() -> list[str]:
    text = run(["ip", "route", "show"])
    return [
        line for line in text.splitlines() if HOST_VETH in line or line.startswith(("10.240.", "10.200.", "10.32."))
    ]

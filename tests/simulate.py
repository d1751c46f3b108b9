"""A small network simulator for unit tests of the diagnosis: it produces the
probe results a cluster with a given fault would produce, following the same
packet rules the lab enforces for real (lab/README.md). Only the diagnosis'
unit tests use it; the lab proves the same scenarios end to end."""

from seatrials.network import KINDS, ProbeResult

MASTERS = ["master-1"]
WORKERS = ["worker-1", "worker-2"]


def roles(masters=MASTERS, workers=WORKERS):
    return {**{m: "master" for m in masters}, **{w: "worker" for w in workers}}


def results(blocked, masters=MASTERS, workers=WORKERS, endpoints=("10.240.0.11:6444",), dns_nodes=("worker-1",),
            service="10.32.0.1:443"):
    """Every probe result of a 2N-exec trial; `blocked(kind, src, dst)` says what the fault drops."""
    nodes = [*masters, *workers]
    out = []

    def add(kind, src, dst, address="x"):
        ok = not blocked(kind, src, dst)
        out.append(ProbeResult(kind, src, dst, address, "ok" if ok else "timeout", "" if ok else "nc: timed out",
                               1 if ok else 3))

    for s in nodes:
        for d in nodes:
            for kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip"):
                add(kind, s, d)
            if s != d:
                add("host-to-host", s, d)
                add("pod-to-node", s, d)
        add("pod-to-service", s, service)
        for ep in endpoints:
            add("pod-to-apiserver", s, ep)
        add("dns", s, "kubernetes.default")
    assert {r.kind for r in out} <= set(KINDS)
    return out


def healthy(kind, src, dst):
    return False


def source_dest_check(nodes_with_check, dns_nodes=("worker-1",)):
    """Pod-IP packets to or from a pod on a node with the check on are dropped at that node."""
    def blocked(kind, src, dst):
        if kind in ("pod-to-pod", "pod-to-pod-icmp"):
            return src != dst and (src in nodes_with_check or dst in nodes_with_check)
        if kind in ("host-to-pod", "external-ip"):
            return src != dst and dst in nodes_with_check
        if kind == "dns":  # pod -> DNS pod IP, not masqueraded
            return any(src != d and (src in nodes_with_check or d in nodes_with_check) for d in dns_nodes)
        return False
    return blocked


def master_inbound(roles_):
    """Workers -> masters dropped except the apiserver port (explicitly opened)."""
    def blocked(kind, src, dst):
        inbound = roles_.get(src) == "worker" and roles_.get(dst) == "master"
        return inbound and kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip", "host-to-host",
                                    "pod-to-node")
    return blocked


def apiserver_port(roles_):
    def blocked(kind, src, dst):
        return roles_.get(src) == "worker" and kind in ("pod-to-apiserver", "pod-to-service")
    return blocked


def kube_proxy_broken_on(node):
    def blocked(kind, src, dst):
        return kind == "pod-to-service" and src == node
    return blocked

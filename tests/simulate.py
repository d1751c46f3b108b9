"""A small network simulator for unit tests of the diagnosis: it produces the
probe results a cluster with a given fault would produce, following the same
packet rules the lab enforces for real (lab/README.md). Only the diagnosis'
unit tests use it; the lab proves the same scenarios end to end."""

from seatrials.network.evidence import Evidence, parse_routes
from seatrials.network.paths import KINDS, ProbeResult

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


def master_inbound_over_tunnel(roles_):
    """The masters' group refuses the workers' tunnel packets (VXLAN): a pod-IP packet from a worker to a
    master is lost whatever it is, a request or a reply (a host speaks to other nodes' pods from its tunnel
    device's address, a pod-CIDR one); node IPs are not tunnelled and still answer."""
    def blocked(kind, src, dst):
        between = {roles_.get(src), roles_.get(dst)} == {"master", "worker"}
        return kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip") and between
    return blocked


def across_subnets(subnet_of, dns_nodes=("worker-1",)):
    """No VPC route for pod CIDRs between subnets: pod-IP packets between nodes of different subnets are lost
    (pod -> pod both ways, for the reply; host -> pod towards them), node IPs answer."""
    def blocked(kind, src, dst):
        if kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip"):
            return subnet_of[src] != subnet_of[dst]
        if kind == "dns":
            return any(subnet_of[src] != subnet_of[d] for d in dns_nodes)
        return False
    return blocked


def node_cut_off(node, dns_nodes=("worker-1",)):
    """The node's CNI agent is gone and its tunnel and routes with it: no pod-IP packet leaves or reaches it,
    and its host reaches no other node's pod either."""
    def blocked(kind, src, dst):
        if kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip"):
            return src != dst and node in (src, dst)
        if kind == "dns":
            return any(src != d and node in (src, d) for d in dns_nodes)
        return False
    return blocked


def own_routes_gone(node, dns_nodes=("worker-1",)):
    """The node lost its own routes to the other nodes' pods (its host-gw agent gone, say): whatever it sends
    to another node's pod, from its host or a pod, has no way there; its pods still receive, and answer
    other nodes' hosts (node IPs need no pod route)."""
    def blocked(kind, src, dst):
        if kind in ("pod-to-pod", "pod-to-pod-icmp"):
            return src != dst and node in (src, dst)
        if kind in ("host-to-pod", "external-ip"):
            return src == node != dst
        if kind == "dns":
            return any(src != d and node in (src, d) for d in dns_nodes)
        return False
    return blocked


def apiserver_port(roles_):
    def blocked(kind, src, dst):
        return roles_.get(src) == "worker" and kind in ("pod-to-apiserver", "pod-to-service")
    return blocked


def kube_proxy_broken_on(node):
    """No service forwarding on the node: its ClusterIPs, externalIPs and the DNS ClusterIP from it fail."""
    def blocked(kind, src, dst):
        return kind in ("pod-to-service", "external-ip", "dns") and src == node
    return blocked


# ---------------------------------------------------------------- the evidence such a cluster shows
IPS = {**{f"master-{i}": f"10.240.0.{10 + i}" for i in range(1, 4)},
       **{f"worker-{i}": f"10.240.0.{20 + i}" for i in range(1, 10)}}


def pod_cidr(node: str) -> str:
    return f"10.200.{IPS[node].rsplit('.', 1)[1]}.0/24"


def routes(node: str, nodes, missing=(), tunnel: str | None = None) -> list:
    """A node's routing table as `ip -4 route` prints it: each other node's pod /24 via that node (native),
    or through `tunnel` (an overlay's device); `missing` names the nodes whose pod route is not there."""
    lines = [f"10.240.0.0/24 dev eth0 scope link src {IPS[node]}", f"{pod_cidr(node)} dev cni0 scope link"]
    for other in nodes:
        if other not in (node, *missing):
            way = f"via {pod_cidr(other).split('/')[0]} dev {tunnel} onlink" if tunnel else f"via {IPS[other]} dev eth0"
            lines.append(f"{pod_cidr(other)} {way}")
    return parse_routes("\t".join(lines))


def evidence(masters=MASTERS, workers=WORKERS, *, routes_missing=None, tunnel=None, aws=None, read_routes=True,
             **fields) -> Evidence:
    """The evidence of a native-routed EC2 cluster; `routes_missing` maps a node to the nodes it lacks pod
    routes to; `aws` is aws.facts (None: AWS not read)."""
    nodes = [*masters, *workers]
    return Evidence(
        roles=roles(masters, workers), node_ips={n: IPS[n] for n in nodes}, pod_cidrs={n: [pod_cidr(n)] for n in nodes},
        on_ec2=True, dns_nodes=fields.pop("dns_nodes", ["worker-1"]),
        routes={n: routes(n, nodes, (routes_missing or {}).get(n, ()), tunnel) for n in nodes} if read_routes else {},
        kube_proxy=fields.pop("kube_proxy", {n: "" for n in nodes}), aws=aws or {"read": False, "why": "no creds"},
        **fields)


def aws_facts(nodes, check_on=(), findings=(), subnets=None) -> dict:
    """aws.facts as EC2 would answer: the source/destination check on at `check_on`, the findings of the
    security-group, ACL and route-table checks, and each node's subnet (one for all by default)."""
    return {"read": True, "findings": [{"cause": c, "subject": s, "detail": d} for c, s, d in findings],
            "source_dest": {n: {"on": n in check_on, "where": f"instance i-{n} sourceDestCheck: {n in check_on}"}
                            for n in nodes},
            "subnets": subnets or {n: "subnet-a" for n in nodes}}

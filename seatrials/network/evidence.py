"""What the run knows beyond the probe matrix, so that a cause is named only on its own evidence.

Read once per run, next to the measurement: each node's IPv4 routes and its
kube-proxy's /healthz (both from the node's host-network probe, which shares the
node's network namespace), the cluster DNS service's ready endpoints, the
NetworkPolicies that select the probes, the CNI agent and kube-proxy's pod (where
kube-proxy is a DaemonSet, as kubeadm runs it) on each node, and what
EC2 says (aws.facts). Everything here is pure: parsing and matching.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass, field
from functools import cache, cached_property

from kubernetes.client.rest import ApiException

from seatrials.cluster import api_error_line

DEFAULT = ipaddress.ip_network("0.0.0.0/0")
ROUTE = re.compile(r"^(?P<prefix>default|\d+\.\d+\.\d+\.\d+(?:/\d+)?)(?P<rest>.*)$")


@dataclass(frozen=True, slots=True)  # a quarter of a million of them at 500 nodes: no __dict__ each
class Route:
    prefix: ipaddress.IPv4Network
    via: str | None
    dev: str | None

    def line(self) -> str:
        return f"{self.prefix}" + (f" via {self.via}" if self.via else "") + (f" dev {self.dev}" if self.dev else "")


class Routes(list):
    """A node's routes, with its prefixes indexed: a diagnosis looks a route up for every pair of nodes."""

    @cached_property
    def by_prefix(self) -> dict:
        """By the prefix's text: a string's hash is computed once, an IPv4Network's on every lookup (N² of them)."""
        return {str(r.prefix): r for r in self}


@cache
def network(cidr: str) -> ipaddress.IPv4Network:
    """A CIDR parsed once: every node's pod CIDR is looked up from every other node."""
    return ipaddress.ip_network(cidr, strict=False)


@cache
def canonical(cidr: str) -> str:
    return str(network(cidr))


def parse_routes(text: str) -> Routes:
    """`ip -4 route` output (busybox or iproute2), one route a line; unparsable lines are skipped."""
    routes, by_prefix = Routes(), {}
    for line in text.replace("\t", "\n").splitlines():
        m = ROUTE.match(line.strip())
        if not m:
            continue
        default = m["prefix"] == "default"
        prefix = DEFAULT if default else network(m["prefix"])
        words = m["rest"].split()
        via = words[words.index("via") + 1] if "via" in words[:-1] else None
        dev = words[words.index("dev") + 1] if "dev" in words[:-1] else None
        # interned: every node's table names the same gateways and devices
        routes.append(Route(prefix, via and sys.intern(via), dev and sys.intern(dev)))
        by_prefix[str(DEFAULT) if default else canonical(m["prefix"])] = routes[-1]
    routes.by_prefix = by_prefix  # from the texts as read (cached): the same prefixes recur in every node's table
    return routes


def route_to(routes: list[Route], cidr: str) -> Route | None:
    """The most specific route covering the whole of `cidr`, a default route excluded: where the node sends
    packets for those pods when it knows of them (a default route leads to the VPC router, which drops
    pod IPs it has no route for)."""
    net = network(cidr)
    if isinstance(routes, Routes) and (exact := routes.by_prefix.get(canonical(cidr))):  # nothing is more specific
        return exact
    covering = [r for r in routes if r.prefix != DEFAULT and net.subnet_of(r.prefix)]
    return max(covering, key=lambda r: r.prefix.prefixlen, default=None)


def pod_routing(routes_by_node: dict[str, list[Route]], pod_cidrs: dict[str, list[str]],
                node_ips: dict[str, str]) -> str:
    """How pod IPs travel between nodes, as the routes show it: native (another node's pod CIDR via that
    node's IP), encapsulated (via a tunnel device), or unknown (no per-node pod routes seen)."""
    ways = set()
    for node, routes in routes_by_node.items():
        for other, cidrs in pod_cidrs.items():
            for cidr in cidrs if other != node else []:
                route = route_to(routes, cidr)
                if route is not None:
                    ways.add("native" if route.via == node_ips.get(other) else "encapsulated")
    return ways.pop() if len(ways) == 1 else "unknown"


# ---------------------------------------------------------------- NetworkPolicies over the probes
def selects(selector: dict | None, labels: dict) -> bool:
    """A label selector as Kubernetes evaluates it; an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) \
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def policies_over(policies: list[dict], labels: dict) -> list[str]:
    """The NetworkPolicies (as dicts) of the probes' namespace that select pods with these labels."""
    found = []
    for p in policies:
        spec = p.get("spec") or {}
        if selects(spec.get("podSelector"), labels):
            types = spec.get("policyTypes") or ["Ingress"]
            found.append(f"NetworkPolicy {p['metadata']['namespace']}/{p['metadata']['name']} "
                         f"({', '.join(t.lower() for t in types)})")
    return found


@dataclass
class Evidence:
    """Everything a pattern may weigh; a field left empty was not read (and is said so)."""

    roles: dict[str, str]
    node_ips: dict[str, str] = field(default_factory=dict)
    pod_cidrs: dict[str, list[str]] = field(default_factory=dict)
    on_ec2: bool = False
    dns_nodes: list[str] = field(default_factory=list)
    dns_ready: int | None = None  # ready endpoints of kube-system/kube-dns; None when not read
    routes: dict[str, list[Route]] = field(default_factory=dict)
    kube_proxy: dict[str, str] = field(default_factory=dict)  # node -> "" healthy, else what /healthz said
    policies: list[str] = field(default_factory=list)
    cni: str = "other"
    cni_agents: dict[str, str] = field(default_factory=dict)  # node -> "" running, else why not
    kube_proxy_pods: dict[str, str] = field(default_factory=dict)  # likewise kube-proxy's DaemonSet; {}: none
    aws: dict = field(default_factory=dict)  # aws.facts; {} when AWS was not read
    unready: dict[str, str] = field(default_factory=dict)  # NotReady node -> what its status says

    @cached_property
    def routing(self) -> str:
        return pod_routing(self.routes, self.pod_cidrs, self.node_ips)

    @property
    def aws_read(self) -> bool:
        return bool(self.aws.get("read"))


def kube_proxy_pod_lines(pod: str | None, node: str) -> list[str]:
    """What kube-proxy's DaemonSet says of its pod on the node, when it is not ready there."""
    return [f"kube-proxy DaemonSet on {node}: {pod}"] if pod else []


# ---------------------------------------------------------------- read from the API, once per run
def read_dns_ready(cluster) -> int | None:
    """Ready endpoints of kube-system/kube-dns (EndpointSlices); None when they cannot be read."""
    try:
        slices = cluster.discovery.list_namespaced_endpoint_slice(
            "kube-system", label_selector="kubernetes.io/service-name=kube-dns").items
    except ApiException:
        return None
    return sum(1 for s in slices for ep in s.endpoints or [] if not (ep.conditions and ep.conditions.ready is False))


def read_policies(cluster, namespace: str, labels: dict) -> tuple[list[str], str]:
    """NetworkPolicies of the probes' namespace that select the pod-network probes (host-network pods are
    outside NetworkPolicy), and why they could not be read if they could not."""
    try:
        items = cluster.networking.list_namespaced_network_policy(namespace).items
    except ApiException as exc:
        return [], f"NetworkPolicies of {namespace}: {api_error_line(exc)}"
    return policies_over([cluster.api.sanitize_for_serialization(p) for p in items], labels), ""


def read_daemonset_pods(cluster, agent: dict | None, nodes: list[str]) -> dict[str, str]:
    """A DaemonSet's pod on each node (the CNI's agent, kube-proxy's): "" when ready, else why not; {} when no
    such DaemonSet runs or its pods cannot be read."""
    if not agent:
        return {}
    selector = ",".join(f"{k}={v}" for k, v in agent["selector"].items())
    try:
        pods = cluster.core.list_namespaced_pod(agent["namespace"], label_selector=selector).items
    except ApiException:
        return {}
    found = {n: f"no {agent['name']} pod on it" for n in nodes}
    for pod in pods:
        if pod.spec.node_name in found and not pod.metadata.deletion_timestamp:
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            found[pod.spec.node_name] = "" if ready else f"{agent['name']} pod {pod.metadata.name} is not ready " \
                                                         f"(phase {pod.status.phase})"
    return found

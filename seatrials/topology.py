"""What the cluster under trial looks like: nodes and roles, the `kubernetes`
service, the apiserver's real endpoints, and the CNI.

The apiserver's port is read from the EndpointSlice (6444 in the field report,
behind a load balancer on 6443): never assumed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from kubernetes.client.rest import ApiException

from seatrials.causes import UNKNOWN, Result

MASTER_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
MASTER_TAINTS = MASTER_LABELS
LEGACY_ROLE_LABEL = "kubernetes.io/role"
# CNI name -> a piece of the name of the DaemonSet it runs on every node
CNI_DAEMONSETS = (("calico", "calico-node"), ("flannel", "flannel"), ("cilium", "cilium"),
                  ("weave", "weave-net"), ("canal", "canal"), ("aws-vpc-cni", "aws-node"),
                  ("kube-router", "kube-router"), ("antrea", "antrea-agent"))


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "master" or "worker"
    internal_ip: str | None
    provider_id: str | None = None
    pod_cidrs: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    ready: bool = True
    unreachable: str = ""  # why its kubelet cannot be reached (Ready Unknown: it stopped posting status)

    @property
    def is_master(self) -> bool:
        return self.role == "master"


@dataclass(frozen=True)
class Everyone:
    """The target of a per-source test case (network.cases): every node its source probes."""

    name: str = "*"


@dataclass
class Topology:
    nodes: list[Node]
    api_service: tuple[str, int]  # ClusterIP and port of the `kubernetes` service
    apiserver_endpoints: list[tuple[str, int]]
    cni: str  # calico, flannel, cilium, weave, other
    calico_pools: list[dict] | None = None  # Calico IP pools (ipipMode/vxlanMode), when Calico
    flannel_backend: str | None = None  # vxlan, udp, host-gw..., when flannel
    version: str = ""
    dns_service: tuple[str, int] | None = None  # kube-dns ClusterIP, port 53
    dns_nodes: list[str] = field(default_factory=list)  # nodes running the cluster DNS pods
    cni_agent: dict | None = None  # the CNI's DaemonSet: namespace, name, selector (its pod on each node)
    kube_proxy: dict | None = None  # kube-proxy's DaemonSet (kubeadm's), likewise; None where it is no pod
    service_cidrs: list[str] = field(default_factory=list)  # the ServiceCIDR objects' ranges (1.33+)

    @property
    def masters(self) -> list[Node]:
        return [n for n in self.nodes if n.is_master]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_master]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def ordered_pairs(self) -> list[tuple[Node, Node]]:
        return [(a, b) for a in self.nodes for b in self.nodes if a.name != b.name]

    def fingerprint(self) -> dict:
        """The cluster's identity as printed in report headers."""
        return {
            "version": self.version,
            "masters": [f"{n.name} ({n.internal_ip})" for n in self.masters],
            "workers": [f"{n.name} ({n.internal_ip})" for n in self.workers],
            "kubernetes service": "{}:{}".format(*self.api_service),
            "service cidrs": ", ".join(self.service_cidrs) or "not published (ServiceCIDR objects: Kubernetes 1.33+)",
            "apiserver endpoints": [f"{ip}:{port}" for ip, port in self.apiserver_endpoints],
            "cni": self.cni + (f" ({self.flannel_backend})" if self.flannel_backend else "") + (
                " (pools: " + ", ".join(f"{p['cidr']} ipip={p['ipipMode']} vxlan={p['vxlanMode']}"
                                        for p in self.calico_pools) + ")" if self.calico_pools else ""),
            "cluster dns": "{}:{}".format(*self.dns_service) if self.dns_service else "none found",
        }

    def to_json(self) -> dict:
        data = asdict(self)
        for n in data["nodes"]:
            n["pod_cidrs"] = list(n["pod_cidrs"])
        return data

    @classmethod
    def from_json(cls, data: dict) -> Topology:
        nodes = [Node(**{**n, "pod_cidrs": tuple(n["pod_cidrs"])}) for n in data["nodes"]]
        return cls(**{**data, "nodes": nodes, "api_service": tuple(data["api_service"]),
                      "apiserver_endpoints": [tuple(e) for e in data["apiserver_endpoints"]],
                      "dns_service": tuple(data["dns_service"]) if data["dns_service"] else None})


def role_of(node_obj, master_names: set[str] | None) -> str:
    """Master by explicit selector, else by kubeadm/legacy labels or control-plane taints."""
    if master_names is not None:
        return "master" if node_obj.metadata.name in master_names else "worker"
    labels = node_obj.metadata.labels or {}
    if any(label in labels for label in MASTER_LABELS) or labels.get(LEGACY_ROLE_LABEL) == "master":
        return "master"
    taints = node_obj.spec.taints or []
    return "master" if any(t.key in MASTER_TAINTS for t in taints) else "worker"


def node_not_ready(node_obj) -> str | None:
    """Why a node's kubelet cannot run or answer anything now (its Ready condition Unknown), else None.

    Ready=False is not enough: the kubelet still runs (host-network pods may start, its logs answer).
    """
    ready = next((c for c in node_obj.status.conditions or [] if c.type == "Ready"), None)
    if ready is not None and ready.status != "Unknown":
        return None
    since = ready.last_transition_time.strftime("%Y-%m-%d %H:%M:%SZ") if ready and ready.last_transition_time else "?"
    message = (ready.message if ready else None) or "no Ready condition: the kubelet never posted status"
    return f"{node_obj.metadata.name} NotReady since {since}: {message.rstrip('.')}"


def to_node(node_obj, role: str) -> Node:
    addresses = node_obj.status.addresses or []
    internal = next((a.address for a in addresses if a.type == "InternalIP"), None)
    ready = any(c.type == "Ready" and c.status == "True" for c in node_obj.status.conditions or [])
    cidrs = tuple(node_obj.spec.pod_cidrs or ([node_obj.spec.pod_cidr] if node_obj.spec.pod_cidr else []))
    return Node(node_obj.metadata.name, role, internal, node_obj.spec.provider_id, cidrs,
                dict(node_obj.metadata.labels or {}), ready, node_not_ready(node_obj) or "")


def discover_nodes(cluster, master_selector: str | None, worker_selector: str | None) -> list[Node]:
    def listed(selector: str | None) -> dict:
        items = cluster.core.list_node(**({"label_selector": selector} if selector else {})).items
        return {n.metadata.name: n for n in items}

    masters = listed(master_selector) if master_selector else None
    workers = listed(worker_selector) if worker_selector else None
    # with both selectors every node judged is in one of their lists: no list of every node besides
    found = {**workers, **masters} if masters is not None and workers is not None else listed(None)
    nodes = [to_node(n, role_of(n, masters)) for n in found.values()]
    if workers is not None:
        nodes = [n for n in nodes if n.is_master or n.name in workers]
    return sorted(nodes, key=lambda n: (n.role != "master", n.name))


def apiserver_endpoints(cluster) -> list[tuple[str, int]]:
    """Where the `kubernetes` service really forwards: EndpointSlices, else Endpoints."""
    found = slice_endpoints(cluster.discovery.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items)
    if not found:
        eps = cluster.core.read_namespaced_endpoints("kubernetes", "default")
        for subset in eps.subsets or []:
            found += [(a.ip, p.port) for a in subset.addresses or [] for p in subset.ports or []]
    return sorted(set(found))


def slice_endpoints(slices) -> list[tuple[str, int]]:
    """(address, port) of every endpoint not marked unready in these EndpointSlices (https ports)."""
    found = []
    for s in slices:
        ports = [p.port for p in s.ports or [] if p.name in (None, "", "https")]
        for ep in s.endpoints or []:
            if ep.conditions and ep.conditions.ready is False:
                continue
            found += [(addr, port) for addr in ep.addresses for port in ports]
    return found


def flannel_backend(cluster) -> str | None:
    """Backend.Type of flannel's net-conf.json (vxlan when unset, as flannel defaults)."""
    for namespace in ("kube-flannel", "kube-system"):
        try:
            cm = cluster.core.read_namespaced_config_map("kube-flannel-cfg", namespace)
        except ApiException:
            continue
        try:
            conf = json.loads((cm.data or {}).get("net-conf.json", "{}"))
        except ValueError:
            return None
        return (conf.get("Backend") or {}).get("Type", "vxlan").lower()
    return None


def cni_agent(daemonsets: list) -> tuple[str, dict | None]:
    """The CNI named from its DaemonSet, and that DaemonSet (namespace, name, pod selector); "other", None
    when no DaemonSet of a CNI seatrials knows runs."""
    for name, marker in CNI_DAEMONSETS:
        for ds in daemonsets:
            if marker in ds.metadata.name:
                return name, agent_of(ds)
    return "other", None


def kube_proxy_daemonset(daemonsets: list) -> dict | None:
    """kube-proxy's DaemonSet (namespace, name, pod selector) where kube-proxy runs as pods, as kubeadm runs it;
    None where it runs as a node service (or not at all)."""
    return next((agent_of(ds) for ds in daemonsets if ds.metadata.name == "kube-proxy"), None)


def agent_of(ds) -> dict:
    return {"namespace": ds.metadata.namespace, "name": ds.metadata.name,
            "selector": dict(ds.spec.selector.match_labels or {})}


def detect_cni(cluster, daemonsets: list) -> tuple[str, list[dict] | None, str | None, dict | None]:
    """Name the CNI from the cluster's DaemonSets; for Calico read the IP pools' encapsulation, for
    flannel its backend: they decide whether pod IPs travel natively between nodes."""
    cni, agent = cni_agent(daemonsets)
    if cni in ("flannel", "canal"):
        return cni, None, flannel_backend(cluster), agent
    if cni != "calico":
        return cni, None, None, agent
    pools = None
    for group in ("crd.projectcalico.org", "projectcalico.org"):
        try:
            items = cluster.custom.list_cluster_custom_object(group, "v1" if group.startswith("crd") else "v3",
                                                              "ippools")["items"]
            pools = [{"name": p["metadata"]["name"], **{k: p.get("spec", {}).get(k) for k in
                      ("cidr", "ipipMode", "vxlanMode", "natOutgoing")}} for p in items]
            break
        except ApiException:
            continue
    return cni, pools, None, agent


def service_cidrs(cluster) -> list[str]:
    """The ranges Services get their ClusterIPs from, as the ServiceCIDR objects publish them."""
    try:
        items = cluster.networking.list_service_cidr().items
    except (ApiException, AttributeError):  # before 1.33, or a client without the API
        return []
    return sorted({c for item in items for c in (item.spec.cidrs or [])})


def discover(cluster, master_selector: str | None = None, worker_selector: str | None = None) -> Topology:
    svc = cluster.core.read_namespaced_service("kubernetes", "default")
    https = next((p for p in svc.spec.ports if p.name in ("https", None)), svc.spec.ports[0])
    dns, dns_nodes = None, []
    try:
        kube_dns = cluster.core.read_namespaced_service("kube-dns", "kube-system")
        dns = (kube_dns.spec.cluster_ip, 53)
        selector = ",".join(f"{k}={v}" for k, v in (kube_dns.spec.selector or {}).items())
        if selector:
            pods = cluster.core.list_namespaced_pod("kube-system", label_selector=selector).items
            dns_nodes = sorted({p.spec.node_name for p in pods if p.spec.node_name})
    except ApiException as exc:
        if exc.status != 404:
            raise
    daemonsets = cluster.apps.list_daemon_set_for_all_namespaces().items
    cni, pools, backend, agent = detect_cni(cluster, daemonsets)
    return Topology(
        nodes=discover_nodes(cluster, master_selector, worker_selector),
        api_service=(svc.spec.cluster_ip, https.port),
        apiserver_endpoints=apiserver_endpoints(cluster),
        cni=cni,
        calico_pools=pools,
        flannel_backend=backend,
        cni_agent=agent,
        kube_proxy=kube_proxy_daemonset(daemonsets),
        service_cidrs=service_cidrs(cluster),
        version=cluster.version or cluster.version_api.get_code().git_version,  # read by the preflight
        dns_service=dns,
        dns_nodes=dns_nodes,
    )


def service_ip_result(topology: Topology, expected: str | None) -> Result:
    """The `kubernetes` service has the ClusterIP the cluster was designed with (--expect-service-ip)."""
    if not expected:
        return Result.not_checked("no --expect-service-ip given")
    if topology.api_service[0] == expected:
        return Result.passed()
    return Result.failed(UNKNOWN, [f"the kubernetes service is {topology.api_service[0]}, expected {expected}"],
                         hint="the apiserver's --service-cluster-ip-range differs from the design; certificates "
                              "and kubeconfigs made for the expected address will not match")

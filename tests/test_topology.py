"""Topology parsing: roles, addresses, the apiserver's real port, the CNI."""

from types import SimpleNamespace

from kubernetes import client as k
from kubernetes.client.rest import ApiException

from seatrials import topology


def node(name, labels=None, taints=None, ip="10.240.0.21", cidr="10.200.1.0/24"):
    return k.V1Node(
        metadata=k.V1ObjectMeta(name=name, labels=labels or {}),
        spec=k.V1NodeSpec(taints=[k.V1Taint(key=t, effect="NoSchedule") for t in taints or []], pod_cidr=cidr,
                          pod_cidrs=[cidr], provider_id="aws:///us-east-1a/i-1"),
        status=k.V1NodeStatus(addresses=[k.V1NodeAddress(type="Hostname", address=name),
                                         k.V1NodeAddress(type="InternalIP", address=ip)],
                              conditions=[k.V1NodeCondition(type="Ready", status="True")]))


def test_masters_are_found_by_label_legacy_label_or_taint():
    assert topology.role_of(node("a", {"node-role.kubernetes.io/control-plane": ""}), None) == "master"
    assert topology.role_of(node("b", {"node-role.kubernetes.io/master": ""}), None) == "master"
    assert topology.role_of(node("c", {"kubernetes.io/role": "master"}), None) == "master"
    assert topology.role_of(node("d", taints=["node-role.kubernetes.io/master"]), None) == "master"
    assert topology.role_of(node("e"), None) == "worker"
    assert topology.role_of(node("e"), {"e"}) == "master"  # --master-selector wins


def test_node_fields():
    n = topology.to_node(node("worker-1"), "worker")
    assert (n.internal_ip, n.pod_cidrs, n.provider_id, n.ready) == ("10.240.0.21", ("10.200.1.0/24",),
                                                                     "aws:///us-east-1a/i-1", True)


def daemonsets_named(names, namespace="kube-flannel") -> list:
    return [k.V1DaemonSet(metadata=k.V1ObjectMeta(name=n, namespace=namespace),
                          spec=k.V1DaemonSetSpec(selector=k.V1LabelSelector(match_labels={"app": n}),
                                                 template=k.V1PodTemplateSpec()))
            for n in names]


class FakeCluster:
    """The few read calls topology makes, answering with real client model objects."""

    def __init__(self, slices, endpoints=None, daemonsets=(), configmaps=None):
        self.discovery = SimpleNamespace(list_namespaced_endpoint_slice=lambda ns, label_selector: SimpleNamespace(
            items=slices))
        self.core = SimpleNamespace(read_namespaced_endpoints=lambda name, ns: endpoints,
                                    read_namespaced_config_map=self.config_map)
        self.apps = SimpleNamespace(list_daemon_set_for_all_namespaces=lambda: SimpleNamespace(
            items=daemonsets_named(daemonsets)))
        self.configmaps = configmaps or {}

    def config_map(self, name, namespace):
        if (namespace, name) not in self.configmaps:
            raise ApiException(status=404)
        return k.V1ConfigMap(data=self.configmaps[(namespace, name)])


def test_apiserver_port_is_read_from_the_endpointslice_not_assumed():
    s = k.V1EndpointSlice(address_type="IPv4", ports=[k.DiscoveryV1EndpointPort(name="https", port=6444)],
                          endpoints=[k.V1Endpoint(addresses=["10.240.0.12"]), k.V1Endpoint(addresses=["10.240.0.11"]),
                                     k.V1Endpoint(addresses=["10.240.0.13"],
                                                  conditions=k.V1EndpointConditions(ready=False))])
    assert topology.apiserver_endpoints(FakeCluster([s])) == [("10.240.0.11", 6444), ("10.240.0.12", 6444)]


def test_endpoints_are_the_fallback():
    eps = k.V1Endpoints(subsets=[k.V1EndpointSubset(addresses=[k.V1EndpointAddress(ip="10.0.0.1")],
                                                    ports=[k.CoreV1EndpointPort(port=6444)])])
    assert topology.apiserver_endpoints(FakeCluster([], eps)) == [("10.0.0.1", 6444)]


def test_flannel_backend_is_read_from_its_config():
    cm = {("kube-flannel", "kube-flannel-cfg"): {"net-conf.json": '{"Network": "10.200.0.0/16", '
                                                                  '"Backend": {"Type": "host-gw"}}'}}
    agent = {"namespace": "kube-flannel", "name": "kube-flannel-ds", "selector": {"app": "kube-flannel-ds"}}
    assert topology.detect_cni(FakeCluster([], configmaps=cm), daemonsets_named(["kube-flannel-ds"])) == (
        "flannel", None, "host-gw", agent)
    assert topology.detect_cni(FakeCluster([]), daemonsets_named(["kube-proxy"])) == ("other", None, None, None)


def test_topology_survives_json_for_xdist_workers():
    t = topology.Topology([topology.to_node(node("worker-1"), "worker")], ("10.32.0.1", 443),
                          [("10.240.0.11", 6444)], "other", dns_service=("10.32.0.10", 53), dns_nodes=["worker-1"])
    assert topology.Topology.from_json(t.to_json()) == t


class Nodes:
    """list_node over labelled nodes, a label selector of one `key=value` as the apiserver applies it."""

    def __init__(self, nodes):
        self.nodes, self.asked = nodes, []

    def list_node(self, label_selector=None):
        self.asked.append(label_selector)
        key, _, value = (label_selector or "").partition("=")
        return SimpleNamespace(items=[n for n in self.nodes if not key or n.metadata.labels.get(key) == value])


def test_with_both_selectors_the_nodes_are_read_in_two_lists_not_three():
    core = Nodes([node("m", {"fake": "master"}), node("w", {"fake": "worker"}), node("lab-master-1"),
                  node("m2", {"fake": "master"})])
    found = topology.discover_nodes(SimpleNamespace(core=core), "fake=master", "fake=worker")
    assert [(n.name, n.role) for n in found] == [("m", "master"), ("m2", "master"), ("w", "worker")]
    assert core.asked == ["fake=master", "fake=worker"]
    core.asked.clear()
    masters_only = topology.discover_nodes(SimpleNamespace(core=core), "fake=master", None)
    assert [n.name for n in masters_only if n.role == "worker"] == ["lab-master-1", "w"] and len(core.asked) == 2

"""The evidence beyond the matrix: routing tables as `ip -4 route` prints them (busybox and iproute2),
how pod IPs travel as the routes show it, and NetworkPolicies selecting the probes as Kubernetes
selects them."""

from seatrials.network import evidence
from seatrials.network.evidence import parse_routes, pod_routing, policies_over, route_to, selects
from seatrials.network.paths import ControlChannel, ProbeResult
from seatrials.network.trial import Trial
from seatrials.topology import Node, Topology

NATIVE = ("default via 10.0.0.1 dev ens5\t10.240.0.0/24 dev eth0 scope link  src 10.240.0.21\t"
          "10.200.11.0/24 via 10.240.0.11 dev eth0\t10.200.21.0/24 dev cni0 scope link  src 10.200.21.1\t"
          "10.200.22.0/24 via 10.240.0.22 dev eth0 \t10.32.0.0/24 dev eth0 scope link")
FLANNEL = ("10.240.0.0/24 dev eth0 proto kernel scope link src 10.240.0.21\t"
           "10.200.11.0/24 via 10.200.11.0 dev flannel.1 onlink\t10.200.22.0/24 via 10.200.22.0 dev flannel.1 onlink")


def test_routes_are_read_from_busybox_and_iproute2_lines():
    routes = parse_routes(NATIVE)
    assert route_to(routes, "10.200.22.0/24").via == "10.240.0.22"
    assert route_to(routes, "10.200.99.0/24") is None  # the default route does not count: the VPC drops pod IPs
    assert route_to(routes, "10.200.21.0/24").dev == "cni0"


def test_native_and_encapsulated_routing_are_told_by_the_routes():
    ips = {"master-1": "10.240.0.11", "worker-1": "10.240.0.21", "worker-2": "10.240.0.22"}
    cidrs = {"master-1": ["10.200.11.0/24"], "worker-1": ["10.200.21.0/24"], "worker-2": ["10.200.22.0/24"]}
    assert pod_routing({"worker-1": parse_routes(NATIVE)}, cidrs, ips) == "native"
    assert pod_routing({"worker-1": parse_routes(FLANNEL)}, cidrs, ips) == "encapsulated"
    assert pod_routing({}, cidrs, ips) == "unknown"


def test_label_selectors_as_kubernetes_evaluates_them():
    labels = {"app.kubernetes.io/name": "seatrials-probe", "seatrials.io/probe": "pod-network"}
    assert selects({}, labels) and selects(None, labels)
    assert selects({"matchLabels": {"seatrials.io/probe": "pod-network"}}, labels)
    assert not selects({"matchLabels": {"app": "web"}}, labels)
    assert selects({"matchExpressions": [{"key": "seatrials.io/probe", "operator": "In", "values": ["pod-network"]}]},
                   labels)
    assert not selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)


def test_only_policies_selecting_the_probes_are_named():
    policies = [{"metadata": {"namespace": "seatrials", "name": "default-deny"},
                 "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
                {"metadata": {"namespace": "seatrials", "name": "web-only"},
                 "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}]
    assert policies_over(policies, {"seatrials.io/probe": "pod-network"}) == [
        "NetworkPolicy seatrials/default-deny (ingress, egress)"]


TOPOLOGY = Topology([Node("master-1", "master", "10.240.0.11"), Node("worker-1", "worker", "10.240.0.21")],
                    ("10.32.0.1", 443), [("10.240.0.11", 6444)], "flannel",
                    cni_agent={"namespace": "kube-flannel", "name": "kube-flannel-ds", "selector": {"app": "flannel"}})


def trial(results=(), **fields) -> Trial:
    t = Trial("run", "ns", [], [ControlChannel("worker-1", "host", "h", True, "")], list(results), **fields)
    return Trial.from_json(t.to_json())  # as xdist workers read it


def health(node, outcome, detail=""):
    return ProbeResult("kube-proxy", node, node, "127.0.0.1:10256", outcome, detail)


def test_kube_proxy_is_failed_only_where_it_answers_elsewhere():
    t = trial([health("master-1", "ok"), health("worker-1", "refused", "nc: Connection refused")])
    assert t.kube_proxy_result("master-1").ok
    failed = t.kube_proxy_result("worker-1")
    assert failed.finding.cause == "kube-proxy-not-forwarding" and "refused" in str(failed)
    nowhere = trial([health("master-1", "refused"), health("worker-1", "refused")])
    assert nowhere.kube_proxy_result("worker-1").reason.startswith("kube-proxy answers /healthz on no node")


def test_the_cni_agent_and_the_policies_are_checks_of_their_own():
    t = trial(cni_agents={"master-1": "", "worker-1": "kube-flannel-ds pod f-1 is not ready (phase Pending)"},
              policies=["NetworkPolicy seatrials/default-deny (ingress, egress)"])
    assert t.cni_agent_result(TOPOLOGY, "master-1").ok
    assert t.cni_agent_result(TOPOLOGY, "worker-1").finding.cause == "cni-agent-down"
    assert t.policies_result().finding.cause == "network-policy-blocks-probes"
    assert trial(policies_unread="NetworkPolicies of seatrials: forbidden (needs list networkpolicies in API "
                                 "group networking.k8s.io)").policies_result().status == "not checked"
    other = Topology(TOPOLOGY.nodes, TOPOLOGY.api_service, TOPOLOGY.apiserver_endpoints, "other")
    assert trial().cni_agent_result(other, "worker-1").reason.startswith("no CNI agent DaemonSet seatrials knows")


def test_the_evidence_of_a_trial_carries_the_routes_it_read():
    t = trial([ProbeResult("routes", "worker-1", "worker-1", "-", "ok", NATIVE)], dns_ready=0)
    ev = t.evidence(TOPOLOGY)
    assert route_to(ev.routes["worker-1"], "10.200.11.0/24").via == "10.240.0.11"
    assert ev.dns_ready == 0 and isinstance(ev, evidence.Evidence)

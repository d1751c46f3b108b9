"""Service sign-off: the `kubernetes` service and the apiserver endpoints behind
it, a Service with externalIPs on the nodes, and cluster DNS, from every node.

Probing the ClusterIP and every endpoint directly tells a security-group block
(both fail) from a kube-proxy fault (only the ClusterIP fails).
"""

import pytest

from seatrials import topology as topology_mod

pytestmark = pytest.mark.area("network")


@pytest.mark.cause("sg-node-to-apiserver", "kube-proxy-not-forwarding", "network-policy-blocks-probes")
def test_pod_to_kubernetes_service(trial, topology, node):
    service = "{}:{}".format(*topology.api_service)
    return trial.cell(topology, "pod-to-service", node.name, service)


@pytest.mark.cause("sg-node-to-apiserver", "network-policy-blocks-probes")
def test_pod_to_apiserver_endpoint(trial, topology, endpoint_path):
    node, endpoint = endpoint_path
    return trial.cell(topology, "pod-to-apiserver", node.name, endpoint)


@pytest.mark.cause("ec2-source-dest-check", "sg-master-inbound-from-nodes", "pod-route-missing", "cni-agent-down",
                   "cross-subnet-native-routing", "kube-proxy-not-forwarding", "network-policy-blocks-probes")
def test_external_ip_backends(trial, topology, pair):
    """From each node, the probe pod on every node answers through the externalIPs service."""
    source, backend = pair
    return trial.cell(topology, "external-ip", source.name, backend.name)


# a lookup fails with DNS itself, or follows the path to the DNS pods or theirs to the apiserver
@pytest.mark.cause("cluster-dns-unavailable", "kube-proxy-not-forwarding", "sg-node-to-apiserver",
                   "ec2-source-dest-check", "sg-master-inbound-from-nodes", "pod-route-missing", "cni-agent-down",
                   "cross-subnet-native-routing", "network-policy-blocks-probes", "node-not-ready")
def test_cluster_dns(trial, topology, node):
    return trial.cell(topology, "dns", node.name, "kubernetes.default")


@pytest.mark.cause("unknown")
def test_kubernetes_service_ip(topology, settings):
    """The `kubernetes` service has the ClusterIP the cluster was designed with (--expect-service-ip)."""
    return topology_mod.service_ip_result(topology, settings.expect_service_ip)

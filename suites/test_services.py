"""Service sign-off: the `kubernetes` service and the apiserver endpoints behind
it, a Service with externalIPs on the nodes, and cluster DNS, from every node.

Probing the ClusterIP and every endpoint directly tells a security-group block
(both fail) from a kube-proxy fault (only the ClusterIP fails).
"""

import pytest

from seatrials import causes


@pytest.mark.cause("sg-node-to-apiserver")
def test_pod_to_kubernetes_service(trial, topology, node):
    service = "{}:{}".format(*topology.api_service)
    trial.judge(topology, "pod-to-service", node.name, service)


@pytest.mark.cause("sg-node-to-apiserver")
def test_pod_to_apiserver_endpoint(trial, topology, endpoint_path):
    node, endpoint = endpoint_path
    trial.judge(topology, "pod-to-apiserver", node.name, endpoint)


@pytest.mark.cause("ec2-source-dest-check", "sg-master-inbound-from-nodes")
def test_external_ip_backends(trial, topology, pair):
    """From each node, the probe pod on every node answers through the externalIPs service."""
    source, backend = pair
    trial.judge(topology, "external-ip", source.name, backend.name)


@pytest.mark.cause("sg-node-to-apiserver", "ec2-source-dest-check", "sg-master-inbound-from-nodes")
def test_cluster_dns(trial, topology, node):
    if not topology.dns_service:
        pytest.skip("not checked: the cluster has no kube-system/kube-dns service")
    trial.judge(topology, "dns", node.name, "kubernetes.default")


@pytest.mark.cause("unknown")
def test_kubernetes_service_ip(topology, settings):
    """The `kubernetes` service has the ClusterIP the cluster was designed with (--expect-service-ip)."""
    if not settings.expect_service_ip:
        pytest.skip("not checked: no --expect-service-ip given")
    if topology.api_service[0] != settings.expect_service_ip:
        causes.fail("unknown", [f"the kubernetes service is {topology.api_service[0]}, expected "
                                f"{settings.expect_service_ip}"],
                    hint="the apiserver's --service-cluster-ip-range differs from the design; certificates and "
                         "kubeconfigs made for the expected address will not match")

"""Pod network sign-off: every node reaches every node, by pod IP and by host IP.

One case per ordered pair of nodes, e.g. test_pod_to_pod[worker-1->master-1].
Pod IPs failing while host IPs work point at routing or the EC2
source/destination check; only workers -> masters failing points at the
masters' security group.
"""

import pytest

pytestmark = pytest.mark.area("network")
# what drops pod IPs between nodes: the VPC, a node's routes, a CNI agent, a policy over the probes
POD_IP_CAUSES = pytest.mark.cause("ec2-source-dest-check", "sg-master-inbound-from-nodes", "pod-route-missing",
                                  "cni-agent-down", "cross-subnet-native-routing", "network-policy-blocks-probes")


@POD_IP_CAUSES
def test_pod_to_pod(trial, topology, pair):
    source, target = pair
    return trial.cell(topology, "pod-to-pod", source.name, target.name)


@POD_IP_CAUSES
def test_pod_to_pod_icmp(trial, topology, pair):
    source, target = pair
    return trial.cell(topology, "pod-to-pod-icmp", source.name, target.name)


@POD_IP_CAUSES
def test_host_to_pod(trial, topology, pair):
    source, target = pair
    return trial.cell(topology, "host-to-pod", source.name, target.name)


@pytest.mark.cause("sg-master-inbound-from-nodes")
def test_host_to_host(trial, topology, cross_pair):
    source, target = cross_pair
    return trial.cell(topology, "host-to-host", source.name, target.name)


@pytest.mark.cause("sg-master-inbound-from-nodes", "network-policy-blocks-probes")
def test_pod_to_node(trial, topology, cross_pair):
    source, target = cross_pair
    return trial.cell(topology, "pod-to-node", source.name, target.name)

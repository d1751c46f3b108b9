"""What EC2 itself says about the nodes, read-only (Describe* calls only).

Runs when AWS credentials and a region are found (AWS_PROFILE or
AWS_ACCESS_KEY_ID..., --aws-region or AWS_REGION; AWS_ENDPOINT_URL for another
endpoint); otherwise every case is "not checked" with the reason. Nodes are
matched to instances by spec.providerID, else by private IP. The logic lives in
seatrials/checks/aws.py (calls) and seatrials/checks/aws_rules.py (how EC2 filters a packet);
docs/aws.md has the IAM policy.
"""

import pytest

from seatrials.checks import aws

pytestmark = pytest.mark.area("aws")


@pytest.fixture(scope="module")
def ec2(settings, topology):
    """Every node's instance, groups and network ACLs, read once for this module (or why they cannot be)."""
    return aws.read(settings, topology)


@pytest.fixture(scope="module")
def observed(request, topology) -> str:
    """How pod IPs travel between nodes as the nodes' routes show it (read by the probes): native,
    encapsulated or unknown, for a CNI seatrials does not know; unknown when the probes did not run."""
    try:
        return request.getfixturevalue("trial").evidence(topology).routing
    except (pytest.skip.Exception, pytest.FixtureLookupError):
        return "unknown"


@pytest.mark.cause("ec2-source-dest-check")
def test_source_dest_check(ec2, topology, node, observed):
    """Off on every node whose pod IPs the CNI routes natively."""
    routes = aws.routes_pod_ips_natively(topology.cni, topology.calico_pools, topology.flannel_backend, observed)
    return aws.result(ec2, aws.source_dest_check, node, routes)


@pytest.mark.cause("sg-node-to-apiserver")
def test_nodes_reach_apiserver_port(ec2, topology, endpoint_path):
    """TCP from the node's instance to the apiserver's real port (from the EndpointSlice)."""
    source, endpoint = endpoint_path
    return aws.result(ec2, aws.apiserver_port, topology, source, endpoint)


@pytest.mark.cause("sg-master-inbound-from-nodes")
def test_cni_traffic_between_groups(ec2, topology, cross_pair, observed):
    """The CNI's protocol (IP-in-IP, VXLAN, BGP) or, with native routing, all
    traffic from the source's pod CIDR, admitted by the target's groups."""
    source, target = cross_pair
    return aws.result(ec2, aws.cni_traffic, topology, source, target, observed)


@pytest.mark.cause("cross-subnet-native-routing")
def test_pod_routes_between_subnets(ec2, topology, cross_pair, observed):
    """Pod IPs routed natively from a node to one in another subnet: the source subnet's route table
    sends the target's pod CIDR to the target's instance."""
    source, target = cross_pair
    return aws.result(ec2, aws.pod_routes, topology, source, target, observed)

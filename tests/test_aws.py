"""seatrials.checks.aws against moto's EC2: in-process (moto.mock_aws) for speed, and
through a real moto server on loopback reached by AWS_ENDPOINT_URL, as the lab does;
last, suites/test_aws.py run the way a user runs it.

Each test builds a small estate shaped like the field report's: masters and
workers in their own security groups, kube-apiserver on 6444.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import boto3
import pytest
from botocore.credentials import InstanceMetadataProvider
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count
from moto.server import ThreadedMotoServer

from seatrials.checks import aws
from seatrials.options import Settings
from seatrials.topology import Everyone, Node, Topology

pytest_plugins = ["pytester"]

REGION = "us-east-1"
IPIP = [{"name": "default-ipv4-ippool", "cidr": "10.200.0.0/16", "ipipMode": "Always", "vxlanMode": "Never"}]
NATIVE = [{"name": "default-ipv4-ippool", "cidr": "10.200.0.0/16", "ipipMode": "Never", "vxlanMode": "Never"}]


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Test credentials and nothing else: no profile, no config files, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def ec2(aws_env):
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


SETTINGS = Settings(kubeconfig=None, context=None, aws_region=REGION)


class Estate:
    """Instances, groups and subnets in (moto's) EC2, and the Topology the suite would discover."""

    def __init__(self, client):
        self.ec2 = client
        self.vpc = client.create_vpc(CidrBlock="10.240.0.0/16")["Vpc"]["VpcId"]
        self.subnets: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.ids: dict[str, str] = {}  # node name -> instance id

    def subnet(self, cidr: str) -> str:
        if cidr not in self.subnets:
            self.subnets[cidr] = self.ec2.create_subnet(VpcId=self.vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        return self.subnets[cidr]

    def group(self, name: str) -> str:
        if name not in self.groups:
            self.groups[name] = self.ec2.create_security_group(
                GroupName=f"seatrials-lab-{name}", Description=name, VpcId=self.vpc)["GroupId"]
        return self.groups[name]

    def allow(self, into: str, protocol: str, ports: tuple[int, int] = (-1, -1), source: str | None = None,
              cidr: str | None = None) -> None:
        permission = {"IpProtocol": protocol}
        if protocol != "-1":  # moto wants ports on every rule but "all traffic"
            permission.update(FromPort=ports[0], ToPort=ports[1])
        if source:
            permission["UserIdGroupPairs"] = [{"GroupId": self.group(source)}]
        if cidr:
            permission["IpRanges"] = [{"CidrIp": cidr}]
        self.ec2.authorize_security_group_ingress(GroupId=self.group(into), IpPermissions=[permission])

    def node(self, name: str, ip: str, group: str, subnet: str = "10.240.0.0/24", pod_cidr: str = "",
             provider_id: bool = True, node_ip: str | None = None) -> Node:
        instance = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                          SubnetId=self.subnet(subnet), PrivateIpAddress=ip,
                                          SecurityGroupIds=[self.group(group)])["Instances"][0]
        self.ids[name] = instance["InstanceId"]
        zone = instance["Placement"]["AvailabilityZone"]
        node = Node(name, "master" if group == "masters" else "worker", node_ip or ip,
                    f"aws:///{zone}/{instance['InstanceId']}" if provider_id else None,
                    (pod_cidr,) if pod_cidr else ())
        self.nodes.append(node)
        return node

    def topology(self, cni: str = "calico", pools: list[dict] | None = IPIP, port: int = 6444) -> Topology:
        masters = [n for n in self.nodes if n.is_master]
        return Topology(nodes=list(self.nodes), api_service=("10.32.0.1", 443),
                        apiserver_endpoints=[(m.internal_ip, port) for m in masters], cni=cni,
                        calico_pools=pools)

    def source_dest_check(self, name: str, instance: bool | None = None, interface: bool | None = None):
        if instance is not None:
            self.ec2.modify_instance_attribute(InstanceId=self.ids[name], SourceDestCheck={"Value": instance})
        if interface is not None:
            eni = self.ec2.describe_instances(InstanceIds=[self.ids[name]])["Reservations"][0]["Instances"][0][
                "NetworkInterfaces"][0]["NetworkInterfaceId"]
            self.ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": interface})


def field_report_estate(client, apiserver_open: bool = True, ipip_open: bool = True, workers: int = 2) -> Estate:
    """Two masters and some workers; the masters' group admits workers only on what is opened."""
    e = Estate(client)
    e.allow("masters", "-1", source="masters")
    e.allow("workers", "-1", source="workers")
    e.allow("workers", "-1", source="masters")
    e.allow("masters", "tcp", (179, 179), source="workers")
    if apiserver_open:
        e.allow("masters", "tcp", (6444, 6444), source="workers")
    if ipip_open:
        e.allow("masters", "4", source="workers")
    for i in (1, 2):
        e.node(f"master-{i}", f"10.240.0.1{i}", "masters", pod_cidr=f"10.200.{i - 1}.0/24")
    for i in range(1, workers + 1):
        e.node(f"worker-{i}", f"10.240.0.{20 + i}", "workers", pod_cidr=f"10.200.{10 + i}.0/24")
    return e


def fault_lines(verdict) -> list[str]:
    return [o.line() for o in verdict.of_state("fault")]


def judged(verdict) -> str:
    """'passed', 'not checked: <reason>' or 'failed: <message>': the verdict's Result in one string."""
    result = verdict.result()
    return "passed" if result.ok else f"failed: {result}" if result.finding else str(result)


# ---------------------------------------------------------------- healthy setups: no false alarms

def test_healthy_field_report_estate_has_no_findings(ec2):
    e = field_report_estate(ec2)
    for name in e.ids:
        e.source_dest_check(name, instance=False, interface=False)
    assert aws.facts(SETTINGS, e.topology())["findings"] == []


def test_every_check_passes_on_a_healthy_estate(ec2):
    e = field_report_estate(ec2)
    topo = e.topology()
    inv = aws.inventory(SETTINGS, topo)
    for a, b in topo.ordered_pairs():
        assert judged(aws.cni_traffic(inv, topo, a, b)) == "passed", (a.name, b.name)
    for node in topo.nodes:
        for ip, port in topo.apiserver_endpoints:
            outcome = judged(aws.apiserver_port(inv, topo, node, f"{ip}:{port}"))
            if ip == node.internal_ip:
                assert outcome.startswith("not applicable: path: ")  # its own endpoint: no group on the way
            else:
                assert outcome == "passed"
        # moto starts instances with the check on; IP-in-IP everywhere makes that harmless
        verdict = aws.source_dest_check(inv, node, aws.routes_pod_ips_natively("calico", IPIP))
        assert judged(verdict) == "passed"
        assert all("not relevant here" in o.detail for o in verdict.observations)


def test_native_routing_passes_when_the_pod_cidr_is_admitted(ec2):
    e = field_report_estate(ec2)
    e.allow("masters", "-1", cidr="10.200.0.0/16")
    e.allow("workers", "-1", cidr="10.200.0.0/16")
    for name in e.ids:
        e.source_dest_check(name, instance=False, interface=False)
    topo = e.topology(cni="calico", pools=NATIVE)
    assert aws.facts(SETTINGS, topo)["findings"] == []
    inv = aws.inventory(SETTINGS, topo)
    verdict = aws.cni_traffic(inv, topo, topo.node("worker-1"), topo.node("master-1"))
    assert {o.signal for o in verdict.observations} == {
        "worker-1->master-1 tcp 179",
        "worker-1->master-1 all traffic from pod CIDR 10.200.11.0/24 (the CNI routes pod IPs natively)"}


# ---------------------------------------------------------------- the documented causes

def test_apiserver_port_closed_to_workers_names_the_rule_to_add(ec2):
    e = field_report_estate(ec2, apiserver_open=False)
    topo = e.topology()
    inv = aws.inventory(SETTINGS, topo)
    masters, workers = e.groups["masters"], e.groups["workers"]
    verdict = aws.apiserver_port(inv, topo, topo.node("worker-1"), "10.240.0.11:6444")
    message = judged(verdict)
    assert message.startswith("failed: [cause: sg-node-to-apiserver]")
    assert (f"add to {masters} (seatrials-lab-masters) inbound: tcp 6444 from {workers} (seatrials-lab-workers)"
            in message)
    # masters still reach each other's apiserver: the pattern of the field report
    assert judged(aws.apiserver_port(inv, topo, topo.node("master-2"), "10.240.0.11:6444")) == "passed"
    subjects = {f["subject"] for f in aws.facts(SETTINGS, topo)["findings"] if f["cause"] == aws.APISERVER}
    assert subjects == {f"worker-{w}->10.240.0.1{m}:6444" for w in (1, 2) for m in (1, 2)}


def test_apiserver_port_is_the_real_one_not_6443(ec2):
    e = field_report_estate(ec2, apiserver_open=False)
    e.allow("masters", "tcp", (6443, 6443), source="workers")  # the load balancer's port: not enough
    topo = e.topology(port=6444)
    inv = aws.inventory(SETTINGS, topo)
    assert judged(aws.apiserver_port(inv, topo, topo.node("worker-1"), "10.240.0.11:6444")).startswith("failed")


def test_ipip_blocked_into_masters_only_in_that_direction(ec2):
    e = field_report_estate(ec2, ipip_open=False)
    topo = e.topology()
    inv = aws.inventory(SETTINGS, topo)
    worker, master = topo.node("worker-1"), topo.node("master-1")
    message = judged(aws.cni_traffic(inv, topo, worker, master))
    assert message.startswith("failed: [cause: sg-master-inbound-from-nodes]")
    assert (f"add to {e.groups['masters']} (seatrials-lab-masters) inbound: protocol 4 (IP-in-IP) "
            f"from {e.groups['workers']} (seatrials-lab-workers)") in message
    assert "tcp 179" not in message  # BGP is open
    assert judged(aws.cni_traffic(inv, topo, master, worker)) == "passed"
    assert judged(aws.cni_traffic(inv, topo, worker, topo.node("worker-2"))) == "passed"


@pytest.mark.parametrize("cni,pools,needed", [
    ("flannel", None, "udp 8472"),
    ("calico", [{"name": "p", "cidr": "10.200.0.0/16", "ipipMode": "Never", "vxlanMode": "Always"}], "udp 4789"),
])
def test_vxlan_ports_are_required(ec2, cni, pools, needed):
    e = field_report_estate(ec2)
    topo = e.topology(cni=cni, pools=pools)
    inv = aws.inventory(SETTINGS, topo)
    message = judged(aws.cni_traffic(inv, topo, topo.node("worker-1"), topo.node("master-1")))
    assert f"inbound: {needed} from {e.groups['workers']}" in message
    protocol, port = needed.split()
    e.allow("masters", protocol, (int(port), int(port)), source="workers")
    inv = aws.inventory(SETTINGS, topo)  # read again after the fix
    assert judged(aws.cni_traffic(inv, topo, topo.node("worker-1"), topo.node("master-1"))) == "passed"


def test_native_routing_needs_the_pod_cidr_not_just_the_group(ec2):
    """All traffic from the workers' group does not admit pod IPs: they are no group member's address."""
    e = field_report_estate(ec2)
    e.allow("masters", "-1", source="workers")
    topo = e.topology(cni="other", pools=None)
    inv = aws.inventory(SETTINGS, topo)
    message = judged(aws.cni_traffic(inv, topo, topo.node("worker-1"), topo.node("master-1"), observed="native"))
    assert "the CNI routes pod IPs natively" in message
    assert f"add to {e.groups['masters']} (seatrials-lab-masters) inbound: all traffic from 10.200.11.0/24" in message


def test_source_dest_check_on_with_native_routing(ec2):
    e = field_report_estate(ec2)
    topo = e.topology(cni="calico", pools=NATIVE)
    inv = aws.inventory(SETTINGS, topo)
    message = judged(aws.source_dest_check(inv, topo.node("worker-1"), True))
    assert message.startswith("failed: [cause: ec2-source-dest-check]")
    assert f"instance {e.ids['worker-1']} sourceDestCheck: true on worker-1" in message
    assert "primary interface eni-" in message


def test_source_dest_check_instance_and_interface_disagree(ec2):
    """moto keeps the two flags apart (AWS keeps them in sync): each is read and named."""
    e = field_report_estate(ec2)
    e.source_dest_check("worker-1", instance=False)  # the interface keeps its check
    e.source_dest_check("worker-2", interface=False)  # the instance keeps its check
    topo = e.topology(pools=NATIVE)
    inv = aws.inventory(SETTINGS, topo)
    w1 = fault_lines(aws.source_dest_check(inv, topo.node("worker-1"), True))
    assert len(w1) == 1 and w1[0].startswith("primary interface eni-")
    w2 = fault_lines(aws.source_dest_check(inv, topo.node("worker-2"), True))
    assert len(w2) == 1 and w2[0].startswith(f"instance {e.ids['worker-2']} sourceDestCheck")
    e.source_dest_check("worker-1", interface=False)
    inv = aws.inventory(SETTINGS, topo)
    assert judged(aws.source_dest_check(inv, topo.node("worker-1"), True)) == "passed"
    sdc = aws.facts(SETTINGS, topo)["source_dest"]
    assert sdc["worker-2"]["on"] and not sdc["worker-1"]["on"]


def test_an_instance_whose_description_lacks_the_flag_is_asked_for_the_attribute_once(ec2):
    e = field_report_estate(ec2)
    e.source_dest_check("worker-1", instance=False, interface=False)
    topo = e.topology(pools=NATIVE)
    inv = aws.inventory(SETTINGS, topo)
    del inv.source_dest["worker-1"]  # as an answer without SourceDestCheck leaves it
    for _ in range(2):
        assert judged(aws.source_dest_check(inv, topo.node("worker-1"), True)) == "passed"
    assert inv.calls.count("DescribeInstanceAttribute") == 1


def test_an_unknown_cni_is_not_checked_unless_the_routes_show_native_routing(ec2):
    e = field_report_estate(ec2)
    topo = e.topology(cni="other", pools=None)
    inv = aws.inventory(SETTINGS, topo)
    message = judged(aws.source_dest_check(inv, topo.node("master-1"), None))
    assert message.startswith("not checked: ") and "unknown CNI" in message
    assert not judged(aws.cni_traffic(inv, topo, topo.node("worker-1"), topo.node("master-1"))).startswith("passed")
    native = aws.routes_pod_ips_natively("other", None, observed="native")
    assert judged(aws.source_dest_check(inv, topo.node("master-1"), native)).startswith("failed: [cause: ec2-")


def test_network_acl_between_subnets_denies_inbound_and_replies(ec2):
    e = field_report_estate(ec2)
    far = e.node("worker-9", "10.240.1.29", "workers", subnet="10.240.1.0/24", pod_cidr="10.200.19.0/24")
    acl = ec2.create_network_acl(VpcId=e.vpc)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=90, Protocol="6", RuleAction="deny", Egress=False,
                                 CidrBlock="10.240.1.0/24", PortRange={"From": 6444, "To": 6444})
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow", Egress=False,
                                 CidrBlock="0.0.0.0/0")
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow", Egress=True,
                                 CidrBlock="10.240.0.0/24")  # replies to 10.240.1.0/24 are not let out
    masters_subnet = e.subnets["10.240.0.0/24"]
    association = next(a["NetworkAclAssociationId"] for n in ec2.describe_network_acls()["NetworkAcls"]
                       for a in n["Associations"] if a["SubnetId"] == masters_subnet)
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    topo = e.topology()
    inv = aws.inventory(SETTINGS, topo)
    message = judged(aws.apiserver_port(inv, topo, far, "10.240.0.11:6444"))
    assert f"network ACL {acl} ({masters_subnet}) inbound rule 90 (deny tcp 6444 10.240.1.0/24)" in message
    assert "outbound: no rule allows the reply tcp 1024-65535 to 10.240.1.29/32" in message
    # the same subnet is not filtered by its ACL
    assert judged(aws.apiserver_port(inv, topo, topo.node("worker-1"), "10.240.0.11:6444")) == "passed"


# ---------------------------------------------------------------- mapping nodes to instances

def test_nodes_map_by_provider_id_else_by_private_ip(ec2):
    e = field_report_estate(ec2, workers=0)
    by_id = e.node("worker-1", "10.240.0.21", "workers", node_ip="10.240.0.121")  # InternalIP differs
    by_ip = e.node("worker-2", "10.240.0.22", "workers", provider_id=False)
    inv = aws.inventory(SETTINGS, e.topology())
    assert inv.matched_by[by_id.name] == f"providerID {e.ids['worker-1']}"
    assert inv.matched_by[by_ip.name] == "private IP 10.240.0.22"
    assert inv.hosts[by_ip.name].instance_id == e.ids["worker-2"]


def test_node_without_instance_is_not_checked_never_passed(ec2):
    e = field_report_estate(ec2)
    ghost = Node("worker-7", "worker", "10.240.0.27", "aws:///us-east-1a/i-0000000000000dead", ("10.200.17.0/24",))
    topo = e.topology()
    topo.nodes.append(ghost)
    inv = aws.inventory(SETTINGS, topo)
    reason = ("not checked: EC2 instance: node worker-7 has no EC2 instance with providerID "
              "aws:///us-east-1a/i-0000000000000dead or private IP 10.240.0.27")
    assert judged(aws.source_dest_check(inv, ghost, True)) == reason
    assert judged(aws.cni_traffic(inv, topo, ghost, topo.node("master-1"))) == reason
    assert judged(aws.apiserver_port(inv, topo, ghost, "10.240.0.11:6444")) == reason
    # a per-source case: the source's missing instance said once, not once per target
    assert judged(aws.cni_traffic(inv, topo, ghost, Everyone())) == reason
    assert judged(aws.pod_routes(inv, topo, ghost, Everyone())) == reason


def test_only_describe_calls_in_a_fixed_number_of_batches(ec2):
    counts = {}
    for workers in (2, 6):
        e = field_report_estate(ec2, workers=workers)
        topo = e.topology()
        inv = aws.inventory(SETTINGS, topo)
        for a, b in topo.ordered_pairs():
            aws.cni_traffic(inv, topo, a, b)
            aws.pod_routes(inv, topo, a, b)
        for node in topo.nodes:
            aws.source_dest_check(inv, node, True)
            for ip, port in topo.apiserver_endpoints:
                aws.apiserver_port(inv, topo, node, f"{ip}:{port}")
        assert inv.calls and all(name.startswith("Describe") for name in inv.calls), inv.calls
        counts[workers] = inv.calls
    # the subnet has no route table of its own: its VPC's main table is asked for in a second call; the
    # source/destination check comes with describe_instances (no call a node)
    assert counts[2] == counts[6] == ["DescribeInstances", "DescribeSecurityGroups", "DescribeNetworkAcls",
                                      "DescribeRouteTables", "DescribeRouteTables"]
    policy = json.loads((Path(__file__).parents[1] / "docs" / "aws-iam-policy.json").read_text())
    assert {f"ec2:{name}" for name in inv.calls} <= set(policy["Statement"][0]["Action"])


# ---------------------------------------------------------------- route tables between subnets

def two_subnet_estate(ec2, routed: bool) -> Estate:
    """worker-1 and worker-2 in one subnet, worker-3 in another, each subnet with its own route table that
    routes the other subnet's pod CIDRs to their instances (when `routed`), as native routing needs."""
    e = field_report_estate(ec2)
    e.allow("workers", "-1", cidr="10.200.0.0/16")
    e.allow("masters", "-1", cidr="10.200.0.0/16")
    e.node("worker-3", "10.240.1.23", "workers", subnet="10.240.1.0/24", pod_cidr="10.200.13.0/24")
    for cidr, subnet in e.subnets.items():
        table = ec2.create_route_table(VpcId=e.vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        for node in e.nodes if routed else []:
            if ipaddress.ip_address(node.internal_ip) not in ipaddress.ip_network(cidr):
                ec2.create_route(RouteTableId=table, DestinationCidrBlock=node.pod_cidrs[0],
                                 InstanceId=e.ids[node.name])
    return e


@pytest.mark.parametrize("cni,pools,routed,expected", [
    ("calico", [{"cidr": "10.200.0.0/16", "ipipMode": "Never"}], True, "passed"),
    ("calico", [{"cidr": "10.200.0.0/16", "ipipMode": "Never"}], False, "failed"),
    ("calico", [{"cidr": "10.200.0.0/16", "ipipMode": "CrossSubnet"}], False, "passed"),  # encapsulated across
    ("calico", IPIP, False, "passed"),
])
def test_pod_routes_between_subnets(ec2, cni, pools, routed, expected):
    e = two_subnet_estate(ec2, routed)
    topo = e.topology(cni, pools)
    inv = aws.inventory(SETTINGS, topo)
    across = judged(aws.pod_routes(inv, topo, topo.node("worker-1"), topo.node("worker-3")))
    assert across.split(":")[0] == expected, across
    assert judged(aws.pod_routes(inv, topo, topo.node("worker-1"), topo.node("worker-2"))) == "passed"  # one subnet
    if expected == "failed":
        table = inv.route_tables[e.subnets["10.240.0.0/24"]]["RouteTableId"]
        where = f"route table {table} ({e.subnets['10.240.0.0/24']})"
        assert f"{where} has no route for 10.200.13.0/24 (worker-3's pods)" in across
        assert f"fix: add to route table {table} (" in across and f"10.200.13.0/24 -> {e.ids['worker-3']}" in across
        found = aws.facts(SETTINGS, topo)["findings"]
        routes = {f["subject"] for f in found if f["cause"] == "cross-subnet-native-routing"}
        assert routes == {f"{n}->worker-3" for n in ("master-1", "master-2", "worker-1", "worker-2")} | {
            f"worker-3->{n}" for n in ("master-1", "master-2", "worker-1", "worker-2")}
    every = judged(aws.pod_routes(inv, topo, topo.node("worker-1"), Everyone()))  # a per-source case
    assert every.split(":")[0] == expected and (expected == "passed" or "worker-3's pods" in every), every


def test_a_pod_route_to_another_instance_is_a_fault(ec2):
    e = two_subnet_estate(ec2, routed=True)
    topo = e.topology("calico", [{"cidr": "10.200.0.0/16", "ipipMode": "Never"}])
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id",
                                                "Values": [e.subnets["10.240.0.0/24"]]}])["RouteTables"][0]
    ec2.replace_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="10.200.13.0/24",
                      InstanceId=e.ids["worker-1"])
    inv = aws.inventory(SETTINGS, topo)
    across = judged(aws.pod_routes(inv, topo, topo.node("worker-2"), topo.node("worker-3")))
    assert f"routes 10.200.13.0/24 by 10.200.13.0/24 to {e.ids['worker-1']}, not worker-3's instance" in across


# ---------------------------------------------------------------- when AWS cannot be read

def test_no_credentials_skips_with_the_reason(aws_env):
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    with pytest.raises(aws.Unavailable) as exc:
        aws.inventory(SETTINGS, topo)
    assert str(exc.value) == aws.NO_CREDENTIALS
    assert aws.facts(SETTINGS, topo) == {"read": False, "why": aws.NO_CREDENTIALS}


@pytest.mark.parametrize("on_ec2", [False, True])
def test_instance_metadata_is_asked_only_for_nodes_on_ec2(aws_env, on_ec2):
    """Off EC2 the metadata service (169.254.169.254) is outside the lab: never contacted."""
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    aws_env.delenv("AWS_EC2_METADATA_DISABLED")
    asked = []
    aws_env.setattr(InstanceMetadataProvider, "load", lambda self: asked.append(True))  # finds nothing
    provider_id = "aws:///us-east-1a/i-0abc" if on_ec2 else None
    topo = Topology([Node("worker-1", "worker", "10.240.0.21", provider_id)], ("10.32.0.1", 443), [], "other")
    with pytest.raises(aws.Unavailable, match="no AWS credentials found"):
        aws.inventory(SETTINGS, topo)
    assert asked == ([True] if on_ec2 else [])


def test_unknown_profile_skips_with_the_reason(aws_env):
    aws_env.setenv("AWS_PROFILE", "no-such-profile")
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    with pytest.raises(aws.Unavailable) as exc:
        aws.inventory(SETTINGS, topo)
    assert str(exc.value) == ("AWS not reachable or not configured "
                              "(ProfileNotFound: The config profile (no-such-profile) could not be found)")


def test_no_region_skips_with_the_reason(aws_env):
    aws_env.delenv("AWS_DEFAULT_REGION")
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    with pytest.raises(aws.Unavailable, match="no AWS region"):
        aws.inventory(Settings(kubeconfig=None, context=None), topo)
    # ... unless the nodes' providerIDs name their zone
    topo.nodes[0] = Node("worker-1", "worker", "10.240.0.21", "aws:///eu-west-1b/i-0abc")
    with mock_aws():
        assert aws.inventory(Settings(kubeconfig=None, context=None), topo).client.meta.region_name == "eu-west-1"


def test_credentials_without_a_region_are_bad_input(aws_env):
    aws_env.delenv("AWS_DEFAULT_REGION")
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    assert "no region: pass --aws-region" in aws.region_problem(Settings(kubeconfig=None, context=None), topo)
    assert aws.region_problem(Settings(kubeconfig=None, context=None, aws_region="eu-west-1"), topo) is None
    topo.nodes[0] = Node("worker-1", "worker", "10.240.0.21", "aws:///eu-west-1b/i-0abc")
    assert aws.region_problem(Settings(kubeconfig=None, context=None), topo) is None
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    topo.nodes[0] = Node("worker-1", "worker", "10.240.0.21")
    assert aws.region_problem(Settings(kubeconfig=None, context=None), topo) is None  # no credentials: lenient


@set_initial_no_auth_action_count(0)
@mock_aws
def test_rejected_credentials_skip_with_the_error_code(aws_env):
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    with pytest.raises(aws.Unavailable) as exc:
        aws.inventory(SETTINGS, topo)
    assert str(exc.value).startswith("AWS refused DescribeInstances (AuthFailure: ")
    assert "\n" not in str(exc.value)


def test_unreachable_endpoint_skips_with_the_error(aws_env):
    topo = Topology([Node("worker-1", "worker", "10.240.0.21")], ("10.32.0.1", 443), [], "other")
    with socket.socket() as bound_not_listening:  # held, so connections are refused
        bound_not_listening.bind(("127.0.0.1", 0))
        aws_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}")
        with pytest.raises(aws.Unavailable) as exc:
            aws.inventory(SETTINGS, topo)
    assert str(exc.value).startswith("AWS not reachable or not configured (EndpointConnectionError: ")


def test_routes_pod_ips_natively():
    pool = {"name": "p", "cidr": "10.200.0.0/16"}
    assert aws.routes_pod_ips_natively("calico", [{**pool, "ipipMode": "Always"}]) is False
    assert aws.routes_pod_ips_natively("calico", [{**pool, "vxlanMode": "Always"}]) is False
    assert aws.routes_pod_ips_natively("calico", [{**pool, "ipipMode": "CrossSubnet"}]) is True
    assert aws.routes_pod_ips_natively("calico", [{**pool, "ipipMode": "Never"}]) is True
    assert aws.routes_pod_ips_natively("calico", [pool]) is True
    assert aws.routes_pod_ips_natively("calico", [{**pool, "ipipMode": "Always"}, pool]) is True
    assert aws.routes_pod_ips_natively("calico", None) is None
    assert aws.routes_pod_ips_natively("flannel", None) is False
    assert aws.routes_pod_ips_natively("flannel", None, "udp") is False
    assert aws.routes_pod_ips_natively("flannel", None, "host-gw") is True
    assert aws.routes_pod_ips_natively("other", None) is None


def test_calico_cross_subnet_encapsulates_only_between_subnets():
    topo = Topology([], ("10.32.0.1", 443), [], "calico",
                    [{"name": "p", "cidr": "10.200.0.0/16", "ipipMode": "CrossSubnet"}])
    assert aws.cni_traffic_needed(topo, same_subnet=True) == ([aws.CALICO_BGP], True)
    assert aws.cni_traffic_needed(topo, same_subnet=False) == ([aws.CALICO_BGP, aws.IP_IN_IP], False)


# ---------------------------------------------------------------- through a real moto server

@pytest.fixture
def moto_server(aws_env):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # 0: any free port
    server.start()
    host, port = server.get_host_and_port()
    aws_env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    server.stop()


def test_through_a_moto_server_as_the_lab_runs_it(moto_server):
    client = boto3.client("ec2", region_name=REGION)  # reaches the server through AWS_ENDPOINT_URL
    e = field_report_estate(client, apiserver_open=False)
    e.source_dest_check("worker-1", instance=False, interface=False)
    topo = e.topology(pools=NATIVE)
    inv = aws.inventory(SETTINGS, topo)
    assert inv.client.meta.endpoint_url == moto_server
    facts = aws.facts(SETTINGS, topo)
    found = {(f["cause"], f["subject"]) for f in facts["findings"]}
    assert (aws.APISERVER, "worker-1->10.240.0.11:6444") in found
    assert facts["source_dest"]["worker-2"]["on"] and not facts["source_dest"]["worker-1"]["on"]
    assert not any(subject.startswith("master-") and cause == aws.APISERVER for cause, subject in found)


# ---------------------------------------------------------------- the suite file, as users run it

SUITE = Path(__file__).resolve().parent.parent / "suites" / "test_aws.py"
# The inner run keeps seatrials.plugin's parametrization and fixtures; only the
# cluster discovery is replaced by the topology this test writes.
SUITE_CONFTEST = """
import json
from pathlib import Path

from seatrials.options import Settings
from seatrials.plugin import STATE, Run, pytest_generate_tests, pytest_pyfunc_call, settings, topology  # noqa: F401
from seatrials.topology import Topology


def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): the documented causes this check can point at")
    config.addinivalue_line("markers", "area(name): what the check signs off")
    data = json.loads(Path(__file__).with_name("topology.json").read_text())
    config.stash[STATE] = Run(Settings(kubeconfig=None, context=None, aws_region="us-east-1"),
                              topology=Topology.from_json(data))
"""


def run_suite(pytester, topology: Topology) -> pytest.RunResult:
    pytester.makeconftest(SUITE_CONFTEST)
    pytester.path.joinpath("topology.json").write_text(json.dumps(topology.to_json()))
    pytester.path.joinpath("test_aws_suite.py").write_text(SUITE.read_text())  # not test_aws: this module
    return pytester.runpytest("-rs", "-p", "no:cacheprovider")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")
    return {r.nodeid.split("::")[1]: r.outcome for r in reports if r.when == "call" or r.outcome == "skipped"}


def test_suite_ids_verdicts_and_fixes(pytester, moto_server):
    e = field_report_estate(boto3.client("ec2", region_name=REGION), apiserver_open=False)
    e.source_dest_check("worker-1", instance=False, interface=False)
    e.allow("masters", "-1", cidr="10.200.0.0/16")
    e.allow("workers", "-1", cidr="10.200.0.0/16")
    result = run_suite(pytester, e.topology(pools=NATIVE))
    seen = outcomes(result)
    assert seen["test_source_dest_check[worker-1]"] == "passed"
    assert seen["test_source_dest_check[worker-2]"] == "failed"
    assert seen["test_nodes_reach_apiserver_port[worker-1->10.240.0.11:6444]"] == "failed"
    assert seen["test_nodes_reach_apiserver_port[master-2->10.240.0.11:6444]"] == "passed"
    assert seen["test_nodes_reach_apiserver_port[master-1->10.240.0.11:6444]"] == "skipped"  # its own endpoint
    assert seen["test_cni_traffic_between_groups[worker-1->master-1]"] == "passed"
    assert seen["test_cni_traffic_between_groups[master-2->worker-2]"] == "passed"
    assert (f"add to {e.groups['masters']} (seatrials-lab-masters) inbound: tcp 6444 "
            f"from {e.groups['workers']} (seatrials-lab-workers)") in result.stdout.str()


def test_suite_is_not_checked_without_credentials(pytester, aws_env):
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    nodes = [Node("master-1", "master", "10.240.0.11"), Node("worker-1", "worker", "10.240.0.21")]
    result = run_suite(pytester, Topology(nodes, ("10.32.0.1", 443), [("10.240.0.11", 6444)], "other"))
    result.assert_outcomes(skipped=8)  # 2 nodes + 2 node->endpoint paths + 2 cross pairs, for two checks
    assert result.stdout.str().count("not checked: no AWS credentials found (set AWS_PROFILE or") >= 1

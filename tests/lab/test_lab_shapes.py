"""The lab's shapes judged frame by frame: moto populated as `up` populates it, the VPC filter derived
from it as `sync-vpc` derives it, and frames walked through the result (tests/lab/frames.py)."""

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws
from seatrials_lab import aws, cluster, faults, vpc_filter
from seatrials_lab.addons import flannel_objects
from seatrials_lab.layout import REGION, Paths, plan
from seatrials_lab.node import kubelet_config
from seatrials_lab.shell import LabError

from .frames import Frame, walk

VXLAN, POD_PORT = 8472, 8080


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


class Lab:
    """moto holding one lab shape, and the filter derived from it."""

    def __init__(self, client, masters: int, workers: int, subnets: int, native_routes: bool):
        self.client, self.nodes = client, plan(masters, workers, subnets)
        self.instances = aws.populate(client, self.nodes, native_routes)
        self.sync()

    def sync(self) -> None:
        """Derive the filter from moto again, as `lab/lab sync-vpc` does after EC2 state changed."""
        self.rules = vpc_filter.iptables_rules(aws.read_vpc(self.client, self.nodes))

    def node(self, name: str):
        return next(n for n in self.nodes if n.name == name)

    def frame(self, source: str, target: str, protocol="tcp", port=POD_PORT, pods=False) -> Frame:
        """A new connection between two nodes: node IP to node IP, or (pods) pod IP to pod IP."""
        a, b = self.node(source), self.node(target)
        address = (lambda n: n.pod_cidr.replace(".0/24", ".5")) if pods else (lambda n: n.ip)
        return Frame(a.port, b.port, address(a), address(b), protocol, port)

    def passes(self, frame: Frame) -> bool:
        return walk(self.rules, frame)[0] == "ACCEPT"

    def table_of(self, subnet: int) -> str:
        cidr = f"10.240.{subnet}.0/24"
        subnet_id = self.client.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [cidr]}])["Subnets"][0]
        found = self.client.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id["SubnetId"]]}]
        )["RouteTables"]
        return found[0]["RouteTableId"]

    def acl_of(self, subnet: int) -> str:
        cidr = f"10.240.{subnet}.0/24"
        subnet_id = self.client.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [cidr]}])["Subnets"][0]
        by_subnet = [{"Name": "association.subnet-id", "Values": [subnet_id["SubnetId"]]}]
        return self.client.describe_network_acls(Filters=by_subnet)["NetworkAcls"][0]["NetworkAclId"]


# --- VXLAN: the outer packet is what the VPC sees -----------------------------------------------


def test_source_dest_check_does_not_break_vxlan_but_drops_pod_ips(ec2):
    lab = Lab(ec2, 1, 2, 1, native_routes=False)
    aws.set_source_dest_check(ec2, lab.instances["worker-1"], True)
    lab.sync()
    assert lab.passes(lab.frame("worker-1", "master-1", "udp", VXLAN))  # node IP to node IP
    assert lab.passes(lab.frame("master-1", "worker-1", "udp", VXLAN))
    assert not lab.passes(lab.frame("worker-1", "master-1", pods=True))  # the same pods, unencapsulated
    assert not lab.passes(lab.frame("master-1", "worker-1", pods=True))


def test_masters_refusing_udp_8472_cut_the_workers_overlay_only(ec2):
    lab = Lab(ec2, 3, 2, 1, native_routes=False)
    groups = aws.lab_groups(ec2)
    aws.replace_ingress(ec2, groups["master"], faults.masters_refuse_vxlan_from_workers(*groups.values()))
    lab.sync()
    assert not lab.passes(lab.frame("worker-1", "master-1", "udp", VXLAN))
    assert lab.passes(lab.frame("master-1", "worker-1", "udp", VXLAN))  # the workers' group is untouched
    assert lab.passes(lab.frame("master-2", "master-1", "udp", VXLAN))  # masters admit each other
    for protocol, port in (("tcp", 6444), ("tcp", 10250), ("udp", 53), ("udp", VXLAN + 1)):
        assert lab.passes(lab.frame("worker-1", "master-1", protocol, port)), (protocol, port)


def test_healthy_groups_carry_vxlan_between_every_pair_across_subnets(ec2):
    lab = Lab(ec2, 3, 4, 3, native_routes=False)
    for a in lab.nodes:
        for b in lab.nodes:
            if a != b:
                assert lab.passes(lab.frame(a.name, b.name, "udp", VXLAN)), (a.name, b.name)


# --- route tables: pod IPs between subnets --------------------------------------------------------


def test_pod_ips_cross_subnets_only_where_the_route_table_routes_them(ec2):
    lab = Lab(ec2, 1, 4, 3, native_routes=True)  # worker-1, -3 in subnet 1; worker-2, -4 in subnet 2
    assert lab.passes(lab.frame("worker-1", "worker-2", pods=True))
    assert lab.passes(lab.frame("worker-1", "worker-3", pods=True))  # inside a subnet: no route table
    ec2.delete_route(RouteTableId=lab.table_of(1), DestinationCidrBlock=lab.node("worker-2").pod_cidr)
    lab.sync()
    assert not lab.passes(lab.frame("worker-1", "worker-2", pods=True))
    assert lab.passes(lab.frame("worker-2", "worker-1", pods=True))  # subnet 2's table still routes back
    assert lab.passes(lab.frame("worker-1", "worker-2"))  # node IPs: the local route
    assert lab.passes(lab.frame("worker-1", "worker-3", pods=True))


def test_without_routes_native_routing_across_subnets_fails_as_on_ec2(ec2):
    lab = Lab(ec2, 1, 2, 3, native_routes=False)
    assert not lab.passes(lab.frame("worker-1", "worker-2", pods=True))
    assert not lab.passes(lab.frame("master-1", "worker-1", pods=True))
    assert lab.passes(lab.frame("worker-1", "worker-2", "udp", VXLAN))  # what an overlay needs instead


def test_a_route_delivers_to_its_target_only_and_the_longest_prefix_wins(ec2):
    lab = Lab(ec2, 1, 4, 3, native_routes=False)
    table, worker2, worker4 = lab.table_of(1), lab.node("worker-2"), lab.node("worker-4")
    interface = ec2.describe_instances(InstanceIds=[lab.instances["worker-4"]])["Reservations"][0]["Instances"][0]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="10.200.0.0/16", InstanceId=lab.instances["worker-2"])
    ec2.create_route(RouteTableId=table, DestinationCidrBlock=worker4.pod_cidr,
                     NetworkInterfaceId=interface["NetworkInterfaces"][0]["NetworkInterfaceId"])  # fmt: skip
    lab.sync()
    assert lab.passes(lab.frame("worker-1", "worker-2", pods=True))  # by the /16
    assert lab.passes(lab.frame("worker-1", "worker-4", pods=True))  # by the /24 to worker-4's interface
    misrouted = lab.frame("worker-1", "worker-4", pods=True)
    assert not lab.passes(Frame(misrouted.port_in, worker2.port, misrouted.src, misrouted.dst))  # not the /16's


# --- network ACLs between subnets: stateless, ports and protocols ------------------------------


def test_acls_judge_every_frame_between_subnets_by_protocol_and_port(ec2):
    lab = Lab(ec2, 1, 4, 3, native_routes=True)
    acl = lab.acl_of(2)  # worker-2 and worker-4's subnet
    for entry in (e for e in ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]["Entries"]
                  if not e["Egress"]):  # fmt: skip
        ec2.delete_network_acl_entry(NetworkAclId=acl, RuleNumber=entry["RuleNumber"], Egress=False)
    entry = {"NetworkAclId": acl, "Egress": False, "RuleAction": "allow", "CidrBlock": "10.0.0.0/8"}
    ec2.create_network_acl_entry(**entry, RuleNumber=90, Protocol="17", PortRange={"From": VXLAN, "To": VXLAN})
    ec2.create_network_acl_entry(**entry, RuleNumber=100, Protocol="6", PortRange={"From": 6444, "To": 6444})
    lab.sync()
    assert lab.passes(lab.frame("worker-1", "worker-2", "udp", VXLAN))
    assert lab.passes(lab.frame("worker-1", "worker-2", "tcp", 6444))
    assert not lab.passes(lab.frame("worker-1", "worker-2", "tcp", 10250))  # no entry: the final * denies
    assert not lab.passes(lab.frame("worker-1", "worker-2", "udp", VXLAN + 1))
    assert lab.passes(lab.frame("worker-4", "worker-2", "tcp", 10250))  # inside the subnet: no ACL
    # Stateless: the reply of an accepted connection into subnet 2 (to an ephemeral port) is judged again.
    into_two = lab.frame("worker-2", "worker-1", "tcp", 6444)
    assert lab.passes(into_two) and not lab.passes(into_two.reply())


def test_healthy_subnet_acls_admit_replies_on_ephemeral_ports(ec2):
    lab = Lab(ec2, 1, 2, 3, native_routes=True)
    for frame in (lab.frame("worker-1", "master-1", "tcp", 6444), lab.frame("worker-1", "worker-2", pods=True)):
        assert lab.passes(frame) and lab.passes(frame.reply())


# --- size: the filter's walk stays short ----------------------------------------------------------


def test_a_frame_walks_a_few_dozen_rules_with_a_dozen_workers_in_three_subnets(ec2):
    lab = Lab(ec2, 3, 12, 3, native_routes=True)
    walks = [walk(lab.rules, lab.frame(a.name, b.name, pods=True)) for a in lab.nodes for b in lab.nodes if a != b]
    assert all(verdict == "ACCEPT" for verdict, _ in walks)
    assert max(length for _, length in walks) < 8 * len(lab.nodes)  # linear in the nodes: 210 pairs would not be


# --- what moto and the nodes say ---------------------------------------------------------------


def test_several_subnets_get_their_own_acl_route_table_and_zone(ec2):
    lab = Lab(ec2, 3, 4, 3, native_routes=True)
    subnets = ec2.describe_subnets()["Subnets"]
    assert sorted((s["CidrBlock"], s["AvailabilityZone"]) for s in subnets if s["CidrBlock"].startswith("10.240.")) == [
        ("10.240.0.0/24", "us-east-1a"), ("10.240.1.0/24", "us-east-1b"), ("10.240.2.0/24", "us-east-1a")]  # fmt: skip
    assert len({lab.acl_of(i) for i in range(3)}) == len({lab.table_of(i) for i in range(3)}) == 3
    routes = ec2.describe_route_tables(RouteTableIds=[lab.table_of(0)])["RouteTables"][0]["Routes"]
    assert {r["DestinationCidrBlock"]: r.get("InstanceId") for r in routes if "InstanceId" in r} == {
        n.pod_cidr: lab.instances[n.name] for n in lab.nodes if n.subnet != 0}


def test_one_subnet_keeps_the_default_acl_and_the_main_route_table(ec2):
    Lab(ec2, 1, 2, 1, native_routes=True)
    ours = [{"Name": "vpc-id", "Values": [aws.lab_vpc(ec2)]}]
    assert [a["IsDefault"] for a in ec2.describe_network_acls(Filters=ours)["NetworkAcls"]] == [True]
    tables = ec2.describe_route_tables(Filters=ours)["RouteTables"]
    assert not [a for t in tables for a in t["Associations"] if a.get("SubnetId")]


def test_provider_ids_carry_each_nodes_zone():
    worker1, worker2 = plan(1, 2, 3)[1:]
    assert kubelet_config(worker1, "i-1")["providerID"] == "aws:///us-east-1b/i-1"
    assert kubelet_config(worker2, "i-2")["providerID"] == "aws:///us-east-1a/i-2"


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_flannel_is_deployed_as_upstream_names_it(backend):
    objects = {(o["kind"], o["metadata"]["name"]): o for o in flannel_objects("flannel:test", backend)}
    daemonset = objects[("DaemonSet", "kube-flannel-ds")]
    config = objects[("ConfigMap", "kube-flannel-cfg")]
    assert daemonset["metadata"]["namespace"] == config["metadata"]["namespace"] == "kube-flannel"
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
    assert json.loads(config["data"]["net-conf.json"]) == {
        "Network": "10.200.0.0/16", "EnableNFTables": False, "Backend": {"Type": backend}}  # fmt: skip
    assert json.loads(config["data"]["cni-conf.json"])["plugins"][0]["type"] == "flannel"
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--kube-subnet-mgr", "--ip-masq", "--cni-conf=/etc/kube-flannel/cni-conf.json"} <= set(args)


def test_a_dozen_workers_raise_the_inotify_limit_for_the_labs_lifetime_only(tmp_path, monkeypatch):
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    monkeypatch.setattr(cluster, "INOTIFY_INSTANCES", limit)
    paths = Paths(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache", lab=tmp_path)
    record = {}
    cluster._enough_inotify_instances(paths, record, nodes=3)
    assert limit.read_text() == "128\n" and record == {}  # the default shape fits the default limit
    cluster._enough_inotify_instances(paths, record, nodes=15)
    assert int(limit.read_text()) > 200 and cluster.load_record(paths)["inotify_instances_was"] == 128


# --- faults that only some shapes can have -------------------------------------------------------


def test_the_cross_subnet_fault_takes_every_pod_route_out_and_puts_it_back(ec2):
    lab = Lab(ec2, 1, 4, 3, native_routes=True)
    routes = sorted((r["DestinationCidrBlock"], r["InstanceId"]) for r in aws.pod_routes(ec2))
    assert len(routes) == 5 * 2  # each subnet's table routes the other subnets' nodes' pod CIDRs
    aws.set_pod_routes(ec2, lab.nodes, lab.instances, present=False)
    lab.sync()
    assert aws.pod_routes(ec2) == []
    assert not lab.passes(lab.frame("worker-1", "worker-2", pods=True))
    assert lab.passes(lab.frame("worker-1", "worker-3", pods=True))  # one subnet: no route table on the way
    aws.set_pod_routes(ec2, lab.nodes, lab.instances, present=True)
    lab.sync()
    assert sorted((r["DestinationCidrBlock"], r["InstanceId"]) for r in aws.pod_routes(ec2)) == routes
    assert lab.passes(lab.frame("worker-1", "worker-2", pods=True))


@pytest.mark.parametrize("cause,cni,subnets,why", [
    ("cross-subnet-native-routing", "native", 1, "share one subnet"),
    ("cross-subnet-native-routing", "flannel-vxlan", 3, "inside VXLAN"),
    ("cni-agent-down", "native", 1, "runs no CNI agent"),
    ("pod-route-missing", "flannel-vxlan", 1, "belong to flanneld"),
    ("pod-route-missing", "flannel-host-gw", 1, "belong to flanneld"),
])
def test_a_fault_the_shape_cannot_have_is_refused_with_the_reason(cause, cni, subnets, why):
    lab = SimpleNamespace(cni=cni, nodes=plan(1, 4, subnets))
    with pytest.raises(LabError, match=f"^{cause} cannot be injected here: .*{why}"):
        faults.inject(lab, cause)


@pytest.mark.parametrize("cause,cni,subnets", [
    ("cross-subnet-native-routing", "native", 3),
    ("cross-subnet-native-routing", "flannel-host-gw", 3),
    ("cni-agent-down", "flannel-vxlan", 1),
    ("cni-agent-down", "flannel-host-gw", 3),
    ("pod-route-missing", "native", 3),
])
def test_a_fault_the_shape_can_have_is_not_refused(cause, cni, subnets):
    assert faults.FAULTS[cause].not_in(SimpleNamespace(cni=cni, nodes=plan(1, 4, subnets))) == ""


@pytest.mark.parametrize("version,refused", [("v1.34.4", False), ("v1.35.4", True), ("v1.37.2", True)])
def test_the_open_front_proxy_is_refused_where_kube_apiserver_will_not_start_with_it(version, refused):
    lab = SimpleNamespace(record={"kubernetes": version})
    why = faults.FAULTS["requestheader-open-impersonation"].not_in(lab)
    assert ("refuses to start with it" in why) == refused and (why == "") != refused

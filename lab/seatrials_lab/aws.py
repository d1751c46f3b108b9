"""AWS in a box: a moto server holding the lab's VPC, security groups and one instance per node.

moto's state is the lab's truth: the VPC filter is derived from it (sync_vpc), so what
describe_* says and what packets do always agree.
"""

from __future__ import annotations

import ipaddress
import sys

from . import net, processes, vpc_filter
from .layout import (
    APISERVER_PORT,
    AWS_KEY,
    BALANCER_PORT,
    HOST_CGROUP,
    MOTO_PORT,
    NODE_SUBNET,
    POD_CIDR,
    REGION,
    VPC_CIDR,
    VPC_NETNS,
    Node,
    Paths,
    subnet_cidr,
    subnet_zone,
)
from .shell import LabError, port_open, run, wait_for

ENDPOINT = f"http://127.0.0.1:{MOTO_PORT}"
VPC_NAME = "seatrials-lab"
MASTERS_GROUP = "seatrials-lab-masters"
WORKERS_GROUP = "seatrials-lab-workers"


def start_moto(paths: Paths) -> None:
    if port_open("127.0.0.1", MOTO_PORT):
        raise LabError(f"127.0.0.1:{MOTO_PORT} is already in use; the lab's moto server needs it")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(MOTO_PORT)]
    processes.start(paths, "moto", argv, log=paths.logs / "moto.log", cgroup=HOST_CGROUP)
    wait_for(f"moto on 127.0.0.1:{MOTO_PORT}", lambda: port_open("127.0.0.1", MOTO_PORT), timeout=30)


def ec2():
    try:
        import boto3
    except ImportError as e:
        raise LabError("the lab needs boto3 and moto[server]: run it with a Python that has them (README)") from e
    return boto3.client(
        "ec2", endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id=AWS_KEY, aws_secret_access_key=AWS_KEY
    )


def healthy_ingress(
    masters: str, workers: str, node_subnets: tuple[str, ...] = (NODE_SUBNET,)
) -> dict[str, list[dict]]:
    """The healthy security group rules: each group admits everything from itself, from the other
    group and from the pod CIDR (pod IPs never match a group reference); masters also admit the
    apiserver ports (6443 on the balancer, 6444 on the apiserver itself) from the nodes' subnets."""
    from_nodes_and_pods = {
        "IpProtocol": "-1",
        "UserIdGroupPairs": [{"GroupId": masters}, {"GroupId": workers}],
        "IpRanges": [{"CidrIp": POD_CIDR, "Description": "pods"}],
    }
    apiserver = [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": c} for c in node_subnets]}
        for port in (BALANCER_PORT, APISERVER_PORT)
    ]
    return {masters: [from_nodes_and_pods, *apiserver], workers: [from_nodes_and_pods]}


def node_subnets(nodes: list[Node]) -> tuple[str, ...]:
    return tuple(subnet_cidr(i) for i in sorted({n.subnet for n in nodes}))


def populate(client, nodes: list[Node], native_routes: bool) -> dict[str, str]:
    """Create the VPC, its subnets, the groups and one instance per node; returns instance ids by node name.

    With several subnets each gets its own network ACL and route table; when pod IPs travel natively
    (`native_routes`), every route table routes each other subnet's nodes' pod CIDRs to their instances,
    as an operator of such a cluster on EC2 must."""
    vpc = client.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    client.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": VPC_NAME}])
    subnets = {
        index: client.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr(index), AvailabilityZone=subnet_zone(index))[
            "Subnet"
        ]["SubnetId"]
        for index in sorted({n.subnet for n in nodes})
    }
    groups = {
        role: client.create_security_group(GroupName=name, Description=f"seatrials lab {role}s", VpcId=vpc)["GroupId"]
        for role, name in (("master", MASTERS_GROUP), ("worker", WORKERS_GROUP))
    }
    for group, permissions in healthy_ingress(groups["master"], groups["worker"], node_subnets(nodes)).items():
        client.authorize_security_group_ingress(GroupId=group, IpPermissions=permissions)
    instances = {}
    for node in nodes:
        launched = client.run_instances(
            ImageId="ami-0123456789abcdef0",
            InstanceType="t3.medium",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnets[node.subnet],
            PrivateIpAddress=node.ip,
            SecurityGroupIds=[groups[node.role]],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": node.name}]}],
        )["Instances"][0]
        instance = launched["InstanceId"]
        set_source_dest_check(client, instance, False)  # native pod routing needs the check off
        instances[node.name] = instance
    if len(subnets) > 1:
        for index, subnet in subnets.items():
            _subnet_acl(client, vpc, subnet, index)
            routes = routes_from(index, nodes, instances) if native_routes else {}
            _subnet_route_table(client, vpc, subnet, index, routes)
    return instances


ACL_DENY_RULE = 50  # ahead of the subnets' allow rules (100, 110)


def routes_from(index: int, nodes: list[Node], instances: dict[str, str]) -> dict[str, str]:
    """The pod CIDR routes subnet `index`'s route table needs for native routing: each node of another subnet's
    pod CIDR to its instance."""
    return {n.pod_cidr: instances[n.name] for n in nodes if n.subnet != index}


def _subnet_tables(client, nodes: list[Node]) -> dict[int, str]:
    """The lab's route tables by the index of the subnet they are associated with."""
    by_vpc = [{"Name": "vpc-id", "Values": [lab_vpc(client)]}]
    cidrs = {subnet_cidr(n.subnet): n.subnet for n in nodes}
    index = {s["SubnetId"]: cidrs[s["CidrBlock"]] for s in client.describe_subnets(Filters=by_vpc)["Subnets"]
             if s["CidrBlock"] in cidrs}
    return {index[a["SubnetId"]]: t["RouteTableId"] for t in client.describe_route_tables(Filters=by_vpc)["RouteTables"]
            for a in t.get("Associations", []) if a.get("SubnetId") in index}


def set_pod_routes(client, nodes: list[Node], instances: dict[str, str], present: bool) -> None:
    """Put every subnet's pod CIDR routes in its route table, or take them all out."""
    for index, table in _subnet_tables(client, nodes).items():
        for cidr, instance in routes_from(index, nodes, instances).items():
            if present:
                client.create_route(RouteTableId=table, DestinationCidrBlock=cidr, InstanceId=instance)
            else:
                client.delete_route(RouteTableId=table, DestinationCidrBlock=cidr)


def _lab_acls(client) -> list[dict]:
    """The lab subnets' own network ACLs (not the VPC's default one)."""
    acls = client.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [lab_vpc(client)]}])["NetworkAcls"]
    return [a for a in acls if not a.get("IsDefault")]


def set_acl_deny(client, port: int, present: bool) -> None:
    """A deny of TCP `port` both ways in every lab subnet's ACL, ahead of its allow rules; or none."""
    for acl in _lab_acls(client):
        for egress in (False, True):
            entry = {"NetworkAclId": acl["NetworkAclId"], "RuleNumber": ACL_DENY_RULE, "Egress": egress}
            if present:
                client.create_network_acl_entry(**entry, Protocol="6", RuleAction="deny", CidrBlock="0.0.0.0/0",
                                                PortRange={"From": port, "To": port})
            else:
                client.delete_network_acl_entry(**entry)


def acl_denies(client, port: int) -> list[dict]:
    return [e for a in _lab_acls(client) for e in a["Entries"] if e["RuleAction"] == "deny"
            and e.get("PortRange", {}).get("From") == port]


def pod_routes(client) -> list[dict]:
    """The routes of the lab's route tables to pod CIDRs."""
    tables = client.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [lab_vpc(client)]}])["RouteTables"]
    pods = ipaddress.ip_network(POD_CIDR)
    return [r for t in tables for r in t["Routes"] if r.get("DestinationCidrBlock")
            and ipaddress.ip_network(r["DestinationCidrBlock"]).subnet_of(pods)]


def _name_tag(client, resource: str, index: int) -> None:
    name = f"{VPC_NAME}-{subnet_zone(index)}-{index}"
    client.create_tags(Resources=[resource], Tags=[{"Key": "Name", "Value": name}])


def _subnet_acl(client, vpc: str, subnet: str, index: int) -> None:
    """A network ACL of the subnet's own: all traffic in and out to the VPC and the pods (stateless, so the
    replies' ephemeral ports are inside), nothing else."""
    acl = client.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    _name_tag(client, acl, index)
    for egress in (False, True):
        for number, cidr in ((100, VPC_CIDR), (110, POD_CIDR)):
            client.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol="-1", RuleAction="allow",
                                            Egress=egress, CidrBlock=cidr)  # fmt: skip
    by_subnet = [{"Name": "association.subnet-id", "Values": [subnet]}]
    current = client.describe_network_acls(Filters=by_subnet)["NetworkAcls"][0]
    association = next(a for a in current["Associations"] if a["SubnetId"] == subnet)["NetworkAclAssociationId"]
    client.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)


def _subnet_route_table(client, vpc: str, subnet: str, index: int, pod_routes: dict[str, str]) -> None:
    """The subnet's route table: the VPC's local route, and a route per pod CIDR to its node's instance."""
    table = client.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    _name_tag(client, table, index)
    client.associate_route_table(RouteTableId=table, SubnetId=subnet)
    for cidr, instance in pod_routes.items():
        client.create_route(RouteTableId=table, DestinationCidrBlock=cidr, InstanceId=instance)


def lab_vpc(client) -> str:
    for vpc in client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [VPC_NAME]}])["Vpcs"]:
        return vpc["VpcId"]
    raise LabError(f"moto at {ENDPOINT} holds no VPC named {VPC_NAME}")


def read_vpc(client, nodes: list[Node]) -> vpc_filter.VpcState:
    """Everything the filter depends on, read back from moto."""
    by_vpc = [{"Name": "vpc-id", "Values": [lab_vpc(client)]}]
    reservations = client.describe_instances(Filters=by_vpc)["Reservations"]
    checks = {
        i["InstanceId"]: client.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="sourceDestCheck")[
            "SourceDestCheck"
        ]["Value"]
        for r in reservations
        for i in r["Instances"]
    }
    return vpc_filter.vpc_state(
        reservations,
        client.describe_security_groups(Filters=by_vpc)["SecurityGroups"],
        checks,
        client.describe_network_acls(Filters=by_vpc)["NetworkAcls"],
        {node.name: node.port for node in nodes},
        client.describe_route_tables(Filters=by_vpc)["RouteTables"],
    )


def sync_vpc(nodes: list[Node]) -> str:
    """Re-derive the VPC filter from moto and swap it in atomically; returns the rules applied."""
    rules = vpc_filter.iptables_rules(read_vpc(ec2(), nodes))
    run(net.in_netns(VPC_NETNS, ["iptables-restore"]), input=rules)
    return rules


def lab_groups(client) -> dict[str, str]:
    """The lab's security group ids by role ("master", "worker")."""
    by_name = [{"Name": "vpc-id", "Values": [lab_vpc(client)]}]
    ids = {g["GroupName"]: g["GroupId"] for g in client.describe_security_groups(Filters=by_name)["SecurityGroups"]}
    return {"master": ids[MASTERS_GROUP], "worker": ids[WORKERS_GROUP]}


def replace_ingress(client, group: str, permissions: list[dict]) -> None:
    """Make the group's inbound rules exactly `permissions` (revoke what is there, authorize these)."""
    if current := client.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]:
        client.revoke_security_group_ingress(GroupId=group, IpPermissions=current)
    client.authorize_security_group_ingress(GroupId=group, IpPermissions=permissions)


def set_source_dest_check(client, instance: str, enabled: bool) -> None:
    """On the instance and on each of its network interfaces (moto keeps the two apart; EC2 keeps one)."""
    client.modify_instance_attribute(InstanceId=instance, SourceDestCheck={"Value": enabled})
    for interface in _interfaces(client, instance):
        client.modify_network_interface_attribute(NetworkInterfaceId=interface, SourceDestCheck={"Value": enabled})


def source_dest_checks(client, instance: str) -> dict[str, bool]:
    """The check as EC2 reports it: the instance attribute, and each network interface's."""
    found = {
        instance: client.describe_instance_attribute(InstanceId=instance, Attribute="sourceDestCheck")[
            "SourceDestCheck"
        ]["Value"]
    }
    for interface in _interfaces(client, instance):
        answer = client.describe_network_interface_attribute(NetworkInterfaceId=interface, Attribute="sourceDestCheck")
        found[interface] = answer["SourceDestCheck"]["Value"]
    return found


def _interfaces(client, instance: str) -> list[str]:
    reservations = client.describe_instances(InstanceIds=[instance])["Reservations"]
    return [eni["NetworkInterfaceId"] for r in reservations for i in r["Instances"] for eni in i["NetworkInterfaces"]]

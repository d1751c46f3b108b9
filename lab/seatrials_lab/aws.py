"""AWS in a box: a moto server holding the lab's VPC, security groups and one instance per node.

moto's state is the lab's truth: the VPC filter is derived from it (sync_vpc), so what
describe_* says and what packets do always agree.
"""

from __future__ import annotations

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
    VPC_NETNS,
    ZONE,
    Node,
    Paths,
)
from .shell import LabError, port_open, run, wait_for

ENDPOINT = f"http://127.0.0.1:{MOTO_PORT}"
VPC_CIDR = "10.240.0.0/16"
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


def healthy_ingress(masters: str, workers: str) -> dict[str, list[dict]]:
    """The healthy security group rules: each group admits everything from itself, from the other
    group and from the pod CIDR (pod IPs never match a group reference); masters also admit the
    apiserver ports (6443 on the balancer, 6444 on the apiserver itself) from the node subnet."""
    from_nodes_and_pods = {
        "IpProtocol": "-1",
        "UserIdGroupPairs": [{"GroupId": masters}, {"GroupId": workers}],
        "IpRanges": [{"CidrIp": POD_CIDR, "Description": "pods"}],
    }
    apiserver = [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": NODE_SUBNET}]}
        for port in (BALANCER_PORT, APISERVER_PORT)
    ]
    return {masters: [from_nodes_and_pods, *apiserver], workers: [from_nodes_and_pods]}


def populate(client, nodes: list[Node]) -> dict[str, str]:
    """Create the VPC, subnet, groups and one instance per node; returns instance ids by node name."""
    vpc = client.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    client.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": VPC_NAME}])
    subnet = client.create_subnet(VpcId=vpc, CidrBlock=NODE_SUBNET, AvailabilityZone=ZONE)["Subnet"]["SubnetId"]
    groups = {
        role: client.create_security_group(GroupName=name, Description=f"seatrials lab {role}s", VpcId=vpc)["GroupId"]
        for role, name in (("master", MASTERS_GROUP), ("worker", WORKERS_GROUP))
    }
    for group, permissions in healthy_ingress(groups["master"], groups["worker"]).items():
        client.authorize_security_group_ingress(GroupId=group, IpPermissions=permissions)
    instances = {}
    for node in nodes:
        launched = client.run_instances(
            ImageId="ami-0123456789abcdef0",
            InstanceType="t3.medium",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            PrivateIpAddress=node.ip,
            SecurityGroupIds=[groups[node.role]],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": node.name}]}],
        )["Instances"][0]
        instance = launched["InstanceId"]
        set_source_dest_check(client, instance, False)  # native pod routing needs the check off
        instances[node.name] = instance
    return instances


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

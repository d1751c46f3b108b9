"""The VPC filter derived from EC2 state: security groups, source/destination check, network ACLs."""

import os
import shutil
import subprocess
from dataclasses import replace

import pytest
from seatrials_lab.aws import healthy_ingress
from seatrials_lab.vpc_filter import iptables_rules, protocol_match, vpc_state

from .frames import Frame, verdict

MASTERS, WORKERS = "sg-masters", "sg-workers"
ALLOW_ALL_EGRESS = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
DEFAULT_ACL = [
    {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": False, "CidrBlock": "0.0.0.0/0"},
    {"RuleNumber": 32767, "Protocol": "-1", "RuleAction": "deny", "Egress": False, "CidrBlock": "0.0.0.0/0"},
    {"RuleNumber": 100, "Protocol": "-1", "RuleAction": "allow", "Egress": True, "CidrBlock": "0.0.0.0/0"},
    {"RuleNumber": 32767, "Protocol": "-1", "RuleAction": "deny", "Egress": True, "CidrBlock": "0.0.0.0/0"},
]


def instance(name, ip, group, *, check=False, eni_check=False, subnet="subnet-a", state="running"):
    """One entry of describe_instances' Instances, as moto returns it."""
    return {
        "InstanceId": f"i-{name}",
        "PrivateIpAddress": ip,
        "SubnetId": subnet,
        "State": {"Name": state},
        "SecurityGroups": [{"GroupId": group}],
        "Tags": [{"Key": "Name", "Value": name}],
        "SourceDestCheck": check,
        "NetworkInterfaces": [{"NetworkInterfaceId": f"eni-{name}", "SourceDestCheck": eni_check}],
    }


def groups(ingress=None, egress=None):
    ingress = ingress or healthy_ingress(MASTERS, WORKERS)
    return [
        {
            "GroupId": g,
            "IpPermissions": ingress.get(g, []),
            "IpPermissionsEgress": (egress or {}).get(g, ALLOW_ALL_EGRESS),
        }
        for g in (MASTERS, WORKERS)
    ]


def rules_for(instances, security_groups=None, acls=None, checks=None):
    state = vpc_state(
        [{"Instances": instances}],
        security_groups or groups(),
        checks or {i["InstanceId"]: i["SourceDestCheck"] for i in instances},
        acls if acls is not None else [{"IsDefault": True, "Entries": DEFAULT_ACL, "Associations": []}],
        {i["Tags"][0]["Value"]: f"p-{i['Tags'][0]['Value']}" for i in instances},
    )
    return iptables_rules(state).splitlines()


LAB = [instance("master-1", "10.240.0.11", MASTERS), instance("worker-1", "10.240.0.21", WORKERS)]


def chain(rules, name):
    return [r for r in rules if r.startswith(f"-A {name} ")]


def jump_to(rules, port, direction):
    """The SG chain the VPC chain sends frames for a port to (physdev-in: outbound, physdev-out: inbound)."""
    flag = "--physdev-in" if direction == "out" else "--physdev-out"
    kind = "SG-OUT" if direction == "out" else "SG-IN"
    return next(r.split("-j ")[1] for r in chain(rules, "VPC") if f"{flag} {port} " in r and f"-j {kind}" in r)


def test_healthy_groups_admit_each_other_by_primary_ip_and_pods_by_cidr():
    rules = rules_for(LAB)
    worker_in = chain(rules, jump_to(rules, "p-worker-1", "in"))
    assert any("-s 10.240.0.11/32 -j ACCEPT" in r for r in worker_in)  # master group, by its instance's IP
    assert any("-s 10.240.0.21/32 -j ACCEPT" in r for r in worker_in)  # its own group
    assert any("-s 10.200.0.0/16 -j ACCEPT" in r for r in worker_in)  # pods: a CIDR rule
    assert worker_in[-1].endswith("-j DROP")


def test_masters_admit_apiserver_ports_from_node_subnet():
    master_in = chain(rules_for(LAB), "SG-IN-1")
    assert any("-p tcp --dport 6444 -s 10.240.0.0/24 -j ACCEPT" in r for r in master_in)
    assert any("-p tcp --dport 6443 -s 10.240.0.0/24 -j ACCEPT" in r for r in master_in)


def test_group_rule_without_pod_cidr_admits_no_pod_ip():
    only_groups = {g: [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": MASTERS}, {"GroupId": WORKERS}]}]
                   for g in (MASTERS, WORKERS)}  # fmt: skip
    worker_in = chain(rules_for(LAB, groups(ingress=only_groups)), "SG-IN-2")
    assert [r.split(" -s ")[1].split()[0] for r in worker_in[:-1]] == ["10.240.0.11/32", "10.240.0.21/32"]


def test_revoked_worker_access_to_apiserver_port():
    ingress = healthy_ingress(MASTERS, WORKERS)
    ingress[MASTERS] = [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": MASTERS}]}]
    master_in = chain(rules_for(LAB, groups(ingress=ingress)), "SG-IN-1")
    assert not any("10.240.0.21" in r or "10.240.0.0/24" in r for r in master_in)


def test_source_dest_check_drops_foreign_addresses_on_that_port_only():
    rules = rules_for(
        [instance("master-1", "10.240.0.11", MASTERS), instance("worker-1", "10.240.0.21", WORKERS, check=True)]
    )
    checks = chain(rules, "VPC-SOURCE-DEST")
    assert len(checks) == 2
    assert "--physdev-in p-worker-1 ! -s 10.240.0.21" in checks[0] and checks[0].endswith("-j DROP")
    assert "--physdev-out p-worker-1 ! -d 10.240.0.21" in checks[1] and checks[1].endswith("-j DROP")


def test_source_dest_check_counts_when_only_the_interface_has_it():
    rules = rules_for([instance("worker-1", "10.240.0.21", WORKERS, check=False, eni_check=True)])
    assert len(chain(rules, "VPC-SOURCE-DEST")) == 2


def test_source_dest_check_is_applied_before_connection_tracking():
    rules = rules_for([instance("worker-1", "10.240.0.21", WORKERS, check=True)])
    vpc = chain(rules, "VPC")
    assert vpc.index("-A VPC -j VPC-SOURCE-DEST") < next(i for i, r in enumerate(vpc) if "ESTABLISHED" in r)


def test_egress_rules_limit_new_connections_from_an_instance():
    egress = {WORKERS: [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]}
    worker_out = chain(rules_for(LAB, groups(egress=egress)), "SG-OUT-2")
    assert worker_out == ["-A SG-OUT-2 -p tcp --dport 443 -d 10.0.0.0/8 -j RETURN", "-A SG-OUT-2 -j DROP"]


def test_acl_applies_only_at_subnet_edges():
    deny_all = [{"IsDefault": True, "Entries": [], "Associations": []}]  # no entry: the final * rule denies
    kubelet = Frame("p-master-1", "p-worker-1", "10.240.0.11", "10.240.0.21", "tcp", 10250)
    operator = Frame("p-host", "p-worker-1", "10.240.0.1", "10.240.0.21", "tcp", 10250)
    assert verdict(rules_for(LAB, acls=deny_all), kubelet) == "ACCEPT"  # one subnet: no edge between them
    assert verdict(rules_for(LAB, acls=deny_all), operator) == "DROP"  # the machine's port is an edge
    two_subnets = [LAB[0], instance("worker-1", "10.240.1.21", WORKERS, subnet="subnet-b")]
    assert verdict(rules_for(two_subnets), replace(kubelet, dst="10.240.1.21")) == "ACCEPT"
    assert verdict(rules_for(two_subnets, acls=deny_all), replace(kubelet, dst="10.240.1.21")) == "DROP"


def test_acl_entries_follow_rule_numbers_and_deny_what_none_allows():
    entries = [
        {"RuleNumber": 200, "Protocol": "-1", "RuleAction": "allow", "Egress": False, "CidrBlock": "0.0.0.0/0"},
        {"RuleNumber": 90, "Protocol": "6", "RuleAction": "deny", "Egress": False, "CidrBlock": "10.240.0.0/24",
         "PortRange": {"From": 10250, "To": 10250}},
    ]  # fmt: skip
    acl_in = chain(rules_for(LAB, acls=[{"IsDefault": True, "Entries": entries, "Associations": []}]), "ACL-IN-1")
    assert "-p tcp --dport 10250 -s 10.240.0.0/24" in acl_in[0] and acl_in[0].endswith("-j DROP")
    assert acl_in[1].endswith("-j RETURN")
    assert acl_in[-1] == "-A ACL-IN-1 -j DROP"


def test_stopped_instances_carry_no_rules_and_foreign_ones_still_count_in_groups():
    rules = rules_for(LAB + [instance("old", "10.240.0.99", WORKERS, state="terminated")])
    assert not any("10.240.0.99" in r for r in rules)
    outsider = instance("bastion", "10.240.0.50", WORKERS)
    state = vpc_state(
        [{"Instances": LAB + [outsider]}], groups(), {}, [], {"master-1": "p-master-1", "worker-1": "p-worker-1"}
    )
    rules = iptables_rules(state).splitlines()
    assert not any("p-bastion" in r for r in rules)
    assert any("-s 10.240.0.50/32 -j ACCEPT" in r for r in chain(rules, "SG-IN-1"))


def test_the_machine_opens_only_apiserver_and_kubelet_ports_and_nodes_only_its_balancer():
    vpc = chain(rules_for(LAB), "VPC")
    assert "-A VPC -m physdev --physdev-in p-host -p tcp -m multiport --dports 6444,10250 -j ACCEPT" in vpc
    assert "-A VPC -m physdev --physdev-out p-host -d 10.240.0.1/32 -p tcp --dport 6443 -j ACCEPT" in vpc
    assert vpc[-1] == "-A VPC -j DROP"


@pytest.mark.parametrize(
    ("protocol", "low", "high", "expected"),
    [
        ("-1", None, None, []),
        ("tcp", 6444, 6444, ["-p", "tcp", "--dport", "6444"]),
        ("6", 30000, 32767, ["-p", "tcp", "--dport", "30000:32767"]),
        ("udp", 0, 65535, ["-p", "udp"]),
        ("icmp", -1, -1, ["-p", "icmp"]),
        ("icmp", 8, -1, ["-p", "icmp", "--icmp-type", "8"]),
        ("1", 3, 4, ["-p", "icmp", "--icmp-type", "3/4"]),
        ("4", -1, -1, ["-p", "4"]),  # IP-in-IP has no ports
    ],
)
def test_protocol_match(protocol, low, high, expected):
    assert protocol_match(protocol, low, high) == expected


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables-restore"), reason="needs root and iptables")
def test_the_kernel_accepts_the_rules():
    """iptables-restore --test in a throwaway network namespace: the text is valid for the real parser."""
    rules = "\n".join(rules_for([instance("master-1", "10.240.0.11", MASTERS, check=True), LAB[1]])) + "\n"
    done = subprocess.run(["unshare", "--net", "iptables-restore", "--test"], input=rules.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()

"""seatrials.checks.aws_rules: how EC2 filters one packet, over hand-written describe outputs.

The dicts below have the shapes describe_security_groups and
describe_network_acls return (checked against moto in tests/test_aws.py).
"""

import pytest

from seatrials.checks.aws_rules import (
    ALL_TRAFFIC,
    IP_IN_IP,
    PING,
    Host,
    Traffic,
    evaluate,
    protocol_number,
    tcp,
    udp,
)

MASTERS, WORKERS, CLUSTER = "sg-masters", "sg-workers", "sg-cluster"
EGRESS_ALL = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "UserIdGroupPairs": []}]


def host(name, ip, groups, subnet="subnet-a", extra_ips=()):
    return Host(name, f"i-{name}", ip, frozenset({ip, *extra_ips}), tuple(groups), subnet)


def group(gid, inbound, egress=None):
    return {"GroupId": gid, "GroupName": gid.removeprefix("sg-"), "IpPermissions": inbound,
            "IpPermissionsEgress": EGRESS_ALL if egress is None else egress}


def rule(protocol, low=None, high=None, groups=(), cidrs=()):
    r = {"IpProtocol": protocol, "UserIdGroupPairs": [{"GroupId": g} for g in groups],
         "IpRanges": [{"CidrIp": c} for c in cidrs]}
    if low is not None:
        r.update(FromPort=low, ToPort=low if high is None else high)
    return r


def entry(number, action, protocol="-1", cidr="0.0.0.0/0", egress=False, ports=None, icmp=None):
    e = {"RuleNumber": number, "RuleAction": action, "Protocol": protocol, "CidrBlock": cidr, "Egress": egress}
    if ports:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    if icmp:
        e["IcmpTypeCode"] = {"Type": icmp[0], "Code": icmp[1]}
    return e


def acl(acl_id, *entries):
    """An ACL with the given entries plus AWS's final `*` deny in both directions."""
    final = [entry(32767, "deny"), entry(32767, "deny", egress=True)]
    return {"NetworkAclId": acl_id, "Entries": [*entries, *final]}


OPEN_ACL = acl("acl-open", entry(100, "allow"), entry(100, "allow", egress=True))
WORKER = host("worker-1", "10.240.0.21", [WORKERS])
MASTER = host("master-1", "10.240.0.11", [MASTERS])


def groups_of(*gs):
    return {g["GroupId"]: g for g in gs}


def test_group_reference_admits_members_only():
    groups = groups_of(group(MASTERS, [rule("tcp", 6444, groups=[WORKERS])]), group(WORKERS, []))
    allowed = evaluate(WORKER, MASTER, tcp(6444), groups, {})
    assert allowed.allowed
    assert "sg-masters (masters) inbound: tcp 6444 from sg-workers (workers)" in allowed.summary()
    stranger = host("other", "10.240.0.99", ["sg-other"])
    denied = evaluate(stranger, MASTER, tcp(6444), groups, {})
    assert not denied.allowed


def test_missing_rule_names_the_group_to_fix_and_the_source_group():
    groups = groups_of(group(MASTERS, [rule("-1", groups=[MASTERS])]), group(WORKERS, []))
    d = evaluate(WORKER, MASTER, tcp(6444), groups, {})
    assert not d.allowed
    assert d.missing == ("add to sg-masters (masters) inbound: tcp 6444 from sg-workers (workers)",)
    assert "no inbound rule of master-1's groups (sg-masters (masters))" in d.summary()


def test_fix_prefers_the_groups_the_two_sides_do_not_share():
    worker = host("worker-1", "10.240.0.21", [CLUSTER, WORKERS])
    master = host("master-1", "10.240.0.11", [CLUSTER, MASTERS])
    groups = groups_of(group(CLUSTER, []), group(MASTERS, []), group(WORKERS, []))
    d = evaluate(worker, master, udp(8472), groups, {})
    assert d.missing == ("add to sg-masters (masters) inbound: udp 8472 from sg-workers (workers)",)


def test_rules_of_every_group_of_the_instance_count():
    master = host("master-1", "10.240.0.11", [CLUSTER, MASTERS])
    groups = groups_of(group(CLUSTER, [rule("tcp", 6444, cidrs=["10.240.0.0/24"])]), group(MASTERS, []),
                       group(WORKERS, []))
    assert evaluate(WORKER, master, tcp(6444), groups, {}).allowed


def test_pod_ip_never_matches_a_group_reference_but_matches_a_cidr():
    by_group = groups_of(group(MASTERS, [rule("-1", groups=[WORKERS])]), group(WORKERS, []))
    assert evaluate(WORKER, MASTER, ALL_TRAFFIC, by_group, {}).allowed  # the node itself
    pods = evaluate(WORKER, MASTER, ALL_TRAFFIC, by_group, {}, "10.200.1.0/24", "10.200.0.0/24")
    assert not pods.allowed
    assert pods.missing == ("add to sg-masters (masters) inbound: all traffic from 10.200.1.0/24",)
    by_cidr = groups_of(group(MASTERS, [rule("-1", cidrs=["10.200.0.0/16"])]), group(WORKERS, []))
    assert evaluate(WORKER, MASTER, ALL_TRAFFIC, by_cidr, {}, "10.200.1.0/24", "10.200.0.0/24").allowed
    too_narrow = groups_of(group(MASTERS, [rule("-1", cidrs=["10.200.1.0/25"])]), group(WORKERS, []))
    assert not evaluate(WORKER, MASTER, ALL_TRAFFIC, too_narrow, {}, "10.200.1.0/24", "10.200.0.0/24").allowed


def test_group_reference_matches_a_secondary_private_ip_of_the_interface():
    worker = host("worker-1", "10.240.0.21", [WORKERS], extra_ips=["10.240.0.121"])
    groups = groups_of(group(MASTERS, [rule("tcp", 6444, groups=[WORKERS])]), group(WORKERS, []))
    assert evaluate(worker, MASTER, tcp(6444), groups, {}, src_addr="10.240.0.121").allowed


@pytest.mark.parametrize("protocol,traffic,allowed", [
    ("-1", tcp(6444), True),
    ("-1", IP_IN_IP, True),
    ("tcp", tcp(6444), True),  # 6000-7000 below
    ("tcp", tcp(7001), False),
    ("tcp", udp(6444), False),
    ("6", tcp(6500), True),  # protocol numbers mean the same as names
    ("udp", udp(6444), True),
])
def test_protocols_and_port_ranges(protocol, traffic, allowed):
    r = rule(protocol, cidrs=["10.240.0.0/24"]) if protocol == "-1" else rule(protocol, 6000, 7000,
                                                                               cidrs=["10.240.0.0/24"])
    groups = groups_of(group(MASTERS, [r]), group(WORKERS, []))
    assert evaluate(WORKER, MASTER, traffic, groups, {}).allowed is allowed


def test_all_traffic_needs_an_all_traffic_rule():
    groups = groups_of(group(MASTERS, [rule("tcp", 0, 65535, cidrs=["10.0.0.0/8"]),
                                       rule("udp", 0, 65535, cidrs=["10.0.0.0/8"])]), group(WORKERS, []))
    assert not evaluate(WORKER, MASTER, ALL_TRAFFIC, groups, {}).allowed


def test_protocol_4_ignores_ports_and_is_not_tcp():
    ipip = groups_of(group(MASTERS, [rule("4", -1, -1, groups=[WORKERS])]), group(WORKERS, []))
    assert evaluate(WORKER, MASTER, IP_IN_IP, ipip, {}).allowed
    assert not evaluate(WORKER, MASTER, tcp(179), ipip, {}).allowed
    tcp_only = groups_of(group(MASTERS, [rule("tcp", 0, 65535, groups=[WORKERS])]), group(WORKERS, []))
    d = evaluate(WORKER, MASTER, IP_IN_IP, tcp_only, {})
    assert d.missing == ("add to sg-masters (masters) inbound: protocol 4 (IP-in-IP) from sg-workers (workers)",)


@pytest.mark.parametrize("icmp_type,icmp_code,allowed", [(-1, -1, True), (8, -1, True), (8, 0, True),
                                                         (0, -1, False), (3, 4, False)])
def test_icmp_type_and_code(icmp_type, icmp_code, allowed):
    groups = groups_of(group(MASTERS, [rule("icmp", icmp_type, icmp_code, cidrs=["10.240.0.0/24"])]),
                       group(WORKERS, []))
    assert evaluate(WORKER, MASTER, PING, groups, {}).allowed is allowed


def test_restricted_egress_of_the_source_blocks_and_replies_need_no_egress_rule():
    masters = group(MASTERS, [rule("tcp", 6444, groups=[WORKERS])], egress=[])  # no outbound at all
    workers = group(WORKERS, [], egress=[rule("tcp", 443, cidrs=["0.0.0.0/0"])])
    d = evaluate(WORKER, MASTER, tcp(6444), groups_of(masters, workers), {})
    assert not d.allowed
    assert d.missing == ("add to sg-workers (workers) outbound: tcp 6444 to sg-masters (masters)",)
    workers["IpPermissionsEgress"] = [rule("tcp", 6444, groups=[MASTERS])]
    assert evaluate(WORKER, MASTER, tcp(6444), groups_of(masters, workers), {}).allowed  # stateful reply


SPLIT_WORKER = host("worker-1", "10.240.1.21", [WORKERS], subnet="subnet-b")
OPEN_GROUPS = groups_of(group(MASTERS, [rule("-1", cidrs=["10.0.0.0/8"])]),
                        group(WORKERS, [rule("-1", cidrs=["10.0.0.0/8"])]))


def test_network_acls_apply_only_between_subnets():
    closed = acl("acl-closed")
    assert evaluate(WORKER, MASTER, tcp(6444), OPEN_GROUPS, {"subnet-a": closed}).allowed
    d = evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS, {"subnet-a": closed, "subnet-b": OPEN_ACL})
    assert not d.allowed
    assert "network ACL acl-closed (subnet-a) inbound: no rule allows tcp 6444 from 10.240.1.21/32" in d.summary()


def test_network_acl_first_matching_rule_wins():
    deny_first = acl("acl-a", entry(90, "deny", "6", "10.240.1.0/24", ports=(6444, 6444)), entry(100, "allow"),
                     entry(100, "allow", egress=True))
    d = evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS, {"subnet-a": deny_first, "subnet-b": OPEN_ACL})
    assert not d.allowed
    assert "inbound rule 90 (deny tcp 6444 10.240.1.0/24) denies tcp 6444 from 10.240.1.21/32" in d.summary()
    assert "numbered below 90" in d.missing[0]
    allow_first = acl("acl-a", entry(80, "allow", "6", "10.240.1.0/24", ports=(6444, 6444)),
                      entry(90, "deny", "6", "10.240.1.0/24", ports=(6444, 6444)), entry(100, "allow"),
                      entry(100, "allow", egress=True))
    assert evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS,
                    {"subnet-a": allow_first, "subnet-b": OPEN_ACL}).allowed


def test_network_acl_must_let_the_reply_out_to_ephemeral_ports():
    no_ephemeral = acl("acl-a", entry(100, "allow"), entry(100, "allow", "6", "0.0.0.0/0", egress=True,
                                                          ports=(6444, 6444)))
    d = evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS, {"subnet-a": no_ephemeral, "subnet-b": OPEN_ACL})
    assert not d.allowed
    assert "outbound: no rule allows the reply tcp 1024-65535 to 10.240.1.21/32" in d.summary()
    assert d.missing == ("add to network ACL acl-a (subnet-a) outbound: allow tcp 1024-65535 to 10.240.1.21/32",)
    # the source subnet must let the reply in as well
    reply_in_denied = acl("acl-b", entry(100, "allow", egress=True),
                          entry(100, "allow", "6", "0.0.0.0/0", ports=(0, 1023)))
    d = evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS, {"subnet-a": OPEN_ACL, "subnet-b": reply_in_denied})
    assert not d.allowed
    assert "network ACL acl-b (subnet-b) inbound: no rule allows the reply tcp 1024-65535" in d.summary()


def test_network_acl_icmp_and_protocol_4_entries():
    icmp_only = acl("acl-a", entry(100, "allow", "1", icmp=(-1, -1)), entry(100, "allow", egress=True))
    acls = {"subnet-a": icmp_only, "subnet-b": OPEN_ACL}
    assert evaluate(SPLIT_WORKER, MASTER, PING, OPEN_GROUPS, acls).allowed
    assert not evaluate(SPLIT_WORKER, MASTER, IP_IN_IP, OPEN_GROUPS, acls).allowed
    ipip = acl("acl-a", entry(100, "allow", "4"), entry(100, "allow", egress=True))
    assert evaluate(SPLIT_WORKER, MASTER, IP_IN_IP, OPEN_GROUPS, {"subnet-a": ipip, "subnet-b": OPEN_ACL}).allowed


def test_network_acl_deny_of_one_port_denies_that_port_only_partial_allow_does_not_admit():
    deny_ssh = acl("acl-a", entry(90, "deny", "6", ports=(22, 22)), entry(100, "allow"),
                   entry(100, "allow", egress=True))
    acls = {"subnet-a": deny_ssh, "subnet-b": OPEN_ACL}
    assert evaluate(SPLIT_WORKER, MASTER, tcp(6444), OPEN_GROUPS, acls).allowed
    assert evaluate(SPLIT_WORKER, MASTER, udp(8472), OPEN_GROUPS, acls).allowed  # flannel's VXLAN
    assert not evaluate(SPLIT_WORKER, MASTER, tcp(22), OPEN_GROUPS, acls).allowed
    everything = evaluate(SPLIT_WORKER, MASTER, ALL_TRAFFIC, OPEN_GROUPS, acls)
    assert everything.allowed and "except what rule 90 (deny tcp 22 0.0.0.0/0) denies first" in everything.summary()
    pods_half = acl("acl-a", entry(100, "allow", cidr="10.200.1.0/25"), entry(100, "allow", egress=True))
    acls = {"subnet-a": pods_half, "subnet-b": OPEN_ACL}
    assert not evaluate(SPLIT_WORKER, MASTER, tcp(9376), OPEN_GROUPS, acls, "10.200.1.0/24", "10.200.0.0/24").allowed


def test_labels_and_protocol_numbers():
    assert [t.label for t in (tcp(6444), udp(8472), IP_IN_IP, ALL_TRAFFIC, PING, Traffic(6, (1024, 65535)))] == [
        "tcp 6444", "udp 8472", "protocol 4 (IP-in-IP)", "all traffic", "icmp echo", "tcp 1024-65535"]
    assert PING.reply().label == "icmp echo reply"
    assert [protocol_number(p) for p in ("tcp", "6", "UDP", "icmp", "-1", "all", "4")] == [6, 6, 17, 1, -1, -1, 4]

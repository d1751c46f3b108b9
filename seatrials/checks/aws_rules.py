"""Whether EC2 lets a packet through, decided from describe outputs alone.

Pure functions, no AWS calls: given what describe_security_groups and
describe_network_acls returned, follow one packet the way the VPC does:

  source's security groups, outbound  (stateful: the reply needs no rule)
  source subnet's network ACL, outbound    } only between different subnets:
  destination subnet's network ACL, inbound }  an ACL guards its subnet's edge
  destination's security groups, inbound
  reply: destination subnet's ACL outbound, source subnet's ACL inbound
         (ACLs are stateless; a TCP/UDP reply goes to ports 1024-65535)

Between different subnets the VPC router also delivers the packet by the source
subnet's route table (longest prefix first): `local` delivers only to the
interface that owns the address, so a pod IP needs a route naming the
destination's instance or interface (route()).

Security groups: every rule of every group of the interface counts (union, allow
only). A rule that names a group matches a packet whose source (or destination)
address is a private IP of an interface in that group, so a pod IP never
matches one; a CIDR rule matches addresses inside the CIDR. A protocol other
than tcp, udp and icmp ignores ports, and -1 is all traffic.
Network ACLs: entries in RuleNumber order, the first that matches decides, and
whatever none matches is denied (the `*` rule).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

ALL = -1
PROTOCOLS = {"-1": ALL, "all": ALL, "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
NAMES = {6: "tcp", 17: "udp", 1: "icmp", 4: "protocol 4 (IP-in-IP)", 58: "icmpv6"}
PORTED = (6, 17)  # the protocols whose rules have port ranges
ICMP = 1
ICMP_ECHO, ICMP_ECHO_REPLY = 8, 0
EPHEMERAL = (1024, 65535)  # the range AWS asks network ACLs to open for replies
LAST_ACL_RULE = 32767  # the `*` entry that denies what no other entry matched


def protocol_number(value: str | int) -> int:
    """'tcp', '6', 6 -> 6; '-1' or 'all' -> ALL. describe outputs use both forms."""
    text = str(value).lower()
    return PROTOCOLS[text] if text in PROTOCOLS else int(text)


@dataclass(frozen=True)
class Traffic:
    """One kind of packet: protocol number (ALL for all traffic) and, for
    tcp/udp, a destination port range; for icmp, (type, code), -1 = any."""

    protocol: int
    ports: tuple[int, int] = (0, 65535)

    @property
    def label(self) -> str:
        if self.protocol == ALL:
            return "all traffic"
        name = NAMES.get(self.protocol, f"protocol {self.protocol}")
        if self.protocol in PORTED:
            low, high = self.ports
            return f"{name} {low}" if low == high else f"{name} {low}-{high}"
        if self.protocol == ICMP:
            return {-1: "icmp", ICMP_ECHO: "icmp echo", ICMP_ECHO_REPLY: "icmp echo reply"}.get(
                self.ports[0], f"icmp type {self.ports[0]}")
        return name

    def reply(self) -> Traffic:
        """The answer as a stateless network ACL sees it."""
        if self.protocol in PORTED:
            return Traffic(self.protocol, EPHEMERAL)
        if self.protocol == ICMP and self.ports[0] == ICMP_ECHO:
            return Traffic(ICMP, (ICMP_ECHO_REPLY, 0))
        return self


def tcp(port: int) -> Traffic:
    return Traffic(6, (port, port))


def udp(port: int) -> Traffic:
    return Traffic(17, (port, port))


ALL_TRAFFIC = Traffic(ALL)
IP_IN_IP = Traffic(4)
PING = Traffic(ICMP, (ICMP_ECHO, 0))


@dataclass(frozen=True)
class Host:
    """A node's EC2 instance as the VPC sees it: its primary interface."""

    name: str  # the Kubernetes node name
    instance_id: str
    ip: str  # primary private IP
    private_ips: frozenset[str]  # every private IP of the interface (group references match these)
    groups: tuple[str, ...]
    subnet: str | None
    interface: str | None = None  # the primary network interface's id


@dataclass(frozen=True)
class Decision:
    allowed_by: tuple[str, ...]  # the rule that let the packet through each hop
    blocked_by: tuple[str, ...] = ()  # the hops that drop it
    missing: tuple[str, ...] = ()  # the rules to add, one per blocking hop

    @property
    def allowed(self) -> bool:
        return not self.blocked_by

    def summary(self) -> str:
        if self.allowed:
            return "allowed by " + "; ".join(self.allowed_by)
        return "; ".join(self.blocked_by) + " -> fix: " + "; ".join(self.missing)


Network = ipaddress.IPv4Network


def address(value: str) -> Network:
    return ipaddress.ip_network(value, strict=False)


# ---- security groups -------------------------------------------------------

def _group_label(group_id: str, groups: dict) -> str:
    name = groups.get(group_id, {}).get("GroupName")
    return f"{group_id} ({name})" if name else group_id


def _groups_label(host: Host, groups: dict) -> str:
    return ", ".join(_group_label(g, groups) for g in host.groups) or "no groups"


def _is_interface_ip(host: Host | None, addr: Network) -> bool:
    return host is not None and addr.num_addresses == 1 and str(addr[0]) in host.private_ips


def _icmp_covers(rule_type: int, rule_code: int, traffic: Traffic) -> bool:
    kind, code = traffic.ports
    return rule_type == -1 or (rule_type == kind and rule_code in (-1, code))


def _rule_covers(rule: dict, traffic: Traffic) -> bool:
    proto = protocol_number(rule["IpProtocol"])
    if proto == ALL:
        return True
    if proto != traffic.protocol:
        return False
    low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
    if proto in PORTED:
        return low <= traffic.ports[0] and traffic.ports[1] <= high
    if proto == ICMP:  # FromPort is the type, ToPort the code
        return _icmp_covers(low, high, traffic)
    return True


def _rule_peer(rule: dict, addr: Network, peer: Host | None, groups: dict) -> str | None:
    """The part of the rule that matches the other end of the packet, if any."""
    for r in rule.get("IpRanges", []):
        if addr.subnet_of(address(r["CidrIp"])):
            return r["CidrIp"]
    for pair in rule.get("UserIdGroupPairs", []):
        if _is_interface_ip(peer, addr) and pair.get("GroupId") in peer.groups:
            return _group_label(pair["GroupId"], groups)
    return None


def _sg_allows(host: Host, inbound: bool, traffic: Traffic, addr: Network, peer: Host | None,
               groups: dict) -> str | None:
    key, word, way = ("IpPermissions", "inbound", "from") if inbound else \
        ("IpPermissionsEgress", "outbound", "to")
    for gid in host.groups:
        for rule in groups.get(gid, {}).get(key, []):
            if _rule_covers(rule, traffic) and (match := _rule_peer(rule, addr, peer, groups)):
                rule_traffic = Traffic(protocol_number(rule["IpProtocol"]),
                                       (rule.get("FromPort", 0), rule.get("ToPort", 65535)))
                return f"{_group_label(gid, groups)} {word}: {rule_traffic.label} {way} {match}"
    return None


def _distinct_group(host: Host, other: Host) -> str | None:
    """The group to name in a fix: one the other side does not share (a
    'masters' group rather than a 'cluster' group both carry), else the first."""
    own = [g for g in host.groups if g not in other.groups]
    return (own or list(host.groups) or [None])[0]


def _peer_label(host: Host, addr: Network, groups: dict) -> str:
    if _is_interface_ip(host, addr):
        return f"{host.name} {addr[0]} ({_groups_label(host, groups)})"
    return f"{addr} (via {host.name})"


def _sg_fix(host: Host, other: Host, inbound: bool, traffic: Traffic, addr: Network, groups: dict) -> str:
    word, way = ("inbound", "from") if inbound else ("outbound", "to")
    by_group = _is_interface_ip(other, addr) and other.groups
    peer = _group_label(_distinct_group(other, host), groups) if by_group else str(addr)
    target = _distinct_group(host, other)
    where = _group_label(target, groups) if target else f"a security group of {host.name}"
    return f"add to {where} {word}: {traffic.label} {way} {peer}"


# ---- network ACLs ------------------------------------------------------------

def _entry_match(entry: dict, traffic: Traffic) -> str:
    """'all' when the entry covers every packet of `traffic`, 'some', or 'none'."""
    proto = protocol_number(entry["Protocol"])
    if proto == ALL:
        return "all"
    if traffic.protocol == ALL:
        return "some"
    if proto != traffic.protocol:
        return "none"
    if proto in PORTED:
        span = entry.get("PortRange", {"From": 0, "To": 65535})
        low, high = traffic.ports
        if span["From"] <= low and high <= span["To"]:
            return "all"
        return "some" if span["From"] <= high and low <= span["To"] else "none"
    if proto == ICMP:
        kind = entry.get("IcmpTypeCode", {})
        return "all" if _icmp_covers(kind.get("Type", -1), kind.get("Code", -1), traffic) else "none"
    return "all"


def _entry_label(entry: dict) -> str:
    number = entry["RuleNumber"]
    proto = protocol_number(entry["Protocol"])
    span = entry.get("PortRange", {"From": 0, "To": 65535})
    what = Traffic(proto, (span["From"], span["To"])).label if proto != ICMP else "icmp"
    return f"rule {number} ({entry['RuleAction']} {what} {entry.get('CidrBlock', '')})"


def _acl_step(acl: dict | None, subnet: str, inbound: bool, traffic: Traffic, addr: Network,
              reply: bool) -> tuple[bool, str, str]:
    """(allowed, what decided, the fix) for one ACL in one direction; `addr` is the far end."""
    if acl is None:
        return False, f"no network ACL found for {subnet}", f"check the network ACL associated with {subnet}"
    word, way = ("inbound", "from") if inbound else ("outbound", "to")
    what = f"the reply {traffic.label}" if reply else traffic.label
    name = f"network ACL {acl['NetworkAclId']} ({subnet}) {word}"
    # AWS lists the final `*` deny as rule 32767; moto leaves it out: both end the same way
    entries = sorted((e for e in acl.get("Entries", []) if e["Egress"] != inbound and "CidrBlock" in e
                      and e["RuleNumber"] < LAST_ACL_RULE), key=lambda e: e["RuleNumber"])
    partly = []  # denies of part of the traffic only (TCP 22 of all traffic): they do not block the rest
    for entry in entries:
        cidr = address(entry["CidrBlock"])
        if not addr.overlaps(cidr) or (match := _entry_match(entry, traffic)) == "none":
            continue
        whole = match == "all" and addr.subnet_of(cidr)
        if entry["RuleAction"] == "deny" and not whole:
            partly.append(_entry_label(entry))
        elif entry["RuleAction"] == "deny":
            return (False, f"{name} {_entry_label(entry)} denies {what} {way} {addr}",
                    f"add to {name}, numbered below {entry['RuleNumber']}: allow {traffic.label} {way} {addr}")
        elif whole:
            but = f" (except what {', '.join(partly)} denies first)" if partly else ""
            return True, f"{name} {_entry_label(entry)} allows {what}{but}", ""
    return (False, f"{name}: no rule allows {what} {way} {addr} (the final * rule denies it)",
            f"add to {name}: allow {traffic.label} {way} {addr}")


# ---- one packet, end to end ---------------------------------------------------

def evaluate(src: Host, dst: Host, traffic: Traffic, groups: dict, acls: dict,
             src_addr: str | None = None, dst_addr: str | None = None) -> Decision:
    """Does `traffic` from `src` reach `dst`, and does its reply come back?

    `groups`: describe_security_groups entries by GroupId; `acls`: network ACLs
    by the subnet id they are associated with. `src_addr`/`dst_addr` default to
    the hosts' primary IPs; pass a pod IP or pod CIDR for routed pod traffic
    (it leaves through the node's interface but matches no group reference).
    """
    s_addr = address(src_addr or src.ip)
    d_addr = address(dst_addr or dst.ip)
    allowed_by, blocked_by, missing = [], [], []

    def hop(allowed: bool, text: str, fix: str):
        if allowed:
            allowed_by.append(text)
        else:
            blocked_by.append(text)
            missing.append(fix)

    egress = _sg_allows(src, False, traffic, d_addr, dst, groups)
    hop(bool(egress),
        egress or f"no outbound rule of {src.name}'s groups allows {traffic.label} "
                  f"to {_peer_label(dst, d_addr, groups)}",
        _sg_fix(src, dst, False, traffic, d_addr, groups))
    if src.subnet != dst.subnet:
        reply = traffic.reply()
        for subnet, inbound, kind, far, is_reply in (
            (src.subnet, False, traffic, d_addr, False),
            (dst.subnet, True, traffic, s_addr, False),
            (dst.subnet, False, reply, s_addr, True),
            (src.subnet, True, reply, d_addr, True),
        ):
            hop(*_acl_step(acls.get(subnet), subnet, inbound, kind, far, is_reply))
    ingress = _sg_allows(dst, True, traffic, s_addr, src, groups)
    hop(bool(ingress),
        ingress or f"no inbound rule of {dst.name}'s groups ({_groups_label(dst, groups)}) "
                   f"allows {traffic.label} from {_peer_label(src, s_addr, groups)}",
        _sg_fix(dst, src, True, traffic, s_addr, groups))
    return Decision(tuple(allowed_by), tuple(blocked_by), tuple(missing))


# ---- the VPC router between subnets --------------------------------------------

def route(routes: list[dict], table: str, dst: Host, dst_addr: str) -> Decision:
    """Does the route table (`table` names it) deliver a packet for `dst_addr` (a pod CIDR of `dst`) to
    `dst`'s instance? Longest prefix first; `local` delivers only to an interface that owns the address,
    and a blackhole or a gateway out of the VPC does not deliver it at all."""
    addr = address(dst_addr)
    covering = [r for r in routes if r.get("DestinationCidrBlock")
                and addr.subnet_of(address(r["DestinationCidrBlock"]))]
    fix = (f"add to {table}: {dst_addr} -> {dst.instance_id} ({dst.name}), or encapsulate pod traffic "
           "between subnets")
    if not covering:
        return Decision((), (f"{table} has no route for {dst_addr} ({dst.name}'s pods)",), (fix,))
    best = max(covering, key=lambda r: address(r["DestinationCidrBlock"]).prefixlen)
    cidr, target = best["DestinationCidrBlock"], _route_target(best)
    if best.get("State", "active") != "active":
        return Decision((), (f"{table} routes {cidr} to {target}, a blackhole (its target is gone)",), (fix,))
    if target in (dst.instance_id, dst.interface):
        return Decision((f"{table} routes {cidr} to {target} ({dst.name})",))
    where = ("the VPC itself, where no interface owns a pod IP" if target == "local"
             else f"{target}, not {dst.name}'s instance")
    return Decision((), (f"{table} routes {dst_addr} by {cidr} to {where}",), (fix,))


def _route_target(r: dict) -> str:
    for key in ("InstanceId", "NetworkInterfaceId", "GatewayId", "NatGatewayId", "TransitGatewayId",
                "VpcPeeringConnectionId", "LocalGatewayId", "CarrierGatewayId"):
        if r.get(key):
            return r[key]
    return "an unknown target"

"""What the VPC lets through, derived from moto's EC2 state, as iptables rules on the VPC bridge.

Pure functions: `vpc_state` turns describe_* outputs into a VpcState, `iptables_rules`
turns that into an iptables-restore file for the filter table of the VPC namespace, where
bridged frames pass FORWARD (br_netfilter) and `physdev` tells which node's port a frame
enters from or leaves by. Order, as EC2 applies them:

1. source/destination check (every frame): a node with the check on may only send frames
   from its own IP and receive frames for its own IP; pod IPs are dropped.
2. network ACLs (stateless, every frame, replies too), only where a frame crosses a subnet
   edge: entries in rule-number order, first match decides, no match is denied.
   Between two subnets the frame also passes the VPC router, which delivers it by the source
   subnet's route table (longest prefix first): to the instance that owns the destination IP
   (the `local` route), or, for any other address (a pod IP), only to the instance or network
   interface a route names; no route, no delivery. Inside a subnet no route table is consulted.
3. security groups (stateful): a reply of an accepted connection passes; a new connection
   needs an outbound rule of one of the sender's groups and an inbound rule of one of the
   receiver's groups. A rule naming a group matches the primary private IPs of the
   instances in that group, so a pod IP never matches one; it needs a CIDR rule.

Only the outermost IP header counts: a VXLAN packet is node IP to node IP on UDP 8472, whatever
pod addresses it carries inside, so that is what the check, the ACLs and the groups judge.

Every frame leaving a port with peers in other subnets jumps to that port's EDGE chain, which
sends it through the ACLs and the route table of its own pair of subnets only, so a frame
walks a few dozen rules however many nodes there are.

The machine (10.240.0.1, port p-host) is not an instance: it stands for the operator and
the cloud load balancer. It may open TCP to the apiserver and kubelet ports of any node, and
nodes may open TCP only to its load balancer port; everything else to it is dropped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .layout import APISERVER_PORT, BALANCER_PORT, HOST_IP, HOST_PORT, KUBELET_PORT

ALL = -1
PROTOCOL_NUMBERS = {"-1": ALL, "all": ALL, "tcp": 6, "udp": 17, "icmp": 1}
PORTED = {6: "tcp", 17: "udp"}
ICMP = 1
EVERY_PORT = (0, 65535)


@dataclass(frozen=True)
class Instance:
    name: str
    instance_id: str
    ip: str  # primary private IP
    subnet_id: str
    group_ids: tuple[str, ...]
    source_dest_check: bool
    port: str  # its port on the VPC bridge
    interface_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class VpcState:
    instances: tuple[Instance, ...]
    ingress: dict[str, list[dict]] = field(default_factory=dict)  # group id -> IpPermissions
    egress: dict[str, list[dict]] = field(default_factory=dict)  # group id -> IpPermissionsEgress
    acl_entries: dict[str, list[dict]] = field(default_factory=dict)  # subnet id -> network ACL Entries
    routes: dict[str, list[dict]] = field(default_factory=dict)  # subnet id -> its route table's Routes


def vpc_state(
    reservations: list[dict],
    security_groups: list[dict],
    instance_checks: dict[str, bool],
    network_acls: list[dict],
    ports: dict[str, str],
    route_tables: list[dict] | None = None,
) -> VpcState:
    """Build the state from describe_instances Reservations, describe_security_groups SecurityGroups,
    describe_instance_attribute(sourceDestCheck) per instance id, describe_network_acls NetworkAcls and
    describe_route_tables RouteTables (a subnet without its own table uses the VPC's main one).

    ports maps an instance's Name tag to its bridge port; instances without one still count as group
    members. The check counts as on when either the instance attribute or one of its network
    interfaces says so (EC2 keeps one value; moto stores the two separately).
    """
    instances = []
    for reservation in reservations:
        for raw in reservation["Instances"]:
            if raw.get("State", {}).get("Name", "running") not in ("pending", "running"):
                continue
            name = next((t["Value"] for t in raw.get("Tags", []) if t["Key"] == "Name"), raw["InstanceId"])
            checks = [instance_checks.get(raw["InstanceId"], raw.get("SourceDestCheck", True))]
            checks += [eni.get("SourceDestCheck", True) for eni in raw.get("NetworkInterfaces", [])]
            instances.append(
                Instance(
                    name=name,
                    instance_id=raw["InstanceId"],
                    ip=raw["PrivateIpAddress"],
                    subnet_id=raw.get("SubnetId", ""),
                    group_ids=tuple(g["GroupId"] for g in raw.get("SecurityGroups", [])),
                    source_dest_check=any(checks),
                    port=ports.get(name, ""),
                    interface_ids=tuple(eni["NetworkInterfaceId"] for eni in raw.get("NetworkInterfaces", [])),
                )
            )
    default_acl = next((a["Entries"] for a in network_acls if a.get("IsDefault")), None)
    acl_entries = {s.subnet_id: default_acl for s in instances if default_acl is not None}
    for acl in network_acls:
        for association in acl.get("Associations", []):
            acl_entries[association["SubnetId"]] = acl["Entries"]
    return VpcState(
        instances=tuple(sorted(instances, key=lambda i: i.name)),
        ingress={g["GroupId"]: g.get("IpPermissions", []) for g in security_groups},
        egress={g["GroupId"]: g.get("IpPermissionsEgress", []) for g in security_groups},
        acl_entries=acl_entries,
        routes=subnet_routes(route_tables or [], {i.subnet_id for i in instances}),
    )


def subnet_routes(route_tables: list[dict], subnets: set[str]) -> dict[str, list[dict]]:
    """Each subnet's routes: those of the table associated with it, else the main table's."""
    main = next((t["Routes"] for t in route_tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    routes = {subnet: main for subnet in subnets if main is not None}
    for table in route_tables:
        for association in table.get("Associations", []):
            if association.get("SubnetId") in subnets:
                routes[association["SubnetId"]] = table["Routes"]
    return routes


def protocol_number(value: str | int) -> int:
    text = str(value).lower()
    return PROTOCOL_NUMBERS[text] if text in PROTOCOL_NUMBERS else int(text)


def protocol_match(protocol: str | int, low: int | None = None, high: int | None = None) -> list[str]:
    """iptables match for a protocol and, for tcp/udp, a destination port range; for icmp, type and code."""
    number = protocol_number(protocol)
    if number == ALL:
        return []
    if number in PORTED:
        name = PORTED[number]
        if low in (None, ALL) or (low, high) == EVERY_PORT:
            return ["-p", name]
        return ["-p", name, "--dport", str(low) if high in (None, low) else f"{low}:{high}"]
    if number == ICMP:
        if low in (None, ALL):
            return ["-p", "icmp"]
        return ["-p", "icmp", "--icmp-type", str(low) if high in (None, ALL) else f"{low}/{high}"]
    return ["-p", str(number)]  # other protocols (4 = IP-in-IP, 47 = GRE ...) have no ports


def permission_peers(permission: dict, instances: tuple[Instance, ...]) -> list[str]:
    """The addresses a security group rule admits (or lets out to): its CIDRs, and the primary IP
    of every instance in each group it names."""
    peers = [r["CidrIp"] for r in permission.get("IpRanges", [])]
    for pair in permission.get("UserIdGroupPairs", []):
        peers += [f"{i.ip}/32" for i in instances if pair["GroupId"] in i.group_ids]
    return peers


def group_chain(chain: str, permissions: list[dict], direction: str, verdict: str, state: VpcState) -> list[str]:
    """One chain holding every rule of an instance's groups for one direction; what no rule admits drops."""
    rules = []
    for permission in permissions:
        match = protocol_match(permission["IpProtocol"], permission.get("FromPort"), permission.get("ToPort"))
        for peer in permission_peers(permission, state.instances):
            rules.append(" ".join(["-A", chain, *match, direction, peer, "-j", verdict]))
    return [*rules, f"-A {chain} -j DROP"]


def acl_chain(chain: str, entries: list[dict], egress: bool) -> list[str]:
    """A network ACL's entries of one direction in rule-number order: allow returns, deny drops."""
    rules = []
    for entry in sorted((e for e in entries if e["Egress"] == egress), key=lambda e: e["RuleNumber"]):
        number = protocol_number(entry["Protocol"])
        if number == ICMP:
            icmp = entry.get("IcmpTypeCode", {})
            match = protocol_match(number, icmp.get("Type"), icmp.get("Code"))
        else:
            ports = entry.get("PortRange", {})
            match = protocol_match(number, ports.get("From"), ports.get("To"))
        peer = ["-d" if egress else "-s", entry["CidrBlock"]]
        verdict = "RETURN" if entry["RuleAction"] == "allow" else "DROP"
        comment = ["-m", "comment", "--comment", f"rule-{entry['RuleNumber']}"]
        rules.append(" ".join(["-A", chain, *match, *peer, *comment, "-j", verdict]))
    return [*rules, f"-A {chain} -j DROP"]


def physdev(port_in: str = "", port_out: str = "") -> list[str]:
    match = ["-m", "physdev"]
    match += ["--physdev-in", port_in] if port_in else []
    match += ["--physdev-out", port_out] if port_out else []
    return match


def comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", f'"{text}"']


def route_chain(chain: str, routes: list[dict], state: VpcState) -> list[str]:
    """The VPC router for frames leaving one subnet for another, by that subnet's route table: longest
    prefix first, a frame passes only towards the port of the instance the route delivers to."""
    attached = [i for i in state.instances if i.port]
    owners = {eni: i for i in attached for eni in (i.instance_id, *i.interface_ids)}
    rules = []
    active = [r for r in routes if r.get("DestinationCidrBlock") and r.get("State", "active") == "active"]
    for route in sorted(active, key=lambda r: -ipaddress.ip_network(r["DestinationCidrBlock"]).prefixlen):
        cidr = route["DestinationCidrBlock"]
        if route.get("GatewayId") == "local":  # within the VPC: to whoever owns the address
            targets = [(f"{i.ip}/32", i) for i in attached if ipaddress.ip_address(i.ip) in ipaddress.ip_network(cidr)]
        else:
            target = owners.get(route.get("InstanceId")) or owners.get(route.get("NetworkInterfaceId"))
            targets = [(cidr, target)] if target else []
        for destination, instance in targets:
            to_port = [*physdev(port_out=instance.port), *comment(f"{cidr} -> {instance.name}")]
            rules.append(" ".join(["-A", chain, "-d", destination, *to_port, "-j RETURN"]))
        rules.append(" ".join(["-A", chain, "-d", cidr, *comment(f"{cidr}: not to this port"), "-j DROP"]))
    return [*rules, f"-A {chain} -j DROP"]


def edge_rules(state: VpcState) -> tuple[list[str], list[str]]:
    """(chains, rules) for frames crossing a subnet edge: between instances of different subnets, or
    to and from the machine. Each sending port gets an EDGE chain holding, per receiving port in
    another subnet, the jumps to the sender subnet's outbound ACL, the receiver subnet's inbound ACL
    and (between instances) the sender subnet's route table."""
    attached = [i for i in state.instances if i.port]
    chains, rules = [], []
    subnets = sorted({i.subnet_id for i in attached})
    numbers = {subnet: n for n, subnet in enumerate(subnets, 1)}
    routed = {subnet for subnet in subnets if subnet in state.routes and len(subnets) > 1}
    for subnet, n in numbers.items():
        if subnet in state.acl_entries:
            chains += [f"ACL-IN-{n}", f"ACL-OUT-{n}"]
            rules += acl_chain(f"ACL-IN-{n}", state.acl_entries[subnet], egress=False)
            rules += acl_chain(f"ACL-OUT-{n}", state.acl_entries[subnet], egress=True)
        if subnet in routed:
            chains.append(f"ROUTES-{n}")
            rules += route_chain(f"ROUTES-{n}", state.routes[subnet], state)
    endpoints = [(i.port, i.subnet_id) for i in attached] + [(HOST_PORT, None)]
    for n, (port_in, subnet_in) in enumerate(endpoints, 1):
        jumps = []
        for port_out, subnet_out in endpoints:
            if port_out == port_in or subnet_out == subnet_in:
                continue
            targets = [f"ACL-OUT-{numbers[subnet_in]}"] if subnet_in in state.acl_entries else []
            targets += [f"ACL-IN-{numbers[subnet_out]}"] if subnet_out in state.acl_entries else []
            targets += [f"ROUTES-{numbers[subnet_in]}"] if subnet_in in routed and subnet_out is not None else []
            jumps += [" ".join([f"-A EDGE-{n}", *physdev(port_out=port_out), f"-j {t}"]) for t in targets]
        if jumps:
            chains.append(f"EDGE-{n}")
            rules += [" ".join(["-A VPC", *physdev(port_in=port_in), f"-j EDGE-{n}"]), *jumps]
    return chains, rules


def iptables_rules(state: VpcState) -> str:
    """The whole filter table of the VPC namespace, for iptables-restore (one atomic replacement)."""
    attached = [i for i in state.instances if i.port]
    chains: list[str] = ["VPC", "VPC-SOURCE-DEST"]
    rules = ["-A FORWARD -m physdev --physdev-is-bridged -j VPC", "-A VPC -j VPC-SOURCE-DEST"]

    for i in attached:
        if i.source_dest_check:
            note = comment(f"{i.name} {i.instance_id} source/dest check")
            rules.append(" ".join(["-A VPC-SOURCE-DEST", *physdev(port_in=i.port), "!", "-s", i.ip, *note, "-j DROP"]))
            rules.append(" ".join(["-A VPC-SOURCE-DEST", *physdev(port_out=i.port), "!", "-d", i.ip, *note, "-j DROP"]))

    # Stateless: network ACLs and the route table see every frame, replies too, before connection tracking.
    edge_chains, edges = edge_rules(state)
    chains += edge_chains
    rules += edges

    rules.append("-A VPC -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    for n, i in enumerate(attached, 1):
        chains.append(f"SG-OUT-{n}")
        rules.append(" ".join(["-A VPC", *physdev(port_in=i.port), *comment(f"{i.name} outbound"), f"-j SG-OUT-{n}"]))
        permissions = [p for g in i.group_ids for p in state.egress.get(g, [])]
        rules += group_chain(f"SG-OUT-{n}", permissions, "-d", "RETURN", state)
    operator = f"{APISERVER_PORT},{KUBELET_PORT}"
    rules.append(f"-A VPC -m physdev --physdev-in {HOST_PORT} -p tcp -m multiport --dports {operator} -j ACCEPT")
    rules.append(
        f"-A VPC -m physdev --physdev-out {HOST_PORT} -d {HOST_IP}/32 -p tcp --dport {BALANCER_PORT} -j ACCEPT"
    )
    for n, i in enumerate(attached, 1):
        chains.append(f"SG-IN-{n}")
        rules.append(" ".join(["-A VPC", *physdev(port_out=i.port), *comment(f"{i.name} inbound"), f"-j SG-IN-{n}"]))
        permissions = [p for g in i.group_ids for p in state.ingress.get(g, [])]
        rules += group_chain(f"SG-IN-{n}", permissions, "-s", "ACCEPT", state)
    rules.append("-A VPC -j DROP")

    header = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]"]
    return "\n".join(header + [f":{c} - [0:0]" for c in chains] + rules + ["COMMIT", ""])

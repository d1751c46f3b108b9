"""What EC2 says about the nodes: source/destination check, security groups, network ACLs and route tables.

Read-only: only Describe* calls, all of them batched (one describe_instances
for every node, one describe_security_groups, one describe_network_acls, one
or two describe_route_tables), so the call count does not grow with nodes. The
source/destination check is the instance's SourceDestCheck as describe_instances
gives it (the attribute describe_instance_attribute reads, asked for on its own
only where an answer leaves it out: asked once a node and twice a run, it was 1000
calls at 500 nodes, where EC2 meters Describe calls per account). The packet
evaluation itself is in aws_rules.py. docs/aws.md lists the IAM policy these calls need.

Credentials and region come from botocore's usual chain (boto3's); AWS_ENDPOINT_URL points
it at another endpoint (the lab's moto server). Without credentials, or when
AWS refuses them or cannot be reached, every AWS check is "not checked" with a
one-line reason, never failed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from seatrials.causes import Result, Verdict
from seatrials.checks import aws_rules
from seatrials.checks.aws_rules import ALL_TRAFFIC, IP_IN_IP, Host, Traffic, tcp, udp
from seatrials.topology import Everyone, Node, Topology

SOURCE_DEST = "ec2-source-dest-check"
APISERVER = "sg-node-to-apiserver"
CNI = "sg-master-inbound-from-nodes"
ROUTES = "cross-subnet-native-routing"

NO_CREDENTIALS = ("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; an "
                  "instance profile is used only when nodes have aws:// providerIDs)")
NO_REGION = "no AWS region (set --aws-region or AWS_REGION)"
FILTER_VALUES_MAX = 200  # values one describe filter accepts
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
PROVIDER_ID = re.compile(r"^aws://[^?]*/(i-[0-9a-zA-Z]+)$")  # aws:///<az>/<instance-id>
ZONE = re.compile(r"^aws:///([a-z]{2}(?:-gov)?-[a-z]+-\d+)[a-z]/")

CALICO_BGP = tcp(179)
CALICO_VXLAN = udp(4789)
FLANNEL_VXLAN = udp(8472)
FLANNEL_UDP = udp(8285)  # flannel's old udp backend (flannel0), the field report's setup


class Unavailable(Exception):
    """AWS cannot be read; str(self) is the one line saying why (the checks are then not checked)."""


def refusal(exc: Exception) -> str:
    """One line naming what went wrong talking to AWS, without a traceback."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"AWS refused {exc.operation_name} ({error.get('Code', '?')}: {error.get('Message', '')})"
    return f"AWS not reachable or not configured ({type(exc).__name__}: {exc})"


# ---- where the nodes are --------------------------------------------------------

def on_ec2(topology: Topology) -> bool:
    return any((n.provider_id or "").startswith("aws://") for n in topology.nodes)


def instance_id(provider_id: str | None) -> str | None:
    match = PROVIDER_ID.match(provider_id or "")
    return match.group(1) if match else None


SESSIONS: dict[tuple, botocore.session.Session] = {}


def session_for(topology: Topology) -> botocore.session.Session:
    """botocore's session; off EC2 (the nodes do not say they are instances) without the instance
    metadata service, whose credentials would come from the machine running the suite. One per process
    and AWS environment: the session keeps botocore's EC2 model, which every new one read again (a third
    of a second, twice a run: the checks' read and the diagnosis')."""
    key = (on_ec2(topology), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    if key not in SESSIONS:
        core = botocore.session.get_session()
        if not on_ec2(topology):
            core.get_component("credential_provider").remove("iam-role")
        SESSIONS[key] = core
    return SESSIONS[key]


def region_of(settings, session, topology: Topology) -> str | None:
    zones = (ZONE.match(n.provider_id or "") for n in topology.nodes)
    return (settings.aws_region or session.get_config_variable("region")
            or next((z.group(1) for z in zones if z), None))


def region_problem(settings, topology: Topology) -> str | None:
    """AWS credentials given without a region: bad input, said before any check runs."""
    try:
        session = session_for(topology)
        if session.get_credentials() is None or region_of(settings, session, topology):
            return None
    except BotoCoreError as exc:
        return f"AWS credentials cannot be read: {refusal(exc)}"
    return ("AWS credentials are set but no region: pass --aws-region or set AWS_REGION (the nodes' providerIDs "
            "name no zone)")


def connect(settings, topology: Topology):
    """An EC2 client, or Unavailable with the reason."""
    try:
        session = session_for(topology)
        if session.get_credentials() is None:
            raise Unavailable(NO_CREDENTIALS)
        region = region_of(settings, session, topology)
        if not region:
            raise Unavailable(NO_REGION)
        return session.create_client("ec2", region_name=region, config=CLIENT_CONFIG)
    except BotoCoreError as exc:
        raise Unavailable(refusal(exc)) from None


def _describe(client, operation: str, key: str, name: str, values: list[str], *extra: dict) -> list[dict]:
    """Everything a describe call returns for `values` of one filter, page by page."""
    items = []
    values = sorted(set(values))
    for start in range(0, len(values), FILTER_VALUES_MAX):
        filters = [{"Name": name, "Values": values[start:start + FILTER_VALUES_MAX]}, *extra]
        for page in client.get_paginator(operation).paginate(Filters=filters):
            items += page[key]
    return items


def _instances(client, name: str, values: list[str]) -> list[dict]:
    live = {"Name": "instance-state-name", "Values": LIVE_STATES}
    reservations = _describe(client, "describe_instances", "Reservations", name, values, live)
    return [i for r in reservations for i in r["Instances"]]


def primary_interface(instance: dict) -> dict | None:
    return next((eni for eni in instance.get("NetworkInterfaces", [])
                 if eni.get("Attachment", {}).get("DeviceIndex") == 0), None)


def host_of(node_name: str, instance: dict) -> Host:
    eni = primary_interface(instance) or {}
    ips = {a["PrivateIpAddress"] for a in eni.get("PrivateIpAddresses", [])} | {instance["PrivateIpAddress"]}
    # Instance.SecurityGroups, not the interface's Groups: AWS keeps them equal, and
    # moto leaves stale groups on the interface after modify_instance_attribute(Groups).
    groups = tuple(g["GroupId"] for g in instance.get("SecurityGroups", []))
    return Host(node_name, instance["InstanceId"], instance["PrivateIpAddress"], frozenset(ips), groups,
                instance.get("SubnetId"), eni.get("NetworkInterfaceId"))


@dataclass
class Inventory:
    """The describe outputs about the cluster's nodes, read once."""

    client: Any
    calls: list[str] = field(default_factory=list)  # the operations botocore really sent
    hosts: dict[str, Host] = field(default_factory=dict)  # node name -> its instance
    matched_by: dict[str, str] = field(default_factory=dict)  # node name -> how it was found
    unmatched: dict[str, str] = field(default_factory=dict)  # node name -> why none was found
    interfaces: dict[str, dict] = field(default_factory=dict)  # node name -> primary interface
    source_dest: dict[str, bool] = field(default_factory=dict)  # node name -> its instance's SourceDestCheck
    groups: dict[str, dict] = field(default_factory=dict)  # group id -> security group
    acls: dict[str, dict] = field(default_factory=dict)  # subnet id -> its network ACL
    route_tables: dict[str, dict] = field(default_factory=dict)  # subnet id -> its route table (else the main)

    def evaluate(self, src: Host, dst: Host, traffic: Traffic, src_addr=None, dst_addr=None):
        return aws_rules.evaluate(src, dst, traffic, self.groups, self.acls, src_addr, dst_addr)


def apiserver_hosts(topology: Topology) -> list[Node]:
    """The machines behind the apiserver endpoints: their nodes, or a stand-in
    named by IP when an endpoint is not a node's InternalIP."""
    by_ip = {n.internal_ip: n for n in topology.nodes}
    ips = sorted({ip for ip, _ in topology.apiserver_endpoints})
    return [by_ip.get(ip) or Node(ip, "master", ip) for ip in ips]


def _find_instances(client, nodes: list[Node]) -> tuple[dict[str, dict], dict[str, str], dict[str, str]]:
    """Node name -> instance, by providerID, else by private IP, in two describe
    calls; also how each was found, and why none was for the rest."""
    wanted = {n.name: instance_id(n.provider_id) for n in nodes}
    by_id = {i["InstanceId"]: i for i in _instances(client, "instance-id", [v for v in wanted.values() if v])}
    matched = {n.name: by_id[wanted[n.name]] for n in nodes if wanted[n.name] in by_id}
    how = {name: f"providerID {i['InstanceId']}" for name, i in matched.items()}
    rest = [n for n in nodes if n.name not in matched]
    by_ip: dict[str, list[dict]] = {}
    for i in _instances(client, "private-ip-address", [n.internal_ip for n in rest if n.internal_ip]):
        by_ip.setdefault(i["PrivateIpAddress"], []).append(i)
    vpcs = {i["VpcId"] for i in matched.values()}
    why = {}
    for node in rest:
        candidates = by_ip.get(node.internal_ip, [])
        if len(candidates) > 1:  # the same private IP in several VPCs: prefer the cluster's
            candidates = [i for i in candidates if i["VpcId"] in vpcs] or candidates
        if len(candidates) == 1:
            matched[node.name], how[node.name] = candidates[0], f"private IP {node.internal_ip}"
            continue
        ambiguous = f" (ambiguous: {', '.join(i['InstanceId'] for i in candidates)})" if candidates else ""
        why[node.name] = (f"node {node.name} has no EC2 instance with providerID "
                          f"{node.provider_id or '(none)'} or private IP {node.internal_ip or '(none)'}"
                          f"{ambiguous}")
    return matched, how, why


def inventory(settings, topology: Topology) -> Inventory:
    """Map every node (and apiserver endpoint) to its instance and read its
    groups and network ACLs. Raises Unavailable when AWS cannot be read."""
    client = connect(settings, topology)
    inv = Inventory(client)
    client.meta.events.register("before-call.ec2", lambda model, **_: inv.calls.append(model.name))
    nodes = list({n.name: n for n in [*topology.nodes, *apiserver_hosts(topology)]}.values())
    try:
        instances, inv.matched_by, inv.unmatched = _find_instances(client, nodes)
        for name, instance in instances.items():
            inv.hosts[name] = host_of(name, instance)
            inv.interfaces[name] = primary_interface(instance) or {}
            if "SourceDestCheck" in instance:
                inv.source_dest[name] = instance["SourceDestCheck"]
        group_ids = [g for h in inv.hosts.values() for g in h.groups]
        for group in _describe(client, "describe_security_groups", "SecurityGroups", "group-id", group_ids):
            inv.groups[group["GroupId"]] = group
        subnets = [h.subnet for h in inv.hosts.values() if h.subnet]
        acls = _describe(client, "describe_network_acls", "NetworkAcls", "association.subnet-id", subnets)
        for acl in acls:
            for assoc in acl.get("Associations", []):
                inv.acls[assoc["SubnetId"]] = acl
        inv.route_tables = route_tables(client, {i["SubnetId"]: i["VpcId"] for i in instances.values()
                                                 if i.get("SubnetId") and i.get("VpcId")})
    except (ClientError, BotoCoreError) as exc:
        raise Unavailable(refusal(exc)) from None
    return inv


def route_tables(client, subnet_vpcs: dict[str, str]) -> dict[str, dict]:
    """Subnet id -> the route table the VPC router uses for it: the one associated with it, else its VPC's
    main table. Two batched describe calls (the second only for subnets without a table of their own)."""
    tables = {}
    for table in _describe(client, "describe_route_tables", "RouteTables", "association.subnet-id", list(subnet_vpcs)):
        for assoc in table.get("Associations", []):
            if assoc.get("SubnetId"):
                tables[assoc["SubnetId"]] = table
    if rest := [s for s in subnet_vpcs if s not in tables]:
        main = {t["VpcId"]: t for t in _describe(client, "describe_route_tables", "RouteTables", "vpc-id",
                                                 [subnet_vpcs[s] for s in rest],
                                                 {"Name": "association.main", "Values": ["true"]})}
        tables |= {s: main[subnet_vpcs[s]] for s in rest if subnet_vpcs[s] in main}
    return tables


def result(inv: Inventory | Unavailable, check, *args) -> Result:
    """A check's Result, or not checked with the reason when AWS could not be read."""
    if isinstance(inv, Unavailable):
        return Result.not_checked(str(inv))
    return check(inv, *args).result()


def read(settings, topology: Topology) -> Inventory | Unavailable:
    """The inventory, or why there is none, as a value the checks turn into "not checked"."""
    try:
        return inventory(settings, topology)
    except Unavailable as exc:
        return exc


# ---- how the CNI moves pod traffic ------------------------------------------------

def _mode(pool: dict, key: str) -> str:
    return (pool.get(key) or "Never").lower()


# What seatrials knows of a CNI's routing: True native, False not through the VPC as pod IPs (encapsulated,
# or pods given the VPC's own addresses by the AWS VPC CNI), None to be read from the cluster.
KNOWN_ROUTING = {"aws-vpc-cni": False, "weave": False, "antrea": False, "kube-router": True}


def routes_pod_ips_natively(cni: str, calico_pools: list[dict] | None, flannel_backend: str | None = None,
                            observed: str = "unknown") -> bool | None:
    """Do pod IPs travel unencapsulated between nodes (where the EC2 source/destination check drops
    them)? From the CNI's own configuration where seatrials knows the CNI, else from the nodes' routes
    (`observed`: native, encapsulated or unknown, see evidence.pod_routing); None when nothing tells."""
    if cni in ("flannel", "canal"):
        return flannel_backend == "host-gw"  # vxlan (the default) and udp encapsulate
    if cni == "calico" and calico_pools:
        return not all("always" in (_mode(p, "ipipMode"), _mode(p, "vxlanMode")) for p in calico_pools)
    if cni in KNOWN_ROUTING:
        return KNOWN_ROUTING[cni]
    return {"native": True, "encapsulated": False}.get(observed)


def routing_note(routes_natively: bool | None) -> str:
    return {True: "the CNI routes pod IPs natively",
            False: "the CNI does not send pod IPs through the VPC as they are (it encapsulates them, or pods "
                   "have VPC addresses)",
            None: "the CNI's routing is unknown"}[routes_natively]


def cni_traffic_needed(topology: Topology, same_subnet: bool,
                       observed: str = "unknown") -> tuple[list[Traffic], bool] | None:
    """What the CNI sends between two nodes: (host-to-host traffic, whether pod IPs also travel natively
    and so need all traffic from the pod CIDRs); None when the CNI is one seatrials does not know and the
    nodes' routes do not show it routing natively."""
    if topology.cni in ("flannel", "canal"):
        if topology.flannel_backend == "host-gw":
            return [], True
        return [FLANNEL_UDP if topology.flannel_backend == "udp" else FLANNEL_VXLAN], False
    if topology.cni != "calico":
        native = routes_pod_ips_natively(topology.cni, None, None, observed)
        return ([], True) if native else ([], False) if topology.cni == "aws-vpc-cni" else None
    needed, native = [CALICO_BGP], not topology.calico_pools
    for pool in topology.calico_pools or []:
        encap = {"always": True, "crosssubnet": not same_subnet}
        if encap.get(_mode(pool, "ipipMode")):
            needed.append(IP_IN_IP)
        elif encap.get(_mode(pool, "vxlanMode")):
            needed.append(CALICO_VXLAN)
        else:
            native = True
    return list(dict.fromkeys(needed)), native


def pod_cidrs(topology: Topology, node: Node) -> list[str]:
    """Where `node`'s pod IPs come from: its podCIDRs, else the Calico pools (IPv4)."""
    cidrs = list(node.pod_cidrs) or [p["cidr"] for p in topology.calico_pools or [] if p.get("cidr")]
    return [c for c in cidrs if ":" not in c]


# ---- the checks -----------------------------------------------------------------------

def _host_or_note(inv: Inventory, verdict: Verdict, node: Node) -> Host | None:
    if node.name not in inv.hosts:
        verdict.add("EC2 instance", "unreadable", inv.unmatched[node.name])
    return inv.hosts.get(node.name)


def source_dest_flags(inv: Inventory, node: Node) -> list[tuple[str, bool | str]]:
    """(where, on) for both places EC2 keeps the flag: the instance attribute and the primary interface;
    `on` is the reason instead where it could not be read."""
    host = inv.hosts[node.name]
    instance: bool | str
    if node.name in inv.source_dest:
        instance = inv.source_dest[node.name]
    else:  # describe_instances left it out: the attribute itself, once
        try:
            answer = inv.client.describe_instance_attribute(InstanceId=host.instance_id, Attribute="sourceDestCheck")
            instance = inv.source_dest[node.name] = answer["SourceDestCheck"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            instance = refusal(exc)
    eni = inv.interfaces.get(node.name, {})
    interface = ((f"primary interface {eni['NetworkInterfaceId']} SourceDestCheck", eni["SourceDestCheck"])
                 if "SourceDestCheck" in eni else
                 ("primary interface SourceDestCheck", f"describe_instances lists no primary interface for "
                                                       f"{host.instance_id}"))
    return [(f"instance {host.instance_id} sourceDestCheck", instance), interface]


def source_dest_check(inv: Inventory, node: Node, routes_natively: bool | None) -> Verdict:
    """Both places EC2 keeps the flag, judged against how the CNI moves pod IPs."""
    verdict = Verdict(SOURCE_DEST)
    if _host_or_note(inv, verdict, node) is None:
        return verdict
    if routes_natively is None:
        verdict.add("CNI", "unreadable", "unknown CNI: neither its configuration nor the nodes' routes tell "
                                         "whether pod IPs cross the VPC as they are")
    note = routing_note(routes_natively)
    for signal, on in source_dest_flags(inv, node):
        if isinstance(on, str):
            verdict.add(signal, "unreadable", on)
        elif not on:
            verdict.add(signal, "ok", f"false on {node.name}")
        elif routes_natively:
            verdict.add(signal, "fault", f"true on {node.name}: the VPC drops its pod-IP packets ({note})")
        elif routes_natively is False:
            verdict.add(signal, "ok", f"true on {node.name}, not relevant here: {note}")
        else:
            verdict.add(signal, "unreadable", f"true on {node.name}: harmful only if pod IPs cross the VPC as "
                                              "they are, which is unknown for this CNI")
    return verdict


def _hosts(inv: Inventory, verdict: Verdict, source: Node, target: Node) -> tuple[Host, Host] | None:
    """Both instances of a path between two machines, or None with the reason noted."""
    src, dst = _host_or_note(inv, verdict, source), _host_or_note(inv, verdict, target)
    if src and dst and src.instance_id == dst.instance_id:
        verdict.add("path", "absent", f"{source.name} -> {target.name} stays inside instance "
                    f"{src.instance_id}: no security group or network ACL is on the way")
        return None
    return (src, dst) if src and dst else None


def _judge_traffic(verdict: Verdict, inv: Inventory, src: Host, dst: Host, traffic: Traffic,
                   src_addr: str | None = None, dst_addr: str | None = None, note: str = ""):
    decision = inv.evaluate(src, dst, traffic, src_addr, dst_addr)
    what = traffic.label if src_addr is None else f"{traffic.label} from pod CIDR {src_addr} ({note})"
    state = "ok" if decision.allowed else "fault"
    verdict.add(f"{src.name}->{dst.name} {what}", state, decision.summary())


def apiserver_port(inv: Inventory, topology: Topology, source: Node, endpoint: str) -> Verdict:
    """TCP from the node's instance to one apiserver endpoint "ip:port" (the real
    port from the `kubernetes` EndpointSlice, 6444 in the field report)."""
    verdict = Verdict(APISERVER)
    ip, _, port = endpoint.rpartition(":")
    target = next(n for n in apiserver_hosts(topology) if n.internal_ip == ip)
    if hosts := _hosts(inv, verdict, source, target):
        _judge_traffic(verdict, inv, *hosts, tcp(int(port)))
    return verdict


def _targets(inv: Inventory, verdict: Verdict, topology: Topology, source: Node, target: Node | Everyone) -> list:
    """The nodes a check of a path judges from `source`: `target`, or every other node (Everyone); none when
    the source has no instance (said once, not once per target: the reason of a per-source case on hundreds
    of nodes would repeat it in every report)."""
    if not isinstance(target, Everyone):
        return [target]
    if _host_or_note(inv, verdict, source) is None:
        return []
    return [n for n in topology.nodes if n.name != source.name]


def cni_traffic(inv: Inventory, topology: Topology, source: Node, target: Node | Everyone,
                observed: str = "unknown") -> Verdict:
    """The CNI's own traffic from one node to another (to every other node: Everyone), as EC2 filters it."""
    return _to_each(Verdict(CNI), _cni_traffic_to, inv, topology, source, target, observed)


def _to_each(verdict: Verdict, judge, inv: Inventory, topology: Topology, source: Node, target: Node | Everyone,
             observed: str) -> Verdict:
    """judge(verdict, inv, topology, source, node, observed) for each node the path's check judges."""
    for node in _targets(inv, verdict, topology, source, target):
        judge(verdict, inv, topology, source, node, observed)
    return verdict


def _cni_traffic_to(verdict: Verdict, inv: Inventory, topology: Topology, source: Node, target: Node,
                    observed: str) -> None:
    hosts = _hosts(inv, verdict, source, target)
    if not hosts:
        return
    src, dst = hosts
    needed = cni_traffic_needed(topology, src.subnet == dst.subnet, observed)
    if needed is None:  # said once for all the targets
        if not any(o.signal == "CNI" for o in verdict.observations):
            verdict.add("CNI", "unreadable", f"unknown CNI ({topology.cni}): what it sends between nodes is unknown")
        return
    host_traffic, native = needed
    for traffic in host_traffic:
        _judge_traffic(verdict, inv, src, dst, traffic)
    if native:
        src_cidrs, dst_cidrs = pod_cidrs(topology, source), pod_cidrs(topology, target)
        if not (src_cidrs and dst_cidrs):
            verdict.add(f"{source.name}->{target.name} pod traffic", "unreadable",
                        f"no pod CIDR known for {target.name if src_cidrs else source.name} "
                        "(no spec.podCIDRs, no Calico pool)")
        note = routing_note(routes_pod_ips_natively(topology.cni, topology.calico_pools, topology.flannel_backend,
                                                    observed))
        for s in src_cidrs:
            for d in dst_cidrs:
                _judge_traffic(verdict, inv, src, dst, ALL_TRAFFIC, s, d, note)


def pod_routes(inv: Inventory, topology: Topology, source: Node, target: Node | Everyone,
               observed: str = "unknown") -> Verdict:
    """Between nodes of different subnets, pod IPs routed natively need the source subnet's route table to
    send the target's pod CIDRs to the target's instance; within a subnet no route table is on the way.
    To every other node: Everyone."""
    return _to_each(Verdict(ROUTES), _pod_routes_to, inv, topology, source, target, observed)


def _pod_routes_to(verdict: Verdict, inv: Inventory, topology: Topology, source: Node, target: Node,
                   observed: str) -> None:
    hosts = _hosts(inv, verdict, source, target)
    if not hosts:
        return
    src, dst = hosts
    path = f"{source.name}->{target.name}"
    if src.subnet == dst.subnet:
        verdict.add(path, "ok", f"same subnet {src.subnet}: no route table is on the way")
        return
    needed = cni_traffic_needed(topology, False, observed)
    if needed is None:
        verdict.add(path, "unreadable", f"unknown CNI ({topology.cni}): whether it routes pod IPs natively "
                                        "between subnets is unknown")
        return
    if not needed[1]:
        verdict.add(path, "ok", f"{src.subnet} -> {dst.subnet}: the CNI does not send pod IPs through the VPC "
                                "as they are between subnets")
        return
    table = inv.route_tables.get(src.subnet)
    cidrs = pod_cidrs(topology, target)
    if table is None or not cidrs:
        why = (f"no route table found for {src.subnet}" if table is None
               else f"no pod CIDR known for {target.name}")
        verdict.add(path, "unreadable", why)
        return
    name = f"route table {table['RouteTableId']} ({src.subnet})"
    for cidr in cidrs:
        decision = aws_rules.route(table.get("Routes", []), name, dst, cidr)
        verdict.add(f"{path} pod CIDR {cidr}", "ok" if decision.allowed else "fault", decision.summary())


# ---- for the network diagnosis ---------------------------------------------------------

def facts(settings, topology: Topology, observed: str = "unknown") -> dict:
    """What EC2 says for the diagnosis, as JSON: whether it was read (and why not), each node's
    source/destination check (on when either place says so), subnet, and every fault the security-group,
    ACL and route-table checks find per node pair ({cause, subject, detail}; subjects as the test ids)."""
    inv = read(settings, topology)
    if isinstance(inv, Unavailable):
        return {"read": False, "why": str(inv)}
    nodes = [n for n in topology.nodes if n.name in inv.hosts]
    source_dest = {}
    for n in nodes:
        flags = source_dest_flags(inv, n)
        known = [on for _, on in flags if isinstance(on, bool)]
        source_dest[n.name] = {"on": any(known) if known else None, "where": "; ".join(
            f"{where}: {on if isinstance(on, bool) else 'unreadable'}" for where, on in flags)}
    verdicts = []
    for node in topology.nodes:
        for endpoint in (f"{ip}:{port}" for ip, port in topology.apiserver_endpoints):
            verdicts.append((f"{node.name}->{endpoint}", apiserver_port(inv, topology, node, endpoint)))
    for a, b in topology.ordered_pairs():
        verdicts.append((f"{a.name}->{b.name}", cni_traffic(inv, topology, a, b, observed)))
        verdicts.append((f"{a.name}->{b.name}", pod_routes(inv, topology, a, b, observed)))
    findings = [{"cause": v.cause, "subject": subject, "detail": o.line()}
                for subject, v in verdicts for o in v.of_state("fault")]
    return {"read": True, "source_dest": source_dest, "findings": findings,
            "subnets": {n.name: inv.hosts[n.name].subnet for n in nodes},
            "instances": {n.name: inv.hosts[n.name].instance_id for n in nodes}}

"""From the shape of the failure matrix, weighed with the evidence, to a cause.

One probe failing says little; the pattern across all of them says a lot, and
the evidence (seatrials.network.evidence: what EC2 says, the nodes' routes, kube-proxy's
health, the DNS service's endpoints, NetworkPolicies over the probes, the CNI's
agents) says which of the causes that fit a pattern it is. A documented cause
is named only when its own evidence is there and nothing rules it out; when
the evidence cannot tell the candidates apart, the cause is "unknown" and the
hint lists the candidates and the command that tells them apart, in the order a
person would check them. Patterns, each with its physical reasoning:

- pod IPs failing exactly between nodes of different subnets whose route tables
  EC2 says lack the pod CIDR routes: native routing across subnets;
- pod IPs of some nodes unreachable (from every other node, and their pods reach
  no other pod) while node IPs answer: the CNI agent down there, a route missing
  on the other nodes, EC2 dropping what reaches them, or the EC2
  source/destination check; its mirror, a node reaching no other node's pod
  while other hosts reach its pods: its own routes (or its CNI agent) gone;
- only workers -> masters failing while masters -> workers works (both ways when
  the CNI encapsulates: each direction is its own tunnel flow): the masters'
  security group, when EC2's rules really drop it;
- only workers failing to reach the apiserver's endpoints: the masters' group on
  the apiserver port, when EC2's rules really drop it;
- the ClusterIP (and externalIPs, and DNS through its ClusterIP) failing from a
  node while the endpoints answer from that node: kube-proxy on that node;
- every lookup failing while the DNS service has no ready endpoint: cluster DNS;
- NetworkPolicies selecting the probes: whatever fails on the pod network.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from seatrials.causes import UNKNOWN, Finding
from seatrials.network.cases import first_of, name_list
from seatrials.network.evidence import Evidence, kube_proxy_pod_lines, route_to
from seatrials.network.paths import POD_IP_KINDS, ProbeResult

Cell = tuple[str, str, str]  # kind, source, target
DIRECT_POD_IP = ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod")
BOTH_WAYS = ("pod-to-pod", "pod-to-pod-icmp")  # the reply is a pod-IP packet too
# Over a tunnel a node's host also speaks to other nodes' pods from its tunnel device's address, one of its
# pod CIDR: the reply to a host -> pod probe is a pod-IP packet too.
TUNNEL_BOTH_WAYS = (*BOTH_WAYS, "host-to-pod", "external-ip")
EC2_DROPS = ("sg-master-inbound-from-nodes", "cross-subnet-native-routing")  # EC2 findings about one node pair
POD_SIDE_KINDS = ("pod-to-pod", "pod-to-pod-icmp", "pod-to-node", "pod-to-service", "pod-to-apiserver", "dns")
SERVICE_KINDS = ("pod-to-service", "external-ip", "dns")  # what kube-proxy forwards for a node
# Where a node's hint names it: filled with every node of its pattern once the pattern has them, so nodes alike
# share one pattern (at 500 nodes whose pod IPs all fail: one hint naming them, not 500 hints naming one each)
NODES = "{nodes}"


def failed(r: ProbeResult) -> bool:
    return r.outcome not in ("ok", "not-run")


@dataclass
class Pattern:
    """A cause the matrix points at, the cells it explains, a one-line summary and the evidence that decided."""

    cause: str
    summary: str
    # the cells it explains while the diagnosis runs; then indexed by source in the Diagnosis and let go (at 500
    # nodes whose every pod IP fails they are 750,000 tuples, kept for nothing but the index)
    cells: set[Cell] = field(default_factory=set)
    hint: str = ""
    because: list[str] = field(default_factory=list)  # the evidence beyond the matrix
    doubt: str = ""  # what could not be read to confirm it
    node_because: dict[str, list[str]] = field(default_factory=dict)  # evidence about one node of the pattern


@dataclass
class Diagnosis:
    """Which pattern explains each failed cell, by source and path; a cell's Finding is made when asked (a row of
    hundreds of failed cells shares its pattern's lines instead of copying them)."""

    patterns: list[Pattern]
    # (kind, source) -> target -> the pattern that explains that failed cell, and its result: keyed by the results'
    # own strings, where a dict of every cell by a tuple of its own held 240 MiB at 500 nodes whose pod IPs fail
    by_source: dict[tuple[str, str], dict[str, tuple[Pattern, ProbeResult]]]
    aws_findings: dict[str, list[dict]]  # the AWS findings by the source node of their subject

    @property
    def explained(self) -> dict[Cell, Pattern]:
        """Every explained cell and its pattern (made when asked)."""
        return {(kind, source, target): p for (kind, source), targets in self.by_source.items()
                for target, (p, _) in targets.items()}

    def finding(self, kind: str, source: str, target: str) -> Finding | None:
        explained = self.by_source.get((kind, source), {}).get(target)
        if explained is None:
            return None
        p, result = explained
        return self.pattern_finding(p, source, target, [result.evidence()])

    def row_findings(self, kind: str, source: str, targets: list[str]) -> list[Finding]:
        """The findings of these failed targets of one source's row, without each cell's own line (the row says
        it for all of them): targets whose findings read alike share one. A Finding a cell made 1.25 million
        of them at 500 failing nodes, 14 s of the run's checks."""
        row = self.by_source[kind, source]
        exact = {f["subject"] for f in self.aws_findings.get(source, [])}
        shared: dict[tuple, Finding] = {}
        out = []
        for target in targets:
            p = row[target][0]
            # what the finding says of the target itself: its node's lines, EC2's findings about this very path
            key = (id(p), tuple(p.node_because.get(target, ())) if target != source else (),
                   target if f"{source}->{target}" in exact else None)
            if key not in shared:
                shared[key] = self.pattern_finding(p, source, target, [])
            out.append(shared[key])
        return out

    def pattern_finding(self, p: Pattern, source: str, target: str, first: list[str]) -> Finding:
        evidence = [*first, f"pattern: {p.summary}", *p.because]
        evidence += [e for n in dict.fromkeys((source, target)) for e in p.node_because.get(n, [])]
        return Finding(p.cause, evidence, " ".join(h for h in (p.hint, p.doubt) if h),
                       self.corroboration(p, source, target))

    def corroboration(self, p: Pattern, source: str, target: str) -> list[str]:
        """EC2's own findings of the pattern's cause about the cell's path (source -> target), else about
        its source."""
        mine = [f for f in self.aws_findings.get(source, []) if f["cause"] == p.cause]
        exact = [f for f in mine if f["subject"] == f"{source}->{target}"]
        return [f"AWS: {f['detail']}" for f in exact or mine]


def diagnose(results: list[ProbeResult], ev: Evidence) -> Diagnosis:
    """Explain every failed probe: each pattern in turn takes the failed cells the ones before it left."""
    if not any(failed(r) for r in results):  # nothing to explain (and no index of every cell to build)
        return Diagnosis([], {}, {})
    by_cell = Matrix(results)
    unexplained = {c for c, r in by_cell.items() if failed(r)}
    patterns: list[Pattern] = []
    for find in (network_policy, cross_subnet, pod_ip_unreachable, master_inbound, apiserver_port, kube_proxy,
                 cluster_dns):
        for p in find(by_cell, unexplained, ev, patterns):  # each makes sets of its own, never keeps this one
            unexplained -= p.cells
            patterns.append(p)
    if unexplained:
        patterns.append(Pattern(UNKNOWN, "failures that no documented cause explains", unexplained,
                                row_and_column_hint(by_cell, unexplained)))
    by_source: dict[tuple[str, str], dict[str, tuple[Pattern, ProbeResult]]] = defaultdict(dict)
    for p in patterns:
        for cell in p.cells:
            kind, source, target = cell  # the results' own strings (the Matrix is keyed by them)
            by_source[kind, source][target] = (p, by_cell[cell])
        p.cells = set()
    aws_findings = defaultdict(list)
    for f in ev.aws.get("findings", []):
        aws_findings[f["subject"].split("->")[0]].append(f)
    return Diagnosis(patterns, dict(by_source), dict(aws_findings))


class Matrix(dict[Cell, ProbeResult]):
    """Every cell's result, and the measured cells of each kind listed once: a pattern walks the kinds it weighs,
    not the whole matrix (at 500 nodes 1.5 million cells, walked whole a dozen times, were most of a diagnosis)."""

    def __init__(self, results: list[ProbeResult]):
        super().__init__(((r.kind, r.source, r.target), r) for r in results)
        self.of_kind: dict[str, list[Cell]] = defaultdict(list)
        for c, r in self.items():
            if r.outcome != "not-run":
                self.of_kind[c[0]].append(c)

    def measured(self, kinds) -> Iterator[Cell]:
        return (c for kind in kinds for c in self.of_kind.get(kind, ()))

    def cross(self, kinds) -> Iterator[Cell]:
        """The measured cells of these kinds between two nodes, one at a time: a set of them is a million tuples'
        worth at 500 nodes, so the patterns make one only where they need it again."""
        return (c for c in self.measured(kinds) if c[1] != c[2])


# ---------------------------------------------------------------- NetworkPolicies over the probes
def network_policy(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """A NetworkPolicy that selects the pod-network probes decides what they may reach or be reached by:
    their failures say what the policy allows, not what the network carries."""
    if not ev.policies:
        return []
    cells = {c for c in bad if c[0] in POD_SIDE_KINDS or c[0] in POD_IP_KINDS}
    if not cells:
        return []
    return [Pattern("network-policy-blocks-probes", "NetworkPolicies select the probe pods",
                    cells, because=[f"{p} selects the pod-network probes" for p in ev.policies])]


# ---------------------------------------------------------------- native routing across subnets
def cross_subnet(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """Between subnets the VPC router delivers a pod IP only by a route naming the node that owns it (its
    `local` route delivers to the interfaces' own addresses). With that route missing from the source
    subnet's table, every pod-IP packet from there towards the node's pods is lost: host -> pod and pod ->
    pod fail, pod -> pod the other way too (its reply needs the route), while node IPs, the VPC's own,
    answer. Decided by EC2's route tables: without them, this shape is left to the patterns below."""
    blocked = ec2_pairs(ev, "cross-subnet-native-routing")
    if not blocked:
        return []

    def predicted(c: Cell) -> bool:
        kind, src, dst = c
        return (src, dst) in blocked or (kind in BOTH_WAYS and (dst, src) in blocked)

    direct = {c for c in by_cell.cross(DIRECT_POD_IP) if predicted(c)}
    if not direct or not direct <= bad:
        return []  # pod IPs get through where the tables say they cannot: not (only) the route tables
    if any(c in bad for c in by_cell.cross(("host-to-host",)) if (c[1], c[2]) in blocked):
        return []
    cells = direct | {c for c in bad if c[0] == "external-ip" and predicted(c)}
    pairs = sorted({f"{s}->{d}" for s, d in blocked})
    summary = f"pod IPs fail between nodes of different subnets ({first_of(pairs, 4)}) while node IPs answer"
    because = [f"AWS: {f['detail']}" for f in ev.aws["findings"] if f["cause"] == "cross-subnet-native-routing"][:3]
    return [Pattern("cross-subnet-native-routing", summary, cells, because=because)]


def ec2_pairs(ev: Evidence, cause: str) -> set[tuple[str, str]]:
    """The (source, target) node pairs EC2's describe output says `cause` drops traffic between."""
    return {tuple(f["subject"].split("->", 1)) for f in ev.aws.get("findings", []) if f["cause"] == cause}


# ---------------------------------------------------------------- pod IPs of some nodes unreachable
def pod_ip_unreachable(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """Pod-IP packets dropped at some nodes S: to or from a pod on S, whoever the peer.

    Whatever drops them (the VPC with the source/destination check on, a node without a route to S's pod
    CIDR, S's CNI agent not running), the shape is the same: host -> pod on n fails from every other node,
    pod <-> pod fails whenever n is either end (the reply needs the way back), and host -> host between the
    same nodes works. So the shape finds S, and the evidence says, node by node, which it is. Host -> pod
    from n may fail as well (over a tunnel n's host speaks from its tunnel device's address, one of its pod
    CIDR; a node whose own routes are gone reaches no pod): those follow n when they fail.

    The mirror image: a node R that lost its own routes to the other nodes' pods (its CNI agent gone under
    host-gw, say). Host -> pod from R fails to every other node and pod <-> pod fails whenever R is either
    end, but host -> pod into R works: the reply goes to a node IP, which R reaches without a pod route.
    """
    # the pod-IP cells are walked twice rather than kept (a million of them at 500 nodes); a failed cell is never
    # not-run, so these are the failed ones of by_cell.cross
    observed = {c for c in bad if c[0] in POD_IP_KINDS and c[1] != c[2]}
    if not observed:
        return []
    into, out_of = defaultdict(list), defaultdict(list)
    for cell in by_cell.cross(("host-to-pod",)):
        into[cell[2]].append(cell in bad)
        out_of[cell[1]].append(cell in bad)
    unreachable = {n for n, cells in into.items() if cells and all(cells)}
    routeless = {n for n, cells in out_of.items() if cells and all(cells)} - unreachable
    if not unreachable | routeless:
        return []

    def owner(cell: Cell) -> str | None:
        kind, src, dst = cell
        if dst in unreachable:
            return dst
        if src in routeless or src in unreachable and kind in TUNNEL_BOTH_WAYS:
            return src
        return dst if dst in routeless and kind in BOTH_WAYS else None

    def required(cell: Cell) -> bool:
        kind, src, dst = cell
        return dst in unreachable or src in routeless or kind in BOTH_WAYS and (src in unreachable or
                                                                                 dst in routeless)

    # The direct paths decide the shape; externalIPs are load-balanced, so one that happened to reach the
    # node's pods through another way does not overturn it (its failures follow the node, when they fail).
    if not all(c in bad for c in by_cell.cross(DIRECT_POD_IP) if required(c)) or any(
            not owner(c) for c in observed if c[0] != "external-ip"):
        return []
    affected = unreachable | routeless
    if any(c in bad for c in by_cell.cross(("host-to-host",)) if c[1] in affected or c[2] in affected):
        return []
    by_cause: dict[tuple, Pattern] = {}
    pattern_of, nodes_of = {}, defaultdict(set)  # node -> its pattern; pattern key -> the nodes with cells in it
    for node in sorted(affected):
        why = why_pod_ips_unreachable if node in unreachable else why_no_pod_routes_on
        cause, because, hint, doubt = why(node, ev)
        key = (node in unreachable, cause, hint, doubt)
        p = by_cause.setdefault(key, Pattern(cause, "", hint=hint, doubt=doubt))
        pattern_of[node] = key, p
        if because:
            p.node_because[node] = because
    for c in observed:  # into the patterns' own sets: no set of each node's cells besides
        if node := owner(c):
            key, p = pattern_of[node]
            p.cells.add(c)
            nodes_of[key].add(node)
    for key, p in by_cause.items():
        nodes = named(p, nodes_of[key])
        p.summary = (f"pod IPs on {nodes} are unreachable from other nodes (and their pods reach no other pod) "
                     "while the same nodes answer on their host IPs" if key[0] else
                     f"{nodes} reach no pod on another node (from the host or a pod), and their pods answer no "
                     "other node's pod, while other nodes' hosts reach their pods")
    return list(by_cause.values())


def named(p: Pattern, nodes) -> str:
    """The nodes a pattern grouped, as a person reads them, put in its hint and doubt where they say NODES."""
    names = name_list(nodes)
    p.hint, p.doubt = p.hint.replace(NODES, names), p.doubt.replace(NODES, names)
    return names


def agent_down(node: str, ev: Evidence) -> tuple[str, list[str], str, str] | None:
    """cni-agent-down with the agent's state, when the CNI's agent on the node is not running; else None."""
    agent = ev.cni_agents.get(node)
    return ("cni-agent-down", [f"the {ev.cni} agent on {node}: {agent}"], "", "") if agent else None


def why_no_pod_routes_on(node: str, ev: Evidence) -> tuple[str, list[str], str, str]:
    """(cause, evidence, hint, doubt) for a node that reaches no other node's pods: its own way there is
    gone (EC2 is not on it: what reaches the node's pods from other hosts leaves the same instance)."""
    if down := agent_down(node, ev):
        return down
    routes = ev.routes.get(node)
    lost = [cidr for other, cidrs in ev.pod_cidrs.items() if other != node for cidr in cidrs
            if routes and route_to(routes, cidr) is None]
    if lost and any(has_pod_routes(ev, other) for other in ev.routes if other != node):
        return "pod-route-missing", [f"{node} has no route to {first_of(lost, 4)} (the other nodes' pods), while "
                                     "the other nodes have theirs"], "", ""
    candidates = [c for c, known in (("pod-route-missing", not routes),
                                     ("cni-agent-down", ev.cni != "other" and not ev.cni_agents)) if known]
    look = f"ip route on {NODES}; the host firewall there (iptables-save, nft list ruleset) and the CNI's own logs"
    hint = (f"candidates: {', '.join(candidates)}; " if candidates else "") + f"look at {look}"
    return UNKNOWN, [], hint, ""


def why_pod_ips_unreachable(node: str, ev: Evidence) -> tuple[str, list[str], str, str]:
    """(cause, evidence, hint, doubt) for one node whose pod IPs nobody reaches."""
    if down := agent_down(node, ev):
        return down
    missing = [other for other, routes in ev.routes.items() if other != node and routes
               and any(route_to(routes, cidr) is None for cidr in ev.pod_cidrs.get(node, []))
               and has_pod_routes(ev, other)]
    if missing:
        cidrs = ", ".join(ev.pod_cidrs.get(node, []))
        return "pod-route-missing", [f"{other} has no route to {cidrs} ({node}'s pods), while it has routes to "
                                     "the other nodes' pods" for other in missing], "", ""
    if dropped := ec2_drops_towards(node, ev):
        cause, lines = dropped
        return cause, lines, "", ""
    aws_check = ev.aws.get("source_dest", {}).get(node) if ev.aws_read else None
    routing = ev.routing
    candidates, commands = [], []
    if routing == "encapsulated" or ev.cni == "aws-vpc-cni":
        ruled_out = "the CNI encapsulates pod traffic" if routing == "encapsulated" else \
            "pods have the VPC's own addresses (AWS VPC CNI)"
    elif aws_check and aws_check["on"] is False:
        ruled_out = f"AWS: sourceDestCheck is off for {node} ({aws_check['where']})"
    elif aws_check and aws_check["on"]:
        return "ec2-source-dest-check", [f"AWS: {aws_check['where']}"], "", ""
    else:
        ruled_out = ""
        if ev.on_ec2:
            candidates.append("ec2-source-dest-check")
            commands.append(f"aws ec2 describe-instance-attribute --attribute sourceDestCheck --instance-id "
                            f"<the instance of {NODES}>")
    if not ev.routes:
        candidates.append("pod-route-missing")
        commands.append(f"ip route get <a pod IP of {NODES}> on the other nodes")
    if ev.cni != "other" and not ev.cni_agents:
        candidates.append("cni-agent-down")
        commands.append(f"the {ev.cni} agent pod on {NODES} (kubectl get pods -A -o wide)")
    because = [f"ruled out: ec2-source-dest-check ({ruled_out})"] if ruled_out else []
    if "ec2-source-dest-check" in candidates:  # the pattern fits it, but only EC2's own answer names it
        because.append(f"AWS was not read for this run ({ev.aws.get('why') or 'no credentials'})")
    look = "; then ".join(commands) or (f"the host firewall of {NODES} (iptables-save, nft list ruleset) and "
                                        "the CNI's own logs")
    hint = f"candidates: {', '.join(candidates)}; look at {look}" if candidates else f"look at {look}"
    return UNKNOWN, because, hint, ""


def ec2_drops_towards(node: str, ev: Evidence) -> tuple[str, list[str]] | None:
    """One cause under which EC2's rules drop traffic from every other node to this one (the masters' group
    refusing what the workers' CNI sends, say, with a single master), with EC2's own lines; else None."""
    others = {n for n in ev.roles if n != node and n in ev.aws.get("subnets", {})}
    for cause in EC2_DROPS:
        if others and {(o, node) for o in others} <= ec2_pairs(ev, cause):
            return cause, [f"AWS: {f['detail']}" for f in ev.aws["findings"]
                           if f["cause"] == cause and f["subject"].endswith(f"->{node}")][:3]
    return None


def has_pod_routes(ev: Evidence, node: str) -> bool:
    """Whether a node keeps routes to other nodes' pod CIDRs at all (so one missing is a fault, not a design)."""
    return any(route_to(ev.routes[node], cidr) for other, cidrs in ev.pod_cidrs.items() if other != node
               for cidr in cidrs)


# ---------------------------------------------------------------- security groups, decided by EC2 when read
def master_inbound(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """Workers -> masters fails (pod IPs, and host ports not explicitly opened); the reverse works. When the
    CNI encapsulates, each direction of pod traffic is its own tunnel flow from the sending node, so the
    masters' group refusing the workers' tunnel packets also loses the replies of workers' pods to masters:
    pod IPs fail both ways between the groups, while node IPs from masters to workers still answer."""
    roles = ev.roles
    kinds = (*POD_IP_KINDS, "host-to-host", "pod-to-node")
    observed = {c for c in bad if c[0] in kinds and c[1] != c[2]}  # a failed cell is a measured one
    tunnelled = ev.routing == "encapsulated"

    def inbound(c: Cell) -> bool:
        return roles.get(c[1]) == "worker" and roles.get(c[2]) == "master"

    def outbound_pod_ip(c: Cell) -> bool:
        return tunnelled and c[0] in TUNNEL_BOTH_WAYS and roles.get(c[1]) == "master" and roles.get(c[2]) == "worker"

    if not observed or not all(inbound(c) or outbound_pod_ip(c) for c in observed):
        return []
    cells = set(by_cell.cross(kinds))
    pod_ip_inbound = {c for c in cells if c[0] in POD_IP_KINDS and inbound(c)}
    if not pod_ip_inbound <= observed:
        return []  # some workers do reach pods on masters: not the group's rule
    reverse = {c for c in cells if roles.get(c[1]) == "master" and roles.get(c[2]) == "worker"
               and not outbound_pod_ip(c)}
    if not reverse or reverse & bad:
        return []
    if any(outbound_pod_ip(c) for c in observed):
        summary = ("pod IPs fail both ways between workers and masters over the CNI's tunnel while masters reach "
                   "workers' node IPs and workers reach each other")
    else:
        summary = "workers cannot reach pods on masters while masters reach workers and workers reach each other"
    return [security_group("sg-master-inbound-from-nodes", summary, observed, ev,
                           "the masters' host firewall (iptables-save; nft list ruleset on a master)")]


def apiserver_port(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """Workers time out on the apiserver endpoints (and so on the ClusterIP); masters do not."""
    roles = ev.roles
    endpoint_cells = set(by_cell.measured(("pod-to-apiserver",)))
    observed = bad & endpoint_cells
    if not observed:
        return []
    failing_sources = {c[1] for c in observed}
    masters_ok = [c for c in endpoint_cells if roles.get(c[1]) == "master" and c not in bad]
    if not masters_ok or any(roles.get(s) != "worker" for s in failing_sources):
        return []
    service = {c for c in bad if c[0] == "pod-to-service" and c[1] in failing_sources}
    ports = sorted({c[2].rsplit(":", 1)[1] for c in observed})
    summary = (f"pods on workers ({name_list(failing_sources)}) cannot reach the apiserver endpoints on "
               f"port {', '.join(ports)} while pods on masters can")
    return [security_group("sg-node-to-apiserver", summary, observed | service, ev,
                           "the masters' host firewall and the apiserver's --bind-address")]


def security_group(cause: str, summary: str, cells: set[Cell], ev: Evidence, elsewhere: str) -> Pattern:
    """The security-group cause when EC2's rules drop the traffic; when the rules evaluated from describe
    output admit it, not that cause. Unread, the pattern alone fits the group and a host firewall alike:
    unknown, the group first among the candidates."""
    if not ev.aws_read:
        why = ev.aws.get("why") or "no credentials"
        return Pattern(UNKNOWN, summary, cells, because=[f"AWS was not read for this run ({why})"],
                       hint=f"candidates: {cause}; look at the security groups of the nodes (aws ec2 "
                            f"describe-security-groups, or run with AWS credentials), then {elsewhere}")
    if any(f["cause"] == cause for f in ev.aws.get("findings", [])):
        return Pattern(cause, summary, cells)
    return Pattern(UNKNOWN, summary, cells, because=[
        f"ruled out: {cause} (EC2's security groups and network ACLs admit this traffic, evaluated from "
        "describe output)"], hint=f"look at {elsewhere}, then NetworkPolicies of kube-system")


# ---------------------------------------------------------------- kube-proxy
def kube_proxy(by_cell, bad, ev: Evidence, found) -> list[Pattern]:
    """The ClusterIP fails from a node while every endpoint behind it answers from that same node: that
    node's service forwarding. It forwards externalIPs and the DNS ClusterIP too, so their failures from
    the node follow it. Nodes whose kube-proxy reads alike share one pattern."""
    sources = {c[1] for c in bad if c[0] == "pod-to-service"}
    endpoints, failures = defaultdict(list), defaultdict(set)  # by source: gathered once, not once a source
    for c in by_cell.measured(("pod-to-apiserver",)):
        if c[1] in sources:
            endpoints[c[1]].append(c)
    for c in bad:
        if c[0] in SERVICE_KINDS and c[1] in sources:
            failures[c[1]].add(c)
    by_cause: dict[tuple[str, str], Pattern] = {}
    nodes_of = defaultdict(list)
    for node in sorted(sources):
        if not endpoints[node] or any(c in bad for c in endpoints[node]):
            continue
        cause, because, hint = why_clusterip_fails_on(node, ev)
        p = by_cause.setdefault((cause, hint), Pattern(cause, "", hint=hint))
        p.cells |= failures[node]
        nodes_of[cause, hint].append(node)
        if because:
            p.node_because[node] = because
    for key, p in by_cause.items():
        nodes = named(p, nodes_of[key])
        p.summary = f"from {nodes} the kubernetes ClusterIP fails while every apiserver endpoint answers"
    return list(by_cause.values())


def why_clusterip_fails_on(node: str, ev: Evidence) -> tuple[str, list[str], str]:
    """(cause, evidence, hint) for a node whose ClusterIP fails while its endpoints answer: kube-proxy when
    its health or its pod says it is down; unknown, pointing at its rules, when it reports healthy; unknown
    with it as the candidate when it could not be read."""
    health, pod = ev.kube_proxy.get(node), ev.kube_proxy_pods.get(node)
    if health or (health is None and pod):
        return "kube-proxy-not-forwarding", ([f"kube-proxy /healthz on {node}: {health}"] if health else []) + \
            kube_proxy_pod_lines(pod, node), ""
    if health == "":
        return UNKNOWN, [f"kube-proxy on {node} reports healthy"], (
            f"its rules for the ClusterIP on {NODES} (iptables-save -t nat | grep KUBE-SVC; ipvsadm -Ln), or a "
            "CNI that replaces kube-proxy")
    return UNKNOWN, [], (f"candidates: kube-proxy-not-forwarding; look at kube-proxy on {NODES} (its pod or "
                         "service, its log, curl 127.0.0.1:10256/healthz there)")


# ---------------------------------------------------------------- cluster DNS
def cluster_dns(by_cell, bad, ev: Evidence, found: list[Pattern]) -> list[Pattern]:
    """DNS failing with no ready endpoint behind the DNS service: cluster DNS itself. Otherwise DNS fails as
    a consequence of a pattern already found: the node cannot reach the DNS pods by pod IP, or the nodes
    running them cannot reach the apiserver."""
    failures = {c for c in bad if c[0] == "dns"}
    if not failures:
        return []
    if ev.dns_ready == 0:
        where = f" (CoreDNS runs on {', '.join(ev.dns_nodes)})" if ev.dns_nodes else " (no CoreDNS pod runs)"
        because = [f"kube-system/kube-dns has no ready endpoint{where}"]
        if ev.dns_nodes and all(n in ev.unready for n in ev.dns_nodes):  # its pods are fine: their nodes are not
            return [Pattern("node-not-ready", "every lookup fails: CoreDNS runs only on NotReady nodes", failures,
                            because=because + [f"{n}: {ev.unready[n]}" for n in ev.dns_nodes])]
        return [Pattern("cluster-dns-unavailable", "every lookup fails", failures, because=because)]
    out = []
    for p in found:
        if p.cause == UNKNOWN:
            continue
        dns_cut_off = any(c[0] == "pod-to-apiserver" and c[1] in ev.dns_nodes for c in p.cells)

        def explained(cell: Cell, p=p, dns_cut_off=dns_cut_off) -> bool:
            paths = [("pod-to-pod", cell[1], d) for d in ev.dns_nodes if d != cell[1]]
            return dns_cut_off or bool(paths) and all(path in p.cells for path in paths)

        if cells := {c for c in failures if explained(c)}:
            dns_side = [e for n in ev.dns_nodes for e in p.node_because.get(n, [])]
            out.append(Pattern(p.cause, f"cluster DNS fails as a consequence: {p.summary}", cells,
                               because=p.because + dns_side, doubt=p.doubt, node_because=p.node_because))
    return out


# ---------------------------------------------------------------- what is left
def row_and_column_hint(by_cell, cells: set[Cell]) -> str:
    """Whole rows failing point at the source's egress, whole columns at the destination's ingress."""
    hints = []
    for kind in sorted({c[0] for c in cells}):
        measured = by_cell.of_kind.get(kind, [])
        bad = [c for c in cells if c[0] == kind]  # failed, so measured: a row or column is all bad when it
        # counts as many bad cells as measured ones (counted once each, where a set per row cost N³ at scale)
        measured_in, bad_in = (Counter(c[1] for c in measured), Counter(c[2] for c in measured)), \
            (Counter(c[1] for c in bad), Counter(c[2] for c in bad))
        rows, cols = (sorted(n for n, count in measured_in[i].items() if bad_in[i][n] == count) for i in (0, 1))
        if rows and len(rows) < len(measured_in[0]):
            hints.append(f"{kind}: everything from {name_list(rows)} fails (look at that source's egress: "
                         "routes, host firewall, outbound rules)")
        if cols and len(cols) < len(measured_in[1]):
            hints.append(f"{kind}: everything to {name_list(cols)} fails (look at that destination's ingress: "
                         "its security group, host firewall, the probe pod there)")
        pod_ip_bad = kind in POD_IP_KINDS
        host_ok = not any(c[0] == "host-to-host" for c in cells)
        if pod_ip_bad and host_ok and by_cell.of_kind.get("host-to-host"):
            hints.append(f"{kind}: pod IPs fail where node IPs work: check routing of pod CIDRs between nodes")
    return "; ".join(hints)

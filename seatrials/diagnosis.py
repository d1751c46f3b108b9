"""From the shape of the failure matrix to a documented cause.

One probe failing says little; the pattern across all of them says a lot:
- pod IPs failing wherever a given node is involved, while node IPs answer:
  the VPC drops pod-IP packets at that node (EC2 source/destination check);
- only workers -> masters failing while masters -> workers works: the masters'
  security group drops what the workers send;
- only workers failing to reach the apiserver's endpoints: the masters' group
  does not admit workers on the apiserver port;
- the ClusterIP failing while the endpoints behind it answer: kube-proxy.
When no documented pattern fits, the cause is "unknown" and the hint names the
row (source's egress) or column (destination's ingress) that failed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from seatrials.causes import UNKNOWN, Finding
from seatrials.network import POD_IP_KINDS, ProbeResult

Cell = tuple[str, str, str]  # kind, source, target


def failed(r: ProbeResult) -> bool:
    return r.outcome not in ("ok", "not-run")


@dataclass
class Pattern:
    """A cause the matrix points at, the cells it explains and a one-line summary."""

    cause: str
    summary: str
    cells: set[Cell] = field(default_factory=set)
    hint: str = ""


@dataclass
class Diagnosis:
    patterns: list[Pattern]
    findings: dict[Cell, Finding]

    def finding(self, kind: str, source: str, target: str) -> Finding | None:
        return self.findings.get((kind, source, target))


def diagnose(results: list[ProbeResult], roles: dict[str, str], dns_nodes: list[str] = (),
             corroborate=None) -> Diagnosis:
    """Explain every failed probe. `corroborate(cause, nodes) -> (agreeing lines, disagreeing hint)`
    lets cloud settings confirm or question a pattern (see aws.py)."""
    by_cell = {(r.kind, r.source, r.target): r for r in results}
    bad = {c for c, r in by_cell.items() if failed(r)}
    patterns = [p for p in (source_dest_check(by_cell, bad), master_inbound(by_cell, bad, roles),
                            apiserver_port(by_cell, bad, roles)) if p]
    patterns += kube_proxy(by_cell, bad, patterns)
    patterns += dns(bad, patterns, dns_nodes)
    explained = set().union(*(p.cells for p in patterns)) if patterns else set()
    leftovers = bad - explained
    if leftovers:
        patterns.append(Pattern(UNKNOWN, "failures that no documented cause explains", leftovers,
                                row_and_column_hint(by_cell, leftovers)))
    findings = {}
    for p in patterns:
        agree, doubt = corroborate(p.cause, nodes_of(p.cells)) if corroborate else ([], "")
        for cell in p.cells:
            r = by_cell[cell]
            evidence = [r.evidence(), f"pattern: {p.summary}"]
            findings[cell] = Finding(p.cause, evidence, " ".join(h for h in (p.hint, doubt) if h), agree)
    return Diagnosis(patterns, findings)


def nodes_of(cells: set[Cell]) -> set[str]:
    return {n for _, s, t in cells for n in (s, t)}


def cross_cells(by_cell, kinds) -> set[Cell]:
    return {c for c in by_cell if c[0] in kinds and c[1] != c[2] and by_cell[c].outcome != "not-run"}


def source_dest_check(by_cell, bad) -> Pattern | None:
    """Pod-IP packets dropped at some nodes S: to or from a pod on S, whoever the peer.

    With the check on node n, the VPC drops what n sends from a pod IP and what
    arrives for a pod IP on n; node IPs are unaffected. So: host -> pod on n
    fails from every other node, pod <-> pod fails whenever n is either end, and
    host -> host between the same nodes works.
    """
    pod_ip = cross_cells(by_cell, POD_IP_KINDS)
    observed = bad & pod_ip
    if not observed:
        return None
    columns = defaultdict(list)
    for kind, src, dst in pod_ip:
        if kind == "host-to-pod":
            columns[dst].append((kind, src, dst) in bad)
    affected = {n for n, cells in columns.items() if cells and all(cells)}
    if not affected:
        return None

    def predicted(cell: Cell) -> bool:
        kind, src, dst = cell
        return dst in affected or (kind in ("pod-to-pod", "pod-to-pod-icmp") and src in affected)

    expected = {c for c in pod_ip if predicted(c)}
    host_paths = cross_cells(by_cell, ("host-to-host",))
    host_paths_ok = not (bad & {c for c in host_paths if c[1] in affected or c[2] in affected})
    if observed != expected or not host_paths_ok:
        return None
    return Pattern("ec2-source-dest-check",
                   f"pod IPs on {', '.join(sorted(affected))} are unreachable from other nodes (and their pods reach "
                   "no other pod) while the same nodes answer on their host IPs", observed)


def master_inbound(by_cell, bad, roles) -> Pattern | None:
    """Workers -> masters fails (pod IPs, and host ports not explicitly opened); the reverse works."""
    kinds = (*POD_IP_KINDS, "host-to-host", "pod-to-node")
    cells = cross_cells(by_cell, kinds)
    observed = bad & cells

    def inbound(c: Cell) -> bool:
        return roles.get(c[1]) == "worker" and roles.get(c[2]) == "master"

    if not observed or not all(inbound(c) for c in observed):
        return None
    pod_ip_inbound = {c for c in cells if c[0] in POD_IP_KINDS and inbound(c)}
    if not pod_ip_inbound <= observed:
        return None  # some workers do reach pods on masters: not the group's rule
    reverse = {c for c in cells if roles.get(c[1]) == "master" and roles.get(c[2]) == "worker"}
    if not reverse or reverse & bad:
        return None
    return Pattern("sg-master-inbound-from-nodes",
                   "workers cannot reach pods on masters while masters reach workers and workers reach each other",
                   observed)


def apiserver_port(by_cell, bad, roles) -> Pattern | None:
    """Workers time out on the apiserver endpoints (and so on the ClusterIP); masters do not."""
    endpoint_cells = {c for c in by_cell if c[0] == "pod-to-apiserver" and by_cell[c].outcome != "not-run"}
    observed = bad & endpoint_cells
    if not observed:
        return None
    failing_sources = {c[1] for c in observed}
    masters_ok = [c for c in endpoint_cells if roles.get(c[1]) == "master" and c not in bad]
    if not masters_ok or any(roles.get(s) != "worker" for s in failing_sources):
        return None
    service = {c for c in bad if c[0] == "pod-to-service" and c[1] in failing_sources}
    ports = sorted({c[2].rsplit(":", 1)[1] for c in observed})
    return Pattern("sg-node-to-apiserver",
                   f"pods on workers ({', '.join(sorted(failing_sources))}) cannot reach the apiserver endpoints on "
                   f"port {', '.join(ports)} while pods on masters can", observed | service)


def kube_proxy(by_cell, bad, found: list[Pattern]) -> list[Pattern]:
    """The ClusterIP fails from a node while the endpoints answer from that same node."""
    explained = set().union(*(p.cells for p in found)) if found else set()
    cells = set()
    for cell in bad - explained:
        if cell[0] != "pod-to-service":
            continue
        endpoints = [c for c in by_cell if c[0] == "pod-to-apiserver" and c[1] == cell[1]]
        if endpoints and not any(c in bad for c in endpoints):
            cells.add(cell)
    if not cells:
        return []
    return [Pattern(UNKNOWN, "the kubernetes ClusterIP fails from these nodes while every apiserver endpoint "
                    "answers from the same nodes", cells,
                    "the service's forwarding is broken: check kube-proxy on those nodes (its logs, iptables/ipvs "
                    "rules for the ClusterIP) - not the network or security groups")]


def dns(bad, found: list[Pattern], dns_nodes) -> list[Pattern]:
    """Cluster DNS failing as a consequence of a pattern already found: the node cannot reach
    the DNS pods by pod IP, or the nodes running them cannot reach the apiserver."""
    failures = {c for c in bad if c[0] == "dns"}
    out = []
    for p in found:
        if p.cause == UNKNOWN:
            continue
        dns_cut_off = any(c[0] == "pod-to-apiserver" and c[1] in dns_nodes for c in p.cells)

        def explained(cell: Cell, p=p, dns_cut_off=dns_cut_off) -> bool:
            paths = [("pod-to-pod", cell[1], d) for d in dns_nodes if d != cell[1]]
            return dns_cut_off or bool(paths) and all(path in p.cells for path in paths)

        cells = {c for c in failures if explained(c)}
        if cells:
            out.append(Pattern(p.cause, f"cluster DNS fails as a consequence: {p.summary}", cells))
    return out


def row_and_column_hint(by_cell, cells: set[Cell]) -> str:
    """Whole rows failing point at the source's egress, whole columns at the destination's ingress."""
    hints = []
    for kind in sorted({c[0] for c in cells}):
        measured = {c for c in by_cell if c[0] == kind and by_cell[c].outcome != "not-run"}
        bad = {c for c in cells if c[0] == kind}
        rows = sorted(s for s in {c[1] for c in measured} if {c for c in measured if c[1] == s} <= bad)
        cols = sorted(t for t in {c[2] for c in measured} if {c for c in measured if c[2] == t} <= bad)
        if rows and len(rows) < len({c[1] for c in measured}):
            hints.append(f"{kind}: everything from {', '.join(rows)} fails (look at that source's egress: "
                         "routes, host firewall, outbound rules)")
        if cols and len(cols) < len({c[2] for c in measured}):
            hints.append(f"{kind}: everything to {', '.join(cols)} fails (look at that destination's ingress: "
                         "its security group, host firewall, the probe pod there)")
        pod_ip_bad = kind in POD_IP_KINDS
        host_ok = not any(c[0] == "host-to-host" for c in cells)
        if pod_ip_bad and host_ok and any(c[0] == "host-to-host" for c in by_cell):
            hints.append(f"{kind}: pod IPs fail where node IPs work: check routing of pod CIDRs between nodes")
    return "; ".join(hints)

"""Sign-offs to render in tests, made of the real data model: a 3-node run, healthy or with the
EC2 source/destination check on worker-2 (probe results from tests/simulate.py, judged by the
real diagnosis through Trial.cell, as the suite's network checks do), and a synthetic 500-node
run (matrix rows and check records built directly: one case per source node and path kind,
as the scale work plans, with two nodes' source/destination check on, one node NotReady and
scattered DNS failures)."""

from __future__ import annotations

import hashlib
import random

from seatrials import verdict
from seatrials.causes import FAILED, NOT_APPLICABLE, NOT_CHECKED, Finding, Result
from seatrials.network.paths import KINDS, ProbeResult
from seatrials.network.trial import Trial
from seatrials.reporting import CheckReport, RunRecord, baseline, finding_record, matrices, signoff
from seatrials.reporting.signoff import OUTCOME_CODES, fingerprint, node_list
from seatrials.topology import Node, Topology
from tests import simulate

STARTED = 1_795_000_000.0  # 2026-11-18T08:26:40Z
ENDPOINT = "10.240.0.11:6444"
SERVICE = "10.32.0.1:443"
PAIR_CHECKS = {"test_pod_to_pod": "pod-to-pod", "test_pod_to_pod_icmp": "pod-to-pod-icmp",
               "test_host_to_pod": "host-to-pod", "test_external_ip_backends": "external-ip"}
CROSS_CHECKS = {"test_host_to_host": "host-to-host", "test_pod_to_node": "pod-to-node"}


def topology(masters: list[str], workers: list[str]) -> Topology:
    def node(name: str, role: str, k: int) -> Node:
        instance = "i-0" + hashlib.sha256(name.encode()).hexdigest()[:16]
        return Node(name, role, f"10.240.{k // 200}.{11 + k % 200}", f"aws:///eu-west-1a/{instance}",
                    (f"10.200.{k}.0/24" if k < 256 else f"10.{201 + k // 256}.{k % 256}.0/24",))

    nodes = [node(n, "master", k) for k, n in enumerate(masters)]
    nodes += [node(n, "worker", k + len(masters)) for k, n in enumerate(workers)]
    return Topology(nodes, ("10.32.0.1", 443), [(nodes[0].internal_ip, 6444)], "calico",
                    [{"cidr": "10.200.0.0/16", "ipipMode": "Never", "vxlanMode": "Never"}], None, "v1.34.4",
                    ("10.32.0.10", 53), [workers[0]])


def report(nodeid: str, area: str, result: Result) -> CheckReport:
    """What the plugin records for a check that returned `result`."""
    name = nodeid.split("::")[-1]
    check, _, case = name.partition("[")
    case = case.rstrip("]")
    if result.status == FAILED:
        f = result.finding
        return CheckReport(nodeid, check, case, "failed", f.cause, f.message(), 0.001, area, **finding_record(f, []))
    if result.status in (NOT_CHECKED, NOT_APPLICABLE):
        return CheckReport(nodeid, check, case, "skipped", "", f"{result.status}: {result.reason}", 0.0, area)
    return CheckReport(nodeid, check, case, "passed", "", "", 0.001, area, notes=result.notes)


def record(topo: Topology, checks: list[CheckReport], matrix: dict, run_id: str) -> RunRecord:
    facts = verdict.RunFacts(outcomes=[(c.judged, c.area, c.name) for c in checks])
    judged = verdict.judge(facts)
    return RunRecord(run_id=run_id, server="https://10.240.0.5:6443", context="staging-eu", started=STARTED,
                     ended=STARTED + 7.4, verdict=judged.verdict, reasons=judged.reasons, exit_code=judged.exit_code,
                     not_verified=judged.not_verified, checks=checks, nodes=node_list(topo),
                     fingerprint=fingerprint(topo), matrix=matrix,
                     command="pytest suites --kubeconfig /home/ci/staging.yaml --aws-region eu-west-1",
                     options={"kubeconfig": "/home/ci/staging.yaml", "aws_region": "eu-west-1"},
                     api_requests={"GET /api/v1/namespaces/{namespace}/pods/{name}/exec": 6,
                                   "GET /api/v1/namespaces/{namespace}/pods": 47},
                     trial_timings={"deploy": 0.4, "ready": 1.9, "measure": 1.5})


# ---------------------------------------------------------------- three nodes
def three_nodes(source_dest_check_on: tuple[str, ...] = ()) -> RunRecord:
    topo = topology(simulate.MASTERS, simulate.WORKERS)
    blocked = simulate.source_dest_check(source_dest_check_on) if source_dest_check_on else simulate.healthy
    results = simulate.results(blocked, endpoints=(ENDPOINT,), service=SERVICE) + native_routes(topo)
    trial = Trial("r1", "ns", [], [], results, aws=simulate.aws_facts([n.name for n in topo.nodes],
                                                                      check_on=source_dest_check_on))
    names = [n.name for n in topo.nodes]
    checks = []
    for check, kind in (PAIR_CHECKS | CROSS_CHECKS).items():
        suite = "test_services" if kind == "external-ip" else "test_network"
        for a in names:
            for b in names:
                if a != b or check in PAIR_CHECKS:
                    checks.append(report(f"suites/{suite}.py::{check}[{a}->{b}]", "network",
                                         trial.cell(topo, kind, a, b)))
    for n in names:
        checks.append(report(f"suites/test_services.py::test_pod_to_kubernetes_service[{n}]", "network",
                             trial.cell(topo, "pod-to-service", n, SERVICE)))
        checks.append(report(f"suites/test_services.py::test_pod_to_apiserver_endpoint[{n}->{ENDPOINT}]", "network",
                             trial.cell(topo, "pod-to-apiserver", n, ENDPOINT)))
        checks.append(report(f"suites/test_services.py::test_cluster_dns[{n}]", "network",
                             trial.cell(topo, "dns", n, "kubernetes.default")))
        checks.append(report(f"suites/test_kubelet.py::test_kubelet_cgroups[{n}]", "kubelet", Result.passed()))
        checks.append(report(f"suites/test_aws.py::test_source_dest_check[{n}]", "aws", source_dest(topo, n,
                                                                                                 source_dest_check_on)))
    checks.append(report("suites/test_apiserver.py::test_front_proxy_settings", "apiserver", Result.passed(
        notes=["apiserver flags: apiserver does not run as a pod here"])))
    checks.append(report("suites/test_apiserver.py::test_aggregated_apis_available", "apiserver",
                         Result.not_applicable("no aggregated APIService (spec.service) in this cluster")))
    checks.append(report("suites/test_services.py::test_kubernetes_service_ip", "network",
                         Result.not_checked("no --expect-service-ip given")))
    return record(topo, checks, matrices(trial), "20261118-082640-3a7c")


def native_routes(topo: Topology) -> list[ProbeResult]:
    """What each node's host probe reads of its routes: every other node's pod CIDR via that node (Calico, no
    encapsulation): the evidence that routes are sound, so the VPC's check is the cause."""
    return [ProbeResult("routes", n.name, n.name, "-", "ok", "\t".join(
        f"{o.pod_cidrs[0]} via {o.internal_ip} dev eth0" for o in topo.nodes if o != n)) for n in topo.nodes]


def source_dest(topo: Topology, name: str, on: tuple[str, ...]) -> Result:
    """What the AWS check says: both places EC2 keeps the flag (as seatrials/checks/aws.py words them)."""
    instance = next(n.provider_id for n in topo.nodes if n.name == name).rsplit("/", 1)[1]
    if name not in on:
        return Result.passed()
    why = "the VPC drops its pod-IP packets (Calico IP pool 10.200.0.0/16 routes pod IPs natively)"
    return Result.failed("ec2-source-dest-check", [f"instance {instance} sourceDestCheck: true on {name}: {why}",
                                                   f"primary interface eni-0{instance[2:10]} SourceDestCheck: true on "
                                                   f"{name}: {why}"])


# ---------------------------------------------------------------- five hundred nodes
def five_hundred_nodes(seed: int = 500) -> RunRecord:
    """3 masters and 497 workers; the check on worker-7 and worker-311, worker-400 NotReady, DNS failing from a
    few scattered nodes."""
    masters = [f"master-{k}" for k in range(1, 4)]
    workers = [f"worker-{k}" for k in range(1, 498)]
    names = masters + workers
    topo = topology(masters, workers)
    sdc, down = ("worker-7", "worker-311"), "worker-400"
    dns_broken = set(random.Random(seed).sample(workers, 5)) - {down, *sdc}
    matrix = {}
    for kind, (_, title) in KINDS.items():
        targets = {"pod-to-service": [SERVICE], "pod-to-apiserver": [ENDPOINT], "dns": ["kubernetes.default"]}.get(
            kind, names)
        rows = {s: row(kind, s, targets, sdc, down, dns_broken) for s in names}
        matrix[kind] = {"title": title, "sources": names, "targets": targets, "rows": rows}
    checks = []
    for kind, m in matrix.items():
        for s in names:
            checks.append(row_check(kind, s, m, sdc))
    for n in names:
        checks.append(report(f"suites/test_aws.py::test_source_dest_check[{n}]", "aws", source_dest(topo, n, sdc)))
        kubelet = Result.not_checked(f"{down} NotReady: its kubelet cannot be read") if n == down else Result.passed()
        checks.append(report(f"suites/test_kubelet.py::test_kubelet_cgroups[{n}]", "kubelet", kubelet))
        running = Result.failed("node-not-ready", [f"the pod-network probe on {n} is not running: {n} NotReady "
                                                   "since 2026-11-18 08:20:02Z: Kubelet stopped posting node status"],
                                f"start the kubelet on {n} (or remove the node if it is gone)")
        checks.append(report(f"suites/test_probes.py::test_probe_running[{n}]", "network",
                             running if n == down else Result.passed()))
    return record(topo, checks, matrix, "20261118-082640-9f00")


def row(kind: str, source: str, targets: list[str], sdc, down: str, dns_broken: set[str]) -> str:
    """The outcome codes of one source, by the rules of the faults (see tests/simulate.py)."""
    code = dict(OUTCOME_CODES)
    if source == down:
        return code["not-run"] * len(targets)
    if kind == "dns":
        return code["timeout" if source in dns_broken else "ok"]
    if kind in ("pod-to-service", "pod-to-apiserver"):
        return code["ok"] * len(targets)
    cells = [code["ok"]] * len(targets)
    pod_ip = kind in ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip")
    index = {t: j for j, t in enumerate(targets)}
    if pod_ip and kind.startswith("pod-to-pod") and source in sdc:
        cells = [code["timeout"]] * len(targets)
    for t in sdc:
        if pod_ip and t != source:
            cells[index[t]] = code["timeout"]
    cells[index[down]] = code["not-run"]
    # a path between two nodes has no diagonal; a node to a pod on itself never leaves the node
    cells[index[source]] = " " if kind in ("host-to-host", "pod-to-node") else code["ok"]
    return "".join(cells)


def row_check(kind: str, source: str, m: dict, sdc) -> CheckReport:
    """One case per source and path kind; its failure lists every failed target."""
    codes = {v: k for k, v in OUTCOME_CODES.items()}
    row = m["rows"][source]
    failed = [(t, codes[c]) for t, c in zip(m["targets"], row, strict=True) if c not in "o -"]
    nodeid = f"suites/test_network.py::test_{kind.replace('-', '_')}[{source}]"
    if "-" in row and not failed and row.strip("-") == "":
        return report(nodeid, "network", Result.not_checked(f"the probe on {source} is not running"))
    if not failed:
        return report(nodeid, "network", Result.passed())
    cause = "unknown" if kind == "dns" else "ec2-source-dest-check"
    evidence = [f"{kind} {source} -> {t}: {o} after 2 tries" for t, o in failed[:20]]
    evidence += [f"and {len(failed) - 20} more targets"] if len(failed) > 20 else []
    pattern = (f"pod IPs on {', '.join(sdc)} are unreachable from other nodes (and their pods reach no other pod) "
               "while the same nodes answer on their host IPs") if cause != "unknown" else \
        "failures that no documented cause explains"
    return report(nodeid, "network", Result(FAILED, Finding(cause, [*evidence, f"pattern: {pattern}"])))


# ---------------------------------------------------------------- compared with the last nights (--baseline)
def three_nodes_since_last_nights() -> RunRecord:
    """worker-2's source/destination check on tonight; last night worker-1 and worker-2 had it on, the night
    before nothing: worker-1's cases are fixed, worker-2's still failing, under --fail-on new."""
    nights = [signoff(three_nodes()), signoff(three_nodes(("worker-1", "worker-2")))]
    for i, night in enumerate(nights):
        night["started"], night["run_id"] = f"2026-11-1{6 + i}T02:00:00Z", f"2026111{6 + i}-020000-night"
    tonight = three_nodes(("worker-2",))
    current = signoff(tonight)
    changes = baseline.compare(current, nights)
    facts = verdict.RunFacts(outcomes=[(c.outcome, c.area, c.name) for c in tonight.checks])
    judged = verdict.judge(facts)
    policy = verdict.fail_on_new(judged, facts, len(changes.new), len(changes.still_failing))
    tonight.baseline = baseline.section(current, nights, changes, "new", policy)
    tonight.exit_code = judged.exit_code
    return tonight

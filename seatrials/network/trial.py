"""The network trial of one run: deploy probes, wait, measure every path once,
and give every test case the Result of its own cell.

Measured once per run, whatever the number of pytest-xdist workers: the first
process that needs the trial takes a file lock, measures, and writes
trial.json into the run's shared directory; the others read it. A run
without xdist has one process: it keeps its trial and writes none.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections import defaultdict
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

from seatrials.causes import FAILED, SEVERITY, UNKNOWN, Finding, Result, cause
from seatrials.cluster import SetupError
from seatrials.network import cases, paths, probes, readiness
from seatrials.network.diagnosis import Diagnosis, diagnose, failed
from seatrials.network.evidence import (
    Evidence,
    kube_proxy_pod_lines,
    parse_routes,
    read_daemonset_pods,
    read_dns_ready,
    read_policies,
)
from seatrials.network.paths import ControlChannel, ProbePod, ProbeResult


@dataclass
class Trial:
    run_id: str
    namespace: str
    statuses: list[dict]  # ProbeStatus as dicts
    channels: list[ControlChannel]
    results: list[ProbeResult]
    service_error: str = ""
    timings: dict = field(default_factory=dict)
    image: str = ""  # the probe image as the pods pulled it
    window: tuple[float, float] | None = None  # when the paths were measured (seconds since the epoch)
    # read once next to the measurement, for the diagnosis (seatrials.network.evidence)
    aws: dict = field(default_factory=dict)  # aws.facts: {} when AWS was not asked
    dns_ready: int | None = None
    policies: list[str] = field(default_factory=list)
    policies_unread: str = ""  # why the NetworkPolicies could not be read, if they could not
    cni_agents: dict = field(default_factory=dict)
    kube_proxy_pods: dict = field(default_factory=dict)  # kube-proxy's DaemonSet pod per node; {}: no such DaemonSet
    _rows: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _diagnosis: Diagnosis | None = field(default=None, init=False, repr=False, compare=False)
    _routes: dict | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self._rows = {}
        for r in self.results:
            self._rows.setdefault((r.kind, r.source), []).append(r)

    def rows(self) -> dict[tuple[str, str], list[ProbeResult]]:
        """(kind, source) -> that source's results on that path."""
        return self._rows

    # ------------------------------------------------------------ persistence
    def to_json(self, results: bool = True) -> dict:
        """Its results as rows of references into a table of their strings: hundreds of thousands of rows at a
        few hundred nodes name a few thousand distinct strings (an externalIP row alone lists every node's IP)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        strings: dict[str, int] = {}
        rows = [r.to_row(strings) for r in self.results] if results else []
        return {**data, "channels": [asdict(c) for c in self.channels], "results": rows, "strings": list(strings)}

    def write(self, path: Path) -> None:
        """As to_json, its results streamed a row at a time (a million rows at 500 nodes), the strings after."""
        head = self.to_json(results=False)
        del head["results"], head["strings"]
        strings: dict[str, int] = {}
        with open(path, "w") as out:
            out.write(json.dumps(head)[:-1] + ', "results": [')
            for i, r in enumerate(self.results):
                out.write(("," if i else "") + json.dumps(r.to_row(strings)))
            out.write(f'], "strings": {json.dumps(list(strings))}}}')

    @classmethod
    def from_json(cls, data: dict) -> Trial:
        strings = data.pop("strings")
        return cls(**{**data, "channels": [ControlChannel(**c) for c in data["channels"]],
                      "results": [ProbeResult.from_row(r, strings) for r in data["results"]],
                      "window": tuple(data["window"]) if data.get("window") else None})

    # ------------------------------------------------------------ judging
    def evidence(self, topology) -> Evidence:
        """What the run knows beyond the matrix: the API's answers, and what each node's probe read of it."""
        if self._routes is None:  # parsed once: hundreds of tables of hundreds of routes at scale
            self._routes = {r.source: parse_routes(r.detail) for r in self.results if r.kind == "routes" and r.ok}
        routes = self._routes
        kube_proxy = {node: "" if r.ok else f"{r.outcome}: {r.detail}" for node, r in self.kube_proxy_health.items()
                      if r.outcome != "not-run"}
        return Evidence(
            roles={n.name: n.role for n in topology.nodes}, node_ips={n.name: n.internal_ip for n in topology.nodes},
            pod_cidrs={n.name: list(n.pod_cidrs) for n in topology.nodes},
            on_ec2=any((n.provider_id or "").startswith("aws://") for n in topology.nodes),
            dns_nodes=topology.dns_nodes, dns_ready=self.dns_ready, routes=routes, kube_proxy=kube_proxy,
            policies=self.policies, cni=topology.cni, cni_agents=self.cni_agents,
            kube_proxy_pods=self.kube_proxy_pods, aws=self.aws,
            unready={n.name: n.unreachable or "NotReady" for n in topology.nodes if n.unreachable or not n.ready})

    def diagnosis(self, topology) -> Diagnosis:
        """Computed once per process: the whole matrix, weighed with the evidence, explains each failed cell."""
        if self._diagnosis is None:
            self._diagnosis = diagnose(self.results, self.evidence(topology))
        return self._diagnosis

    def status(self, side: str, node: str) -> dict | None:
        return next((s for s in self.statuses if s["side"] == side and s["node"] == node), None)

    def result(self, kind: str, source: str, target: str) -> ProbeResult | None:
        """One pair's result (the last, as an index would keep), looked up in its source's row on that path: a few
        hundred results at most, where an index of every result cost 3 s to make at 500 nodes (a million)."""
        return next((r for r in reversed(self._rows.get((kind, source), ())) if r.target == target), None)

    def cell(self, topology, kind: str, source: str, target: str) -> Result:
        """Passed, failed with the diagnosed cause, or not checked with the reason (never a silent pass).
        The target `*` (a per-source case, network.cases) is the source's whole row."""
        if target == cases.ALL:
            return self.row(topology, kind, source)
        r = self.result(kind, source, target)
        if r is None:
            return Result.not_checked(self.why_missing(topology, kind, source, target))
        if r.outcome == "not-run":
            return Result.not_checked(r.detail)
        if r.ok:  # one that needed a retry says so: flaky, not healthy (reporting/baseline.py)
            return Result.passed(tries=str(r.tries)) if r.tries > 1 else Result.passed()
        return Result(FAILED, self.diagnosis(topology).finding(kind, source, target))

    def row(self, topology, kind: str, source: str) -> Result:
        """Every target of one source on one path: passed when all answered (the targets not probed named in
        its notes), failed listing every failed target by cause, or not checked when none was probed."""
        rows = self._rows.get((kind, source), [])
        measured = [r for r in rows if r.outcome != "not-run"]
        if not measured:
            return Result.not_checked(rows[0].detail if rows else self.why_missing(topology, kind, source, cases.ALL))
        skipped = [f"{kind} {source} -> {r.target}: {r.detail}" for r in rows if r.outcome == "not-run"]
        failed = [r for r in measured if not r.ok]
        if not failed:
            return Result.passed(notes=skipped)
        diagnosis = self.diagnosis(topology)
        findings = list(zip(failed, diagnosis.row_findings(kind, source, [r.target for r in failed]), strict=True))
        return Result(FAILED, row_finding(kind, source, len(measured), findings, skipped))

    def probe_running(self, node: str) -> Result:
        """Both probes of the node run, or each that does not with its cause (found by probes.wait_ready)."""
        mine = [s for s in self.statuses if s["node"] == node]
        if not mine:
            return Result.not_checked(f"no probe was deployed for {node} (it joined after the run began?)")
        broken = [s for s in mine if not s["ready"]]
        if not broken:
            return Result.passed()
        first = broken[0]
        evidence = [f"the {s['side']}-network probe on {node} is not running: {s['reason']}" for s in broken]
        hint = readiness.mirror_advice(self.image) if first["cause"] == readiness.IMAGE_CAUSE else first["hint"]
        return Result.failed(first["cause"], evidence, hint)

    def control_channel(self, node: str) -> Result:
        mine = [c for c in self.channels if c.node == node]
        if not mine:
            return Result.not_checked(f"no probe runs on {node} (see test_probe_running[{node}])")
        broken = [c for c in mine if not c.ok]
        if not broken:
            return Result.passed()
        return Result.failed(UNKNOWN, [f"exec into {c.pod} ({c.side} network) on {node} failed: {c.detail}"
                                       for c in broken],
                             "exec, logs and port-forward go from the apiserver to the kubelet on TCP 10250: allow "
                             "it from the masters to every node, and check the kubelet's serving certificate")

    def policies_result(self) -> Result:
        """No NetworkPolicy selects the pod-network probes: else they measure the policy, not the network."""
        if self.policies_unread:
            return Result.not_checked(self.policies_unread)
        if not self.policies:
            return Result.passed()
        return Result.failed("network-policy-blocks-probes", [f"{p} selects the pod-network probes"
                                                              for p in self.policies])

    def cni_agent_result(self, topology, node: str) -> Result:
        """The CNI's agent runs on the node (its DaemonSet's pod is ready)."""
        if not topology.cni_agent:
            return Result.not_checked(f"no CNI agent DaemonSet seatrials knows runs here (cni: {topology.cni})")
        if node not in self.cni_agents:
            return Result.not_checked(f"the pods of {topology.cni_agent['namespace']}/{topology.cni_agent['name']} "
                                      "could not be read")
        why = self.cni_agents[node]
        return Result.failed("cni-agent-down", [f"{node}: {why}"]) if why else Result.passed()

    @cached_property
    def kube_proxy_health(self) -> dict[str, ProbeResult]:
        """Each node's reading of kube-proxy's /healthz, from the rows by source: gathered from every result for each
        node's case, it cost 33 ms a case at 500 nodes (a million results), 16.6 s of the run's checks."""
        return {source: rows[-1] for (kind, source), rows in self._rows.items() if kind == "kube-proxy"}

    def kube_proxy_result(self, node: str) -> Result:
        """kube-proxy answers healthy on the node, where it answers on any node at all (a CNI may replace it) or
        where its DaemonSet should run it there (kubeadm's kube-proxy: its pod missing or not ready)."""
        health = self.kube_proxy_health
        if node not in health or health[node].outcome == "not-run":
            return Result.not_checked(f"no host-network probe read kube-proxy's /healthz on {node}")
        if health[node].ok:
            return Result.passed()
        pod = self.kube_proxy_pods.get(node)  # "" ready, else why not; None: kube-proxy is no DaemonSet here
        if not any(r.ok for r in health.values()) and not pod:
            return Result.not_checked("kube-proxy answers /healthz on no node: it may be replaced by the CNI"
                                      + (" (its DaemonSet's pods are ready)" if pod == "" else ""))
        evidence = [f"kube-proxy /healthz on {node} (127.0.0.1:10256): {health[node].outcome}, "
                    f"{health[node].detail}"]
        return Result.failed("kube-proxy-not-forwarding", evidence + kube_proxy_pod_lines(pod, node))

    def why_missing(self, topology, kind: str, source: str, target: str) -> str:
        if kind == "dns" and not topology.dns_service:
            return "the cluster has no kube-system/kube-dns service"
        side = paths.KINDS[kind][0]
        for where, node in ((side, source), ("pod", target)):
            s = self.status(where, node)
            if s and not s["ready"]:
                return f"the {where}-network probe on {node} is not running ({s['reason']})"
        if kind == "external-ip" and self.service_error:
            return self.service_error
        return f"{kind} {source} -> {target} was not part of this run's plan"


ROW_LINES = 20  # lines of evidence (and of corroboration, of hints) per cause of a row; the rest counted


def row_finding(kind: str, source: str, measured: int, findings: list[tuple[ProbeResult, Finding]],
                skipped: list[str]) -> Finding:
    """One finding for a source's failed targets (each with its finding beyond its own line: Diagnosis.row_findings):
    the cause of the most of them (the gravest on a tie) named, the targets listed by cause and outcome, each
    cause's pattern and evidence once."""
    by_cause: dict[str, list[tuple[ProbeResult, Finding]]] = defaultdict(list)
    for r, f in findings:
        by_cause[f.cause].append((r, f))
    order = sorted(by_cause, key=lambda c: (c == UNKNOWN, -len(by_cause[c]), -SEVERITY.index(cause(c).severity)))
    evidence = [f"{kind} {source} -> {len(findings)} of {measured} targets failed"]
    corroboration, hints = [], []
    for c in order:
        mine = by_cause[c]
        named = "" if c == order[0] else f"[cause: {c}] "
        groups = defaultdict(list)
        for r, _ in mine:
            groups[(r.outcome, r.tries)].append(r)
        for (outcome, tries), rs in groups.items():
            after = f" after {tries} tries" if tries > 1 else ""
            evidence.append(f"{named}{kind} {source} -> {cases.name_list(r.target for r in rs)}: {outcome}{after}"
                            f" ({len(rs)}; e.g. {rs[0].address}: {rs[0].detail[:120]})")
        extra = list(dict.fromkeys(e for _, f in mine for e in f.evidence))
        evidence += extra[:ROW_LINES] + ([f"and {len(extra) - ROW_LINES} more lines of evidence about these "
                                          "targets (every cell is in signoff.json)"] if len(extra) > ROW_LINES else [])
        corroboration += list(dict.fromkeys(e for _, f in mine for e in f.corroboration))[:ROW_LINES]
        hints += [h for h in dict.fromkeys(f.hint for _, f in mine if f.hint) if h not in hints][:ROW_LINES]
    evidence += [f"not checked: {line}" for line in skipped[:ROW_LINES]]
    return Finding(order[0], evidence, " ".join(hints), corroboration)


# ---------------------------------------------------------------- measuring
def deploy(cluster, topology, settings, run_id: str, space: probes.Space) -> Future:
    """Deploy the probes now and measure later (the plugin deploys once the cases are collected: the probes
    become ready while the cases that need none run). The deployment and its seconds, or what deploying
    raised, which run() raises where the trial is measured, as when it deploys itself."""
    deployed: Future = Future()
    started = time.monotonic()
    try:
        deployment = probes.deploy(cluster, topology, settings, run_id, space)
        deployed.set_result((deployment, round(time.monotonic() - started, 2)))
    except Exception as exc:  # noqa: BLE001 - raised again by run()
        deployed.set_exception(exc)
    return deployed


def run(cluster, topology, settings, run_id: str, space: probes.Space, aws_facts=None,
        deployed: Future | None = None) -> Trial:
    """Deploy the probes (unless `deployed` already, see deploy), wait for them, measure every path, read the
    evidence. SetupError when nothing can run."""
    deployment, seconds = (deployed or deploy(cluster, topology, settings, run_id, space)).result()
    timings = {"deploy": seconds}
    names = [n.name for n in topology.nodes]
    started = time.monotonic()
    statuses = readiness.wait_ready(cluster, deployment.namespace, run_id, names, settings.ready_timeout)
    timings["ready"] = round(time.monotonic() - started, 2)
    readiness.require_pullable_image(statuses, settings.image)
    pod_probes, host_probes = probe_pods(statuses, "pod"), probe_pods(statuses, "host")
    sampled = cases.targets_of(topology, settings.pairs, run_id) if settings.pairs is not None else None
    plans = paths.plan(topology, pod_probes, host_probes, settings, external_ips=not deployment.service_error,
                       sampled=sampled)
    by_source = {("pod", n): p for n, p in pod_probes.items()} | {("host", n): p for n, p in host_probes.items()}
    measure_started, wall_started = time.monotonic(), time.time()
    channels, results = paths.measure(cluster, deployment.namespace, plans, by_source, settings,
                                        topology.api_service[0])
    timings["measure"] = round(time.monotonic() - measure_started, 2)
    trial = Trial(run_id, deployment.namespace, [s.as_json() for s in statuses.values()], channels, results,
                  deployment.service_error, timings, settings.image, (wall_started, time.time()))
    diagnosis_started = time.monotonic()
    trial.dns_ready = read_dns_ready(cluster)
    trial.policies, trial.policies_unread = read_policies(cluster, deployment.namespace,
                                                          probes.pod_probe_labels(run_id))
    trial.cni_agents = read_daemonset_pods(cluster, topology.cni_agent, names)
    trial.kube_proxy_pods = read_daemonset_pods(cluster, topology.kube_proxy, names)
    if aws_facts and any(failed(r) for r in results):  # EC2's facts weigh failures only; at 500 nodes, 500,000 verdicts
        trial.aws = aws_facts(topology, trial.evidence(topology).routing)
    trial.diagnosis(topology)  # here, to be timed: the evidence read and every failure explained
    timings["diagnose"] = round(time.monotonic() - diagnosis_started, 2)
    return trial


def probe_pods(statuses: dict, side: str) -> dict[str, ProbePod]:
    return {s.node: ProbePod(s.node, s.pod, s.ip) for (sd, _), s in statuses.items() if sd == side and s.ready}


@contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


MEASURED: dict[Path, Trial] = {}  # the trial this process measured, by the run's shared directory
SETUP_ERROR = "setup error"  # the key of a shared file that says compute() failed (no node or Trial field has it)


def once_for_run(shared_dir: Path, name: str, compute, write, read, share: bool = True):
    """compute()'s value, computed by the run's first process that asks, which write()s it for the others (xdist's
    workers and controller) to read(); a SetupError it raised is theirs too. Without `share` this process is the
    run's only one, and nothing is written."""
    if not share:
        return compute()
    done = shared_dir / f"{name}.json"
    with locked(shared_dir / f"{name}.lock"):
        if not done.exists():
            try:
                value = compute()
                write(value, done)
                return value  # the process that computed keeps its own (a copy of a trial would double the memory)
            except SetupError as exc:
                done.write_text(json.dumps({SETUP_ERROR: str(exc)}))
        data = json.loads(done.read_text())
    if SETUP_ERROR in data:
        raise SetupError(data[SETUP_ERROR])
    return read(data)


def obtain(shared_dir: Path, measure, share: bool = True) -> Trial:
    """The run's trial, measured once (see once_for_run): at 500 nodes writing it for others took 8 s."""
    def measured() -> Trial:
        trial = MEASURED[shared_dir] = measure()
        return trial
    return once_for_run(shared_dir, "trial", measured, Trial.write, Trial.from_json, share)


def load(shared_dir: Path) -> Trial | None:
    if shared_dir in MEASURED:
        return MEASURED[shared_dir]
    done = shared_dir / "trial.json"
    if not done.exists():
        return None
    data = json.loads(done.read_text())
    return None if SETUP_ERROR in data else Trial.from_json(data)

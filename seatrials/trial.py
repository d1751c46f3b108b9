"""The network trial of one run: deploy probes, wait, measure every path once,
and give every test case the Result of its own cell.

Measured once per run, whatever the number of pytest-xdist workers: the first
process that needs the trial takes a file lock, measures, and writes
trial.json into the run's shared directory; the others read it.
"""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seatrials import network, probes, readiness
from seatrials.causes import FAILED, UNKNOWN, Result
from seatrials.cluster import SetupError
from seatrials.diagnosis import Diagnosis, diagnose
from seatrials.network import ControlChannel, ProbePod, ProbeResult


@dataclass
class Trial:
    run_id: str
    namespace: str
    statuses: list[dict]  # ProbeStatus as dicts
    channels: list[ControlChannel]
    results: list[ProbeResult]
    service_error: str = ""
    timings: dict = field(default_factory=dict)
    corroboration: list[dict] = field(default_factory=list)  # AWS findings (cause, subject, detail)
    image: str = ""  # the probe image as the pods pulled it
    _index: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _diagnosis: Diagnosis | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        self._index = {(r.kind, r.source, r.target): r for r in self.results}

    # ------------------------------------------------------------ persistence
    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def from_json(cls, data: dict) -> Trial:
        return cls(**{**data, "channels": [ControlChannel(**c) for c in data["channels"]],
                      "results": [ProbeResult(**r) for r in data["results"]]})

    # ------------------------------------------------------------ judging
    def diagnosis(self, topology) -> Diagnosis:
        """Computed once per process: the whole matrix explains each failed cell."""
        if self._diagnosis is None:
            roles = {n.name: n.role for n in topology.nodes}
            self._diagnosis = diagnose(self.results, roles, topology.dns_nodes, self._corroborate)
        return self._diagnosis

    def _corroborate(self, cause: str, nodes: set[str]) -> tuple[list[str], str]:
        """AWS lines that agree with a pattern, or a doubt when AWS was read and disagrees."""
        if not self.corroboration or cause == UNKNOWN:
            return [], ""
        agree = [f"AWS: {c['detail']}" for c in self.corroboration
                 if c["cause"] == cause and nodes & set(c["subject"].replace("->", " ").split())]
        if agree:
            return agree, ""
        return [], "EC2 settings read for this run do not show this cause; the probes alone point at it"

    def status(self, side: str, node: str) -> dict | None:
        return next((s for s in self.statuses if s["side"] == side and s["node"] == node), None)

    def result(self, kind: str, source: str, target: str) -> ProbeResult | None:
        return self._index.get((kind, source, target))

    def cell(self, topology, kind: str, source: str, target: str) -> Result:
        """Passed, failed with the diagnosed cause, or not checked with the reason (never a silent pass)."""
        r = self.result(kind, source, target)
        if r is None:
            return Result.not_checked(self.why_missing(topology, kind, source, target))
        if r.outcome == "not-run":
            return Result.not_checked(r.detail)
        if r.ok:
            return Result.passed()
        return Result(FAILED, self.diagnosis(topology).finding(kind, source, target))

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

    def why_missing(self, topology, kind: str, source: str, target: str) -> str:
        if kind == "dns" and not topology.dns_service:
            return "the cluster has no kube-system/kube-dns service"
        side = network.KINDS[kind][0]
        for where, node in ((side, source), ("pod", target)):
            s = self.status(where, node)
            if s and not s["ready"]:
                return f"the {where}-network probe on {node} is not running ({s['reason']})"
        if kind == "external-ip" and self.service_error:
            return self.service_error
        return f"{kind} {source} -> {target} was not part of this run's plan"


# ---------------------------------------------------------------- measuring
def run(cluster, topology, settings, run_id: str, space: probes.Space, aws_findings=None) -> Trial:
    """Deploy the probes, wait for them, measure every path. Raises SetupError when nothing can run."""
    started = time.monotonic()
    timings = {}
    deployment = probes.deploy(cluster, topology, settings, run_id, space)
    timings["deploy"] = round(time.monotonic() - started, 2)
    names = [n.name for n in topology.nodes]
    statuses = readiness.wait_ready(cluster, deployment.namespace, run_id, names, settings.ready_timeout)
    timings["ready"] = round(time.monotonic() - started - timings["deploy"], 2)
    readiness.require_pullable_image(statuses, settings.image)
    pod_probes, host_probes = probe_pods(statuses, "pod"), probe_pods(statuses, "host")
    plans = network.plan(topology, pod_probes, host_probes, settings, external_ips=not deployment.service_error)
    by_source = {("pod", n): p for n, p in pod_probes.items()} | {("host", n): p for n, p in host_probes.items()}
    measure_started = time.monotonic()
    channels, results = network.measure(cluster, deployment.namespace, plans, by_source, settings,
                                        topology.api_service[0])
    timings["measure"] = round(time.monotonic() - measure_started, 2)
    return Trial(run_id, deployment.namespace, [s.as_json() for s in statuses.values()], channels, results,
                 deployment.service_error, timings, aws_findings(topology) if aws_findings else [], settings.image)


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


def obtain(shared_dir: Path, measure) -> Trial:
    """The run's trial: measured by the first process that asks, read by the others."""
    done = shared_dir / "trial.json"
    with locked(shared_dir / "trial.lock"):
        if not done.exists():
            try:
                trial = measure()
                done.write_text(json.dumps(trial.to_json()))
            except SetupError as exc:
                done.write_text(json.dumps({"error": str(exc)}))
        data = json.loads(done.read_text())
    if "error" in data and len(data) == 1:
        raise SetupError(data["error"])
    return Trial.from_json(data)


def load(shared_dir: Path) -> Trial | None:
    done = shared_dir / "trial.json"
    if not done.exists():
        return None
    data = json.loads(done.read_text())
    return None if "error" in data and len(data) == 1 else Trial.from_json(data)

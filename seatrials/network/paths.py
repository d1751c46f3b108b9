"""The network paths of a cluster, probed from every node in one exec per source.

Each node carries two probes (see manifests/): one on the pod network, one on
the host network. From each of them a single exec runs `fanout.sh`, which
probes every target of that source in parallel; so the API cost is two execs
per node, and the wall time about one connect timeout (plus retries of what
failed only), however many nodes there are.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources

from kubernetes.client.rest import ApiException

from seatrials.cluster import concurrently, one_line
from seatrials.network.cases import name_list

FANOUT_SCRIPT = resources.files("seatrials.network").joinpath("fanout.sh").read_text()
# Fan-outs at once from this process: each is a thread and an exec stream through the apiserver to its node's
# kubelet, while the probing runs on the node itself; so the bound is the client's, and a broken cluster of
# hundreds of nodes (every fan-out waiting out its timeouts) still takes a few rounds, not dozens. Measured on
# 500 fake nodes whose pod IPs all fail: 64 measured in 295 s, 256 in 96 s (peak RSS 939 MiB), 512 in 69 s but
# past 1 GiB, and KWOK's kubelets dropped execs at 512.
MAX_PARALLEL_EXECS = 256
# Probes in flight at once inside one probe pod (fanout.sh): each is a few processes, and a node's pod and host
# probes fan out at the same time as every other node's; unbounded, a 15-node cluster on 2 cores started
# thousands of processes at once. A failing probe holds its place for a timeout and its retries, so a source
# with many targets gets a wider window (a quarter of them): a source whose every target fails then costs about
# four timeouts, not one per 32 targets (minutes at hundreds of nodes), in at most 128 probes' processes.
MIN_IN_FLIGHT, MAX_IN_FLIGHT = 32, 128

# kind -> (which probe the traffic starts from, what a person reads in a report)
KINDS = {
    "pod-to-pod": ("pod", "pod to pod by pod IP (TCP)"),
    "pod-to-pod-icmp": ("pod", "pod to pod by pod IP (ICMP echo)"),
    "pod-to-node": ("pod", "pod to another node's host IP (TCP)"),
    "pod-to-service": ("pod", "pod to the kubernetes service ClusterIP"),
    "pod-to-apiserver": ("pod", "pod to each apiserver endpoint, bypassing the service"),
    "dns": ("pod", "pod resolves kubernetes.default through cluster DNS"),
    "host-to-pod": ("host", "node (host network) to pod by pod IP (TCP)"),
    "host-to-host": ("host", "node to node by host IP (TCP)"),
    "external-ip": ("host", "node to a Service's externalIPs: every backend answers"),
}
POD_IP_KINDS = ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod", "external-ip")
# What a node's host-network probe reads of the node itself, for the diagnosis (not paths: no test case each).
EVIDENCE_KINDS = {
    "routes": "the node's IPv4 routes (ip -4 route)",
    "kube-proxy": "kube-proxy's /healthz on the node (127.0.0.1:10256)",
}
KUBE_PROXY_HEALTH_PORT = 10256


@dataclass(frozen=True, slots=True)  # 6·N² of them in a run's plan
class Target:
    kind: str
    target: str  # node name, or ip:port for apiserver endpoints, or the DNS name
    mode: str  # tcp, icmp, dns, backends (see fanout.sh)
    address: str
    port: str = "-"
    extra: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.target}"

    def arg(self) -> str:
        return ",".join((self.id, self.mode, self.address, self.port, *self.extra))


@dataclass(slots=True)
class ProbeResult:
    kind: str
    source: str
    target: str
    address: str
    outcome: str  # ok, timeout, refused, no-route, error, not-run
    detail: str
    tries: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def evidence(self) -> str:
        return f"{self.kind} {self.source} -> {self.target} ({self.address}): {self.outcome}" + (
            f" after {self.tries} tries" if self.tries > 1 else "") + (f", {self.detail}" if self.detail else "")

    def to_row(self, strings: dict[str, int]) -> list:
        """As a row of references into `strings` (grown here): hundreds of thousands of rows at a few hundred
        nodes, their names and texts repeated across sources."""
        return [strings.setdefault(v, len(strings)) for v in (self.kind, self.source, self.target, self.address,
                                                               self.outcome, self.detail)] + [self.tries]

    @classmethod
    def from_row(cls, row: list, strings: list[str]) -> ProbeResult:
        """Each string once, however many rows name it."""
        return cls(*(strings[i] for i in row[:6]), row[6])


@dataclass(frozen=True)
class ProbePod:
    node: str
    pod: str
    ip: str  # pod IP; for the host-network probe this is the node's IP


def backends_deadline(settings) -> int:
    """Seconds a source spends collecting every externalIPs backend when some requests get no answer: the
    same budget as a failing single probe (first try, then retries at half the wait; see fanout.sh), so a
    broken cluster is judged about as fast as a healthy one. Backends merely not drawn yet are asked for on
    until their absence is significant, four times this at most."""
    timeout = int(settings.probe_timeout)
    return timeout + settings.probe_retries * max(1, timeout // 2)


def in_flight(targets: int) -> int:
    """The fan-out's window for a source with this many targets (see MIN_IN_FLIGHT)."""
    return max(MIN_IN_FLIGHT, min(MAX_IN_FLIGHT, -(-targets // 4)))


def fanout_deadline(targets: int, settings) -> int:
    """How long one source's exec may take: every window of targets failing (each try bounded one second over
    its wait by `timeout`, the retries at half the wait: fanout.sh), the backends' longest ask (four times their
    deadline), and 30 s for a busy node. It grows with the targets, so a source whose every target fails is
    still heard out: cut short, its exec would say nothing of any of them."""
    per_target = backends_deadline(settings) + 1 + settings.probe_retries  # that budget, and a second a try
    return -(-targets // in_flight(targets)) * per_target + 4 * backends_deadline(settings) + 30


def plan(topology, pod_probes: dict[str, ProbePod], host_probes: dict[str, ProbePod], settings,
         external_ips: bool = True, sampled: dict[str, set[str]] | None = None) -> dict[tuple[str, str], list[Target]]:
    """Targets of every source, keyed by (side, node): every other node, or the ones `sampled` for it
    (network.cases), and the node itself where a path may end there. Pure: no cluster access."""
    service_ip, service_port = topology.api_service
    pod_port, host_port = str(settings.pod_port), str(settings.host_port)  # one string each for 6·N² targets
    plans: dict[tuple[str, str], list[Target]] = {}

    def among(probes: dict[str, ProbePod], node: str, itself: bool) -> dict[str, ProbePod]:
        wanted = sampled.get(node, set()) if sampled is not None else probes.keys()
        return {dst: p for dst, p in probes.items() if (dst in wanted and dst != node) or (itself and dst == node)}

    for node in pod_probes:
        pods = among(pod_probes, node, itself=True)
        targets = [Target("pod-to-pod", dst, "tcp", p.ip, pod_port) for dst, p in pods.items()]
        targets += [Target("pod-to-pod-icmp", dst, "icmp", p.ip) for dst, p in pods.items()]
        targets += [Target("pod-to-node", dst, "tcp", h.ip, host_port)
                    for dst, h in among(host_probes, node, itself=False).items()]
        targets.append(Target("pod-to-service", f"{service_ip}:{service_port}", "tcp", service_ip,
                              str(service_port)))
        targets += [Target("pod-to-apiserver", f"{ip}:{port}", "tcp", ip, str(port))
                    for ip, port in topology.apiserver_endpoints]
        if topology.dns_service:
            targets.append(Target("dns", "kubernetes.default", "dns", "kubernetes.default"))
        plans[("pod", node)] = targets
    all_ips = "+".join(sorted(h.ip for h in host_probes.values()))
    for node in host_probes:
        pods, hosts = among(pod_probes, node, itself=True), among(host_probes, node, itself=False)
        targets = [Target("host-to-pod", dst, "tcp", p.ip, pod_port) for dst, p in pods.items()]
        targets += [Target("host-to-host", dst, "tcp", h.ip, host_port) for dst, h in hosts.items()]
        if pods and external_ips:  # every externalIP leads to any backend: the ones probed are the ones expected
            node_ips = all_ips if sampled is None else "+".join(sorted(h.ip for h in (hosts | {node: host_probes[node]}
                                                                                       ).values()))
            targets.append(Target("external-ip", "*", "backends", node_ips, str(settings.service_port),
                                  ("+".join(sorted(pods)), str(backends_deadline(settings)))))
        targets.append(Target("routes", node, "routes", "-"))
        targets.append(Target("kube-proxy", node, "health", "127.0.0.1", str(KUBE_PROXY_HEALTH_PORT)))
        plans[("host", node)] = targets
    return plans


ERRORS_SHOWN = 200  # characters of a backend probe's errors in each missing backend's detail (fanout.sh's cut)
BACKENDS = re.compile(r"seen=\[(?P<seen>[^\]]*)\] missing=\[(?P<missing>[^\]]*)\] errors=\[(?P<errors>.*)\]")


def classify(rc: int, output: str) -> str:
    text = output.lower()
    if rc == 0:
        return "ok"
    if "refused" in text:
        return "refused"
    if "unreachable" in text or "no route" in text:
        return "no-route"
    if "timed out" in text or "timeout" in text or "terminated" in text or rc in (124, 143) or not text.strip():
        return "timeout"
    return "error"


def answer_of(kind: str, output: str, expect: str | None) -> tuple[str, str]:
    """Outcome and detail of a successful exchange: who answered, or what DNS said."""
    lines = [line.strip() for line in output.split("\t") if line.strip()]
    if kind == "dns":
        # the answers follow "Name:"; what comes before is the server's own address
        answers = re.findall(r"Address(?:\s*\d+)?:\s*([0-9.]+)", output.partition("Name:")[2])
        if expect and expect not in answers:
            return "error", f"answered {' '.join(answers) or 'nothing'}; expected {expect}"
        return "ok", f"resolved to {' '.join(answers)}"
    if kind in ("pod-to-service", "pod-to-apiserver"):
        return "ok", "connected, TCP handshake completed"
    return "ok", f"answered by {lines[-1]}" if lines else "answered"


def parse(source: str, side: str, targets: list[Target], output: str, expect_dns: str | None) -> list[ProbeResult]:
    by_id = {t.id: t for t in targets}
    results: list[ProbeResult] = []
    seen_ids = set()
    for raw in output.splitlines():
        fields = raw.strip().split("|", 4)  # ST|id|rc|tries|output: hundreds of thousands of lines at scale
        if len(fields) != 5 or fields[0] != "ST" or fields[1] not in by_id or not fields[2].isdigit() \
                or not fields[3].isdigit():
            continue
        t = by_id[fields[1]]
        seen_ids.add(t.id)
        rc, tries, out = int(fields[2]), int(fields[3]), fields[4]
        if t.mode == "backends":
            results += backend_results(source, t, out, tries)
            continue
        outcome = classify(rc, out)
        detail = out.replace("\t", " ").strip()[:200]
        if t.kind in EVIDENCE_KINDS:
            outcome, detail = evidence_of(t.kind, outcome, out, detail)
        elif outcome == "ok":
            outcome, detail = answer_of(t.kind, out, expect_dns)
        elif "permission denied" in out.lower() or "operation not permitted" in out.lower():
            outcome, detail = "not-run", "ICMP is not permitted in the probe pod"
        results.append(ProbeResult(t.kind, source, t.target, sys.intern(f"{t.address}:{t.port}".rstrip(":-")),
                                   outcome, sys.intern(detail), tries))
    for t in targets:
        if t.id not in seen_ids:
            results += not_run(source, [t], "the fan-out printed no result for it")
    return results


def evidence_of(kind: str, outcome: str, out: str, detail: str) -> tuple[str, str]:
    """A routing table is kept whole (tab-separated lines); a /healthz that answers other than 200 (503:
    kube-proxy's rules are not synced) is an error, with what it said."""
    if kind == "routes":
        return outcome, out.strip()
    status = out.split("\t", 1)[0].strip()
    if outcome == "ok" and " 200 " not in f"{status} ":
        return "error", f"answered {status}"
    return outcome, detail


def backend_results(source: str, t: Target, out: str, tries: int) -> list[ProbeResult]:
    """One result per backend. The address (every externalIP: N of them) is one string for all of a source's
    backends, what a backend answered one per backend for every source, and why the missing ones are missing one
    for all of the source's (the result names the backend): a copy each would be N³ bytes, and a line naming
    each missing backend again held 86 MiB at 500 nodes whose pod IPs all fail."""
    m = BACKENDS.search(out)
    seen = set(m["seen"].split()) if m else set()
    errors = m["errors"].strip() if m else out
    asked, missed = sys.intern(f"{t.address}:{t.port}"), sys.intern(f"{t.address.replace('+', ',')}:{t.port}")
    never = (f"its backend never answered in {tries} requests; answered: {name_list(seen) if seen else 'none'}; "
             f"errors: {errors[:ERRORS_SHOWN] or 'none'}")
    results = []
    for backend in t.extra[0].split("+"):
        if backend in seen:  # its requests sample the backends: not retries, so no tries (a retry means flaky)
            results.append(ProbeResult("external-ip", source, backend, asked, "ok",
                                       sys.intern(f"backend on {backend} answered")))
        else:
            outcome = classify(1, errors) if errors else "timeout"
            results.append(ProbeResult("external-ip", source, backend, missed, outcome, never, tries))
    return results


def not_run(source: str, targets: list[Target], why: str) -> list[ProbeResult]:
    results = []
    for t in targets:
        backends = t.extra[0].split("+") if t.mode == "backends" else [t.target]
        address = f"{t.address}:{t.port}".rstrip(":-")  # one string for all of a target's backends
        results += [ProbeResult(t.kind, source, b, address, "not-run", why) for b in backends]
    return results


@dataclass
class ControlChannel:
    """Whether the apiserver could exec into a node's probe (apiserver -> kubelet:10250)."""

    node: str
    side: str
    pod: str
    ok: bool
    detail: str


def run_source(cluster, namespace: str, probe: ProbePod, side: str, targets: list[Target], settings,
               expect_dns: str | None) -> tuple[ControlChannel, list[ProbeResult]]:
    command = ["sh", "-c", FANOUT_SCRIPT, "fanout", str(int(settings.probe_timeout)), str(settings.probe_retries),
               str(in_flight(len(targets))), *(t.arg() for t in targets)]
    try:
        result = cluster.exec(namespace, probe.pod, command, timeout=fanout_deadline(len(targets), settings))
    except Exception as exc:  # noqa: BLE001 - whatever broke the exec is the control-channel finding
        why = exec_failure(exc)
        channel = ControlChannel(probe.node, side, probe.pod, False, why)
        return channel, not_run(probe.node, targets, f"exec into {probe.pod} failed: {why}")
    channel = ControlChannel(probe.node, side, probe.pod, True, "exec answered")
    return channel, parse(probe.node, side, targets, result.stdout, expect_dns)


def exec_failure(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        body = exc.body.decode() if isinstance(exc.body, bytes) else (exc.body or "")
        message = re.search(r'"message":"([^"]+)"', body)
        return f"{exc.status} {message[1] if message else exc.reason}"
    return one_line(exc)


def measure(cluster, namespace: str, plans: dict[tuple[str, str], list[Target]],
            probes: dict[tuple[str, str], ProbePod], settings, expect_dns: str | None,
            ) -> tuple[list[ControlChannel], list[ProbeResult]]:
    """Run every source's fan-out concurrently; one exec per source."""
    def source(key):
        return run_source(cluster, namespace, probes[key], key[0], plans[key], settings, expect_dns)

    channels, results = [], []
    for channel, rows in concurrently(source, [key for key in plans if key in probes], MAX_PARALLEL_EXECS):
        channels.append(channel)
        results += rows
    return channels, results

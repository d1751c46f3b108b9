"""What a node's kubelet tells about itself through the apiserver, and the
kubelet-cgroups check built on it.

Everything here is read through `GET /api/v1/nodes/<node>/proxy/...`:
`logs/` (the node's service logs, served by the kubelet), `stats/summary` and
`configz`. `service_log` is also how the apiserver check reads a master's
kube-apiserver log when the apiserver does not run as a pod.

kubelet-cgroups (field report 2.3): a kubelet whose own or the runtime's cgroup
is unknown to cAdvisor logs every 10 s "Failed to get system container stats
... unknown container" and leaves that system container out of stats/summary.
"""

from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

import urllib3
from kubernetes.client.rest import ApiException

from seatrials.causes import Result, Verdict
from seatrials.cluster import api_error_line, concurrently, known

TAIL_LINES = 2000  # the message repeats every 10 s (the eviction manager's summary), so a tail is enough

# The node log query (kubelet feature gate NodeLogQuery + enableSystemLogQuery)
# answers these lines in a 200 body instead of an HTTP error
# (pkg/kubelet/kubelet_server_journal.go).
FILE_LOGGER = "options present and query resolved to log files"
QUERY_NOT_ANSWERED = {
    "error: journal output not available": "journalctl is not available on the node",
    "log not found for": "neither the journal nor /var/log has the service's log",
    "-- No entries --": "the journal has no entries for the service",
    "failed to get logging cmd": "the node log query could not build its journalctl command",
}

# klog text header ("E0329 03:45:54.213220 ...") and the JSON logger's "ts" (ms since the epoch).
KLOG_STAMP = re.compile(r"(?<![A-Za-z0-9])([IWEF]\d{4} \d\d:\d\d:\d\d)\.\d+\s+\d+ \S+:\d+\]")
JSON_STAMP = re.compile(r'"ts":(\d+(?:\.\d+)?)')
# A process start: current kubelets log "Kubelet version" (cmd/kubelet/app/server.go),
# kube-apiserver logs "Version: v1.x" (cmd/kube-apiserver/app/server.go), as old kubelets did.
PROCESS_START = re.compile(r'Kubelet version|(?:\] |"msg":")Version: v\d')

# Old klog form (v1.9, summary.go) and the structured form of current kubelets
# (summary_sys_containers.go: klog.ErrorS(err, "Failed to get system container
# stats", "containerName", name)); the JSON form is parsed separately.
OLD_STATS_ERROR = re.compile(r'Failed to get system container stats for "(?P<cgroup>[^"]*)": .*unknown container')
STRUCTURED_STATS_ERROR = re.compile(
    r'"Failed to get system container stats" err=".*unknown container.*" containerName="(?P<cgroup>[^"]*)"')
STATS_ERROR_MSG = "Failed to get system container stats"


class Unreadable(Exception):
    """A signal could not be read; str(self) says why, for an `unreadable` observation."""


class KubeletUnreachable(Unreadable):
    """The apiserver could not reach the kubelet at all: every other read of it would fail the same way."""


class HandlerOff(Unreadable):
    """The kubelet answered that the handler behind a path is switched off: it answers every path it serves so."""


# The apiserver's words when its proxy cannot reach a kubelet (dial errors, an unknown node address).
UNREACHABLE = re.compile(r"error trying to reach service|dial tcp|no route to host|connection refused|i/o timeout")
# The kubelet's 405 for a handler switched off (pkg/kubelet/server/server.go): "Debug endpoints are disabled."
# (enableDebuggingHandlers: false; the debugging handlers are logs/ and configz, among others) or "logs endpoint
# is disabled." (enableSystemLogHandler: false). KWOK's fake kubelets answer the first.
DEBUGGING_OFF = "Debug endpoints are disabled"
HANDLER_OFF = re.compile(rf"{DEBUGGING_OFF}|logs endpoint is disabled")


def read_failure(exc: Exception) -> str:
    """One line saying why an API read failed (status and the server's own words; a 403 names what it lacks)."""
    if isinstance(exc, ApiException):
        return api_error_line(exc)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return f"no answer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return str(exc)


@dataclass
class LogTail:
    """The last lines of one service's log and where they came from."""

    source: str
    lines: list[str]

    def since_start(self) -> tuple[list[str], str | None]:
        """The lines after the service's last start in this tail, and that start's timestamp.

        A log that still holds lines from before a restart with the fix must not
        count them.
        """
        starts = [i for i, line in enumerate(self.lines) if PROCESS_START.search(line)]
        if not starts:
            return self.lines, None
        return self.lines[starts[-1]:], stamp(self.lines[starts[-1]])

    def describe(self) -> str:
        stamps = [s for s in map(stamp, self.lines) if s]
        window = f", {stamps[0]} to {stamps[-1]}" if stamps else ""
        return f"{self.source}, last {len(self.lines)} lines{window}"


def stamp(line: str) -> str | None:
    """The log timestamp of a klog text or JSON line, as written (klog has no year)."""
    if m := KLOG_STAMP.search(line):
        return m.group(1)
    if m := JSON_STAMP.search(line):
        return datetime.fromtimestamp(float(m.group(1)) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return None


def tail(text: str, lines: int = TAIL_LINES) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-lines:]


def is_directory_listing(body: str) -> bool:
    """The kubelet's /logs/ file server answers a directory (here: /var/log) with an HTML listing."""
    head = body.lstrip()[:200].lower()
    return head.startswith("<!doctype html>") or head.startswith("<pre>")


def service_log(cluster, node: str, service: str, files: tuple[str, ...]) -> LogTail:
    """The tail of `service`'s log on `node`, through the kubelet's /logs/ endpoint.

    First the node log query, then the plain files under /var/log that `/logs/`
    serves without the query feature. Raises Unreadable with every reason when
    none of them answers, KubeletUnreachable at once when the kubelet cannot be reached.
    """
    reasons = []
    try:
        return query_log(cluster, node, service)
    except HandlerOff as exc:  # the files under logs/ would answer the same: one request says it for all
        raise Unreadable(f"{exc} (so are the log files under logs/)") from None
    except KubeletUnreachable:
        raise
    except Unreadable as exc:
        reasons.append(str(exc))
    for path in files:
        label = f"logs/{path}"
        try:
            body = fetch(cluster, node, label, None, label)
        except KubeletUnreachable:
            raise
        except Unreadable as exc:
            reasons.append(str(exc))
            continue
        if is_directory_listing(body):
            reasons.append(f"{label}: a directory")
            continue
        return LogTail(label, tail(body))
    raise Unreadable("; ".join(reasons))


def query_log(cluster, node: str, service: str) -> LogTail:
    """`logs/?query=<service>`: the kubelet runs journalctl for a unit it finds in
    the journal, else serves /var/log/<service>, <service>.log or
    <service>/<service>.log (whole: options such as tailLines work only on the journal).
    """
    label = f"node log query ?query={service}"
    body = fetch(cluster, node, "logs/", {"query": service, "tailLines": str(TAIL_LINES)}, label)
    source = "journal"
    if is_directory_listing(body):
        raise Unreadable(f"{label}: off (kubelet feature gate NodeLogQuery and enableSystemLogQuery); "
                         "/logs/ answered with the /var/log listing")
    if FILE_LOGGER in body:
        body = fetch(cluster, node, "logs/", {"query": service}, label)
        source = "log file found by the query"
    if len(tail(body, 4)) <= 3:  # the kubelet's own answers are one or two lines, never a log
        problem = next((why for marker, why in QUERY_NOT_ANSWERED.items() if marker in body), None)
        if problem:
            raise Unreadable(f"{label}: {problem}")
    return LogTail(f"{label} ({source})", tail(body))


def fetch(cluster, node: str, path: str, query: dict | None, label: str) -> str:
    """The body the kubelet of `node` answers on `path`. A kubelet whose logs/ answered that its handler is off (to
    the apiserver check's read of a master's log, say) is not asked under logs/ again: it answers every path so."""
    logs_off = known(cluster).get(("logs/ off", node)) if path.startswith("logs/") else None
    if logs_off:
        raise HandlerOff(f"{label}: not asked: {logs_off}")
    try:
        return cluster.node_proxy(node, path, query)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        why = read_failure(exc)
        gone = isinstance(exc, ApiException) and exc.status in (500, 502, 503) and UNREACHABLE.search(why)
        off = isinstance(exc, ApiException) and exc.status == 405 and HANDLER_OFF.search(why)
        if off and path.startswith("logs/"):
            known(cluster)[("logs/ off", node)] = f"the kubelet answered {label}: {why}"
        raise (KubeletUnreachable if gone else HandlerOff if off else Unreadable)(f"{label}: {why}") from None


@dataclass(frozen=True)
class StatsError:
    """One "Failed to get system container stats ... unknown container" line."""

    cgroup: str
    stamp: str | None


def system_stats_errors(lines: list[str]) -> list[StatsError]:
    """The lines reporting a system container (cgroup) unknown to cAdvisor, in any log format."""
    found = []
    for line in lines:
        if STATS_ERROR_MSG not in line:
            continue
        m = OLD_STATS_ERROR.search(line) or STRUCTURED_STATS_ERROR.search(line)
        if m:
            found.append(StatsError(m.group("cgroup"), stamp(line)))
        elif (entry := json_entry(line)) and entry.get("msg") == STATS_ERROR_MSG \
                and "unknown container" in str(entry.get("err", "")):
            found.append(StatsError(str(entry.get("containerName", "?")), stamp(line)))
    return found


def json_entry(line: str) -> dict | None:
    """The JSON object of a JSON-format log line (maybe behind a journal prefix)."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        entry = json.loads(line[start:])
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def read_json(cluster, node: str, path: str) -> dict:
    body = fetch(cluster, node, path, None, path)
    try:
        data = json.loads(body)
    except ValueError:
        raise Unreadable(f"{path}: the kubelet answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{path}: the kubelet answered JSON that is not an object")
    return data


def cgroups_result(cluster, node) -> Result:
    """The kubelet-cgroups Result of one topology Node; not checked when its kubelet cannot answer."""
    if node.unreachable:
        return Result.not_checked(f"{node.unreachable}: its kubelet cannot be read")
    return cgroups_verdict(cluster, node.name).result()


def cgroups_results(cluster, nodes: list) -> dict[str, Result | str]:
    """cgroups_result of every topology Node, by name in the nodes' order, read PARALLEL_READS nodes at a time (one
    node after another, they took 5 s of a 500-node run's checks). A node whose check raised has the traceback
    instead of a Result: only its own case errors."""
    def judged(node) -> Result | str:
        try:
            return cgroups_result(cluster, node)
        except Exception:  # noqa: BLE001 - a bug met on one node is that node's error, not every node's
            return traceback.format_exc()

    return dict(zip([n.name for n in nodes], concurrently(judged, nodes), strict=True))


def cgroups_verdict(cluster, node: str) -> Verdict:
    """Judge kubelet-cgroups on one node from its log, stats/summary and configz.

    Rules (a healthy current kubelet raises nothing):
    - a log line since the kubelet's last start naming an unknown container is a fault;
    - stats/summary without a `kubelet` system container is a fault: the kubelet
      always names its own cgroup (configured, or detected from /proc/self/cgroup
      when kubeletCgroups is empty), so a missing entry means cAdvisor does not know it;
    - a missing `runtime` entry is normal when --runtime-cgroups is unset (it is
      a flag, not visible in configz), so it is a fault only next to a log line
      naming an unknown container;
    - an empty kubeletCgroups alone is normal (container_manager_linux.go detects
      the cgroup every 5 minutes); it is a fault only when the log or summary
      shows the fault, and unreadable when neither of them can be read.
    """
    verdict = Verdict("kubelet-cgroups")
    try:
        errors, log_ok = log_signal(verdict, cluster, node)
    except KubeletUnreachable as exc:  # one request says it for every signal: a run stays O(nodes) requests
        verdict.add("kubelet", "unreadable", f"the apiserver cannot reach the kubelet of {node}: {exc}")
        return verdict
    summary_fault, summary_ok = summary_signal(verdict, cluster, node, errors)
    if not errors and not summary_fault and log_ok and summary_ok:  # configz only corroborates or stands in
        return verdict
    if any(DEBUGGING_OFF in o.detail for o in verdict.of_state("unreadable")):  # configz is a debugging handler
        verdict.add("configz", "unreadable", "configz: not served: the kubelet's debugging handlers are off "
                                             "(enableDebuggingHandlers: false), as its logs/ answered")
    else:
        configz_signal(verdict, cluster, node, corroborated=bool(errors) or summary_fault,
                       other_readable=log_ok or summary_ok)
    return verdict


def log_signal(verdict: Verdict, cluster, node: str) -> tuple[list[StatsError], bool]:
    """The kubelet log's signal; KubeletUnreachable when the apiserver cannot reach the kubelet at all."""
    try:
        log = service_log(cluster, node, "kubelet", ("kubelet.log", "kubelet/kubelet.log"))
    except KubeletUnreachable:
        raise
    except Unreadable as exc:
        verdict.add("kubelet log", "unreadable", str(exc))
        return [], False
    recent, started = log.since_start()
    since = f" since the kubelet's last start ({started})" if started else ""
    errors = system_stats_errors(recent)
    if not errors:
        verdict.add("kubelet log", "ok", f"no 'Failed to get system container stats ... unknown container' "
                                         f"line{since} ({log.describe()})")
        return [], True
    cgroups = sorted({e.cgroup for e in errors})
    last = next((e.stamp for e in reversed(errors) if e.stamp), None)
    verdict.add("kubelet log", "fault",
                f"{len(errors)} 'Failed to get system container stats ... unknown container' lines{since}, "
                f"naming cgroup {', '.join(cgroups)}" + (f"; last at {last}" if last else "")
                + f" ({log.describe()})")
    return errors, True


def summary_signal(verdict: Verdict, cluster, node: str, errors: list[StatsError]) -> tuple[bool, bool]:
    try:
        summary = read_json(cluster, node, "stats/summary")
    except Unreadable as exc:
        verdict.add("stats/summary", "unreadable", str(exc))
        return False, False
    names = sorted(c.get("name", "?") for c in (summary.get("node") or {}).get("systemContainers") or [])
    listed = f"systemContainers: {', '.join(names) or 'none'}"
    if "kubelet" not in names:
        verdict.add("stats/summary", "fault", f"no 'kubelet' system container, so cAdvisor does not know the "
                                              f"kubelet's cgroup ({listed})")
        return True, True
    if "runtime" not in names and errors:
        verdict.add("stats/summary", "fault", f"no 'runtime' system container while the log names an unknown "
                                              f"cgroup ({listed})")
        return True, True
    verdict.add("stats/summary", "ok", listed)
    return False, True


def configz_signal(verdict: Verdict, cluster, node: str, corroborated: bool, other_readable: bool) -> None:
    try:
        config = read_json(cluster, node, "configz").get("kubeletconfig")
    except Unreadable as exc:
        verdict.add("configz", "unreadable", str(exc))
        return
    if not isinstance(config, dict):
        verdict.add("configz", "unreadable", "configz has no kubeletconfig object")
        return
    settings = ", ".join(f"{key}={config.get(key) or '(empty)'}"
                         for key in ("kubeletCgroups", "systemCgroups", "runtimeCgroups")
                         if key != "runtimeCgroups" or key in config)
    if config.get("kubeletCgroups"):
        verdict.add("configz", "ok", settings)
    elif corroborated:
        verdict.add("configz", "fault", f"{settings}: the kubelet stays in the cgroup it was started in "
                                        "(a login session or init-system cgroup)")
    elif other_readable:
        verdict.add("configz", "ok", f"{settings}: the kubelet detects its own cgroup, and the signals "
                                     "read show cAdvisor knows it")
    else:
        verdict.add("configz", "unreadable", f"{settings}: normal for a current kubelet, but whether cAdvisor "
                                             "knows that cgroup needs the log or stats/summary, neither readable")

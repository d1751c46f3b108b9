"""kubelet-cgroups: log parsing on real log samples (tests/data) and the verdict
over a fake node proxy that answers the way the kubelet's handlers do
(pkg/kubelet/kubelet.go logServer, kubelet_server_journal.go, server/server.go)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException

from seatrials.causes import Result
from seatrials.checks import kubelet
from seatrials.cluster import PARALLEL_READS
from seatrials.topology import Node

DATA = Path(__file__).parent / "data"
SESSION = "/user.slice/user-0.slice/session-3.scope"
# Go's http.FileServer answer for a directory: the kubelet's /logs/ without the node log query.
VAR_LOG_LISTING = ('<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
                   '<a href="apt/">apt/</a>\n<a href="kubelet.log">kubelet.log</a>\n</pre>\n')
FILE_LOGGER = "\noptions present and query resolved to log files for [kubelet]\ntry without specifying options\n"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def api_error(status: int, reason: str, body: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = body.encode()
    return exc


class FakeNodeProxy:
    """cluster.node_proxy over canned kubelet answers: {(path, query items): body or ApiException}."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.asked = []

    def node_proxy(self, node, path, query=None, timeout=30):
        key = (path, tuple(sorted((query or {}).items())))
        self.asked.append(key)
        answer = self.answers.get(key, api_error(404, "Not Found", "404 page not found\n"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def query(service: str, tail: bool = True) -> tuple:
    items = {"query": service, **({"tailLines": str(kubelet.TAIL_LINES)} if tail else {})}
    return "logs/", tuple(sorted(items.items()))


def summary(*names: str) -> str:
    return json.dumps({"node": {"nodeName": "worker-1", "systemContainers": [{"name": n} for n in names]},
                       "pods": []})


def configz(**config) -> str:
    return json.dumps({"kubeletconfig": {"enableServer": True, "cgroupDriver": "cgroupfs", **config}})


HEALTHY_SUMMARY = summary("kubelet", "pods")


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize(("name", "cgroup", "count"), [
    ("kubelet-v1.9-session-cgroup.log", "/user/9999.user/16.session", 3),
    ("kubelet-v1.34-session-cgroup.log", SESSION, 2),
    ("kubelet-v1.34-session-cgroup.json.log", SESSION, 2),
    ("kubelet-v1.34-journal.log", SESSION, 2),
])
def test_system_stats_errors_in_every_log_form(name, cgroup, count):
    errors = kubelet.system_stats_errors(kubelet.tail(sample(name)))
    assert [e.cgroup for e in errors] == [cgroup] * count
    assert all(e.stamp for e in errors)


def test_the_field_report_line_without_the_message_is_not_counted():
    first = sample("kubelet-v1.9-session-cgroup.log").splitlines()[0]
    assert first.startswith("failed to get container info")
    assert kubelet.system_stats_errors([first]) == []


def test_stamps_of_klog_and_json_lines():
    assert kubelet.stamp(sample("kubelet-v1.9-session-cgroup.log").splitlines()[1]) == "E0329 03:45:34"
    assert kubelet.stamp(sample("kubelet-v1.34-session-cgroup.json.log").splitlines()[0]).endswith("Z")


def test_lines_before_the_last_restart_do_not_count():
    log = kubelet.LogTail("file", kubelet.tail(sample("kubelet-v1.34-restarted-clean.log")))
    lines, started = log.since_start()
    assert kubelet.system_stats_errors(log.lines) and not kubelet.system_stats_errors(lines)
    assert started.startswith("I1127 ")


def test_tail_keeps_the_last_lines():
    assert kubelet.tail("a\n\nb\nc\n", 2) == ["b", "c"]


def test_read_failure_uses_the_servers_words():
    status = json.dumps({"kind": "Status", "message": 'nodes "w" is forbidden: User "x" cannot get resource '
                                                      '"nodes/proxy"', "code": 403})
    assert kubelet.read_failure(api_error(403, "Forbidden", status)) == "forbidden (needs get nodes/proxy)"
    assert kubelet.read_failure(api_error(405, "Method Not Allowed", "logs endpoint is disabled.\n")) == (
        "405 Method Not Allowed: logs endpoint is disabled.")


# ---------------------------------------------------------------- reading the log
def test_journal_through_the_node_log_query():
    proxy = FakeNodeProxy({query("kubelet"): sample("kubelet-v1.34-journal.log")})
    log = kubelet.service_log(proxy, "worker-1", "kubelet", ("kubelet.log",))
    assert log.source == "node log query ?query=kubelet (journal)"
    assert len(log.lines) == 4


def test_file_found_by_the_query_is_read_without_options():
    proxy = FakeNodeProxy({query("kubelet"): FILE_LOGGER,
                           query("kubelet", tail=False): sample("kubelet-v1.34-session-cgroup.log")})
    log = kubelet.service_log(proxy, "worker-1", "kubelet", ())
    assert log.source == "node log query ?query=kubelet (log file found by the query)"


def test_query_off_falls_back_to_the_plain_file():
    proxy = FakeNodeProxy({query("kubelet"): VAR_LOG_LISTING,
                           ("logs/kubelet.log", ()): sample("kubelet-v1.9-session-cgroup.log")})
    log = kubelet.service_log(proxy, "worker-1", "kubelet", ("kubelet.log", "kubelet/kubelet.log"))
    assert log.source == "logs/kubelet.log"


def test_no_log_anywhere_gives_every_reason():
    proxy = FakeNodeProxy({query("kubelet"): "\nlog not found for kubelet\n"})
    with pytest.raises(kubelet.Unreadable) as unreadable:
        kubelet.service_log(proxy, "worker-1", "kubelet", ("kubelet.log", "kubelet/kubelet.log"))
    assert str(unreadable.value) == (
        "node log query ?query=kubelet: neither the journal nor /var/log has the service's log; "
        "logs/kubelet.log: 404 Not Found: 404 page not found; "
        "logs/kubelet/kubelet.log: 404 Not Found: 404 page not found")


# ---------------------------------------------------------------- the verdict
def test_healthy_current_kubelet_with_empty_kubelet_cgroups_passes():
    """kubeletCgroups empty is the default: the kubelet detects its cgroup, no false alarm."""
    proxy = FakeNodeProxy({query("kubelet"): sample("kubelet-v1.34-restarted-clean.log"),
                           ("stats/summary", ()): HEALTHY_SUMMARY, ("configz", ()): configz()})
    verdict = kubelet.cgroups_verdict(proxy, "worker-1")
    assert verdict.result().ok and verdict.result().notes == []
    assert [o.signal for o in verdict.observations] == ["kubelet log", "stats/summary"]  # configz not asked
    assert [path for path, _ in proxy.asked] == ["logs/", "stats/summary"]  # two reads a node: O(nodes) requests


def test_a_kubelet_the_apiserver_cannot_reach_costs_one_request():
    gone = api_error(500, "Internal Server Error", json.dumps({"message": "error trying to reach service: dial tcp "
                                                                          "10.9.9.9:10250: connect: no route to host"}))
    proxy = FakeNodeProxy({query("kubelet"): gone})
    result = kubelet.cgroups_verdict(proxy, "kwok-node-7").result()
    assert result.status == "not checked" and "cannot reach the kubelet of kwok-node-7" in result.reason
    assert len(proxy.asked) == 1


def test_session_cgroup_on_a_current_kubelet_fails_with_the_cause():
    proxy = FakeNodeProxy({query("kubelet"): sample("kubelet-v1.34-journal.log"),
                           ("stats/summary", ()): summary("pods"), ("configz", ()): configz()})
    result = kubelet.cgroups_verdict(proxy, "worker-1").result()
    message = str(result)
    assert result.status == "failed"
    assert message.startswith("[cause: kubelet-cgroups]")
    assert (f"kubelet log: 2 'Failed to get system container stats ... unknown container' lines since the "
            f"kubelet's last start (I1127 15:50:56), naming cgroup {SESSION}") in message
    assert "node log query ?query=kubelet (journal), last 4 lines, I1127 15:50:56 to E1127 15:50:56" in message
    assert "stats/summary: no 'kubelet' system container" in message
    assert "configz: kubeletCgroups=(empty), systemCgroups=(empty): the kubelet stays in the cgroup" in message


def test_field_report_kubelet_without_the_query_feature():
    proxy = FakeNodeProxy({query("kubelet"): VAR_LOG_LISTING,
                           ("logs/kubelet.log", ()): sample("kubelet-v1.9-session-cgroup.log"),
                           ("stats/summary", ()): summary("kubelet", "pods"),
                           ("configz", ()): configz(kubeletCgroups="/user/9999.user/16.session")})
    verdict = kubelet.cgroups_verdict(proxy, "worker-1")
    assert [(o.signal, o.state) for o in verdict.observations] == [
        ("kubelet log", "fault"), ("stats/summary", "fault"), ("configz", "ok")]
    assert "naming cgroup /user/9999.user/16.session; last at E0329 03:45:54 (logs/kubelet.log" in \
        verdict.observations[0].detail
    assert "no 'runtime' system container while the log names an unknown cgroup" in verdict.observations[1].detail


def test_missing_runtime_entry_alone_is_normal():
    proxy = FakeNodeProxy({query("kubelet"): sample("kubelet-v1.34-restarted-clean.log"),
                           ("stats/summary", ()): summary("kubelet", "pods"),
                           ("configz", ()): configz(kubeletCgroups="/system.slice/kubelet.service")})
    verdict = kubelet.cgroups_verdict(proxy, "worker-1")
    assert verdict.of_state("fault") == []


def test_nothing_readable_is_not_checked_never_passed():
    disabled = api_error(405, "Method Not Allowed", "logs endpoint is disabled.\n")
    proxy = FakeNodeProxy({query("kubelet"): disabled, ("logs/kubelet.log", ()): disabled,
                           ("logs/kubelet/kubelet.log", ()): disabled,
                           ("stats/summary", ()): api_error(403, "Forbidden", "Forbidden (user=apiserver)")})
    result = kubelet.cgroups_verdict(proxy, "worker-1").result()
    assert result.status == "not checked"
    assert "kubelet log: node log query ?query=kubelet: 405 Method Not Allowed: logs endpoint is disabled." \
        in result.reason
    assert "stats/summary: 403 Forbidden" in result.reason
    assert "configz: 404 Not Found" in result.reason


def test_a_kubelet_with_its_debugging_handlers_off_costs_two_requests_and_says_why():
    """Its logs/ (the query and the files) and configz are debugging handlers (server.go): the query's 405 says it
    for all of them; stats/summary is served whatever (here a KWOK fake kubelet's 404). The same verdict as
    asking each: not checked, every signal named."""
    off = api_error(405, "Method Not Allowed", "Debug endpoints are disabled.\n")
    proxy = FakeNodeProxy({query("kubelet"): off, ("logs/kubelet.log", ()): off, ("logs/kubelet/kubelet.log", ()): off})
    result = kubelet.cgroups_verdict(proxy, "kwok-worker-7").result()
    assert [path for path, _ in proxy.asked] == ["logs/", "stats/summary"]
    assert result.status == "not checked" and result.reason == (
        "kubelet log: node log query ?query=kubelet: 405 Method Not Allowed: Debug endpoints are disabled. "
        "(so are the log files under logs/); stats/summary: stats/summary: 404 Not Found: 404 page not found; "
        "configz: configz: not served: the kubelet's debugging handlers are off (enableDebuggingHandlers: false), "
        "as its logs/ answered")


def test_a_missing_permission_is_named_in_one_line():
    rbac = json.dumps({"kind": "Status", "message": 'nodes "worker-1" is forbidden: User "system:serviceaccount:'
                       'seatrials:seatrials" cannot get resource "nodes/proxy" in API group "" at the cluster scope'})
    forbidden = api_error(403, "Forbidden", rbac)
    proxy = FakeNodeProxy({query("kubelet"): forbidden, ("logs/kubelet.log", ()): forbidden,
                           ("logs/kubelet/kubelet.log", ()): forbidden, ("stats/summary", ()): forbidden,
                           ("configz", ()): forbidden})
    result = kubelet.cgroups_verdict(proxy, "worker-1").result()
    assert result.status == "not checked"
    assert "stats/summary: forbidden (needs get nodes/proxy)" in result.reason
    assert "\n" not in result.reason and "Traceback" not in result.reason


def test_a_node_whose_kubelet_stopped_posting_is_not_read():
    node = Node("worker-2", "worker", "10.240.0.22", unreachable="worker-2 NotReady since 2026-11-30 18:49:02Z: "
                "Kubelet stopped posting node status")
    result = kubelet.cgroups_result(FakeNodeProxy({}), node)
    assert result.status == "not checked" and "Kubelet stopped posting node status" in result.reason


def test_empty_kubelet_cgroups_with_nothing_to_corroborate_is_unreadable_not_a_fault():
    proxy = FakeNodeProxy({("configz", ()): configz()})
    verdict = kubelet.cgroups_verdict(proxy, "worker-1")
    assert [o.state for o in verdict.observations] == ["unreadable", "unreadable", "unreadable"]
    assert "normal for a current kubelet" in verdict.observations[2].detail


# ---------------------------------------------------------------- every node at once
class SlowKubelets:
    """Healthy kubelets that take 50 ms an answer, and how many answers were in flight at once at most; the kubelet
    of `broken` makes the check raise (a bug met on one node)."""

    def __init__(self, broken: str = ""):
        self.broken, self.in_flight, self.most = broken, 0, 0
        self.mutex = threading.Lock()

    def node_proxy(self, node, path, query=None, timeout=30):
        with self.mutex:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(0.05)
        with self.mutex:
            self.in_flight -= 1
        if node == self.broken:
            return None  # not a body: the check trips over it
        return sample("kubelet-v1.34-restarted-clean.log") if path == "logs/" else HEALTHY_SUMMARY


def test_every_node_is_read_at_once_at_most_parallel_reads_at_a_time_and_reported_in_order():
    nodes = [Node(f"node-{i}", "worker", f"10.240.1.{i}") for i in range(40)]
    cluster = SlowKubelets(broken="node-7")
    results = kubelet.cgroups_results(cluster, nodes)
    assert cluster.most == PARALLEL_READS
    assert list(results) == [n.name for n in nodes]
    assert all(results[n.name].ok for n in nodes if n.name != "node-7")
    assert "Traceback" in results["node-7"] and "AttributeError" in results["node-7"]  # only that node's case errors


def test_a_result_crosses_to_another_process_unchanged():
    proxy = FakeNodeProxy({query("kubelet"): sample("kubelet-v1.34-journal.log"),
                           ("stats/summary", ()): summary("pods"), ("configz", ()): configz()})
    failed = kubelet.cgroups_verdict(proxy, "worker-1").result()
    partly = kubelet.cgroups_verdict(FakeNodeProxy({("stats/summary", ()): HEALTHY_SUMMARY}), "worker-1").result()
    for result in (failed, partly):
        assert Result.from_json(json.loads(json.dumps(result.to_json()))) == result

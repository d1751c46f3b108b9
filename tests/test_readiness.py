"""Why a node's probe does not run, found from node conditions, pod states and events within seconds,
never by waiting out the readiness timeout. Objects are built with the Kubernetes client's own models,
as the API returns them; the lab-backed tests prove it on a real cluster (tests/e2e)."""

import datetime as dt
import json
import threading
import time
import weakref
from collections import Counter
from types import SimpleNamespace

from kubernetes import client
from kubernetes.client.rest import ApiException

from seatrials.cluster import Mirror
from seatrials.network import readiness
from seatrials.network.readiness import ProbeStatus, apply_events, apply_nodes, apply_pods, wait_ready

NOW = dt.datetime(2026, 11, 30, 18, 49, 2, tzinfo=dt.UTC)


def node(name, ready="True", message="kubelet is posting ready status"):
    condition = client.V1NodeCondition(type="Ready", status=ready, message=message, last_transition_time=NOW,
                                       reason="KubeletReady" if ready == "True" else "NodeStatusUnknown")
    return client.V1Node(metadata=client.V1ObjectMeta(name=name), status=client.V1NodeStatus(conditions=[condition]))


def pod(name, node_name, side="pod-network", ready=False, waiting=None, restarts=0, deleting=False, bound=True):
    state = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting[0], message=waiting[1])
                                    if waiting else None)
    status = client.V1PodStatus(
        phase="Running" if ready else "Pending", pod_ip="10.200.22.4",
        conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")],
        container_statuses=[client.V1ContainerStatus(name="probe", image="busybox", image_id="", ready=ready,
                                                     restart_count=restarts, state=state)])
    # an unscheduled DaemonSet pod names its node only in its required node affinity
    affinity = client.V1Affinity(node_affinity=client.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=client.V1NodeSelector(node_selector_terms=[
            client.V1NodeSelectorTerm(match_fields=[client.V1NodeSelectorRequirement(
                key="metadata.name", operator="In", values=[node_name])])])))
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels={"seatrials.io/probe": side},
                                                     deletion_timestamp=NOW if deleting else None),
                        spec=client.V1PodSpec(node_name=node_name if bound else None, affinity=affinity,
                                              containers=[]), status=status)


def event(kind, name, reason, message):
    return client.CoreV1Event(involved_object=client.V1ObjectReference(kind=kind, name=name), reason=reason,
                              message=message, metadata=client.V1ObjectMeta(namespace="ns", creation_timestamp=NOW),
                              last_timestamp=NOW)


def statuses(*names):
    return {(side, n): ProbeStatus(n, side) for side in ("pod", "host") for n in names}


def test_a_node_whose_kubelet_stopped_posting_settles_at_once_with_its_condition():
    status = statuses("worker-1", "worker-2")
    apply_nodes(status, [node("worker-1"), node("worker-2", "Unknown", "Kubelet stopped posting node status.")],
                ["worker-1", "worker-2"])
    down = status[("pod", "worker-2")]
    assert down.final and down.cause == "node-not-ready"
    assert down.reason == "worker-2 NotReady since 2026-11-30 18:49:02Z: Kubelet stopped posting node status"
    assert not status[("pod", "worker-1")].settled  # its probe is still to come


def test_ready_false_is_left_to_the_pods():
    status = statuses("worker-1")
    apply_nodes(status, [node("worker-1", "False", "container runtime network not ready")], ["worker-1"])
    assert not status[("host", "worker-1")].settled


def test_a_node_that_left_the_cluster_is_named():
    status = statuses("worker-3")
    apply_nodes(status, [], ["worker-3"])
    assert status[("pod", "worker-3")].reason == "worker-3 is no longer in the cluster"


def test_pull_failures_settle_after_their_grace_only(monkeypatch):
    status = statuses("worker-1")
    failing = pod("p", "worker-1", waiting=("ImagePullBackOff", "Back-off pulling image busybox"))
    apply_pods(status, [failing], crash_log=lambda p: "")
    s = status[("pod", "worker-1")]
    assert s.cause == "probe-image-unavailable" and not s.final
    later = time.monotonic() + readiness.PULL_GRACE + 1
    monkeypatch.setattr(readiness.time, "monotonic", lambda: later)
    apply_pods(status, [failing], crash_log=lambda p: "")
    assert s.final and "ImagePullBackOff" in s.reason


def test_a_probe_that_keeps_exiting_with_address_in_use_is_a_taken_port():
    status = statuses("worker-1")
    crashing = pod("h", "worker-1", side="host-network", waiting=("CrashLoopBackOff", "back-off 10s"), restarts=2)
    apply_pods(status, [crashing], crash_log=lambda p: "httpd: bind: Address in use")
    s = status[("host", "worker-1")]
    assert s.final and s.cause == "probe-host-port-taken" and "Address in use" in s.reason


def test_ready_pods_and_terminating_leftovers():
    status = statuses("worker-1")
    apply_pods(status, [pod("old", "worker-1", deleting=True), pod("p", "worker-1", ready=True)], crash_log=None)
    assert status[("pod", "worker-1")].ready and status[("pod", "worker-1")].pod == "p"


def test_admission_refusal_settles_every_node_without_a_pod_at_once():
    status = statuses("worker-1", "worker-2")
    refusal = ('Error creating: pods "seatrials-probe-host-r-x" is forbidden: violates PodSecurity '
               '"baseline:latest": host namespaces (hostNetwork=true)')
    apply_events(status, [event("DaemonSet", "seatrials-probe-host-r", "FailedCreate", refusal)], {})
    for n in ("worker-1", "worker-2"):
        s = status[("host", n)]
        assert s.final and s.cause == "probe-admission-refused" and "violates PodSecurity" in s.reason
    assert not status[("pod", "worker-1")].settled


def test_a_taken_host_port_is_told_by_the_scheduler():
    status = statuses("worker-1")
    pending = pod("h", "worker-1", side="host-network", bound=False)  # never bound: no spec.nodeName
    apply_pods(status, [pending], crash_log=None)
    assert status[("host", "worker-1")].pod == "h"
    message = "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    apply_events(status, [event("Pod", "h", "FailedScheduling", message)],
                 {"h": ("host", readiness.target_node(pending))})
    s = status[("host", "worker-1")]
    assert s.cause == "probe-host-port-taken" and "free ports" in s.reason and not s.final  # a grace first


class Stream:
    """A watch's answer: its events as JSON lines, each after `delay` seconds, then open until it is stopped or,
    as the apiserver ends a watch, `ends` seconds (its timeoutSeconds) have passed."""

    def __init__(self, events, delay, ends=30):
        self.events, self.delay, self.closed = events, delay, threading.Event()
        self.ends = time.monotonic() + ends
        self.connection = SimpleNamespace(sock=SimpleNamespace(shutdown=lambda how: self.closed.set()))

    def stream(self, amt=None, decode_content=False):
        for kind, obj in self.events:
            if self.closed.wait(min(self.delay, self.left())) or not self.left():
                return
            yield (json.dumps({"type": kind, "object": client.ApiClient().sanitize_for_serialization(obj)})
                   + "\n").encode()
        self.closed.wait(self.left())

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def close(self):
        self.closed.set()

    def release_conn(self):
        pass


class Api:
    """list and watch answers of a cluster where worker-2's kubelet is down and the rest is healthy: worker-1's
    pod-network probe turns ready `later` seconds after the first look (the pods' watch tells)."""

    def __init__(self, later=0.0, watch=True):
        self.requests, self.later, self.watch, self.read_timeouts = Counter(), later, watch, []

    def _answer(self, what, items, kwargs, events=()):
        self.requests[f"{'watch' if kwargs.get('watch') else 'list'} {what}"] += 1
        if kwargs.get("watch"):
            self.read_timeouts.append(kwargs["_request_timeout"][1])
            if not self.watch:
                raise ApiException(status=403, reason="Forbidden")
            return Stream(events, self.later, kwargs["timeout_seconds"])
        return SimpleNamespace(metadata=client.V1ListMeta(resource_version="1"), items=items)

    def list_namespaced_pod(self, namespace, label_selector, **kwargs):
        """:rtype: V1PodList"""
        ready = pod("p1", "worker-1", ready=True)
        waiting = pod("p1", "worker-1") if self.later else ready
        return self._answer("pods", [waiting, pod("h1", "worker-1", "host-network", ready=True),
                                     pod("p2", "worker-2"), pod("h2", "worker-2", "host-network")],
                            kwargs, [("MODIFIED", ready)])

    def list_node(self, **kwargs):
        """:rtype: V1NodeList"""
        return self._answer("nodes", [node("worker-1"), node("worker-2", "Unknown",
                                                             "Kubelet stopped posting node status.")], kwargs)

    def list_namespaced_event(self, namespace, **kwargs):
        """:rtype: CoreV1EventList"""
        return self._answer("events", [], kwargs)


def test_the_wait_ends_as_soon_as_every_probe_is_ready_or_failed_for_good():
    cluster = SimpleNamespace(core=Api())
    started = time.monotonic()
    found = wait_ready(cluster, "ns", "r", ["worker-1", "worker-2"], timeout=180)
    assert time.monotonic() - started < 1  # not the 180 s timeout
    assert found[("pod", "worker-1")].ready and found[("host", "worker-2")].cause == "node-not-ready"


def test_a_long_wait_costs_a_list_and_a_watch_of_each_kind_not_a_list_a_poll():
    api = Api(later=1.5 * readiness.SLOW_POLL)  # two slow looks at the nodes and events, more at the pods
    found = wait_ready(SimpleNamespace(core=api), "ns", "r", ["worker-1", "worker-2"], timeout=180)
    assert found[("pod", "worker-1")].ready
    assert api.requests == {f"{verb} {what}": 1 for verb in ("list", "watch") for what in ("pods", "nodes", "events")}
    assert min(api.read_timeouts) > 180  # a watch outlasts the wait however quiet (the usual 30 s read ended it)


def test_a_wait_that_runs_to_its_timeout_lists_nothing_again_at_its_end():
    """The watches outlast the wait: asked for its timeout alone (1.2 s: the server's 1 s), they had ended by its
    last look (three polls in), which listed the probe pods again."""
    api = Api(later=5)  # worker-1's pod-network probe is not ready within the wait
    found = wait_ready(SimpleNamespace(core=api), "ns", "r", ["worker-1", "worker-2"], timeout=1.2)
    late = found[("pod", "worker-1")]
    assert not late.ready and "not ready after --ready-timeout 1.2 s" in late.reason
    assert api.requests == {f"{verb} {what}": 1 for verb in ("list", "watch") for what in ("pods", "nodes", "events")}


def test_without_the_right_to_watch_it_lists_as_it_polls():
    api = Api(watch=False)
    found = wait_ready(SimpleNamespace(core=api), "ns", "r", ["worker-1", "worker-2"], timeout=180)
    assert found[("pod", "worker-1")].ready and found[("host", "worker-2")].cause == "node-not-ready"
    for watcher in [t for t in threading.enumerate() if t.name == "seatrials-watch"]:
        watcher.join(5)  # the wait may end before a watch is even asked for (everything settled at the first look)
    assert api.requests["list pods"] >= 1 and api.requests["watch pods"] == 1  # refused once, never asked again


def test_a_stopped_mirror_lets_its_objects_go_though_its_watch_is_still_open():
    """A watch sees its stop only at its next event: the nodes and pods it followed (tens of MiB at 500 nodes) go at
    the stop, and an event after it adds nothing back."""
    before = set(threading.enumerate())
    mirror = Mirror(Api(later=0.5).list_namespaced_pod, "ns", label_selector="x", seconds=30)
    listed = mirror.items()
    first, (watcher,) = weakref.ref(listed[0]), set(threading.enumerate()) - before
    del listed
    mirror.stop()
    assert first() is None  # nothing holds the listed pods any more
    watcher.join(5)  # its MODIFIED event came after the stop
    assert not watcher.is_alive() and not mirror._objects


# ---------------------------------------------------------------- no pod made at all
def daemon_set(name, observed, made=0, wanted=0):
    return client.V1DaemonSet(metadata=client.V1ObjectMeta(name=name, generation=1), status=client.V1DaemonSetStatus(
        observed_generation=observed, current_number_scheduled=made, desired_number_scheduled=wanted,
        number_misscheduled=0, number_ready=0))


def controller(sets, lease=None):
    """A cluster's DaemonSets and kube-controller-manager's Lease (None: there is none)."""
    def read_lease(name, namespace):
        assert (namespace, name) == readiness.CONTROLLER_MANAGER
        if lease is None:
            raise ApiException(status=404, reason="Not Found")
        return lease

    return SimpleNamespace(apps=SimpleNamespace(list_namespaced_daemon_set=lambda ns, label_selector: SimpleNamespace(
        items=sets)), coordination=SimpleNamespace(read_namespaced_lease=read_lease))


def lease(renewed_ago: float, duration=15):
    renewed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=renewed_ago)
    return client.V1Lease(spec=client.V1LeaseSpec(holder_identity="master-1_5c1f", renew_time=renewed,
                                                  lease_duration_seconds=duration))


def test_daemon_sets_never_acted_on_point_at_the_controller_manager_and_its_lease():
    """No probe pod anywhere and the DaemonSets' status never written: no controller manager leads, and its
    lease says since when (seen on the lab: one controller manager lost its lease on a loaded machine)."""
    sets = [daemon_set("seatrials-probe-pod-r", None), daemon_set("seatrials-probe-host-r", None)]
    reason, hint, nobody_leads = readiness.unmade_reason(controller(sets, lease(95)), "ns", "sel")
    assert "never acted on seatrials-probe-pod-r, seatrials-probe-host-r" in reason
    assert "held by master-1_5c1f, was last renewed 95 s ago (expired: it lasts 15 s)" in reason
    assert "kube-controller-manager" in hint and nobody_leads
    reason, _, nobody_leads = readiness.unmade_reason(controller(sets), "ns", "sel")
    assert "kube-controller-manager does not exist" in reason and nobody_leads
    reason, _, nobody_leads = readiness.unmade_reason(controller(sets, lease(3)), "ns", "sel")
    assert "(current: it lasts 15 s)" in reason and not nobody_leads  # one leads: it may yet act


def test_daemon_sets_acted_on_say_how_many_pods_they_made():
    sets = [daemon_set("seatrials-probe-pod-r", 1, made=3, wanted=5)]
    reason, hint, nobody_leads = readiness.unmade_reason(controller(sets, lease(2)), "ns", "sel")
    assert reason == "no probe pod was made for this node (seatrials-probe-pod-r made 3 of 5 pods)"
    assert "describe daemonset -l sel" in hint and not nobody_leads


class NoPods(Api):
    def list_namespaced_pod(self, namespace, label_selector, **kwargs):
        return self._answer("pods", [], kwargs)


def test_a_wait_without_any_pod_says_why_at_its_end():
    sets = [daemon_set("seatrials-probe-pod-r", None), daemon_set("seatrials-probe-host-r", None)]
    cluster = controller(sets, lease(300))
    cluster.core = NoPods()
    found = wait_ready(cluster, "ns", "r", ["worker-1"], timeout=0.5)
    for side in ("pod", "host"):
        s = found[(side, "worker-1")]
        assert s.reason.startswith("not ready after --ready-timeout 0.5 s: no probe pod was made: the DaemonSet "
                                   "controller never acted on"), s.reason
        assert "300 s ago (expired" in s.reason and "kube-controller-manager" in s.hint


def test_with_no_pod_and_no_controller_manager_leading_the_wait_ends_after_its_grace(monkeypatch):
    """Nothing will make the probes' pods: said after UNMADE_GRACE, not at the end of --ready-timeout; while a
    controller manager holds its lease the wait goes on (it may yet act)."""
    monkeypatch.setattr(readiness, "UNMADE_GRACE", 0.2)
    sets = [daemon_set("seatrials-probe-pod-r", None), daemon_set("seatrials-probe-host-r", None)]
    for renewed_ago, timeout, ends_early in ((300, 180, True), (0, 1.5, False)):
        cluster = controller(sets, lease(renewed_ago, duration=3600 if not ends_early else 15))
        cluster.core = NoPods()
        started = time.monotonic()
        found = wait_ready(cluster, "ns", "r", ["worker-1"], timeout=timeout)
        took = time.monotonic() - started
        s = found[("pod", "worker-1")]
        assert s.reason.startswith("no probe pod was made" if ends_early else "not ready after --ready-timeout 1.5 s")
        assert (took < 5) if ends_early else (took >= 1.5), took
        assert s.final == ends_early

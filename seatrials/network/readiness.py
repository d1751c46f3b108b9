"""Waiting for the probes, and telling for each node why its probe does not run.

A probe that the cluster has already said cannot run is never waited for:
each look sees the probe pods (as soon as their watch reports a change, at
least every half second), every 2 s also the nodes and the events of the run's
namespace (each kept current by one watch: a handful of requests however long
the wait), and settles a probe as soon as the reason is final:

- its node's kubelet stopped posting status (Ready Unknown): at once;
- its image cannot be pulled, or the scheduler finds its host port taken:
  after a short grace (the kubelet and the scheduler retry in vain);
- admission refuses the DaemonSet's pods (Pod Security, a policy engine): at once;
- its container keeps exiting: after its second start;
- its sandbox cannot be made (CNI) or the scheduler refuses it otherwise:
  after a longer grace;
- no probe pod was made at all, the DaemonSets never acted on and no
  kube-controller-manager holding its lease: after 30 s.

Each settled probe carries a catalog cause and its evidence, so the report
says per node what is wrong and the fix, and the other nodes are judged fully.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field

from kubernetes.client.rest import ApiException

from seatrials.causes import UNKNOWN
from seatrials.cluster import Mirror, SetupError
from seatrials.lock import lease_age
from seatrials.topology import node_not_ready

NODE_NOT_READY = "node-not-ready"
IMAGE_CAUSE = "probe-image-unavailable"
PORT_TAKEN = "probe-host-port-taken"
ADMISSION = "probe-admission-refused"

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
PULL_GRACE = 15.0  # seconds a pull error must persist: the kubelet retries in vain
PORT_GRACE = 15.0  # the scheduler's "didn't have free ports" while an earlier run's probes are still going
OTHER_GRACE = 10.0  # sandbox (CNI) failures and other scheduling refusals
POLL = 0.5  # seconds at most between two looks at the probes; a change the pods' watch sees wakes the wait sooner
QUICKEST = 0.05  # seconds at least between two looks: at hundreds of nodes the pods change all the time
SLOW_POLL = 2.0  # seconds between two looks at the nodes and the events
# The server ends a watch timeoutSeconds after it began, a moment after the wait did: asked for the wait's timeout
# alone, the watches of a wait that ran to its end had ended, and its last look listed all three kinds again.
WATCH_PAST_DEADLINE = 30.0
SIDES = {"pod-network": "pod", "host-network": "host"}


@dataclass
class ProbeStatus:
    node: str
    side: str  # "pod" or "host"
    pod: str = ""
    ip: str = ""
    ready: bool = False
    reason: str = "no probe pod was scheduled on this node"
    cause: str = UNKNOWN
    hint: str = ""
    final: bool = False  # failed for good: nothing will change without someone acting
    trouble: tuple[str, float] | None = field(default=None, repr=False)  # (cause, since) of a pending failure

    @property
    def settled(self) -> bool:
        return self.ready or self.final

    def fail(self, cause: str, reason: str, hint: str = "", grace: float = 0.0) -> None:
        """Record a failure; final once the same cause has persisted for `grace` seconds. A final failure
        stays as it was found (what follows from it, such as a pod that cannot be scheduled on a NotReady
        node, is no new cause); only the probe becoming ready ends it."""
        if self.final:
            return
        now = time.monotonic()
        if self.trouble is None or self.trouble[0] != cause:
            self.trouble = (cause, now)
        self.cause, self.reason, self.hint = cause, reason, hint
        self.final = now - self.trouble[1] >= grace

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in ("node", "side", "pod", "ip", "ready", "reason", "cause", "hint")}


# ---------------------------------------------------------------- node state
def apply_nodes(status: dict, node_objs: list, names: list[str]) -> None:
    by_name = {n.metadata.name: n for n in node_objs}
    for name in names:
        why = f"{name} is no longer in the cluster" if name not in by_name else node_not_ready(by_name[name])
        if not why:
            continue
        for side in SIDES.values():
            s = status[(side, name)]
            if not s.ready:
                s.fail(NODE_NOT_READY, why, f"start the kubelet on {name} (or remove the node if it is gone)")


# ---------------------------------------------------------------- pods
def pending_reason(pod) -> str:
    for cs in pod.status.container_statuses or []:
        waiting = cs.state and cs.state.waiting
        if waiting and waiting.reason:
            return f"{waiting.reason}: {(waiting.message or '').strip()[:300]}"
        terminated = cs.state and cs.state.terminated
        if terminated:
            return f"container exited {terminated.exit_code} ({terminated.reason})"
    for cond in pod.status.conditions or []:
        if cond.status != "True" and cond.message:
            return f"{cond.reason}: {cond.message}"
    return f"pod phase {pod.status.phase}"


def target_node(pod) -> str | None:
    """The node a probe pod runs on, or (still unscheduled) the one its DaemonSet made it for: DaemonSet pods
    carry their node as a required node affinity on metadata.name until the scheduler binds them."""
    if pod.spec.node_name:
        return pod.spec.node_name
    required = pod.spec.affinity and pod.spec.affinity.node_affinity and \
        pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in (required.node_selector_terms if required else None) or []:
        for requirement in term.match_fields or []:
            if requirement.key == "metadata.name" and requirement.values:
                return requirement.values[0]
    return None


def restarts(pod) -> int:
    return max((cs.restart_count or 0 for cs in pod.status.container_statuses or []), default=0)


def apply_pods(status: dict, pods: list, crash_log) -> None:
    for pod in pods:
        side = SIDES.get((pod.metadata.labels or {}).get("seatrials.io/probe"))
        s = status.get((side, target_node(pod)))
        if s is None or pod.metadata.deletion_timestamp:
            continue
        s.pod, s.ip = pod.metadata.name, pod.status.pod_ip or ""
        s.ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if s.ready:
            s.reason, s.final, s.trouble = "ready", False, None
            continue
        reason = pending_reason(pod)
        if any(f in reason for f in PULL_FAILURES):
            s.fail(IMAGE_CAUSE, reason, grace=PULL_GRACE)
        elif restarts(pod) >= 2 or "CrashLoopBackOff" in reason:
            last = crash_log(pod)
            cause = PORT_TAKEN if "in use" in last.lower() else UNKNOWN
            s.fail(cause, f"{reason}; its last output: {last or '(none)'}",
                   "" if cause == PORT_TAKEN else "the probe's container keeps exiting: its output above says why")
        elif not (s.trouble and s.trouble[0] in (NODE_NOT_READY, PORT_TAKEN, ADMISSION)):
            s.reason = reason  # still starting: keep any pending failure the events told


# ---------------------------------------------------------------- events
FREE_PORTS = re.compile(r"free ports", re.I)


def apply_events(status: dict, events: list, pods_by_name: dict[str, tuple[str, str]]) -> None:
    """Scheduler, kubelet and DaemonSet controller events about this run's probes."""
    for ev in sorted(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp):
        obj, message = ev.involved_object, (ev.message or "").strip()
        if obj.kind == "DaemonSet" and ev.reason == "FailedCreate":
            side = "host" if "-probe-host-" in obj.name else "pod"
            for s in status.values():
                if s.side == side and not s.pod and not s.ready:
                    s.fail(ADMISSION, f"the {side}-network probe DaemonSet cannot create pods: {message[:400]}")
            continue
        key = pods_by_name.get(obj.name)
        s = status.get(key) if key else None
        if s is None or s.ready:
            continue
        if ev.reason == "FailedScheduling" and FREE_PORTS.search(message):
            s.fail(PORT_TAKEN, f"the scheduler cannot place it: {message[:300]}", grace=PORT_GRACE)
        elif ev.reason in ("FailedScheduling", "FailedCreatePodSandBox", "FailedMount"):
            s.fail(UNKNOWN, f"{ev.reason}: {message[:300]}",
                   f"kubectl -n {ev.metadata.namespace} describe pod {obj.name}", grace=OTHER_GRACE)


# ---------------------------------------------------------------- the wait
def mirror_advice(image: str) -> str:
    return (f"mirror it into a registry the nodes can pull from (e.g. `crane copy {image} "
            f"REGISTRY/library/busybox:1.36.1`) and pass --image-registry REGISTRY/library, "
            f"or pass --probe-image with any busybox >= 1.35 the nodes have")


def require_pullable_image(statuses: dict, image: str) -> None:
    """If no probe could pull the image anywhere, nothing can be judged: stop with one line."""
    if statuses and all(s.final and s.cause == IMAGE_CAUSE for s in statuses.values()):
        first = next(iter(statuses.values()))
        raise SetupError(f"probe image {image} cannot be pulled on any node ({first.reason.split(':')[0]}): "
                         + mirror_advice(image))


def wait_ready(cluster, namespace: str, run_id: str, nodes: list[str],
               timeout: float) -> dict[tuple[str, str], ProbeStatus]:
    """Poll until every probe is ready or failed for good, or the timeout passes."""
    selector = f"app.kubernetes.io/name=seatrials-probe,seatrials.io/run-id={run_id}"
    status = {(side, n): ProbeStatus(n, side) for side in SIDES.values() for n in nodes}
    deadline = time.monotonic() + timeout
    slow_due = time.monotonic()
    unmade_due = time.monotonic() + UNMADE_GRACE  # then once: no pod at all, is anything going to make them?

    def crash_log(pod) -> str:
        try:
            text = cluster.core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=3, previous=True)
        except ApiException:
            return ""
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-300:]

    seconds = timeout + WATCH_PAST_DEADLINE
    mirrors = (Mirror(cluster.core.list_namespaced_pod, namespace, label_selector=selector, seconds=seconds),
               Mirror(cluster.core.list_node, seconds=seconds),
               Mirror(cluster.core.list_namespaced_event, namespace, seconds=seconds))
    pod_mirror, node_mirror, event_mirror = mirrors
    try:
        while True:
            pods = pod_mirror.items()
            apply_pods(status, pods, crash_log)
            if time.monotonic() >= slow_due:
                slow_due = time.monotonic() + SLOW_POLL
                apply_nodes(status, node_mirror.items(), nodes)
                by_name = {p.metadata.name: (SIDES.get((p.metadata.labels or {}).get("seatrials.io/probe")),
                                             target_node(p)) for p in pods}
                events = [e for e in event_mirror.items()
                          if e.involved_object.name in by_name or run_id in e.involved_object.name]
                apply_events(status, events, by_name)
                if not pods and time.monotonic() >= unmade_due:
                    unmade_due = deadline
                    if (unmade := unmade_reason(cluster, namespace, selector)) and unmade[2]:
                        for s in status.values():  # nothing will make their pods: said now, not at the timeout
                            s.fail(UNKNOWN, unmade[0], unmade[1])
            if all(s.settled for s in status.values()) or time.monotonic() >= deadline:
                break
            time.sleep(QUICKEST)
            pod_mirror.wait_change(POLL - QUICKEST)  # a probe turning ready is seen at once, not up to POLL later
    finally:
        for mirror in mirrors:
            mirror.stop()
    unmade = unmade_reason(cluster, namespace, selector) if any(
        not s.settled and not s.pod for s in status.values()) else None
    for s in status.values():
        if not s.settled:
            if not s.pod and unmade:
                s.reason, s.hint = unmade[:2]
            s.reason = f"not ready after --ready-timeout {timeout:g} s: {s.reason}"
            s.hint = s.hint or f"kubectl -n {namespace} describe pod {s.pod or '-l ' + selector}"
    return status


# ---------------------------------------------------------------- no pod made
CONTROLLER_MANAGER = ("kube-system", "kube-controller-manager")  # the Lease its leader renews
# Seconds of the wait with no probe pod at all before asking why: a DaemonSet controller acts within a second or two,
# and a controller manager failing over takes the lease within its duration and a retry (15 + 2 s by default).
UNMADE_GRACE = 30.0


def unmade_reason(cluster, namespace: str, selector: str) -> tuple[str, str, bool] | None:
    """Why a node has no probe pod, as the probe DaemonSets' status says, and whether nothing will make one: a
    DaemonSet whose status the controller never wrote (observedGeneration behind its generation) was never acted
    on, and with kube-controller-manager's lease expired (or absent) no controller manager leads; one it did act
    on made pods for other nodes and not this one. None when the DaemonSets cannot be read (the pod's absence is
    all there is to say)."""
    try:
        sets = cluster.apps.list_namespaced_daemon_set(namespace, label_selector=selector).items
    except ApiException:
        return None
    unobserved = [d.metadata.name for d in sets if (d.status and d.status.observed_generation or 0)
                  < (d.metadata.generation or 1)]
    if unobserved:
        lease, leads = controller_manager_lease(cluster)
        return (f"no probe pod was made: the DaemonSet controller never acted on {', '.join(unobserved)} (its "
                f"status.observedGeneration is behind its generation); {lease}",
                "look at kube-controller-manager on the masters: is one running and leading? (kubectl -n "
                "kube-system get lease kube-controller-manager; its log: journalctl -u kube-controller-manager, "
                "or crictl logs on a kubeadm master)", leads is False)
    made = "; ".join(f"{d.metadata.name} made {d.status.current_number_scheduled or 0} of "
                     f"{d.status.desired_number_scheduled or 0} pods" for d in sets if d.status)
    return (f"no probe pod was made for this node ({made})",
            f"kubectl -n {namespace} describe daemonset -l {selector} (its events), and kube-controller-manager's "
            "log (a controller short of API quota makes pods slowly: --kube-api-qps)", False)


def controller_manager_lease(cluster, now: dt.datetime | None = None) -> tuple[str, bool | None]:
    """Who holds kube-controller-manager's leader lease and how long ago it was renewed, in one line, and whether
    a controller manager leads by it (None: the lease could not be read)."""
    namespace, name = CONTROLLER_MANAGER
    try:
        lease = cluster.coordination.read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return (f"its Lease {namespace}/{name} does not exist (no controller manager ever led, or it does not "
                    "elect a leader)"), False
        return f"its Lease {namespace}/{name} could not be read ({exc.status} {exc.reason})", None
    age = lease_age(lease, now)
    if age is None:
        return f"its Lease {namespace}/{name} was never renewed", False
    age, duration = int(age), lease.spec.lease_duration_seconds or 0
    return (f"its Lease {namespace}/{name}, held by {lease.spec.holder_identity or '(nobody)'}, was last renewed "
            f"{age} s ago ({'expired' if age > duration else 'current'}: it lasts {duration} s)"), age <= duration

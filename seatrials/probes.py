"""The probe workloads' lifecycle: one namespace per run, a lock, deployment,
readiness, and cleanup that leaves nothing behind.

The workloads themselves are the plain YAML files in manifests/; this module
only sets what is per run (namespace, run-id label, image, ports).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from seatrials.cluster import SetupError
from seatrials.network import ProbePod

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
MANAGED_BY = {"app.kubernetes.io/managed-by": "seatrials"}
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=seatrials"
RUN_LABEL = "seatrials.io/run-id"
PROBE_LABEL = "seatrials.io/probe"  # pod-network or host-network (manifests/)
LOCK_NAMESPACE, LOCK_NAME = "default", "seatrials-lock"
LEASE_SECONDS = 60
# A pull error is final when it has been seen this long (the kubelet retries in vain).
PULL_FAILURE_GRACE = 15
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def namespace_of(run_id: str) -> str:
    return f"seatrials-{run_id}"


def load_manifest(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / name).read_text())


def mirror_advice(image: str) -> str:
    return (f"mirror it into a registry the nodes can pull from (e.g. `crane copy {image} "
            f"REGISTRY/library/busybox:1.36.1`) and pass --image-registry REGISTRY/library, "
            f"or pass --probe-image with any busybox >= 1.35 the nodes have")


# ---------------------------------------------------------------- the lock
class ClusterLock:
    """A Lease that stops two runs from colliding on one cluster.

    The holder renews it while the run lives; a holder that died leaves a lease
    that expires after LEASE_SECONDS, and the next run (or --cleanup-only) takes
    it over.
    """

    def __init__(self, cluster, run_id: str):
        self.cluster, self.run_id = cluster, run_id
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self, resource_version=None):
        now = dt.datetime.now(dt.UTC)
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=LOCK_NAME, namespace=LOCK_NAMESPACE,
                                         labels={**MANAGED_BY, RUN_LABEL: self.run_id},
                                         resource_version=resource_version),
            spec=client.V1LeaseSpec(holder_identity=self.run_id, lease_duration_seconds=LEASE_SECONDS,
                                    acquire_time=now, renew_time=now))

    def acquire(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        coord = self.cluster.coordination
        while True:
            try:
                coord.create_namespaced_lease(LOCK_NAMESPACE, self._body())
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise SetupError(f"cannot take the seatrials lock (Lease {LOCK_NAMESPACE}/{LOCK_NAME}): "
                                     f"{exc.status} {exc.reason}") from None
            held = coord.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
            if lease_expired(held):
                try:
                    coord.replace_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE,
                                                   self._body(held.metadata.resource_version))
                    break
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    continue  # someone else took it over first; look again
            if time.monotonic() >= deadline:
                since = held.spec.acquire_time.isoformat() if held.spec.acquire_time else "unknown"
                raise SetupError(
                    f"another seatrials run ({held.spec.holder_identity}, since {since}) holds this cluster's lock "
                    f"(Lease {LOCK_NAMESPACE}/{LOCK_NAME}): wait for it (--lock-wait SECONDS), or if it died, "
                    f"its lock expires {LEASE_SECONDS} s after its last renewal")
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        self._renewer = threading.Thread(target=self._renew, name="seatrials-lock-renewer", daemon=True)
        self._renewer.start()

    def _renew(self):
        while not self._stop.wait(LEASE_SECONDS / 4):
            try:
                lease = self.cluster.coordination.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
                if lease.spec.holder_identity != self.run_id:
                    return
                lease.spec.renew_time = dt.datetime.now(dt.UTC)
                self.cluster.coordination.replace_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE, lease)
            except ApiException:
                continue  # a missed renewal is retried; the lease outlives several

    def release(self) -> None:
        self._stop.set()
        try:
            lease = self.cluster.coordination.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
            if lease.spec.holder_identity == self.run_id:
                self.cluster.coordination.delete_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise


def lease_expired(lease) -> bool:
    renewed = lease.spec.renew_time or lease.spec.acquire_time
    if renewed is None:
        return True
    age = (dt.datetime.now(dt.UTC) - renewed).total_seconds()
    return age > (lease.spec.lease_duration_seconds or LEASE_SECONDS)


# ---------------------------------------------------------------- deployment
def namespace_body(run_id: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace_of(run_id),
        labels={**MANAGED_BY, RUN_LABEL: run_id,
                # host-network probes need the privileged Pod Security level
                "pod-security.kubernetes.io/enforce": "privileged"}))


def daemonset(manifest: str, run_id: str, image: str, port: int) -> dict:
    ds = load_manifest(manifest)
    ds["metadata"]["namespace"] = namespace_of(run_id)
    for meta in (ds["metadata"], ds["spec"]["template"]["metadata"]):
        meta["labels"][RUN_LABEL] = run_id
    container = ds["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["ports"][0]["containerPort"] = port
    for env in container["env"]:
        if env["name"] == "PROBE_PORT":
            env["value"] = str(port)
    return ds


def external_ip_service(run_id: str, node_ips: list[str], port: int) -> dict:
    svc = load_manifest("probe-external-ip.yaml")
    svc["metadata"]["namespace"] = namespace_of(run_id)
    svc["metadata"]["labels"][RUN_LABEL] = run_id
    svc["spec"]["ports"][0]["port"] = port
    svc["spec"]["externalIPs"] = node_ips
    return svc


@dataclass
class Deployment:
    run_id: str
    namespace: str
    service_error: str = ""  # why the externalIPs service could not be created, if it could not


def deploy(cluster, topology, settings, run_id: str) -> Deployment:
    ns = namespace_of(run_id)
    cluster.core.create_namespace(namespace_body(run_id))
    cluster.apps.create_namespaced_daemon_set(
        ns, daemonset("probe-pod-network.yaml", run_id, settings.image, settings.pod_port))
    wait_host_ports_released(cluster, settings.ready_timeout / 2)
    cluster.apps.create_namespaced_daemon_set(
        ns, daemonset("probe-host-network.yaml", run_id, settings.image, settings.host_port))
    deployment = Deployment(run_id, ns)
    ips = [n.internal_ip for n in topology.nodes if n.internal_ip]
    try:
        cluster.core.create_namespaced_service(ns, external_ip_service(run_id, ips, settings.service_port))
    except ApiException as exc:
        deployment.service_error = f"{exc.status} {exc.reason}: the cluster refused a Service with externalIPs"
    return deployment


def wait_host_ports_released(cluster, timeout: float) -> None:
    """Wait while host-network probes of an earlier run are still terminating.

    They hold the host port on their node until they are gone, and a probe
    created meanwhile is refused by the scheduler ("didn't have free ports")
    and only retried after a back-off of several seconds: a run right after
    another would pay that in readiness. Live leftovers are not waited for
    (readiness reports them per node); a cluster that forbids listing pods
    everywhere is not waited for either.
    """
    @retry(retry=retry_if_result(bool), wait=wait_fixed(0.5), stop=stop_after_delay(timeout),
           retry_error_callback=lambda _: None, reraise=False)
    def terminating() -> list[str]:
        pods = cluster.core.list_pod_for_all_namespaces(label_selector=f"{PROBE_LABEL}=host-network").items
        if not pods:
            return []
        going = {ns.metadata.name for ns in cluster.core.list_namespace(label_selector=MANAGED_BY_SELECTOR).items
                 if ns.status.phase == "Terminating"}
        return [p.metadata.name for p in pods if p.metadata.deletion_timestamp or p.metadata.namespace in going]

    try:
        terminating()
    except ApiException as exc:
        if exc.status != 403:
            raise


# ---------------------------------------------------------------- readiness
@dataclass
class ProbeStatus:
    node: str
    side: str  # "pod" or "host"
    pod: str = ""
    ip: str = ""
    ready: bool = False
    reason: str = "no probe pod was scheduled on this node"
    pull_failure_since: float | None = field(default=None, repr=False)

    @property
    def settled(self) -> bool:
        """Ready, or failed for good (an image that cannot be pulled)."""
        return self.ready or (self.pull_failure_since is not None
                              and time.monotonic() - self.pull_failure_since > PULL_FAILURE_GRACE)


SIDES = {"pod-network": "pod", "host-network": "host"}


def read_status(cluster, namespace: str, nodes: list[str], previous: dict) -> dict[tuple[str, str], ProbeStatus]:
    status = {(side, n): previous.get((side, n)) or ProbeStatus(n, side) for side in SIDES.values() for n in nodes}
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=seatrials-probe").items
    for pod in pods:
        side = SIDES.get((pod.metadata.labels or {}).get(PROBE_LABEL))
        key = (side, pod.spec.node_name)
        if key not in status:
            continue
        s = status[key]
        s.pod, s.ip = pod.metadata.name, pod.status.pod_ip or ""
        s.ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        s.reason = "ready" if s.ready else pending_reason(pod)
        if any(f in s.reason for f in PULL_FAILURES):
            s.pull_failure_since = s.pull_failure_since or time.monotonic()
        else:
            s.pull_failure_since = None
    return status


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


def wait_ready(cluster, namespace: str, nodes: list[str], timeout: float) -> dict[tuple[str, str], ProbeStatus]:
    """Poll until every probe is ready or failed for good, or the timeout passes."""
    state: dict = {}

    @retry(retry=retry_if_result(lambda done: not done), wait=wait_fixed(0.5), stop=stop_after_delay(timeout),
           retry_error_callback=lambda _: True, reraise=False)
    def poll() -> bool:
        state.update(read_status(cluster, namespace, nodes, state))
        return all(s.settled for s in state.values())

    poll()
    return state


def require_pullable_image(statuses: dict, image: str) -> None:
    """If no probe could pull the image anywhere, nothing can be judged: stop with one line."""
    failures = [s for s in statuses.values() if s.pull_failure_since is not None]
    if statuses and len(failures) == len(statuses):
        raise SetupError(f"probe image {image} cannot be pulled on any node ({failures[0].reason.split(':')[0]}): "
                         + mirror_advice(image))


def probe_pods(statuses: dict, side: str) -> dict[str, ProbePod]:
    return {s.node: ProbePod(s.node, s.pod, s.ip) for (sd, _), s in statuses.items() if sd == side and s.ready}


# ---------------------------------------------------------------- cleanup
def delete_run(cluster, run_id: str) -> bool:
    """Delete this run's namespace; True when something was deleted.

    The DaemonSets go first, in the foreground: the garbage collector then
    deletes their pods at once, where the namespace controller would leave
    them for seconds, holding the host probes' port.
    """
    ns = namespace_of(run_id)
    try:
        cluster.apps.delete_collection_namespaced_daemon_set(ns, propagation_policy="Foreground")
        cluster.core.delete_namespace(ns, propagation_policy="Background")
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def cleanup_leftovers(cluster) -> tuple[list[str], str | None]:
    """--cleanup-only: remove what earlier runs left behind; a run that is alive now is left alone.

    Returns what was removed and the run id of the live run, if any.
    """
    removed, active = [], None
    try:
        lease = cluster.coordination.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
        if lease_expired(lease):
            cluster.coordination.delete_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
            removed.append(f"lease/{LOCK_NAMESPACE}/{LOCK_NAME}")
        else:
            active = lease.spec.holder_identity
    except ApiException as exc:
        if exc.status != 404:
            raise
    for ns in cluster.core.list_namespace(label_selector=MANAGED_BY_SELECTOR).items:
        if ns.status.phase == "Terminating" or (ns.metadata.labels or {}).get(RUN_LABEL) == active:
            continue
        cluster.core.delete_namespace(ns.metadata.name, propagation_policy="Background")
        removed.append(f"namespace/{ns.metadata.name}")
    return removed, active

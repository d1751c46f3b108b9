"""The probe workloads' lifecycle: where a run's probes live, deployment, and
cleanup that leaves nothing behind, also of runs that died.

The workloads themselves are the plain YAML files in manifests/; this module
only sets what is per run (names, run-id labels and selectors, image, ports).
A run's probes live in a namespace of their own (`seatrials-<run id>`, made and
deleted by the run), or with --namespace in a namespace that exists already
(manifests/rbac.yaml makes one for a least-privilege ServiceAccount).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from seatrials import lock
from seatrials.cluster import SetupError, api_error_line
from seatrials.data import load_yaml

MANIFESTS = Path(str(resources.files("seatrials.manifests")))  # manifests/ in the checkout
MANAGED_BY = lock.MANAGED_BY
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=seatrials"
RUN_LABEL = lock.RUN_LABEL
PROBE_LABEL = "seatrials.io/probe"  # pod-network or host-network (manifests/)
PORTS_RELEASE_WAIT = 30.0  # seconds an earlier run's terminating host probes may hold their port


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def load_manifest(name: str) -> dict:
    return load_yaml((MANIFESTS / name).read_text())


@dataclass(frozen=True)
class Space:
    """Where one run's probes live."""

    namespace: str
    own: bool  # a namespace of the run's own (created and deleted by it), or a given one

    @classmethod
    def of(cls, run_id: str, given: str | None = None) -> Space:
        return cls(given, False) if given else cls(f"seatrials-{run_id}", True)


def namespace_body(run_id: str, name: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name,
        labels={**MANAGED_BY, RUN_LABEL: run_id,
                # host-network probes need the privileged Pod Security level
                "pod-security.kubernetes.io/enforce": "privileged"}))


def per_run(obj: dict, run_id: str, namespace: str) -> dict:
    """A manifest made this run's: its name suffixed, its run-id label, in the run's namespace."""
    obj["metadata"]["name"] = f"{obj['metadata']['name']}-{run_id}"
    obj["metadata"]["namespace"] = namespace
    obj["metadata"]["labels"][RUN_LABEL] = run_id
    return obj


def daemonset(manifest: str, run_id: str, image: str, port: int, namespace: str | None = None) -> dict:
    ds = per_run(load_manifest(manifest), run_id, namespace or f"seatrials-{run_id}")
    ds["spec"]["selector"]["matchLabels"][RUN_LABEL] = run_id  # never adopt an earlier run's pods
    ds["spec"]["template"]["metadata"]["labels"][RUN_LABEL] = run_id
    container = ds["spec"]["template"]["spec"]["containers"][0]
    container["image"] = image
    container["ports"][0]["containerPort"] = port
    for env in container["env"]:
        if env["name"] == "PROBE_PORT":
            env["value"] = str(port)
    return ds


def pod_probe_labels(run_id: str) -> dict:
    """The labels of a run's pod-network probes, as NetworkPolicies would select them."""
    labels = load_manifest("probe-pod-network.yaml")["spec"]["template"]["metadata"]["labels"]
    return {**labels, RUN_LABEL: run_id}


def external_ip_service(run_id: str, node_ips: list[str], port: int, namespace: str | None = None) -> dict:
    svc = per_run(load_manifest("probe-external-ip.yaml"), run_id, namespace or f"seatrials-{run_id}")
    svc["spec"]["selector"][RUN_LABEL] = run_id
    svc["spec"]["ports"][0]["port"] = port
    svc["spec"]["externalIPs"] = node_ips
    return svc


@dataclass
class Deployment:
    run_id: str
    namespace: str
    service_error: str = ""  # why the externalIPs service could not be created, if it could not


def deploy(cluster, topology, settings, run_id: str, space: Space) -> Deployment:
    ns = space.namespace
    if space.own:
        cluster.core.create_namespace(namespace_body(run_id, ns))
    else:
        require_namespace(cluster, ns)
    cluster.apps.create_namespaced_daemon_set(
        ns, daemonset("probe-pod-network.yaml", run_id, settings.image, settings.pod_port, ns))
    gone = {n.name for n in topology.nodes if n.unreachable}
    wait_host_ports_released(cluster, PORTS_RELEASE_WAIT, None if space.own else ns, gone)
    cluster.apps.create_namespaced_daemon_set(
        ns, daemonset("probe-host-network.yaml", run_id, settings.image, settings.host_port, ns))
    deployment = Deployment(run_id, ns)
    ips = [n.internal_ip for n in topology.nodes if n.internal_ip]
    try:
        cluster.core.create_namespaced_service(ns, external_ip_service(run_id, ips, settings.service_port, ns))
    except ApiException as exc:
        deployment.service_error = f"{exc.status} {exc.reason}: the cluster refused a Service with externalIPs"
    return deployment


def require_namespace(cluster, name: str) -> None:
    try:
        cluster.core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            raise SetupError(f"namespace {name} (--namespace) does not exist: apply manifests/rbac.yaml, or leave "
                             "out --namespace to give each run a namespace of its own") from None
        if exc.status == 403:
            raise SetupError(f"namespace {name} (--namespace): {api_error_line(exc)}") from None
        raise


def wait_host_ports_released(cluster, timeout: float, namespace: str | None = None,
                             gone: set[str] = frozenset()) -> None:
    """Wait while host-network probes of an earlier run are still terminating.

    They hold the host port on their node until they are gone, and a probe
    created meanwhile is refused by the scheduler ("didn't have free ports")
    and only retried after a back-off of several seconds: a run right after
    another would pay that in readiness. Live leftovers were removed before
    (remove_leftovers). Probes are looked for everywhere; where listing pods
    everywhere is forbidden (a least-privilege run), in `namespace` only. Pods
    on `gone` nodes (their kubelet stopped posting status) are never waited
    for: nothing ends them until the kubelet comes back.
    """
    selector = f"{PROBE_LABEL}=host-network"

    def everywhere() -> list[str]:
        pods = cluster.core.list_pod_for_all_namespaces(label_selector=selector).items
        if not pods:
            return []
        going = {ns.metadata.name for ns in cluster.core.list_namespace(label_selector=MANAGED_BY_SELECTOR).items
                 if ns.status.phase == "Terminating"}
        return [p.metadata.name for p in pods if p.spec.node_name not in gone
                and (p.metadata.deletion_timestamp or p.metadata.namespace in going)]

    def here() -> list[str]:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [p.metadata.name for p in pods if p.metadata.deletion_timestamp and p.spec.node_name not in gone]

    @retry(retry=retry_if_result(bool), wait=wait_fixed(0.5), stop=stop_after_delay(timeout),
           retry_error_callback=lambda _: None, reraise=False)
    def terminating(look) -> list[str]:
        return look()

    try:
        terminating(everywhere)
    except ApiException as exc:
        if exc.status != 403:
            raise
        if namespace:
            terminating(here)


# ---------------------------------------------------------------- cleanup
def delete_run(cluster, space: Space, run_id: str, gone: set[str] = frozenset()) -> bool:
    """Delete what this run made; True when something was deleted.

    The DaemonSets go first, in the foreground: the garbage collector then
    deletes their pods at once, where the namespace controller would leave
    them for seconds, holding the host probes' port. Probes on `gone` nodes
    (NotReady: no kubelet confirms their end) are removed outright, or they
    would hold the run's namespace in Terminating until the node returns.
    """
    selector = f"{RUN_LABEL}={run_id}"
    try:
        cluster.apps.delete_collection_namespaced_daemon_set(space.namespace, label_selector=selector,
                                                             propagation_policy="Foreground")
        end_pods_on_gone_nodes(cluster, space.namespace, selector, gone)
        if space.own:
            cluster.core.delete_namespace(space.namespace, propagation_policy="Background")
        else:
            for svc in cluster.core.list_namespaced_service(space.namespace, label_selector=selector).items:
                cluster.core.delete_namespaced_service(svc.metadata.name, space.namespace)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def end_pods_on_gone_nodes(cluster, namespace: str, selector: str, gone: set[str]) -> None:
    for pod in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items if gone else []:
        if pod.spec.node_name in gone:
            cluster.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def remove_leftovers(cluster, space: Space, keep_run: str | None, gone: set[str] = frozenset()) -> list[str]:
    """Remove what runs other than `keep_run` left behind: their namespaces, or in a given namespace
    their DaemonSets and Services. Called only while holding the lock (or with no live holder), so
    whatever another run left is a dead run's (a --keep-probes run's too: its host probes would hold
    the ports). Returns what was removed, as kind/name."""
    removed = []
    if space.own:
        try:
            namespaces = cluster.core.list_namespace(label_selector=MANAGED_BY_SELECTOR).items
        except ApiException as exc:
            if exc.status != 403:
                raise
            namespaces = []
        for ns in namespaces:
            run = (ns.metadata.labels or {}).get(RUN_LABEL)
            if run == keep_run:
                continue
            if ns.status.phase == "Terminating":  # going, unless its probes sit on a NotReady node
                end_pods_on_gone_nodes(cluster, ns.metadata.name, MANAGED_BY_SELECTOR, gone)
                continue
            delete_run(cluster, Space(ns.metadata.name, True), run or "", gone)
            removed.append(f"namespace/{ns.metadata.name}")
        return removed
    owned = [("daemonset", cluster.apps.list_namespaced_daemon_set, cluster.apps.delete_namespaced_daemon_set),
             ("service", cluster.core.list_namespaced_service, cluster.core.delete_namespaced_service)]
    for kind, listing, delete in owned:
        for obj in listing(space.namespace, label_selector=MANAGED_BY_SELECTOR).items:
            if (obj.metadata.labels or {}).get(RUN_LABEL) == keep_run or obj.metadata.deletion_timestamp:
                continue
            try:
                delete(obj.metadata.name, space.namespace, propagation_policy="Foreground")
                removed.append(f"{kind}/{space.namespace}/{obj.metadata.name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise
    return removed


def cleanup_leftovers(cluster, given_namespace: str | None = None) -> tuple[list[str], str | None]:
    """--cleanup-only: an expired lock and what dead runs left; a run that is alive now is left alone.

    Returns what was removed and the run id of the live run, if any.
    """
    expired, active = lock.expired_lease(cluster)
    removed = [f"lease/{lock.LOCK_NAMESPACE}/{lock.LOCK_NAME}"] if expired else []
    removed += remove_leftovers(cluster, Space.of("", given_namespace), keep_run=active)
    return removed, active

"""The probe workloads as deployed (manifests plus per-run settings), and the
wait for host ports that an earlier run's probes still hold. The lifecycle
against a real cluster is proved in tests/e2e."""

import time
from types import SimpleNamespace as NS

import pytest
from kubernetes.client.rest import ApiException

from seatrials.network import probes


def pod(name, namespace, deleting=False, node="worker-1"):
    deleted = "2026-11-27T00:00:00Z" if deleting else None
    return NS(metadata=NS(name=name, namespace=namespace, deletion_timestamp=deleted), spec=NS(node_name=node))


def namespace(name, phase):
    return NS(metadata=NS(name=name), status=NS(phase=phase))


class Core:
    """Answers list calls from a script of states, one state per poll."""

    def __init__(self, pods_per_poll, namespaces=(), error=None):
        self.pods_per_poll, self.namespaces, self.error, self.polls = list(pods_per_poll), list(namespaces), error, 0

    def list_pod_for_all_namespaces(self, label_selector):
        assert label_selector == "seatrials.io/probe=host-network"
        if self.error:
            raise self.error
        self.polls += 1
        return NS(items=self.pods_per_poll[min(self.polls, len(self.pods_per_poll)) - 1])

    def list_namespace(self, label_selector):
        return NS(items=self.namespaces)


def test_waits_until_an_earlier_runs_terminating_host_probes_are_gone():
    core = Core([[pod("a", "seatrials-old", deleting=True)]] * 3 + [[]])
    probes.wait_host_ports_released(NS(core=core), timeout=10)
    assert core.polls == 4


def test_probes_of_a_terminating_namespace_count_before_their_own_deletion():
    core = Core([[pod("a", "seatrials-old")], []], namespaces=[namespace("seatrials-old", "Terminating")])
    probes.wait_host_ports_released(NS(core=core), timeout=10)
    assert core.polls == 2


def test_live_leftovers_are_not_waited_for():
    core = Core([[pod("a", "seatrials-kept")]], namespaces=[namespace("seatrials-kept", "Active")])
    started = time.monotonic()
    probes.wait_host_ports_released(NS(core=core), timeout=10)
    assert core.polls == 1 and time.monotonic() - started < 1


def test_the_wait_is_bounded():
    core = Core([[pod("a", "seatrials-stuck", deleting=True)]])
    started = time.monotonic()
    probes.wait_host_ports_released(NS(core=core), timeout=1.2)
    assert 1.0 <= time.monotonic() - started < 3


def test_probes_on_a_notready_node_are_not_waited_for():
    core = Core([[pod("a", "seatrials-old", deleting=True, node="worker-2")]])
    started = time.monotonic()
    probes.wait_host_ports_released(NS(core=core), timeout=10, gone={"worker-2"})
    assert core.polls == 1 and time.monotonic() - started < 1


def test_a_cluster_that_forbids_listing_all_pods_is_not_waited_for():
    probes.wait_host_ports_released(NS(core=Core([], error=ApiException(status=403))), timeout=10)
    with pytest.raises(ApiException):
        probes.wait_host_ports_released(NS(core=Core([], error=ApiException(status=500))), timeout=10)


@pytest.mark.parametrize("manifest", ["probe-pod-network.yaml", "probe-host-network.yaml"])
def test_daemonset_takes_the_runs_namespace_label_image_and_port(manifest):
    ds = probes.daemonset(manifest, "20261127-000000-abcd", "harbor.example.com/library/busybox:1.36.1", 19376)
    assert ds["metadata"]["namespace"] == "seatrials-20261127-000000-abcd"
    assert ds["spec"]["template"]["metadata"]["labels"][probes.RUN_LABEL] == "20261127-000000-abcd"
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "harbor.example.com/library/busybox:1.36.1"
    assert container["ports"][0]["containerPort"] == 19376
    assert {"name": "PROBE_PORT", "value": "19376"} in container["env"]


class Cleanup:
    """The calls remove_leftovers makes, recorded; namespaces, pods, DaemonSets and Services as given."""

    def __init__(self, namespaces=(), pods=(), daemonsets=(), services=()):
        self.namespaces, self.pods, self.daemonsets, self.services = namespaces, pods, daemonsets, services
        self.deleted = []
        self.core, self.apps = self, self

    def list_namespace(self, label_selector):
        return NS(items=list(self.namespaces))

    def list_namespaced_pod(self, namespace, label_selector):
        return NS(items=[p for p in self.pods if p.metadata.namespace == namespace])

    def list_namespaced_daemon_set(self, namespace, label_selector):
        return NS(items=list(self.daemonsets))

    def list_namespaced_service(self, namespace, label_selector):
        return NS(items=list(self.services))

    def delete_collection_namespaced_daemon_set(self, namespace, label_selector, propagation_policy):
        self.deleted.append(("daemonsets", namespace, label_selector))

    def delete_namespace(self, name, propagation_policy):
        self.deleted.append(("namespace", name))

    def delete_namespaced_pod(self, name, namespace, grace_period_seconds):
        self.deleted.append(("pod", name, grace_period_seconds))

    def delete_namespaced_daemon_set(self, name, namespace, propagation_policy):
        self.deleted.append(("daemonset", name))

    def delete_namespaced_service(self, name, namespace, propagation_policy=None):
        self.deleted.append(("service", name))


def run_namespace(name, run, phase="Active"):
    return NS(metadata=NS(name=name, labels={probes.RUN_LABEL: run}), status=NS(phase=phase))


def on_node(name, namespace, node):
    return NS(metadata=NS(name=name, namespace=namespace), spec=NS(node_name=node))


def test_a_dead_runs_namespace_goes_and_its_probes_on_a_notready_node_are_ended():
    api = Cleanup(namespaces=[run_namespace("seatrials-old", "old"), run_namespace("seatrials-mine", "mine"),
                              run_namespace("seatrials-stuck", "stuck", "Terminating")],
                  pods=[on_node("p1", "seatrials-stuck", "worker-2"), on_node("p2", "seatrials-stuck", "worker-1")])
    removed = probes.remove_leftovers(api, probes.Space.of("mine"), keep_run="mine", gone={"worker-2"})
    assert removed == ["namespace/seatrials-old"]
    assert ("namespace", "seatrials-old") in api.deleted and ("namespace", "seatrials-mine") not in api.deleted
    assert ("pod", "p1", 0) in api.deleted and ("pod", "p2", 0) not in api.deleted  # only on the NotReady node


def test_in_a_given_namespace_only_other_runs_objects_go():
    def owned(name, run):
        return NS(metadata=NS(name=name, labels={probes.RUN_LABEL: run}, deletion_timestamp=None))

    api = Cleanup(daemonsets=[owned("ds-old", "old"), owned("ds-mine", "mine")],
                  services=[owned("svc-old", "old"), owned("svc-mine", "mine")])
    removed = probes.remove_leftovers(api, probes.Space.of("mine", "seatrials"), keep_run="mine")
    assert removed == ["daemonset/seatrials/ds-old", "service/seatrials/svc-old"]

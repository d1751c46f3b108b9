"""The API requests of a run grow by at most 4 per node: the run's lock, a probe trial (deploy, readiness, one exec
per probe, the evidence), the apiserver checks and the kubelet check of every node against a fake apiserver that
counts each call, at two sizes. The lab measures the whole suite's count (lab/lab bench, signoff.json's
api_requests_by_endpoint); its constant is larger (the topology, the leftovers, teardown, a renewal every 15 s)."""

from collections import Counter
from types import SimpleNamespace

import pytest
from kubernetes import client

from seatrials.checks import apiserver, kubelet
from seatrials.cluster import ExecResult
from seatrials.lock import ClusterLock
from seatrials.network import probes, trial
from seatrials.options import Settings
from seatrials.topology import Node, Topology
from tests.test_kubelet import HEALTHY_SUMMARY, api_error, sample
from tests.test_readiness import Stream, pod

RTYPES = {"list_namespaced_pod": "V1PodList", "list_node": "V1NodeList", "list_namespaced_event": "CoreV1EventList"}


class Api:
    """Every method a call that counts as one request under its name (a watch as `watch <name>`); `answers`
    gives what some return, the others return an empty list."""

    def __init__(self, counts: Counter, answers: dict):
        self.counts, self.answers = counts, answers

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.counts[f"watch {name}" if kwargs.get("watch") else name] += 1
            if kwargs.get("watch"):
                return Stream([], 0)  # nothing changes: open until readiness stops it
            answer = self.answers.get(name)
            return answer(*args, **kwargs) if answer else SimpleNamespace(
                items=[], metadata=client.V1ListMeta(resource_version="1"))
        call.__doc__ = f":rtype: {RTYPES.get(name, 'object')}"  # how a watch finds the type of its objects
        return call


class FakeCluster:
    """A cluster of `size` nodes whose probes are ready at once; each exec and node proxy read counted. Its kubelets
    are healthy current ones, or KWOK's fake ones (debugging handlers off, no stats/summary)."""

    def __init__(self, size: int, fake_kubelets: bool = False):
        self.fake_kubelets = fake_kubelets
        self.nodes = [Node(f"node-{i}", "master" if i < 3 else "worker", f"10.240.0.{i + 10}") for i in range(size)]
        self.counts = Counter()
        probe_pods = [pod(f"{side}-{n.name}", n.name, f"{side}-network", ready=True)
                      for n in self.nodes for side in ("pod", "host")]
        listing = SimpleNamespace(items=probe_pods, metadata=client.V1ListMeta(resource_version="1"))
        api = Api(self.counts, {"list_namespaced_pod": lambda *a, **k: listing,
                                "read_namespaced_config_map": lambda *a, **k: client.V1ConfigMap(data={})})
        self.core = self.apps = self.discovery = self.networking = self.coordination = self.apiregistration = api
        self.api = client.ApiClient()

    def exec(self, namespace, pod_name, command, timeout):
        self.counts["exec"] += 1
        return ExecResult("", "", 0)

    def node_proxy(self, node, path, query=None, timeout=30):
        self.counts[f"node proxy {path}"] += 1
        if self.fake_kubelets:
            raise api_error(405, "Method Not Allowed", "Debug endpoints are disabled.\n") if path.startswith("logs/") \
                else api_error(404, "Not Found", "404 page not found\n")
        return sample("kubelet-v1.34-restarted-clean.log") if path == "logs/" else HEALTHY_SUMMARY


MASTERS = 3


def requests_of(size: int, fake_kubelets: bool = False) -> Counter:
    cluster = FakeCluster(size, fake_kubelets)
    topology = Topology(cluster.nodes, ("10.32.0.1", 443), [("10.240.0.10", 6443)], "other")
    settings = Settings(ready_timeout=30)
    lock = ClusterLock(cluster, "r1")
    lock.acquire(wait=0)
    trial.run(cluster, topology, settings, "r1", probes.Space.of("r1"))
    apiserver.front_proxy_result(cluster, topology)
    assert apiserver.aggregated_apis_result(cluster).status == "not applicable"
    judged = kubelet.cgroups_results(cluster, cluster.nodes)
    assert {r.status for r in judged.values()} == {"not checked" if fake_kubelets else "passed"}
    lock.release()
    return cluster.counts


@pytest.mark.parametrize("fake_kubelets", [False, True], ids=["kubelets", "KWOK's kubelets"])
@pytest.mark.parametrize("size", [4, 40])
def test_a_run_costs_at_most_four_requests_a_node_one_more_a_master_and_18_besides(size, fake_kubelets):
    """Each master's apiserver log is read through its kubelet (no apiserver pod here); a kubelet that answered
    that its logs/ is off is not asked again, and the APIServices are read once for both checks that judge them
    (before: 4 and 1 more at 500 KWOK nodes)."""
    counts = requests_of(size, fake_kubelets)
    assert counts["exec"] == 2 * size  # one fan-out per probe, both sides
    assert counts["node proxy stats/summary"] == size
    assert counts["node proxy logs/"] == size + (0 if fake_kubelets else MASTERS)
    assert counts["list_api_service"] == 1
    assert sum(counts.values()) <= 4 * size + (0 if fake_kubelets else MASTERS) + 18, counts


def test_readiness_and_evidence_cost_the_same_at_any_size():
    small, large = requests_of(4), requests_of(40)
    per_node = ("exec", "node proxy logs/", "node proxy stats/summary")
    assert {k: v for k, v in small.items() if k not in per_node} == {k: v for k, v in large.items()
                                                                     if k not in per_node}


def test_probes_deployed_ahead_are_not_deployed_again_and_a_failed_deployment_fails_the_trial():
    cluster = FakeCluster(4)
    topology = Topology(cluster.nodes, ("10.32.0.1", 443), [("10.240.0.10", 6443)], "other")
    settings, space = Settings(ready_timeout=30), probes.Space.of("r1")
    deployed = trial.deploy(cluster, topology, settings, "r1", space)  # as the plugin does once cases are collected
    made = cluster.counts["create_namespaced_daemon_set"]
    measured = trial.run(cluster, topology, settings, "r1", space, deployed=deployed)
    assert made == 2 and cluster.counts["create_namespaced_daemon_set"] == 2 and cluster.counts["exec"] == 8
    assert measured.timings["deploy"] == deployed.result()[1]

    def refuse(body):
        raise api_error(403, "Forbidden", "namespaces is forbidden\n")

    cluster.core.create_namespace = refuse
    refused = trial.deploy(cluster, topology, settings, "r2", probes.Space.of("r2"))
    with pytest.raises(client.ApiException):  # raised where the trial is measured, as when it deploys itself
        trial.run(cluster, topology, settings, "r2", probes.Space.of("r2"), deployed=refused)

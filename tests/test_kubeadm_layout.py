"""What only a kubeadm cluster shows the suite, as the lab's kubeadm layout answered it (recorded by
tests/data/versions/record.py into <release>/kubeadm/): the apiserver as a static pod whose flags the
front-proxy check reads and reports, kube-proxy as a DaemonSet whose pod on each node is evidence. On the
hard-way lab both were "not checked" (no apiserver pod, no kube-proxy pod); here they give verdicts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kubernetes import client

from seatrials import topology
from seatrials.checks import apiserver
from seatrials.network.evidence import read_daemonset_pods
from seatrials.network.paths import ProbeResult
from seatrials.network.trial import Trial
from tests.test_apiserver import FakeApi
from tests.test_apiserver import topology as apiserver_topology
from tests.test_version_differences import VERSIONS, model, recorded

KUBEADM = sorted(f"{p.parent.parent.name}/kubeadm" for p in VERSIONS.glob("*/kubeadm/pods.json"))
NODES = ["master-1", "worker-1", "worker-2"]
STATIC_POD = "apiserver flags (kube-apiserver-master-1, static pod)"


def pods(release: str, name: str = "pods.json") -> list:
    return model(release, name, "V1PodList").items


def front_proxy_api(release: str, state: str = "") -> FakeApi:
    """The apiserver check's reads, answered as the kubeadm lab answered them."""
    listed = pods(release, f"pods{state}.json")
    configmap = model(release, f"extension-apiserver-authentication{state}.json", "V1ConfigMap").data
    return FakeApi(configmap=configmap, pods=listed,
                   pod_logs={p.metadata.name: recorded(release, "kube-apiserver.log.gz") for p in listed})


def test_a_kubeadm_lab_is_recorded():
    assert KUBEADM, "record one: lab/lab up --layout kubeadm; tests/data/versions/record.py"


@pytest.mark.parametrize("release", KUBEADM)
def test_the_apiserver_flags_come_from_its_static_pod_and_are_reported(release):
    result = apiserver.front_proxy_result(front_proxy_api(release), apiserver_topology("master-1"))
    assert result.ok
    flags = result.properties[STATIC_POD]
    assert "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt" in flags
    assert "--client-ca-file=/etc/kubernetes/pki/ca.crt" in flags
    assert not [n for n in result.notes if n.startswith("apiserver flags")]  # read, not "does not run as a pod"


@pytest.mark.parametrize("release", KUBEADM)
def test_the_faulted_static_pod_is_a_signal_of_its_own(release):
    verdict = apiserver.front_proxy_verdict(front_proxy_api(release, "-faulted"), apiserver_topology("master-1"))
    states = {o.signal: (o.state, o.detail) for o in verdict.observations}
    state, detail = states[STATIC_POD]
    assert state == "fault" and "--requestheader-client-ca-file=/etc/kubernetes/pki/ca.crt" in detail
    assert "--requestheader-allowed-names=aggregator" in detail
    assert verdict.result().finding.cause == "apiserver-requestheader-allowed-names"


@pytest.mark.parametrize("release", KUBEADM)
def test_kube_proxy_is_kubeadms_daemonset(release):
    daemonsets = model(release, "daemonsets.json", "V1DaemonSetList").items
    assert topology.kube_proxy_daemonset(daemonsets) == {
        "namespace": "kube-system", "name": "kube-proxy", "selector": {"k8s-app": "kube-proxy"}}
    assert topology.cni_agent(daemonsets) == ("other", None)  # the lab's native routing runs no agent


def daemonset_pods(release: str, name: str) -> dict[str, str]:
    """read_daemonset_pods over the recorded kube-system pods, selected as the API selects them."""
    def listed(namespace, label_selector):
        key, value = label_selector.split("=")
        return client.V1PodList(items=[p for p in pods(release, name) if (p.metadata.labels or {}).get(key) == value])

    cluster = SimpleNamespace(core=SimpleNamespace(list_namespaced_pod=listed))
    agent = {"namespace": "kube-system", "name": "kube-proxy", "selector": {"k8s-app": "kube-proxy"}}
    return read_daemonset_pods(cluster, agent, NODES)


def health(node: str, ok: bool) -> ProbeResult:
    return ProbeResult("kube-proxy", node, node, "127.0.0.1:10256", "ok" if ok else "refused",
                       "" if ok else "nc: Connection refused")


@pytest.mark.parametrize("release", KUBEADM)
def test_kube_proxys_pod_on_each_node_is_evidence(release):
    assert daemonset_pods(release, "pods.json") == dict.fromkeys(NODES, "")
    faulted = daemonset_pods(release, "pods-kube-proxy-faulted.json")
    assert faulted == {"master-1": "", "worker-1": "", "worker-2": "no kube-proxy pod on it"}
    trial = Trial("run", "ns", [], [], [health("master-1", True), health("worker-1", True),
                                        health("worker-2", False)], kube_proxy_pods=faulted)
    failed = trial.kube_proxy_result("worker-2")
    assert failed.finding.cause == "kube-proxy-not-forwarding"
    assert "kube-proxy DaemonSet on worker-2: no kube-proxy pod on it" in failed.finding.evidence


@pytest.mark.parametrize("release", KUBEADM)
def test_no_healthz_anywhere_is_a_verdict_where_the_daemonset_lacks_the_pod(release):
    """Where no node answers /healthz a CNI may have replaced kube-proxy: not checked, unless kube-proxy is a
    DaemonSet whose pod is missing on the node."""
    silent = [health(n, False) for n in NODES]
    pods_now = daemonset_pods(release, "pods-kube-proxy-faulted.json")
    faulted = Trial("run", "ns", [], [], silent, kube_proxy_pods=pods_now)
    assert faulted.kube_proxy_result("worker-2").finding.cause == "kube-proxy-not-forwarding"
    assert faulted.kube_proxy_result("worker-1").status == "not checked"  # its pod is ready: healthz moved?
    assert Trial("run", "ns", [], [], silent).kube_proxy_result("worker-2").status == "not checked"  # hard way

"""The kubeadm layout, brought up for real (`tox -e lab-kubeadm`): kubeadm's own init and join laid the
cluster out (static pods under each master's /etc/kubernetes/manifests, kube-proxy's DaemonSet and
CoreDNS's Deployment from kubeadm's addon phase, a front-proxy CA of its own), the suite signs it off
reading the apiserver's flags from its static pod and kube-proxy's pods, and `down` leaves nothing."""

import json
import time

import pytest
from kubernetes import client, config

from tests.e2e import shapes
from tests.e2e.conftest import lab

pytestmark = pytest.mark.lab

MIRROR = "kubernetes.io/config.mirror"  # the kubelet's annotation on the API's copy of a static pod


@pytest.fixture(scope="module")
def kubeadm_lab(lab_env):
    """The kubeadm lab; its last test takes it down (a module after this one brings up the shape it needs)."""
    shapes.ensure("kubeadm")
    api = config.new_client_from_config(lab_env["KUBECONFIG"])
    return client.CoreV1Api(api), client.AppsV1Api(api)


def test_kubeadm_laid_the_cluster_out(kubeadm_lab):
    core, apps = kubeadm_lab
    pods = core.list_namespaced_pod("kube-system").items
    static = {p.metadata.name for p in pods if MIRROR in (p.metadata.annotations or {})}
    assert static == {f"{c}-master-1" for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    proxy = apps.read_namespaced_daemon_set("kube-proxy", "kube-system").status
    assert proxy.number_ready == proxy.desired_number_scheduled == len(core.list_node().items)
    assert coredns_ready(apps) == (2, 2)  # kubeadm's replicas, with the lab's Corefile
    cluster = core.read_namespaced_config_map("kubeadm-config", "kube-system").data["ClusterConfiguration"]
    assert "controlPlaneEndpoint: 10.240.0.1:6443" in cluster
    endpoints = [(a.ip, p.port) for s in core.read_namespaced_endpoints("kubernetes", "default").subsets
                 for a in s.addresses for p in s.ports]
    assert endpoints == [("10.240.0.11", 6444)]
    authentication = core.read_namespaced_config_map("extension-apiserver-authentication", "kube-system").data
    assert json.loads(authentication["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert authentication["requestheader-client-ca-file"] != authentication["client-ca-file"]


def coredns_ready(apps, timeout: float = 60) -> tuple[int, int]:
    """(ready, wanted) replicas of kubeadm's CoreDNS, once all are ready or after timeout seconds: the lab is ready
    when DNS is available (one pod), the second may still be starting."""
    deadline = time.monotonic() + timeout
    while True:
        dns = apps.read_namespaced_deployment("coredns", "kube-system")
        shown = (dns.status.ready_replicas or 0, dns.spec.replicas)
        if shown[0] == shown[1] or time.monotonic() > deadline:
            return shown
        time.sleep(2)


def test_the_suite_signs_off_reading_the_static_pods(kubeadm_lab, run_suite):
    run = run_suite("-v")
    assert run.returncode == 0 and run.signoff["verdict"] == "SIGNED OFF", run.output[-3000:]
    front_proxy = next(c for c in run.signoff["checks"] if c["check"] == "test_front_proxy_settings")
    flags = front_proxy["read"]["apiserver flags (kube-apiserver-master-1, static pod)"]
    assert "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt" in flags
    assert "--requestheader-allowed-names=front-proxy-client" in flags
    assert front_proxy["notes"] == []  # nothing left unread: the flags come from the static pod
    assert "apiserver flags (kube-apiserver-master-1, static pod)" in (run.reports / "signoff.md").read_text()
    proxies = [c for c in run.signoff["checks"] if c["check"] == "test_kube_proxy_healthy"]
    assert len(proxies) == 3 and all(c["outcome"] == "passed" for c in proxies)


def test_down_leaves_nothing_of_kubeadm(kubeadm_lab):
    down = lab("down", check=False)
    assert down.returncode == 0, down.stderr  # `down` itself fails on any leftover it knows of
    assert "lab is down" in lab("status", check=False).stdout and "leftovers" not in lab("status", check=False).stdout
    assert not shapes.traces_left(), shapes.traces_left()[:3]

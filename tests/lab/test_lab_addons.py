"""What the lab deploys: DNS that never leaves the lab, probes that work with Debian's busybox."""

import json

from seatrials_lab.addons import COREFILE, coredns_objects, probe_objects
from seatrials_lab.layout import plan
from seatrials_lab.node import cni_config, kube_proxy_config, kubelet_config


def test_corefile_serves_the_cluster_domain_and_forwards_nowhere():
    assert "kubernetes cluster.local" in COREFILE
    assert "forward" not in COREFILE and "/etc/resolv.conf" not in COREFILE


def test_kube_dns_service_is_at_the_cluster_dns_address():
    service = next(o for o in coredns_objects("coredns:test") if o["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "10.32.0.10"


def test_probe_never_uses_wget_timeout_flag():
    """Debian's busybox 1.35 is built without wget -T and crashes on it."""
    assert "-T" not in json.dumps(probe_objects())


def test_kubelet_settings_the_causes_depend_on():
    master, worker = plan(1, 1)
    config = kubelet_config(worker, "i-0abc")
    assert config["kubeletCgroups"] == "/seatrials-lab/worker-1/system.slice"
    assert config["cgroupRoot"] == "/seatrials-lab/worker-1" and config["cgroupDriver"] == "cgroupfs"
    assert config["providerID"] == "aws:///us-east-1a/i-0abc"
    assert config["enableSystemLogHandler"] and config["enableSystemLogQuery"]
    assert config["failCgroupV1"] is False  # kubelets >= 1.35 refuse this cgroup v1 machine otherwise
    assert config["registerWithTaints"] == [] and kubelet_config(master, "i-1")["registerWithTaints"]


def test_node_network_settings():
    worker = plan(1, 1)[1]
    assert kube_proxy_config(worker)["conntrack"]["maxPerCore"] == 0
    bridge = cni_config(worker)["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.200.21.0/24"}]]

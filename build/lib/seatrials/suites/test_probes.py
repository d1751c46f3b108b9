"""Before any path is judged: a probe runs on every node, and the apiserver can
exec into it (apiserver -> kubelet on 10250). A node whose probe cannot run
(NotReady, its host port taken, admission refusing the probe, an image it
cannot pull) is its own failure, with the reason; a broken control channel is
its own failure too, never mistaken for a data-plane one."""

import pytest

pytestmark = pytest.mark.area("network")


@pytest.mark.cause("node-not-ready", "probe-image-unavailable", "probe-host-port-taken", "probe-admission-refused",
                   "unknown")
def test_probe_running(trial, node):
    return trial.probe_running(node.name)


@pytest.mark.cause("unknown")
def test_control_channel(trial, node):
    return trial.control_channel(node.name)


@pytest.mark.cause("network-policy-blocks-probes")
def test_no_network_policy_over_probes(trial):
    """No NetworkPolicy selects the pod-network probes: otherwise they measure the policy, not the network."""
    return trial.policies_result()


@pytest.mark.cause("cni-agent-down")
def test_cni_agent_running(trial, topology, node):
    """The CNI's agent (its DaemonSet's pod) runs on the node."""
    return trial.cni_agent_result(topology, node.name)


@pytest.mark.cause("kube-proxy-not-forwarding")
def test_kube_proxy_healthy(trial, node):
    """kube-proxy answers healthy on /healthz (127.0.0.1:10256) on the node, read by its host-network probe."""
    return trial.kube_proxy_result(node.name)

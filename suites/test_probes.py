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

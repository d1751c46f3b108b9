"""Before any path is judged: a probe runs on every node, and the apiserver can
exec into it (apiserver -> kubelet on 10250). A broken control channel is its
own failure, never mistaken for a data-plane one."""

import pytest


@pytest.mark.cause("unknown")
def test_probe_running(trial, node):
    trial.check_probe_running(node.name)


@pytest.mark.cause("unknown")
def test_control_channel(trial, node):
    trial.check_control_channel(node.name)

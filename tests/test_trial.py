"""Judging one cell of a measured trial: pass, fail with the diagnosed cause, or
"not checked" with the reason; never a silent pass."""

import pytest

from seatrials import causes
from seatrials.network import ControlChannel, ProbeResult
from seatrials.topology import Node, Topology
from seatrials.trial import Trial

TOPOLOGY = Topology([Node("master-1", "master", "10.240.0.11"), Node("worker-1", "worker", "10.240.0.21")],
                    ("10.32.0.1", 443), [("10.240.0.11", 6444)], "other")


def status(node, side, ready=True, reason="ready"):
    return {"node": node, "side": side, "pod": f"{side}-{node}", "ip": "x", "ready": ready, "reason": reason}


def trial(results, statuses=None, channels=None):
    statuses = statuses or [status(n, s) for n in ("master-1", "worker-1") for s in ("pod", "host")]
    channels = channels or [ControlChannel(n, s, f"{s}-{n}", True, "exec answered")
                            for n in ("master-1", "worker-1") for s in ("pod", "host")]
    t = Trial("run", "ns", statuses, channels, results, image="docker.io/library/busybox:1.36.1")
    return Trial.from_json(t.to_json())  # as xdist workers read it


def test_pass_fail_and_not_checked():
    t = trial([ProbeResult("pod-to-pod", "master-1", "worker-1", "a", "ok", "answered by p"),
               ProbeResult("pod-to-pod", "worker-1", "master-1", "b", "timeout", "nc: timed out", 3),
               ProbeResult("pod-to-pod", "worker-1", "worker-1", "c", "not-run", "exec into p failed: 500")])
    assert t.judge(TOPOLOGY, "pod-to-pod", "master-1", "worker-1").ok
    with pytest.raises(causes.CauseFailure) as failure:
        t.judge(TOPOLOGY, "pod-to-pod", "worker-1", "master-1")
    assert "pod-to-pod worker-1 -> master-1 (b): timeout after 3 tries" in str(failure.value)
    with pytest.raises(pytest.skip.Exception, match="not checked: exec into p failed: 500"):
        t.judge(TOPOLOGY, "pod-to-pod", "worker-1", "worker-1")
    with pytest.raises(pytest.skip.Exception, match="not checked: pod-to-pod master-1 -> master-1 was not part"):
        t.judge(TOPOLOGY, "pod-to-pod", "master-1", "master-1")


def test_a_probe_that_cannot_pull_its_image_says_which_and_how_to_mirror():
    t = trial([], statuses=[status("worker-1", "pod", False, "ImagePullBackOff: Back-off pulling image"),
                            status("worker-1", "host", True)])
    with pytest.raises(causes.CauseFailure) as failure:
        t.check_probe_running("worker-1")
    text = str(failure.value)
    assert "[cause: unknown]" in text and "ImagePullBackOff" in text
    assert "docker.io/library/busybox:1.36.1" in text and "--image-registry" in text


def test_a_broken_control_channel_is_its_own_failure():
    t = trial([], channels=[ControlChannel("worker-1", "pod", "p", False, "500 error dialing backend: dial tcp "
                                           "10.240.0.21:10250: i/o timeout")])
    with pytest.raises(causes.CauseFailure) as failure:
        t.check_control_channel("worker-1")
    assert "10250" in str(failure.value) and "i/o timeout" in str(failure.value)
    with pytest.raises(pytest.skip.Exception):
        t.check_control_channel("master-1")

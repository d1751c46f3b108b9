"""Judging one cell of a measured trial: passed, failed with the diagnosed cause, or
"not checked" with the reason; never a silent pass."""

import json

import pytest

from seatrials.network.paths import ControlChannel, ProbeResult
from seatrials.network.trial import Trial, load, obtain
from seatrials.topology import Node, Topology

TOPOLOGY = Topology([Node("master-1", "master", "10.240.0.11"), Node("worker-1", "worker", "10.240.0.21")],
                    ("10.32.0.1", 443), [("10.240.0.11", 6444)], "other")


def status(node, side, ready=True, reason="ready", cause="unknown", hint=""):
    return {"node": node, "side": side, "pod": f"{side}-{node}", "ip": "x", "ready": ready, "reason": reason,
            "cause": cause, "hint": hint}


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
    assert t.cell(TOPOLOGY, "pod-to-pod", "master-1", "worker-1").ok
    failed = t.cell(TOPOLOGY, "pod-to-pod", "worker-1", "master-1")
    assert failed.status == "failed" and "pod-to-pod worker-1 -> master-1 (b): timeout after 3 tries" in str(failed)
    assert str(t.cell(TOPOLOGY, "pod-to-pod", "worker-1", "worker-1")) == "not checked: exec into p failed: 500"
    assert t.cell(TOPOLOGY, "pod-to-pod", "master-1", "master-1").reason.startswith(
        "pod-to-pod master-1 -> master-1 was not part")
    assert t.cell(TOPOLOGY, "dns", "master-1", "kubernetes.default").reason == \
        "the cluster has no kube-system/kube-dns service"


def test_a_probe_that_cannot_pull_its_image_says_which_and_how_to_mirror():
    t = trial([], statuses=[status("worker-1", "pod", False, "ImagePullBackOff: Back-off pulling image",
                                   "probe-image-unavailable"), status("worker-1", "host", True)])
    result = t.probe_running("worker-1")
    text = str(result)
    assert "[cause: probe-image-unavailable]" in text and "ImagePullBackOff" in text
    assert "docker.io/library/busybox:1.36.1" in text and "--image-registry" in text


def test_a_node_that_is_not_ready_is_named_with_its_condition():
    why = "worker-1 NotReady since 2026-11-30 18:49:02Z: Kubelet stopped posting node status"
    t = trial([], statuses=[status("worker-1", side, False, why, "node-not-ready", "start the kubelet on worker-1")
                            for side in ("pod", "host")])
    text = str(t.probe_running("worker-1"))
    assert text.startswith("[cause: node-not-ready]") and why in text and "start the kubelet" in text
    assert t.probe_running("master-1").status == "not checked"  # no status at all is never a pass


def test_a_broken_control_channel_is_its_own_failure():
    t = trial([], channels=[ControlChannel("worker-1", "pod", "p", False, "500 error dialing backend: dial tcp "
                                           "10.240.0.21:10250: i/o timeout")])
    result = t.control_channel("worker-1")
    assert result.status == "failed" and "10250" in str(result) and "i/o timeout" in str(result)
    assert t.control_channel("master-1").status == "not checked"


def test_a_trial_written_row_by_row_reads_back_whole(tmp_path):
    t = Trial("run", "ns", [status("a", "pod")], [ControlChannel("a", "pod", "pod-a", True, "exec answered")],
              [ProbeResult("pod-to-pod", "a", "b", "10.200.1.2:9376", "timeout", "nc: timed out", 2)],
              policies=["NetworkPolicy ns/deny (ingress)"], window=(1.0, 2.0))
    t.write(tmp_path / "trial.json")
    back = Trial.from_json(json.loads((tmp_path / "trial.json").read_text()))
    assert back.to_json() == t.to_json() and back.results[0].tries == 2


def test_a_trial_is_written_for_the_other_processes_only_where_there_are_others(tmp_path):
    """xdist's workers and controller read the trial the first worker measured; a run of one process keeps its own
    (writing it took 8 s at 500 nodes)."""
    measured = trial([ProbeResult("pod-to-pod", "master-1", "worker-1", "a", "ok", "answered by p")])
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    alone.mkdir(), shared.mkdir()
    assert obtain(alone, lambda: measured, share=False) is measured and load(alone) is measured
    assert not list(alone.iterdir())
    assert obtain(shared, lambda: measured) is measured
    other_worker = obtain(shared, lambda: pytest.fail("measured twice"))
    assert other_worker.to_json() == measured.to_json() and (shared / "trial.json").exists()

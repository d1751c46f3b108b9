"""What the suite reads, as each Kubernetes minor it is proved on answers it: objects recorded from
the lab of each release (tests/data/versions/<release>/, tests/data/versions/record.py) fed
through seatrials' own parsing and judging. A minor whose shapes moved fails here first."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes import client

from seatrials import topology, versions
from seatrials.causes import Verdict
from seatrials.checks import apiserver, kubelet
from tests.test_kubelet import FakeNodeProxy, query

VERSIONS = Path(__file__).parent / "data" / "versions"
RECORDED = sorted(p.name for p in VERSIONS.iterdir() if (p / "version.json").exists())
LAB_RELEASES = Path(__file__).parents[1] / "lab" / "build" / "kubernetes" / "releases"
SESSION = "/user/9999.user/16.session"  # the lab's kubelet-cgroups fault


def recorded(release: str, name: str) -> str:
    path = VERSIONS / release / name
    return gzip.decompress(path.read_bytes()).decode() if name.endswith(".gz") else path.read_text()


def model(release: str, name: str, kind: str):
    """A recorded answer as the kubernetes client's model object, as the suite receives it."""
    return client.ApiClient().deserialize(SimpleNamespace(data=recorded(release, name)), kind)


def kubelet_proxy(release: str, state: str = "") -> FakeNodeProxy:
    """worker-1's kubelet answering as it did on the recorded lab."""
    return FakeNodeProxy({
        query("kubelet"): recorded(release, f"kubelet-query{state}.txt"),
        query("kubelet", tail=False): recorded(release, f"kubelet{state}.log.gz"),
        ("stats/summary", ()): recorded(release, f"stats-summary{state}.json"),
        ("configz", ()): recorded(release, f"configz{state}.json"),
    })


def test_every_proved_minor_is_pinned_by_the_lab_and_recorded():
    pinned = [line.split()[0] for line in LAB_RELEASES.read_text().splitlines() if line and line[0] != "#"]
    assert sorted(pinned, key=lambda m: tuple(map(int, m.split(".")))) == list(map(versions.shown,
                                                                                    versions.PROVED_MINORS))
    assert sorted(versions.minor_of(r) for r in RECORDED) == list(versions.PROVED_MINORS)


@pytest.mark.parametrize("release", RECORDED)
def test_version_is_proved(release):
    git_version = json.loads(recorded(release, "version.json"))["gitVersion"]
    assert git_version == release and versions.unproved(git_version) is None


@pytest.mark.parametrize("release", RECORDED)
def test_nodes_roles_addresses_and_readiness(release):
    items = model(release, "nodes.json", "V1NodeList").items
    nodes = {n.name: n for n in (topology.to_node(item, topology.role_of(item, None)) for item in items)}
    assert nodes["master-1"].is_master and not nodes["worker-1"].is_master
    assert (nodes["master-1"].internal_ip, nodes["master-1"].pod_cidrs) == ("10.240.0.11", ("10.200.11.0/24",))
    assert nodes["worker-1"].provider_id.startswith("aws:///us-east-1a/i-")
    assert all(n.ready for n in nodes.values())


@pytest.mark.parametrize("release", RECORDED)
def test_the_apiserver_endpoint_is_the_real_port(release):
    slices = model(release, "endpointslices.json", "V1EndpointSliceList").items
    assert topology.slice_endpoints(slices) == [("10.240.0.11", 6444)]


@pytest.mark.parametrize("release", RECORDED)
def test_front_proxy_settings_healthy_and_faulted(release):
    healthy = json.loads(recorded(release, "extension-apiserver-authentication.json"))["data"]
    faulted = json.loads(recorded(release, "extension-apiserver-authentication-faulted.json"))["data"]
    assert apiserver.judge_authentication_config(healthy)[0] == "ok"
    state, detail = apiserver.judge_authentication_config(faulted)
    assert state == "fault" and "allowed names [aggregator]" in detail


@pytest.mark.parametrize("release", RECORDED)
def test_apiserver_log_since_its_start(release):
    for name in ("kube-apiserver.log.gz", "kube-apiserver-faulted.log.gz"):
        log = kubelet.LogTail(name, kubelet.tail(recorded(release, name)))
        lines, started = log.since_start()
        assert started is not None and f"Version: {release}" in lines[0], name
        state, _ = apiserver.judge_log(log)
        assert state == "ok", name  # kube-apiserver logs the refusal only when no other authenticator accepts


@pytest.mark.parametrize("release", RECORDED)
def test_node_log_query_finds_the_kubelet_log_file(release):
    log = kubelet.service_log(kubelet_proxy(release), "worker-1", "kubelet", ())
    assert log.source == "node log query ?query=kubelet (log file found by the query)"
    lines, started = log.since_start()
    assert started is not None and "Kubelet version" in lines[0] and release in lines[0]


@pytest.mark.parametrize("release", RECORDED)
def test_healthy_kubelet_passes(release):
    verdict = kubelet.cgroups_verdict(kubelet_proxy(release), "worker-1")
    assert [(o.signal, o.state) for o in verdict.observations] == [("kubelet log", "ok"), ("stats/summary", "ok")]
    configz = Verdict("kubelet-cgroups")  # asked only to corroborate a fault: its shape is still read the same
    kubelet.configz_signal(configz, kubelet_proxy(release), "worker-1", corroborated=False, other_readable=True)
    assert [(o.signal, o.state) for o in configz.observations] == [("configz", "ok")]
    assert "kubeletCgroups=/seatrials-lab/worker-1/system.slice" in configz.observations[0].detail


@pytest.mark.parametrize("release", RECORDED)
def test_kubelet_in_a_login_session_is_the_fault(release):
    errors = kubelet.system_stats_errors(kubelet.tail(recorded(release, "kubelet-faulted.log.gz")))
    assert errors and {e.cgroup for e in errors} == {SESSION} and all(e.stamp for e in errors)
    verdict = kubelet.cgroups_verdict(kubelet_proxy(release, "-faulted"), "worker-1")
    assert [(o.signal, o.state) for o in verdict.observations] == [
        ("kubelet log", "fault"), ("stats/summary", "fault"), ("configz", "fault")]
    assert f"naming cgroup {SESSION}" in verdict.observations[0].detail


@pytest.mark.parametrize("release", RECORDED)
def test_errors_before_the_healing_restart_do_not_count(release):
    log = kubelet.LogTail("healed", kubelet.tail(recorded(release, "kubelet-healed.log.gz")))
    lines, started = log.since_start()
    assert kubelet.system_stats_errors(log.lines) and not kubelet.system_stats_errors(lines) and started

"""The shape of the failure matrix chooses the cause; nothing else is blamed."""

import pytest

from seatrials.diagnosis import diagnose
from tests import simulate as sim

THREE_MASTERS = ["master-1", "master-2", "master-3"]


def causes_of(diagnosis):
    return {f.cause for f in diagnosis.findings.values()}


def run(blocked, masters=sim.MASTERS, workers=sim.WORKERS, **kw):
    results = sim.results(blocked, masters, workers, **kw)
    return results, diagnose(results, sim.roles(masters, workers), kw.get("dns_nodes", ["worker-1"]))


def test_healthy_cluster_has_no_finding():
    _, d = run(sim.healthy)
    assert d.findings == {} and d.patterns == []


@pytest.mark.parametrize("with_check", [{"worker-1"}, {"worker-2"}, {"master-1"}, {"worker-1", "worker-2"},
                                        {"master-1", "worker-1", "worker-2"}])
def test_source_dest_check_is_named_for_every_failed_path(with_check):
    results, d = run(sim.source_dest_check(with_check))
    failed = [r for r in results if not r.ok]
    assert failed and all(d.finding(r.kind, r.source, r.target) for r in failed)
    assert causes_of(d) == {"ec2-source-dest-check"}
    summary = next(p.summary for p in d.patterns if p.cause == "ec2-source-dest-check")
    assert all(n in summary for n in with_check)


@pytest.mark.parametrize("masters", [sim.MASTERS, THREE_MASTERS])
def test_master_inbound_rule_is_named(masters):
    roles = sim.roles(masters, sim.WORKERS)
    results, d = run(sim.master_inbound(roles), masters=masters)
    assert causes_of(d) == {"sg-master-inbound-from-nodes"}
    f = d.finding("host-to-pod", "worker-1", masters[0])
    assert f and "workers cannot reach pods on masters" in f.evidence[1]


def test_master_inbound_is_not_confused_with_a_source_dest_check_on_masters():
    _, d = run(sim.source_dest_check({"master-1"}))
    assert causes_of(d) == {"ec2-source-dest-check"}


@pytest.mark.parametrize("masters", [sim.MASTERS, THREE_MASTERS])
def test_apiserver_port_blocked_for_workers(masters):
    roles = sim.roles(masters, sim.WORKERS)
    eps = [f"10.240.0.1{i + 1}:6444" for i in range(len(masters))]
    results, d = run(sim.apiserver_port(roles), masters=masters, endpoints=eps)
    assert causes_of(d) == {"sg-node-to-apiserver"}
    f = d.finding("pod-to-service", "worker-2", "10.32.0.1:443")
    assert f.cause == "sg-node-to-apiserver" and "6444" in f.evidence[1]


def test_clusterip_failing_while_endpoints_answer_is_kube_proxy_not_a_security_group():
    _, d = run(sim.kube_proxy_broken_on("worker-2"))
    f = d.finding("pod-to-service", "worker-2", "10.32.0.1:443")
    assert f.cause == "unknown" and "kube-proxy" in f.hint
    assert causes_of(d) == {"unknown"}


def test_an_unexplained_column_is_unknown_with_an_ingress_hint():
    def blocked(kind, src, dst):  # worker-2 drops everything on the host-probe port only
        return kind in ("host-to-host", "pod-to-node") and dst == "worker-2"
    _, d = run(blocked)
    assert causes_of(d) == {"unknown"}
    hint = d.finding("host-to-host", "master-1", "worker-2").hint
    assert "to worker-2" in hint and "ingress" in hint


def test_dns_failure_follows_the_pod_path_it_needs():
    results, d = run(sim.source_dest_check({"worker-1"}), dns_nodes=["worker-1"])
    dns_failures = [r for r in results if r.kind == "dns" and not r.ok]
    assert dns_failures
    assert {d.finding("dns", r.source, r.target).cause for r in dns_failures} == {"ec2-source-dest-check"}


def test_corroboration_lines_are_attached_when_aws_agrees():
    results = sim.results(sim.source_dest_check({"worker-1"}))

    def corroborate(cause, nodes):
        return (["AWS: sourceDestCheck is true on i-1 (worker-1)"], "") if "worker-1" in nodes else ([], "")

    d = diagnose(results, sim.roles(), ["worker-1"], corroborate)
    f = d.finding("host-to-pod", "master-1", "worker-1")
    assert f.corroboration == ["AWS: sourceDestCheck is true on i-1 (worker-1)"]
    assert "corroborated by" in f.message()


def test_dns_failing_because_its_pods_cannot_reach_the_apiserver():
    roles = sim.roles()
    port_blocked = sim.apiserver_port(roles)

    def blocked(kind, src, dst):  # CoreDNS on worker-1 lost the apiserver: every lookup fails
        return kind == "dns" or port_blocked(kind, src, dst)

    results, d = run(blocked, dns_nodes=["worker-1"])
    assert causes_of(d) == {"sg-node-to-apiserver"}
    assert d.finding("dns", "master-1", "kubernetes.default").cause == "sg-node-to-apiserver"

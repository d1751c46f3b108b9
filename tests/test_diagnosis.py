"""The shape of the failure matrix, weighed with the evidence, chooses the cause; a documented cause is
named only on its own evidence, and what the evidence cannot tell apart is "unknown" with the candidates."""

import pytest

from seatrials.network.diagnosis import diagnose
from tests import simulate as sim

THREE_MASTERS = ["master-1", "master-2", "master-3"]
NODES = [*sim.MASTERS, *sim.WORKERS]


def causes_of(diagnosis):
    return {p.cause for p in diagnosis.explained.values()}


def run(blocked, masters=sim.MASTERS, workers=sim.WORKERS, evidence=None, **kw):
    results = sim.results(blocked, masters, workers, **kw)
    ev = evidence or sim.evidence(masters, workers, dns_nodes=list(kw.get("dns_nodes", ["worker-1"])))
    return results, diagnose(results, ev)


def test_healthy_cluster_has_no_finding():
    _, d = run(sim.healthy)
    assert d.explained == {} and d.patterns == []


# ---------------------------------------------------------------- pod IPs of a node unreachable
@pytest.mark.parametrize("with_check", [{"worker-1"}, {"worker-2"}, {"master-1"}, {"worker-1", "worker-2"},
                                        {"master-1", "worker-1", "worker-2"}])
def test_source_dest_check_is_named_when_ec2_says_it_is_on(with_check):
    ev = sim.evidence(aws=sim.aws_facts(NODES, check_on=with_check))
    results, d = run(sim.source_dest_check(with_check), evidence=ev)
    failed = [r for r in results if not r.ok]
    assert failed and all(d.finding(r.kind, r.source, r.target) for r in failed)
    assert causes_of(d) == {"ec2-source-dest-check"}
    summary = next(p.summary for p in d.patterns if p.cause == "ec2-source-dest-check")
    assert all(n in summary for n in with_check)


def test_a_missing_pod_route_with_the_check_off_everywhere_is_never_the_check():
    """The field of the issue: worker-2's pod CIDR missing on two nodes, EC2 says the check is off."""
    ev = sim.evidence(routes_missing={"master-1": ["worker-2"], "worker-1": ["worker-2"]},
                      aws=sim.aws_facts(NODES, check_on=()))
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=ev)
    assert causes_of(d) == {"pod-route-missing"}
    f = d.finding("host-to-pod", "master-1", "worker-2")
    assert "master-1 has no route to 10.200.22.0/24 (worker-2's pods)" in "\n".join(f.evidence)


def test_the_check_off_everywhere_and_routes_sound_is_unknown_with_the_check_ruled_out():
    ev = sim.evidence(aws=sim.aws_facts(NODES, check_on=()))
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=ev)
    assert causes_of(d) == {"unknown"}
    f = d.finding("host-to-pod", "worker-1", "worker-2")
    assert any(e.startswith("ruled out: ec2-source-dest-check (AWS: sourceDestCheck is off") for e in f.evidence)
    assert "host firewall of worker-2" in f.hint


def test_nodes_alike_share_one_pattern_whose_hint_names_them_all():
    """Nodes whose pod IPs nobody reaches, for no reason the evidence tells apart, are one pattern: one summary and
    one hint naming them all (at 500 nodes a pattern and a hint each, naming one node, filled a report's page)."""
    masters, bad = ["master-1", "master-2", "master-3"], {"master-3", "worker-1", "worker-2"}
    ev = sim.evidence(masters, sim.WORKERS, aws=sim.aws_facts([*masters, *sim.WORKERS], check_on=()))
    _, d = run(sim.source_dest_check(bad), masters=masters, evidence=ev)
    (p,) = [p for p in d.patterns if p.summary.startswith("pod IPs")]  # DNS on worker-1 fails besides
    assert p.cause == "unknown" and p.summary.startswith("pod IPs on master-3, worker-1, worker-2 are unreachable")
    assert "host firewall of master-3, worker-1, worker-2 (" in p.hint and "{" not in p.hint
    assert set(p.node_because) == bad  # what rules a cause out stays said of each node


def test_under_an_overlay_the_check_is_ruled_out():
    ev = sim.evidence(tunnel="flannel.1", aws=sim.aws_facts(NODES, check_on={"worker-2"}))
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=ev)
    assert "ec2-source-dest-check" not in causes_of(d)
    assert "the CNI encapsulates pod traffic" in "\n".join(d.finding("host-to-pod", "worker-1", "worker-2").evidence)


def test_without_aws_the_check_is_only_a_candidate_with_the_command_that_tells():
    """The pattern fits the check and a host firewall on the node alike: only EC2's answer names it."""
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=sim.evidence())
    f = d.finding("host-to-pod", "master-1", "worker-2")
    assert f.cause == "unknown" and "AWS was not read for this run (no creds)" in f.evidence
    assert f.hint.startswith("candidates: ec2-source-dest-check; look at aws ec2 describe-instance-attribute")


def test_without_aws_and_without_routes_it_is_unknown_with_both_candidates_and_commands():
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=sim.evidence(read_routes=False))
    f = d.finding("host-to-pod", "master-1", "worker-2")
    assert f.cause == "unknown"
    assert "candidates: ec2-source-dest-check, pod-route-missing" in f.hint
    assert "aws ec2 describe-instance-attribute" in f.hint and "ip route get" in f.hint


def test_a_cni_agent_down_is_named_before_routes_and_the_check():
    ev = sim.evidence(cni="flannel", cni_agents={"master-1": "", "worker-1": "",
                                                 "worker-2": "kube-flannel-ds pod kube-flannel-ds-x is not ready"},
                      aws=sim.aws_facts(NODES, check_on={"worker-2"}))
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=ev)
    assert causes_of(d) == {"cni-agent-down"}


def test_a_cni_agent_down_over_a_tunnel_also_cuts_its_hosts_way_to_other_pods():
    ev = sim.evidence(tunnel="flannel.1", cni="flannel", cni_agents={"master-1": "", "worker-1": "",
                                                                      "worker-2": "no kube-flannel-ds pod on it"},
                      aws=sim.aws_facts(NODES))
    results, d = run(sim.node_cut_off("worker-2"), evidence=ev)
    assert causes_of(d) == {"cni-agent-down"}
    assert {(r.kind, r.source, r.target) for r in results if r.outcome != "ok"} == set(d.explained)
    assert d.finding("host-to-pod", "worker-2", "master-1").cause == "cni-agent-down"


def test_a_node_whose_host_gw_agent_is_gone_reaches_no_pod_and_is_named():
    """host-gw: worker-2's flanneld gone with its routes; the others still route its pod CIDR to it, so
    their hosts reach its pods, and only what worker-2 sends towards other pods is lost."""
    others = [n for n in NODES if n != "worker-2"]
    ev = sim.evidence(routes_missing={"worker-2": others}, cni="flannel",
                      cni_agents={"master-1": "", "worker-1": "", "worker-2": "no kube-flannel-ds pod on it"},
                      aws=sim.aws_facts(NODES))
    results, d = run(sim.own_routes_gone("worker-2"), evidence=ev)
    assert causes_of(d) == {"cni-agent-down"}
    assert {(r.kind, r.source, r.target) for r in results if r.outcome != "ok"} == set(d.explained)
    assert "worker-2 reach no pod on another node" in d.finding("pod-to-pod", "master-1", "worker-2").evidence[1]


def test_a_node_without_its_own_pod_routes_is_named_from_its_routes():
    others = [n for n in NODES if n != "worker-2"]
    ev = sim.evidence(routes_missing={"worker-2": others}, aws=sim.aws_facts(NODES))
    _, d = run(sim.own_routes_gone("worker-2"), evidence=ev)
    assert causes_of(d) == {"pod-route-missing"}
    f = d.finding("host-to-pod", "worker-2", "worker-1")
    assert "worker-2 has no route to 10.200.11.0/24, 10.200.21.0/24 (the other nodes' pods)" in "\n".join(f.evidence)


def test_a_node_without_routes_to_many_names_the_first_few_and_counts_the_rest():
    workers = [f"worker-{i}" for i in range(1, 8)]
    nodes = [*sim.MASTERS, *workers]
    ev = sim.evidence(workers=workers, routes_missing={"worker-2": [n for n in nodes if n != "worker-2"]},
                      aws=sim.aws_facts(nodes))
    _, d = run(sim.own_routes_gone("worker-2"), workers=workers, evidence=ev)
    f = d.finding("host-to-pod", "worker-2", "worker-1")
    assert ("worker-2 has no route to 10.200.11.0/24, 10.200.21.0/24, 10.200.23.0/24, 10.200.24.0/24 and 3 more (the "
            "other nodes' pods)") in "\n".join(f.evidence)


def test_a_node_reaching_no_pod_with_its_routes_sound_is_unknown_and_never_the_check():
    ev = sim.evidence(aws=sim.aws_facts(NODES, check_on=()))
    _, d = run(sim.own_routes_gone("worker-2"), evidence=ev)
    assert causes_of(d) == {"unknown"}
    assert "ip route on worker-2" in d.finding("host-to-pod", "worker-2", "master-1").hint


# ---------------------------------------------------------------- security groups: EC2 decides when read
@pytest.mark.parametrize("masters", [sim.MASTERS, THREE_MASTERS])
def test_master_inbound_rule_is_named_when_ec2_drops_it(masters):
    roles = sim.roles(masters, sim.WORKERS)
    found = [("sg-master-inbound-from-nodes", f"worker-1->{masters[0]}", "no inbound rule ...")]
    ev = sim.evidence(masters, aws=sim.aws_facts([*masters, *sim.WORKERS], findings=found))
    _, d = run(sim.master_inbound(roles), masters=masters, evidence=ev)
    assert causes_of(d) == {"sg-master-inbound-from-nodes"}
    f = d.finding("host-to-pod", "worker-1", masters[0])
    assert "workers cannot reach pods on masters" in f.evidence[1] and f.corroboration


@pytest.mark.parametrize("masters", [sim.MASTERS, THREE_MASTERS])
def test_master_inbound_over_a_tunnel_fails_both_ways_and_is_named_when_ec2_drops_it(masters):
    """Over VXLAN a worker's pod answering a master's is a tunnel packet from the worker too: lost."""
    roles = sim.roles(masters, sim.WORKERS)
    found = [("sg-master-inbound-from-nodes", f"{w}->{m}", f"no inbound rule of {m}'s groups allows udp 8472")
             for w in sim.WORKERS for m in masters]
    ev = sim.evidence(masters, tunnel="flannel.1", aws=sim.aws_facts([*masters, *sim.WORKERS], findings=found))
    results, d = run(sim.master_inbound_over_tunnel(roles), masters=masters, evidence=ev)
    assert causes_of(d) == {"sg-master-inbound-from-nodes"}
    assert d.finding("pod-to-pod", masters[0], "worker-2").cause == "sg-master-inbound-from-nodes"
    assert {(r.kind, r.source, r.target) for r in results if r.outcome != "ok"} == set(d.explained)


def test_master_inbound_over_a_tunnel_with_ec2_admitting_it_is_not_the_security_group():
    ev = sim.evidence(tunnel="flannel.1", aws=sim.aws_facts(NODES))
    _, d = run(sim.master_inbound_over_tunnel(sim.roles()), evidence=ev)
    assert causes_of(d) == {"unknown"}


SUBNETS = {"master-1": "subnet-m", "worker-1": "subnet-w", "worker-2": "subnet-w"}
ROUTE_FINDINGS = [("cross-subnet-native-routing", f"{a}->{b}", f"route table rtb-1 has no route for {b}'s pods")
                  for a in NODES for b in NODES if SUBNETS[a] != SUBNETS[b]]


def test_pod_ips_failing_across_subnets_without_vpc_routes_is_cross_subnet_routing():
    ev = sim.evidence(aws=sim.aws_facts(NODES, findings=ROUTE_FINDINGS, subnets=SUBNETS), dns_nodes=["worker-1"])
    results, d = run(sim.across_subnets(SUBNETS), evidence=ev)
    assert causes_of(d) == {"cross-subnet-native-routing"}
    assert {(r.kind, r.source, r.target) for r in results if r.outcome != "ok"} == set(d.explained)
    f = d.finding("pod-to-pod", "worker-1", "master-1")
    assert "pod IPs fail between nodes of different subnets" in f.evidence[1]
    assert any("route table rtb-1 has no route" in line for line in f.evidence)


@pytest.mark.parametrize("facts", [None, sim.aws_facts(NODES, subnets=SUBNETS)], ids=["aws-not-read", "routes-ok"])
def test_the_same_failures_without_ec2_saying_the_routes_are_missing_are_not_cross_subnet_routing(facts):
    _, d = run(sim.across_subnets(SUBNETS), evidence=sim.evidence(aws=facts))
    assert "cross-subnet-native-routing" not in causes_of(d)


def test_route_findings_do_not_claim_failures_they_do_not_predict():
    """EC2 says worker-2's pods are unroutable from subnet-m, but the probes reach them: something else."""
    found = [("cross-subnet-native-routing", "master-1->worker-2", "no route")]
    ev = sim.evidence(aws=sim.aws_facts(NODES, findings=found, subnets=SUBNETS))
    _, d = run(sim.source_dest_check({"worker-1"}), evidence=ev)
    assert "cross-subnet-native-routing" not in causes_of(d)


def test_master_inbound_shape_with_ec2_admitting_it_is_not_the_security_group():
    _, d = run(sim.master_inbound(sim.roles()), evidence=sim.evidence(aws=sim.aws_facts(NODES)))
    assert causes_of(d) == {"unknown"}
    f = d.finding("host-to-pod", "worker-1", "master-1")
    assert "ruled out: sg-master-inbound-from-nodes" in f.evidence[2] and "host firewall" in f.hint


def test_master_inbound_without_aws_is_a_candidate_not_a_verdict():
    _, d = run(sim.master_inbound(sim.roles()))
    f = d.finding("host-to-pod", "worker-1", "master-1")
    assert f.cause == "unknown" and f.hint.startswith("candidates: sg-master-inbound-from-nodes; look at the "
                                                      "security groups")


def test_master_inbound_is_not_confused_with_a_source_dest_check_on_masters():
    ev = sim.evidence(aws=sim.aws_facts(NODES, check_on={"master-1"}))
    _, d = run(sim.source_dest_check({"master-1"}), evidence=ev)
    assert causes_of(d) == {"ec2-source-dest-check"}


@pytest.mark.parametrize("masters", [sim.MASTERS, THREE_MASTERS])
def test_apiserver_port_blocked_for_workers(masters):
    roles = sim.roles(masters, sim.WORKERS)
    eps = [f"10.240.0.1{i + 1}:6444" for i in range(len(masters))]
    found = [("sg-node-to-apiserver", f"worker-1->{eps[0]}", "no inbound rule ...")]
    ev = sim.evidence(masters, aws=sim.aws_facts([*masters, *sim.WORKERS], findings=found))
    results, d = run(sim.apiserver_port(roles), masters=masters, endpoints=eps, evidence=ev)
    assert causes_of(d) == {"sg-node-to-apiserver"}
    f = d.finding("pod-to-service", "worker-2", "10.32.0.1:443")
    assert f.cause == "sg-node-to-apiserver" and "6444" in f.evidence[1]


# ---------------------------------------------------------------- kube-proxy, DNS, policies
def test_clusterip_failing_while_endpoints_answer_with_kube_proxy_down_is_kube_proxy():
    ev = sim.evidence(kube_proxy={"master-1": "", "worker-1": "", "worker-2": "refused: nc: Connection refused"})
    _, d = run(sim.kube_proxy_broken_on("worker-2"), evidence=ev)
    assert causes_of(d) == {"kube-proxy-not-forwarding"}
    for cell in (("pod-to-service", "worker-2", "10.32.0.1:443"), ("external-ip", "worker-2", "worker-1"),
                 ("dns", "worker-2", "kubernetes.default")):  # what it forwards for the node follows it
        assert d.finding(*cell).cause == "kube-proxy-not-forwarding", cell


def test_nodes_whose_kube_proxy_is_down_alike_share_one_pattern():
    """Service forwarding gone on several nodes for the same reason is one pattern naming them all, while each
    node's own kube-proxy reading stays with that node's cells."""
    down = {"worker-1": "refused: nc: Connection refused", "worker-2": "refused: nc: Connection refused"}
    ev = sim.evidence(kube_proxy={"master-1": "", **down})
    _, d = run(lambda kind, src, dst: any(sim.kube_proxy_broken_on(n)(kind, src, dst) for n in down), evidence=ev)
    (p,) = d.patterns
    assert p.cause == "kube-proxy-not-forwarding" and p.summary.startswith("from worker-1, worker-2 the kubernetes")
    f = d.finding("pod-to-service", "worker-2", "10.32.0.1:443")
    assert "kube-proxy /healthz on worker-2: refused: nc: Connection refused" in f.evidence
    assert not any("on worker-1" in e for e in f.evidence)


def test_clusterip_failing_with_kube_proxy_healthy_is_unknown_pointing_at_its_rules():
    _, d = run(sim.kube_proxy_broken_on("worker-2"))
    f = d.finding("pod-to-service", "worker-2", "10.32.0.1:443")
    assert f.cause == "unknown" and "KUBE-SVC" in f.hint and "ClusterIP on worker-2 (" in f.hint


def test_no_ready_dns_endpoint_is_cluster_dns():
    def blocked(kind, src, dst):
        return kind == "dns"
    _, d = run(blocked, evidence=sim.evidence(dns_ready=0))
    assert causes_of(d) == {"cluster-dns-unavailable"}
    assert "kube-system/kube-dns has no ready endpoint" in "\n".join(
        d.finding("dns", "master-1", "kubernetes.default").evidence)


def test_no_dns_endpoint_because_every_coredns_node_is_not_ready_is_that_node():
    ev = sim.evidence(dns_ready=0, dns_nodes=["worker-1"], unready={"worker-1": "NotReady since 10:02"})
    _, d = run(lambda kind, src, dst: kind == "dns", evidence=ev)
    assert causes_of(d) == {"node-not-ready"}
    assert "worker-1: NotReady since 10:02" in d.finding("dns", "master-1", "kubernetes.default").evidence


def test_dns_failure_follows_the_pod_path_it_needs():
    ev = sim.evidence(aws=sim.aws_facts(NODES, check_on={"worker-1"}))
    results, d = run(sim.source_dest_check({"worker-1"}), dns_nodes=["worker-1"], evidence=ev)
    dns_failures = [r for r in results if r.kind == "dns" and not r.ok]
    assert dns_failures
    assert {d.finding("dns", r.source, r.target).cause for r in dns_failures} == {"ec2-source-dest-check"}


def test_dns_failing_because_its_pods_cannot_reach_the_apiserver():
    roles = sim.roles()
    port_blocked = sim.apiserver_port(roles)

    def blocked(kind, src, dst):  # CoreDNS on worker-1 lost the apiserver: every lookup fails
        return kind == "dns" or port_blocked(kind, src, dst)

    found = [("sg-node-to-apiserver", "worker-1->10.240.0.11:6444", "no inbound rule ...")]
    _, d = run(blocked, dns_nodes=["worker-1"], evidence=sim.evidence(aws=sim.aws_facts(NODES, findings=found)))
    assert causes_of(d) == {"sg-node-to-apiserver"}
    assert d.finding("dns", "master-1", "kubernetes.default").cause == "sg-node-to-apiserver"


def test_a_network_policy_over_the_probes_is_named_not_the_network():
    ev = sim.evidence(policies=["NetworkPolicy seatrials/default-deny (ingress, egress)"],
                      aws=sim.aws_facts(NODES, check_on={"worker-2"}))
    _, d = run(sim.source_dest_check({"worker-2"}), evidence=ev)
    assert causes_of(d) == {"network-policy-blocks-probes"}


def test_an_unexplained_column_is_unknown_with_an_ingress_hint():
    def blocked(kind, src, dst):  # worker-2 drops everything on the host-probe port only
        return kind in ("host-to-host", "pod-to-node") and dst == "worker-2"
    _, d = run(blocked)
    assert causes_of(d) == {"unknown"}
    hint = d.finding("host-to-host", "master-1", "worker-2").hint
    assert "to worker-2" in hint and "ingress" in hint


def test_an_external_ip_that_happened_to_get_through_does_not_overturn_the_pattern():
    route_missing = sim.source_dest_check({"worker-2"})

    def blocked(kind, src, dst):  # load-balanced: worker-1's requests happened to reach worker-2's pod
        return False if (kind, src, dst) == ("external-ip", "worker-1", "worker-2") else route_missing(kind, src, dst)

    ev = sim.evidence(routes_missing={"master-1": ["worker-2"], "worker-1": ["worker-2"]},
                      aws=sim.aws_facts(NODES, check_on=()))
    _, d = run(blocked, evidence=ev)
    assert causes_of(d) == {"pod-route-missing"}


def test_whole_failing_rows_are_named_as_a_run_of_nodes():
    """What no pattern explains points at the rows and columns that fail whole, naming the nodes as a person
    reads them (at 500 nodes, a list of every one of them made the hint a page long)."""
    workers = [f"worker-{i}" for i in range(1, 7)]
    _, d = run(lambda kind, src, dst: kind == "pod-to-node" and src in workers[:4], workers=workers)
    (p,) = d.patterns
    assert p.cause == "unknown"
    assert "pod-to-node: everything from worker-1 to worker-4 fails (look at that source's egress" in p.hint


def test_a_rows_targets_share_a_finding_unless_the_evidence_says_something_of_one_of_them():
    """A source's row reads each failed target's finding beyond the cell's own line: the same for targets the
    evidence says nothing particular of (at 500 failing nodes a Finding a cell was 14 s of a run's checks)."""
    workers = [f"worker-{i}" for i in range(1, 7)]
    nodes = [*sim.MASTERS, *workers]
    targets = [n for n in nodes if n != "master-1"]
    for ev, shared in ((sim.evidence(workers=workers, read_routes=False), True),  # the same said of every node
                       (sim.evidence(workers=workers, aws=sim.aws_facts(nodes, check_on={"worker-1"})), False)):
        _, d = run(sim.source_dest_check(set(nodes)), workers=workers, evidence=ev)
        row = d.row_findings("pod-to-pod", "master-1", targets)
        for target, f in zip(targets, row, strict=True):
            assert f.evidence == d.finding("pod-to-pod", "master-1", target).evidence[1:], target
        assert len({id(f) for f in row}) == (1 if shared else len(targets))

"""How node pairs become test cases (seatrials.network.cases): one case per ordered pair up to
--pair-cases-up-to nodes, one per source node above it (its failure lists every failed target);
--pairs sample:K draws targets per source from the run id, always covering every node as a source
and as another node's target, and every master as a target of every source."""

import pytest

from seatrials.causes import FAILED, NOT_CHECKED, PASSED
from seatrials.network import cases, paths
from seatrials.network.paths import ProbePod, ProbeResult
from seatrials.network.trial import Trial
from seatrials.options import BadOption, Settings, parse_pairs
from seatrials.topology import Everyone, Node, Topology
from tests import simulate as sim

pytest_plugins = ["pytester"]

MASTERS = [f"master-{i}" for i in range(1, 4)]
WORKERS = [f"worker-{i}" for i in range(1, 98)]


def topology(masters=MASTERS, workers=WORKERS) -> Topology:
    nodes = [Node(m, "master", f"10.240.0.{11 + i}") for i, m in enumerate(masters)]
    nodes += [Node(w, "worker", f"10.240.{1 + i // 200}.{20 + i % 200}") for i, w in enumerate(workers)]
    return Topology(nodes, ("10.32.0.1", 443), [("10.240.0.11", 6444)], "other")


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("k", [1, 3, 8])
def test_a_sample_covers_every_node_as_source_and_as_anothers_target_and_every_master_from_everywhere(k):
    nodes = MASTERS + WORKERS
    drawn = cases.sample(nodes, MASTERS, k, seed="20261130-230000-ab12")
    assert set(drawn) == set(nodes)  # every node is a source
    assert all(s not in targets for s, targets in drawn.items())  # a node's own probe is made besides
    probed_by_another = set().union(*drawn.values())
    assert probed_by_another == set(nodes)
    for s, targets in drawn.items():
        assert set(MASTERS) - {s} <= targets
        assert len(targets - set(MASTERS)) >= k
    assert sum(len(t) for t in drawn.values()) < len(nodes) * (len(MASTERS) + k + 2)  # linear, not N^2


def test_a_sample_is_repeatable_from_its_seed_and_differs_with_another():
    nodes = MASTERS + WORKERS
    assert cases.sample(nodes, MASTERS, 5, "run-a") == cases.sample(nodes, MASTERS, 5, "run-a")
    assert cases.sample(nodes, MASTERS, 5, "run-a") != cases.sample(nodes, MASTERS, 5, "run-b")


def test_all_pairs_and_a_sample_larger_than_the_cluster_probe_everything():
    nodes = ["master-1", "worker-1", "worker-2"]
    everything = {n: set(nodes) - {n} for n in nodes}
    assert cases.sample(nodes, ["master-1"], None, "x") == everything
    assert cases.sample(nodes, ["master-1"], 10, "x") == everything


def test_the_pairs_option_is_all_or_sample_k():
    assert parse_pairs("all") is None and parse_pairs("sample:12") == 12
    for bad in ("some", "sample:", "sample:0", "sample:x", "sample:-1"):
        with pytest.raises(BadOption, match="all or sample:K"):
            parse_pairs(bad)


def test_the_plan_probes_only_the_sampled_targets_and_the_node_itself():
    topo = topology(["master-1"], ["worker-1", "worker-2", "worker-3"])
    pods = {n.name: ProbePod(n.name, f"p-{n.name}", f"10.200.{i}.5") for i, n in enumerate(topo.nodes)}
    hosts = {n.name: ProbePod(n.name, f"h-{n.name}", n.internal_ip) for n in topo.nodes}
    sampled = {"worker-1": {"master-1"}, "master-1": {"worker-2"}, "worker-2": {"worker-3"}, "worker-3": {"worker-1"}}
    plans = paths.plan(topo, pods, hosts, Settings(), sampled=sampled)
    by_kind = {kind: {t.target for t in plans[("pod", "worker-1")] if t.kind == kind}
               for kind in ("pod-to-pod", "pod-to-node")}
    assert by_kind == {"pod-to-pod": {"worker-1", "master-1"}, "pod-to-node": {"master-1"}}
    host = {t.kind: t for t in plans[("host", "worker-1")]}
    assert host["host-to-host"].target == "master-1"
    assert host["external-ip"].extra[0] == "master-1+worker-1"  # the backends expected are the ones probed


# ---------------------------------------------------------------- the switch
def test_pair_cases_up_to_the_threshold_and_one_per_source_above_it():
    topo = topology(["master-1"], ["worker-1", "worker-2"])
    everyone = cases.sample([n.name for n in topo.nodes], ["master-1"], None, "x")
    values, ids = cases.pair_cases(topo.nodes, everyone, per_source_cases=False, cross=False)
    assert len(values) == 9 and "worker-1->worker-1" in ids
    _, cross = cases.pair_cases(topo.nodes, everyone, per_source_cases=False, cross=True)
    assert len(cross) == 6 and "worker-1->worker-1" not in cross
    values, ids = cases.pair_cases(topo.nodes, everyone, per_source_cases=True, cross=True)
    assert ids == ["master-1->*", "worker-1->*", "worker-2->*"] and values[0][1] == Everyone()
    assert not cases.per_source(30, 30) and cases.per_source(31, 30)


CONFTEST = """
import pytest
from seatrials.options import Settings
from seatrials.plugin import STATE, Run, pytest_generate_tests  # noqa: F401 - the real hook
from tests.test_cases import topology


def pytest_configure(config):
    settings = Settings(pair_cases_up_to=int(config.getini("up_to")), pairs=None)
    config.stash[STATE] = Run(settings, topology=topology(workers=[f"worker-{i}" for i in range(1, 33)]),
                              run_id="r1")


def pytest_addoption(parser):
    parser.addini("up_to", "threshold")
"""

SUITE = """
def test_pod_to_pod(pair):
    pass


def test_host_to_host(cross_pair):
    pass


def test_probe_running(node):
    pass
"""


@pytest.mark.parametrize(("up_to", "pair_cases", "cross_cases"), [(35, 35 * 35, 35 * 34), (30, 35, 35)])
def test_collection_switches_to_one_case_per_source_above_the_threshold(pytester, up_to, pair_cases, cross_cases):
    pytester.makeconftest(CONFTEST)
    pytester.makeini(f"[pytest]\nup_to = {up_to}\n")
    pytester.makepyfile(test_suite=SUITE)
    pytester.syspathinsert(str(pytest.importorskip("tests").__path__[0] + "/.."))
    ids = [line for line in pytester.runpytest("--collect-only", "-q").outlines if "::" in line]
    assert len([i for i in ids if "test_pod_to_pod[" in i]) == pair_cases
    assert len([i for i in ids if "test_host_to_host[" in i]) == cross_cases
    assert len([i for i in ids if "test_probe_running[" in i]) == 35
    if pair_cases == 35:
        assert "test_suite.py::test_pod_to_pod[worker-7->*]" in ids


# ---------------------------------------------------------------- a source's row
def row_trial(blocked, check_on=()) -> tuple[Trial, Topology]:
    masters, workers = ["master-1"], [f"worker-{i}" for i in range(1, 8)]
    results = sim.results(blocked, masters=masters, workers=workers)
    return Trial("r1", "ns", [], [], results, aws=sim.aws_facts(masters + workers, check_on)), \
        topology(masters, workers)


def test_a_healthy_row_passes():
    trial, topo = row_trial(sim.healthy)
    assert trial.cell(topo, "pod-to-pod", "worker-1", cases.ALL).status == PASSED


def test_a_failed_row_names_the_cause_and_lists_every_failed_target_once():
    broken = {"worker-3", "worker-4", "worker-5", "worker-6"}
    trial, topo = row_trial(sim.source_dest_check(broken), check_on=broken)
    result = trial.cell(topo, "host-to-pod", "master-1", cases.ALL)
    assert result.status == FAILED
    f = result.finding
    assert f.cause == "ec2-source-dest-check"
    assert f.evidence[0] == "host-to-pod master-1 -> 4 of 8 targets failed"
    assert "host-to-pod master-1 -> worker-3 to worker-6: timeout after 3 tries" in f.evidence[1]
    patterns = [e for e in f.evidence if e.startswith("pattern: ")]
    assert len(patterns) == 1 and "worker-3 to worker-6" in patterns[0]
    assert [e for e in f.evidence if e.startswith("AWS: ")] == [f"AWS: instance i-{n} sourceDestCheck: True"
                                                                for n in sorted(broken)]


def test_a_row_failing_for_two_causes_names_the_one_of_most_targets_and_tags_the_other():
    broken = {"worker-3", "worker-4", "worker-5"}
    trial, topo = row_trial(sim.source_dest_check({*broken, "worker-6"}), check_on=broken)  # worker-6: unknown
    f = trial.cell(topo, "host-to-pod", "master-1", cases.ALL).finding
    assert f.cause == "ec2-source-dest-check"
    assert any(e.startswith("[cause: unknown] host-to-pod master-1 -> worker-6: timeout") for e in f.evidence)


def test_a_row_of_a_source_whose_probe_never_ran_is_not_checked():
    results = [ProbeResult("pod-to-pod", "worker-1", t, "x", "not-run", "exec into p failed: 500")
               for t in ("master-1", "worker-2")]
    trial = Trial("r1", "ns", [], [], results)
    result = trial.cell(topology(["master-1"], ["worker-1", "worker-2"]), "pod-to-pod", "worker-1", cases.ALL)
    assert result.status == NOT_CHECKED and "exec into p failed" in result.reason


def test_node_lists_are_shortened_for_people():
    names = MASTERS + WORKERS
    assert cases.name_list(names) == "master-1 to master-3, worker-1 to worker-97"
    assert cases.name_list(["ip-10-0-1-7.ec2.internal", "b", "a"]) == "a, b, ip-10-0-1-7.ec2.internal"
    assert cases.name_list([f"n{i}" for i in range(0, 100, 2)], limit=3) == "n0, n2, n4 and 47 more"

"""`lab/lab bench --peer`'s pure parts: the e2e binary's JUnit file read, the agnhost image chosen, the scenarios
asked for, and the table's ratios."""

import pytest
from seatrials_lab import peer
from seatrials_lab.shell import LabError

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="1" time="60.1">
  <testsuite name="Kubernetes e2e suite" package="/" tests="5" skipped="2" failures="1" errors="0">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="0.1"/>
    <testcase name="[It] [sig-network] Networking Granular Checks: Pods should function for intra-pod communication: \
http [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="passed" time="17.9"/>
    <testcase name="[It] [sig-network] Networking Granular Checks: Pods should function for node-pod communication: \
http [LinuxOnly] [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="failed" time="120.0">
      <failure message="failed to find expected endpoints,
tries 46
Command curl -g -q -s" type="failed">[FAILED] long text</failure>
    </testcase>
    <testcase name="[It] [sig-storage] EmptyDir volumes should support (root,0644,tmpfs)" status="skipped" time="0">
      <skipped message="skipped"/>
    </testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster [Conformance]" status="skipped">
      <skipped message="skipped - focused out"/>
    </testcase>
  </testsuite>
</testsuites>
"""


def test_junit_cases_keeps_the_network_tests_that_ran_and_their_first_failure_line(tmp_path):
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    assert peer.junit_cases(tmp_path) == {
        "Networking Granular Checks: Pods should function for intra-pod communication: http": None,
        "Networking Granular Checks: Pods should function for node-pod communication: http":
            "failed to find expected endpoints, tries 46 Command curl -g -q -s",
    }


def test_junit_cases_names_a_failed_suite_setup(tmp_path):
    (tmp_path / "junit_01.xml").write_text(
        '<testsuites><testsuite><testcase name="[SynchronizedBeforeSuite]"><failure message="nodes not ready"/>'
        '</testcase><testcase name="[It] [sig-network] DNS x"><skipped/></testcase></testsuite></testsuites>')
    assert peer.junit_cases(tmp_path) == {"[SynchronizedBeforeSuite]": "nodes not ready"}


def test_the_newest_agnhost_is_chosen_by_number_not_by_text():
    listed = ("registry.k8s.io/e2e-test-images/agnhost:2.9\nregistry.k8s.io/e2e-test-images/agnhost:2.66.1\n"
              "gcr.io/k8s-authenticated-test/agnhost:2.70\nregistry.k8s.io/e2e-test-images/agnhost:2.55\n"
              "registry.k8s.io/e2e-test-images/busybox:1.37.0-1\n")
    assert peer.newest(listed, "agnhost") == "registry.k8s.io/e2e-test-images/agnhost:2.66.1"


def test_a_list_without_the_image_is_one_line_of_error():
    with pytest.raises(LabError, match="names no glibc-dns-testing image"):
        peer.newest("registry.k8s.io/e2e-test-images/busybox:1.37.0-1\n", "glibc-dns-testing")


def test_scenarios_keep_the_order_given_and_refuse_unknown_ones():
    assert peer.scenarios("kubelet-cgroups, healthy,kubelet-cgroups") == ("kubelet-cgroups", "healthy")
    with pytest.raises(ValueError, match="unknown node-not-ready"):
        peer.scenarios("healthy,node-not-ready")
    with pytest.raises(ValueError, match="empty"):
        peer.scenarios(" , ")


def row(scenario, tool, wall, failed=False, named=()):
    return {"scenario": scenario, "tool": tool, "wall_seconds": wall, "api_requests": 40, "pairs": 9,
            "failed": failed, "named": list(named)}


def test_the_table_gives_each_scenario_its_ratio_and_the_median():
    rows = [row("healthy", "seatrials", 6.0), row("healthy", "e2e", 60.0),
            row("ec2-source-dest-check", "seatrials", 8.0, True, ["ec2-source-dest-check"]),
            row("ec2-source-dest-check", "e2e", 340.0, True, ["pod-pod: timed out"]),
            row("kubelet-cgroups", "seatrials", 7.0, True, ["kubelet-cgroups"])]
    lines = peer.table(rows).splitlines()
    assert lines[3].split()[-2:] == ["FAILED", "ec2-source-dest-check"]
    assert lines[-3:] == ["healthy: e2e / seatrials wall time 10.0",
                          "ec2-source-dest-check: e2e / seatrials wall time 42.5",
                          "median e2e / seatrials wall time: 26.2"]


def test_an_e2e_run_stopped_by_its_time_limit_gives_a_lower_bound():
    rows = [row("sg-node-to-apiserver", "seatrials", 10.0, True, ["sg-node-to-apiserver"]),
            {**row("sg-node-to-apiserver", "e2e", 600.4, True, ["DNS: A suite timeout occurred"]), "stopped": True}]
    lines = peer.table(rows).splitlines()
    assert " 600.4+ " in lines[2]
    assert lines[3] == "sg-node-to-apiserver: e2e / seatrials wall time >= 60.0"


def node(name, ready="True", taints=(), unschedulable=False):
    return {"metadata": {"name": name}, "spec": {"taints": list(taints), "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def test_the_e2e_targets_are_ready_untainted_schedulable_nodes_at_most_ten():
    nodes = [node("master-1", taints=[{"key": "k", "effect": "NoSchedule"}]), node("worker-1"),
             node("worker-2", ready="False"), node("worker-3", unschedulable=True),
             node("worker-4", taints=[{"key": "k", "effect": "PreferNoSchedule"}])]
    assert peer.schedulable({"items": nodes}) == 2
    assert peer.schedulable({"items": [node(f"worker-{i}") for i in range(12)]}) == 10


def test_e2e_pairs_count_each_granular_check_from_one_node_to_every_target():
    tests = {"Networking Granular Checks: Pods should function for intra-pod communication: http": None,
             "Networking Granular Checks: Services should function for pod-Service: http": "timed out",
             "DNS should provide DNS for the cluster": None}
    assert peer.e2e_pairs(tests, 3) == 6


def test_seatrials_pairs_are_distinct_node_pairs_actually_measured():
    matrix = {"pod-to-pod": {"sources": ["m1", "w1"], "targets": ["m1", "w1"], "rows": {"m1": "oo", "w1": "ot"}},
              "pod-to-node": {"sources": ["m1", "w1"], "targets": ["m1", "w1"], "rows": {"m1": " o", "w1": "- "}},
              "pod-to-service": {"sources": ["m1", "w1"], "targets": ["10.32.0.1:443"], "rows": {"m1": "o", "w1": "o"}}}
    assert peer.seatrials_pairs({"matrix": matrix}) == 4
    matrix["pod-to-pod"]["rows"]["w1"] = "-o"
    assert peer.seatrials_pairs({"matrix": matrix}) == 3


def test_the_e2e_requests_are_its_client_s_logged_responses():
    log = ('I1201 05:59:01.1 1 round_trippers.go:632] "Response" verb="GET" url="https://10.0.0.1:6443/api/v1/nodes" '
           'status="200 OK" milliseconds=3\n'
           'I1201 05:59:01.2 1 round_trippers.go:632] "Response" verb="POST" url="https://10.0.0.1:6443/api/v1/'
           'namespaces" status="201 Created" milliseconds=9\n'
           'I1201 05:59:01.3 1 util.go:12] "Response" of the netserver: ok\n')
    assert peer.client_requests(log) == 2
    assert peer.client_requests("error loading KubeConfig: illegal base64 data") is None

"""The probe plan: two execs per node, every path covered, nothing quadratic in API calls."""

import pytest

from seatrials.network import paths
from seatrials.network.paths import ProbePod
from seatrials.options import Settings
from seatrials.topology import Node, Topology


def cluster_of(masters, workers):
    nodes = [Node(f"master-{i}", "master", f"10.240.0.{10 + i}") for i in range(1, masters + 1)]
    nodes += [Node(f"worker-{i}", "worker", f"10.240.0.{20 + i}") for i in range(1, workers + 1)]
    topo = Topology(nodes, ("10.32.0.1", 443), [(n.internal_ip, 6444) for n in nodes if n.is_master], "other",
                    dns_service=("10.32.0.10", 53))
    pods = {n.name: ProbePod(n.name, f"pod-{n.name}", f"10.200.{i}.2") for i, n in enumerate(nodes)}
    hosts = {n.name: ProbePod(n.name, f"host-{n.name}", n.internal_ip) for n in nodes}
    return topo, pods, hosts


@pytest.mark.parametrize("masters,workers", [(1, 2), (3, 2), (3, 20)])
def test_one_exec_per_probe_covers_every_pair(masters, workers):
    topo, pods, hosts = cluster_of(masters, workers)
    plans = paths.plan(topo, pods, hosts, Settings(None, None))
    n = masters + workers
    assert len(plans) == 2 * n  # API calls for the measurement: linear in nodes
    pairs = {(t.kind, src, t.target) for (side, src), targets in plans.items() for t in targets}
    for a in topo.nodes:
        for b in topo.nodes:
            assert ("pod-to-pod", a.name, b.name) in pairs
            assert ("host-to-pod", a.name, b.name) in pairs
            if a != b:
                assert ("host-to-host", a.name, b.name) in pairs
        for ip, port in topo.apiserver_endpoints:
            assert ("pod-to-apiserver", a.name, f"{ip}:{port}") in pairs
        assert ("pod-to-service", a.name, "10.32.0.1:443") in pairs
        assert ("external-ip", a.name, "*") in pairs


def test_exec_arguments_stay_small_for_a_big_cluster():
    topo, pods, hosts = cluster_of(3, 100)
    plans = paths.plan(topo, pods, hosts, Settings(None, None))
    biggest = max(len(" ".join(t.arg() for t in targets)) for targets in plans.values())
    assert biggest < 64_000  # well inside Linux's 128 KiB argument limit per string


@pytest.mark.parametrize("rc,out,expected", [
    (0, "HTTP/1.0 200 OK\tpod-a worker-1", "ok"),
    (1, "nc: can't connect to remote host (10.200.1.2): Connection refused", "refused"),
    (1, "nc: timed out", "timeout"),
    (143, "", "timeout"),
    (1, "nc: can't connect to remote host (10.98.0.1): Network is unreachable", "no-route"),
    (1, "ping: sendto: No route to host", "no-route"),
    (1, "something else", "error"),
])
def test_classify(rc, out, expected):
    assert paths.classify(rc, out) == expected


def test_dns_answer_must_be_the_kubernetes_service():
    out = "Server:\t\t10.32.0.10\tAddress:\t10.32.0.10:53\t\tName:\tkubernetes.default.svc.cluster.local\t" \
          "Address: 10.32.0.1\t"
    assert paths.answer_of("dns", out, "10.32.0.1") == ("ok", "resolved to 10.32.0.1")
    assert paths.answer_of("dns", out.replace("10.32.0.1\t", "10.32.0.99\t"), "10.32.0.1")[0] == "error"

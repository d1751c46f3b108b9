"""Node names, addresses and pod CIDRs follow the field report's cluster."""

import pytest
from seatrials_lab.layout import flannel_backend, plan, pod_ips_between_nodes


def test_nodes_addresses_and_pod_cidrs():
    nodes = plan(masters=3, workers=2)
    assert [(n.name, n.role, n.ip, n.pod_cidr) for n in nodes] == [
        ("master-1", "master", "10.240.0.11", "10.200.11.0/24"),
        ("master-2", "master", "10.240.0.12", "10.200.12.0/24"),
        ("master-3", "master", "10.240.0.13", "10.200.13.0/24"),
        ("worker-1", "worker", "10.240.0.21", "10.200.21.0/24"),
        ("worker-2", "worker", "10.240.0.22", "10.200.22.0/24"),
    ]


def test_each_kubelet_has_its_own_cgroup_root():
    nodes = plan(masters=1, workers=2)
    assert len({n.cgroup for n in nodes}) == 3
    assert all(n.system_cgroup.startswith(n.cgroup + "/") for n in nodes)


def test_several_subnets_keep_masters_in_the_first_and_spread_workers_over_the_rest_in_two_zones():
    nodes = plan(masters=3, workers=4, subnets=3)
    assert [(n.name, n.ip, n.subnet, n.zone, n.pod_cidr) for n in nodes] == [
        ("master-1", "10.240.0.11", 0, "us-east-1a", "10.200.11.0/24"),
        ("master-2", "10.240.0.12", 0, "us-east-1a", "10.200.12.0/24"),
        ("master-3", "10.240.0.13", 0, "us-east-1a", "10.200.13.0/24"),
        ("worker-1", "10.240.1.21", 1, "us-east-1b", "10.200.21.0/24"),
        ("worker-2", "10.240.2.22", 2, "us-east-1a", "10.200.22.0/24"),
        ("worker-3", "10.240.1.23", 1, "us-east-1b", "10.200.23.0/24"),
        ("worker-4", "10.240.2.24", 2, "us-east-1a", "10.200.24.0/24"),
    ]


def test_a_dozen_workers_keep_distinct_addresses_and_pod_cidrs():
    nodes = plan(masters=3, workers=12)
    assert len({n.ip for n in nodes}) == len({n.pod_cidr for n in nodes}) == 15
    assert nodes[-1].ip == "10.240.0.32" and all(n.subnet == 0 for n in nodes)


@pytest.mark.parametrize(("masters", "workers", "subnets"),
                         [(2, 2, 1), (0, 1, 1), (1, -1, 1), (1, 13, 1), (1, 2, 0), (1, 2, 5), (1, 1, 3)])  # fmt: skip
def test_unsupported_shapes_are_refused(masters, workers, subnets):
    with pytest.raises(ValueError):
        plan(masters, workers, subnets)


@pytest.mark.parametrize(
    ("cni", "backend", "pod_ips"),
    [("native", None, True), ("flannel-vxlan", "vxlan", False), ("flannel-host-gw", "host-gw", True)],
)
def test_what_each_cni_puts_on_the_wire(cni, backend, pod_ips):
    assert flannel_backend(cni) == backend
    assert pod_ips_between_nodes(cni) is pod_ips

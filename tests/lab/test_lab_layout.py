"""Node names, addresses and pod CIDRs follow the field report's cluster."""

import pytest
from seatrials_lab.layout import plan


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


@pytest.mark.parametrize(("masters", "workers"), [(2, 2), (0, 1), (1, -1), (1, 10)])
def test_unsupported_sizes_are_refused(masters, workers):
    with pytest.raises(ValueError):
        plan(masters, workers)

"""Each kubelet knows its own cgroups (cause kubelet-cgroups).

One case per node, e.g. test_kubelet_cgroups[worker-1]. Read through the API
only: the kubelet's log (node log query, then /var/log/kubelet.log), its
stats/summary and its configz, every node's kubelet at once (the `kubelets`
fixture). The logic lives in seatrials/checks/kubelet.py.
"""

import pytest

pytestmark = pytest.mark.area("kubelet")


@pytest.mark.cause("kubelet-cgroups")
def test_kubelet_cgroups(kubelets, node):
    """No 'Failed to get system container stats ... unknown container' since the
    kubelet's last start, and a `kubelet` system container in stats/summary."""
    return kubelets(node)

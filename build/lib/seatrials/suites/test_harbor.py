"""Harbor records what is pushed to it (cause harbor-k8s-deploy-stale-ui).

Runs only with --harbor-url (or SEATRIALS_HARBOR_URL); credentials come from
HARBOR_USERNAME and HARBOR_PASSWORD. The logic lives in seatrials/checks/harbor.py.
"""

import pytest

from seatrials.checks import harbor

pytestmark = pytest.mark.area("harbor")


@pytest.mark.cause("harbor-k8s-deploy-stale-ui", "unknown")
def test_harbor_push_is_listed(settings, run_id):
    return harbor.check_push_is_listed(settings, run_id)

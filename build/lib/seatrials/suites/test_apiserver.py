"""The apiserver's front-proxy settings do not refuse node and user
certificates (cause apiserver-requestheader-allowed-names), and aggregated APIs
are available. The logic lives in seatrials/checks/apiserver.py.
"""

import pytest

from seatrials.checks import apiserver

pytestmark = pytest.mark.area("apiserver")


@pytest.mark.cause("apiserver-requestheader-allowed-names", "apiserver-auth-configmap-stale",
                   "requestheader-open-impersonation")
def test_front_proxy_settings(cluster, topology):
    """No requestheader-allowed-names list over a requestheader CA that also signs
    client certificates (ConfigMap extension-apiserver-authentication, the CAs each
    apiserver asks for in its TLS handshake, static pod flags), no 'not in the
    allowed list' in the apiserver log, no aggregated API refused on authentication.
    A ConfigMap that only remembers the fault is told apart from apiservers that run with it, and the
    field report's own fix (no allowed names over that CA: anyone may impersonate anyone) is critical."""
    return apiserver.front_proxy_result(cluster, topology)


@pytest.mark.cause("unknown")
def test_aggregated_apis_available(cluster):
    """Every APIService served by an extension apiserver is Available (refusals on
    authentication are reported by test_front_proxy_settings)."""
    return apiserver.aggregated_apis_result(cluster)

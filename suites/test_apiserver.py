"""The apiserver's front-proxy settings do not refuse node and user
certificates (cause apiserver-requestheader-allowed-names), and aggregated APIs
are available. The logic lives in seatrials/apiserver.py.
"""

import pytest

from seatrials import apiserver


@pytest.mark.cause("apiserver-requestheader-allowed-names")
def test_front_proxy_settings(cluster, topology, judge):
    """No requestheader-allowed-names list over a requestheader CA that also signs
    client certificates (ConfigMap extension-apiserver-authentication, static pod
    flags), no 'not in the allowed list' in the apiserver log, no aggregated API
    refused on authentication."""
    judge(apiserver.front_proxy_verdict(cluster, topology))


@pytest.mark.cause("unknown")
def test_aggregated_apis_available(cluster):
    """Every APIService served by an extension apiserver is Available (refusals on
    authentication are reported by test_front_proxy_settings)."""
    apiserver.check_aggregated_apis(cluster)

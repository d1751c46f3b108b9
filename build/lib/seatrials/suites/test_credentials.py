"""Kubeconfig credentials every client can read (cause client-pem-not-base64).

The kubeconfig in use and every --client-kubeconfig (kubeconfigs handed to
other clients, such as Java applications): each *-data field is strict base64
of PEM, and a real TLS handshake with the credentials succeeds. The logic
lives in seatrials/checks/credentials.py; `seatrials java-credentials` prints the
values to give a Java client.
"""

import pytest

from seatrials.checks import credentials

pytestmark = pytest.mark.area("credentials")


@pytest.mark.cause("client-pem-not-base64")
def test_kubeconfig_credentials(cluster, settings):
    return credentials.credentials_verdict(cluster, settings.client_kubeconfigs).result()

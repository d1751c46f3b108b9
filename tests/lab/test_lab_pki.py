"""The lab's credentials: kubeadm's three authorities, the SANs clients dial, base64 kubeconfigs."""

import base64
import dataclasses
import ipaddress
import json

from cryptography import x509
from seatrials_lab.layout import plan
from seatrials_lab.pki import Pki, kubeconfig


def sans(pair):
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(i) for i in names.get_values_for_type(x509.IPAddress)} | set(names.get_values_for_type(x509.DNSName))


def test_apiserver_certificate_covers_every_address_it_is_reached_by(tmp_path):
    pki = Pki(tmp_path)
    assert {"127.0.0.1", "10.32.0.1", "10.240.0.1", "10.240.0.11", "10.240.0.12", "10.240.0.13"} <= sans(pki.apiserver)
    assert "kubernetes.default.svc.cluster.local" in sans(pki.apiserver)


def test_front_proxy_client_comes_from_its_own_authority(tmp_path):
    pki = Pki(tmp_path)
    issuer = x509.load_pem_x509_certificate(pki.front_proxy_client.cert_pem).issuer
    assert issuer == pki.front_proxy_ca.cert.subject != pki.ca.cert.subject


def test_node_identities(tmp_path):
    pki = Pki(tmp_path)
    worker = plan(1, 1)[1]
    client = x509.load_pem_x509_certificate(pki.kubelet_client(worker).cert_pem).subject.rfc4514_string()
    assert client == "CN=system:node:worker-1,O=system:nodes"
    assert sans(pki.kubelet_serving(worker)) == {"10.240.0.21", "worker-1"}


def test_credentials_are_cached(tmp_path):
    first = Pki(tmp_path).apiserver.cert_pem
    assert Pki(tmp_path).apiserver.cert_pem == first
    worker = plan(1, 1)[1]
    assert Pki(tmp_path).kubelet_serving(worker).cert_pem == Pki(tmp_path).kubelet_serving(worker).cert_pem


def test_a_cached_certificate_for_other_addresses_is_issued_again(tmp_path):
    worker = plan(1, 1)[1]
    Pki(tmp_path).kubelet_serving(dataclasses.replace(worker, ip="10.240.1.21"))  # the node in another layout
    assert sans(Pki(tmp_path).kubelet_serving(worker)) == {"10.240.0.21", "worker-1"}


def test_kubeconfig_embeds_strict_base64_pem(tmp_path):
    pki = Pki(tmp_path)
    config = json.loads(kubeconfig("https://127.0.0.1:6443", pki.ca.pair, "admin", pki.admin))
    user = config["users"][0]["user"]
    for value in (
        user["client-certificate-data"],
        user["client-key-data"],
        config["clusters"][0]["cluster"]["certificate-authority-data"],
    ):
        assert base64.b64decode(value, validate=True).startswith(b"-----BEGIN ")
    ipaddress.ip_address(config["clusters"][0]["cluster"]["server"].split("//")[1].split(":")[0])

"""The lab's certificate authorities, certificates, keys and kubeconfigs, kubeadm's layout.

Three authorities, as kubeadm makes them: the cluster CA (apiserver, kubelets, every
client), the etcd CA, and a separate front-proxy CA for the aggregation layer's request
headers (phase 2 of the lab breaks exactly that separation). Everything is generated once
and cached under <state>/pki; a certificate is reissued only when it is missing, about to
expire, or names other addresses than the lab asks for (a lab of another layout issued it).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .layout import API_SERVICE_IP, CLUSTER_DOMAIN, HOST_IP, Node, plan

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=7)
CLUSTER_NAME = "seatrials-lab"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _fresh(pair: Pair) -> bool:
    if not (pair.cert.exists() and pair.key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write(pair: Pair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    _write_key(pair.key, key)
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


class Authority:
    """A CA whose certificate and key live in directory/<name>.crt and .key."""

    def __init__(self, directory: Path, name: str, common_name: str):
        self.directory = directory
        self.pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
        if not _fresh(self.pair):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                _builder(_name(common_name), _name(common_name), key, CA_DAYS)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(_usage(cert_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            _write(self.pair, cert, key)
        self.cert = x509.load_pem_x509_certificate(self.pair.cert_pem)
        self.key = serialization.load_pem_private_key(self.pair.key_pem, password=None)

    def issue(
        self,
        name: str,
        common_name: str,
        organizations: tuple[str, ...] = (),
        *,
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> Pair:
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        subject = _name(common_name, organizations)
        names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if _fresh(pair) and _issued_by(pair, self.cert) and _names(pair) == (subject, set(names)):
            return pair
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            _builder(subject, self.cert.subject, key, LEAF_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _write(pair, builder.sign(self.key, hashes.SHA256()), key)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock differences
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names(pair: Pair) -> set:
    """The subject alternative names of a certificate."""
    try:
        return set(x509.load_pem_x509_certificate(pair.cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value)  # fmt: skip
    except x509.ExtensionNotFound:
        return set()


def _issued_by(pair: Pair, ca: x509.Certificate) -> bool:
    return x509.load_pem_x509_certificate(pair.cert_pem).issuer == ca.subject


def _names(pair: Pair) -> tuple[x509.Name, set]:
    """The subject and alternative names of a cached certificate: a lab of another layout (other node
    addresses) issued it otherwise, and it must be issued again."""
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    try:
        alternative = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        alternative = set()
    return cert.subject, alternative


class Pki:
    """Every credential of the lab; node credentials are issued on demand per node."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = Authority(directory, "ca", "kubernetes")
        self.etcd_ca = Authority(directory, "etcd-ca", "etcd-ca")
        self.front_proxy_ca = Authority(directory, "front-proxy-ca", "front-proxy-ca")
        self.service_account = _service_account_keys(directory)
        # One apiserver certificate for every possible master: the lab's masters are 10.240.0.11-13.
        master_ips = tuple(node.ip for node in plan(masters=3, workers=0))
        service_names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
        self.apiserver = self.ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns=(*service_names, f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost"),
            ips=("127.0.0.1", API_SERVICE_IP, HOST_IP, *master_ips),
        )
        # The apiserver reaches kubelets as a cluster admin (kubeadm's apiserver-kubelet-client).
        self.apiserver_kubelet_client = self.ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",), client=True
        )
        self.apiserver_etcd_client = self.etcd_ca.issue(
            "apiserver-etcd-client", "kube-apiserver-etcd-client", client=True
        )
        self.front_proxy_client = self.front_proxy_ca.issue("front-proxy-client", "front-proxy-client", client=True)
        self.admin = self.ca.issue("admin", "kubernetes-admin", ("system:masters",), client=True)
        self.controller_manager = self.ca.issue("controller-manager", "system:kube-controller-manager", client=True)
        self.scheduler = self.ca.issue("scheduler", "system:kube-scheduler", client=True)
        self.kube_proxy = self.ca.issue("kube-proxy", "system:kube-proxy", client=True)

    def kubelet_client(self, node: Node) -> Pair:
        """The node's identity towards the apiserver (Node authorizer, NodeRestriction)."""
        return self.ca.issue(f"node-{node.name}", f"system:node:{node.name}", ("system:nodes",), client=True)

    def kubelet_serving(self, node: Node) -> Pair:
        """The kubelet's serving certificate, checked by the apiserver (--kubelet-certificate-authority)."""
        return self.ca.issue(
            f"kubelet-{node.name}", f"system:node:{node.name}", server=True, dns=(node.name,), ips=(node.ip,)
        )

    def aggregator_on_cluster_ca(self) -> Pair:
        """The field report's proxy client: CN aggregator, signed by the cluster CA that also signs
        every node and user (only the apiserver-requestheader-allowed-names fault uses it)."""
        return self.ca.issue("aggregator", "aggregator", client=True)

    def etcd_member(self, node: Node) -> Pair:
        return self.etcd_ca.issue(
            f"etcd-{node.name}",
            node.name,
            server=True,
            client=True,
            dns=(node.name, "localhost"),
            ips=(node.ip, "127.0.0.1"),
        )


def _service_account_keys(directory: Path) -> Pair:
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    if not pair.key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(pair.key, key)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pair.cert.write_bytes(public)
    return pair


def kubeconfig(server: str, ca: Pair, user: str, credentials: Pair) -> str:
    """A kubeconfig with embedded, base64-encoded credentials (JSON, which every client reads as YAML)."""

    def encoded(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CLUSTER_NAME,
                    "cluster": {"server": server, "certificate-authority-data": encoded(ca.cert_pem)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": encoded(credentials.cert_pem),
                        "client-key-data": encoded(credentials.key_pem),
                    },
                }
            ],
            "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
            "current-context": CLUSTER_NAME,
        },
        indent=2,
    )

"""client-pem-not-base64: kubeconfig *-data fields, okio's lenient decoder, a
real TLS handshake against a local server that requires client certificates,
and `seatrials java-credentials`."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seatrials import kubeconfig
from seatrials.causes import Verdict
from seatrials.checks import credentials
from seatrials.checks.credentials import field_problem, okio_decode_base64, strict_base64

OKIO_JAR = Path("/usr/share/java/okio.jar")  # Debian libokio-java 1.16: the okio 1.x fabric8 used
OKIO_DECODE = Path(__file__).parent / "data" / "OkioDecode.java"


# ---------------------------------------------------------------- certificates
@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def new_ca(cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> Issued:
    """A self-signed CA; pass `key` to re-issue a CA with the same key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca: Issued, cn: str, org: str | None = None, server_ip: str | None = None) -> Issued:
    """A client certificate, or a server one for `server_ip`, signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn, org)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server_ip:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]),
                                         critical=False)
                   .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def cert_with_padding(ca: Issued, padded: bool) -> Issued:
    """A client certificate whose PEM body ends with '=' padding (DER length not a multiple of 3) or not."""
    for _ in range(60):
        leaf = issue(ca, "admin", "system:masters")
        if (len(leaf.cert.public_bytes(serialization.Encoding.DER)) % 3 != 0) == padded:
            return leaf
    raise AssertionError("no certificate of the wanted length in 60 tries")


@pytest.fixture(scope="module")
def pki():
    client_ca = new_ca("kubernetes")
    server_ca = new_ca("apiserver-serving-ca")
    return {
        "client_ca": client_ca,
        "server_ca": server_ca,
        "server": issue(server_ca, "kube-apiserver", server_ip="127.0.0.1"),
        "admin": issue(client_ca, "admin", "system:masters"),
        "stranger": issue(new_ca("another-ca"), "admin", "system:masters"),
    }


# ---------------------------------------------------------------- okio
# okio's own ByteStringTest vectors (decodeBase64, decodeBase64WithWhitespace, ignoreUnnecessaryPadding).
OKIO_VECTORS = [
    ("", b""), ("/===", None), ("//==", b"\xff"), ("///=", b"\xff\xff"), ("////", b"\xff" * 3),
    ("////////", b"\xff" * 6), ("________", b"\xff" * 6), ("__//", b"\xff" * 3),
    ("V2hhdCdzIHRvIGJlIHNjYXJlZCBhYm91dD8gSXQncyBqdXN0IGEgbGl0dGxlIGhpY2N1cCBpbiB0aGUgcG93ZXIuLi4=",
     b"What's to be scared about? It's just a little hiccup in the power..."),
    (" AA AA ", b"\0" * 3), (" AA A\r\nA ", b"\0" * 3), ("AA AA", b"\0" * 3), ("A    AAA", b"\0" * 3),
    ("    ", b""), ("====", b""), ("AAAA====", b"\0" * 3),
]


@pytest.mark.parametrize(("text", "expected"), OKIO_VECTORS)
def test_okio_decode_matches_okio_own_vectors(text, expected):
    assert okio_decode_base64(text) == expected


def test_okio_rejects_what_okio_rejects():
    assert okio_decode_base64("AB=C") is None  # '=' inside
    assert okio_decode_base64("AB.C") is None  # outside the alphabet
    assert okio_decode_base64("ABCDé") is None  # not ASCII
    assert okio_decode_base64("ABCDE") is None  # a last group of one character


def test_okio_decode_agrees_with_the_real_okio(pki):
    """Differential test against the okio jar fabric8 shipped with (okio 1.x, Debian libokio-java)."""
    java = shutil.which("java")
    if not java or not OKIO_JAR.exists():
        pytest.skip("needs java and Debian libokio-java (apt-get install default-jre-headless libokio-java)")
    admin_pem = pki["admin"].cert_pem.decode()
    inputs = [text for text, _ in OKIO_VECTORS] + [
        admin_pem, cert_with_padding(pki["client_ca"], False).cert_pem.decode(),
        cert_with_padding(pki["client_ca"], True).cert_pem.decode(), pki["admin"].key_pem.decode(),
        base64.b64encode(admin_pem.encode()).decode(),
        "\n".join(textwrap.wrap(base64.b64encode(admin_pem.encode()).decode(), 76)),
        base64.urlsafe_b64encode(os.urandom(100)).decode(), "AB=C", "ABCDE", "a\tb c\rd\n", "-----", "ABCDé",
    ]
    stdin = "".join(text.encode().hex() + "\n" for text in inputs)
    out = subprocess.run([java, "-cp", str(OKIO_JAR), str(OKIO_DECODE)], input=stdin, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    real = [None if line == "null" else bytes.fromhex(line) for line in out]
    assert real == [okio_decode_base64(text) for text in inputs]


# ---------------------------------------------------------------- the *-data fields
def field(value: str, key: str = "client-certificate-data") -> kubeconfig.DataField:
    return kubeconfig.DataField(f"users[admin].{key}", {key: value}, key)


def test_strict_base64_of_pem_is_fine(pki):
    value = base64.b64encode(pki["admin"].cert_pem).decode()
    assert strict_base64(value) == pki["admin"].cert_pem
    assert field_problem(field(value)) is None


def test_raw_pem_without_padding_is_misread_by_okio(pki):
    """The field report's case: okio accepts the PEM text and returns garbage."""
    pem = cert_with_padding(pki["client_ca"], padded=False).cert_pem.decode()
    garbage = okio_decode_base64(pem)
    assert garbage is not None and not garbage.startswith(b"-----BEGIN")
    problem = field_problem(field(pem))
    assert "is raw PEM text (starts '-----BEGIN CERTIFICA')" in problem
    assert f"okio decodes it to {len(garbage)} bytes of non-PEM garbage" in problem


def test_raw_pem_with_padding_is_rejected_by_okio(pki):
    pem = cert_with_padding(pki["client_ca"], padded=True).cert_pem.decode()
    assert okio_decode_base64(pem) is None
    assert "okio rejects it, so fabric8 before 5.6.0 falls back to the raw text" in field_problem(field(pem))


def test_base64_with_line_breaks_is_not_strict(pki):
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(pki["admin"].cert_pem).decode(), 76))
    assert strict_base64(wrapped) is None
    problem = field_problem(field(wrapped))
    assert "is not strict base64: a line break at character 77" in problem
    assert "okio decodes it to PEM" in problem


@pytest.mark.parametrize(("value", "why"), [
    ("QUJD-A==", "URL-safe '-' at character 5"),
    ("QU=D", "'=' inside the data at character 3"),
    ("QUJ", "its length is not a multiple of 4"),
    ("QR==", "bits set after the last byte"),
    ("QUJD!A==", "a character outside the base64 alphabet at character 5"),
])
def test_why_a_value_is_not_strict(value, why):
    assert strict_base64(value) is None
    assert why in credentials.why_not_strict(value)


def test_base64_of_base64_is_named(pki):
    twice = base64.b64encode(base64.b64encode(pki["admin"].cert_pem)).decode()
    assert "decodes to" in field_problem(field(twice)) and "(base64 encoded twice)" in field_problem(field(twice))


def test_a_key_is_never_shown(pki):
    key_pem = pki["admin"].key_pem.decode()
    body = "".join(key_pem.splitlines()[1:-1])
    for value in (key_pem, "\n".join(textwrap.wrap(base64.b64encode(key_pem.encode()).decode(), 76))):
        problem = field_problem(field(value, "client-key-data"))
        assert problem and body[:12] not in problem and "PRIVATE" not in problem
        assert "private key" in problem or "okio decodes it to PEM" in problem


def kubeconfig_dict(ca: bytes, cert: str | bytes, key: str | bytes, server: str, user_extra=None) -> dict:
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    user = {"client-certificate-data": text(cert), "client-key-data": text(key), **(user_extra or {})}
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@lab",
        "clusters": [{"name": "lab", "cluster": {"server": server,
                                                  "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "admin@lab", "context": {"cluster": "lab", "user": "admin"}}],
    }


def test_data_fields_find_and_rewrite_every_data_entry(pki):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, pki["admin"].cert_pem, pki["admin"].key_pem,
                             "https://127.0.0.1:1")
    fields = list(kubeconfig.data_fields(config))
    assert [f.where for f in fields] == ["clusters[lab].certificate-authority-data",
                                         "users[admin].client-certificate-data", "users[admin].client-key-data"]
    assert [kubeconfig.looks_like_pem(f.value) for f in fields] == [False, True, True]
    fields[1].set("QUJD")
    assert config["users"][0]["user"]["client-certificate-data"] == "QUJD"


def test_cluster_reencodes_raw_pem_for_the_python_client(pki):
    """kubeconfig.usable relies on data_fields/looks_like_pem; the raw dict stays as it was."""
    raw = kubeconfig_dict(pki["server_ca"].cert_pem, pki["admin"].cert_pem, pki["admin"].key_pem,
                          "https://127.0.0.1:1")
    fixed = kubeconfig.usable(raw)
    assert all(strict_base64(f.value) for f in kubeconfig.data_fields(fixed))
    assert kubeconfig.looks_like_pem(raw["users"][0]["user"]["client-certificate-data"])


# ---------------------------------------------------------------- the handshake
class ReviewHandler(http.server.BaseHTTPRequestHandler):
    """Answers a SelfSubjectReview with the client certificate's CN, as kube-apiserver does."""

    legacy = False  # an apiserver without authentication.k8s.io/v1 SelfSubjectReview

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.legacy:
            return self.answer(404, {"kind": "Status", "code": 404})
        subject = dict(pair[0] for pair in self.connection.getpeercert()["subject"])
        self.answer(201, {"kind": "SelfSubjectReview", "status": {"userInfo": {"username": subject["commonName"]}}})

    def do_GET(self):
        self.answer(200, {"kind": "APIVersions", "versions": ["v1"]})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # refused handshakes are what some tests are about


@pytest.fixture
def apiserver(pki, tmp_path):
    """A TLS server on 127.0.0.1 that requires client certificates of the client CA."""
    started = []

    def start(legacy: bool = False) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        (tmp_path / "server.pem").write_bytes(pki["server"].cert_pem)
        (tmp_path / "server-key.pem").write_bytes(pki["server"].key_pem)
        ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")
        ctx.load_verify_locations(cadata=pki["client_ca"].cert_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
        handler = type("Handler", (ReviewHandler,), {"legacy": legacy})
        server = QuietServer(("127.0.0.1", 0), handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def creds_for(config: dict) -> credentials.Credentials:
    return credentials.context_credentials(config, "admin@lab", Path("."))


def test_handshake_with_good_credentials(pki, apiserver):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                             base64.b64encode(pki["admin"].key_pem), apiserver())
    state, detail = credentials.handshake(creds_for(config))
    assert state == "ok", detail
    assert "the server accepted the client certificate as admin" in detail


def test_handshake_on_an_apiserver_without_self_subject_review(pki, apiserver):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                             base64.b64encode(pki["admin"].key_pem), apiserver(legacy=True))
    state, detail = credentials.handshake(creds_for(config))
    assert state == "ok" and "accepted the client certificate" in detail


def test_handshake_refused_for_a_certificate_of_another_ca(pki, apiserver):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["stranger"].cert_pem),
                             base64.b64encode(pki["stranger"].key_pem), apiserver())
    state, detail = credentials.handshake(creds_for(config))
    assert state == "fault", detail
    assert "failed: " in detail and "client certificate" in detail  # the alert, or the close that follows it


def test_handshake_without_client_certificate_is_refused_by_a_server_requiring_one(pki, apiserver):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, "", "", apiserver(), user_extra={"token": "abc"})
    state, detail = credentials.handshake(creds_for(config))
    assert state == "fault" and "client certificate" in detail, detail


def test_handshake_with_the_wrong_ca(pki, apiserver):
    config = kubeconfig_dict(pki["client_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                             base64.b64encode(pki["admin"].key_pem), apiserver())
    state, detail = credentials.handshake(creds_for(config))
    assert state == "fault" and "the kubeconfig's CA did not sign the server's certificate" in detail, detail


def test_handshake_with_a_key_of_another_certificate(pki, apiserver):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                             base64.b64encode(pki["stranger"].key_pem), apiserver())
    state, detail = credentials.handshake(creds_for(config))
    assert state == "fault" and "the client key does not belong to the client certificate" in detail, detail


def test_handshake_to_nothing_is_unreadable(pki):
    from tests.conftest import free_port

    config = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                             base64.b64encode(pki["admin"].key_pem), f"https://127.0.0.1:{free_port()}")
    state, detail = credentials.handshake(creds_for(config))
    assert state == "unreadable" and "cannot reach" in detail


# ---------------------------------------------------------------- the check as a whole
@dataclass
class FakeCluster:
    kubeconfig: dict
    kubeconfig_path: str
    context: str = "admin@lab"


def test_raw_pem_kubeconfig_fails_with_the_cause_while_the_handshake_works(pki, apiserver, tmp_path):
    """kubectl-style clients connect (the handshake passes) but the data is raw PEM: the field report."""
    pem = cert_with_padding(pki["client_ca"], padded=False)
    raw = kubeconfig_dict(pki["server_ca"].cert_pem, pem.cert_pem, pem.key_pem, apiserver())
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(raw))
    result = credentials.credentials_verdict(FakeCluster(raw, str(path)), []).result()
    message = str(result)
    assert result.status == "failed"
    assert "[cause: client-pem-not-base64]" in message
    assert f"kubeconfig {path}: users[admin].client-certificate-data: is raw PEM text" in message
    assert "bytes of non-PEM garbage" in message
    assert "users[admin].client-key-data: is raw PEM text" in message
    body = "".join(pem.key_pem.decode().splitlines()[1:-1])
    assert body[:12] not in message and body[-12:] not in message


def test_good_kubeconfig_and_a_bad_client_kubeconfig(pki, apiserver, tmp_path):
    server = apiserver()
    good = kubeconfig_dict(pki["server_ca"].cert_pem, base64.b64encode(pki["admin"].cert_pem),
                           base64.b64encode(pki["admin"].key_pem), server)
    (tmp_path / "good").write_text(yaml.safe_dump(good))
    verdict = credentials.credentials_verdict(FakeCluster(good, str(tmp_path / "good")), [])
    assert verdict.of_state("fault") == []
    assert len(verdict.of_state("ok")) == 2  # the fields and the handshake
    java = kubeconfig_dict(pki["server_ca"].cert_pem, pki["admin"].cert_pem,
                           base64.b64encode(pki["admin"].key_pem), server)
    (tmp_path / "java").write_text(yaml.safe_dump(java))
    verdict = credentials.credentials_verdict(FakeCluster(good, str(tmp_path / "good")),
                                              [str(tmp_path / "java"), str(tmp_path / "missing")])
    faults = [o.signal for o in verdict.of_state("fault")]
    assert faults == [f"kubeconfig {tmp_path / 'java'}: users[admin].client-certificate-data"]
    assert [o.signal for o in verdict.of_state("unreadable")] == [f"kubeconfig {tmp_path / 'missing'}"]


def test_a_kubeconfig_with_certificate_files(pki, apiserver, tmp_path):
    (tmp_path / "admin.pem").write_bytes(pki["admin"].cert_pem)
    (tmp_path / "admin-key.pem").write_bytes(pki["admin"].key_pem)
    config = kubeconfig_dict(pki["server_ca"].cert_pem, "", "", apiserver(),
                             user_extra={"client-certificate": "admin.pem", "client-key": "admin-key.pem"})
    verdict = Verdict(credentials.CAUSE)
    credentials.check_kubeconfig(verdict, "kubeconfig", config, "admin@lab", tmp_path)
    assert [o.state for o in verdict.observations] == ["ok", "ok"], verdict.observations


# ---------------------------------------------------------------- seatrials java-credentials
def test_java_credentials_prints_strict_base64_of_pem(pki, tmp_path, capsys):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, pki["admin"].cert_pem, pki["admin"].key_pem,
                             "https://127.0.0.1:6443")
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    assert credentials.print_java_credentials(str(tmp_path / "kubeconfig"), None) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    assert lines["masterUrl"] == "https://127.0.0.1:6443"
    assert strict_base64(lines["caCertData"]) == pki["server_ca"].cert_pem
    assert strict_base64(lines["clientCertData"]) == pki["admin"].cert_pem
    assert strict_base64(lines["clientKeyData"]) == pki["admin"].key_pem
    assert lines["clientKeyAlgo"] == "EC"
    assert okio_decode_base64(lines["clientCertData"]) == pki["admin"].cert_pem  # what fabric8 < 5.6 reads


def test_java_credentials_with_a_token_prints_no_token(pki, tmp_path, capsys):
    config = kubeconfig_dict(pki["server_ca"].cert_pem, "", "", "https://127.0.0.1:6443",
                             user_extra={"token": "sekrit-token-value"})
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    assert credentials.print_java_credentials(str(tmp_path / "kubeconfig"), "admin@lab") == 0
    out = capsys.readouterr().out
    assert "bearer token" in out and "sekrit" not in out and "clientCertData" not in out


@pytest.mark.parametrize("context", [None, "nope"])
def test_java_credentials_bad_input_is_one_line(tmp_path, capsys, context):
    path = tmp_path / "kubeconfig"
    if context:
        path.write_text(yaml.safe_dump({"contexts": [{"name": "a", "context": {}}], "current-context": "a"}))
    assert credentials.print_java_credentials(str(path), context) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seatrials java-credentials: ")

"""Kubeconfig credential data, and the client-pem-not-base64 check.

Field report 2.5: a Java client (fabric8 `CertUtils` before 5.6.0) was given raw
PEM where base64 of PEM is expected. fabric8 ran okio's lenient
`ByteString.decodeBase64` on it and, when that did not return null, used the
result as the certificate. okio skips spaces and newlines and reads '-' as
'+', so a PEM whose body has no '=' padding "decodes" into garbage.

Every `*-data` field must be strict base64 (RFC 4648 alphabet, padding, no
whitespace) of PEM, and a TLS handshake with the credentials must succeed.
No key material or token ever appears in a message: evidence names the field
and the problem, and shows at most the first 20 characters of a certificate.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import re
import socket
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from seatrials.causes import Verdict
from seatrials.kubeconfig import DataField, SetupError, data_fields, looks_like_pem, read, select_context

CAUSE = "client-pem-not-base64"
STRICT_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
OKIO_SKIPPED = b"\n\r \t"
SHOWN_CHARS = 20
HANDSHAKE_TIMEOUT = 10.0
SELF_SUBJECT_REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


class CredentialError(Exception):
    """A kubeconfig's credentials cannot be used; str(self) is one line, without secrets."""


def is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def strict_base64(value: str) -> bytes | None:
    """The bytes of canonical RFC 4648 base64 (alphabet, padding, no whitespace), else None."""
    if len(value) % 4 or not STRICT_BASE64.fullmatch(value):
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data).decode() == value else None  # no stray bits after the last byte


def okio_decode_base64(text: str) -> bytes | None:
    """okio's `ByteString.decodeBase64` (okio 1.x Base64.decode, same rules in 2.x/3.x), as fabric8 < 5.6.0 used it.

    Trailing '=', '\\n', '\\r', ' ', '\\t' are dropped; those whitespace bytes are
    skipped anywhere; '-' and '_' read as '+' and '/'; any other byte (an inner
    '=' too) returns None, and so does a last group of a single character.
    """
    data = text.encode("utf-8")
    limit = len(data)
    while limit > 0 and data[limit - 1] in b"=" + OKIO_SKIPPED:
        limit -= 1
    out = bytearray()
    word = count = 0
    for c in data[:limit]:
        if 65 <= c <= 90:  # A-Z
            bits = c - 65
        elif 97 <= c <= 122:  # a-z
            bits = c - 71
        elif 48 <= c <= 57:  # 0-9
            bits = c + 4
        elif c in b"+-":
            bits = 62
        elif c in b"/_":
            bits = 63
        elif c in OKIO_SKIPPED:
            continue
        else:
            return None
        word = ((word << 6) | bits) & 0xFFFFFF
        count += 1
        if count % 4 == 0:
            out += word.to_bytes(3, "big")
    left = count % 4
    if left == 1:
        return None
    if left == 2:
        out.append((word << 12) >> 16 & 0xFF)
    elif left == 3:
        out += ((word << 6) >> 8 & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


def okio_reading(value: str, kind: str) -> str:
    """What fabric8 before 5.6.0 makes of the value."""
    decoded = okio_decode_base64(value)
    if decoded is None:
        return "okio rejects it, so fabric8 before 5.6.0 falls back to the raw text"
    if is_pem(decoded):
        return "okio decodes it to PEM"
    return (f"okio decodes it to {len(decoded)} bytes of non-PEM garbage, which fabric8 before 5.6.0 "
            f"uses as the {kind}")


def why_not_strict(value: str) -> str:
    for i, ch in enumerate(value, 1):
        if ch in "\n\r":
            return f"a line break at character {i}"
        if ch in " \t":
            return f"whitespace at character {i}"
        if ch in "-_":
            return f"URL-safe '{ch}' at character {i}"
        if ch == "=" and value[i:].strip("="):
            return f"'=' inside the data at character {i}"
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=")):
            return f"a character outside the base64 alphabet at character {i}"
    if len(value) % 4:
        return "its length is not a multiple of 4 (missing '=' padding)"
    return "bits set after the last byte (not the canonical encoding)"


def field_problem(field: DataField) -> str | None:
    """Why this field is not strict base64 of PEM, and what a lenient decoder makes of it; None when fine."""
    value = field.value
    if not isinstance(value, str):
        return f"is a YAML {type(value).__name__}, not a base64 string"
    shown = "" if field.is_key else f" (starts {value[:SHOWN_CHARS]!r})"
    if looks_like_pem(value):
        return f"is raw PEM text{shown}, not base64 of PEM; {okio_reading(value, field.kind)}"
    decoded = strict_base64(value)
    if decoded is None:
        return f"is not strict base64: {why_not_strict(value)}{shown}; {okio_reading(value, field.kind)}"
    if not is_pem(decoded):
        again = strict_base64(decoded.decode("ascii", "replace").strip())
        hint = " (base64 encoded twice)" if again is not None and is_pem(again) else ""
        return f"is strict base64 but decodes to {len(decoded)} bytes that are not PEM{hint}"
    return None


def as_pem(value, where: str) -> bytes:
    """The PEM a `*-data` value stands for however it is encoded (for the handshake and java-credentials)."""
    if not isinstance(value, str):
        raise CredentialError(f"{where} is not a string")
    if looks_like_pem(value):
        return value.encode()
    decoded = strict_base64(value)
    if decoded is None:
        try:
            decoded = base64.b64decode(value)  # the Go and Python clients' reading: non-alphabet bytes dropped
        except (binascii.Error, ValueError):
            raise CredentialError(f"{where} cannot be decoded as base64") from None
    if not is_pem(decoded):
        raise CredentialError(f"{where} does not decode to PEM")
    return decoded


@dataclass
class Credentials:
    """What a client connects with for one context: server, PEM material and how it authenticates."""

    context: str
    server: str
    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    insecure: bool
    tls_server_name: str | None
    auth: str  # "client certificate", "bearer token", "exec plugin (...)", ...


def named(kubeconfig: dict, listing: str, name: str | None, body_key: str) -> dict | None:
    entry = next((e for e in kubeconfig.get(listing) or [] if isinstance(e, dict) and e.get("name") == name), None)
    body = entry.get(body_key) if entry else None
    return body if isinstance(body, dict) else None


def pem_from(body: dict, data_key: str, file_key: str, listing: str, name: str, base_dir: Path) -> bytes | None:
    where = f"{listing}[{name}].{data_key}"
    if body.get(data_key):
        return as_pem(body[data_key], where)
    if body.get(file_key):
        path = base_dir / Path(body[file_key]).expanduser()
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CredentialError(f"{listing}[{name}].{file_key} {path}: {exc.strerror}") from None
    return None


def context_credentials(kubeconfig: dict, context: str, base_dir: Path) -> Credentials:
    ctx = named(kubeconfig, "contexts", context, "context")
    if not ctx:
        raise CredentialError(f"context {context!r} is not in the kubeconfig")
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    cluster = named(kubeconfig, "clusters", cluster_name, "cluster")
    if not cluster or not cluster.get("server"):
        raise CredentialError(f"context {context!r}: cluster {cluster_name!r} has no server")
    user = named(kubeconfig, "users", user_name, "user") or {}
    ca = pem_from(cluster, "certificate-authority-data", "certificate-authority", "clusters", cluster_name, base_dir)
    cert = pem_from(user, "client-certificate-data", "client-certificate", "users", user_name, base_dir)
    key = pem_from(user, "client-key-data", "client-key", "users", user_name, base_dir)
    if cert and key:
        auth = "client certificate"
    elif user.get("token") or user.get("tokenFile"):
        auth = "bearer token"
    elif user.get("exec"):
        auth = f"exec plugin ({user['exec'].get('command', '?')})"
    elif user.get("auth-provider"):
        auth = f"auth provider ({user['auth-provider'].get('name', '?')})"
    else:
        auth = "no client credentials"
    return Credentials(context, cluster["server"], ca, cert, key, bool(cluster.get("insecure-skip-tls-verify")),
                       cluster.get("tls-server-name"), auth)


def tls_context(creds: Credentials) -> ssl.SSLContext:
    """A client context holding the kubeconfig's CA, certificate and key (raises ssl.SSLError if they do not load)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca:
        ctx.load_verify_locations(cadata=creds.ca.decode("ascii", "replace"))
    else:
        ctx.load_default_certs()
    if creds.cert and creds.key:
        with tempfile.TemporaryDirectory(prefix="seatrials-tls-") as tmp:  # ssl loads key pairs only from files
            cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            for path, data in ((cert_file, creds.cert), (key_file, creds.key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            ctx.load_cert_chain(cert_file, key_file)
    return ctx


class Unreachable(Exception):
    """No TCP connection to the server: says nothing about the credentials."""


def exchange(ctx: ssl.SSLContext, creds: Credentials, method: str, path: str, body: bytes,
             timeout: float) -> tuple[int, bytes, str]:
    """One HTTP/1.1 request over a fresh TLS connection: (status, body, TLS version).

    Raises Unreachable when TCP fails; any error after that (a TLS alert, a
    connection closed by the server) is about the credentials and propagates.
    """
    url = urlsplit(creds.server)
    host, port = url.hostname or "", url.port or 443
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise Unreachable(f"cannot reach {host}:{port} ({exc.strerror or exc})") from None
    with raw, ctx.wrap_socket(raw, server_hostname=creds.tls_server_name or host) as tls:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: application/json\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        tls.sendall(head.encode() + body)
        response = http.client.HTTPResponse(tls)  # a refused client certificate surfaces here with TLS 1.3
        response.begin()
        return response.status, response.read(), tls.version() or "TLS"


def handshake(creds: Credentials, timeout: float = HANDSHAKE_TIMEOUT) -> tuple[str, str]:
    """State and detail of a real TLS handshake with the credentials, and who the server says we are.

    Only the client certificate authenticates: a token is never sent. A
    SelfSubjectReview (authentication.k8s.io/v1) names the user the
    certificate maps to; an older apiserver without it answers GET /api
    only to an authenticated client.
    """
    where = f"TLS handshake with {creds.server} (context {creds.context})"
    try:
        ctx = tls_context(creds)
    except ssl.SSLError as exc:
        return "fault", f"{where}: the CA or the client certificate and key do not load ({ssl_reason(exc)})"
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    try:
        status, body, version = exchange(ctx, creds, "POST", SELF_SUBJECT_REVIEW, review, timeout)
        if status == 404:
            status, body, version = exchange(ctx, creds, "GET", "/api", b"", timeout)
    except Unreachable as exc:
        return "unreadable", f"{where}: {exc}"
    except ssl.SSLError as exc:
        return "fault", f"{where} failed: {ssl_reason(exc)}"
    except (OSError, http.client.HTTPException) as exc:
        return "fault", (f"{where}: the server closed the connection ({type(exc).__name__}: {exc}), as it does "
                         "when it refuses the client certificate")
    if creds.auth != "client certificate":
        checked = "server not verified: insecure-skip-tls-verify" if creds.insecure else "server verified"
        return "ok", f"{where} completed ({version}, {checked}); the context authenticates with {creds.auth}"
    user = reviewed_user(body) if status in (200, 201) else None
    expected = certificate_cn(creds.cert)
    if status in (200, 201) and user in (None, expected):
        return "ok", f"{where} completed ({version}); the server accepted the client certificate" + (
            f" as {user}" if user else "")
    if user == "system:anonymous" or status in (401, 403):
        return "fault", (f"{where} completed ({version}) but the server did not take the client certificate "
                         f"(CN={expected}): HTTP {status}" + (f", user {user}" if user else ""))
    return "ok", f"{where} completed ({version}); HTTP {status}, user {user}"


def reviewed_user(body: bytes) -> str | None:
    try:
        return json.loads(body)["status"]["userInfo"]["username"]
    except (ValueError, KeyError, TypeError):
        return None


def certificate_cn(pem: bytes | None) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(pem or b"")
    except ValueError:
        return None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


TLS_MEANING = {  # OpenSSL's reason -> what it says about the credentials
    "TLSV1_ALERT_UNKNOWN_CA": "the server does not trust the client certificate's CA",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate and got none",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server says the client certificate has expired",
    "unable to get local issuer certificate": "the kubeconfig's CA did not sign the server's certificate",
    "self-signed certificate in certificate chain": "the kubeconfig's CA did not sign the server's certificate",
    "certificate has expired": "the server's certificate has expired",
    "KEY_VALUES_MISMATCH": "the client key does not belong to the client certificate",
    # the server's alert can lose the race with its close
    "EOF occurred in violation of protocol": "the server closed the connection in the handshake, as it does "
                                             "when it refuses or requires a client certificate",
}


def ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    meaning = TLS_MEANING.get(reason) or next((m for r, m in TLS_MEANING.items() if r in reason), None)
    return f"{reason}: {meaning}" if meaning else reason


def credentials_verdict(cluster, client_kubeconfigs: list[str]) -> Verdict:
    """Judge the kubeconfig in use (its raw data, before seatrials re-encodes it) and every client kubeconfig."""
    verdict = Verdict(CAUSE)
    check_kubeconfig(verdict, f"kubeconfig {cluster.kubeconfig_path}", cluster.kubeconfig, cluster.context,
                     Path(cluster.kubeconfig_path).expanduser().parent)
    for path in client_kubeconfigs:
        check_kubeconfig_file(verdict, path)
    return verdict


def check_kubeconfig(verdict: Verdict, label: str, kubeconfig: dict, context: str, base_dir: Path) -> None:
    """Add the field and handshake observations of one kubeconfig (as loaded, before any re-encoding)."""
    fine = []
    for field in data_fields(kubeconfig):
        problem = field_problem(field)
        if problem:
            verdict.add(f"{label}: {field.where}", "fault", problem)
        else:
            fine.append(field.where)
    if fine:
        verdict.add(f"{label}: *-data", "ok", f"strict base64 of PEM: {', '.join(fine)}")
    try:
        creds = context_credentials(kubeconfig, context, base_dir)
    except CredentialError as exc:
        verdict.add(f"{label}: handshake", "fault", f"not attempted: {exc}")
        return
    verdict.add(f"{label}: handshake", *handshake(creds))


def check_kubeconfig_file(verdict: Verdict, path: str) -> None:
    """The same for a kubeconfig handed to another client (its current context)."""
    try:
        kubeconfig, context = load_kubeconfig(path, None)
    except CredentialError as exc:
        verdict.add(f"kubeconfig {path}", "unreadable", str(exc))
        return
    check_kubeconfig(verdict, f"kubeconfig {path}", kubeconfig, context, Path(path).expanduser().parent)


def load_kubeconfig(path: str, context: str | None) -> tuple[dict, str]:
    """A kubeconfig handed to another client: its exec plugin need not be installed on this machine."""
    try:
        kubeconfig = read(path)
        return kubeconfig, select_context(kubeconfig, context, path, local_plugins=False)
    except SetupError as exc:
        raise CredentialError(str(exc)) from None


def key_algorithm(pem: bytes) -> str:
    """fabric8's clientKeyAlgo for the key: RSA or EC."""
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return "unknown (the key does not load without a passphrase)"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC"
    return type(key).__name__


def b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def print_java_credentials(path: str, context: str | None) -> int:
    """`seatrials java-credentials`: print what a Java (fabric8) client should be given; 0, or 1 on bad input."""
    try:
        kubeconfig, context = load_kubeconfig(path, context)
        creds = context_credentials(kubeconfig, context, Path(path).expanduser().parent)
    except CredentialError as exc:
        print(f"seatrials java-credentials: {exc}", file=sys.stderr)
        return 1
    print(f"# fabric8 Config for context {context!r} of {path}: strict base64 of PEM, paste as is")
    print(f"masterUrl: {creds.server}")
    if creds.insecure:
        print("trustCerts: true  # the kubeconfig skips TLS verification")
    if creds.ca:
        print(f"caCertData: {b64(creds.ca)}")
    if creds.auth == "client certificate":
        print(f"clientCertData: {b64(creds.cert)}")
        print(f"clientKeyData: {b64(creds.key)}")
        print(f"clientKeyAlgo: {key_algorithm(creds.key)}")
    elif creds.auth == "bearer token":
        print("# the context authenticates with a bearer token: give the client that token (oauthToken); "
              "not printed here")
    elif creds.auth.startswith("exec plugin"):
        print(f"# the context authenticates with an {creds.auth}: the Java client must run the same plugin "
              "(give it the kubeconfig file itself)")
    else:
        print(f"# the context has {creds.auth}")
    return 0

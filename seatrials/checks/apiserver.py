"""The apiserver's front-proxy (requestheader) settings, and the
apiserver-requestheader-allowed-names check.

Field report 2.4: kube-apiserver ran with --requestheader-allowed-names=aggregator
while --requestheader-client-ca-file was the CA that also signed the nodes'
client certificates. The requestheader authenticator runs before the plain
client-certificate one, so every kubelet request was first tried as a front
proxy and refused ("x509: subject with cn=system:node:<ip> is not in the
allowed list: [aggregator]").

Signals: the kube-system/extension-apiserver-authentication ConfigMap (the
apiserver publishes its authentication settings there; primary), the static
pod's flags, the apiserver's log, and aggregated APIServices refused on
authentication. Current kube-apiservers log the refusal only when no later
authenticator accepts the request (apiserver pkg/authentication/request/union),
so a clean log is never proof of health.
"""

from __future__ import annotations

import json
import re
import select
import shlex
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes.client.rest import ApiException
from OpenSSL import SSL

from seatrials.causes import UNKNOWN, Result, Verdict
from seatrials.checks.kubelet import TAIL_LINES, LogTail, Unreadable, read_failure, service_log, tail
from seatrials.cluster import concurrently, known

CAUSE = "apiserver-requestheader-allowed-names"
OPEN = "requestheader-open-impersonation"
STALE = "apiserver-auth-configmap-stale"
LIVE = "live client CAs"
FLAGS = "apiserver flags"
LIVE_TIMEOUT = 5.0
AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")
NOT_ALLOWED = re.compile(r"x509: subject with cn=(?P<cn>.*?) is not in the allowed list(?:: \[(?P<allowed>[^\]]*)\])?")
# kube-aggregator's discovery check (remote_available_controller.go) reports
# "bad status from <url>: <code>"; a TLS alert from the extension apiserver
# means it refused the aggregator's proxy client certificate.
AUTH_REFUSAL = re.compile(r"bad status from \S+: (401|403)\b"
                          r"|remote error: tls: (bad certificate|unknown certificate authority|certificate required)")
NOT_PROOF = ("current kube-apiservers log it only for requests no other authenticator accepts, "
             "so a clean log does not clear the ConfigMap and flags")


def front_proxy_result(cluster, topology) -> Result:
    """The fault, or a ConfigMap that only remembers it (apiserver-auth-configmap-stale), or ambiguity said plainly;
    a pass reports the flags it read from the apiservers' static pods."""
    verdict = front_proxy_verdict(cluster, topology)
    result = stale_or_verdict(verdict)
    if result.ok:
        result.properties |= {o.signal: o.detail for o in verdict.of_state("ok") if o.signal.startswith(FLAGS)}
    return result


def front_proxy_verdict(cluster, topology) -> Verdict:
    verdict = Verdict(CAUSE)
    data = configmap_signal(verdict, cluster)
    live_signals(verdict, topology, data)
    try:
        pods = apiserver_pods(cluster)
    except Unreadable as exc:
        pods = []
        verdict.add(FLAGS, "unreadable", str(exc))
    else:
        if not pods:
            verdict.add(FLAGS, "unreadable", "apiserver does not run as a pod here")
        for pod in pods:
            name, container = pod.metadata.name, apiserver_container(pod)
            verdict.add(f"{FLAGS} ({name}, static pod)", *judge_flags(flags_of(container)))
    sources = log_sources(cluster, pods, topology.masters)
    if not sources:
        verdict.add("apiserver log", "unreadable", "no apiserver pod and no master node to read the log from")
    for (signal, _), judged in zip(sources, concurrently(judged_log, [read for _, read in sources]), strict=True):
        verdict.add(signal, *judged)
    try:
        states = aggregated_apis(cluster)
    except Unreadable as exc:
        verdict.add("aggregated APIServices", "unreadable", str(exc))
    else:
        refused = [s for s in states if s.refused_authentication]
        for s in refused:
            verdict.add(f"APIService {s.name}", "fault",
                        f"not Available: {s.reason}: {s.message} (the extension apiserver {s.service} refused the "
                        "aggregator's front-proxy client certificate, --proxy-client-cert-file)")
        if not refused:
            verdict.add("aggregated APIServices", "ok",
                        f"{len(states)} aggregated, none refused on authentication")
    return verdict


def configmap_signal(verdict: Verdict, cluster) -> dict | None:
    namespace, name = AUTH_CONFIGMAP
    signal = f"ConfigMap {namespace}/{name}"
    try:
        data = cluster.core.read_namespaced_config_map(name, namespace).data or {}
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        verdict.add(signal, "unreadable", read_failure(exc))
        return None
    verdict.add(signal, *judge_authentication_config(data))
    return data


# ---------------------------------------------------------------- what the live apiservers use
def name_key(components) -> tuple:
    """A distinguished name as sorted (attribute, value) text pairs, from pyOpenSSL or cryptography."""
    return tuple(sorted(components))


def ca_names(bundle: str) -> set[tuple]:
    try:
        cas = x509.load_pem_x509_certificates(bundle.encode()) if bundle.strip() else []
    except ValueError:
        return set()
    return {name_key((a.rfc4514_attribute_name, str(a.value)) for a in ca.subject) for ca in cas}


def live_client_cas(host: str, port: int, timeout: float = LIVE_TIMEOUT) -> set[tuple]:
    """The CA names an apiserver asks client certificates of in its TLS handshake: its --client-ca-file and
    --requestheader-client-ca-file as it runs now (Go's TLS server lists both in its CertificateRequest)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE, lambda *_: True)  # only the CA list is read; nothing is sent
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setblocking(False)
        conn = SSL.Connection(context, sock)
        conn.set_connect_state()
        while True:
            try:
                conn.do_handshake()
                break
            except (SSL.WantReadError, SSL.WantWriteError) as want:
                left = deadline - time.monotonic()
                waits = ([sock], []) if isinstance(want, SSL.WantReadError) else ([], [sock])
                if left <= 0 or select.select(*waits, [], left) == ([], [], []):
                    raise TimeoutError(f"TLS handshake with {host}:{port} timed out after {timeout:g} s") from None
        names = conn.get_client_ca_list()
    return {name_key((k.decode(), v.decode()) for k, v in n.get_components()) for n in names}


def live_signals(verdict: Verdict, topology, data: dict | None) -> None:
    """Per apiserver endpoint: does the live apiserver trust a front-proxy CA separate from its client CA?"""
    if not data or not data.get("requestheader-client-ca-file"):
        return
    client = ca_names(data.get("client-ca-file") or "")
    allowed = data.get("requestheader-allowed-names") or "[]"
    for ip, port in topology.apiserver_endpoints:
        signal = f"{LIVE} ({ip}:{port})"
        try:
            live = live_client_cas(ip, port)
        except (OSError, SSL.Error) as exc:
            verdict.add(signal, "unreadable", f"TLS handshake failed: {exc}")
            continue
        extra = live - client
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in n) for n in sorted(live))
        if extra:
            verdict.add(signal, "ok", f"asks for client certificates of [{shown}]: a front-proxy CA separate from "
                                      "the client CA")
        elif allowed != "[]":
            verdict.add(signal, "fault", f"asks for client certificates of [{shown}] only: its request-header CA "
                                         "is the client CA")
        else:
            verdict.add(signal, "fault", f"asks for client certificates of [{shown}] only: its request-header CA "
                                         "is the client CA, with no allowed names", OPEN)


def stale_or_verdict(verdict: Verdict) -> Result:
    """When only the ConfigMap shows the fault while every live apiserver uses a separate front-proxy CA, the
    ConfigMap remembers an earlier configuration (apiservers merge into it and never remove): its own cause.
    When nothing live can be read and the ConfigMap shows such a merge, say so instead of guessing."""
    faults = verdict.of_state("fault")
    if not faults or any(not o.signal.startswith("ConfigMap") for o in faults):
        return verdict.result()
    live = [o for o in verdict.observations if o.signal.startswith(LIVE)]
    evidence = [o.line() for o in faults + live]
    if live and all(o.state == "ok" for o in live):
        return Result.failed(STALE, evidence, hint="the apiservers no longer run with the fault; the ConfigMap "
                             "still publishes it to extension apiservers")
    if not live or any(o.state == "fault" for o in live):
        return verdict.result()
    return Result.failed(UNKNOWN, evidence, hint=(
        "candidates: apiserver-requestheader-allowed-names (an apiserver runs with it) or "
        "apiserver-auth-configmap-stale (the ConfigMap remembers an earlier configuration); tell them apart "
        "with `openssl s_client -connect <endpoint> </dev/null 2>/dev/null | grep -A4 'Acceptable client "
        "certificate CA names'` on each apiserver endpoint (a CA beyond the client CA: stale) or the "
        "apiservers' --requestheader-* flags"))


def judge_authentication_config(data: dict) -> tuple[str, ...]:
    """State and detail for the extension-apiserver-authentication ConfigMap's data."""
    requestheader_bundle = data.get("requestheader-client-ca-file")
    if not requestheader_bundle:
        return "ok", "no requestheader-client-ca-file: front-proxy authentication is off"
    try:
        allowed = json.loads(data.get("requestheader-allowed-names") or "[]")
    except ValueError:
        return "unreadable", "requestheader-allowed-names is not the JSON list the apiserver writes"
    try:
        requestheader_cas = ca_bundle(requestheader_bundle, "requestheader-client-ca-file")
        client_cas = ca_bundle(data.get("client-ca-file") or "", "client-ca-file")
    except ValueError as exc:
        return "unreadable", str(exc)
    shared = [ca for ca in requestheader_cas if any(same_ca(ca, other) for other in client_cas)]
    listed = f"[{', '.join(map(str, allowed))}]"
    if not shared:
        return "ok", (f"requestheader CA ({names(requestheader_cas)}) is separate from the client CA "
                      f"({names(client_cas) or 'none'}), allowed names {listed}")
    if allowed:
        return "fault", (f"requestheader CA == client CA ({names(shared)}), allowed names {listed}: every client "
                         "certificate of that CA is first tried as a front proxy and rejected unless its CN is "
                         "in the list")
    return "fault", (f"requestheader CA == client CA ({names(shared)}) with no allowed names: every client "
                     "certificate of that CA may assert any user and group in X-Remote-User/X-Remote-Group"), OPEN


def ca_bundle(pem: str, key: str) -> list[x509.Certificate]:
    if not pem.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError(f"{key} is not a PEM certificate bundle") from None


def same_ca(a: x509.Certificate, b: x509.Certificate) -> bool:
    """Same certificate, or the same subject and key (a re-issued CA verifies the same client certificates)."""
    if a == b:
        return True
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.subject == b.subject and a.public_key().public_bytes(*der) == b.public_key().public_bytes(*der)


def names(cas: list[x509.Certificate]) -> str:
    return "; ".join(ca.subject.rfc4514_string() for ca in cas)


def apiserver_pods(cluster) -> list:
    """kube-system pods of the apiserver (static pods: component=kube-apiserver or kube-apiserver-<node>)."""
    try:
        pods = cluster.core.list_namespaced_pod("kube-system").items
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        raise Unreadable(f"pods in kube-system: {read_failure(exc)}") from None
    return [p for p in pods if (p.metadata.labels or {}).get("component") == "kube-apiserver"
            or p.metadata.name.startswith("kube-apiserver-")]


def apiserver_container(pod):
    containers = pod.spec.containers
    return next((c for c in containers if c.name == "kube-apiserver"), None) or next(
        (c for c in containers if "kube-apiserver" in " ".join((c.command or []) + (c.args or []))), containers[0])


def flags_of(container) -> dict[str, str]:
    """--name=value and --name value flags of a container's command line (also inside `sh -c "..."`)."""
    words = [w for item in (container.command or []) + (container.args or []) for w in split_words(item)]
    flags = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, eq, value = word[2:].partition("=")
        if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
            value = words[i + 1]
        flags[name] = value
    return flags


def split_words(item: str) -> list[str]:
    try:
        return shlex.split(item)
    except ValueError:  # unbalanced quotes: still read the flags around them
        return item.split()


def judge_flags(flags: dict[str, str]) -> tuple[str, ...]:
    allowed = [n for n in flags.get("requestheader-allowed-names", "").split(",") if n]
    requestheader_ca = flags.get("requestheader-client-ca-file")
    client_ca = flags.get("client-ca-file")
    shown = (f"--requestheader-allowed-names={','.join(allowed)} "
             f"--requestheader-client-ca-file={requestheader_ca or '(not set)'} "
             f"--client-ca-file={client_ca or '(not set)'} "
             f"--proxy-client-cert-file={flags.get('proxy-client-cert-file') or '(not set)'}")
    if requestheader_ca and requestheader_ca == client_ca and allowed:
        return "fault", (f"{shown}: the requestheader CA is the client CA file, so every client certificate "
                         f"is first tried as a front proxy and refused unless its CN is in [{', '.join(allowed)}]")
    if requestheader_ca and requestheader_ca == client_ca:
        return "fault", (f"{shown}: the requestheader CA is the client CA file with no allowed names, so every "
                         "client certificate may assert any user and group"), OPEN
    return "ok", shown


def log_sources(cluster, pods: list, masters: list) -> list[tuple[str, Callable[[], LogTail]]]:
    """(signal, reader) for each apiserver pod's log, else for each master's node log; readers raise Unreadable."""
    def pod_log(pod) -> LogTail:
        try:
            text = cluster.core.read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace,
                                                        container=apiserver_container(pod).name,
                                                        tail_lines=TAIL_LINES)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise Unreadable(read_failure(exc)) from None
        return LogTail(f"pod {pod.metadata.name} log", tail(text))

    def node_log(master) -> LogTail:
        return service_log(cluster, master.name, "kube-apiserver", ("kube-apiserver.log",))

    if pods:
        return [(f"apiserver log ({p.metadata.name})", partial(pod_log, p)) for p in pods]
    return [(f"apiserver log ({m.name})", partial(node_log, m)) for m in masters]


def judged_log(read: Callable[[], LogTail]) -> tuple[str, str]:
    """judge_log of the log `read` answers (one master's or pod's, read beside the others), or why it is unreadable."""
    try:
        return judge_log(read())
    except Unreadable as exc:
        return "unreadable", str(exc)


def judge_log(log: LogTail) -> tuple[str, str]:
    lines, started = log.since_start()
    since = f" since the apiserver's last start ({started})" if started else ""
    matches = [m for m in map(NOT_ALLOWED.search, lines) if m]
    if not matches:
        return "ok", f"no 'x509: subject with cn=... is not in the allowed list' line{since} ({log.describe()}); " \
                     + NOT_PROOF
    cns = ", ".join(f"cn={cn} x{n}" for cn, n in Counter(m.group("cn") for m in matches).most_common(5))
    allowed = sorted({m.group("allowed") for m in matches if m.group("allowed") is not None})
    listed = f"; allowed list [{'], ['.join(allowed)}]" if allowed else ""
    return "fault", (f"{len(matches)} 'x509: subject with cn=... is not in the allowed list' lines{since}: "
                     f"{cns}{listed} ({log.describe()})")


@dataclass(frozen=True)
class ApiServiceState:
    name: str
    service: str  # namespace/name of the extension apiserver's Service
    available: bool
    reason: str
    message: str

    @property
    def refused_authentication(self) -> bool:
        return not self.available and bool(AUTH_REFUSAL.search(self.message))


def aggregated_apis(cluster) -> list[ApiServiceState]:
    """Every APIService served by an extension apiserver (spec.service set) and its Available condition; read once
    for both checks that judge them (front_proxy_verdict, aggregated_apis_result)."""
    memo = known(cluster)
    if "APIServices" not in memo:
        try:
            memo["APIServices"] = cluster.apiregistration.list_api_service().items
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise Unreadable(f"APIServices: {read_failure(exc)}") from None
    items = memo["APIServices"]
    states = []
    for item in items:
        service = item.spec.service
        if not service:
            continue
        conditions = (item.status.conditions if item.status else None) or []
        available = next((c for c in conditions if c.type == "Available"), None)
        states.append(ApiServiceState(
            item.metadata.name, f"{service.namespace}/{service.name}",
            available is not None and available.status == "True",
            (available.reason if available else None) or "no Available condition",
            (available.message if available else None) or ""))
    return states


def aggregated_apis_result(cluster) -> Result:
    """Failed (cause unknown) on an aggregated API that is not Available for a reason other than authentication.

    Authentication refusals belong to front_proxy_verdict; everything else
    (no endpoints, timeouts, a wrong caBundle) has no documented cause.
    """
    try:
        states = aggregated_apis(cluster)
    except Unreadable as exc:
        return Result.not_checked(str(exc))
    if not states:
        return Result.not_applicable("no aggregated APIService (spec.service) in this cluster")
    failing = [s for s in states if not s.available and not s.refused_authentication]
    if not failing:
        return Result.passed()
    return Result.failed(
        UNKNOWN, [f"APIService {s.name} (service {s.service}) not Available: {s.reason}: {s.message}"
                         for s in failing],
        hint="MissingEndpoints/ServiceNotFound: the extension apiserver is not running; a timeout or 'no route to "
             "host': the path from the apiserver to the service's pods (see the pod network checks); an x509 "
             "error: the APIService's caBundle")

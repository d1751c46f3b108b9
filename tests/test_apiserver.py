"""apiserver-requestheader-allowed-names: the authentication ConfigMap with real
certificates, static-pod flags, real log samples (tests/data), APIService
conditions as kube-aggregator writes them, and the verdict over a fake API."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from OpenSSL import SSL

from seatrials.checks import apiserver
from seatrials.checks.kubelet import LogTail, tail
from seatrials.topology import Node, Topology
from tests.test_credentials import issue, new_ca
from tests.test_kubelet import FakeNodeProxy, api_error, query, sample

FIELD_REPORT_FLAGS = [  # the field report's apiserver (section 2.4), kubernetes-the-hard-way paths
    "kube-apiserver", "--client-ca-file=/var/lib/kubernetes/ca.pem",
    "--requestheader-client-ca-file=/var/lib/kubernetes/ca.pem", "--requestheader-allowed-names=aggregator",
    "--proxy-client-cert-file=/var/lib/kubernetes/aggregator.pem",
    "--proxy-client-key-file=/var/lib/kubernetes/aggregator-key.pem", "--secure-port=6444",
]
KUBEADM_FLAGS = [
    "kube-apiserver", "--client-ca-file=/etc/kubernetes/pki/ca.crt",
    "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
    "--requestheader-allowed-names=front-proxy-client",
    "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
]


@pytest.fixture(scope="module")
def cas():
    cluster_ca = new_ca("kubernetes")
    node = issue(cluster_ca, "system:node:worker-1", "system:nodes")
    node.cert.verify_directly_issued_by(cluster_ca.cert)  # the CA signs the nodes' client certificates
    return {"cluster": cluster_ca, "front_proxy": new_ca("front-proxy-ca"), "node": node}


def pem(*issued) -> str:
    return "".join(i.cert_pem.decode() for i in issued)


def auth_data(client_ca: str, requestheader_ca: str, allowed: list[str]) -> dict:
    """The ConfigMap's data as the apiserver writes it (clusterauthenticationtrust controller)."""
    return {"client-ca-file": client_ca, "requestheader-client-ca-file": requestheader_ca,
            "requestheader-allowed-names": json.dumps(allowed),
            "requestheader-username-headers": '["X-Remote-User"]', "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}


# ---------------------------------------------------------------- the ConfigMap
def test_shared_ca_with_allowed_names_is_the_fault(cas):
    state, detail = apiserver.judge_authentication_config(
        auth_data(pem(cas["cluster"]), pem(cas["cluster"]), ["aggregator"]))
    assert state == "fault"
    assert detail == ("requestheader CA == client CA (CN=kubernetes), allowed names [aggregator]: every "
                      "client certificate of that CA is first tried as a front proxy and rejected unless its CN "
                      "is in the list")


def test_a_reissued_ca_with_the_same_key_in_a_bundle_is_the_same_ca(cas):
    reissued = new_ca("kubernetes", key=cas["cluster"].key)
    assert reissued.cert != cas["cluster"].cert
    state, _ = apiserver.judge_authentication_config(
        auth_data(pem(cas["front_proxy"], cas["cluster"]), pem(reissued), ["aggregator"]))
    assert state == "fault"


def test_separate_front_proxy_ca_is_fine(cas):
    state, detail = apiserver.judge_authentication_config(
        auth_data(pem(cas["cluster"]), pem(cas["front_proxy"]), ["front-proxy-client"]))
    assert state == "ok" and "separate from the client CA (CN=kubernetes)" in detail


def test_shared_ca_without_allowed_names_is_open_impersonation(cas):
    state, detail, cause = apiserver.judge_authentication_config(
        auth_data(pem(cas["cluster"]), pem(cas["cluster"]), []))
    assert (state, cause) == ("fault", "requestheader-open-impersonation") and "X-Remote-User" in detail


def test_the_field_reports_fix_fails_as_critical_even_next_to_the_milder_fault(cas, tls_apiserver):
    endpoint = tls_apiserver(cas["cluster"])
    api = FakeApi(configmap=auth_data(pem(cas["cluster"]), pem(cas["cluster"]), []),
                  pods=[static_pod("master-1", [f for f in FIELD_REPORT_FLAGS if "allowed-names" not in f])],
                  pod_logs={"kube-apiserver-master-1": "I1127 15:50:57.419020 9367 server.go:150] Version: v1.34.4\n"})
    result = apiserver.front_proxy_result(api, topology("master-1", endpoint=endpoint))
    assert result.finding.cause == "requestheader-open-impersonation"
    assert "with no allowed names" in str(result)


def test_no_requestheader_ca_means_no_front_proxy():
    assert apiserver.judge_authentication_config({"client-ca-file": "x"})[0] == "ok"


def test_a_broken_bundle_is_unreadable(cas):
    state, detail = apiserver.judge_authentication_config(auth_data("not pem", pem(cas["cluster"]), ["a"]))
    assert (state, detail) == ("unreadable", "client-ca-file is not a PEM certificate bundle")


# ---------------------------------------------------------------- the static pod's flags
def container(command, args=None, name="kube-apiserver"):
    return client.V1Container(name=name, command=command, args=args)


def test_field_report_flags_are_the_fault():
    state, detail = apiserver.judge_flags(apiserver.flags_of(container(FIELD_REPORT_FLAGS)))
    assert state == "fault"
    assert "--requestheader-allowed-names=aggregator --requestheader-client-ca-file=/var/lib/kubernetes/ca.pem" \
        in detail
    assert "--proxy-client-cert-file=/var/lib/kubernetes/aggregator.pem" in detail


def test_kubeadm_flags_are_fine():
    assert apiserver.judge_flags(apiserver.flags_of(container(KUBEADM_FLAGS)))[0] == "ok"


def test_flags_with_separate_values_and_inside_a_shell():
    flags = apiserver.flags_of(container(["/bin/sh", "-c"], ['exec kube-apiserver --client-ca-file /ca.pem '
                                                             '--requestheader-client-ca-file="/ca.pem" '
                                                             '--requestheader-allowed-names=aggregator --v 2']))
    assert flags["client-ca-file"] == "/ca.pem" and flags["requestheader-client-ca-file"] == "/ca.pem"
    assert apiserver.judge_flags(flags)[0] == "fault"


# ---------------------------------------------------------------- the log
@pytest.mark.parametrize(("name", "cns", "allowed"), [
    ("apiserver-v1.9-not-allowed.log", "cn=system:node:[node IP] x2", "; allowed list [aggregator]"),
    ("apiserver-v1.34-not-allowed.log", "cn=system:node:worker-1 x1", ""),
    ("apiserver-v1.34-not-allowed.json.log", "cn=system:node:worker-1 x1", ""),
])
def test_not_in_the_allowed_list_in_every_log_form(name, cns, allowed):
    state, detail = apiserver.judge_log(LogTail("file", tail(sample(name))))
    assert state == "fault"
    assert "'x509: subject with cn=... is not in the allowed list' lines" in detail
    assert f": {cns}{allowed} (file, last" in detail


def test_a_clean_log_says_it_is_no_proof():
    state, detail = apiserver.judge_log(LogTail("file", ["I1127 15:50:57.419020 9367 server.go:150] Version: v1.34.4"]))
    assert state == "ok" and "since the apiserver's last start (I1127 15:50:57)" in detail
    assert "a clean log does not clear the ConfigMap and flags" in detail


# ---------------------------------------------------------------- APIServices
def api_service(name, available, reason="Passed", message="all checks passed"):
    group_version = name.split(".", 1)
    return client.V1APIService(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1APIServiceSpec(group=group_version[1], version=group_version[0], group_priority_minimum=100,
                                     version_priority=100, service=client.ApiregistrationV1ServiceReference(
                                         namespace="kube-system", name="metrics-server", port=443)),
        status=client.V1APIServiceStatus(conditions=[client.V1APIServiceCondition(
            type="Available", status="True" if available else "False", reason=reason, message=message)]))


LOCAL_V1 = client.V1APIService(metadata=client.V1ObjectMeta(name="v1."), spec=client.V1APIServiceSpec(
    group_priority_minimum=18000, version="v1", version_priority=1))
REFUSED = api_service("v1beta1.metrics.k8s.io", False, "FailedDiscoveryCheck",
                      "failing or missing response from https://10.200.1.5:4443/apis/metrics.k8s.io/v1beta1: "
                      "bad status from https://10.200.1.5:4443/apis/metrics.k8s.io/v1beta1: 401")
UNREACHABLE = api_service("v1beta1.custom.metrics.k8s.io", False, "FailedDiscoveryCheck",
                          "failing or missing response from https://10.200.2.7:443/apis/custom.metrics.k8s.io/"
                          "v1beta1: Get \"https://10.200.2.7:443/apis/custom.metrics.k8s.io/v1beta1\": "
                          "dial tcp 10.200.2.7:443: i/o timeout")


class FakeApi(FakeNodeProxy):
    """The parts of cluster.Cluster the apiserver check calls."""

    def __init__(self, configmap=None, pods=(), pod_logs=None, api_services=(LOCAL_V1,), node_answers=None):
        super().__init__(node_answers or {})

        def read_config_map(name, namespace):
            if configmap is None:
                raise api_error(404, "Not Found", json.dumps({"message": f'configmaps "{name}" not found'}))
            return client.V1ConfigMap(data=configmap)

        def read_log(name, namespace, container, tail_lines):
            return (pod_logs or {})[name]

        self.core = SimpleNamespace(read_namespaced_config_map=read_config_map, read_namespaced_pod_log=read_log,
                                    list_namespaced_pod=lambda namespace: client.V1PodList(items=list(pods)))
        self.apiregistration = SimpleNamespace(
            list_api_service=lambda: client.V1APIServiceList(items=list(api_services)))


def static_pod(node, command):
    return client.V1Pod(metadata=client.V1ObjectMeta(name=f"kube-apiserver-{node}", namespace="kube-system",
                                                     labels={"component": "kube-apiserver", "tier": "control-plane"}),
                        spec=client.V1PodSpec(containers=[container(command)]))


def topology(*masters, endpoint=("127.0.0.1", 9)):
    """Endpoints on loopback only: the live TLS check connects to them (port 9: refused, unreadable)."""
    nodes = [Node(m, "master", "10.240.0.11") for m in masters] + [Node("worker-1", "worker", "10.240.0.21")]
    return Topology(nodes, ("10.32.0.1", 443), [endpoint], "other")


@pytest.fixture
def tls_apiserver(cas):
    """A TLS server on loopback that asks for client certificates of the given CAs, as kube-apiserver does
    (its CertificateRequest lists --client-ca-file and --requestheader-client-ca-file); returns its endpoint."""
    stop = threading.Event()
    listeners = []

    def start(*client_cas) -> tuple[str, int]:
        serving = issue(cas["cluster"], "kube-apiserver", server_ip="127.0.0.1")
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate(serving.cert)
        context.use_privatekey(serving.key)
        for ca in client_cas:
            context.add_client_ca(ca.cert)
        context.set_verify(SSL.VERIFY_PEER, lambda *_: True)  # ask, do not require
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        listeners.append(listener)

        def serve():
            while not stop.is_set():
                try:
                    sock, _ = listener.accept()
                except OSError:
                    continue
                with sock:
                    conn = SSL.Connection(context, sock)
                    conn.set_accept_state()
                    with contextlib.suppress(SSL.Error, OSError):
                        conn.do_handshake()

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[:2]

    yield start
    stop.set()
    for listener in listeners:
        listener.close()


def test_field_report_cluster_fails_on_every_signal(cas):
    api = FakeApi(configmap=auth_data(pem(cas["cluster"]), pem(cas["cluster"]), ["aggregator"]),
                  pods=[static_pod("master-1", FIELD_REPORT_FLAGS)],
                  pod_logs={"kube-apiserver-master-1": sample("apiserver-v1.9-not-allowed.log")},
                  api_services=[LOCAL_V1, REFUSED])
    result = apiserver.front_proxy_verdict(api, topology("master-1")).result()
    message = str(result)
    assert result.status == "failed" and message.startswith("[cause: apiserver-requestheader-allowed-names]")
    for signal in ("ConfigMap kube-system/extension-apiserver-authentication: requestheader CA == client CA",
                   "apiserver flags (kube-apiserver-master-1, static pod): --requestheader-allowed-names=aggregator",
                   "apiserver log (kube-apiserver-master-1): 2 'x509: subject with cn=... is not in the allowed list'",
                   "APIService v1beta1.metrics.k8s.io: not Available: FailedDiscoveryCheck"):
        assert signal in message


def test_kubeadm_cluster_passes_and_says_the_clean_log_is_no_proof(cas, tls_apiserver):
    endpoint = tls_apiserver(cas["cluster"], cas["front_proxy"])
    api = FakeApi(configmap=auth_data(pem(cas["cluster"]), pem(cas["front_proxy"]), ["front-proxy-client"]),
                  pods=[static_pod("master-1", KUBEADM_FLAGS)],
                  pod_logs={"kube-apiserver-master-1": "I1127 15:50:57.419020 9367 server.go:150] Version: v1.34.4\n"},
                  api_services=[LOCAL_V1, api_service("v1beta1.metrics.k8s.io", True)])
    verdict = apiserver.front_proxy_verdict(api, topology("master-1", endpoint=endpoint))
    assert verdict.result().ok and verdict.result().notes == []
    states = {o.signal: o.detail for o in verdict.observations}
    assert "a front-proxy CA separate from the client CA" in states[f"live client CAs ({endpoint[0]}:{endpoint[1]})"]
    assert "no 'x509: subject with cn=... is not in the allowed list' line" in states[
        "apiserver log (kube-apiserver-master-1)"]
    assert states["aggregated APIServices"] == "1 aggregated, none refused on authentication"


def test_hard_way_cluster_reads_the_masters_node_logs(cas):
    """No apiserver pods: flags unreadable, logs from the masters' journals through the node log query."""
    api = FakeApi(configmap=auth_data(pem(cas["cluster"]), pem(cas["cluster"]), ["aggregator"]),
                  node_answers={query("kube-apiserver"): sample("apiserver-v1.34-not-allowed.log")})
    verdict = apiserver.front_proxy_verdict(api, topology("master-1"))
    states = {o.signal: (o.state, o.detail) for o in verdict.observations}
    assert states["apiserver flags"] == ("unreadable", "apiserver does not run as a pod here")
    state, detail = states["apiserver log (master-1)"]
    assert state == "fault" and "node log query ?query=kube-apiserver (journal)" in detail
    assert "since the apiserver's last start (I1127 15:50:57)" in detail


def test_nothing_readable_is_not_checked():
    forbidden = api_error(403, "Forbidden", json.dumps({"message": "forbidden"}))
    api = FakeApi(node_answers={query("kube-apiserver"): forbidden})
    api.apiregistration.list_api_service = lambda: (_ for _ in ()).throw(forbidden)
    result = apiserver.front_proxy_verdict(api, topology("master-1")).result()
    assert result.status == "not checked"
    assert "ConfigMap kube-system/extension-apiserver-authentication: 404 Not Found" in result.reason
    assert "apiserver does not run as a pod here" in result.reason


def test_refused_authentication_is_recognised():
    assert REFUSED.metadata.name in [s.name for s in apiserver.aggregated_apis(FakeApi(api_services=[REFUSED]))
                                     if s.refused_authentication]
    assert not [s for s in apiserver.aggregated_apis(FakeApi(api_services=[UNREACHABLE])) if s.refused_authentication]


def test_other_unavailable_apis_fail_with_cause_unknown():
    message = str(apiserver.aggregated_apis_result(FakeApi(api_services=[LOCAL_V1, REFUSED, UNREACHABLE])))
    assert message.startswith("[cause: unknown]")
    assert "APIService v1beta1.custom.metrics.k8s.io (service kube-system/metrics-server) not Available" in message
    assert "v1beta1.metrics.k8s.io " not in message  # refused on authentication: the front-proxy check's
    assert "hint: " in message


def test_no_aggregated_api_is_not_applicable():
    assert apiserver.aggregated_apis_result(FakeApi(api_services=[LOCAL_V1])).status == "not applicable"


def test_available_aggregated_apis_pass():
    assert apiserver.aggregated_apis_result(FakeApi(api_services=[api_service("v1beta1.metrics.k8s.io", True)])).ok


def test_apiserver_log_unreadable_from_the_pod():
    pods = [static_pod("master-1", KUBEADM_FLAGS)]
    api = FakeApi(pods=pods)

    def refuse(name, namespace, container, tail_lines):
        raise ApiException(status=403, reason="Forbidden")

    api.core.read_namespaced_pod_log = refuse
    sources = apiserver.log_sources(api, pods, [])
    with pytest.raises(apiserver.Unreadable, match="403 Forbidden"):
        sources[0][1]()


# ---------------------------------------------------------------- after a real fix: the ConfigMap remembers
def merged(cas) -> dict:
    """The ConfigMap after the fix as upstream apiservers leave it: old and new entries, merged, never removed."""
    return auth_data(pem(cas["cluster"]), pem(cas["cluster"], cas["front_proxy"]), ["aggregator", "front-proxy-client"])


def test_live_client_cas_are_read_from_the_handshake(cas, tls_apiserver):
    host, port = tls_apiserver(cas["cluster"], cas["front_proxy"])
    assert apiserver.live_client_cas(host, port) == {(("CN", "kubernetes"),), (("CN", "front-proxy-ca"),)}


def test_a_silent_endpoint_is_bounded():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks TLS
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            apiserver.live_client_cas(*silent.getsockname()[:2], timeout=0.5)
    assert time.monotonic() - started < 3


def test_fixed_apiservers_with_a_merged_configmap_are_the_stale_cause(cas, tls_apiserver):
    endpoint = tls_apiserver(cas["cluster"], cas["front_proxy"])
    result = apiserver.front_proxy_result(FakeApi(configmap=merged(cas)), topology("master-1", endpoint=endpoint))
    assert result.finding.cause == "apiserver-auth-configmap-stale", result
    assert "a front-proxy CA separate from the client CA" in str(result)


def test_apiservers_running_with_the_fault_are_the_fault_even_with_a_merged_configmap(cas, tls_apiserver):
    endpoint = tls_apiserver(cas["cluster"])
    result = apiserver.front_proxy_result(FakeApi(configmap=merged(cas)), topology("master-1", endpoint=endpoint))
    assert result.finding.cause == "apiserver-requestheader-allowed-names"
    assert "its request-header CA is the client CA" in str(result)


def test_a_merged_configmap_with_nothing_live_readable_is_unknown_with_the_candidates(cas):
    result = apiserver.front_proxy_result(FakeApi(configmap=merged(cas)), topology("master-1"))
    assert result.finding.cause == "unknown"
    assert "apiserver-auth-configmap-stale" in result.finding.hint and "openssl s_client" in result.finding.hint

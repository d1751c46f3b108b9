"""Cluster access: a kubeconfig's bearer token is sent (whatever the kubernetes client's version), and
API errors read as one line, an RBAC refusal naming the permission it lacks."""

import json

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from seatrials import cluster

TOKEN_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "sa",
    "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
    "users": [{"name": "sa", "user": {"token": "eyJ-service-account-token"}}],
}


def test_a_kubeconfig_token_goes_into_the_authorization_header():
    configuration = cluster.Configuration()
    config.load_kube_config_from_dict(TOKEN_KUBECONFIG, client_configuration=configuration)
    headers = {}
    client.ApiClient(configuration).update_params_for_auth(headers, [], ["BearerToken"])
    assert headers == {"authorization": "Bearer eyJ-service-account-token"}


def test_a_token_set_the_generated_clients_way_is_sent_too():
    configuration = cluster.Configuration()
    configuration.api_key["BearerToken"] = "abc"
    configuration.api_key_prefix["BearerToken"] = "Bearer"
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer abc"


def error(status, reason, body):
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    return exc


def test_an_rbac_refusal_names_the_permission_it_lacks():
    body = json.dumps({"kind": "Status", "code": 403, "message": 'daemonsets.apps is forbidden: User "system:'
                       'serviceaccount:seatrials:seatrials" cannot list resource "daemonsets" in API group "apps" at '
                       'the cluster scope'})
    assert cluster.api_error_line(error(403, "Forbidden", body)) == \
        "forbidden (needs list daemonsets in API group apps)"


def test_other_errors_keep_the_servers_words():
    assert cluster.api_error_line(error(403, "Forbidden", "Forbidden (user=kube-apiserver, verb=get)\n")) == \
        "403 Forbidden: Forbidden (user=kube-apiserver, verb=get)"
    assert cluster.api_error_line(error(500, "Internal Server Error", "")) == "500 Internal Server Error"

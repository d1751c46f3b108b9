"""Cluster access: a kubeconfig's bearer token is sent (whatever the kubernetes client's version), and
API errors read as one line, an RBAC refusal naming the permission it lacks; an exec that failed says why."""

import json

import pytest
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


class Channel:
    """An exec stream that has ended, with this on its status channel (stands in for kubernetes.stream's WSClient)."""

    def __init__(self, status: str):
        self.status = status

    def is_open(self):
        return False

    def read_channel(self, channel):
        assert channel == 3  # the status channel
        return self.status


def test_an_exec_that_could_not_reach_the_kubelet_says_so_in_the_apiservers_words():
    """kubernetes.stream read this status' message as an exit code: int('error sending request: ...')."""
    failure = {"status": "Failure", "message": 'error sending request: Post "https://10.241.0.32:10247/exec/ns/pod": '
               "dial tcp 10.241.0.32:10247: connect: connection refused"}
    with pytest.raises(cluster.ExecFailed, match=r"^error sending request: Post .*connection refused$"):
        cluster.exit_status(Channel(json.dumps(failure)))


def test_an_exec_status_gives_the_commands_exit_code():
    assert cluster.exit_status(Channel('{"status": "Success"}')) == 0
    exited = {"status": "Failure", "message": "command terminated with non-zero exit code: exit status 2",
              "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}
    assert cluster.exit_status(Channel(json.dumps(exited))) == 2
    assert cluster.exit_status(Channel("")) is None

"""Cluster access: load the kubeconfig, prove the cluster answers, count requests.

Everything that can go wrong before a single check runs (no kubeconfig, an
unknown context, an unreachable or unauthorised cluster) becomes a
`SetupError` with one line a person can act on.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from seatrials import credentials

PREFLIGHT_TIMEOUT = (5, 15)  # connect, read seconds


class SetupError(Exception):
    """The run cannot start; str(self) is the one line shown to the user."""


class RequestCounter:
    """Counts API requests across every client of a run (thread-safe)."""

    def __init__(self):
        self._count = itertools.count(1)
        self.value = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.value = next(self._count)


class CountingApiClient(client.ApiClient):
    """An ApiClient that counts every request, exec and log streams included.

    The count is the project's scalability figure: it must grow linearly with
    the number of nodes.
    """

    def __init__(self, configuration, counter: RequestCounter | None = None):
        super().__init__(configuration)
        self.counter = counter or RequestCounter()

    def call_api(self, *args, **kwargs):
        self.counter.tick()
        return super().call_api(*args, **kwargs)

    @property
    def requests_made(self) -> int:
        return self.counter.value


@dataclass
class ExecResult:
    stdout: str
    stderr: str
    returncode: int | None  # None when the exec channel gave no status


class Cluster:
    def __init__(self, api: CountingApiClient, kubeconfig: dict, context: str, kubeconfig_path: str):
        self.api = api
        self.kubeconfig = kubeconfig
        self.context = context
        self.kubeconfig_path = kubeconfig_path
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apiregistration = client.ApiregistrationV1Api(api)
        self.version_api = client.VersionApi(api)

    @property
    def server(self) -> str:
        return self.api.configuration.host

    @property
    def requests_made(self) -> int:
        return self.api.requests_made

    def get(self, path: str, query: dict | None = None, timeout=30, headers: dict | None = None) -> str:
        """GET an arbitrary API path (node proxy, /version, ...) and return the body text."""
        resp = self.api.call_api(
            path, "GET", query_params=list((query or {}).items()), header_params=dict(headers or {}),
            auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout,
        )
        return resp.data.decode("utf-8", "replace")

    def node_proxy(self, node: str, path: str, query: dict | None = None, timeout=30,
                   headers: dict | None = None) -> str:
        """GET /api/v1/nodes/{node}/proxy/{path}: the kubelet's own endpoints through the apiserver."""
        return self.get(f"/api/v1/nodes/{node}/proxy/{path.lstrip('/')}", query, timeout, headers)

    def exec(self, namespace: str, pod: str, command: list[str], timeout: float = 60) -> ExecResult:
        """Run a command in a pod (apiserver -> kubelet -> runtime) and collect its output.

        Each exec gets its own ApiClient: kubernetes.stream swaps the client's
        request function for a websocket one while it runs, which would hijack
        every other thread's calls on a shared client.
        """
        api = CountingApiClient(self.api.configuration, self.api.counter)
        try:
            resp = stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, command=command,
                stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
                _request_timeout=timeout,
            )
            try:
                resp.run_forever(timeout=timeout)
                return ExecResult(resp.read_stdout(), resp.read_stderr(), resp.returncode)
            finally:
                resp.close()
        finally:
            api.close()


def read_kubeconfig(path: str | None) -> dict:
    if not path:
        raise SetupError("no kubeconfig: pass --kubeconfig PATH or set KUBECONFIG")
    p = Path(path).expanduser()
    if not p.exists():
        raise SetupError(f"kubeconfig {p} does not exist: pass --kubeconfig PATH or set KUBECONFIG")
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise SetupError(f"kubeconfig {p} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SetupError(f"kubeconfig {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data.get("contexts"):
        raise SetupError(f"kubeconfig {p} has no contexts")
    return data


def select_context(kubeconfig: dict, context: str | None, path: str) -> str:
    names = [c.get("name") for c in kubeconfig.get("contexts") or []]
    chosen = context or kubeconfig.get("current-context")
    if not chosen:
        raise SetupError(f"kubeconfig {path} has no current-context: pass --context (one of {', '.join(names)})")
    if chosen not in names:
        raise SetupError(f"context {chosen!r} is not in kubeconfig {path}: contexts are {', '.join(names)}")
    return chosen


def usable_kubeconfig(kubeconfig: dict) -> dict:
    """The kubeconfig with raw-PEM credential data re-encoded for the Python client.

    A raw PEM where base64 is expected is the `client-pem-not-base64` cause; the
    credentials check reports it. Re-encoding here lets every other check run.
    """
    fixed = yaml.safe_load(yaml.safe_dump(kubeconfig))
    for entry in credentials.data_fields(fixed):
        value = entry.value
        if credentials.looks_like_pem(value):
            entry.set(base64.b64encode(value.encode()).decode())
    return fixed


def connect(kubeconfig_path: str | None, context: str | None) -> Cluster:
    """Load the kubeconfig and prove the cluster answers and accepts us; else SetupError."""
    raw = read_kubeconfig(kubeconfig_path)
    ctx = select_context(raw, context, kubeconfig_path)
    configuration = client.Configuration()
    try:
        config.load_kube_config_from_dict(usable_kubeconfig(raw), context=ctx, client_configuration=configuration,
                                          temp_file_path=os.environ.get("TMPDIR"))
    except (config.ConfigException, ValueError, binascii.Error, TypeError, KeyError) as exc:
        raise SetupError(f"kubeconfig {kubeconfig_path}, context {ctx!r}: {one_line(exc)}") from None
    configuration.retries = 0  # preflight failures must be fast; calls that retry say so themselves
    api = CountingApiClient(configuration)
    cluster = Cluster(api, raw, ctx, str(kubeconfig_path))
    preflight(cluster)
    configuration.retries = 3
    return cluster


def preflight(cluster: Cluster) -> None:
    where = f"the cluster at {cluster.server} (context {cluster.context!r})"
    try:
        cluster.version_api.get_code(_request_timeout=PREFLIGHT_TIMEOUT)
        cluster.core.list_node(limit=1, _request_timeout=PREFLIGHT_TIMEOUT)
    except ApiException as exc:
        if exc.status == 401:
            raise SetupError(f"{where} rejected the credentials (401 Unauthorized): "
                             "they are wrong or expired; renew them in the kubeconfig") from None
        if exc.status == 403:
            raise SetupError(f"{where} accepted the credentials but forbids listing nodes (403): "
                             "seatrials needs cluster-admin or an equivalent role") from None
        raise SetupError(f"{where} answered {exc.status} {exc.reason}") from None
    except urllib3.exceptions.MaxRetryError as exc:
        raise SetupError(f"cannot reach {where}: {one_line(exc.reason)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SetupError(f"cannot reach {where}: {one_line(exc)}") from None


def one_line(exc: BaseException | str | None) -> str:
    """The most specific readable line of an exception chain (urllib3 nests them deeply)."""
    text = str(exc) if exc is not None else ""
    for marker in ("certificate verify failed", "Connection refused", "timed out", "No route to host",
                   "Name or service not known", "certificate has expired", "tlsv1 alert", "sslv3 alert"):
        if marker in text:
            tail = text[text.index(marker):].split("'")[0].split(")")[0].rstrip(":, ")
            return tail
    return text.splitlines()[0] if text else type(exc).__name__

"""Cluster access: connect with the kubeconfig, prove the cluster answers, count requests.

Everything that can go wrong before a single check runs (a bad kubeconfig, an
unreachable, silent or unauthorised cluster) becomes a `SetupError` with one
line a person can act on. Every request is bounded: a connect and a read
timeout on each API call, and on the websocket an exec opens.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import re
import threading
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3
import websocket
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from seatrials import kubeconfig
from seatrials.kubeconfig import SetupError

PREFLIGHT_TIMEOUT = (5, 10)  # connect, read seconds: a silent apiserver is one line within 30 s
REQUEST_TIMEOUT = (5, 30)  # every other API call unless it says otherwise
# Reads of one kind (a kubelet per node) in flight at once: each a short request the apiserver proxies, so a few
# connections kept busy do it (the fan-out's execs are long waits on their own websockets: network/paths.py
# MAX_PARALLEL_EXECS); the client's connection pool holds as many.
PARALLEL_READS = 16
# kubernetes.stream opens the exec websocket without a timeout, so a silent apiserver would hang
# the run; websocket-client's default applies to that connect (reads are polled with a timeout).
websocket.setdefaulttimeout(REQUEST_TIMEOUT[1])


class RequestCounter:
    """Counts API requests across every client of a run, by verb and path template (thread-safe): where the
    requests go is what keeps their number linear in the nodes."""

    def __init__(self):
        self.by_endpoint: Counter[str] = Counter()
        self._lock = threading.Lock()

    def tick(self, method: str, path: str) -> None:
        with self._lock:
            self.by_endpoint[f"{method} {path}"] += 1


class Configuration(client.Configuration):
    """The client's configuration, with bearer tokens sent whatever the client's version.

    kubernetes 36.0.0 looks a token up under "BearerToken" while its own kubeconfig and in-cluster
    loaders store it under "authorization" (kubernetes-client/python#2582): every token-authenticated
    request went out anonymous. Both keys are read here, after the loader's refresh hook (exec plugins).
    """

    def auth_settings(self):
        if self.refresh_api_key_hook is not None:
            self.refresh_api_key_hook(self)
        for key in ("authorization", "BearerToken"):
            if value := self.api_key.get(key):
                prefix = self.api_key_prefix.get(key)
                return {"BearerToken": {"type": "api_key", "in": "header", "key": "authorization",
                                        "value": f"{prefix} {value}" if prefix else value}}
        return {}


class CountingApiClient(client.ApiClient):
    """An ApiClient that counts every request, exec and log streams included.

    The count is the project's scalability figure: it must grow linearly with
    the number of nodes.
    """

    def __init__(self, configuration, counter: RequestCounter | None = None):
        super().__init__(configuration)
        self.counter = counter or RequestCounter()

    def call_api(self, resource_path, method, *args, **kwargs):
        self.counter.tick(method, resource_path)  # the template: /api/v1/nodes/{name}/proxy/configz
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return super().call_api(resource_path, method, *args, **kwargs)


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
        self.networking = client.NetworkingV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.apiregistration = client.ApiregistrationV1Api(api)
        self.version_api = client.VersionApi(api)
        self.version = ""  # the server's git version, as the preflight read it

    @property
    def server(self) -> str:
        return self.api.configuration.host

    @property
    def requests_by_endpoint(self) -> dict[str, int]:
        return dict(self.api.counter.by_endpoint)

    def get(self, path: str, query: dict | None = None, timeout=30, headers: dict | None = None,
            path_params: dict | None = None) -> str:
        """GET an arbitrary API path (node proxy, /version, ...) and return the body text."""
        resp = self.api.call_api(
            path, "GET", path_params=path_params, query_params=list((query or {}).items()),
            header_params=dict(headers or {}), auth_settings=["BearerToken"], _preload_content=False,
            _request_timeout=timeout,
        )
        return resp.data.decode("utf-8", "replace")

    def node_proxy(self, node: str, path: str, query: dict | None = None, timeout=30,
                   headers: dict | None = None) -> str:
        """GET /api/v1/nodes/{node}/proxy/{path}: the kubelet's own endpoints through the apiserver."""
        return self.get(f"/api/v1/nodes/{{name}}/proxy/{path.lstrip('/')}", query, timeout, headers, {"name": node})

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
                return ExecResult(resp.read_stdout(), resp.read_stderr(), exit_status(resp))
            finally:
                resp.close()
        finally:
            api.close()


class ExecFailed(Exception):
    """The exec itself failed (the apiserver could not reach the kubelet, the runtime refused it)."""


def exit_status(resp) -> int | None:
    """The command's exit code from the exec's status channel; None while it runs or when the channel said
    nothing. kubernetes.stream takes the message of a failure without an exit code for one (int('error sending
    request: ...') raised ValueError, the only words a report had): here it is ExecFailed with that message."""
    if resp.is_open():
        return None
    text = resp.read_channel(ERROR_CHANNEL)
    if not text:
        return None
    try:
        status = json.loads(text)
    except ValueError:
        raise ExecFailed(one_line(text)) from None
    if status.get("status") == "Success":
        return 0
    causes = (status.get("details") or {}).get("causes") or []
    code = next((c.get("message") or "" for c in causes if c.get("reason") == "ExitCode"), "")
    if code.isdigit():
        return int(code)
    raise ExecFailed(status.get("message") or one_line(text))


_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def known(cluster) -> dict:
    """What this process already read from `cluster` that another check would otherwise ask again (its
    APIServices, a kubelet's logs/ switched off): one dict for each cluster, gone with it."""
    return _KNOWN.setdefault(cluster, {})


def concurrently(call, items: list, at_once: int = PARALLEL_READS) -> list:
    """call(item) for every item, `at_once` at a time, the answers in the items' order; the first exception
    (in that order) is raised. Each call keeps its own timeout."""
    with ThreadPoolExecutor(max_workers=min(at_once, max(1, len(items))), thread_name_prefix="seatrials") as pool:
        return list(pool.map(call, items))


class Mirror:
    """The objects a list call returns, kept current by a watch read in a thread of its own: two requests however
    long they are followed (listing every half second cost one a poll, a thousand at 500 nodes). Where the watch
    is refused or breaks (a role without `watch`), every read lists, as polling did."""

    def __init__(self, list_call, *args, seconds: float, **kwargs):
        self._call, self._args, self._kwargs, self._seconds = list_call, args, kwargs, seconds
        self._objects: dict[str, object] = {}
        self._lock = threading.Lock()
        self._watch: watch.Watch | None = None
        self._following = self._polling = self._stopped = False
        self._changed = threading.Event()  # set by the watch: what items() gave is no longer current

    def items(self) -> list:
        self._changed.clear()  # before reading: a change from now on wakes the next wait_change
        if self._polling or not self._following:
            self._list()
        with self._lock:
            return list(self._objects.values())

    def wait_change(self, seconds: float) -> None:
        """Until the watch sees a change since the last items(), or `seconds` pass (a polling mirror just waits):
        a waiter learns of a change at once, not on its next poll."""
        self._changed.wait(seconds)

    def _list(self) -> None:
        listing = self._call(*self._args, **self._kwargs)
        with self._lock:
            self._objects = {self._key(o): o for o in listing.items}
        if not self._polling:
            self._watch, self._following = watch.Watch(), True
            threading.Thread(target=self._follow, args=(listing.metadata.resource_version,), daemon=True,
                             name="seatrials-watch").start()

    @staticmethod
    def _key(obj) -> str:
        return obj.metadata.uid or obj.metadata.name

    def _follow(self, version: str) -> None:
        try:
            # the server ends the watch after `seconds`; the client's read timeout must outlast a quiet spell
            # (the usual 30 s ended it, and every read listed from then on)
            for event in self._watch.stream(self._call, *self._args, resource_version=version,
                                            timeout_seconds=max(1, int(self._seconds)),
                                            _request_timeout=(REQUEST_TIMEOUT[0], self._seconds + 30), **self._kwargs):
                with self._lock:
                    if self._stopped:
                        break
                    if event["type"] == "DELETED":
                        self._objects.pop(self._key(event["object"]), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._objects[self._key(event["object"])] = event["object"]
                self._changed.set()
        except Exception:  # noqa: BLE001 - refused or broken: whatever it was, listing on every read still works
            self._polling = True
        finally:
            self._following = False  # ended (its timeout, or stopped): the next read lists and watches again

    def stop(self) -> None:
        """End the watch and let its objects go now: its thread waits for the next event or the server's timeout
        before it sees the stop, and at 500 nodes the nodes and pods it holds weigh tens of MiB."""
        with self._lock:
            self._stopped, self._objects = True, {}
        if self._watch is not None:
            self._watch.stop()


def connect(kubeconfig_path: str | None, context: str | None) -> Cluster:
    """Load the kubeconfig and prove the cluster answers and accepts us; else SetupError."""
    raw = kubeconfig.read(kubeconfig_path)
    ctx = kubeconfig.select_context(raw, context, kubeconfig_path)
    configuration = Configuration()
    try:
        config.load_kube_config_from_dict(kubeconfig.usable(raw), context=ctx, client_configuration=configuration,
                                          temp_file_path=os.environ.get("TMPDIR"))
    except (config.ConfigException, ValueError, binascii.Error, TypeError, KeyError) as exc:
        raise SetupError(f"kubeconfig {kubeconfig_path}, context {ctx!r}: {one_line(exc)}") from None
    configuration.retries = 0  # preflight failures must be fast; calls that retry say so themselves
    # concurrent reads (concurrently) each keep a connection: the default pool (5 a core) would drop and reopen them
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, PARALLEL_READS)
    api = CountingApiClient(configuration)
    cluster = Cluster(api, raw, ctx, str(kubeconfig_path))
    preflight(cluster)
    configuration.retries = 3
    return cluster


def preflight(cluster: Cluster) -> None:
    where = f"the cluster at {cluster.server} (context {cluster.context!r})"
    try:
        cluster.version = cluster.version_api.get_code(_request_timeout=PREFLIGHT_TIMEOUT).git_version
        cluster.core.list_node(limit=1, _request_timeout=PREFLIGHT_TIMEOUT)
    except ApiException as exc:
        if exc.status == 401:
            raise SetupError(f"{where} rejected the credentials (401 Unauthorized): "
                             "they are wrong or expired; renew them in the kubeconfig") from None
        if exc.status == 403:
            raise SetupError(f"{where} accepted the credentials but forbids listing nodes (403): seatrials needs "
                             "cluster-admin or the role in manifests/rbac.yaml") from None
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


FORBIDDEN = re.compile(r'cannot (?P<verb>\w+) resource "(?P<resource>[^"]+)"(?: in API group "(?P<group>[^"]*)")?')


def api_message(exc: ApiException) -> str:
    """The server's own words in an API error: the Status message of an apiserver, a kubelet's plain text."""
    message = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    message = message.strip()
    if message.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(message).get("message", message)
    return message.splitlines()[0] if message else ""


def api_error_line(exc: ApiException) -> str:
    """An API error as one line; an RBAC refusal names the permission it lacks: "forbidden (needs get nodes/proxy)"."""
    message = api_message(exc)
    if exc.status == 403 and (m := FORBIDDEN.search(message)):
        group = f" in API group {m['group']}" if m["group"] else ""
        return f"forbidden (needs {m['verb']} {m['resource']}{group})"
    return f"{exc.status} {exc.reason or ''}".strip() + (f": {message}" if message else "")

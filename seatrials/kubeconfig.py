"""Reading a kubeconfig: the file, its shape, the context, its credential fields.

Everything that can be wrong with a kubeconfig before any request is sent
(missing, not UTF-8, not YAML, the wrong shape, a context naming a cluster or
user that is not there, an exec credential plugin that is not installed)
becomes a `SetupError` with one line a person can act on. The `*-data`
credential fields live here too, because both the connection (cluster.py) and
the credentials check (credentials.py) need them.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

DATA_KEYS = {  # kubeconfig list -> (entry body, its *-data keys)
    "clusters": ("cluster", ("certificate-authority-data",)),
    "users": ("user", ("client-certificate-data", "client-key-data")),
}
LISTS = {"contexts": "context", "clusters": "cluster", "users": "user"}  # list -> the body key of its entries
IN_CLUSTER = "in-cluster"  # the kubeconfig "path" of a run inside a pod, from its ServiceAccount
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")  # where the kubelet mounts its token


class SetupError(Exception):
    """The run cannot start (or go on); str(self) is the one line shown to the user."""


def inside_a_pod() -> bool:
    """A pod's environment: the kubernetes Service's address and a ServiceAccount token mounted."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").is_file()


def in_cluster() -> dict:
    """The pod's ServiceAccount as a kubeconfig (what client-go's in-cluster config reads: the kubernetes
    Service's host and port from the environment, the token and CA the kubelet mounts), so that every check
    reads one shape of credentials."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    try:
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        ca = (SERVICE_ACCOUNT / "ca.crt").read_bytes()
    except OSError as exc:
        raise SetupError(f"in-cluster: the ServiceAccount at {SERVICE_ACCOUNT} cannot be read: "
                         f"{exc.strerror} ({exc.filename})") from None
    if not host:
        raise SetupError("in-cluster: KUBERNETES_SERVICE_HOST is not set (not inside a pod?)")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return {"apiVersion": "v1", "kind": "Config", "current-context": IN_CLUSTER,
            "clusters": [{"name": IN_CLUSTER, "cluster": {
                "server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}],
            "users": [{"name": IN_CLUSTER, "user": {"token": token}}],
            "contexts": [{"name": IN_CLUSTER, "context": {"cluster": IN_CLUSTER, "user": IN_CLUSTER}}]}


def read(path: str | None) -> dict:
    """The kubeconfig at `path` as a dict of the shape kubectl accepts, or SetupError."""
    if path == IN_CLUSTER:
        return in_cluster()
    if not path:
        raise SetupError("no kubeconfig: pass --kubeconfig PATH or set KUBECONFIG")
    p = Path(path).expanduser()
    if not p.exists():
        raise SetupError(f"kubeconfig {p} does not exist: pass --kubeconfig PATH or set KUBECONFIG")
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SetupError(f"kubeconfig {p} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SetupError(f"kubeconfig {p} is not UTF-8 text (byte {exc.start} is not valid UTF-8)") from None
    except yaml.YAMLError as exc:
        raise SetupError(f"kubeconfig {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    check_shape(data, p)
    return data


def check_shape(data, path) -> None:
    if not isinstance(data, dict):
        raise SetupError(f"kubeconfig {path} is not a mapping of clusters, users and contexts")
    if not data.get("contexts"):
        raise SetupError(f"kubeconfig {path} has no contexts")
    for listing, body in LISTS.items():
        entries = data.get(listing) or []
        if not isinstance(entries, list):
            raise SetupError(f"kubeconfig {path}: {listing} must be a list, not {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise SetupError(f"kubeconfig {path}: {listing}[{i}] must be a mapping with a name and a "
                                 f"{body}, not {entry!r:.40}")
            if not isinstance(entry.get(body) or {}, dict):
                raise SetupError(f"kubeconfig {path}: {listing}[{entry['name']}].{body} must be a mapping")


def entry(data: dict, listing: str, name: str) -> dict | None:
    return next((e.get(LISTS[listing]) or {} for e in data.get(listing) or [] if e.get("name") == name), None)


def select_context(data: dict, context: str | None, path, local_plugins: bool = True) -> str:
    """The context to use (given, else current); its cluster and user must exist, and with
    `local_plugins` its exec credential plugin must be installed on this machine."""
    names = [c["name"] for c in data.get("contexts") or []]
    chosen = context or data.get("current-context")
    if not chosen:
        raise SetupError(f"kubeconfig {path} has no current-context: pass --context (one of {', '.join(names)})")
    if chosen not in names:
        raise SetupError(f"context {chosen!r} is not in kubeconfig {path}: contexts are {', '.join(names)}")
    ctx = entry(data, "contexts", chosen)
    for ref, listing in (("cluster", "clusters"), ("user", "users")):
        if ref == "user" and not ctx.get("user"):
            continue  # no user: anonymous, allowed
        if not ctx.get(ref) or entry(data, listing, ctx[ref]) is None:
            raise SetupError(f"context {chosen!r} of kubeconfig {path} names {ref} {ctx.get(ref)!r}, which is not "
                             f"in its {listing}")
    if local_plugins:
        check_exec_plugin(data, ctx, chosen, path)
    return chosen


def check_exec_plugin(data: dict, ctx: dict, chosen: str, path) -> None:
    """An exec credential plugin that is not installed fails every request with an opaque 401: say so first."""
    user = entry(data, "users", ctx.get("user") or "") or {}
    plugin = user.get("exec")
    if not isinstance(plugin, dict):
        return
    command = plugin.get("command")
    if not command:
        raise SetupError(f"user {ctx.get('user')!r} of kubeconfig {path} has an exec credential plugin without "
                         "a command")
    found = shutil.which(command) if os.sep not in command else (command if os.access(command, os.X_OK) else None)
    if not found:
        hint = plugin.get("installHint") or "install it, or put it on PATH"
        raise SetupError(f"context {chosen!r} of kubeconfig {path} authenticates with the exec credential plugin "
                         f"{command!r}, which is not installed here: {' '.join(str(hint).split())}")


@dataclass
class DataField:
    """One `*-data` value of a kubeconfig, writable in place."""

    where: str  # e.g. "users[admin].client-certificate-data"
    section: dict
    key: str

    @property
    def value(self):
        return self.section[self.key]

    def set(self, new_value: str) -> None:
        self.section[self.key] = new_value

    @property
    def is_key(self) -> bool:
        return self.key == "client-key-data"

    @property
    def kind(self) -> str:
        return "private key" if self.is_key else "certificate"


def data_fields(data: dict) -> Iterator[DataField]:
    """Every `*-data` entry of the kubeconfig's clusters and users."""
    for listing, (body_key, keys) in DATA_KEYS.items():
        for item in data.get(listing) or []:
            body = item.get(body_key) if isinstance(item, dict) else None
            if not isinstance(body, dict):
                continue
            for key in keys:
                if body.get(key):
                    yield DataField(f"{listing}[{item.get('name')}].{key}", body, key)


def looks_like_pem(value) -> bool:
    """Raw PEM text where base64 of PEM is expected."""
    return isinstance(value, str) and "-----BEGIN " in value


def usable(data: dict) -> dict:
    """The kubeconfig with raw-PEM credential data re-encoded for the Python client.

    A raw PEM where base64 is expected is the `client-pem-not-base64` cause; the
    credentials check reports it. Re-encoding here lets every other check run.
    """
    fixed = yaml.safe_load(yaml.safe_dump(data))
    for item in data_fields(fixed):
        if looks_like_pem(item.value):
            item.set(base64.b64encode(item.value.encode()).decode())
    return fixed


def secrets(data: dict) -> list[str]:
    """Secret values of the kubeconfig's users: never to appear in a report."""
    values = []
    for user in data.get("users") or []:
        u = (user.get("user") if isinstance(user, dict) else None) or {}
        values += [u[k] for k in ("token", "password", "client-key-data") if isinstance(u.get(k), str)]
        auth = u.get("auth-provider") if isinstance(u.get("auth-provider"), dict) else {}
        values += [v for k, v in (auth.get("config") or {}).items() if "token" in k and isinstance(v, str)]
    return values

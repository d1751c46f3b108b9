"""A small client of the registry API (OCI distribution, `/v2/`), and the probe image.

Enough to push an image built in memory, read it back and delete it, against a
plain registry or Harbor, without Docker. Authentication follows what the
registry asks for in its 401 answer: nothing (anonymous), `Basic` (HTTP basic
with the given credentials) or `Bearer realm=...,service=...,scope=...` (ask the
realm for a token with the basic credentials, as `docker login` does against
Harbor).

Every failure is a `RegistryError` whose message is one line fit for evidence;
credentials never appear in it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

# Docker image manifest v2 schema 2 rather than OCI: the Harbor of the field
# report (1.x) records pushes from the registry's notifications only for these
# media types; Harbor 2.x and every registry accept them too.
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_TYPES = (MANIFEST_V2, OCI_MANIFEST)
IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# Harbor 1.x only records pushes whose User-Agent starts with "docker"; the
# probe stands in for a `docker push`, so it says so.
USER_AGENT = "docker (seatrials push-then-list probe)"
REQUEST_TIMEOUT = 10.0


class RegistryError(Exception):
    """A registry request failed; the message is one line fit for evidence."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": len(self.data), "digest": self.digest}


@dataclass(frozen=True)
class Image:
    """An image held in memory: its blobs and its manifest, digests computed locally."""

    blobs: tuple[Blob, ...]
    manifest: bytes
    media_type: str = MANIFEST_V2

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def probe_image(run_id: str, tag: str) -> Image:
    """A tiny unique image: one layer with a text file naming the run and the tag.

    Deterministic for a given run id and tag (fixed mtimes and owners), so its
    digests can be computed before anything is pushed; the tag inside makes the
    digest unique, so deleting it by digest never touches another run's image.
    """
    text = f"seatrials push-then-list probe\nrun: {run_id}\ntag: {tag}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("seatrials-probe.txt")
        info.size, info.mode, info.mtime = len(text), 0o644, 0
        tar.addfile(info, io.BytesIO(text))
    layer_tar = tar_bytes.getvalue()
    layer = Blob(LAYER_TAR_GZIP, gzip.compress(layer_tar, mtime=0))
    config = Blob(IMAGE_CONFIG, _canonical({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"io.seatrials.run": run_id}},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer_tar)]},
    }))
    manifest = _canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    })
    return Image(blobs=(config, layer), manifest=manifest)


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Manifest:
    """A manifest as pulled: its bytes, the media type and digest the registry named."""

    body: bytes
    media_type: str
    registry_digest: str | None

    @property
    def digest(self) -> str:
        return digest_of(self.body)


class Registry:
    """Client of one registry endpoint (`https://host[:port]`, `/v2/` is appended)."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = REQUEST_TIMEOUT):
        self.url = base_url(url)
        self.username = username
        self._password = password
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._tokens: dict[str, str] = {}  # scope -> Bearer token
        self._basic = False  # the registry asked for HTTP basic

    # --- operations -------------------------------------------------------

    def push_image(self, name: str, tag: str, image: Image) -> str:
        """Push the blobs that are missing, then the manifest by tag; return the registry's digest."""
        for blob in image.blobs:
            self.push_blob(name, blob)
        return self.push_manifest(name, tag, image.manifest, image.media_type)

    def push_blob(self, name: str, blob: Blob) -> bool:
        """Upload one blob monolithically; False when the registry already had it."""
        scope = _scope(name, "pull,push")
        path = f"/v2/{name}/blobs/{blob.digest}"
        if self._request("HEAD", path, scope, expected=(200, 404)).status_code == 200:
            return False
        started = self._request("POST", f"/v2/{name}/blobs/uploads/", scope, expected=(202,))
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"POST /v2/{name}/blobs/uploads/ answered 202 without a Location header")
        self._request("PUT", urljoin(self.url + "/", location), scope, expected=(201,),
                      params={"digest": blob.digest}, data=blob.data,
                      headers={"Content-Type": "application/octet-stream"})
        return True

    def push_manifest(self, name: str, reference: str, body: bytes, media_type: str) -> str:
        resp = self._request("PUT", f"/v2/{name}/manifests/{reference}", _scope(name, "pull,push"),
                             expected=(201,), data=body, headers={"Content-Type": media_type})
        return resp.headers.get("Docker-Content-Digest") or digest_of(body)

    def tags(self, name: str) -> list[str]:
        """The registry's own tag list of a repository; empty when the repository is unknown."""
        tags: list[str] = []
        url: str | None = f"/v2/{name}/tags/list"
        while url:
            resp = self._request("GET", url, _scope(name, "pull"), expected=(200, 404))
            if resp.status_code == 404:
                return tags
            tags += json_of(resp, f"GET /v2/{name}/tags/list").get("tags") or []
            url = resp.links.get("next", {}).get("url")
        return tags

    def pull_manifest(self, name: str, reference: str) -> Manifest | None:
        """GET a manifest by tag or digest; None when the registry does not have it."""
        resp = self._request("GET", f"/v2/{name}/manifests/{reference}", _scope(name, "pull"),
                             expected=(200, 404), headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if resp.status_code == 404:
            return None
        return Manifest(resp.content, resp.headers.get("Content-Type", ""),
                        resp.headers.get("Docker-Content-Digest"))

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete a manifest by digest; False when it was already gone."""
        resp = self._request("DELETE", f"/v2/{name}/manifests/{digest}", _scope(name, "delete"),
                             expected=(200, 202, 404))
        return resp.status_code != 404

    # --- HTTP and authentication ----------------------------------------

    def _request(self, method: str, path: str, scope: str, expected: tuple[int, ...],
                 **kwargs) -> requests.Response:
        url = path if "://" in path else self.url + path
        label = f"{method} {_path_of(url, self.url)}"
        headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            try:
                resp = self._session.request(method, url, headers={**headers, **self._auth(scope)},
                                             timeout=self.timeout, allow_redirects=True, **kwargs)
            except requests.RequestException as exc:
                raise RegistryError(f"{label}: {network_reason(exc)}") from None
            if resp.status_code != 401 or attempt == 2:
                break
            self._answer_challenge(resp, scope, label)
        if resp.status_code not in expected:
            raise RegistryError(f"{label} -> {error_line(resp)}{self._who(resp)}", resp.status_code)
        return resp

    def _auth(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic:
            pair = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}

    def _answer_challenge(self, resp: requests.Response, scope: str, label: str) -> None:
        scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer" and "realm" in params:
            self._tokens[scope] = self._fetch_token(params["realm"], params.get("service"),
                                                    params.get("scope") or scope)
        elif scheme == "basic" and self.username and not self._basic:
            self._basic = True
        elif scheme == "basic":
            raise RegistryError(f"{label} -> HTTP 401: the registry wants HTTP basic credentials"
                                f"{self._who(resp)}", 401)
        else:
            raise RegistryError(f"{label} -> HTTP 401 with an authentication challenge this client "
                                f"does not speak: {scheme or 'none'}", 401)

    def _fetch_token(self, realm: str, service: str | None, scope: str) -> str:
        params = {"scope": scope, **({"service": service} if service else {})}
        auth = (self.username, self._password) if self.username else None
        try:
            resp = self._session.get(realm, params=params, auth=auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"token service {realm}: {network_reason(exc)}") from None
        if resp.status_code in (401, 403):
            raise RegistryError(f"token service {realm} -> {error_line(resp)}{self._who(resp)}",
                                resp.status_code)
        if resp.status_code != 200:
            raise RegistryError(f"token service {realm} -> {error_line(resp)}", resp.status_code)
        body = json_of(resp, f"token service {realm}")
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service {realm} answered without a token")
        return token

    def _who(self, resp: requests.Response) -> str:
        if resp.status_code not in (401, 403):
            return ""
        return f" (user {self.username})" if self.username else " (no credentials were given)"


def _scope(name: str, actions: str) -> str:
    return f"repository:{name}:{actions}"


def _path_of(url: str, base: str) -> str:
    """The path part shown in messages: short, and without upload state tokens."""
    path = url[len(base):] if url.startswith(base) else url
    return path.split("?", 1)[0]


def base_url(url: str) -> str:
    """`host[:port]` or a URL -> a URL without a trailing slash (https unless a scheme is given)."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="a:b:pull,push"` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def json_of(resp: requests.Response, label: str, error: type[Exception] = RegistryError):
    """The JSON body of a 200 answer, or one line saying it was something else (a proxy's HTML page)."""
    try:
        return resp.json()
    except ValueError:
        kind = resp.headers.get("Content-Type") or "no content type"
        raise error(f"{label} answered HTTP {resp.status_code} with a body that is not JSON ({kind})") from None


def error_line(resp: requests.Response) -> str:
    """`HTTP 404 NAME_UNKNOWN: repository name not known to registry`, from either API's error body."""
    detail = ""
    try:
        errors = resp.json().get("errors") or []
        if errors:
            detail = f"{errors[0].get('code', '')}: {errors[0].get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        detail = " ".join(resp.text.split())[:160]
    return f"HTTP {resp.status_code}" + (f" {detail}" if detail else "")


def network_reason(exc: BaseException) -> str:
    """The innermost cause of a requests failure (e.g. `[Errno 111] Connection refused`)."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        nested = exc.__cause__ or getattr(exc, "reason", None)
        if not isinstance(nested, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            nested = exc.args[0]
        exc = nested if isinstance(nested, BaseException) else None
    return str(seen[-1]) or type(seen[-1]).__name__

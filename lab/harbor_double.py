#!/usr/bin/env python3
"""TEST DOUBLE of Harbor for the lab: NOT Harbor, a stand-in for the few calls seatrials makes.

Harbor's own API cannot run here, so this small stdlib-only service answers
the Harbor v2.0 API subset the push-then-list check reads, over a real
registry (Debian docker-registry):

  GET    /api/v2.0/systeminfo
  GET    /api/v2.0/users/current                  (valid basic credentials only)
  GET    /api/v2.0/projects/{p}
  GET    /api/v2.0/projects/{p}/repositories
  GET    /api/v2.0/projects/{p}/repositories/{r}/artifacts    (r double URL-encoded: a%252Fb)
  DELETE /api/v2.0/projects/{p}/repositories/{r}/artifacts/{digest or tag}
  GET    /service/token                           (Harbor's token service for the registry)
  POST   /service/notifications                   (the registry's webhook, Harbor's real path)
  *      /v2/...                                  (proxied to the registry, Bearer token required)

What it lists is fed ONLY the way Harbor 1.x core was fed: the registry's
notifications (manifest push and delete events) plus one full scan of the
registry's catalog when it starts, like a restarted core/UI pod. So a stale
listing is injected exactly as in the field report: the registry's
notification endpoint stops reaching it (the registry config points
elsewhere, or this double runs with --ignore-notifications), and a restart
recovers it.

Simplifications against real Harbor: projects come from --project and are
public; one user (--username/--password) may do everything, anonymous callers
may only read; wrong credentials are refused with 401; the notification
endpoint does not check Harbor's shared secret; tokens are opaque and live
in memory.

    python3 lab/harbor_double.py --listen 127.0.0.1:15002 \\
        --registry http://127.0.0.1:15001 --username admin --password PW
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import http.client
import itertools
import json
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
TOKEN_SERVICE = "harbor-registry"
TOKEN_LIFETIME = 1800
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "authorization",
    "content-length",
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Listing:
    """What Harbor core believes is in the registry: projects, repositories, artifacts."""

    def __init__(self, projects: list[str]):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.projects = {
            name: {"project_id": next(self._ids), "name": name, "creation_time": now(), "metadata": {"public": "true"}}
            for name in projects
        }
        self.repositories: dict[str, dict] = {}  # "p/r" -> repository record
        self.artifacts: dict[str, dict[str, dict]] = {}  # "p/r" -> digest -> artifact record

    def record_push(self, repository: str, digest: str, media_type: str, size: int, tag: str | None, when: str) -> None:
        project = repository.split("/", 1)[0]
        if project not in self.projects or "/" not in repository:
            return  # Harbor ignores pushes to projects it does not have
        with self._lock:
            repo = self.repositories.setdefault(
                repository,
                {
                    "id": next(self._ids),
                    "name": repository,
                    "creation_time": when,
                    "project_id": self.projects[project]["project_id"],
                },
            )
            repo["update_time"] = when
            artifacts = self.artifacts.setdefault(repository, {})
            artifact = artifacts.setdefault(
                digest,
                {
                    "id": next(self._ids),
                    "type": "IMAGE",
                    "digest": digest,
                    "manifest_media_type": media_type,
                    "project_id": repo["project_id"],
                    "repository_id": repo["id"],
                    "size": size,
                    "push_time": when,
                    "tags": [],
                },
            )
            if tag:
                for other in artifacts.values():  # a tag names one artifact: it moves
                    other["tags"] = [t for t in other["tags"] if t["name"] != tag]
                artifact["tags"].append(
                    {
                        "id": next(self._ids),
                        "name": tag,
                        "push_time": when,
                        "repository_id": repo["id"],
                        "artifact_id": artifact["id"],
                        "immutable": False,
                    }
                )

    def record_delete(self, repository: str, digest: str) -> bool:
        with self._lock:
            return self.artifacts.get(repository, {}).pop(digest, None) is not None

    def find(self, repository: str, reference: str) -> dict | None:
        with self._lock:
            for artifact in self.artifacts.get(repository, {}).values():
                if reference in (artifact["digest"], *(t["name"] for t in artifact["tags"])):
                    return artifact
        return None

    def repository_list(self, project: str) -> list[dict]:
        with self._lock:
            return [
                {**repo, "artifact_count": len(self.artifacts.get(name, {}))}
                for name, repo in sorted(self.repositories.items())
                if name.startswith(project + "/")
            ]

    def artifact_list(self, repository: str) -> list[dict]:
        with self._lock:
            return sorted(self.artifacts.get(repository, {}).values(), key=lambda a: -a["id"])


class Upstream:
    """The backing registry, spoken to directly (no auth: it sits behind this double)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.netloc, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def json(self, path: str) -> tuple[dict, dict]:
        status, headers, body = self.request("GET", path)
        if status != 200:
            raise OSError(f"GET {path} -> HTTP {status}")
        return json.loads(body), dict((k.lower(), v) for k, v in headers)

    def scan(self, listing: Listing) -> int:
        """Record every tagged manifest of the catalog, like Harbor core syncing on start."""
        found = 0
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            catalog, headers = self.json(path)
            for repository in catalog.get("repositories") or []:
                status, _, body = self.request("GET", f"/v2/{repository}/tags/list")
                tags = json.loads(body).get("tags") if status == 200 else None  # 404: every tag deleted
                for tag in tags or []:
                    status, resp_headers, _ = self.request(
                        "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
                    )
                    h = dict((k.lower(), v) for k, v in resp_headers)
                    if status == 200:
                        listing.record_push(
                            repository,
                            h["docker-content-digest"],
                            h.get("content-type", ""),
                            int(h.get("content-length", 0)),
                            tag,
                            now(),
                        )
                        found += 1
            path = _next_link(headers.get("link", ""))
        return found


def _next_link(header: str) -> str | None:
    # registry pagination: Link: </v2/_catalog?last=x&n=1000>; rel="next"
    if 'rel="next"' in header:
        return header.split(">", 1)[0].lstrip("<")
    return None


class Double:
    """Configuration and state shared by all request handlers."""

    def __init__(self, args: argparse.Namespace):
        self.username = args.username
        self.password = args.password
        self.ignore_notifications = args.ignore_notifications
        self.upstream = Upstream(args.registry)
        self.listing = Listing(args.project or ["library"])
        self.tokens: dict[str, tuple[float, set[str]]] = {}  # token -> (expiry, granted "repository:x:pull")

    def user_of(self, authorization: str | None) -> str | None | bool:
        """The user named by valid basic credentials, None for anonymous, False for wrong ones."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        good = hmac.compare_digest(user, self.username) and hmac.compare_digest(password, self.password)
        return user if good else False

    def issue_token(self, user: str | None, scopes: list[str]) -> str:
        granted = set()
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            for action in actions.split(","):
                if user or (kind == "repository" and action == "pull"):
                    granted.add(f"{kind}:{name}:{action}")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (time.monotonic() + TOKEN_LIFETIME, granted)
        return token

    def token_allows(self, authorization: str | None, needed: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        expiry, granted = self.tokens.get(token, (0.0, set()))
        if scheme.lower() != "bearer" or expiry < time.monotonic():
            return False
        return needed is None or needed in granted or needed.rsplit(":", 1)[0] + ":*" in granted


def registry_scope(method: str, path: str) -> tuple[str | None, str | None]:
    """(scope a token must grant, scope to name in the challenge) for a /v2/ request."""
    rest = path.split("?", 1)[0][len("/v2/") :]
    if not rest:
        return None, None  # the /v2/ version check only needs a valid token
    if rest == "_catalog":
        return "registry:catalog:*", "registry:catalog:*"
    for marker in ("/blobs/", "/manifests/", "/tags/"):
        if marker in rest:
            name = rest.split(marker, 1)[0]
            break
    else:
        return None, None  # anything else: any valid token, the registry answers
    action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")
    challenge = "pull,push" if action == "push" else action
    return f"repository:{name}:{action}", f"repository:{name}:{challenge}"


class Handler(BaseHTTPRequestHandler):
    server_version = "seatrials-harbor-double"
    double: Double  # set on the class by main()

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self):
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        try:
            if path == "/v2" or path.startswith("/v2/"):
                self._proxy()
            elif path == "/service/notifications" and self.command == "POST":
                self._notifications()
            elif path == "/service/token" and self.command == "GET":
                self._token()
            elif path.startswith("/api/v2.0/"):
                # decoded once before splitting, as Harbor's router does: `a%2Fb` is two segments
                self._api(unquote(path)[len("/api/v2.0/") :].split("/"))
            else:
                self._error(404, "NOT_FOUND", f"{path} is not served by this test double")
        except (OSError, http.client.HTTPException) as exc:
            self._error(502, "BAD_GATEWAY", f"registry behind the double: {exc!r}")
        except ValueError as exc:  # a malformed notification or query
            self._error(400, "BAD_REQUEST", str(exc))

    # --- responses ------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: list[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str, message: str, headers: list[tuple[str, str]] = ()) -> None:
        self._json(status, {"errors": [{"code": code, "message": message}]}, headers)

    # --- the registry side ----------------------------------------------

    def _notifications(self):
        envelope = json.loads(self.body or b"{}")
        listing = self.double.listing
        for event in envelope.get("events", []):
            target = event.get("target", {})
            if self.double.ignore_notifications:
                self.log_message(
                    "ignored registry event (--ignore-notifications): %s %s %s",
                    event.get("action"),
                    target.get("repository"),
                    target.get("tag") or target.get("digest"),
                )
            elif event.get("action") == "push" and target.get("mediaType") in MANIFEST_TYPES:
                listing.record_push(
                    target["repository"],
                    target["digest"],
                    target["mediaType"],
                    target.get("size", 0),
                    target.get("tag"),
                    event.get("timestamp") or now(),
                )
            elif event.get("action") == "delete" and target.get("digest"):
                listing.record_delete(target["repository"], target["digest"])
        self._send(200, content_type="")

    def _token(self):
        user = self.double.user_of(self.headers.get("Authorization"))
        if user is False:
            return self._error(401, "UNAUTHORIZED", "invalid credentials")
        scopes = parse_qs(urlsplit(self.path).query).get("scope", [])
        token = self.double.issue_token(user, scopes)
        self._json(200, {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME, "issued_at": now()})

    def _proxy(self):
        needed, challenge = registry_scope(self.command, self.path)
        if not self.double.token_allows(self.headers.get("Authorization"), needed):
            realm = f"http://{self.headers.get('Host')}/service/token"
            value = f'Bearer realm="{realm}",service="{TOKEN_SERVICE}"'
            if challenge:
                value += f',scope="{challenge}"'
            return self._error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                [("WWW-Authenticate", value), ("Docker-Distribution-Api-Version", "registry/2.0")],
            )
        # Host is passed on so the registry's Location headers point back at this double.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        status, resp_headers, body = self.double.upstream.request(self.command, self.path, self.body or None, headers)
        passed = [(k, v) for k, v in resp_headers if k.lower() not in HOP_BY_HOP | {"content-type"}]
        content_type = next((v for k, v in resp_headers if k.lower() == "content-type"), "")
        if self.command == "HEAD":  # keep the registry's length: there is no body to measure
            passed += [(k, v) for k, v in resp_headers if k.lower() == "content-length"]
            self.send_response(status)
            for name, value in passed + ([("Content-Type", content_type)] if content_type else []):
                self.send_header(name, value)
            self.end_headers()
            return None
        return self._send(status, body, passed, content_type)

    # --- the Harbor API -------------------------------------------------

    def _api(self, parts: list[str]):
        user = self.double.user_of(self.headers.get("Authorization"))
        if user is False:
            return self._error(401, "UNAUTHORIZED", "invalid credentials")
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        listing = self.double.listing
        if parts == ["systeminfo"] and self.command == "GET":
            return self._json(
                200,
                {
                    "harbor_version": "v2.0-seatrials-test-double",
                    "auth_mode": "db_auth",
                    "registry_url": self.headers.get("Host"),
                    "with_notary": False,
                },
            )
        if parts == ["users", "current"] and self.command == "GET":
            if not user:
                return self._error(401, "UNAUTHORIZED", "unauthorized")
            return self._json(200, {"user_id": 1, "username": user, "sysadmin_flag": True})
        if len(parts) < 2 or parts[0] != "projects" or parts[1] not in listing.projects:
            return self._error(404, "NOT_FOUND", f"project {parts[1] if len(parts) > 1 else ''} not found")
        project = parts[1]
        if len(parts) == 2 and self.command == "GET":
            return self._json(200, listing.projects[project])
        if parts[2:] == ["repositories"] and self.command == "GET":
            return self._page(listing.repository_list(project), query)
        if len(parts) < 5 or parts[2] != "repositories" or parts[4] != "artifacts":
            return self._error(404, "NOT_FOUND", "not found")
        repository = f"{project}/{unquote(parts[3])}"  # hence the second encoding of the name
        if len(parts) == 5 and self.command == "GET":
            if repository not in listing.repositories:
                return self._error(404, "NOT_FOUND", f"repository {repository} not found")
            return self._page(listing.artifact_list(repository), query)
        if len(parts) == 6 and self.command == "DELETE":
            return self._delete_artifact(user, repository, parts[5])
        return self._error(405, "METHOD_NOT_ALLOWED", f"{self.command} is not supported here")

    def _delete_artifact(self, user: str | None, repository: str, reference: str):
        if not user:
            return self._error(401, "UNAUTHORIZED", "unauthorized")
        artifact = self.double.listing.find(repository, reference)
        if artifact is None:  # Harbor knows only what it was told or scanned
            return self._error(404, "NOT_FOUND", f"artifact {repository}@{reference} not found")
        status, _, body = self.double.upstream.request("DELETE", f"/v2/{repository}/manifests/{artifact['digest']}")
        if status not in (202, 404):
            return self._error(500, "UNKNOWN", f"registry refused the delete: HTTP {status} {body[:200]!r}")
        self.double.listing.record_delete(repository, artifact["digest"])
        return self._send(200, content_type="")

    def _page(self, items: list[dict], query: dict[str, str]):
        page = max(int(query.get("page", 1)), 1)
        size = min(max(int(query.get("page_size", 10)), 1), 100)
        chunk = items[(page - 1) * size : page * size]
        headers = [("X-Total-Count", str(len(items)))]
        if page * size < len(items):
            base = self.path.split("?", 1)[0]
            headers.append(("Link", f'<{base}?page={page + 1}&page_size={size}>; rel="next"'))
        return self._json(200, chunk, headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:15002", help="address:port to serve on")
    parser.add_argument("--registry", required=True, help="URL of the backing registry, e.g. http://127.0.0.1:15001")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--project", action="append", help="a Harbor project to hold (repeatable; default library)")
    parser.add_argument(
        "--ignore-notifications",
        action="store_true",
        help="answer the registry's notifications but record nothing (a stale Harbor)",
    )
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        parser.error(f"--listen wants address:port, got {args.listen!r}")
    double = Double(args)
    try:
        found = double.upstream.scan(double.listing)
    except (OSError, ValueError) as exc:
        print(f"harbor_double: cannot scan the registry at {args.registry}: {exc}", file=sys.stderr)
        return 1
    Handler.double = double
    try:
        server = ThreadingHTTPServer((host, int(port)), Handler)
    except OSError as exc:
        print(f"harbor_double: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    print(
        f"harbor_double (TEST DOUBLE) on http://{args.listen}, registry {args.registry}, "
        f"{found} tagged artifact(s) found at start",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

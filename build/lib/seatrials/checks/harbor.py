"""Harbor push-then-list: does an image pushed to Harbor show up in Harbor?

The field report's Harbor (installed with its early Kubernetes manifests) took
every `docker push`, yet the image never appeared in the UI or API until the
UI pod restarted: the registry's notifications never reached Harbor core
(cause `harbor-k8s-deploy-stale-ui`). This check pushes a unique tiny image,
polls Harbor's artifact list for its tag within --harbor-timeout, asks the
registry itself (tag list, pull by tag) to tell "Harbor was not told" from
"the push did not land", and deletes what it pushed, also on failure or Ctrl-C.

Harbor unreachable, a missing project or rejected credentials FAIL (cause
`unknown`, one line saying which) instead of "not checked": whoever passed
--harbor-url asked for this check, and a sign-off must not go green with it
silently undone. Only a run without a Harbor URL is not checked. Probe tags
that killed runs left behind are deleted before the push.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from seatrials.causes import UNKNOWN, Result
from seatrials.checks.registry import (
    REQUEST_TIMEOUT,
    Registry,
    RegistryError,
    base_url,
    error_line,
    json_of,
    network_reason,
    probe_image,
)

CAUSE = "harbor-k8s-deploy-stale-ui"
PROBE_REPOSITORY = "seatrials-probe"
POLL_INTERVAL = 0.25  # seconds between two reads of Harbor's artifact list
PAGE_SIZE = 100  # Harbor's largest page
NOT_CONFIGURED = "no Harbor URL given (--harbor-url or SEATRIALS_HARBOR_URL)"
LEFTOVER_AGE = 600  # seconds: a probe tag this old belongs to a run that died (a run's check takes far less)


class HarborError(Exception):
    """Harbor's API could not be used; the message is one line fit for evidence."""


def repository_segment(repository: str) -> str:
    """A repository name as Harbor's API wants it in a path: encoded twice, `a/b` -> `a%252Fb`."""
    return quote(quote(repository, safe=""), safe="")


class HarborApi:
    """The few calls of Harbor's API v2.0 this check needs, with HTTP basic credentials."""

    def __init__(self, url: str, username: str | None, password: str | None,
                 timeout: float = REQUEST_TIMEOUT):
        self.url = base_url(url)
        self.username = username
        self._session = requests.Session()
        self._session.auth = (username, password) if username else None
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self._session.request(method, f"{self.url}/api/v2.0{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise HarborError(f"Harbor at {self.url} is unreachable: {network_reason(exc)}") from None

    def preflight(self, project: str) -> str:
        """Reachable, credentials accepted, project present; return Harbor's version."""
        info = self._call("GET", "/systeminfo")
        if info.status_code == 401:
            raise HarborError(self._rejected())
        if info.status_code != 200:
            raise HarborError(f"{self.url} does not answer like Harbor's API v2.0: "
                              f"GET /api/v2.0/systeminfo -> {error_line(info)}")
        if self.username:
            # Harbor treats wrong basic credentials as anonymous on most reads;
            # the current user is the one call that must refuse them.
            current = self._call("GET", "/users/current")
            if current.status_code == 401:
                raise HarborError(self._rejected())
        found = self._call("GET", f"/projects/{quote(project, safe='')}")
        if found.status_code == 404:
            raise HarborError(f"Harbor at {self.url} has no project {project!r} (--harbor-project)")
        if found.status_code in (401, 403):
            raise HarborError(f"Harbor refuses to show project {project!r} to "
                              f"{self._who()}: {error_line(found)}")
        if found.status_code != 200:
            raise HarborError(f"GET /api/v2.0/projects/{project} -> {error_line(found)}")
        return json_of(info, "GET /api/v2.0/systeminfo", HarborError).get("harbor_version", "unknown version")

    def _rejected(self) -> str:
        return f"Harbor at {self.url} rejected the credentials of HARBOR_USERNAME ({self.username})"

    def _who(self) -> str:
        return f"HARBOR_USERNAME ({self.username})" if self.username else "anonymous (no HARBOR_USERNAME)"

    @staticmethod
    def _artifacts_path(project: str, repository: str) -> str:
        return f"/projects/{quote(project, safe='')}/repositories/{repository_segment(repository)}/artifacts"

    def artifacts(self, project: str, repository: str) -> list[dict]:
        """Every artifact Harbor lists in a repository; empty when Harbor has no such repository."""
        path = self._artifacts_path(project, repository)
        found: list[dict] = []
        for page in range(1, 1000):  # bounded: a server that ignores `page` must not loop forever
            resp = self._call("GET", path, params={"page": page, "page_size": PAGE_SIZE, "with_tag": "true"})
            if resp.status_code == 404:
                return found
            if resp.status_code != 200:
                raise HarborError(f"GET /api/v2.0{path} -> {error_line(resp)}")
            batch = json_of(resp, f"GET /api/v2.0{path}", HarborError) or []
            found += batch
            if len(batch) < PAGE_SIZE:
                break
        return found

    def delete_artifact(self, project: str, repository: str, reference: str) -> bool:
        """Delete an artifact by digest or tag; False when Harbor does not know it."""
        path = f"{self._artifacts_path(project, repository)}/{reference}"
        resp = self._call("DELETE", path)
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            raise HarborError(f"DELETE /api/v2.0{path} -> {error_line(resp)}")
        return True


def tagged(artifacts: list[dict], tag: str) -> dict | None:
    return next((a for a in artifacts if tag in (t.get("name") for t in a.get("tags") or [])), None)


def probe_tag(run_id: str) -> str:
    """`st-<run id>-<random>`, cut to the registry's tag grammar."""
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in run_id)
    return f"st-{safe}"[:120] + f"-{secrets.token_hex(3)}"


def credentials(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """HARBOR_USERNAME and HARBOR_PASSWORD: both or neither (anonymous)."""
    username, password = environ.get("HARBOR_USERNAME") or None, environ.get("HARBOR_PASSWORD") or None
    if bool(username) != bool(password):
        given, missing = ("HARBOR_USERNAME", "HARBOR_PASSWORD") if username else ("HARBOR_PASSWORD", "HARBOR_USERNAME")
        raise HarborError(f"{given} is set but {missing} is not: give both, or neither for anonymous")
    return username, password


@dataclass
class Watch:
    """What the check saw, filled in step by step; judged after the clean-up."""

    harbor_url: str
    registry_url: str
    project: str
    repository: str
    tag: str
    digest: str  # computed locally before the push
    timeout: float
    harbor_version: str = ""
    push_error: str | None = None
    pushed_at: float | None = None  # monotonic, when the manifest PUT returned
    visible_after: float | None = None  # seconds from push to Harbor listing the tag
    waited: float = 0.0
    harbor_digest: str | None = None
    harbor_error: str | None = None  # last failed read of the artifact list
    harbor_reads: int = 0  # successful reads of the artifact list
    registry_tags: list[str] | None = None
    pulled_digest: str | None = None
    registry_error: str | None = None
    cleanup: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.project}/{self.repository}"

    @property
    def reference(self) -> str:
        return f"{self.registry_url.split('://', 1)[1]}/{self.name}:{self.tag}"


def check_push_is_listed(settings, run_id: str, environ: Mapping[str, str] = os.environ) -> Result:
    """Push a unique image, wait for Harbor to list it, compare with the registry, clean up, judge."""
    if not settings.harbor_url:
        return Result.not_checked(NOT_CONFIGURED)
    project = settings.harbor_project or "library"
    try:
        username, password = credentials(environ)
        api = HarborApi(settings.harbor_url, username, password)
        version = api.preflight(project)
    except HarborError as exc:
        return Result.failed(UNKNOWN, [str(exc)], hint="check --harbor-url, --harbor-project, "
                             "HARBOR_USERNAME/HARBOR_PASSWORD and that this machine can reach Harbor")
    registry = Registry(settings.harbor_registry or settings.harbor_url, username, password)
    tag = probe_tag(run_id)
    image = probe_image(run_id, tag)
    watch = Watch(harbor_url=api.url, registry_url=registry.url, project=project, repository=PROBE_REPOSITORY,
                  tag=tag, digest=image.digest, timeout=settings.harbor_timeout, harbor_version=version)
    watch.cleanup += remove_dead_probes(api, project)
    try:
        _push(registry, image, watch)
        if watch.push_error is None:
            _wait_for_listing(api, watch)
            _ask_registry(registry, watch)
    finally:  # also on failure and Ctrl-C
        if watch.push_error is None or watch.pushed_at is not None:
            _clean_up(api, registry, watch)
    return judge(watch)


def tag_age(tag: str, now: dt.datetime) -> float | None:
    """Seconds since the run that pushed a probe tag started (`st-YYYYmmdd-HHMMSS-...`), else None."""
    if not tag.startswith("st-"):
        return None
    try:
        started = dt.datetime.strptime(tag[3:18], "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return (now - started).total_seconds()


def remove_dead_probes(api: HarborApi, project: str) -> list[str]:
    """Delete probe artifacts that runs killed mid-check left (older than LEFTOVER_AGE); notes of what failed.

    Age, not the lock, decides: runs against other clusters may share this Harbor project.
    """
    now = dt.datetime.now(dt.UTC)
    try:
        for artifact in api.artifacts(project, PROBE_REPOSITORY):
            ages = [tag_age(t.get("name", ""), now) for t in artifact.get("tags") or []]
            if ages and all(a is not None and a > LEFTOVER_AGE for a in ages):
                api.delete_artifact(project, PROBE_REPOSITORY, artifact["digest"])
    except HarborError as exc:
        return [f"clean-up of earlier runs' probe tags: {exc}"]
    return []


def _push(registry: Registry, image, watch: Watch) -> None:
    try:
        pushed = registry.push_image(watch.name, watch.tag, image)
    except RegistryError as exc:
        watch.push_error = str(exc)
        return
    watch.pushed_at = time.monotonic()
    if pushed != watch.digest:
        watch.push_error = f"the registry stored the manifest as {pushed}, the pushed bytes are {watch.digest}"


def _wait_for_listing(api: HarborApi, watch: Watch) -> None:
    """Poll Harbor's artifact list until it shows the tag or the bound passes."""
    deadline = watch.pushed_at + watch.timeout
    while True:
        try:
            artifact = tagged(api.artifacts(watch.project, watch.repository), watch.tag)
            watch.harbor_reads += 1
        except HarborError as exc:  # a passing fault: keep polling until the deadline
            artifact, watch.harbor_error = None, str(exc)
        now = time.monotonic()
        watch.waited = now - watch.pushed_at
        if artifact is not None:
            watch.visible_after, watch.harbor_digest = watch.waited, artifact.get("digest")
            return
        if now >= deadline:
            return
        time.sleep(min(POLL_INTERVAL, deadline - now))


def _ask_registry(registry: Registry, watch: Watch) -> None:
    try:
        watch.registry_tags = registry.tags(watch.name)
        manifest = registry.pull_manifest(watch.name, watch.tag)
        watch.pulled_digest = manifest.digest if manifest else None
    except RegistryError as exc:
        watch.registry_error = str(exc)


def _clean_up(api: HarborApi, registry: Registry, watch: Watch) -> None:
    """Delete the probe through Harbor; through the registry when Harbor does not know it."""
    errors = []
    try:
        if api.delete_artifact(watch.project, watch.repository, watch.digest):
            return
    except HarborError as exc:
        errors.append(f"Harbor API: {exc}")
    try:
        if registry.delete_manifest(watch.name, watch.digest):
            return
        errors.append("registry: manifest not found")
    except RegistryError as exc:
        errors.append(f"registry: {exc}")
    watch.cleanup.append(f"clean-up: could not delete {watch.name}@{watch.digest} ({'; '.join(errors)})")


def judge(watch: Watch) -> Result:
    """Pass with the delay, or fail naming the stale-UI cause or `unknown` with the evidence."""
    pushed = f"pushed {watch.reference} (manifest {watch.digest})"
    if watch.push_error:
        return Result.failed(UNKNOWN, [f"push of {watch.reference} failed: {watch.push_error}", *watch.cleanup],
                    hint="the registry refused the image, so Harbor's listing was not checked")
    in_registry = watch.registry_tags is not None and watch.tag in watch.registry_tags
    registry_lines = _registry_lines(watch)
    if watch.visible_after is not None:
        if watch.harbor_digest == watch.digest and watch.pulled_digest == watch.digest:
            return Result.passed(watch.cleanup, harbor_visible_after_s=f"{watch.visible_after:.2f}",
                                 harbor_probe_image=watch.reference, harbor_probe_digest=watch.digest,
                                 harbor_version=watch.harbor_version)
        return Result.failed(UNKNOWN, [
            pushed,
            f"Harbor lists {watch.tag} after {watch.visible_after:.2f} s with digest {watch.harbor_digest}",
            *registry_lines, *watch.cleanup], hint="the digests of one tag disagree")
    absent = (f"Harbor {watch.harbor_version} at {watch.harbor_url} does not list {watch.tag} in "
              f"{watch.name} after {watch.waited:.1f} s (--harbor-timeout {watch.timeout:g}, "
              f"{watch.harbor_reads} reads of /api/v2.0/projects/{watch.project}/repositories/"
              f"{repository_segment(watch.repository)}/artifacts)")
    if watch.harbor_reads == 0:
        return Result.failed(UNKNOWN, [pushed, f"Harbor's artifact list could not be read: {watch.harbor_error}",
                                     *registry_lines, *watch.cleanup])
    if in_registry and watch.pulled_digest == watch.digest:
        return Result.failed(CAUSE, [pushed, *registry_lines, absent, *watch.cleanup],
                    hint="the registry holds the image, Harbor was never told: its registry's notifications "
                         "(notifications.endpoints -> <core>/service/notifications) do not reach Harbor core")
    return Result.failed(UNKNOWN, [pushed, *registry_lines, absent, *watch.cleanup],
                hint="the registry itself does not serve the pushed tag, so the push did not land")


def _registry_lines(watch: Watch) -> list[str]:
    if watch.registry_error:
        return [f"the registry could not be read back: {watch.registry_error}"]
    listed = "includes" if watch.tag in (watch.registry_tags or []) else "does not include"
    if watch.pulled_digest is None:
        pulled = f"pull of {watch.tag} by tag: the registry has no such manifest"
    else:
        same = "same as pushed" if watch.pulled_digest == watch.digest else "DIFFERS from the push"
        pulled = f"pulled back by tag: manifest {watch.pulled_digest} ({same})"
    return [f"registry {watch.registry_url} /v2/{watch.name}/tags/list {listed} {watch.tag}", pulled]

"""Quick looks at the running lab that tell whether a fault is in effect: a TCP connection from a
node, a request from a probe pod, the kubelet's log through the apiserver, a push into the registry
and what the Harbor double lists. Each returns what it saw; faults.py decides what that means.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from . import addons, net
from .kubectl import Kubectl
from .layout import HARBOR_PORT, HARBOR_PROJECT, REGISTRY_PORT, Node
from .shell import LabError, run

CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()"
REGISTRY = f"http://127.0.0.1:{REGISTRY_PORT}"
HARBOR = f"http://127.0.0.1:{HARBOR_PORT}"
CHECK_REPOSITORY = f"{HARBOR_PROJECT}/seatrials-lab-fault-check"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KUBELET_STARTED = "Kubelet version"  # the first line a kubelet logs (cmd/kubelet/app/server.go)
PATIENCE = 3  # seconds a probe waits for an answer


def tcp_from_node(node: Node, ip: str, port: int) -> str | None:
    """Open a TCP connection from the node's host network; None when it opened, else why not."""
    try:
        run(net.in_netns(node.netns, [sys.executable, "-c", CONNECT, ip, str(port)]), timeout=15)
    except LabError as e:
        return str(e).rsplit(": ", 1)[-1]  # the Python error's last words (timed out, refused ...)
    return None


def probe_pods(kubectl: Kubectl) -> dict[str, dict]:
    """The ready probe pod of each node, by node name."""
    return {p["spec"]["nodeName"]: p for p in addons.probe_pods(kubectl)}


def pod_to_pod(kubectl: Kubectl, source: str, target: str) -> tuple[str, str | None]:
    """From the probe pod on `source` to the probe pod IP on `target`: (url, None when it answered, else why)."""
    pods = probe_pods(kubectl)
    missing = [n for n in (source, target) if n not in pods]
    if missing:
        raise LabError(f"no ready probe pod on {', '.join(missing)}")
    url = f"http://{pods[target]['status']['podIP']}:{addons.PROBE_PORT}/"
    try:
        answer = addons.fetch_from(kubectl, pods[source], url, seconds=PATIENCE)
    except LabError as e:
        why = str(e).rsplit(": ", 1)[-1]
        return url, f"no answer within {PATIENCE}s" if "exit code 143" in why else why  # `timeout` killed wget
    return url, None if answer == target else f"answered {answer!r}"


def kubelet_log_since_start(kubectl: Kubectl, node: str) -> list[str]:
    """The node's kubelet.log through the apiserver (the suite's way), from the kubelet's last start."""
    lines = kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/logs/kubelet.log").splitlines()
    starts = [i for i, line in enumerate(lines) if KUBELET_STARTED in line]
    return lines[starts[-1] :] if starts else lines


def ready_condition(kubectl: Kubectl, node: str) -> dict:
    conditions = kubectl.json("get", "node", node)["status"].get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {"status": "Unknown", "message": "no condition"})


def endpoints(kubectl: Kubectl, namespace: str, service: str) -> tuple[int, int]:
    """(all, ready) endpoints of a Service in its EndpointSlices. kube-proxy still forwards to a terminating
    endpoint that serves when no other is ready, so a Service is dead only when none is left at all."""
    slices = kubectl.json("get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}")
    listed = [e for s in slices["items"] for e in s.get("endpoints") or []]
    return len(listed), sum(1 for e in listed if (e.get("conditions") or {}).get("ready") is not False)


def node_ready(kubectl: Kubectl, node: str) -> bool:
    return ready_condition(kubectl, node)["status"] == "True"


def admission_refusal(kubectl: Kubectl, pod: dict) -> str | None:
    """Create the pod with a server-side dry run: None when admission lets it in, else its refusal."""
    try:
        kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    except LabError as e:
        text = str(e)
        start = max(text.find("is invalid:"), text.find("is forbidden:"), 0)
        return text[start:][:300]
    return None


def push_check_image(tag: str) -> str:
    """Push a one-blob image (its config; no layers) straight into the registry; returns its digest.

    The registry then notifies its endpoint, which is what the Harbor double listens to.
    """
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers",
                         "diff_ids": []}}).encode()  # fmt: skip
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    upload = _request("POST", f"/v2/{CHECK_REPOSITORY}/blobs/uploads/").headers["Location"]
    separator = "&" if "?" in upload else "?"
    _request("PUT", f"{upload}{separator}digest={config_digest}", config, "application/octet-stream")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": len(config)},
            "layers": [],
        }
    ).encode()  # fmt: skip
    _request("PUT", f"/v2/{CHECK_REPOSITORY}/manifests/{tag}", manifest, OCI_MANIFEST)
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def delete_check_image(digest: str) -> None:
    _request("DELETE", f"/v2/{CHECK_REPOSITORY}/manifests/{digest}")


def harbor_lists(tag: str) -> bool:
    """Whether the Harbor double's API lists the check image's tag."""
    name = quote(quote(CHECK_REPOSITORY.split("/", 1)[1], safe=""), safe="")  # Harbor wants it encoded twice
    url = f"{HARBOR}/api/v2.0/projects/{HARBOR_PROJECT}/repositories/{name}/artifacts"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            artifacts = json.load(answer)
    except urllib.error.HTTPError as e:
        if e.code == 404:  # the repository is not known at all
            return False
        raise LabError(f"the Harbor double answered {url} with {e.code}") from e
    except OSError as e:
        raise LabError(f"the Harbor double does not answer {url}: {e}") from e
    return any(t["name"] == tag for a in artifacts for t in a.get("tags") or [])


def unique_tag() -> str:
    return f"check-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6:06d}"


def _request(method: str, path: str, body: bytes | None = None, content_type: str = ""):
    url = path if path.startswith("http") else REGISTRY + path
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer
    except (urllib.error.HTTPError, OSError) as e:
        raise LabError(f"the registry refused {method} {path}: {e}") from e

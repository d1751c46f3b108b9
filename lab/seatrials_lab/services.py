"""The lab's services in the machine's namespace: the apiserver load balancer, the registry and
the Harbor double (moto is in aws.py)."""

from __future__ import annotations

import json
import secrets
import sys

from . import processes
from .layout import (
    APISERVER_PORT,
    BALANCER_PORT,
    HARBOR_PASSWORD,
    HARBOR_PORT,
    HARBOR_USER,
    HOST_CGROUP,
    HOST_IP,
    REGISTRY_PORT,
    Node,
    Paths,
)
from .shell import LabError, port_open, wait_for

REGISTRY_BINARY = "docker-registry"  # Debian's build of the CNCF distribution registry
# Harbor's real path for the registry's notifications; phase 2 points the registry elsewhere.
NOTIFICATIONS_URL = f"http://127.0.0.1:{HARBOR_PORT}/service/notifications"


def _claim(port: int, host: str = "127.0.0.1", grace: float = 10) -> None:
    """The port must be free; a daemon the lab just stopped gets `grace` seconds to let go of it."""
    try:
        wait_for(f"{host}:{port} to be free", lambda: not port_open(host, port), timeout=grace, interval=0.2)
    except LabError:
        raise LabError(f"{host}:{port} is already in use; the lab needs it") from None


def _wait_listening(what: str, port: int, host: str = "127.0.0.1") -> None:
    wait_for(f"{what} on {host}:{port}", lambda: port_open(host, port), timeout=30, interval=0.2)


def start_balancer(paths: Paths, masters: list[Node]) -> None:
    for host in ("127.0.0.1", HOST_IP):
        _claim(BALANCER_PORT, host)
    argv = [sys.executable, "-m", "seatrials_lab.balancer"]
    argv += [f"--listen={host}:{BALANCER_PORT}" for host in ("127.0.0.1", HOST_IP)]
    argv += [f"--backend={m.ip}:{APISERVER_PORT}" for m in masters]
    processes.start(
        paths,
        "balancer",
        argv,
        log=paths.logs / "balancer.log",
        cgroup=HOST_CGROUP,
        env={"PYTHONPATH": str(paths.lab)},
    )
    _wait_listening("the load balancer", BALANCER_PORT)


def registry_config(paths: Paths, notifications_url: str = NOTIFICATIONS_URL) -> dict:
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(paths.registry)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{REGISTRY_PORT}", "secret": secrets.token_hex(16)},
        "notifications": {
            "endpoints": [
                {
                    "name": "harbor",
                    "url": notifications_url,
                    "timeout": "3s",
                    "threshold": 5,
                    "backoff": "1s",
                    "ignoredmediatypes": ["application/octet-stream"],
                }
            ]
        },
    }


def start_registry(paths: Paths, notifications_url: str = NOTIFICATIONS_URL) -> None:
    _claim(REGISTRY_PORT)
    paths.registry.mkdir(parents=True, exist_ok=True)
    config = paths.state / "registry.json"  # JSON is YAML: the registry reads it as its config.yml
    config.write_text(json.dumps(registry_config(paths, notifications_url), indent=2))
    processes.start(
        paths,
        "registry",
        [REGISTRY_BINARY, "serve", str(config)],
        log=paths.logs / "registry.log",
        cgroup=HOST_CGROUP,
    )
    _wait_listening("the registry", REGISTRY_PORT)


def start_harbor_double(paths: Paths) -> bool:
    """Start lab/harbor_double.py when it exists; returns whether it was started."""
    script = paths.lab / "harbor_double.py"
    if not script.exists():
        return False
    _claim(HARBOR_PORT)
    argv = [
        sys.executable,
        str(script),
        f"--listen=127.0.0.1:{HARBOR_PORT}",
        f"--registry=http://127.0.0.1:{REGISTRY_PORT}",
        f"--username={HARBOR_USER}",
        f"--password={HARBOR_PASSWORD}",
    ]
    processes.start(paths, "harbor-double", argv, log=paths.logs / "harbor-double.log", cgroup=HOST_CGROUP)
    _wait_listening("the Harbor double", HARBOR_PORT)
    return True

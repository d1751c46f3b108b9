"""Fixtures of the project's own tests.

Registry and Harbor double: a REAL registry (Debian `docker-registry`) on a free
loopback port with a temporary storage directory, and the lab's Harbor test
double over it, both as subprocesses. Tests that need them skip when the
binary is missing (`apt-get install docker-registry`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
HARBOR_DOUBLE = REPO / "lab" / "harbor_double.py"
DOUBLE_USER = "admin"
DOUBLE_PASSWORD = "pw-" + secrets.token_hex(8)  # distinctive, so tests can look for leaks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _start(command: list[str], url: str, port: int, log: Path, ready_path: str) -> Server:
    out = log.open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    server = Server(url, port, process, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[0]} exited with {process.returncode}:\n{server.log_text()[-2000:]}")
        try:
            requests.get(url + ready_path, timeout=1)
            return server
        except requests.ConnectionError:
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"{command[0]} did not answer on {url} within 15 s:\n{server.log_text()[-2000:]}")


@pytest.fixture(scope="session")
def registry_binary() -> str:
    path = shutil.which("docker-registry")
    if not path:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    return path


@pytest.fixture
def start_registry(registry_binary, tmp_path):
    """Factory: a real registry; `notify` is the URL its notifications go to."""
    started: list[Server] = []

    def start(notify: str | None = None, readonly: bool = False, htpasswd: Path | None = None) -> Server:
        port = free_port()
        name = f"registry-{port}"
        config = [
            "version: 0.1",
            "log: {level: info, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {tmp_path / name}}}",
            "  delete: {enabled: true}",
            f"  maintenance: {{readonly: {{enabled: {str(readonly).lower()}}}}}",
            f"http: {{addr: '127.0.0.1:{port}', secret: {secrets.token_hex(8)}}}",
        ]
        if htpasswd:
            config.append(f"auth: {{htpasswd: {{realm: seatrials-test, path: {htpasswd}}}}}")
        if notify:
            config += registry_notifications(notify).splitlines()
        (tmp_path / f"{name}.yml").write_text("\n".join(config) + "\n")
        server = _start([registry_binary, "serve", str(tmp_path / f"{name}.yml")],
                        f"http://127.0.0.1:{port}", port, tmp_path / f"{name}.log", "/v2/")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def registry_notifications(url: str) -> str:
    """The registry config block that sends events to Harbor (the lab uses the same)."""
    return (
        "notifications:\n"
        "  endpoints:\n"
        "    - name: harbor\n"
        f"      url: {url}\n"
        "      timeout: 3s\n"
        "      threshold: 5\n"
        "      backoff: 1s\n"
    )


@pytest.fixture
def start_double(tmp_path):
    """Factory: the Harbor test double over a registry (restartable on the same port)."""
    started: list[Server] = []

    def start(registry: Server, port: int | None = None, ignore_notifications: bool = False) -> Server:
        port = port or free_port()
        command = [sys.executable, str(HARBOR_DOUBLE), "--listen", f"127.0.0.1:{port}", "--registry",
                   registry.url, "--username", DOUBLE_USER, "--password", DOUBLE_PASSWORD]
        if ignore_notifications:
            command.append("--ignore-notifications")
        log = tmp_path / f"double-{port}-{len(started)}.log"
        server = _start(command, f"http://127.0.0.1:{port}", port, log, "/api/v2.0/systeminfo")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class HarborLab:
    registry: Server
    double: Server


@pytest.fixture
def start_harbor_lab(start_registry, start_double):
    """Factory: a registry whose notifications go to the double (which may ignore them)."""

    def start(ignore_notifications: bool = False, readonly: bool = False) -> HarborLab:
        port = free_port()
        registry = start_registry(notify=f"http://127.0.0.1:{port}/service/notifications", readonly=readonly)
        return HarborLab(registry, start_double(registry, port=port, ignore_notifications=ignore_notifications))

    return start


@pytest.fixture
def harbor_lab(start_harbor_lab) -> HarborLab:
    """A healthy Harbor: the registry's notifications reach the double."""
    return start_harbor_lab()


@pytest.fixture
def htpasswd(tmp_path) -> Path:
    """An htpasswd file (bcrypt, the only kind the registry reads) for DOUBLE_USER."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # removed in Python 3.13
        except ImportError:
            pytest.skip("no bcrypt hasher: the crypt module is gone from this Python")
    path = tmp_path / "htpasswd"
    path.write_text(f"{DOUBLE_USER}:{crypt.crypt(DOUBLE_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def double_credentials() -> tuple[str, str]:
    """(username, password) the Harbor double and the htpasswd registry accept."""
    return DOUBLE_USER, DOUBLE_PASSWORD


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"

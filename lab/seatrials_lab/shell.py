"""Running commands and waiting for conditions, with one-line errors."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class LabError(Exception):
    """A failure the user reads as one line (the CLI prints it and exits non-zero)."""


def run(argv: Sequence[str], *, input: str | bytes | None = None, check: bool = True, timeout: float = 120) -> str:
    """Run a command and return its stdout; a failure becomes a LabError naming the command and its last error line."""
    data = input.encode() if isinstance(input, str) else input
    try:
        done = subprocess.run(list(argv), input=data, capture_output=True, timeout=timeout)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} not found: install the lab's host packages (lab/setup-host.sh)") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv[:4])} ... did not finish within {timeout:.0f}s") from e
    if check and done.returncode != 0:
        lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise LabError(f"{' '.join(argv[:6])} failed (exit {done.returncode}): {lines[-1]}")
    return done.stdout.decode(errors="replace")


def wait_for(what: str, condition: Callable[[], T], timeout: float, interval: float = 0.5) -> T:
    """Poll condition until it returns something truthy; give up after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False

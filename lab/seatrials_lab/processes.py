"""Lab daemons: started detached, in a lab cgroup, logging to a file, tracked by pid file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import cgroups
from .layout import Paths
from .shell import LabError, wait_for


def start(
    paths: Paths,
    name: str,
    argv: list[str],
    *,
    log: Path,
    cgroup: cgroups.Placement,
    enter: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start argv (prefixed by `enter`, an nsenter command for node daemons) and return its pid.

    The child joins its cgroup before exec, so whatever it forks (containerd's shims) starts there too.
    """
    cgroups.create(cgroup)
    log.parent.mkdir(parents=True, exist_ok=True)
    paths.pids.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            (enter or []) + argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: cgroups.join(cgroup),
            env={**os.environ, **(env or {})},
        )
    (paths.pids / f"{name}.pid").write_text(str(child.pid))
    return child.pid


def pid_of(paths: Paths, name: str) -> int | None:
    """The pid of a running daemon, None when it never started or has exited."""
    try:
        pid = int((paths.pids / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def stop(paths: Paths, name: str, timeout: float = 30) -> None:
    """Stop one daemon by its pid file (SIGTERM, then SIGKILL after timeout) and wait until it is gone."""
    pid = pid_of(paths, name)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_for(f"{name} (pid {pid}) to exit", lambda: not alive(pid), timeout, interval=0.1)
    except LabError:
        kill_all(lambda: [pid])


def kill_all(find: Callable[[], Iterable[int]], timeout: float = 30) -> None:
    """SIGKILL every process find() returns until it returns none alive.

    Repeated because a dying containerd or shim may still fork in between.
    """
    deadline = time.monotonic() + timeout
    while victims := [pid for pid in set(find()) if alive(pid)]:
        if time.monotonic() > deadline:
            raise LabError(f"processes would not die: {sorted(victims)[:10]}")
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def alive(pid: int) -> bool:
    """Running (a zombie or a vanished pid is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")

"""The lab's cgroups: every lab process lives below /seatrials-lab in every hierarchy.

That gives each node's daemons a real cgroup to name in the kubelet's kubeletCgroups and
runtimeCgroups, keeps each kubelet's pods under its own cgroupRoot, and lets `down` find
every lab process, container or not, by its cgroup alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .layout import CGROUP, SESSION_CGROUP
from .shell import LabError


def mounts() -> list[tuple[Path, set[str]]]:
    """Every cgroup hierarchy (v1 controllers, named ones, and the v2 tree): mount point and options."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        dash = fields.index("-")
        if fields[dash + 1] in ("cgroup", "cgroup2"):
            found.append((Path(fields[4]), set(fields[dash + 3].split(","))))
    return found


def hierarchies() -> list[Path]:
    return [root for root, _ in mounts()]


Placement = str | Mapping[Path, str]  # one path in every hierarchy, or a path per hierarchy root


def placed(placement: Placement) -> dict[Path, str]:
    """The cgroup path in each hierarchy."""
    if isinstance(placement, str):
        return {root: placement for root in hierarchies()}
    return dict(placement)


def login_session(parent: str) -> dict[Path, str]:
    """A login session's cgroup as an init system without CPU/memory accounting makes it: the session
    is named in the name=systemd hierarchy (where the kubelet's getContainer reads its own cgroup's
    name), while the controllers keep it wherever the process was (here below `parent`)."""
    systemd = [root for root, options in mounts() if "name=systemd" in options]
    if not systemd:
        raise LabError("no name=systemd cgroup hierarchy on this machine: a login-session cgroup cannot be named")
    return {root: SESSION_CGROUP if root in systemd else f"{parent}/{SESSION_CGROUP}" for root in hierarchies()}


def create(placement: Placement) -> list[Path]:
    """Create the cgroup (e.g. seatrials-lab/worker-1/system.slice) in every hierarchy; returns the
    directories it had to make, parents first."""
    made = []
    for root, path in placed(placement).items():
        current = root
        for part in path.split("/"):
            parent, current = current, current / part
            if current.is_dir():
                continue
            current.mkdir()
            made.append(current)
            if (current / "cpuset.cpus").exists():  # a v1 cpuset cgroup takes no task until cpus and mems are set
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (current / name).write_text((parent / name).read_text())
    return made


def join(placement: Placement) -> None:
    """Move the calling process into the cgroup in every hierarchy (run between fork and exec)."""
    for root, path in placed(placement).items():
        (root / path / "cgroup.procs").write_text("0")


def of_process(pid: int) -> list[str]:
    """The cgroup paths of a process, one per hierarchy ('' when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return []
    return [line.split(":", 2)[2] for line in text.splitlines()]


def lab_processes() -> list[int]:
    """Every process inside the lab's cgroups, containers included."""
    top = f"/{CGROUP}"
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and any(p == top or p.startswith(top + "/") for p in of_process(int(entry)))
    ]


def remove() -> list[Path]:
    """Remove the lab's cgroups deepest first; returns those that would not go (still holding tasks)."""
    left = []
    for root in hierarchies():
        top = root / CGROUP
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                os.rmdir(directory)
            except OSError:
                left.append(Path(directory))
    return left


def discard(directories: list[Path]) -> list[Path]:
    """Remove cgroup directories the lab made for a fault (deepest first); returns those that would not
    go (still holding tasks, or children the lab did not make)."""
    left = []
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            left.append(directory)
    return left


def existing() -> list[Path]:
    return [root / CGROUP for root in hierarchies() if (root / CGROUP).is_dir()]


def memory() -> dict[str, int]:
    """Memory of every lab process (page cache included in usage and peak, not in rss), in bytes."""
    for root in hierarchies():
        top = root / CGROUP
        if (top / "memory.usage_in_bytes").exists():  # v1
            stat = dict(line.split() for line in (top / "memory.stat").read_text().splitlines())
            return {
                "usage": int((top / "memory.usage_in_bytes").read_text()),
                "peak": int((top / "memory.max_usage_in_bytes").read_text()),
                "rss": int(stat.get("total_rss", 0)),
            }
        if (top / "memory.current").exists():  # v2
            stat = dict(line.split() for line in (top / "memory.stat").read_text().splitlines())
            peak = top / "memory.peak"
            return {
                "usage": int((top / "memory.current").read_text()),
                "peak": int(peak.read_text()) if peak.exists() else 0,
                "rss": int(stat.get("anon", 0)),
            }
    return {}

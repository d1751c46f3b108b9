"""The lab's cgroups: every lab process lives below /seatrials-lab in every hierarchy.

That gives each node's daemons a real cgroup to name in the kubelet's kubeletCgroups and
runtimeCgroups, keeps each kubelet's pods under its own cgroupRoot, and lets `down` find
every lab process, container or not, by its cgroup alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from .layout import CGROUP


def hierarchies() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers, named ones, and the v2 tree)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(fields[4]))
    return found


def create(path: str) -> None:
    """Create path (e.g. seatrials-lab/worker-1/system.slice) in every hierarchy."""
    for root in hierarchies():
        current = root
        for part in path.split("/"):
            parent, current = current, current / part
            if current.is_dir():
                continue
            current.mkdir()
            if (current / "cpuset.cpus").exists():  # a v1 cpuset cgroup takes no task until cpus and mems are set
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (current / name).write_text((parent / name).read_text())


def join(path: str) -> None:
    """Move the calling process into path in every hierarchy (run between fork and exec)."""
    for root in hierarchies():
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

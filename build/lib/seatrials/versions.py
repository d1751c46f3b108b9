"""The Kubernetes minors this suite is proved on, and the one line a cluster of another minor gets.

Proved means: the whole suite signs off a healthy lab of that minor (`lab/lab matrix`, figures in
lab/README.md), and what differs between minors is covered by unit tests on objects recorded from
that minor's lab (tests/data/versions/<release>/). A cluster outside the range may well pass, but
its pass is not proved: it is said, never silently passed over.
"""

from __future__ import annotations

import re

PROVED_MINORS = ((1, 34), (1, 35), (1, 36), (1, 37))  # oldest first; lab/build/kubernetes/releases pins each

# gitVersion as /version reports it: v1.37.2, v1.30.4-eks-a737599, v1.29.3+k3s1, v1.38.0-beta.0
GIT_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?")


def minor_of(git_version: str) -> tuple[int, int] | None:
    """(major, minor) of a server's gitVersion; None when it is not a Kubernetes version."""
    m = GIT_VERSION.fullmatch(git_version.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def shown(minor: tuple[int, int]) -> str:
    return f"{minor[0]}.{minor[1]}"


def unproved(git_version: str, proved: tuple[tuple[int, int], ...] = PROVED_MINORS) -> str | None:
    """None when the suite is proved on this server's minor; else one line saying how it is outside."""
    minors = f"proved on {', '.join(map(shown, proved))}"
    minor = minor_of(git_version)
    if minor is None:
        return f"the server's version {git_version.strip()!r} is not a Kubernetes version; this suite is {minors}"
    if minor in proved:
        return None
    if minor < proved[0]:
        where = f"older than {shown(proved[0])}, the oldest minor"
    elif minor > proved[-1]:
        where = f"newer than {shown(proved[-1])}, the newest minor"
    else:
        where = "not a minor"
    return f"Kubernetes {git_version.strip()} is {where} this suite is proved on ({minors}): its results are not proved"

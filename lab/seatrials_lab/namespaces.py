"""Each node's own mount and UTS namespace, held open by files, with its private mounts.

A node's daemons see the machine's filesystem except for the directories Kubernetes and
containerd hard-code, which are bind mounts of that node's own directories. The
namespace is created once (`unshare --mount=FILE`) and every daemon joins it with
nsenter, together with the node's network namespace; `ip netns exec` is not used because
it remounts /sys and hides the cgroup tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import net
from .layout import Node, Paths
from .shell import run

# path inside the node -> where its contents live: (the node's disk or run directory, name)
PRIVATE = {
    "/etc/kubernetes": ("disk", "etc-kubernetes"),
    "/etc/cni/net.d": ("disk", "cni-conf"),
    "/var/lib/kubelet": ("disk", "kubelet"),
    "/var/lib/containerd": ("disk", "containerd"),
    "/var/lib/cni": ("disk", "cni"),
    "/var/lib/etcd": ("disk", "etcd"),
    "/var/log": ("disk", "log"),  # so the kubelet's logs/ endpoint serves this node's logs
    "/run/containerd": ("run", "containerd"),
    "/run/netns": ("run", "netns"),  # containerd's pod network namespaces
    "/run/flannel": ("run", "flannel"),  # flannel's subnet.env (a hostPath of its DaemonSet)
    "/run/xtables.lock": ("run", "xtables.lock"),  # a file: iptables' lock, one per node
}


def private_mounts(paths: Paths, node: Node) -> list[tuple[Path, Path]]:
    """(source on the machine, target inside the node) for every private mount of a node."""
    base = {"disk": paths.node_disk(node), "run": paths.node_run(node)}
    return [(base[where] / name, Path(target)) for target, (where, name) in PRIVATE.items()]


# Paths of the machine itself that pods' hostPath volumes name and the kubelet or containerd would create when
# absent: the kubelet's volume plugin directory (any kubelet), kube-proxy's /lib/modules (kubeadm's DaemonSet).
HOST_PATHS = ("/usr/libexec/kubernetes", "/lib/modules")


def missing_mountpoints() -> list[Path]:
    """Mount targets and host paths absent on this machine: `up` creates them (and records them, for `down`)."""
    return [Path(target) for target in (*PRIVATE, *HOST_PATHS) if not Path(target).exists()]


def create_mountpoints(targets: list[Path]) -> None:
    for target in targets:
        if target.suffix == ".lock":
            target.touch()
        else:
            target.mkdir(parents=True)


def mounted(path: Path) -> bool:
    return str(path) in mount_points()


def mount_points() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def prepare(paths: Paths) -> None:
    """Make the namespace directory a private mount: a mount namespace can only be held open there."""
    paths.namespaces.mkdir(parents=True, exist_ok=True)
    if not mounted(paths.namespaces):
        run(["mount", "--bind", str(paths.namespaces), str(paths.namespaces)])
        run(["mount", "--make-private", str(paths.namespaces)])


def files(paths: Paths, node: Node) -> tuple[Path, Path]:
    return paths.namespaces / f"{node.name}.mnt", paths.namespaces / f"{node.name}.uts"


def create(paths: Paths, node: Node) -> None:
    """Create the node's mount and UTS namespaces (hostname = node name) and its private mounts."""
    mnt, uts = files(paths, node)
    mnt.touch()
    uts.touch()
    pairs = private_mounts(paths, node)
    for source, target in pairs:
        if target.suffix == ".lock":
            source.parent.mkdir(parents=True, exist_ok=True)
            source.touch()
        else:
            source.mkdir(parents=True, exist_ok=True)
    # Inside the new namespace: drop the copy of the namespace directory (it would keep the
    # other nodes' namespaces referenced), then bind the node's own directories.
    script = 'hostname "$1"; umount -l "$2"; shift 2; while [ $# -gt 0 ]; do mount --bind "$1" "$2"; shift 2; done'
    args = [node.name, str(paths.namespaces)] + [str(p) for pair in pairs for p in pair]
    run(
        ["unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private", "--", "sh", "-ec", script, "sh"]
        + args
    )


def enter(paths: Paths, node: Node) -> list[str]:
    """The command prefix that runs a program as part of the node: its network, mount and UTS namespaces."""
    mnt, uts = files(paths, node)
    return ["nsenter", f"--net={net.netns_path(node.netns)}", f"--mount={mnt}", f"--uts={uts}", "--"]


def run_in(paths: Paths, node: Node, argv: list[str], *, input: str | None = None, timeout: float = 120) -> str:
    return run(enter(paths, node) + argv, input=input, timeout=timeout)


def remove(paths: Paths) -> None:
    """Release every node's namespace files, then the private mount that held them."""
    if not paths.namespaces.is_dir():
        return
    for held in sorted(paths.namespaces.iterdir()):
        if mounted(held):
            run(["umount", str(held)])
    if mounted(paths.namespaces):
        run(["umount", str(paths.namespaces)])


def show_init_pid_namespace(paths: Paths, node: Node) -> bool:
    """Make PID 1's pid namespace readable inside the node where the machine hides it; returns whether it had to.

    Some VM sandboxes refuse even root the links in /proc/1/ns, and then the kubelet's own housekeeping
    (isProcessRunningInHost in pkg/kubelet/cm/container_manager_linux.go) stops before it looks up its
    cgroup. Inside the node's private mount namespace only, /proc/1 is covered by a directory whose
    ns/pid link holds PID 1's true value: the pid namespace this process sees it as pid 1 in, its own.
    """
    try:
        os.readlink("/proc/1/ns/pid")
        return False
    except PermissionError:
        pass
    shim = paths.node_run(node) / "init-process"
    (shim / "ns").mkdir(parents=True, exist_ok=True)
    link = shim / "ns" / "pid"
    if not link.is_symlink():
        link.symlink_to(os.readlink("/proc/self/ns/pid"))
    run_in(paths, node, ["sh", "-c", 'mountpoint -q /proc/1 || mount --bind "$0" /proc/1', str(shim)])
    return True


def restore_init_process(paths: Paths, node: Node) -> None:
    """Undo show_init_pid_namespace: the node sees the machine's /proc/1 again."""
    run_in(paths, node, ["sh", "-c", "! mountpoint -q /proc/1 || umount /proc/1"])


def newest_argv(n: Node, program: str) -> list[str]:
    """The command line of the newest process of that program in the node's network namespace (a static pod's
    container or a plain process alike); [] when none runs."""
    netns = os.stat(net.netns_path(n.netns)).st_ino
    newest: tuple[int, list[str]] = (-1, [])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if Path(argv[0]).name != program or os.stat(f"/proc/{entry}/ns/net").st_ino != netns:
                continue
            started = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if started > newest[0]:
            newest = (started, [a for a in argv if a])
    return newest[1]

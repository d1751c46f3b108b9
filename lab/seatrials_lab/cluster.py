"""Bring the lab up, tear it down, say what runs.

`up` writes what it is about to create into <run>/lab.json before creating it, and every
kernel object it makes carries a lab prefix or lives below the lab's cgroup, so `down`
undoes a crashed or partial `up` as well as a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import addons, aws, cgroups, control_plane, images, kubeadm, namespaces, net, node, processes, services
from .kubectl import Kubectl
from .layout import (
    APISERVER_PORT,
    AWS_KEY,
    BALANCER_PORT,
    CGROUP,
    HARBOR_PASSWORD,
    HARBOR_PORT,
    HARBOR_PROJECT,
    HARBOR_USER,
    MOTO_PORT,
    REGION,
    REGISTRY_PORT,
    Node,
    Paths,
    flannel_backend,
    plan,
    pod_ips_between_nodes,
)
from .pki import Pki, kubeconfig
from .shell import LabError, run, wait_for

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "etcd")
BINARIES += ("coredns", "pause", "flanneld", "kubeadm")
READY_TIMEOUT = 300
# Every node's kubelet, containerd and kube-proxy (and a master's control plane) hold inotify instances, counted
# against one per-user limit of the machine's kernel: 126 in use at 12 nodes (3 masters), where the default 128
# stops the next kubelet ("Failed to start cAdvisor" err="inotify_init: too many open files").
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_NODE = 16


class Progress:
    """One line per step on stderr, with the time since `up` started."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def __call__(self, message: str) -> None:
        print(f"lab: [{self.elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, cgroups)")


def build_args(kubernetes: str | None) -> list[str]:
    return ["--kubernetes", kubernetes] if kubernetes else []


def build_sh(paths: Paths, kubernetes: str | None, *mode: str, **run_options) -> subprocess.CompletedProcess:
    """lab/build.sh for this Kubernetes version (a minor such as 1.37, a release such as v1.37.2, None
    for the default), on the lab's cache."""
    env = {**os.environ, "SEATRIALS_LAB_CACHE": str(paths.cache)}
    return subprocess.run([str(paths.lab / "build.sh"), *build_args(kubernetes), *mode], env=env, **run_options)


def build_dir(paths: Paths, kubernetes: str | None = None) -> Path:
    """Where lab/build.sh puts the binaries of this version; a one-line error for a version it cannot name."""
    done = build_sh(paths, kubernetes, "--print", capture_output=True, text=True)
    if done.returncode != 0:  # build.sh says what is wrong with the version in one line
        said = done.stderr.strip().splitlines() or [f"lab/build.sh failed (exit {done.returncode})"]
        raise LabError(said[-1].removeprefix("lab build: "))
    return Path(done.stdout.strip())


def bin_dir(paths: Paths, kubernetes: str | None = None) -> Path:
    """The built binaries of this Kubernetes version, all of them there."""
    directory = build_dir(paths, kubernetes)
    missing = [b for b in BINARIES if not (directory / b).is_file()]
    if missing:
        build = " ".join(["lab/build.sh", *build_args(kubernetes)])
        raise LabError(f"binaries not built ({', '.join(missing)} missing in {directory}): run {build}")
    return directory


def kubernetes_version(binaries: Path) -> str:
    """The release of these binaries, as the apiserver reports it (v1.37.2)."""
    return run([str(binaries / "kube-apiserver"), "--version"]).split()[-1]


def binaries_of(paths: Paths, record: dict) -> Path:
    """The binaries the lab came up with (a lab an older checkout brought up did not record them)."""
    return Path(record["binaries"]) if "binaries" in record else bin_dir(paths)


def load_record(paths: Paths) -> dict | None:
    try:
        return json.loads(paths.record.read_text())
    except (OSError, ValueError):
        return None


def save_record(paths: Paths, record: dict) -> None:
    paths.record.parent.mkdir(parents=True, exist_ok=True)
    paths.record.write_text(json.dumps(record, indent=2))


def nodes_of(record: dict) -> list[Node]:
    return plan(record["masters"], record["workers"], record.get("subnets", 1))


def shape_of(record: dict) -> str:
    """The lab's shape beyond its size, as `status` shows it: "cni native, 1 subnet" (", layout kubeadm")."""
    layout = "" if layout_of(record) == "hard-way" else f", layout {layout_of(record)}"
    return f"cni {record.get('cni', 'native')}, {_count(record.get('subnets', 1), 'subnet')}{layout}"


def layout_of(record: dict) -> str:
    return record.get("layout", "hard-way")


def lab_processes(paths: Paths) -> set[int]:
    """Live processes in the lab's cgroups, or in one of its network or mount namespaces (zombies are
    not counted: they hold nothing, and the machine's init reaps them)."""
    held = [Path(net.netns_path(n)) for n in net.lab_netns()]
    held += sorted(paths.namespaces.glob("*.mnt")) if paths.namespaces.is_dir() else []
    inodes = set()
    for path in held:
        try:
            inodes.add(path.stat().st_ino)
        except OSError:
            continue
    found = set(cgroups.lab_processes())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for kind in ("net", "mnt"):
            try:
                if os.stat(f"/proc/{entry}/ns/{kind}").st_ino in inodes:
                    found.add(int(entry))
            except OSError:
                continue
    return {pid for pid in found if processes.alive(pid)}


def leftovers(paths: Paths, record: dict | None = None) -> list[str]:
    """Everything of the lab still present in the machine (empty after a clean `down`)."""
    outside = map(Path, (record or load_record(paths) or {}).get("cgroups_outside_lab", []))
    found = [f"network namespace {n}" for n in net.lab_netns()]
    found += [f"mount {m}" for m in namespaces.mount_points() if "seatrials" in m]
    found += [f"cgroup {c}" for c in cgroups.existing()]
    found += [f"cgroup {c}" for c in outside if c.is_dir()]
    found += [f"link {link}" for link in net.links_in_machine()]
    found += [f"route {r}" for r in net.routes_in_machine()]
    found += [f"iptables rule {r}" for r in net.rules_in_machine()]
    found += [f"process {pid}" for pid in sorted(lab_processes(paths))]
    # What the lab made on the machine itself, kubeadm's files included had kubeadm written outside a node.
    found += [f"{p} (made by the lab: {_contents(p)})" for p in map(Path, (record or {}).get("created", []))
              if p.exists() or p.is_symlink()]
    was = (record or {}).get("inotify_instances_was")
    if was is not None and int(INOTIFY_INSTANCES.read_text()) != was:
        found.append(f"sysctl fs.inotify.max_user_instances {INOTIFY_INSTANCES.read_text().strip()} (was {was})")
    return found


def up(paths: Paths, masters: int, workers: int, cni: str = "native", subnets: int = 1,
       kubernetes: str | None = None, layout: str = "hard-way") -> None:
    require_root()
    nodes = plan(masters, workers, subnets)
    if (existing := load_record(paths)) is not None:
        if "ready_seconds" in existing:
            raise LabError("the lab is already up (lab/lab status shows it; lab/lab down stops it)")
        raise LabError("a lab is already there, not ready (an `up` is running or failed): lab/lab down removes it")
    if found := leftovers(paths):
        raise LabError(f"a previous lab left {found[0]} and {len(found) - 1} more: run lab/lab down first")
    binaries = bin_dir(paths, kubernetes)
    created = namespaces.missing_mountpoints()
    record = {
        "masters": masters,
        "workers": workers,
        "kubernetes": kubernetes_version(binaries),
        "binaries": str(binaries),  # the lab keeps using the binaries it came up with
        "cni": cni,
        "subnets": subnets,
        "layout": layout,
        "started": time.time(),
        "created": [str(p) for p in created],  # mount targets and host paths that did not exist on the machine
        "run_netns_was_mounted": namespaces.mounted(net.NETNS_DIR),
    }
    save_record(paths, record)
    try:
        _enough_inotify_instances(paths, record, len(nodes))
        _bring_up(paths, nodes, binaries, record)
    except LabError as e:
        raise LabError(f"{e} (lab/lab down removes the partial lab)") from e


def _enough_inotify_instances(paths: Paths, record: dict, nodes: int) -> None:
    """Raise the machine's per-user inotify instance limit where this many nodes need more; `down` puts the
    old value back (the one setting of the machine the lab changes, and only for the lab's lifetime)."""
    needed, current = INOTIFY_PER_NODE * nodes + 32, int(INOTIFY_INSTANCES.read_text())
    if current < needed:
        record["inotify_instances_was"] = current  # recorded first: `down` restores it even after a failed up
        save_record(paths, record)
        INOTIFY_INSTANCES.write_text(f"{needed}\n")


def _bring_up(paths: Paths, nodes: list[Node], binaries: Path, record: dict) -> None:
    progress = Progress()
    masters_ = [n for n in nodes if n.is_master]
    cni, backend = record["cni"], flannel_backend(record["cni"])
    namespaces.create_mountpoints([Path(p) for p in record["created"]])
    cgroups.create(CGROUP)

    aws.start_moto(paths)
    record["instances"] = aws.populate(aws.ec2(), nodes, pod_ips_between_nodes(cni))
    save_record(paths, record)
    progress(f"moto on 127.0.0.1:{MOTO_PORT}: {len(nodes)} instances in {_count(record['subnets'], 'subnet')}")

    net.create_vpc(record["subnets"])
    for n in nodes:
        net.create_node(n, nodes, static_routes=backend is None)
    rules = aws.sync_vpc(nodes)
    namespaces.prepare(paths)
    for n in nodes:
        namespaces.create(paths, n)
    progress(f"network and node namespaces ready; VPC filter: {rules.count(chr(10) + '-A ')} rules from moto")

    pki = Pki(paths.pki)
    kubeadm_images = kubeadm.image_list(paths, binaries, record["kubernetes"]) if record["layout"] == "kubeadm" else []
    built = images.build(paths, binaries, flannel=backend is not None, components=tuple(kubeadm_images))
    for n in nodes:
        node.write_runtime_files(paths, n, kubeadm.pause_image(kubeadm_images) if kubeadm_images else images.PAUSE)
        if backend is None:
            node.write_cni_config(paths, n)
        if kubeadm_images:
            kubeadm.write_node_files(paths, n, record["instances"][n.name])
            continue
        node.write_files(paths, n, pki, record["instances"][n.name])
        if n.is_master:
            control_plane.write_files(paths, n, pki)
    balancer = f"https://127.0.0.1:{BALANCER_PORT}"
    for copy in (paths.admin_kubeconfig, paths.lab_kubeconfig):
        copy.write_text(kubeconfig(balancer, pki.ca.pair, "kubernetes-admin", pki.admin))
        copy.chmod(0o600)
    progress(f"certificates, configurations and {len(built.archives)} images ready")

    kubectl = Kubectl(binaries / "kubectl", paths.lab_kubeconfig)
    if kubeadm_images:
        _kubeadm_cluster(paths, nodes, binaries, record, pki, built, progress)
    else:
        _hard_way_cluster(paths, nodes, binaries, built, progress)
    kubectl.apply(addons.probe_objects())

    services.start_registry(paths)
    record["harbor_double"] = services.start_harbor_double(paths)
    save_record(paths, record)
    harbor = "Harbor double" if record["harbor_double"] else "no Harbor double (lab/harbor_double.py missing)"
    progress(f"registry on 127.0.0.1:{REGISTRY_PORT}, {harbor}")

    wait_for("every node to register", lambda: _registered(kubectl, nodes), READY_TIMEOUT)
    _describe_nodes(kubectl, nodes)
    if backend:  # after every node has its pod CIDR, which flannel's subnet manager leases
        kubectl.apply(addons.flannel_objects(built.flannel, backend))
        progress(f"flannel ({backend}) applied: DaemonSet {addons.FLANNEL_NAMESPACE}/kube-flannel-ds")
    wait_for("every node to be Ready", lambda: not _not_ready(kubectl, nodes), READY_TIMEOUT)
    progress("all nodes Ready")
    wait_for(
        "a probe pod on every node to answer from the next node",
        lambda: not addons.probes_answer(kubectl, [n.name for n in nodes]),
        READY_TIMEOUT,
        interval=2,
    )
    wait_for("CoreDNS", lambda: answers(kubectl, "wait", "-n", "kube-system", "deploy/coredns",
                                          "--for=condition=Available", "--timeout=1s"), 120)  # fmt: skip
    record["ready_seconds"] = round(progress.elapsed, 1)
    save_record(paths, record)
    size = f"{_count(len(masters_), 'master')}, {_count(len(nodes) - len(masters_), 'worker')}"
    progress(f'lab ready: Kubernetes {record["kubernetes"]}, {size}; {shape_of(record)} '
             '(eval "$(lab/lab env)" for the suite)')


def _hard_way_cluster(paths: Paths, nodes: list[Node], binaries: Path, built: images.Built, progress: Progress) -> None:
    """The control plane, kubelet and kube-proxy as plain processes, CoreDNS applied by the lab."""
    masters_ = [n for n in nodes if n.is_master]
    for m in masters_:
        control_plane.start(paths, m, masters_, binaries)
    _start_containerd(paths, nodes, built)
    services.start_balancer(paths, masters_)
    kubectl = Kubectl(binaries / "kubectl", paths.lab_kubeconfig)
    wait_for("the apiserver through the load balancer", lambda: answers(kubectl, "get", "--raw", "/readyz"), 120)
    progress(f"control plane up ({len(masters_)} x etcd, kube-apiserver :{APISERVER_PORT}, ...), balancer :6443")
    for n in nodes:
        node.start_kubelet(paths, n, binaries)
        node.start_kube_proxy(paths, n, binaries)
    kubectl.apply(addons.coredns_objects(built.coredns))
    progress("kubelet and kube-proxy started on every node; CoreDNS applied")


def _kubeadm_cluster(paths: Paths, nodes: list[Node], binaries: Path, record: dict, pki: Pki, built: images.Built,
                     progress: Progress) -> None:
    """kubeadm init and join on the nodes, behind the balancer; the suite's kubeconfig is kubeadm's admin.conf."""
    _start_containerd(paths, nodes, built)
    services.start_balancer(paths, [n for n in nodes if n.is_master])
    progress("containerd on every node, images imported; balancer :6443")
    kubeadm.bring_up(paths, nodes, binaries, record["kubernetes"], pki, progress)
    admin = kubeadm.admin_kubeconfig(paths, nodes[0], binaries, f"https://127.0.0.1:{BALANCER_PORT}")
    paths.admin_kubeconfig.write_text(admin)


def _start_containerd(paths: Paths, nodes: list[Node], built: images.Built) -> None:
    """containerd on every node, with every image imported (together: a dozen nodes take as long as one)."""
    for n in nodes:
        node.start_containerd(paths, n)
    for n in nodes:
        node.wait_containerd(paths, n)
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        list(pool.map(lambda n: node.import_images(paths, n, built.archives), nodes))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def answers(kubectl: Kubectl, *args: str) -> bool:
    """Whether kubectl with these arguments succeeds within 20 s."""
    try:
        kubectl(*args, timeout=20)
    except LabError:
        return False
    return True


def _node_items(kubectl: Kubectl) -> dict[str, dict]:
    try:
        return {n["metadata"]["name"]: n for n in kubectl.json("get", "nodes")["items"]}
    except LabError:
        return {}


def _registered(kubectl: Kubectl, nodes: list[Node]) -> bool:
    return set(_node_items(kubectl)) >= {n.name for n in nodes}


def _not_ready(kubectl: Kubectl, nodes: list[Node]) -> list[str]:
    items = _node_items(kubectl)
    return [n.name for n in nodes if not _ready(items.get(n.name))]


def _ready(item: dict | None) -> bool:
    """A node's or a pod's Ready condition."""
    conditions = (item or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _flannel_pods(kubectl: Kubectl) -> dict[str, bool]:
    """Node name -> whether its flannel pod is ready."""
    try:
        pods = kubectl.json("get", "pods", "-n", addons.FLANNEL_NAMESPACE, "-l", "app=flannel")["items"]
    except LabError:
        return {}
    return {p["spec"].get("nodeName", ""): _ready(p) for p in pods}


def _describe_nodes(kubectl: Kubectl, nodes: list[Node]) -> None:
    """Give every node its pod /24 and its role label, as kubeadm and the node IPAM would (together: a dozen
    nodes take as long as one)."""
    items = _node_items(kubectl)

    def describe(n: Node) -> None:
        if not items[n.name]["spec"].get("podCIDR"):
            cidr = {"spec": {"podCIDR": n.pod_cidr, "podCIDRs": [n.pod_cidr]}}
            kubectl("patch", "node", n.name, "--type=merge", "-p", json.dumps(cidr))

    with ThreadPoolExecutor(max_workers=addons.PARALLEL_EXECS) as pool:
        list(pool.map(describe, nodes))
    for role, label in (("master", "control-plane"), ("worker", "worker")):
        if names := [n.name for n in nodes if n.role == role]:
            kubectl("label", "node", *names, f"node-role.kubernetes.io/{label}=", "--overwrite")


def down(paths: Paths) -> None:
    require_root()
    record = load_record(paths) or {}
    processes.kill_all(lambda: lab_processes(paths))
    namespaces.remove(paths)
    net.remove()
    lab_made_run_netns = not record.get("run_netns_was_mounted", True)  # `ip netns add` mounts it on first use
    if lab_made_run_netns and namespaces.mounted(net.NETNS_DIR) and not any(net.NETNS_DIR.iterdir()):
        run(["umount", str(net.NETNS_DIR)])
    cgroups.remove()
    cgroups.discard([Path(p) for p in record.get("cgroups_outside_lab", [])])
    if (was := record.get("inotify_instances_was")) is not None:
        INOTIFY_INSTANCES.write_text(f"{was}\n")
    for created in map(Path, record.get("created", [])):
        if created.is_file():
            created.unlink()
        elif created.is_dir() and _contents(created) == "empty":  # directories only (a kubelet's plugin dirs)
            shutil.rmtree(created)
    shutil.rmtree(paths.run, ignore_errors=True)
    for entry in paths.state.iterdir() if paths.state.is_dir() else []:
        if entry == paths.pki:  # certificates are cached across labs; everything else goes
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if found := leftovers(paths, record):
        raise LabError(f"down left {len(found)} things behind: {', '.join(found[:5])}")
    # Killed daemons were orphans: the machine's init reaps them, and may take a moment.
    try:
        wait_for("the machine's init to reap the lab's exited processes", lambda: not cgroups.lab_processes(), 15)
    except LabError as e:
        print(f"lab: warning: {e} (they hold nothing; init reaps them later)", file=sys.stderr)


def _contents(path: Path) -> str:
    """What a path the lab made holds: "empty" when nothing but directories, else a file found in it."""
    if not path.is_dir():
        return "a file"
    found = next((Path(d) / f for d, _, files in os.walk(path) for f in files), None)
    return "empty" if found is None else f"holds {found}"


def status(paths: Paths) -> tuple[str, bool]:
    """A report of what runs, and whether everything that should run does."""
    record = load_record(paths)
    if record is None:
        found = leftovers(paths)
        return ("lab is down" + (f", but {len(found)} leftovers remain: run lab/lab down" if found else ""), False)
    nodes = nodes_of(record)
    kubectl = Kubectl(binaries_of(paths, record) / "kubectl", paths.lab_kubeconfig)
    items = _node_items(kubectl)
    healthy = bool(items)
    size = f"Kubernetes {record.get('kubernetes', '(not recorded)')}, {_count(record['masters'], 'master')}, "
    size += f"{_count(record['workers'], 'worker')}; {shape_of(record)}"
    flannel = _flannel_pods(kubectl) if flannel_backend(record.get("cni", "native")) else None
    pods = kubeadm.pods(kubectl) if layout_of(record) == "kubeadm" else None
    if "ready_seconds" in record:
        lines = [f"lab is up: {size}, became ready in {record['ready_seconds']}s after `up` started"]
    else:
        healthy = False
        lines = [f"lab is not ready: {size}; `up` is still running or failed (lab/lab down cleans up)"]
    lines.append(f"{'NODE':10} {'IP':12} {'STATUS':9} PROCESSES (! = not running)")
    for n in nodes:
        shown = []
        as_pods = _as_pods(n) if pods is not None else []
        for component in [c for c in _components(n) if c not in as_pods]:
            running = processes.pid_of(paths, f"{n.name}.{component}") is not None
            healthy &= running
            shown.append(component if running else f"!{component}")
        for component in as_pods:
            running = pods.get((component, n.name), False)
            healthy &= running
            shown.append(f"{component}(pod)" if running else f"!{component}(pod)")
        if flannel is not None:  # a pod of the kube-flannel-ds DaemonSet, as in any flannel cluster
            healthy &= flannel.get(n.name, False)
            shown.append("kube-flannel(pod)" if flannel.get(n.name) else "!kube-flannel(pod)")
        ready = "Ready" if _ready(items.get(n.name)) else ("NotReady" if items else "unknown")
        healthy &= ready == "Ready"
        lines.append(f"{n.name:10} {n.ip:12} {ready:9} {' '.join(shown)}")
    services_ = [
        ("moto", "moto", f"127.0.0.1:{MOTO_PORT}"),
        ("registry", "registry", f"127.0.0.1:{REGISTRY_PORT}"),
        ("Harbor double", "harbor-double", f"127.0.0.1:{HARBOR_PORT}"),
        ("load balancer", "balancer", f"127.0.0.1:{BALANCER_PORT}"),
    ]
    for label, name, address in services_:
        running = processes.pid_of(paths, name) is not None
        if name == "harbor-double" and not record.get("harbor_double") and not running:
            lines.append(f"{label:14} {address:16} not started")
            continue
        healthy &= running
        lines.append(f"{label:14} {address:16} {'running' if running else 'NOT RUNNING'}")
    memory = cgroups.memory()
    if memory:
        mib = {k: v // 2**20 for k, v in memory.items()}
        lines.append(
            f"memory: rss {mib['rss']} MiB, usage {mib['usage']} MiB, peak {mib['peak']} MiB (cgroup {CGROUP})"
        )
    return "\n".join(lines), healthy


def _components(n: Node) -> list[str]:
    return [*(control_plane.COMPONENTS if n.is_master else ()), "containerd", "kubelet", "kube-proxy"]


def _as_pods(n: Node) -> list[str]:
    """What kubeadm runs as pods on the node: the static pods of a master, kube-proxy's DaemonSet pod."""
    return [*(control_plane.COMPONENTS if n.is_master else ()), "kube-proxy"]


def env_values(paths: Paths) -> dict[str, str]:
    """The environment the suite needs to run against the lab."""
    return {
        "KUBECONFIG": str(paths.admin_kubeconfig),
        "AWS_ENDPOINT_URL": aws.ENDPOINT,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": AWS_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_KEY,
        "SEATRIALS_HARBOR_URL": f"http://127.0.0.1:{HARBOR_PORT}",
        "SEATRIALS_HARBOR_PROJECT": HARBOR_PROJECT,
        "HARBOR_USERNAME": HARBOR_USER,
        "HARBOR_PASSWORD": HARBOR_PASSWORD,
    }


def env_lines(paths: Paths) -> list[str]:
    return [f"export {name}={value}" for name, value in env_values(paths).items()]


@dataclass
class Lab:
    """A lab that is up, as faults and the suite runner work on it."""

    paths: Paths
    record: dict
    binaries: Path

    @property
    def nodes(self) -> list[Node]:
        return nodes_of(self.record)

    @property
    def masters(self) -> list[Node]:
        return [n for n in self.nodes if n.is_master]

    @property
    def cni(self) -> str:
        return self.record.get("cni", "native")

    @property
    def layout(self) -> str:
        return layout_of(self.record)

    def start_kubelet(self, n: Node, cgroup: cgroups.Placement | None = None) -> None:
        """(Re)start the node's kubelet with its layout's flags and configuration files as they are now."""
        if self.layout == "kubeadm":
            kubeadm.start_kubelet(self.paths, n, self.binaries, cgroup)
        else:
            node.restart(self.paths, n, "kubelet", node.argv(self.binaries / "kubelet", node.kubelet_flags(n)), cgroup)

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.binaries / "kubectl", self.paths.lab_kubeconfig)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"no node {name} in this lab (it has {', '.join(n.name for n in self.nodes)})")

    def remember_cgroups(self, made: list[Path]) -> None:
        """Cgroups made outside the lab's own top (a login session's): `down` removes them too."""
        known = self.record.setdefault("cgroups_outside_lab", [])
        known += [str(p) for p in made if str(p) not in known and CGROUP not in p.parts]
        save_record(self.paths, self.record)


def running(paths: Paths) -> Lab:
    """The lab as it is up now; a one-line error when it is down or not ready."""
    require_root()
    record = load_record(paths)
    if record is None:
        raise LabError("the lab is down (lab/lab up first)")
    if "ready_seconds" not in record:
        raise LabError("the lab is not ready (an `up` is running or failed; lab/lab down cleans up)")
    return Lab(paths, record, binaries_of(paths, record))


def import_python_image(paths: Paths, venv: Path, ref: str) -> str:
    """An image of this machine's Python and the venv (images.python_image), into every node's containerd."""
    if not (venv / "bin" / "python").exists():
        raise LabError(f"{venv}: not a venv (no bin/python)")
    lab = running(paths)
    archive = images.archived(paths, images.python_image(ref, venv.absolute()))
    for n in lab.nodes:
        node.import_images(paths, n, [archive])
    return f"{ref} ({archive.stat().st_size // 2**20} MiB) imported into {', '.join(n.name for n in lab.nodes)}"


def sync_vpc(paths: Paths) -> str:
    return aws.sync_vpc(running(paths).nodes)

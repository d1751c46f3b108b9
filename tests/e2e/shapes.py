"""The lab's shapes for the end-to-end tests: which shape is up, bringing another up, and what the
suite's own AWS check observes on it."""

import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

from seatrials import cluster, topology
from seatrials.checks import aws
from tests.e2e.conftest import lab

DEFAULT = {"masters": 1, "workers": 2, "cni": "native", "subnets": 1, "layout": "hard-way"}
SHAPES = {
    "native": DEFAULT,
    "kubeadm": {**DEFAULT, "layout": "kubeadm"},  # kubeadm's init and join: static pods, kube-proxy DaemonSet
    "flannel-vxlan": {**DEFAULT, "cni": "flannel-vxlan", "subnets": 3},  # two workers, one per worker subnet
    "flannel-host-gw": {**DEFAULT, "cni": "flannel-host-gw"},
    "native-3-subnets": {**DEFAULT, "workers": 4, "subnets": 3},
    "native-3+12": {**DEFAULT, "masters": 3, "workers": 12},
}
STATUS = re.compile(r"lab is up: Kubernetes \S+, (\d+) masters?, (\d+) workers?; cni (\S+), (\d+) subnets?"
                    r"(?:, layout ([\w-]+))?")
# What the machine shows of a lab: none of it may remain after `down`.
TRACES = {
    ("ip", "netns", "list"): ("st-",),
    ("ip", "-o", "link", "show"): ("st-lab", "flannel", "vpc0", "cni0"),
    ("ip", "route", "show"): ("10.240.", "10.200.", "10.32."),
    ("iptables-save",): ("-A ",),
    ("ps", "-eo", "args"): ("/bin/kube", "/bin/etcd", "/etc/kubernetes/", "flanneld", "moto.server", "docker-registry",
                            "harbor_double", "kube-apiserver --", "kube-controller-manager --", "kube-scheduler --",
                            "kube-proxy --", "etcd --"),  # the static pods' and DaemonSet's containers
}


def current() -> dict | None:
    """The shape of the lab that is up, from `lab/lab status`; None when none is."""
    found = STATUS.search(lab("status", check=False).stdout)
    if not found:
        return None
    masters, workers, cni, subnets, layout = found.groups()
    return {"masters": int(masters), "workers": int(workers), "cni": cni, "subnets": int(subnets),
            "layout": layout or "hard-way"}


def up_args(shape: dict) -> list[str]:
    return [arg for key, value in shape.items() for arg in (f"--{key}", str(value))]


def ensure(name: str) -> None:
    """The lab up in this shape: left as it is when it already has it, else brought down and up again."""
    if current() == SHAPES[name]:
        return
    lab("down", check=False)
    started = lab("up", *up_args(SHAPES[name]), check=False)
    assert started.returncode == 0, f"lab up ({name}) failed:\n{started.stdout}\n{started.stderr[-3000:]}"


def source_dest_check_lines(lab_env: dict, node: str) -> list[str]:
    """The observations of the suite's source/destination check about one node, against the lab's moto."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in lab_env.items() if k.startswith("AWS_")})
    try:
        topo = topology.discover(cluster.connect(lab_env["KUBECONFIG"], None))
        inventory = aws.inventory(SimpleNamespace(aws_region=None), topo)
        routes = aws.routes_pod_ips_natively(topo.cni, topo.calico_pools, topo.flannel_backend)
        return [o.line() for o in aws.source_dest_check(inventory, topo.node(node), routes).observations]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def traces_left() -> list[str]:
    """What `lab/lab down` left on the machine: namespaces, links, routes, rules, processes, mounts, cgroups."""
    left = []
    for command, traces in TRACES.items():
        shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
        left += [f"{' '.join(command)}: {line}" for line in shown if any(t in line for t in traces)
                 and "pytest" not in line]
    left += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "seatrials" in line]
    return left + [str(p) for p in Path("/sys/fs/cgroup").glob("*/seatrials-lab")]

"""The lab's shapes for the end-to-end tests: which shape is up, bringing another up, and what the
suite's own AWS check observes on it."""

import os
import re
from types import SimpleNamespace

from seatrials import cluster, topology
from seatrials.checks import aws
from tests.e2e.conftest import lab

DEFAULT = {"masters": 1, "workers": 2, "cni": "native", "subnets": 1}
SHAPES = {
    "native": DEFAULT,
    "flannel-vxlan": {**DEFAULT, "cni": "flannel-vxlan", "subnets": 3},  # two workers, one per worker subnet
    "flannel-host-gw": {**DEFAULT, "cni": "flannel-host-gw"},
    "native-3-subnets": {**DEFAULT, "workers": 4, "subnets": 3},
    "native-3+12": {**DEFAULT, "masters": 3, "workers": 12},
}
STATUS = re.compile(r"lab is up: Kubernetes \S+, (\d+) masters?, (\d+) workers?; cni (\S+), (\d+) subnets?")


def current() -> dict | None:
    """The shape of the lab that is up, from `lab/lab status`; None when none is."""
    found = STATUS.search(lab("status", check=False).stdout)
    if not found:
        return None
    masters, workers, cni, subnets = found.groups()
    return {"masters": int(masters), "workers": int(workers), "cni": cni, "subnets": int(subnets)}


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

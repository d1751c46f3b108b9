"""The fault definitions' pure parts: the security group rule sets each SG fault produces, judged by
the lab's own VPC filter derivation, the login-session cgroup, which nodes a fault goes to, and the
kubeconfig rewrite of client-pem-not-base64."""

import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from seatrials_lab import cgroups, faults
from seatrials_lab.aws import healthy_ingress
from seatrials_lab.cluster import Lab
from seatrials_lab.layout import Paths
from seatrials_lab.pki import Pki, kubeconfig
from seatrials_lab.shell import LabError
from seatrials_lab.vpc_filter import PROTOCOL_NUMBERS

from .test_lab_vpc_filter import MASTERS, WORKERS, groups, instance, rules_for

CATALOG = Path(__file__).resolve().parents[2] / "seatrials" / "causes.yaml"
NODES = [
    instance("master-1", "10.240.0.11", MASTERS),
    instance("master-2", "10.240.0.12", MASTERS),
    instance("worker-1", "10.240.0.21", WORKERS),
]
MASTER_POD, OTHER_MASTER_POD, WORKER_POD = "10.200.11.5", "10.200.12.5", "10.200.21.5"


def admits(rules: list[str], chain: str, source: str, protocol: str, port: int | None = None) -> bool:
    """Walk one SG chain of the derived iptables rules for a new packet: the first matching rule decides."""
    number = PROTOCOL_NUMBERS.get(protocol, protocol)
    for rule in (r.split() for r in rules if r.startswith(f"-A {chain} ")):
        match = dict(zip(rule[2:-2:2], rule[3:-2:2], strict=True))  # -p tcp --dport 6444 -s 1.2.3.4/32
        wanted = match.get("-p")
        if wanted and wanted != protocol and str(PROTOCOL_NUMBERS.get(wanted, wanted)) != str(number):
            continue
        if "--dport" in match:
            low, _, high = match["--dport"].partition(":")
            if port is None or not int(low) <= port <= int(high or low):
                continue
        if "-s" in match and ipaddress.ip_address(source) not in ipaddress.ip_network(match["-s"]):
            continue
        return rule[-1] == "ACCEPT"
    raise AssertionError(f"{chain} has no final rule")


def master_chain(master_ingress: list[dict]) -> tuple[list[str], str]:
    """The derived rules with the masters' group holding master_ingress, and master-1's inbound chain."""
    ingress = healthy_ingress(MASTERS, WORKERS)
    ingress[MASTERS] = master_ingress
    return rules_for(NODES, groups(ingress=ingress)), "SG-IN-1"  # master-1 is the first instance by name


def test_healthy_masters_admit_everything_from_workers_and_pods():
    rules, chain = master_chain(healthy_ingress(MASTERS, WORKERS)[MASTERS])
    for protocol, port in (("tcp", 6444), ("tcp", 10250), ("tcp", 179), ("udp", 8472), ("icmp", None), ("4", None)):
        assert admits(rules, chain, "10.240.0.21", protocol, port)
    assert admits(rules, chain, WORKER_POD, "tcp", 8080)


def test_sg_node_to_apiserver_closes_only_the_apiserver_port_to_workers():
    rules, chain = master_chain(faults.apiserver_port_closed_to_workers(MASTERS, WORKERS))
    assert not admits(rules, chain, "10.240.0.21", "tcp", 6444)
    for protocol, port in (("tcp", 6443), ("tcp", 6445), ("tcp", 10250), ("tcp", 0), ("tcp", 65535),
                           ("udp", 8472), ("icmp", None), ("4", None)):  # fmt: skip
        assert admits(rules, chain, "10.240.0.21", protocol, port), (protocol, port)
    assert admits(rules, chain, "10.240.0.12", "tcp", 6444)  # the other master
    assert admits(rules, chain, WORKER_POD, "tcp", 8080)  # the pod CIDR rule stays


def test_sg_master_inbound_from_nodes_admits_only_what_was_opened():
    master_pods = ["10.200.11.0/24", "10.200.12.0/24"]
    rules, chain = master_chain(faults.masters_open_only_explicit_ports(MASTERS, WORKERS, master_pods))
    assert admits(rules, chain, "10.240.0.21", "tcp", 6444)
    assert admits(rules, chain, "10.240.0.21", "tcp", 10250)
    for protocol, port in (("tcp", 8080), ("tcp", 179), ("udp", 8472), ("udp", 4789), ("icmp", None), ("4", None)):
        assert not admits(rules, chain, "10.240.0.21", protocol, port), (protocol, port)
    assert not admits(rules, chain, WORKER_POD, "tcp", 8080)  # no pod CIDR from the workers
    assert admits(rules, chain, "10.240.0.12", "udp", 8472)  # masters still admit each other
    assert admits(rules, chain, OTHER_MASTER_POD, "tcp", 8080)  # and the pods on masters


def test_security_group_faults_leave_the_workers_group_alone():
    rules, _ = master_chain(faults.masters_open_only_explicit_ports(MASTERS, WORKERS, []))
    assert admits(rules, "SG-IN-3", "10.240.0.11", "udp", 8472)
    assert admits(rules, "SG-IN-3", MASTER_POD, "tcp", 8080)


def test_every_documented_cause_but_unknown_has_a_fault():
    catalog = {entry["id"] for entry in yaml.safe_load(CATALOG.read_text())}
    assert {c for c, f in faults.FAULTS.items() if not f.harmless} == catalog - {"unknown"}


def lab(tmp_path, masters=1, workers=2) -> Lab:
    paths = Paths(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache", lab=tmp_path)
    return Lab(paths, {"masters": masters, "workers": workers, "instances": {}}, tmp_path / "bin")


@pytest.mark.parametrize(
    ("cause", "node", "expected"),
    [
        ("kubelet-cgroups", None, ["worker-1"]),
        ("kubelet-cgroups", "master-1", ["master-1"]),
        ("ec2-source-dest-check", "all", ["master-1", "worker-1", "worker-2"]),
        ("sg-node-to-apiserver", None, []),
    ],
)
def test_fault_targets(tmp_path, cause, node, expected):
    assert [n.name for n in faults.targets(lab(tmp_path), faults.FAULTS[cause], node)] == expected


@pytest.mark.parametrize(
    ("cause", "node", "refusal"),
    [
        ("kubelet-cgroups", "all", "one node at a time"),
        ("kubelet-cgroups", "worker-9", "no node worker-9"),
        ("client-pem-not-base64", "worker-1", "takes no --node"),
    ],
)
def test_fault_targets_refused(tmp_path, cause, node, refusal):
    with pytest.raises(LabError, match=refusal):
        faults.targets(lab(tmp_path), faults.FAULTS[cause], node)


def test_the_two_security_group_faults_are_not_stacked(tmp_path):
    running = lab(tmp_path)
    running.paths.faults.parent.mkdir(parents=True)
    running.paths.faults.write_text(json.dumps({"sg-node-to-apiserver": []}))
    with pytest.raises(LabError, match="heal that one first"):
        faults.inject(running, "sg-master-inbound-from-nodes")
    assert faults.active(running.paths) == {"sg-node-to-apiserver": []}


def test_login_session_is_named_in_the_systemd_hierarchy_only(monkeypatch):
    roots = [(Path("/sys/fs/cgroup/cpu"), {"rw", "cpu"}), (Path("/sys/fs/cgroup/systemd"), {"rw", "name=systemd"})]
    monkeypatch.setattr(cgroups, "mounts", lambda: roots)
    assert cgroups.login_session("seatrials-lab/worker-1") == {
        Path("/sys/fs/cgroup/cpu"): "seatrials-lab/worker-1/user/9999.user/16.session",
        Path("/sys/fs/cgroup/systemd"): "user/9999.user/16.session",
    }
    monkeypatch.setattr(cgroups, "mounts", lambda: roots[:1])
    with pytest.raises(LabError, match="name=systemd"):
        cgroups.login_session("seatrials-lab/worker-1")


def test_session_cgroup_is_removed_with_the_parents_made_for_it():
    assert faults._session_dirs("seatrials-lab/worker-1/user/9999.user/16.session") == [
        "seatrials-lab/worker-1/user/9999.user/16.session",
        "seatrials-lab/worker-1/user/9999.user",
        "seatrials-lab/worker-1/user",
    ]
    assert faults._session_dirs("user/9999.user/16.session")[-1] == "user"


def test_raw_pem_kubeconfig_is_restored_byte_for_byte(tmp_path):
    running = lab(tmp_path)
    pki = Pki(tmp_path / "pki")
    running.paths.state.mkdir(parents=True)
    admin = running.paths.admin_kubeconfig
    admin.write_text(kubeconfig("https://127.0.0.1:6443", pki.ca.pair, "kubernetes-admin", pki.admin))
    original = admin.read_text()
    for _ in range(2):  # idempotent: the kept copy stays the original
        faults.raw_pem_in_kubeconfig(running, [])
    user = json.loads(admin.read_text())["users"][0]["user"]
    assert user["client-certificate-data"] == pki.admin.cert_pem.decode()
    assert user["client-key-data"].startswith("-----BEGIN PRIVATE KEY-----")
    faults.base64_in_kubeconfig(running, [])
    assert admin.read_text() == original

"""The kubeadm layout's pure parts: the configuration kubeadm lays the cluster out from (the field report's
ports behind the balancer, the nodes' own kubelet settings as patches, the join's CA pin), the kubelet as
kubeadm's systemd drop-in starts it, and the kubelet-cgroups fault's edits of kubeadm's files."""

import hashlib
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from seatrials_lab import kubeadm, node
from seatrials_lab.layout import Paths, plan
from seatrials_lab.pki import Pki

MASTER, WORKER = plan(3, 1)[0], plan(3, 1)[3]
TAGS = {"etcd": "3.6.16-0", "coredns": "v1.14.7"}


@pytest.fixture
def paths(tmp_path):
    return Paths(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache", lab=tmp_path)


def test_the_apiservers_listen_on_6444_behind_the_balancer_on_6443():
    cluster = kubeadm.cluster_configuration("v1.37.2", TAGS)
    init = kubeadm.init_configuration(MASTER, "abcdef.0123456789abcdef", "00" * 32, "/patches")
    assert cluster["controlPlaneEndpoint"] == "10.240.0.1:6443"  # the balancer, as the field report's ELB
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.240.0.11", "bindPort": 6444}
    assert cluster["networking"] == {"serviceSubnet": "10.32.0.0/24", "podSubnet": "10.200.0.0/16",
                                     "dnsDomain": "cluster.local"}
    assert {"name": "allocate-node-cidrs", "value": "false"} in cluster["controllerManager"]["extraArgs"]


def test_a_faults_apiserver_arguments_go_over_kubeadms_own():
    faulty = kubeadm.cluster_configuration("v1.37.2", TAGS, {"requestheader-allowed-names": "aggregator"})
    assert faulty["apiServer"]["extraArgs"] == [{"name": "requestheader-allowed-names", "value": "aggregator"}]
    assert kubeadm.cluster_configuration("v1.37.2", TAGS)["apiServer"]["extraArgs"] == []  # kubeadm's healthy flags


def test_each_node_brings_its_own_kubelet_settings_and_flags():
    registration = kubeadm.node_registration(WORKER)
    assert {a["name"]: a["value"] for a in registration["kubeletExtraArgs"]} == {
        "node-ip": "10.240.0.21", "runtime-cgroups": "/seatrials-lab/worker-1/system.slice", "v": "1"}
    assert registration["imagePullPolicy"] == "Never"  # the images are imported: nothing to pull
    patch = node.kubelet_node_config(WORKER, "i-1")
    assert patch == {"cgroupRoot": "/seatrials-lab/worker-1", "kubeletCgroups": "/seatrials-lab/worker-1/system.slice",
                     "providerID": "aws:///us-east-1a/i-1"}
    assert not set(patch) & set(node.kubelet_cluster_config())  # the cluster's part holds nothing per node


def test_the_hard_way_kubelet_is_the_same_settings(tmp_path):
    hard_way = node.kubelet_config(WORKER, "i-1")
    assert hard_way.items() >= {**node.kubelet_cluster_config(), **node.kubelet_node_config(WORKER, "i-1")}.items()


def test_masters_join_as_control_plane_nodes_and_workers_do_not():
    master = kubeadm.join_configuration(plan(3, 1)[1], "t", "key", "sha256:x", "/p")
    worker = kubeadm.join_configuration(WORKER, "t", "key", "sha256:x", "/p")
    assert master["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "10.240.0.12", "bindPort": 6444},
                                      "certificateKey": "key"}
    assert "controlPlane" not in worker
    assert worker["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.240.0.1:6443"


def test_the_discovery_pin_is_the_cas_public_key_hash(tmp_path):
    pki = Pki(tmp_path)
    cert = x509.load_pem_x509_certificate(pki.ca.pair.cert_pem)
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kubeadm.ca_cert_hash(pki) == "sha256:" + hashlib.sha256(der).hexdigest()
    openssl = subprocess.run(  # the way kubeadm's documentation computes it
        "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
        shell=True, input=pki.ca.pair.cert_pem, capture_output=True, check=True).stdout.split()[0].decode()
    assert kubeadm.ca_cert_hash(pki) == f"sha256:{openssl}"


def test_configuration_documents_are_json_kubeadm_reads_as_yaml(paths):
    inside = kubeadm.write_config(paths, WORKER, [{"kind": "A"}, {"kind": "B"}])
    assert inside == "/etc/kubernetes/seatrials-lab/kubeadm.yaml"  # the node's private /etc/kubernetes
    text = kubeadm.config_file(paths, WORKER).read_text()
    assert [json.loads(d)["kind"] for d in text.split("\n---\n")] == ["A", "B"]


def kubeadm_files(paths):
    directory = paths.node_disk(WORKER) / "kubelet"
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkubeletCgroups: "
                                           "/seatrials-lab/worker-1/system.slice\noomScoreAdj: -999\n")
    (directory / "kubeadm-flags.env").write_text('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/'
                                                 'containerd/containerd.sock --node-ip=10.240.0.21 --runtime-cgroups='
                                                 '/seatrials-lab/worker-1/system.slice --v=1"\n')
    return directory


def test_the_kubelet_starts_as_kubeadms_drop_in_starts_it(paths, tmp_path):
    kubeadm_files(paths)
    argv = kubeadm.kubelet_argv(paths, WORKER, tmp_path / "bin")
    assert argv[1:4] == ["--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                         "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml"]
    assert "--runtime-cgroups=/seatrials-lab/worker-1/system.slice" in argv and "--node-ip=10.240.0.21" in argv


def test_the_kubelet_cgroups_fault_edits_kubeadms_files_and_the_heal_puts_them_back(paths, tmp_path):
    directory = kubeadm_files(paths)
    before = {p.name: p.read_text() for p in directory.iterdir()}
    kubeadm.drop_kubelet_cgroups(paths, WORKER, 0)
    config = (directory / "config.yaml").read_text()
    assert "kubeletCgroups" not in config and config.endswith("oomScoreAdj: 0\n")
    assert not any(a.startswith("--runtime-cgroups") for a in kubeadm.kubelet_flags(paths, WORKER))
    kubeadm.restore_kubelet_files(paths, WORKER)
    assert {p.name: p.read_text() for p in directory.iterdir()} == before  # byte for byte, no copies left

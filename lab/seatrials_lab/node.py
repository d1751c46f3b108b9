"""A node's own daemons, containerd, kubelet and kube-proxy, and the files they read.

Every node (masters too) runs all three inside its namespaces, with the daemons in the
node's system cgroup and its pods below its own cgroupRoot. Configurations are built as
dicts (written as JSON, which Kubernetes reads as YAML) so that a fault can start a
component with one setting changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import cgroups, namespaces, processes
from .layout import (
    BALANCER_PORT,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    HOST_IP,
    POD_CIDR,
    Node,
    Paths,
)
from .pki import Pki, kubeconfig
from .shell import wait_for

BALANCER = f"https://{HOST_IP}:{BALANCER_PORT}"  # nodes reach the apiservers through the load balancer, as in the field
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
ETC = Path("/etc/kubernetes")  # inside the node (its private mount)
CNI_BIN = "/usr/lib/cni"  # Debian containernetworking-plugins
SOCKET = "/run/containerd/containerd.sock"

CONTAINERD_CONFIG = """\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # Never ask for an oom_score_adj below containerd's own: where CAP_SYS_RESOURCE is missing (some
  # VM sandboxes), runc cannot set the sandbox's -998 and every pod fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "/etc/cni/net.d"
"""


def install(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def kubelet_config(node: Node, instance_id: str) -> dict:
    """The hard way's kubelet: the cluster's settings, the node's own, and the lab's certificates."""
    return {
        **kubelet_cluster_config(),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": f"{ETC}/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": f"{ETC}/pki/kubelet.crt",
        "tlsPrivateKeyFile": f"{ETC}/pki/kubelet.key",
        "containerRuntimeEndpoint": f"unix://{SOCKET}",
        **kubelet_node_config(node, instance_id),
        "registerWithTaints": [CONTROL_PLANE_TAINT] if node.is_master else [],
        "rotateCertificates": False,
    }


def kubelet_cluster_config() -> dict:
    """What every kubelet of the lab shares, in either layout (kubeadm's KubeletConfiguration document)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # containerd 1.6 cannot report its cgroup driver, so the kubelet must be told.
        "cgroupDriver": "cgroupfs",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": f"{ETC}/resolv.conf",  # the cluster DNS only, never the machine's resolver
        "failSwapOn": False,
        # This machine is cgroup v1 (hybrid): kubelets from 1.35 on refuse it unless told not to.
        "failCgroupV1": False,
        # Every node reports the whole machine's memory and disk: evict only when nearly nothing is left.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        # The locally imported images can never be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "enableSystemLogHandler": True,
        "enableSystemLogQuery": True,
        "featureGates": {"NodeLogQuery": True},  # beta, off by default before 1.36; GA (locked on) from 1.36
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "serializeImagePulls": False,
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
    }


def kubelet_node_config(node: Node, instance_id: str) -> dict:
    """What only this node's kubelet has (kubeadm: a kubeletconfiguration patch of the node's init or join)."""
    return {
        "cgroupRoot": f"/{node.cgroup}",  # kubelets sharing a cgroup root would kill each other's pods
        "kubeletCgroups": f"/{node.system_cgroup}",  # runtimeCgroups has no config field: a flag
        "providerID": f"aws:///{node.zone}/{instance_id}",
    }


def kube_proxy_config(node: Node) -> dict:
    return {
        **kube_proxy_cluster_config(),
        "clientConnection": {"kubeconfig": f"{ETC}/kube-proxy.kubeconfig"},
        "hostnameOverride": node.name,
    }


def kube_proxy_cluster_config() -> dict:
    """What every kube-proxy of the lab shares, in either layout (kubeadm's KubeProxyConfiguration document)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": ["primary"],  # NodePorts on the node's own IP (eth0), as upstream recommends
        # Leave conntrack sysctls alone: nf_conntrack_max is the machine's, shared by every namespace.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def cni_config(node: Node) -> dict:
    """Bridge + host-local on the node's pod /24; no masquerade (the node's LAB-NAT-OUTGOING does that)."""
    bridge = {
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]},
    }
    return {
        "cniVersion": "0.4.0",
        "name": "lab-pods",
        "plugins": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }


def write_runtime_files(paths: Paths, node: Node, pause_image: str) -> None:
    """What a node needs in either layout: containerd's configuration and the cluster-DNS-only resolv.conf."""
    etc = paths.node_etc(node)
    install(etc / "containerd.toml", CONTAINERD_CONFIG.format(socket=SOCKET, pause=pause_image, cni_bin=CNI_BIN))
    install(etc / "resolv.conf", f"nameserver {DNS_SERVICE_IP}\n")


def write_files(paths: Paths, node: Node, pki: Pki, instance_id: str) -> None:
    """The hard way's kubelet and kube-proxy files, credentials and configurations."""
    etc = paths.node_etc(node)
    serving = pki.kubelet_serving(node)
    install(etc / "pki" / "ca.crt", pki.ca.pair.cert_pem)
    install(etc / "pki" / "kubelet.crt", serving.cert_pem)
    install(etc / "pki" / "kubelet.key", serving.key_pem, 0o600)
    identity = pki.kubelet_client(node)
    install(etc / "kubelet.kubeconfig", kubeconfig(BALANCER, pki.ca.pair, f"system:node:{node.name}", identity), 0o600)
    install(
        etc / "kube-proxy.kubeconfig", kubeconfig(BALANCER, pki.ca.pair, "system:kube-proxy", pki.kube_proxy), 0o600
    )
    write_kubelet_config(paths, node, kubelet_config(node, instance_id))
    install(etc / "kube-proxy.yaml", json.dumps(kube_proxy_config(node), indent=2))


def write_cni_config(paths: Paths, node: Node) -> None:
    """The native shape's CNI configuration (with flannel, flanneld writes the node's own)."""
    install(paths.node_disk(node) / "cni-conf" / "10-lab-pods.conflist", json.dumps(cni_config(node), indent=2))


def write_kubelet_config(paths: Paths, node: Node, config: dict) -> None:
    install(paths.node_etc(node) / "kubelet.yaml", json.dumps(config, indent=2))


def argv(binary: Path, flags: dict[str, str]) -> list[str]:
    return [str(binary)] + [f"--{name}={value}" for name, value in flags.items()]


def start(paths: Paths, node: Node, component: str, command: list[str], cgroup: cgroups.Placement | None = None) -> int:
    """Start one of the node's components inside the node, logging to the node's /var/log/<component>.log,
    in the node's system cgroup unless told otherwise."""
    return processes.start(
        paths,
        f"{node.name}.{component}",
        command,
        log=paths.node_log(node, component),
        cgroup=cgroup or node.system_cgroup,
        enter=namespaces.enter(paths, node),
    )


def restart(
    paths: Paths, node: Node, component: str, command: list[str], cgroup: cgroups.Placement | None = None
) -> int:
    """Stop the node's component and start it again, maybe with other flags or in another cgroup."""
    processes.stop(paths, f"{node.name}.{component}")
    return start(paths, node, component, command, cgroup)


def start_containerd(paths: Paths, node: Node) -> None:
    start(paths, node, "containerd", ["containerd", "--config", f"{ETC}/containerd.toml"])


def wait_containerd(paths: Paths, node: Node) -> None:
    socket = paths.node_run(node) / "containerd" / "containerd.sock"
    wait_for(f"containerd on {node.name}", socket.exists, timeout=60, interval=0.2)


def import_images(paths: Paths, node: Node, archives: list[Path]) -> None:
    for archive in archives:
        namespaces.run_in(paths, node, ["ctr", "-a", SOCKET, "-n", "k8s.io", "images", "import", str(archive)])


def images(paths: Paths, node: Node) -> set[str]:
    """The image references the node's containerd holds for Kubernetes."""
    listed = namespaces.run_in(paths, node, ["ctr", "-a", SOCKET, "-n", "k8s.io", "images", "list", "-q"])
    return set(listed.split())


def remove_image(paths: Paths, node: Node, ref: str) -> None:
    namespaces.run_in(paths, node, ["ctr", "-a", SOCKET, "-n", "k8s.io", "images", "rm", ref])


def kubelet_flags(node: Node) -> dict[str, str]:
    return {"config": f"{ETC}/kubelet.yaml", "kubeconfig": f"{ETC}/kubelet.kubeconfig", **kubelet_node_flags(node)}


def kubelet_node_flags(node: Node) -> dict[str, str]:
    """The node's own kubelet flags, in either layout (kubeadm: its nodeRegistration's kubeletExtraArgs)."""
    return {
        "node-ip": node.ip,
        "runtime-cgroups": f"/{node.system_cgroup}",  # containerd runs there
        "v": "1",
    }


def start_kubelet(paths: Paths, node: Node, bin_dir: Path) -> None:
    start(paths, node, "kubelet", argv(bin_dir / "kubelet", kubelet_flags(node)))


def start_kube_proxy(paths: Paths, node: Node, bin_dir: Path) -> None:
    start(paths, node, "kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={ETC}/kube-proxy.yaml"])

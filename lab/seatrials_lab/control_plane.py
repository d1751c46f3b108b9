"""The control plane on each master: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Plain processes in the master's namespaces (not static pods), each logging to the master's
/var/log/<component>.log. Flags are kept as dicts so that a fault can restart a component
with one flag changed (phase 2 changes the apiserver's request-header flags).
"""

from __future__ import annotations

from pathlib import Path

from . import node as node_daemons
from .layout import APISERVER_PORT, CLUSTER_DOMAIN, POD_CIDR, SERVICE_CIDR, Node, Paths
from .node import ETC, argv, install
from .pki import CLUSTER_NAME, Pair, Pki, kubeconfig

PKI = ETC / "pki"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def write_files(paths: Paths, master: Node, pki: Pki) -> None:
    """kubeadm's /etc/kubernetes/pki layout, and the kubeconfigs of the controller manager and scheduler."""
    pki_dir = paths.node_etc(master) / "pki"
    pairs = {
        "apiserver": pki.apiserver,
        "apiserver-kubelet-client": pki.apiserver_kubelet_client,
        "apiserver-etcd-client": pki.apiserver_etcd_client,
        "front-proxy-client": pki.front_proxy_client,
        "etcd/server": pki.etcd_member(master),
        "etcd/peer": pki.etcd_member(master),
    }
    for name, pair in pairs.items():
        install_pair(paths, master, name, pair)
    install(pki_dir / "ca.key", pki.ca.pair.key_pem, 0o600)  # the controller manager signs CSRs with it
    install(pki_dir / "front-proxy-ca.crt", pki.front_proxy_ca.pair.cert_pem)
    install(pki_dir / "etcd" / "ca.crt", pki.etcd_ca.pair.cert_pem)
    install(pki_dir / "sa.key", pki.service_account.key_pem, 0o600)
    install(pki_dir / "sa.pub", pki.service_account.cert_pem)
    local = f"https://{master.ip}:{APISERVER_PORT}"  # kubeadm: control-plane components use their own apiserver
    for name, user, pair in (
        ("controller-manager", "system:kube-controller-manager", pki.controller_manager),
        ("scheduler", "system:kube-scheduler", pki.scheduler),
    ):
        install(paths.node_etc(master) / f"{name}.conf", kubeconfig(local, pki.ca.pair, user, pair), 0o600)


def install_pair(paths: Paths, master: Node, name: str, pair: Pair) -> None:
    """Put a certificate and its key into the master's /etc/kubernetes/pki as <name>.crt and .key."""
    pki_dir = paths.node_etc(master) / "pki"
    install(pki_dir / f"{name}.crt", pair.cert_pem)
    install(pki_dir / f"{name}.key", pair.key_pem, 0o600)


def etcd_flags(master: Node, masters: list[Node]) -> dict[str, str]:
    cluster = ",".join(f"{m.name}=https://{m.ip}:2380" for m in masters)
    return {
        "name": master.name,
        "data-dir": "/var/lib/etcd",
        "listen-client-urls": f"https://127.0.0.1:2379,https://{master.ip}:2379",
        "advertise-client-urls": f"https://{master.ip}:2379",
        "listen-peer-urls": f"https://{master.ip}:2380",
        "initial-advertise-peer-urls": f"https://{master.ip}:2380",
        "initial-cluster": cluster,
        "initial-cluster-state": "new",
        "initial-cluster-token": CLUSTER_NAME,
        "listen-metrics-urls": "http://127.0.0.1:2381",
        "client-cert-auth": "true",
        "trusted-ca-file": f"{PKI}/etcd/ca.crt",
        "cert-file": f"{PKI}/etcd/server.crt",
        "key-file": f"{PKI}/etcd/server.key",
        "peer-client-cert-auth": "true",
        "peer-trusted-ca-file": f"{PKI}/etcd/ca.crt",
        "peer-cert-file": f"{PKI}/etcd/peer.crt",
        "peer-key-file": f"{PKI}/etcd/peer.key",
        "unsafe-no-fsync": "true",  # several members share one disk; a lab needs no crash durability
    }


def apiserver_flags(master: Node) -> dict[str, str]:
    return {
        "advertise-address": master.ip,  # the `kubernetes` EndpointSlice says <master ip>:6444
        "secure-port": str(APISERVER_PORT),
        "etcd-servers": "https://127.0.0.1:2379",
        "etcd-cafile": f"{PKI}/etcd/ca.crt",
        "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key",
        "service-cluster-ip-range": SERVICE_CIDR,
        "service-account-issuer": f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "service-account-key-file": f"{PKI}/sa.pub",
        "service-account-signing-key-file": f"{PKI}/sa.key",
        "client-ca-file": f"{PKI}/ca.crt",
        "tls-cert-file": f"{PKI}/apiserver.crt",
        "tls-private-key-file": f"{PKI}/apiserver.key",
        "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
        "kubelet-certificate-authority": f"{PKI}/ca.crt",
        "kubelet-preferred-address-types": "InternalIP,Hostname",
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "allow-privileged": "true",
        # The healthy aggregation layout: request headers are trusted only from a certificate of the
        # separate front-proxy CA named front-proxy-client.
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-username-headers": "X-Remote-User",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
        "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
    }


def _controller_flags(kubeconfig_file: str) -> dict[str, str]:
    """What the controller manager and the scheduler share: one kubeconfig for everything, leader election."""
    conf = f"{ETC}/{kubeconfig_file}"
    return {
        "kubeconfig": conf,
        "authentication-kubeconfig": conf,
        "authorization-kubeconfig": conf,
        "bind-address": "127.0.0.1",
        "leader-elect": "true",
    }


def controller_manager_flags() -> dict[str, str]:
    return {
        **_controller_flags("controller-manager.conf"),
        "cluster-name": CLUSTER_NAME,
        "client-ca-file": f"{PKI}/ca.crt",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "cluster-signing-cert-file": f"{PKI}/ca.crt",
        "cluster-signing-key-file": f"{PKI}/ca.key",
        "root-ca-file": f"{PKI}/ca.crt",
        "service-account-private-key-file": f"{PKI}/sa.key",
        "use-service-account-credentials": "true",
        "controllers": "*,bootstrapsigner,tokencleaner",
        # The lab gives every node its pod /24 itself (numbered like its IP), so nothing is allocated here.
        "allocate-node-cidrs": "false",
        "cluster-cidr": POD_CIDR,
        "service-cluster-ip-range": SERVICE_CIDR,
    }


def scheduler_flags() -> dict[str, str]:
    return _controller_flags("scheduler.conf")


def restart_controllers(paths: Paths, master: Node, bin_dir: Path) -> None:
    """Restart the master's controller manager and scheduler after its apiserver restarted: they exit
    when their apiserver is gone longer than their leader lease, and the lab has no supervisor to start
    them again as systemd or the kubelet would."""
    for component, flags in (
        ("kube-controller-manager", controller_manager_flags()),
        ("kube-scheduler", scheduler_flags()),
    ):
        node_daemons.restart(paths, master, component, argv(bin_dir / component, flags))


def start(paths: Paths, master: Node, masters: list[Node], bin_dir: Path) -> None:
    """Start all four; the apiserver waits for etcd and the others for the apiserver by themselves."""
    flags = {
        "etcd": etcd_flags(master, masters),
        "kube-apiserver": apiserver_flags(master),
        "kube-controller-manager": controller_manager_flags(),
        "kube-scheduler": scheduler_flags(),
    }
    for component in COMPONENTS:
        node_daemons.start(paths, master, component, argv(bin_dir / component, flags[component]))

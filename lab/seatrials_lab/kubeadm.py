"""The kubeadm layout: kubeadm's own `init` and `join` lay each node out, as on most clusters users sign off.

Masters run etcd, kube-apiserver, kube-controller-manager and kube-scheduler as static pods
(/etc/kubernetes/manifests of the master's private mount), kube-proxy runs as kubeadm's DaemonSet and
CoreDNS as its Deployment, both from kubeadm's addon phase. The lab plays only systemd's part: it starts
each node's kubelet the way kubeadm's drop-in does (its flags from /var/lib/kubelet/kubeadm-flags.env,
its configuration /var/lib/kubelet/config.yaml) when kubeadm says "Starting the kubelet", and again
after a fault. kubeadm's configuration documents are written as JSON (which is YAML); each node's own
kubelet settings are a kubeletconfiguration patch, kubeadm's way for per-node settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import addons, cgroups, control_plane, namespaces, node
from .kubectl import Kubectl
from .layout import (
    APISERVER_PORT,
    BALANCER_PORT,
    CLUSTER_DOMAIN,
    HOST_IP,
    POD_CIDR,
    SERVICE_CIDR,
    Node,
    Paths,
)
from .node import ETC, SOCKET, install
from .pki import CLUSTER_NAME, Pki
from .shell import LabError, run, wait_for

API = "kubeadm.k8s.io/v1beta4"
CONTROL_PLANE_ENDPOINT = f"{HOST_IP}:{BALANCER_PORT}"  # the balancer, in front of every master's :6444
KUBELET_DIR = Path("/var/lib/kubelet")
FLAGS_ENV = "kubeadm-flags.env"  # in the kubelet's directory: KUBELET_KUBEADM_ARGS="..."
KUBELET_CONFIG = "config.yaml"
KUBELET_STARTS = "[kubelet-start] Starting the kubelet"  # kubeadm's line where systemd would (re)start the kubelet
DNS_REPLICAS = 2  # kubeadm's CoreDNS Deployment
KUBE_PROXY = ("kube-system", "kube-proxy")  # kubeadm's kube-proxy DaemonSet
TIMEOUT = 420  # one kubeadm init or join, its waits for the control plane included
# Preflight checks this machine fails for reasons of the lab's own making, each one a warning then:
# SystemVerification (the kernel config and cgroup v1 hybrid, which the kubelets accept: failCgroupV1 false),
# Swap (the kubelets run with failSwapOn false), and Port-6443... (not used: the balancer listens on the machine).
IGNORED_PREFLIGHT = ("SystemVerification", "Swap")


def arguments(flags: dict[str, str]) -> list[dict]:
    """kubeadm v1beta4's extraArgs and kubeletExtraArgs: a list of name/value pairs."""
    return [{"name": name, "value": value} for name, value in flags.items()]


def cluster_configuration(version: str, tags: dict[str, str], apiserver: dict[str, str] | None = None) -> dict:
    """The cluster kubeadm lays out: the field report's addresses and ports, the apiservers' own arguments
    (a fault's; none when healthy), etcd's and CoreDNS's images by the versions the lab builds (`tags`; kubeadm
    asks for its own otherwise)."""
    return {
        "apiVersion": API,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "clusterName": CLUSTER_NAME,
        "controlPlaneEndpoint": CONTROL_PLANE_ENDPOINT,
        "networking": {"serviceSubnet": SERVICE_CIDR, "podSubnet": POD_CIDR, "dnsDomain": CLUSTER_DOMAIN},
        # The suite and the lab reach the balancer on the machine's loopback too.
        "apiServer": {"certSANs": ["127.0.0.1", "localhost"], "extraArgs": arguments(apiserver or {})},
        # The lab gives every node its pod /24 numbered like its IP (its routes and CNI files know them), so the
        # controller manager allocates none, as in the hard way.
        "controllerManager": {"extraArgs": arguments({"allocate-node-cidrs": "false"})},
        "etcd": {"local": {"imageTag": tags["etcd"], "extraArgs": arguments({"unsafe-no-fsync": "true"})}},
        "dns": {"imageTag": tags["coredns"]},
    }


def node_registration(n: Node) -> dict:
    return {
        "name": n.name,
        "criSocket": f"unix://{SOCKET}",
        # kubeadm writes these into kubeadm-flags.env: the kubelet's flags of the hard way.
        "kubeletExtraArgs": arguments(node.kubelet_node_flags(n)),
        "imagePullPolicy": "Never",  # the images are imported into every node: no registry can be reached
        "ignorePreflightErrors": list(IGNORED_PREFLIGHT),
    }


def init_configuration(master: Node, token: str, certificate_key: str, patches: str) -> dict:
    return {
        "apiVersion": API,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{"token": token, "ttl": "24h0m0s", "usages": ["signing", "authentication"],
                             "groups": ["system:bootstrappers:kubeadm:default-node-token"]}],
        "certificateKey": certificate_key,
        "localAPIEndpoint": {"advertiseAddress": master.ip, "bindPort": APISERVER_PORT},
        "nodeRegistration": node_registration(master),
        "patches": {"directory": patches},
        # kubeadm's CoreDNS would forward to the nodes' resolver (the cluster DNS itself: a loop); the lab puts
        # its own Corefile in first, and kubeadm's addon phase then retains it (see bring_up).
        "skipPhases": ["addon/coredns"],
    }


def join_configuration(n: Node, token: str, certificate_key: str, ca_hash: str, patches: str) -> dict:
    config = {
        "apiVersion": API,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"apiServerEndpoint": CONTROL_PLANE_ENDPOINT, "token": token,
                                         "caCertHashes": [ca_hash]}},
        "nodeRegistration": node_registration(n),
        "patches": {"directory": patches},
    }
    if n.is_master:  # a stacked control-plane node: kubeadm fetches the shared certificates with the key
        config["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": n.ip, "bindPort": APISERVER_PORT},
                                  "certificateKey": certificate_key}
    return config


def patches_dir(paths: Paths, n: Node) -> Path:
    """The node's kubeadm patches (kubeadm's `patches.directory`), in its private /var/lib."""
    return paths.node_disk(n) / "kubelet-patches"


def config_file(paths: Paths, n: Node, name: str = "kubeadm.yaml") -> Path:
    """A kubeadm configuration of the node, in its private /etc/kubernetes (the same path inside the node)."""
    return paths.node_etc(n) / "seatrials-lab" / name


def inside(paths: Paths, n: Node, path: Path) -> str:
    """Where a file of the node's disk is seen from inside the node."""
    for source, target in namespaces.private_mounts(paths, n):
        if path.is_relative_to(source):
            return str(target / path.relative_to(source))
    return str(path)


def write_config(paths: Paths, n: Node, documents: list[dict], name: str = "kubeadm.yaml") -> str:
    """Write kubeadm's configuration documents; returns the file's path inside the node."""
    path = config_file(paths, n, name)
    install(path, "\n---\n".join(json.dumps(d, indent=2) for d in documents) + "\n", 0o600)
    return inside(paths, n, path)


def write_node_files(paths: Paths, n: Node, instance_id: str) -> None:
    """The node's own kubelet settings, as a patch kubeadm applies to the kubelet configuration it writes."""
    install(patches_dir(paths, n) / "kubeletconfiguration+merge.json",
            json.dumps(node.kubelet_node_config(n, instance_id), indent=2))


def documents(version: str, tags: dict[str, str], apiserver: dict[str, str] | None = None) -> list[dict]:
    """The configuration shared by every node: the cluster, every kubelet's and every kube-proxy's settings."""
    return [cluster_configuration(version, tags, apiserver), node.kubelet_cluster_config(),
            node.kube_proxy_cluster_config()]


def built_tags(binaries: Path) -> dict[str, str]:
    """The image tags of the lab's own etcd and CoreDNS (kubeadm's own form: 3.6.16-0, v1.14.7)."""
    etcd = re.search(r"etcd Version: (\S+)", run([str(binaries / "etcd"), "--version"])).group(1)
    coredns = re.search(r"CoreDNS-(\S+)", run([str(binaries / "coredns"), "-version"])).group(1)
    return {"etcd": f"{etcd}-0", "coredns": f"v{coredns}"}


def image_list(paths: Paths, binaries: Path, version: str) -> list[str]:
    """`kubeadm config images list` for the lab's configuration: the references the nodes must hold."""
    config = paths.state / "kubeadm-images.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("\n---\n".join(json.dumps(d) for d in documents(version, built_tags(binaries))[:1]))
    return run([str(binaries / "kubeadm"), "config", "images", "list", "--config", str(config)]).split()


def pause_image(refs: list[str]) -> str:
    return next(ref for ref in refs if "/pause:" in ref)


def ca_cert_hash(pki: Pki) -> str:
    """kubeadm's discovery pin: sha256 of the cluster CA's public key (SubjectPublicKeyInfo, DER)."""
    key = x509.load_pem_x509_certificate(pki.ca.pair.cert_pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"sha256:{hashlib.sha256(der).hexdigest()}"


def place_authorities(paths: Paths, master: Node, pki: Pki) -> None:
    """The lab's cluster CA and front-proxy CA (cached across labs, as the faults' checks know them) where kubeadm
    finds them: it then uses them ("Using existing ... certificate authority") and issues everything else."""
    directory = paths.node_etc(master) / "pki"
    for name, authority in (("ca", pki.ca), ("front-proxy-ca", pki.front_proxy_ca)):
        install(directory / f"{name}.crt", authority.pair.cert_pem)
        install(directory / f"{name}.key", authority.pair.key_pem, 0o600)


# ---------------------------------------------------------------- running kubeadm, and the kubelet as systemd would


def kubeadm(paths: Paths, n: Node, binaries: Path, args: list[str], timeout: float = TIMEOUT) -> None:
    """Run kubeadm inside the node (its log: the node's /var/log/kubeadm.log); start the kubelet when kubeadm
    says it would. A failure is one line: kubeadm's last words."""
    log = paths.node_log(n, "kubeadm")
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = namespaces.enter(paths, n) + [str(binaries / "kubeadm"), *args, "--v=1"]
    with open(log, "a") as out:
        out.write(f"# {shlex.join(args)}\n")
        # kubeadm asks `kubelet --version` on its PATH, where a package would have put the kubelet.
        env = {**os.environ, "PATH": f"{binaries}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 text=True, env=env, preexec_fn=lambda: cgroups.join(n.system_cgroup))
        lines = []
        for line in child.stdout:
            out.write(line)
            lines.append(line.strip())
            if KUBELET_STARTS in line:
                start_kubelet(paths, n, binaries)
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise LabError(f"kubeadm {args[0]} on {n.name} did not finish within {timeout}s (its log: {log})") from None
    if code != 0:
        said = [line for line in lines if line and not line.startswith("I")] or lines or ["(no output)"]
        raise LabError(f"kubeadm {' '.join(args[:3])} on {n.name} failed (exit {code}): {said[-1][:300]} (log: {log})")


def kubelet_flags(paths: Paths, n: Node) -> list[str]:
    """kubeadm's flags of the node's kubelet, from kubeadm-flags.env as the systemd drop-in reads them."""
    text = (paths.node_disk(n) / "kubelet" / FLAGS_ENV).read_text()
    found = re.search(r'^KUBELET_KUBEADM_ARGS="(.*)"$', text, re.MULTILINE)
    return shlex.split(found.group(1)) if found else []


def kubelet_argv(paths: Paths, n: Node, binaries: Path) -> list[str]:
    """The kubelet as kubeadm's systemd drop-in (10-kubeadm.conf) starts it."""
    return [str(binaries / "kubelet"), f"--bootstrap-kubeconfig={ETC}/bootstrap-kubelet.conf",
            f"--kubeconfig={ETC}/kubelet.conf", f"--config={KUBELET_DIR}/{KUBELET_CONFIG}", *kubelet_flags(paths, n)]


def start_kubelet(paths: Paths, n: Node, binaries: Path, cgroup: cgroups.Placement | None = None) -> None:
    node.restart(paths, n, "kubelet", kubelet_argv(paths, n, binaries), cgroup)


# ---------------------------------------------------------------- bringing the cluster up


def bring_up(paths: Paths, nodes: list[Node], binaries: Path, version: str, pki: Pki,
             progress: Callable[[str], None]) -> None:
    """kubeadm init on the first master, the lab's Corefile and kubeadm's CoreDNS addon, then every other master
    joins as a control-plane node (one after the other: etcd grows one member at a time), then the workers
    (together)."""
    masters, workers = [n for n in nodes if n.is_master], [n for n in nodes if not n.is_master]
    first, token, key = masters[0], f"{secrets.token_hex(3)}.{secrets.token_hex(8)}", secrets.token_hex(32)
    place_authorities(paths, first, pki)
    init = write_config(paths, first, [init_configuration(first, token, key, str(patches_dir(paths, first))),
                                       *documents(version, built_tags(binaries))])
    kubeadm(paths, first, binaries, ["init", "--config", init, "--upload-certs"])
    progress(f"kubeadm init on {first.name}: static pods {', '.join(control_plane.COMPONENTS)}; kube-proxy DaemonSet")
    Kubectl(binaries / "kubectl", paths.lab_kubeconfig).apply([addons.coredns_configmap()])
    kubeadm(paths, first, binaries, ["init", "phase", "addon", "coredns", "--config", init])
    progress("kubeadm's CoreDNS addon (with the lab's Corefile, which kubeadm retains)")

    def join(n: Node) -> None:
        config = join_configuration(n, token, key, ca_cert_hash(pki), str(patches_dir(paths, n)))
        kubeadm(paths, n, binaries, ["join", "--config", write_config(paths, n, [config])])

    for n in masters[1:]:
        join(n)
        progress(f"kubeadm join --control-plane on {n.name}")
    if failures := _in_parallel(join, workers):
        raise LabError(failures[0])
    if workers:
        progress(f"kubeadm join on {', '.join(n.name for n in workers)}")


def _in_parallel(work: Callable[[Node], None], nodes: list[Node]) -> list[str]:
    """Run work on every node at once; the failures' lines."""
    def attempt(n: Node) -> str:
        try:
            work(n)
        except LabError as e:
            return str(e)
        return ""

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return [f for f in pool.map(attempt, nodes) if f]


def admin_kubeconfig(paths: Paths, master: Node, binaries: Path, server: str) -> str:
    """kubeadm's admin.conf (group kubeadm:cluster-admins) as JSON, pointing at `server`."""
    text = run([str(binaries / "kubectl"), "config", "view", "--raw", "-o", "json",
                f"--kubeconfig={paths.node_etc(master) / 'admin.conf'}"])
    config = json.loads(text)
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    return json.dumps(config, indent=2)


# ---------------------------------------------------------------- what runs as a pod


def pods(kubectl: Kubectl) -> dict[tuple[str, str], bool]:
    """(component, node) -> ready, for the static pods and kube-proxy's pods."""
    try:
        items = kubectl.json("get", "pods", "-n", "kube-system")["items"]
    except LabError:
        return {}
    found = {}
    for p in items:
        labels = p["metadata"].get("labels") or {}
        component = labels.get("component") or ("kube-proxy" if labels.get("k8s-app") == "kube-proxy" else None)
        if component:
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            found[(component, p["spec"].get("nodeName", ""))] = ready
    return found


def static_pod_command(kubectl: Kubectl, master: Node, component: str) -> list[str]:
    """The command of the master's static pod as its mirror pod shows it ([] while there is none)."""
    try:
        pod = kubectl.json("get", "pod", "-n", "kube-system", f"{component}-{master.name}")
    except LabError:
        return []
    return pod["spec"]["containers"][0].get("command", [])


def set_apiserver_arguments(paths: Paths, master: Node, binaries: Path, version: str,
                            overrides: dict[str, str]) -> None:
    """kubeadm writes the master's kube-apiserver static pod again with these arguments over its own (none: its
    healthy manifest), the way an operator changes a kubeadm cluster's flags; the kubelet restarts the pod."""
    config = [{"apiVersion": API, "kind": "InitConfiguration", "nodeRegistration": node_registration(master),
               "localAPIEndpoint": {"advertiseAddress": master.ip, "bindPort": APISERVER_PORT}},
              documents(version, built_tags(binaries), overrides)[0]]
    inside_path = write_config(paths, master, config, "control-plane.yaml")
    kubeadm(paths, master, binaries, ["init", "phase", "control-plane", "apiserver", "--config", inside_path],
            timeout=60)


def kube_proxy_off(kubectl: Kubectl, nodes: list[Node]) -> None:
    """kubeadm's kube-proxy DaemonSet keeps off these nodes (a required node affinity) and their pods go, as an
    operator who took kube-proxy away there would leave it. Its update strategy is OnDelete meanwhile, so the
    changed template replaces no pod on the other nodes."""
    namespace, name = KUBE_PROXY
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn",
                               "values": sorted({*kept_off(kubectl), *(n.name for n in nodes)})}]}]}}}
    kubectl("patch", "daemonset", "-n", namespace, name, "-p", json.dumps(
        {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
                  "template": {"spec": {"affinity": affinity}}}}))
    for n in nodes:
        kubectl("delete", "pod", "-n", namespace, "-l", "k8s-app=kube-proxy",
                f"--field-selector=spec.nodeName={n.name}", "--wait=true", timeout=90)


def kept_off(kubectl: Kubectl) -> list[str]:
    namespace, name = KUBE_PROXY
    spec = kubectl.json("get", "daemonset", "-n", namespace, name)["spec"]["template"]["spec"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    return [v for t in terms for e in t.get("matchExpressions") or [] for v in e.get("values") or []]


def kube_proxy_on(kubectl: Kubectl) -> None:
    """kubeadm's DaemonSet as kubeadm made it: its template without the affinity (the controller starts the missing
    pods from it), then its rolling update strategy (the pods left running already match the template)."""
    namespace, name = KUBE_PROXY
    if kept_off(kubectl):
        kubectl("patch", "daemonset", "-n", namespace, name, "--type=json",
                "-p", '[{"op": "remove", "path": "/spec/template/spec/affinity"}]')
    kubectl("patch", "daemonset", "-n", namespace, name, "-p", json.dumps(
        {"spec": {"updateStrategy": {"type": "RollingUpdate"}}}))


def drop_kubelet_cgroups(paths: Paths, n: Node, oom_score_adj: int) -> None:
    """The kubelet-cgroups fault the kubeadm way: /var/lib/kubelet/config.yaml without kubeletCgroups (and the
    OOM score adjustment this machine grants), kubeadm-flags.env without --runtime-cgroups. kubeadm's own files
    are kept beside them for the heal."""
    config, flags = (paths.node_disk(n) / "kubelet" / name for name in (KUBELET_CONFIG, FLAGS_ENV))
    for path in (config, flags):
        healthy = _healthy_copy(path)
        if not healthy.exists():
            healthy.write_bytes(path.read_bytes())
    lines = [line for line in config.read_text().splitlines()
             if not line.startswith(("kubeletCgroups:", "oomScoreAdj:"))]
    config.write_text("\n".join([*lines, f"oomScoreAdj: {oom_score_adj}"]) + "\n")
    flags.write_text(re.sub(r" ?--runtime-cgroups=\S+", "", flags.read_text()))


def restore_kubelet_files(paths: Paths, n: Node) -> None:
    """kubeadm's config.yaml and kubeadm-flags.env of the node, as kubeadm wrote them."""
    for name in (KUBELET_CONFIG, FLAGS_ENV):
        path = paths.node_disk(n) / "kubelet" / name
        healthy = _healthy_copy(path)
        if healthy.exists():
            path.write_bytes(healthy.read_bytes())
            healthy.unlink()


def _healthy_copy(path: Path) -> Path:
    return path.with_name(f"{path.name}.kubeadm")


def apiserver_log(kubectl: Kubectl, master: Node, timeout: float = 60) -> str:
    """The log of the master's kube-apiserver static pod since its container started. Just after a restart the
    mirror pod may still name no running container ("is not available") until the kubelet's next status sync:
    asked again until it does."""
    def read() -> str | None:
        try:
            return kubectl("logs", "-n", "kube-system", f"kube-apiserver-{master.name}", timeout=60)
        except LabError as e:
            if "is not available" in str(e):
                return None
            raise
    return wait_for(f"the log of kube-apiserver-{master.name}", read, timeout, interval=2)


"""The documented causes, injected into the running lab for real, and healed.

One Fault per cause id of seatrials/causes.yaml. `lab/lab fault <id>` makes the lab wrong the way
the field report's cluster was; `lab/lab heal <id>` puts the lab's healthy setting back. Both are
idempotent and both end with a quick look (checks.py) that proves the change took effect, or fail.
Where the cause is an AWS setting, moto is changed and the VPC filter re-derived from it, so what
EC2 says and what packets do agree. Active faults live in <state>/faults.json.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import aws, cgroups, checks, control_plane, namespaces, node, processes, services
from .cluster import Lab, answers
from .kubectl import Kubectl
from .layout import (
    APISERVER_PORT,
    BALANCER_PORT,
    FLANNEL_VXLAN_PORT,
    KUBELET_PORT,
    NODE_SUBNET,
    POD_CIDR,
    SESSION_CGROUP,
    UNREACHABLE_PORT,
    Node,
    Paths,
    pod_ips_between_nodes,
)
from .pki import Pki
from .shell import LabError, port_open, wait_for

STATS_ERROR = "Failed to get system container stats"
KUBELET_OOM_SCORE_ADJ = -999  # the kubelet's default oomScoreAdj
CAP_SYS_RESOURCE = 24
AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")
NOT_ALLOWED = "is not in the allowed list"  # kube-apiserver's request-header refusal (x509: subject with cn=...)


@dataclass(frozen=True)
class Fault:
    cause: str
    what: str  # in the field report's words
    inject: Callable[[Lab, list[Node]], None]
    heal: Callable[[Lab, list[Node]], None]
    # Looks until the lab shows the fault (injected=True) or its absence; returns one line of evidence.
    check: Callable[[Lab, list[Node], bool], str]
    default_node: str | None = None  # a fault of one node (--node); None: of the whole cluster
    every_node_allowed: bool = False  # --node all


# --- ec2-source-dest-check --------------------------------------------------------------------


def source_dest_check_on(lab: Lab, nodes: list[Node]) -> None:
    _set_source_dest_check(lab, nodes, True)


def source_dest_check_off(lab: Lab, nodes: list[Node]) -> None:
    _set_source_dest_check(lab, nodes, False)


def _set_source_dest_check(lab: Lab, nodes: list[Node], enabled: bool) -> None:
    client = aws.ec2()
    for n in nodes:
        aws.set_source_dest_check(client, lab.record["instances"][n.name], enabled)
    aws.sync_vpc(lab.nodes)


def check_pod_ips_dropped(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """moto's attribute on the node's instance and interface, and a pod on another node asking the node's pod:
    no answer while the check is on, unless the CNI encapsulates (VXLAN: the VPC sees only node IPs)."""
    target = nodes[0]
    others = [n for n in lab.nodes if n not in nodes] or [n for n in lab.nodes if n != target]
    if not others:
        raise LabError("the check needs a second node to ask from (lab/lab up with workers)")
    source = others[0]
    reported = aws.source_dest_checks(aws.ec2(), lab.record["instances"][target.name])
    if set(reported.values()) != {injected}:
        raise LabError(f"moto reports sourceDestCheck {reported} for {target.name}, expected {injected} everywhere")

    def look() -> tuple[bool, str]:
        url, failure = checks.pod_to_pod(lab.kubectl, source.name, target.name)
        return failure is not None, f"{source.name}'s probe pod -> {url} on {target.name}: {failure or 'answered'}"

    dropped = injected and pod_ips_between_nodes(lab.cni)
    seen = _until(look, dropped, "the pod IP to be " + ("dropped" if dropped else "reachable"))
    ids = ", ".join(reported)
    overlay = "" if dropped or not injected else f" ({lab.cni}: the VPC sees only node IPs, pods are unaffected)"
    return f"moto: sourceDestCheck {injected} on {ids}; {seen}{overlay}"


# --- sg-node-to-apiserver and sg-master-inbound-from-nodes ------------------------------------


def apiserver_port_closed_to_workers(masters: str, workers: str) -> list[dict]:
    """The masters' inbound rules of sg-node-to-apiserver: from the workers' group everything but
    TCP 6444 (the apiserver's real port); the pod CIDR, the masters themselves and 6443 stay."""
    from_workers = [{"GroupId": workers}]
    return [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": masters}],
         "IpRanges": [{"CidrIp": POD_CIDR, "Description": "pods"}]},
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": APISERVER_PORT - 1, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "tcp", "FromPort": APISERVER_PORT + 1, "ToPort": 65535, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "4", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": from_workers},  # IP-in-IP
        {"IpProtocol": "tcp", "FromPort": BALANCER_PORT, "ToPort": BALANCER_PORT,
         "IpRanges": [{"CidrIp": NODE_SUBNET}]},
    ]  # fmt: skip


def masters_open_only_explicit_ports(masters: str, workers: str, master_pod_cidrs: list[str]) -> list[dict]:
    """The masters' inbound rules of sg-master-inbound-from-nodes: from the workers only what was
    explicitly opened (the apiserver and the kubelet), nothing of their pods; the masters still
    admit each other and their own pods."""
    return [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": masters}],
         "IpRanges": [{"CidrIp": cidr, "Description": "pods on masters"} for cidr in master_pod_cidrs]},
        *({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [{"GroupId": workers}]}
          for port in (APISERVER_PORT, KUBELET_PORT)),
    ]  # fmt: skip


def masters_refuse_vxlan_from_workers(masters: str, workers: str) -> list[dict]:
    """The masters' inbound rules of sg-master-inbound-from-nodes where flannel carries pods over VXLAN: from
    the workers' group everything but UDP 8472, so their pods' traffic no longer reaches the masters."""
    from_workers = [{"GroupId": workers}]
    return [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": masters}]},
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "udp", "FromPort": 0, "ToPort": FLANNEL_VXLAN_PORT - 1, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "udp", "FromPort": FLANNEL_VXLAN_PORT + 1, "ToPort": 65535, "UserIdGroupPairs": from_workers},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": from_workers},
    ]


def close_apiserver_port_to_workers(lab: Lab, nodes: list[Node]) -> None:
    _set_ingress(lab, lambda g: {g["master"]: apiserver_port_closed_to_workers(g["master"], g["worker"])})


def open_masters_only_explicitly(lab: Lab, nodes: list[Node]) -> None:
    if not pod_ips_between_nodes(lab.cni):
        _set_ingress(lab, lambda g: {g["master"]: masters_refuse_vxlan_from_workers(g["master"], g["worker"])})
        return
    cidrs = [m.pod_cidr for m in lab.masters]
    _set_ingress(lab, lambda g: {g["master"]: masters_open_only_explicit_ports(g["master"], g["worker"], cidrs)})


def healthy_security_groups(lab: Lab, nodes: list[Node]) -> None:
    _set_ingress(lab, lambda g: aws.healthy_ingress(g["master"], g["worker"], aws.node_subnets(lab.nodes)))


def _set_ingress(lab: Lab, rules: Callable[[dict[str, str]], dict[str, list[dict]]]) -> None:
    """Replace the inbound rules of the groups `rules` returns (group id -> rules; given the lab's
    group ids by role), then re-derive the VPC filter from moto."""
    client = aws.ec2()
    for group, permissions in rules(aws.lab_groups(client)).items():
        aws.replace_ingress(client, group, permissions)
    aws.sync_vpc(lab.nodes)


def check_workers_reach_apiserver_port(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """A TCP connection from the first worker's host to the first master's 6444; every node stays Ready."""
    worker, master = _worker_and_master(lab)

    def look() -> tuple[bool, str]:
        failure = checks.tcp_from_node(worker, master.ip, APISERVER_PORT)
        return failure is not None, f"{worker.name} -> {master.ip}:{APISERVER_PORT}: {failure or 'connected'}"

    seen = _until(look, injected, f"TCP {APISERVER_PORT} from the workers to be " + ("blocked" if injected else "open"))
    not_ready = [n.name for n in lab.nodes if not checks.node_ready(lab.kubectl, n.name)]
    if not_ready:
        raise LabError(f"{seen}, but {', '.join(not_ready)} not Ready: the kubelets must keep their apiserver")
    return f"{seen}; every node Ready"


def check_workers_reach_master_pods(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """A worker's pod asking a master's pod, and that worker still reaching the apiserver port."""
    worker, master = _worker_and_master(lab)

    def look() -> tuple[bool, str]:
        url, failure = checks.pod_to_pod(lab.kubectl, worker.name, master.name)
        return failure is not None, f"{worker.name}'s probe pod -> {url} on {master.name}: {failure or 'answered'}"

    state = "unreachable" if injected else "reachable"
    seen = _until(look, injected, f"pods on masters to be {state} from workers")
    apiserver = checks.tcp_from_node(worker, master.ip, APISERVER_PORT)
    if apiserver:
        raise LabError(f"{worker.name} cannot open {master.ip}:{APISERVER_PORT} ({apiserver}): it must stay open")
    return f"{seen}; {worker.name} -> {master.ip}:{APISERVER_PORT} still connects"


def _worker_and_master(lab: Lab) -> tuple[Node, Node]:
    workers = [n for n in lab.nodes if not n.is_master]
    if not workers:
        raise LabError("this fault needs at least one worker (lab/lab up --workers 1 or more)")
    return workers[0], lab.masters[0]


# --- kubelet-cgroups --------------------------------------------------------------------------


def kubelet_in_login_session(lab: Lab, nodes: list[Node]) -> None:
    """Restart the kubelet from a login session's cgroup, without kubeletCgroups and --runtime-cgroups.

    The kubelet then names its own cgroup from /proc/self/cgroup (name=systemd: the session) every
    5 minutes and from its start (container_manager_linux.go), and cAdvisor, which watches the
    controllers' hierarchies, knows no such container: every summary (10 s) logs the error.
    Two settings of this machine would stop that housekeeping before it looks (see
    namespaces.show_init_pid_namespace and grantable_oom_score_adj); they are lifted for this kubelet.
    """
    for n in nodes:
        session = cgroups.login_session(n.cgroup)
        lab.remember_cgroups(cgroups.create(session))
        namespaces.show_init_pid_namespace(lab.paths, n)
        config = node.kubelet_config(n, lab.record["instances"][n.name])
        del config["kubeletCgroups"]
        config["oomScoreAdj"] = grantable_oom_score_adj(config.get("oomScoreAdj", KUBELET_OOM_SCORE_ADJ))
        node.write_kubelet_config(lab.paths, n, config)
        flags = node.kubelet_flags(n)
        del flags["runtime-cgroups"]
        node.restart(lab.paths, n, "kubelet", node.argv(lab.binaries / "kubelet", flags), cgroup=session)


def grantable_oom_score_adj(wanted: int) -> int:
    """The kubelet's OOM score adjustment, or this process's own where it may not lower it.

    Without CAP_SYS_RESOURCE (some VM sandboxes) a write below the inherited value fails, and the
    kubelet's housekeeping gives up at that error before it looks up its cgroup.
    """
    effective = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                         if line.startswith("CapEff:")).split()[1], 16)  # fmt: skip
    if effective & (1 << CAP_SYS_RESOURCE):
        return wanted
    return max(wanted, int(Path("/proc/self/oom_score_adj").read_text()))


def kubelet_in_system_cgroup(lab: Lab, nodes: list[Node]) -> None:
    for n in nodes:
        node.write_kubelet_config(lab.paths, n, node.kubelet_config(n, lab.record["instances"][n.name]))
        node.restart(lab.paths, n, "kubelet", node.argv(lab.binaries / "kubelet", node.kubelet_flags(n)))
        namespaces.restore_init_process(lab.paths, n)
        session = cgroups.login_session(n.cgroup)
        cgroups.discard([root / p for root, path in session.items() for p in _session_dirs(path)])


def _session_dirs(path: str) -> list[str]:
    """The session cgroup and the parents the lab made for it: a/user/9999.user/16.session, a/user/9999.user, a/user."""
    base = path[: -len(SESSION_CGROUP)]
    parts = SESSION_CGROUP.split("/")
    return [base + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def check_kubelet_log(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """The kubelet's own log through the apiserver since its last start (the error line, when injected),
    and its stats/summary (a `kubelet` system container and no such line, when healed)."""
    lines = []
    for n in nodes:

        def look(n: Node = n) -> tuple[bool, str]:
            errors = [line for line in checks.kubelet_log_since_start(lab.kubectl, n.name) if STATS_ERROR in line]
            if injected:
                unknown = [line for line in errors if "unknown container" in line]
                return bool(unknown), f"{n.name} kubelet.log: {(unknown or ['no such line yet'])[-1].strip()[:420]}"
            summary = json.loads(lab.kubectl("get", "--raw", f"/api/v1/nodes/{n.name}/proxy/stats/summary"))
            system = sorted(c["name"] for c in summary["node"].get("systemContainers") or [])
            # Healed once cAdvisor reports the kubelet's own cgroup (its first stats take a moment).
            healthy = not errors and "kubelet" in system
            return (
                not healthy,
                f"{n.name}: {len(errors)} '{STATS_ERROR}' lines since the kubelet started; "
                f"stats/summary systemContainers {system}",
            )

        lines.append(_until(look, injected, f"{n.name}'s kubelet log and stats/summary", timeout=90))
        if not checks.node_ready(lab.kubectl, n.name):
            raise LabError(f"{n.name} is not Ready after its kubelet restarted")
    return "; ".join(lines) + "; node Ready"


# --- apiserver-requestheader-allowed-names ----------------------------------------------------


def front_proxy_on_cluster_ca(lab: Lab, nodes: list[Node]) -> None:
    """--requestheader-allowed-names=aggregator over the cluster CA that also signs nodes and users."""
    aggregator = Pki(lab.paths.pki).aggregator_on_cluster_ca()
    for m in lab.masters:
        control_plane.install_pair(lab.paths, m, "aggregator", aggregator)
    pki = control_plane.PKI
    _restart_apiservers(lab, lambda m: {
        **control_plane.apiserver_flags(m),
        "requestheader-client-ca-file": f"{pki}/ca.crt",
        "requestheader-allowed-names": "aggregator",
        "proxy-client-cert-file": f"{pki}/aggregator.crt",
        "proxy-client-key-file": f"{pki}/aggregator.key",
    })  # fmt: skip


def front_proxy_on_its_own_ca(lab: Lab, nodes: list[Node]) -> None:
    _restart_apiservers(lab, control_plane.apiserver_flags)


def _restart_apiservers(lab: Lab, flags: Callable[[Node], dict[str, str]]) -> None:
    """Restart every apiserver with these flags, then let them publish their settings afresh.

    Each apiserver merges its request-header settings into the existing ConfigMap
    kube-system/extension-apiserver-authentication (names and CAs are only ever added), so the
    ConfigMap is deleted once all run with the new flags and they write it again.
    """
    for m in lab.masters:
        node.restart(lab.paths, m, "kube-apiserver", node.argv(lab.binaries / "kube-apiserver", flags(m)))
        own = f"--server=https://{m.ip}:{APISERVER_PORT}"
        wait_for(f"kube-apiserver on {m.name}", partial(answers, lab.kubectl, own, "get", "--raw", "/readyz"), 120)
        control_plane.restart_controllers(lab.paths, m, lab.binaries)
    namespace, name = AUTH_CONFIGMAP
    lab.kubectl("delete", "configmap", "-n", namespace, name, "--ignore-not-found")


def check_front_proxy_settings(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """What the apiservers published in extension-apiserver-authentication, and their logs."""
    namespace, name = AUTH_CONFIGMAP
    cluster_ca = Pki(lab.paths.pki).ca.pair.cert_pem.decode().strip()

    def look() -> tuple[bool, str]:
        data = lab.kubectl.json("get", "configmap", "-n", namespace, name)["data"]
        allowed = json.loads(data.get("requestheader-allowed-names") or "[]")
        shared = cluster_ca in data.get("requestheader-client-ca-file", "")
        if allowed == ["aggregator"] and shared:
            return True, f"{namespace}/{name}: requestheader-allowed-names {allowed}, requestheader CA = cluster CA"
        healthy = allowed == ["front-proxy-client"] and not shared
        return not healthy, f"{namespace}/{name}: requestheader-allowed-names {allowed}, requestheader CA " + (
            "= cluster CA" if shared else "is the separate front-proxy CA"
        )

    seen = _until(look, injected, f"the ConfigMap {namespace}/{name}", timeout=90)
    refusals = sum(_since_start(lab.paths.node_log(m, "kube-apiserver")).count(NOT_ALLOWED) for m in lab.masters)
    return f"{seen}; '{NOT_ALLOWED}' lines in the apiserver logs since their start: {refusals}"


def _since_start(log: Path) -> str:
    text = log.read_text(errors="replace")
    start = text.rfind("Version: v")  # kube-apiserver's first line (cmd/kube-apiserver/app/server.go)
    return text[start:] if start >= 0 else text


# --- client-pem-not-base64 --------------------------------------------------------------------

CREDENTIALS = ("client-certificate-data", "client-key-data")


def raw_pem_in_kubeconfig(lab: Lab, nodes: list[Node]) -> None:
    """Hand out raw PEM text where the admin kubeconfig must hold base64 (a copy keeps the original)."""
    admin, copy = lab.paths.admin_kubeconfig, _healthy_copy(lab.paths)
    config = json.loads(admin.read_text())
    if not copy.exists():
        copy.write_text(admin.read_text())
        copy.chmod(0o600)
    for user in config["users"]:
        for key in CREDENTIALS:
            value = user["user"][key]
            if not value.startswith("-----BEGIN"):
                user["user"][key] = base64.b64decode(value).decode()
    admin.write_text(json.dumps(config, indent=2))


def base64_in_kubeconfig(lab: Lab, nodes: list[Node]) -> None:
    copy = _healthy_copy(lab.paths)
    if copy.exists():
        lab.paths.admin_kubeconfig.write_text(copy.read_text())
        copy.unlink()


def _healthy_copy(paths: Paths) -> Path:
    return paths.state / "admin.kubeconfig.base64"


def check_kubeconfig_credentials(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """What the credentials hold, and whether kubectl can use the admin kubeconfig as it is."""
    admin = lab.paths.admin_kubeconfig
    user = json.loads(admin.read_text())["users"][0]["user"]
    raw = [key for key in CREDENTIALS if user[key].startswith("-----BEGIN")]
    try:
        Kubectl(lab.binaries / "kubectl", admin)("get", "--raw", "/readyz")
        kubectl = "kubectl with it: connects"
    except LabError as e:
        kubectl = f"kubectl with it: {str(e).rsplit(': ', 1)[-1]}"
    if bool(raw) != injected or (raw and set(raw) != set(CREDENTIALS)):
        raise LabError(f"{admin}: raw PEM in {raw or 'no field'}, expected {'both' if injected else 'none'}")
    held = "raw PEM text" if injected else "base64 of PEM"
    return f"{admin}: {', '.join(CREDENTIALS)} hold {held}; {kubectl}"


# --- harbor-k8s-deploy-stale-ui ---------------------------------------------------------------


def notifications_to_nowhere(lab: Lab, nodes: list[Node]) -> None:
    """The registry's notification endpoint stops reaching Harbor: a loopback port nothing listens on."""
    if port_open("127.0.0.1", UNREACHABLE_PORT):
        raise LabError(f"127.0.0.1:{UNREACHABLE_PORT} is in use; the fault needs a port nobody answers on")
    processes.stop(lab.paths, "registry")
    services.start_registry(lab.paths, f"http://127.0.0.1:{UNREACHABLE_PORT}/service/notifications")


def notifications_to_harbor(lab: Lab, nodes: list[Node]) -> None:
    """The registry notifies Harbor again, and Harbor restarts (its catalog scan learns what it missed)."""
    processes.stop(lab.paths, "registry")
    services.start_registry(lab.paths)
    processes.stop(lab.paths, "harbor-double")
    services.start_harbor_double(lab.paths)


def check_push_is_listed(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """Push a small image into the registry and see whether Harbor hears of it."""
    log = lab.paths.logs / "registry.log"
    offset = log.stat().st_size
    tag = checks.unique_tag()
    digest = checks.push_check_image(tag)
    pushed = f"pushed {checks.CHECK_REPOSITORY}:{tag}"
    try:
        if injected:
            unreachable = f"127.0.0.1:{UNREACHABLE_PORT}"
            refused = wait_for(
                f"the registry to log a failed notification to {unreachable}",
                lambda: next(
                    (line for line in _new_lines(log, offset) if unreachable in line and "error" in line), None
                ),
                timeout=20,
            )
            if checks.harbor_lists(tag):
                raise LabError(f"{pushed}, and the Harbor double lists it: notifications still reach it")
            logged = refused[refused.find("msg=") :][:300]
            return f"{pushed}; the registry logged {logged}; the Harbor double does not list it"
        wait_for(f"the Harbor double to list {tag}", lambda: checks.harbor_lists(tag), timeout=20)
        return f"{pushed}; the Harbor double lists it"
    finally:
        checks.delete_check_image(digest)


def _new_lines(log: Path, offset: int) -> list[str]:
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").splitlines()


# --- the catalog of faults --------------------------------------------------------------------

FAULTS = {
    f.cause: f
    for f in (
        Fault("ec2-source-dest-check", "EC2 source/destination check on: the VPC drops frames to and from pod IPs "
              "of the node", source_dest_check_on, source_dest_check_off, check_pod_ips_dropped,
              default_node="worker-1", every_node_allowed=True),
        Fault("sg-node-to-apiserver", "the masters' security group no longer admits the workers on the apiserver's "
              f"real port {APISERVER_PORT}", close_apiserver_port_to_workers, healthy_security_groups,
              check_workers_reach_apiserver_port),
        Fault("sg-master-inbound-from-nodes", f"the masters' security group admits from the workers only TCP "
              f"{APISERVER_PORT} and {KUBELET_PORT}, nothing of their pods (flannel-vxlan: everything but their "
              f"VXLAN traffic, UDP {FLANNEL_VXLAN_PORT})", open_masters_only_explicitly,
              healthy_security_groups, check_workers_reach_master_pods),
        Fault("kubelet-cgroups", f"the kubelet runs in the login session /{SESSION_CGROUP} without kubeletCgroups "
              "and --runtime-cgroups", kubelet_in_login_session, kubelet_in_system_cgroup, check_kubelet_log,
              default_node="worker-1"),
        Fault("apiserver-requestheader-allowed-names", "the apiservers trust request headers from any cluster-CA "
              "certificate named aggregator", front_proxy_on_cluster_ca, front_proxy_on_its_own_ca,
              check_front_proxy_settings),
        Fault("client-pem-not-base64", "the admin kubeconfig holds raw PEM where base64 belongs",
              raw_pem_in_kubeconfig, base64_in_kubeconfig, check_kubeconfig_credentials),
        Fault("harbor-k8s-deploy-stale-ui", "the registry's notifications no longer reach Harbor",
              notifications_to_nowhere, notifications_to_harbor, check_push_is_listed),
    )
}  # fmt: skip
SECURITY_GROUP_FAULTS = {"sg-node-to-apiserver", "sg-master-inbound-from-nodes"}  # both rewrite the masters' group


def active(paths: Paths) -> dict[str, list[str]]:
    """Active faults: cause id -> the nodes it was injected on (empty for cluster-wide faults)."""
    try:
        return json.loads(paths.faults.read_text())
    except (OSError, ValueError):
        return {}


def describe_active(paths: Paths) -> str:
    faults = active(paths)
    shown = [f"{cause} ({', '.join(nodes)})" if nodes else cause for cause, nodes in faults.items()]
    return f"faults active: {', '.join(shown) or 'none'}"


def _save(paths: Paths, faults: dict[str, list[str]]) -> None:
    paths.faults.parent.mkdir(parents=True, exist_ok=True)
    paths.faults.write_text(json.dumps(faults, indent=2))


def targets(lab: Lab, fault: Fault, node_name: str | None) -> list[Node]:
    """The nodes a fault goes to (--node, its default, or all); none for cluster-wide faults."""
    if fault.default_node is None:
        if node_name:
            raise LabError(f"{fault.cause} is a fault of the whole cluster: it takes no --node")
        return []
    if node_name == "all":
        if not fault.every_node_allowed:
            raise LabError(f"{fault.cause} takes one node at a time, not --node all")
        return lab.nodes
    return [lab.node(node_name or fault.default_node)]


def inject(lab: Lab, cause: str, node_name: str | None = None) -> str:
    """Inject the fault (again, when it is active: idempotent); returns the line that proves it."""
    fault = FAULTS[cause]
    nodes = targets(lab, fault, node_name)
    faults = active(lab.paths)
    clash = (SECURITY_GROUP_FAULTS & set(faults)) - {cause} if cause in SECURITY_GROUP_FAULTS else set()
    if clash:
        raise LabError(f"{cause} and {clash.pop()} both rewrite the masters' security group: heal that one first")
    # Recorded before the change, so that `heal` also undoes a fault whose injection failed halfway.
    faults[cause] = sorted({*faults.get(cause, []), *(n.name for n in nodes)})
    _save(lab.paths, faults)
    fault.inject(lab, nodes)
    return f"injected; verified: {fault.check(lab, nodes, True)}"


def heal(lab: Lab, cause: str) -> str:
    """Undo the fault on every node it was injected on; returns the line that proves it is gone."""
    faults = active(lab.paths)
    if cause not in faults:
        return "not active; nothing to heal"
    fault = FAULTS[cause]
    nodes = [lab.node(name) for name in faults[cause]]
    fault.heal(lab, nodes)
    line = fault.check(lab, nodes, False)
    del faults[cause]
    _save(lab.paths, faults)
    return f"healed; verified: {line}"


def _until(look: Callable[[], tuple[bool, str]], faulty: bool, what: str, timeout: float = 30) -> str:
    """Poll look() until it sees the fault (or its absence, faulty=False); returns what it saw last."""
    seen = {}
    started = time.monotonic()

    def matches() -> bool:
        try:
            state, seen["detail"] = look()
        except LabError as e:  # e.g. a kubelet or apiserver just restarted: not an answer yet
            seen["detail"] = str(e)
            return False
        return state == faulty

    try:
        wait_for(what, matches, timeout, interval=1)
    except LabError as e:
        raise LabError(f"{e}; last seen: {seen.get('detail')}") from None
    return f"{seen['detail']} (after {time.monotonic() - started:.0f}s)"

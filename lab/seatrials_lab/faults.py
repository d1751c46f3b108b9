"""The documented causes, injected into the running lab for real, and healed.

One Fault per cause id of seatrials/causes.yaml. `lab/lab fault <id>` makes the lab wrong the way
the field report's cluster was; `lab/lab heal <id>` puts the lab's healthy setting back. Both are
idempotent and both end with a quick look (checks.py) that proves the change took effect, or fail.
Where the cause is an AWS setting, moto is changed and the VPC filter re-derived from it, so what
EC2 says and what packets do agree. Active faults live in <state>/faults.json.

Every fault applies to both layouts (lab.layout): where the hard way restarts a process with other flags,
the kubeadm layout changes what kubeadm laid out (the apiserver's static pod manifest, written again by
kubeadm with other extraArgs; the kubelet's /var/lib/kubelet/config.yaml and kubeadm-flags.env; kube-proxy's
DaemonSet), as an operator of a kubeadm cluster would.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import addons, aws, cgroups, checks, control_plane, images, kubeadm, namespaces, net, node, processes, services
from .cluster import Lab, answers
from .images import BUSYBOX
from .kubectl import Kubectl
from .layout import (
    API_SERVICE_IP,
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
    flannel_backend,
    pod_ips_between_nodes,
)
from .pki import Pki
from .shell import LabError, port_open, run, wait_for

STATS_ERROR = "Failed to get system container stats"
POLICY_NAMESPACE = "seatrials"  # the suite's least-privilege namespace (manifests/rbac.yaml)
KUBE_PROXY_HEALTH_PORT = 10256
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
    leaves: str | None = None  # a fault its heal leaves behind, as the real fix does on a real cluster
    # Why the fault cannot exist in the lab's shape ("" when it can): the lab refuses it with that line.
    not_in: Callable[[Lab], str] = lambda lab: ""
    harmless: bool = False  # not a documented cause: a change a sign-off must raise no alarm about


def native_routes_only(lab: Lab) -> str:
    return "" if lab.cni == "native" else (f"the {lab.cni} lab's pod routes belong to flanneld, which puts a "
                                            "missing one back: only the native shape has static pod routes")


def flannel_only(lab: Lab) -> str:
    return "" if flannel_backend(lab.cni) else "the native shape runs no CNI agent: use --cni flannel-vxlan"


def routed_subnets_only(lab: Lab) -> str:
    if len({n.subnet for n in lab.nodes}) < 2:
        return "the lab's nodes share one subnet, where no route table is on the way: use --subnets 3"
    return "" if pod_ips_between_nodes(lab.cni) else (f"{lab.cni} carries pods between subnets inside VXLAN: "
                                                      "the route tables do not see pod IPs")


def open_front_proxy_startable(lab: Lab) -> str:
    """From 1.35 kube-apiserver refuses to start when --requestheader-client-ca-file overlaps --client-ca-file
    with no --requestheader-allowed-names (pkg/kubeapiserver/options/authentication.go): the fault cannot exist."""
    minor = int(lab.record["kubernetes"].lstrip("v").split(".")[1])
    return "" if minor < 35 else (f"kube-apiserver {lab.record['kubernetes']} refuses to start with it (overlapping "
                                  "request-header and client CAs need --requestheader-allowed-names since 1.35): "
                                  "use --kubernetes 1.34")


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
        if lab.layout == "kubeadm":  # kubeadm's /var/lib/kubelet/config.yaml and kubeadm-flags.env, edited
            kubeadm.drop_kubelet_cgroups(lab.paths, n, grantable_oom_score_adj(KUBELET_OOM_SCORE_ADJ))
            lab.start_kubelet(n, cgroup=session)
            continue
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
        if lab.layout == "kubeadm":
            kubeadm.restore_kubelet_files(lab.paths, n)
        else:
            node.write_kubelet_config(lab.paths, n, node.kubelet_config(n, lab.record["instances"][n.name]))
        lab.start_kubelet(n)
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
    _restart_apiservers(lab, FAULTY_FLAGS)
    _republish_authentication(lab)


# The apiserver flags of the field report's fault, over the healthy ones (the hard way's, kubeadm's).
FAULTY_FLAGS = {
    "requestheader-client-ca-file": f"{control_plane.PKI}/ca.crt",
    "requestheader-allowed-names": "aggregator",
    "proxy-client-cert-file": f"{control_plane.PKI}/aggregator.crt",
    "proxy-client-key-file": f"{control_plane.PKI}/aggregator.key",
}


def front_proxy_on_its_own_ca(lab: Lab, nodes: list[Node]) -> None:
    """The real fix: the apiservers' flags only. Like upstream apiservers after such a fix, they merge their
    settings into the ConfigMap, which keeps the old entries (apiserver-auth-configmap-stale)."""
    _restart_apiservers(lab, {})


def _restart_apiservers(lab: Lab, overrides: dict[str, str]) -> None:
    """Restart every apiserver with these flags over its healthy ones, one after the other, each ready before the
    next: the hard way restarts the process (and the controllers, which no supervisor restarts); kubeadm writes
    the static pod's manifest again, and the kubelet restarts the pod and then its mirror pod (which the suite
    reads: its flags shown only once the kubelet's next sync reaches the apiserver)."""
    wanted = [f"--{name}={value}" for name, value in overrides.items()] or [
        f"--requestheader-client-ca-file={control_plane.PKI}/front-proxy-ca.crt"]  # none: the healthy CA
    for m in lab.masters:
        if lab.layout == "kubeadm":
            kubeadm.set_apiserver_arguments(lab.paths, m, lab.binaries, lab.record["kubernetes"], overrides)
            wait_for(f"kube-apiserver on {m.name} to run with {wanted}",
                     lambda m=m: _shows(namespaces.newest_argv(m, "kube-apiserver"), wanted), 120, interval=1)
        else:
            flags = {**control_plane.apiserver_flags(m), **overrides}
            node.restart(lab.paths, m, "kube-apiserver", node.argv(lab.binaries / "kube-apiserver", flags))
        own = f"--server=https://{m.ip}:{APISERVER_PORT}"
        try:
            wait_for(f"kube-apiserver on {m.name}", partial(answers, lab.kubectl, own, "get", "--raw", "/readyz"), 120)
        except LabError as e:  # the hard way's apiserver says in its log file why it did not come up
            if lab.layout == "kubeadm":  # its pod's log needs the apiserver itself
                raise
            tail = _apiserver_log(lab, m).splitlines()[-3:]
            raise LabError(f"{e}; its log ends: {' | '.join(tail) or 'empty'}") from None
        if lab.layout == "kubeadm":
            wait_for(f"the mirror pod kube-apiserver-{m.name} to show {wanted}",
                     lambda m=m: _shows(kubeadm.static_pod_command(lab.kubectl, m, "kube-apiserver"), wanted), 150,
                     interval=2)
        else:
            control_plane.restart_controllers(lab.paths, m, lab.binaries)


def _shows(argv: list[str], wanted: list[str]) -> bool:
    return bool(argv) and all(w in argv for w in wanted)


def _republish_authentication(lab: Lab, nodes: list[Node] | None = None) -> None:
    """Delete kube-system/extension-apiserver-authentication: every apiserver writes its own settings afresh.

    Each apiserver merges its request-header settings into the existing ConfigMap (names and CAs are
    only ever added), so this is the one way to drop what an earlier configuration left there.
    """
    namespace, name = AUTH_CONFIGMAP
    lab.kubectl("delete", "configmap", "-n", namespace, name, "--ignore-not-found")


def stale_authentication_configmap(lab: Lab, nodes: list[Node]) -> None:
    """The field report's fault, then its real fix: what a cluster looks like after the fix."""
    if _authentication_state(lab)[0] == "stale":
        return
    front_proxy_on_cluster_ca(lab, nodes)
    _until_published(lab, ("fault",), "the apiservers to publish the fault")
    front_proxy_on_its_own_ca(lab, nodes)


def _authentication_state(lab: Lab) -> tuple[str, str]:
    """fault, stale, healthy or other: what the apiservers published in extension-apiserver-authentication."""
    namespace, name = AUTH_CONFIGMAP
    pki = Pki(lab.paths.pki)
    cluster_ca, front_proxy_ca = (pair.cert_pem.decode().strip() for pair in (pki.ca.pair, pki.front_proxy_ca.pair))
    data = lab.kubectl.json("get", "configmap", "-n", namespace, name)["data"]
    allowed = json.loads(data.get("requestheader-allowed-names") or "[]")
    bundle = data.get("requestheader-client-ca-file", "")
    cas = [label for label, ca in (("cluster CA", cluster_ca), ("front-proxy CA", front_proxy_ca)) if ca in bundle]
    seen = f"{namespace}/{name}: requestheader-allowed-names {allowed}, requestheader CAs {cas}"
    if allowed == ["aggregator"] and cas == ["cluster CA"]:
        return "fault", seen
    if allowed == [] and cas == ["cluster CA"]:
        return "open", seen
    if allowed == ["front-proxy-client"] and cas == ["front-proxy CA"]:
        return "healthy", seen
    if len(cas) == 2:  # both CAs: what the apiservers published before and after a fix, merged
        return "stale", seen
    return "other", seen


def _until_published(lab: Lab, states: tuple[str, ...], what: str) -> tuple[str, str]:
    """Poll the ConfigMap (one read a poll, so the state and what was seen agree) until its state is one of
    `states`: (that state, what was seen)."""
    last = {}

    def look() -> tuple[bool, str]:
        last["state"], seen = _authentication_state(lab)
        return last["state"] in states, seen

    seen = _until(look, True, what, timeout=90)
    return last["state"], seen


def _apiserver_flags_in_effect(lab: Lab) -> str:
    """The request-header CA each apiserver process (the hard way's, or a static pod's) runs with, from its command
    line."""
    shown = []
    for m in lab.masters:
        argv = namespaces.newest_argv(m, "kube-apiserver")
        ca = next((a.split("=", 1)[1] for a in argv if a.startswith("--requestheader-client-ca-file=")), "?")
        shown.append(f"{m.name} --requestheader-client-ca-file={ca}")
    return ", ".join(shown)


def check_front_proxy_settings(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """Injected: what the apiservers published in extension-apiserver-authentication, and their logs.
    Healed: the apiservers run with their own front-proxy CA again. The ConfigMap stays merged (stale) after a
    fault that was published; one whose injection stopped before that stays healthy."""
    if not injected:
        flags = _apiserver_flags_in_effect(lab)
        if "front-proxy-ca.crt" not in flags or "/ca.crt" in flags.replace("front-proxy-ca.crt", ""):
            raise LabError(f"the apiservers do not run with their own front-proxy CA: {flags}")
        state, seen = _until_published(lab, ("stale", "healthy"),
                                       "the apiservers to merge their new settings into the ConfigMap")
        return f"{flags}; {seen}" + (": apiserver-auth-configmap-stale is active now" if state == "stale" else "")
    _, seen = _until_published(lab, ("fault",), "the ConfigMap to show the fault")
    refusals = sum(_apiserver_log(lab, m).count(NOT_ALLOWED) for m in lab.masters)
    return f"{seen}; '{NOT_ALLOWED}' lines in the apiserver logs since their start: {refusals}"


def check_stale_configmap(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """Injected: healthy flags, a merged ConfigMap. Healed: the ConfigMap republished, healthy."""
    want = "stale" if injected else "healthy"
    _, seen = _until_published(lab, (want,), f"the ConfigMap to be {want}")
    return f"{_apiserver_flags_in_effect(lab)}; {seen}"


def _apiserver_log(lab: Lab, master: Node) -> str:
    """The master's apiserver log since its start: its static pod's container log, or the hard way's log file."""
    if lab.layout == "kubeadm":
        return kubeadm.apiserver_log(lab.kubectl, master)
    text = lab.paths.node_log(master, "kube-apiserver").read_text(errors="replace")
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


# --- node-not-ready ---------------------------------------------------------------------------


def kubelet_stopped(lab: Lab, nodes: list[Node]) -> None:
    for n in nodes:
        processes.stop(lab.paths, f"{n.name}.kubelet")


def kubelet_started(lab: Lab, nodes: list[Node]) -> None:
    for n in nodes:
        if processes.pid_of(lab.paths, f"{n.name}.kubelet") is None:
            lab.start_kubelet(n)


def check_node_ready(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """The node's Ready condition: Unknown once the controller manager's grace period has passed."""
    lines = []
    for n in nodes:

        def look(n: Node = n) -> tuple[bool, str]:
            ready = checks.ready_condition(lab.kubectl, n.name)
            return ready["status"] == "Unknown", f"{n.name} Ready={ready['status']}: {ready.get('message', '')}"

        lines.append(_until(look, injected, f"{n.name} to be " + ("NotReady" if injected else "Ready"), timeout=150))
    return "; ".join(lines)


# --- probe-image-unavailable ------------------------------------------------------------------


def probe_image_removed(lab: Lab, nodes: list[Node]) -> None:
    """The node's containerd forgets the probe image; no registry can be reached, so it cannot pull it."""
    for n in nodes:
        if BUSYBOX in node.images(lab.paths, n):
            node.remove_image(lab.paths, n, BUSYBOX)


def probe_image_restored(lab: Lab, nodes: list[Node]) -> None:
    archive = images.build(lab.paths, lab.binaries).archive(BUSYBOX)
    for n in nodes:
        node.import_images(lab.paths, n, [archive])


def check_probe_image(lab: Lab, nodes: list[Node], injected: bool) -> str:
    lines = []
    for n in nodes:
        present = BUSYBOX in node.images(lab.paths, n)
        if present == injected:
            raise LabError(f"{n.name}'s containerd {'still has' if present else 'lacks'} {BUSYBOX}")
        lines.append(f"{n.name}'s containerd {'has' if present else 'lacks'} {BUSYBOX} (no registry is reachable)")
    return "; ".join(lines)


# --- probe-host-port-taken --------------------------------------------------------------------

HOST_PROBE_PORT = 9377  # the suite's default host-network probe port (--probe-ports)
PORT_HOLDER = "host-port-holder"


def host_port_taken(lab: Lab, nodes: list[Node]) -> None:
    """A host-network pod on the node declares the suite's host probe port and listens on it."""
    lab.kubectl.apply([addons.host_port_holder(PORT_HOLDER, n.name, HOST_PROBE_PORT) for n in nodes])


def host_port_freed(lab: Lab, nodes: list[Node]) -> None:
    lab.kubectl("delete", "pod", "-n", addons.PROBE_NAMESPACE, "-l", f"app={PORT_HOLDER}", "--grace-period=0",
                "--ignore-not-found", "--wait=true", timeout=90)


def check_host_port(lab: Lab, nodes: list[Node], injected: bool) -> str:
    lines = []
    for n in nodes:

        def look(n: Node = n) -> tuple[bool, str]:
            failure = checks.tcp_from_node(n, n.ip, HOST_PROBE_PORT)
            return failure is None, f"{n.name}:{HOST_PROBE_PORT} " + ("answers" if failure is None else failure)

        lines.append(_until(look, injected, f"port {HOST_PROBE_PORT} on {n.name}", timeout=60))
    return "; ".join(lines)


# --- probe-admission-refused ------------------------------------------------------------------


def probes_refused(lab: Lab, nodes: list[Node]) -> None:
    """A cluster policy (a ValidatingAdmissionPolicy, as a policy engine would) refuses host-network probes."""
    lab.kubectl.apply(addons.no_host_network_policy())


def probes_admitted(lab: Lab, nodes: list[Node]) -> None:
    for kind, name in addons.NO_HOST_NETWORK:
        lab.kubectl("delete", kind, name, "--ignore-not-found")


def check_admission(lab: Lab, nodes: list[Node], injected: bool) -> str:
    def look() -> tuple[bool, str]:
        refusal = checks.admission_refusal(lab.kubectl, addons.probe_like_pod())
        return refusal is not None, f"a host-network pod labelled as a seatrials probe: {refusal or 'admitted'}"

    return _until(look, injected, "the admission policy to " + ("refuse" if injected else "admit") + " the probes")



# --- pod-route-missing ------------------------------------------------------------------------


def pod_routes_removed(lab: Lab, nodes: list[Node]) -> None:
    """Every other node forgets its route to the node's pod CIDR (as a crashed route daemon would leave it)."""
    for n in nodes:
        for other in lab.nodes:
            if other != n:
                net.pod_route(other, n, present=False)


def pod_routes_restored(lab: Lab, nodes: list[Node]) -> None:
    for n in nodes:
        for other in lab.nodes:
            if other != n:
                net.pod_route(other, n, present=True)


def check_pod_routes(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """The other nodes' routes to the node's pods, and a pod on another node asking the node's pod."""
    target = nodes[0]
    source = next(n for n in lab.nodes if n != target)
    routed = [o.name for o in lab.nodes if o != target and net.has_pod_route(o, target)]
    if bool(routed) == injected:
        raise LabError(f"routes to {target.pod_cidr} on {routed or 'no node'}: expected "
                       f"{'none' if injected else 'every other node'}")

    def look() -> tuple[bool, str]:
        url, failure = checks.pod_to_pod(lab.kubectl, source.name, target.name)
        return failure is not None, f"{source.name}'s probe pod -> {url} on {target.name}: {failure or 'answered'}"

    seen = _until(look, injected, "the pod IP to be " + ("unreachable" if injected else "reachable again"))
    return f"routes to {target.pod_cidr} on {', '.join(routed) or 'no other node'}; {seen}"


# --- cni-agent-down ---------------------------------------------------------------------------


def flannel_kept_off(lab: Lab, nodes: list[Node]) -> None:
    """flanneld is kept off the nodes (the DaemonSet's affinity excludes them) and, as after a reboot
    without it, the nodes lose what it set up: the VXLAN device and their routes to the other nodes' pods."""
    names = tuple(n.name for n in nodes)
    _flannel_affinity(lab, addons.flannel_affinity(exclude=names))
    _until(lambda: (not set(names) & set(addons.flannel_pods(lab.kubectl)), f"flannel pods on {names}"), True,
           "the flannel pods to leave the nodes", timeout=60)
    for n in nodes:
        run(net.in_netns(n.netns, ["ip", "link", "del", "flannel.1"]), check=False)
        for other in lab.nodes:
            if other != n:
                run(net.in_netns(n.netns, ["ip", "route", "del", other.pod_cidr]), check=False)


def flannel_back(lab: Lab, nodes: list[Node]) -> None:
    _flannel_affinity(lab, addons.flannel_affinity())


def _flannel_affinity(lab: Lab, affinity: dict) -> None:
    patch = {"spec": {"template": {"spec": {"affinity": affinity}}}}
    lab.kubectl("patch", "daemonset", "-n", addons.FLANNEL_NAMESPACE, "kube-flannel-ds", "--type=merge",
                "-p", json.dumps(patch))


def check_flannel_agents(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """The flannel pods on the nodes, and a probe pod on another node asking the node's probe pod; settled only
    once the DaemonSet's rollout of the changed affinity is over (until then other nodes' agents restart)."""
    target = nodes[0]
    source = next(n for n in lab.nodes if n != target)

    def look() -> tuple[bool | None, str]:
        ready = addons.flannel_pods(lab.kubectl)
        missing = [n.name for n in nodes if not ready.get(n.name)]
        url, failure = checks.pod_to_pod(lab.kubectl, source.name, target.name)
        pending = addons.flannel_rollout_pending(lab.kubectl)
        cut_off, whole = bool(missing) and failure is not None, not missing and failure is None
        state = None if pending or not (cut_off or whole) else cut_off  # None: neither, not yet
        return state, (f"flannel pod ready on {', '.join(n for n, ok in ready.items() if ok) or 'no node'}, not on "
                       f"{', '.join(missing) or 'none'}; {source.name}'s probe pod -> {url} on {target.name}: "
                       f"{failure or 'answered'}" + (f"; {pending}" if pending else ""))

    return _until(look, injected, "the flannel agent " + ("gone and the pods cut off" if injected else "back"),
                  timeout=150)


# --- cross-subnet-native-routing --------------------------------------------------------------


def pod_routes_out_of_route_tables(lab: Lab, nodes: list[Node]) -> None:
    """Every subnet's route table forgets the pod CIDR routes: native routing across subnets without the VPC
    routes it needs."""
    aws.set_pod_routes(aws.ec2(), lab.nodes, lab.record["instances"], present=False)
    aws.sync_vpc(lab.nodes)


def pod_routes_in_route_tables(lab: Lab, nodes: list[Node]) -> None:
    aws.set_pod_routes(aws.ec2(), lab.nodes, lab.record["instances"], present=True)
    aws.sync_vpc(lab.nodes)


def check_cross_subnet_pods(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """moto's pod routes, a probe pod asking one in another subnet (lost while the routes are out), and one
    asking another in its own subnet when the lab has such a pair (it answers throughout)."""
    routes = aws.pod_routes(aws.ec2())
    if bool(routes) == injected:
        raise LabError(f"moto's route tables hold {len(routes)} pod CIDR routes: expected "
                       f"{'none' if injected else 'one per node and other subnet'}")
    workers = [n for n in lab.nodes if not n.is_master]
    source = workers[0]
    across = next(n for n in lab.nodes if n.subnet != source.subnet)
    alongside = next((n for n in workers if n.subnet == source.subnet and n != source), None)

    def look() -> tuple[bool, str]:
        url, failure = checks.pod_to_pod(lab.kubectl, source.name, across.name)
        return failure is not None, f"{source.name}'s probe pod -> {url} on {across.name}: {failure or 'answered'}"

    seen = _until(look, injected, "pod IPs across subnets to be " + ("lost" if injected else "answered"))
    if alongside:
        url, failure = checks.pod_to_pod(lab.kubectl, source.name, alongside.name)
        if failure:
            raise LabError(f"{source.name}'s probe pod -> {url} on {alongside.name} (same subnet): {failure}")
        seen += f"; {alongside.name} in the same subnet answers"
    return f"{len(routes)} pod CIDR routes in moto's route tables; {seen}"


# --- nacl-deny-unused-port (harmless) ---------------------------------------------------------

UNUSED_PORT = 3389  # RDP: nothing of a Linux cluster listens there


def acls_deny_unused_port(lab: Lab, nodes: list[Node]) -> None:
    """Every subnet's network ACL denies TCP 3389 both ways before its allow rules, as hardening does."""
    aws.set_acl_deny(aws.ec2(), UNUSED_PORT, present=True)
    aws.sync_vpc(lab.nodes)


def acls_without_deny(lab: Lab, nodes: list[Node]) -> None:
    aws.set_acl_deny(aws.ec2(), UNUSED_PORT, present=False)
    aws.sync_vpc(lab.nodes)


def check_unused_port_denied(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """moto's deny entries, and pod IPs across subnets answering all the same."""
    denies = aws.acl_denies(aws.ec2(), UNUSED_PORT)
    if bool(denies) != injected:
        raise LabError(f"{len(denies)} ACL entries deny TCP {UNUSED_PORT}: expected {'some' if injected else 'none'}")
    source = next(n for n in lab.nodes if not n.is_master)
    across = next(n for n in lab.nodes if n.subnet != source.subnet)
    url, failure = checks.pod_to_pod(lab.kubectl, source.name, across.name)
    if failure:
        raise LabError(f"{source.name}'s probe pod -> {url} on {across.name}: {failure}")
    return f"{len(denies)} ACL entries deny TCP {UNUSED_PORT}; {source.name}'s probe pod -> {across.name}'s answers"


def several_subnets(lab: Lab) -> str:
    return "" if len({n.subnet for n in lab.nodes}) > 1 else "the lab's nodes share one subnet, whose ACL " \
                                                              "nothing crosses: use --subnets 3"


# --- kube-proxy-not-forwarding ----------------------------------------------------------------


def kube_proxy_gone(lab: Lab, nodes: list[Node]) -> None:
    """The node's kube-proxy is stopped (kubeadm: its DaemonSet keeps off the node) and its Service rules are gone
    (as after a start that never synced)."""
    if lab.layout == "kubeadm":
        kubeadm.kube_proxy_off(lab.kubectl, nodes)
    for n in nodes:
        processes.stop(lab.paths, f"{n.name}.kube-proxy")
        run(net.in_netns(n.netns, ["iptables", "-t", "nat", "-F", "KUBE-SERVICES"]))


def kube_proxy_back(lab: Lab, nodes: list[Node]) -> None:
    if lab.layout == "kubeadm":
        kubeadm.kube_proxy_on(lab.kubectl)
        return
    for n in nodes:
        if processes.pid_of(lab.paths, f"{n.name}.kube-proxy") is None:
            node.start_kube_proxy(lab.paths, n, lab.binaries)


def check_kube_proxy(lab: Lab, nodes: list[Node], injected: bool) -> str:
    """kube-proxy's /healthz on the node and a connection from the node to the kubernetes ClusterIP."""
    lines = []
    for n in nodes:

        def look(n: Node = n) -> tuple[bool, str]:
            health = checks.tcp_from_node(n, "127.0.0.1", KUBE_PROXY_HEALTH_PORT)
            service = checks.tcp_from_node(n, API_SERVICE_IP, 443)
            broken = health is not None and service is not None
            return broken, (f"{n.name}: kube-proxy /healthz {health or 'answers'}; {API_SERVICE_IP}:443 "
                            f"{service or 'connects'}")

        lines.append(_until(look, injected, f"{n.name}'s Service forwarding", timeout=60))
    return "; ".join(lines)


# --- cluster-dns-unavailable ------------------------------------------------------------------


def coredns_scaled(replicas: int | None) -> Callable[[Lab, list[Node]], None]:
    """Scale CoreDNS to `replicas`; None: to its layout's own count (the lab's 1, kubeadm's 2)."""
    def scale(lab: Lab, nodes: list[Node]) -> None:
        count = replicas if replicas is not None else kubeadm.DNS_REPLICAS if lab.layout == "kubeadm" else 1
        lab.kubectl("scale", "-n", "kube-system", "deployment/coredns", f"--replicas={count}")
    return scale


def check_dns_endpoints(lab: Lab, nodes: list[Node], injected: bool) -> str:
    def look() -> tuple[bool, str]:
        listed, ready = checks.endpoints(lab.kubectl, "kube-system", "kube-dns")
        return (listed == 0) if injected else not ready, f"kube-system/kube-dns: {listed} endpoints, {ready} ready"

    return _until(look, injected, "the DNS service's endpoints", timeout=90)


# --- network-policy-blocks-probes -------------------------------------------------------------


def default_deny_for_probes(lab: Lab, nodes: list[Node]) -> None:
    """A default-deny NetworkPolicy in namespace `seatrials` (the least-privilege namespace of the suite's
    manifests/rbac.yaml), where runs with --namespace seatrials put their probes."""
    lab.kubectl.apply(addons.default_deny(POLICY_NAMESPACE))


def default_deny_removed(lab: Lab, nodes: list[Node]) -> None:
    lab.kubectl("delete", "networkpolicy", "-n", POLICY_NAMESPACE, addons.DEFAULT_DENY, "--ignore-not-found")


def check_default_deny(lab: Lab, nodes: list[Node], injected: bool) -> str:
    names = lab.kubectl("get", "networkpolicy", "-n", POLICY_NAMESPACE, "-o", "name").split()
    present = f"networkpolicy.networking.k8s.io/{addons.DEFAULT_DENY}" in names
    if present != injected:
        raise LabError(f"NetworkPolicies of {POLICY_NAMESPACE}: {names or 'none'}")
    return (f"NetworkPolicies of {POLICY_NAMESPACE}: {', '.join(names) or 'none'} (this lab enforces no "
            "NetworkPolicy: the suite reads them from the API)")


# --- requestheader-open-impersonation ---------------------------------------------------------


def front_proxy_open(lab: Lab, nodes: list[Node]) -> None:
    """The field report's own fix, applied literally: no allowed names over the cluster CA, and the admin
    certificate (system:masters) as the proxy client certificate."""
    for m in lab.masters:
        control_plane.install_pair(lab.paths, m, "proxy-admin", Pki(lab.paths.pki).admin)
    _restart_apiservers(lab, OPEN_FLAGS)
    _republish_authentication(lab)


OPEN_FLAGS = {**FAULTY_FLAGS, "requestheader-allowed-names": "",
              "proxy-client-cert-file": f"{control_plane.PKI}/proxy-admin.crt",
              "proxy-client-key-file": f"{control_plane.PKI}/proxy-admin.key"}


def check_open_front_proxy(lab: Lab, nodes: list[Node], injected: bool) -> str:
    if not injected:
        return check_front_proxy_settings(lab, nodes, False)
    return _until_published(lab, ("open",), "the ConfigMap to show no allowed names over the cluster CA")[1]


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
              check_front_proxy_settings, leaves="apiserver-auth-configmap-stale"),
        Fault("apiserver-auth-configmap-stale", "the apiservers were fixed, the ConfigMap they merge into still "
              "holds the fault", stale_authentication_configmap, _republish_authentication, check_stale_configmap),
        Fault("client-pem-not-base64", "the admin kubeconfig holds raw PEM where base64 belongs",
              raw_pem_in_kubeconfig, base64_in_kubeconfig, check_kubeconfig_credentials),
        Fault("harbor-k8s-deploy-stale-ui", "the registry's notifications no longer reach Harbor",
              notifications_to_nowhere, notifications_to_harbor, check_push_is_listed),
        Fault("node-not-ready", "the node's kubelet is stopped: the node turns NotReady", kubelet_stopped,
              kubelet_started, check_node_ready, default_node="worker-1"),
        Fault("probe-image-unavailable", f"the node's containerd lacks {BUSYBOX} and no registry is reachable",
              probe_image_removed, probe_image_restored, check_probe_image, default_node="worker-1"),
        Fault("probe-host-port-taken", f"a host-network pod holds port {HOST_PROBE_PORT} on the node",
              host_port_taken, host_port_freed, check_host_port, default_node="worker-1"),
        Fault("probe-admission-refused", "an admission policy refuses host-network pods labelled as seatrials "
              "probes", probes_refused, probes_admitted, check_admission),
        Fault("pod-route-missing", "every other node forgets its route to the node's pod CIDR",
              pod_routes_removed, pod_routes_restored, check_pod_routes, default_node="worker-2",
              not_in=native_routes_only),
        Fault("cni-agent-down", "flanneld is kept off the node, which lost its VXLAN device and pod routes as "
              "after a reboot without it", flannel_kept_off, flannel_back, check_flannel_agents,
              default_node="worker-1", not_in=flannel_only),
        Fault("cross-subnet-native-routing", "the subnets' route tables lose their pod CIDR routes while pods "
              "are routed natively between subnets", pod_routes_out_of_route_tables, pod_routes_in_route_tables,
              check_cross_subnet_pods, not_in=routed_subnets_only),
        # harmless: no alarm may follow
        Fault("nacl-deny-unused-port", f"every subnet's network ACL denies TCP {UNUSED_PORT}, a port no cluster "
              "traffic uses (harmless)", acls_deny_unused_port, acls_without_deny, check_unused_port_denied,
              not_in=several_subnets, harmless=True),
        Fault("kube-proxy-not-forwarding", "the node's kube-proxy is stopped and its Service rules flushed",
              kube_proxy_gone, kube_proxy_back, check_kube_proxy, default_node="worker-2"),
        Fault("cluster-dns-unavailable", "CoreDNS is scaled to zero", coredns_scaled(0), coredns_scaled(None),
              check_dns_endpoints),
        Fault("network-policy-blocks-probes", f"a default-deny NetworkPolicy in namespace {POLICY_NAMESPACE}, where "
              f"--namespace {POLICY_NAMESPACE} runs put their probes", default_deny_for_probes,
              default_deny_removed, check_default_deny),
        Fault("requestheader-open-impersonation", "the field report's fix: the apiservers trust request headers "
              "from any cluster-CA certificate, and proxy with the admin's", front_proxy_open,
              front_proxy_on_its_own_ca, check_open_front_proxy, leaves="apiserver-auth-configmap-stale",
              not_in=open_front_proxy_startable),
    )
}  # fmt: skip
# Faults that change the same thing cannot be active together.
CLASHES = ({"sg-node-to-apiserver", "sg-master-inbound-from-nodes"},  # both rewrite the masters' group
           {"kubelet-cgroups", "node-not-ready"},  # both stop and start kubelets
           {"apiserver-requestheader-allowed-names", "apiserver-auth-configmap-stale",
            "requestheader-open-impersonation"})  # the apiservers' flags


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
    if why := fault.not_in(lab):
        raise LabError(f"{cause} cannot be injected here: {why}")
    nodes = targets(lab, fault, node_name)
    faults = active(lab.paths)
    clash = {other for group in CLASHES if cause in group for other in group & set(faults)} - {cause}
    if clash:
        raise LabError(f"{cause} and {clash.pop()} change the same part of the lab: heal that one first")
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
    if fault.leaves:
        faults[fault.leaves] = []
    _save(lab.paths, faults)
    return f"healed; verified: {line}"


def heal_all(lab: Lab, keep: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Heal every active fault but `keep`, and what their heals leave behind; (cause, verified line) in order."""
    healed = []
    while remaining := [c for c in active(lab.paths) if c not in dict(healed) and c not in keep]:
        healed.append((remaining[0], heal(lab, remaining[0])))
    return healed


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

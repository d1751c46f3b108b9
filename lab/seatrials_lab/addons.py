"""What the lab deploys into the cluster: CoreDNS (kube-dns, 10.32.0.10), a probe DaemonSet and,
in the flannel shapes, flannel as upstream's kube-flannel.yml deploys it.

The probe DaemonSet (namespace seatrials-lab, a busybox httpd on every node, masters
included) is how `up` knows the cluster works: each probe pod must answer, with its node's
name, a request made from the probe pod on the next node, which needs kubectl exec
(apiserver -> kubelet) and cross-node pod networking.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from .images import BUSYBOX
from .kubectl import Kubectl
from .layout import CLUSTER_DOMAIN, DNS_SERVICE_IP, POD_CIDR
from .shell import LabError

PROBE_NAMESPACE = "seatrials-lab"
PROBE_PORT = 8080
DNS_LABELS = {"k8s-app": "kube-dns"}
TOLERATE_EVERYTHING = [{"operator": "Exists"}]
PARALLEL_EXECS = 8  # kubectl execs at once (each is a process and an apiserver stream)

# cluster.local only: there is no upstream to forward to, and the lab must never reach the machine's
# DNS. Other names get NXDOMAIN from CoreDNS itself, as an upstream would answer, so resolvers walk
# their search list (kubernetes.default -> kubernetes.default.svc.cluster.local).
COREFILE = f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        ttl 30
    }}
    prometheus :9153
    cache 30
    loadbalance
}}
.:53 {{
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def coredns_objects(image: str) -> list[dict]:
    namespace = "kube-system"
    meta = {"name": "coredns", "namespace": namespace}
    container = {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 30},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": namespace}],
        },
        coredns_configmap(),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": DNS_LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": DNS_LABELS},
                "template": {
                    "metadata": {"labels": DNS_LABELS},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": namespace, "labels": DNS_LABELS},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": DNS_LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"},
                ],
            },
        },
    ]


def coredns_configmap() -> dict:
    """kube-system/coredns with the lab's Corefile (kubeadm's addon phase keeps a Corefile it finds)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": COREFILE}}


FLANNEL_NAMESPACE = "kube-flannel"
FLANNEL_LABELS = {"app": "flannel"}
FLANNEL_HEALTHZ_PORT = 8081
FLANNEL_CNI_CONF = {  # upstream's cni-conf.json: flanneld writes it out with the flannel plugin's delegate
    "name": "cbr0",
    "cniVersion": "1.0.0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


def flannel_objects(image: str, backend: str) -> list[dict]:
    """Upstream's kube-flannel.yml (v0.28): namespace, RBAC, the kube-flannel-cfg ConfigMap and the
    kube-flannel-ds DaemonSet on the host network of every node, with the lab's differences: the
    locally built image, no init containers (flannel's CNI plugin is not packaged here, so flanneld
    itself writes the CNI configuration the plugin would delegate: --cni-conf), and --iface=eth0
    (nodes have no default route to find the interface by)."""
    labels = {"k8s-app": "flannel"}
    tier = {"tier": "node", **labels, **FLANNEL_LABELS}
    meta = {"namespace": FLANNEL_NAMESPACE, "labels": labels}
    net_conf = {"Network": POD_CIDR, "EnableNFTables": False, "Backend": {"Type": backend}}
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLANNEL_NAMESPACE, "labels": {
            **labels, "pod-security.kubernetes.io/enforce": "privileged"}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "flannel", "labels": labels}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "flannel", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "flannel"},
         "subjects": [{"kind": "ServiceAccount", "name": "flannel", "namespace": FLANNEL_NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "name": "flannel"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": "kube-flannel-cfg", "labels": tier},
         "data": {"cni-conf.json": json.dumps(FLANNEL_CNI_CONF, indent=2) + "\n",
                  "net-conf.json": json.dumps(net_conf, indent=2) + "\n"}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {**meta, "name": "kube-flannel-ds", "labels": tier},
         "spec": {"selector": {"matchLabels": FLANNEL_LABELS}, "template": {
             "metadata": {"labels": {"tier": "node", **FLANNEL_LABELS}}, "spec": _flannel_pod(image)}}},
    ]  # fmt: skip


def flannel_affinity(exclude: tuple[str, ...] = ()) -> dict:
    """Upstream's: Linux nodes; `exclude` keeps flanneld off those nodes too (the cni-agent-down fault)."""
    terms = [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]
    if exclude:
        terms.append({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": sorted(exclude)})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": terms}]}}}


def flannel_pods(kubectl: Kubectl) -> dict[str, bool]:
    """Node name -> whether the flannel pod there is ready."""
    pods = kubectl.json("get", "pods", "-n", FLANNEL_NAMESPACE, "-l", "app=flannel")["items"]
    return {p["spec"].get("nodeName", ""): any(c["type"] == "Ready" and c["status"] == "True"
                                               for c in p.get("status", {}).get("conditions", []))
            for p in pods if not p["metadata"].get("deletionTimestamp")}


def flannel_rollout_pending(kubectl: Kubectl) -> str:
    """What kube-flannel-ds still rolls out after a change of its template ("" once every node it schedules
    runs a ready pod of the current template): a change restarts flanneld on every node, one after another."""
    ds = kubectl.json("get", "daemonset", "-n", FLANNEL_NAMESPACE, "kube-flannel-ds")
    status, want = ds.get("status", {}), ds["metadata"].get("generation", 0)
    desired = status.get("desiredNumberScheduled", 0)
    counts = {k: status.get(k, 0) for k in ("updatedNumberScheduled", "numberReady", "numberAvailable")}
    if status.get("observedGeneration", 0) >= want and all(n == desired for n in counts.values()):
        return ""
    return f"kube-flannel-ds rolling out: {desired} scheduled, " + ", ".join(f"{k} {n}" for k, n in counts.items())


def _flannel_pod(image: str) -> dict:
    container = {
        "name": "kube-flannel",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/opt/bin/flanneld"],
        "args": ["--ip-masq", "--kube-subnet-mgr", "--iface=eth0", f"--healthz-port={FLANNEL_HEALTHZ_PORT}",
                 "--cni-conf=/etc/kube-flannel/cni-conf.json", "--cni-conf-out=/etc/cni/net.d/10-flannel.conflist"],
        "ports": [{"name": "healthz", "containerPort": FLANNEL_HEALTHZ_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"}, "initialDelaySeconds": 10,
                          "periodSeconds": 30},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "healthz"}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
        "securityContext": {"privileged": False, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "EVENT_QUEUE_DEPTH", "value": "5000"},
            {"name": "CONT_WHEN_CACHE_NOT_READY", "value": "false"},
        ],
        "volumeMounts": [
            {"name": "run", "mountPath": "/run/flannel"},
            {"name": "cni", "mountPath": "/etc/cni/net.d"},
            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
        ],
    }  # fmt: skip
    return {
        "affinity": flannel_affinity(),
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "flannel",
        "containers": [container],
        "volumes": [
            {"name": "run", "hostPath": {"path": "/run/flannel"}},
            {"name": "cni", "hostPath": {"path": "/etc/cni/net.d"}},
            {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
            {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
        ],
    }  # fmt: skip


def probe_objects() -> list[dict]:
    labels = {"app": "lab-probe"}
    serve = (
        f'mkdir -p /tmp/www && echo "$NODE_NAME" > /tmp/www/index.html && '
        f'echo "lab probe on $NODE_NAME serving :{PROBE_PORT}" && exec httpd -f -p {PROBE_PORT} -h /tmp/www'
    )
    container = {
        "name": "probe",
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", serve],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "ports": [{"containerPort": PROBE_PORT}],
        "readinessProbe": {"httpGet": {"path": "/", "port": PROBE_PORT}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NAMESPACE}},
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "lab-probe", "namespace": PROBE_NAMESPACE, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "tolerations": TOLERATE_EVERYTHING,
                        "terminationGracePeriodSeconds": 1,
                        "containers": [container],
                    },
                },
            },
        },
    ]


def probe_pods(kubectl: Kubectl) -> list[dict]:
    """Running, ready probe pods, by node name order."""
    pods = kubectl.json("get", "pods", "-n", PROBE_NAMESPACE, "-l", "app=lab-probe")["items"]
    ready = [
        p
        for p in pods
        if p["status"].get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]
    return sorted(ready, key=lambda p: p["spec"]["nodeName"])


def probes_answer(kubectl: Kubectl, nodes: list[str]) -> list[str]:
    """Ask every probe pod, from the probe pod on the next node, for its node name; returns the failures.
    The requests go out together (one kubectl exec each), so a dozen nodes take no longer than two."""
    pods = {p["spec"]["nodeName"]: p for p in probe_pods(kubectl)}
    failures = [f"{name}: no ready probe pod" for name in nodes if name not in pods]
    if failures:
        return failures
    pairs = [(nodes[(i + 1) % len(nodes)], target) for i, target in enumerate(nodes)]
    with ThreadPoolExecutor(max_workers=PARALLEL_EXECS) as pool:
        return [f for f in pool.map(lambda pair: _probe_answers(kubectl, pods, *pair), pairs) if f]


def _probe_answers(kubectl: Kubectl, pods: dict[str, dict], source: str, target: str) -> str:
    """'' when the probe pod on `target` answered the one on `source` with its node name, else why not."""
    url = f"http://{pods[target]['status']['podIP']}:{PROBE_PORT}/"
    try:
        answer = fetch_from(kubectl, pods[source], url)
    except LabError as e:
        return f"{source} -> {target} {url}: {e}"
    return "" if answer == target else f"{source} -> {target} {url}: answered {answer!r}"


def fetch_from(kubectl: Kubectl, pod: dict, url: str, seconds: int = 5) -> str:
    """GET url from inside a probe pod (its own network namespace); a LabError when nothing answers."""
    # Debian's busybox 1.35 wget crashes on -T: `timeout` bounds it.
    command = ["timeout", str(seconds), "wget", "-q", "-O", "-", url]
    return kubectl("exec", "-n", PROBE_NAMESPACE, pod["metadata"]["name"], "--", *command, timeout=seconds + 15).strip()


def host_port_holder(name: str, node: str, port: int) -> dict:
    """A host-network pod on `node` that declares `port` and listens on it (as another agent might)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-{node}", "namespace": PROBE_NAMESPACE, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "tolerations": TOLERATE_EVERYTHING,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "holder",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"mkdir -p /tmp/www && exec httpd -f -p {port} -h /tmp/www"],
                "ports": [{"containerPort": port}],
            }],
        },
    }  # fmt: skip


NO_HOST_NETWORK = (("validatingadmissionpolicybinding", "seatrials-lab-no-host-network"),
                   ("validatingadmissionpolicy", "seatrials-lab-no-host-network"))


def no_host_network_policy() -> list[dict]:
    """A cluster policy refusing host-network pods labelled as seatrials probes, as a policy engine would."""
    name = NO_HOST_NETWORK[1][1]
    group = "admissionregistration.k8s.io/v1"
    return [
        {"apiVersion": group, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods"]}]},
                  "matchConditions": [{"name": "seatrials-probes", "expression":
                                       "has(object.metadata.labels) && 'app.kubernetes.io/name' in "
                                       "object.metadata.labels && object.metadata.labels['app.kubernetes.io/name']"
                                       " == 'seatrials-probe'"}],
                  "validations": [{"expression": "!has(object.spec.hostNetwork) || !object.spec.hostNetwork",
                                   "message": "host network is not allowed for seatrials probes (lab policy)"}]}},
        {"apiVersion": group, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
         "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]  # fmt: skip


def probe_like_pod() -> dict:
    """A pod that looks like seatrials' host-network probe to admission (for a dry-run create)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "admission-check", "namespace": PROBE_NAMESPACE,
                         "labels": {"app.kubernetes.io/name": "seatrials-probe"}},
            "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": BUSYBOX}]}}  # fmt: skip


DEFAULT_DENY = "default-deny"


def default_deny(namespace: str) -> list[dict]:
    """The namespace (privileged, as the suite's probes need) and a NetworkPolicy denying all ingress and egress
    of every pod in it."""
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": DEFAULT_DENY, "namespace": namespace},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
    ]  # fmt: skip

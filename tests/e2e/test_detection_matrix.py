"""Prove detection: every documented cause injected for real in the lab, the
suite run as a user runs it, and the causes it names compared with the truth.

Healthy lab, then each fault in turn (injected, judged, healed), then the
healed lab again. Each fault must be caught by the checks meant for it, with
the right cause id and the evidence that names it; nothing may fail on the
healthy or healed lab; no fault may be blamed on another cause (or on
"unknown"). A fault whose real fix leaves another behind (the front-proxy fix
leaves the authentication ConfigMap stale) is followed by that one. The matrix
is written to reports/detection-matrix.{md,svg,json}.
"""

import json
from pathlib import Path

import pytest

from seatrials import reporting
from tests.e2e.conftest import ROOT, lab

pytestmark = pytest.mark.lab

# fault -> (lab/lab fault arguments, checks that must fail naming it, text their evidence must hold)
FAULTS = {
    "ec2-source-dest-check": (["--node", "worker-1"],
                              {"test_pod_to_pod", "test_host_to_pod", "test_external_ip_backends",
                               "test_source_dest_check"}, "sourceDestCheck"),
    "sg-node-to-apiserver": ([], {"test_pod_to_apiserver_endpoint", "test_pod_to_kubernetes_service",
                                  "test_nodes_reach_apiserver_port"}, ":6444"),
    "sg-master-inbound-from-nodes": ([], {"test_host_to_pod", "test_pod_to_pod", "test_cni_traffic_between_groups"},
                                     "master-1"),
    "kubelet-cgroups": (["--node", "worker-1"], {"test_kubelet_cgroups"}, "/user/9999.user/16.session"),
    "apiserver-requestheader-allowed-names": ([], {"test_front_proxy_settings"}, "its request-header CA is the "
                                                                               "client CA"),
    "apiserver-auth-configmap-stale": ([], {"test_front_proxy_settings"}, "a front-proxy CA separate from the "
                                                                          "client CA"),
    "client-pem-not-base64": ([], {"test_kubeconfig_credentials"}, "is raw PEM text"),
    "harbor-k8s-deploy-stale-ui": ([], {"test_harbor_push_is_listed"}, "does not list"),
    "node-not-ready": (["--node", "QUIET-WORKER"], {"test_probe_running"}, "NotReady since"),
    "probe-image-unavailable": (["--node", "worker-1"], {"test_probe_running"}, "ImagePullBackOff"),
    "probe-host-port-taken": (["--node", "worker-1"], {"test_probe_running"}, "free ports"),
    "probe-admission-refused": ([], {"test_probe_running"}, "cannot create pods"),
}
SCENARIOS = ["healthy", *FAULTS, "healed"]
SUITE_ARGS = ("--harbor-timeout", "15")  # a stale Harbor is judged in 15 s, not the default 60
MATRIX = ROOT / "reports" / "detection-matrix"


@pytest.fixture(scope="module")
def matrix():
    rows: dict[str, dict] = {}
    yield rows
    write_matrix(rows)


def quiet_worker(kube) -> str:
    """A worker that runs no CoreDNS pod: stopping it must cost that node only, not the cluster's DNS."""
    core, _ = kube
    dns = {p.spec.node_name for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items}
    return next(n.metadata.name for n in core.list_node().items
                if n.metadata.name.startswith("worker") and n.metadata.name not in dns)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_detection(scenario, matrix, run_suite, kube):
    # what an earlier scenario's fix left behind is healed first, unless it is this scenario
    cleared = lab("heal", "--all", *(["--except", scenario] if scenario in FAULTS else []), check=False)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    must_fail, evidence = set(), ""
    if scenario in FAULTS:
        args, must_fail, evidence = FAULTS[scenario]
        args = [quiet_worker(kube) if a == "QUIET-WORKER" else a for a in args]
        injected = lab("fault", scenario, *args, check=False)
        assert injected.returncode == 0, injected.stdout + injected.stderr
        try:
            run = run_suite(*SUITE_ARGS)
        finally:
            healed = lab("heal", scenario, check=False)
        assert healed.returncode == 0, healed.stdout + healed.stderr
    else:
        run = run_suite(*SUITE_ARGS)
    failures = run.failures()
    matrix[scenario] = {"failures": failures, "verdict": run.signoff["verdict"],
                        "wall_seconds": run.signoff["wall_seconds"]}
    named = {cause for _, _, cause in failures}
    failed_checks = {check for check, _, _ in failures}
    if scenario in FAULTS:
        assert named == {scenario}, f"{scenario}: causes named {named}: {failures}"
        assert must_fail <= failed_checks, f"{scenario}: not caught by {must_fail - failed_checks}"
        messages = [c["message"] for c in run.signoff["checks"] if c["check"] in must_fail and c["cause"]]
        assert any(evidence in m for m in messages), f"{scenario}: no evidence with {evidence!r}: {messages[:2]}"
        assert run.returncode == 1 and run.signoff["verdict"] == "NOT SIGNED OFF"
    else:
        assert failures == [], f"{scenario}: {failures}"
        assert run.returncode == 0


def write_matrix(rows: dict[str, dict]) -> None:
    if not rows:
        return
    checks = sorted({check for r in rows.values() for check, _, _ in r["failures"]} |
                    {c for _, must, _ in FAULTS.values() for c in must})
    cells = {}
    for scenario, r in rows.items():
        for check in checks:
            named = sorted({cause for c, _, cause in r["failures"] if c == check})
            right = named == [scenario]
            cells[(scenario, check)] = (",".join(named)[:8] if named else "",
                                        "#2e7d32" if not named else "#1565c0" if right else "#c62828")
    MATRIX.parent.mkdir(parents=True, exist_ok=True)
    MATRIX.with_suffix(".svg").write_text(reporting.grid_svg(
        "seatrials detection matrix", list(rows), checks, cells,
        "rows: scenario; columns: checks. green passed, blue failed naming the injected cause, red anything else"))
    lines = ["# Detection matrix", "", "| scenario | verdict | wall s | failed checks (cases) -> cause named |",
             "|---|---|---|---|"]
    for scenario, r in rows.items():
        per_check: dict[str, set] = {}
        counts: dict[str, int] = {}
        for check, _, cause in r["failures"]:
            per_check.setdefault(check, set()).add(cause)
            counts[check] = counts.get(check, 0) + 1
        found = "; ".join(f"{c} ({counts[c]}) -> {', '.join(sorted(v))}" for c, v in sorted(per_check.items()))
        lines.append(f"| {scenario} | {r['verdict']} | {r['wall_seconds']} | {found or 'none'} |")
    MATRIX.with_suffix(".md").write_text("\n".join(lines) + "\n\n![matrix](detection-matrix.svg)\n")
    Path(MATRIX.with_suffix(".json")).write_text(json.dumps(rows, indent=2))

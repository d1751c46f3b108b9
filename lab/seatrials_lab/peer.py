"""seatrials beside Kubernetes' own e2e network tests, on the same lab in one invocation: `lab/lab bench --peer`.

The peer is the e2e test binary of the lab's own release (`go test -c k8s.io/kubernetes/test/e2e`, and its
agnhost image, `lab/build.sh --peer`), focused on the [sig-network] tests that cover the paths seatrials
proves: Networking Granular Checks pod-pod and node-pod (http), pod-Service (a ClusterIP), Services basic
endpoint, and DNS for the cluster. For the healthy lab and for each of the seven documented causes (injected
with `lab/lab fault`, healed after), both tools run once: wall time, API requests, node pairs tried, whether
each failed and what it named.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from . import cluster, faults, images, node, suite
from .layout import Paths
from .shell import LabError, run

# The seven causes of the field report (docs/causes.md), each injected in turn.
DOCUMENTED = ("ec2-source-dest-check", "sg-node-to-apiserver", "sg-master-inbound-from-nodes", "kubelet-cgroups",
              "apiserver-requestheader-allowed-names", "client-pem-not-base64", "harbor-k8s-deploy-stale-ui")
FOCUS = (r"Granular Checks: Pods should function for (intra|node)-pod communication: http |"
         r"Granular Checks: Services should function for pod-Service: http$|"
         r"Services should serve a basic endpoint from pods|"
         r"DNS should provide DNS for the cluster \[Conformance\]")
E2E_TIMEOUT = 600  # seconds: a broken cluster makes the e2e tests wait their own timeouts; a lab session stays short
STOPPED = "Suite Timeout Elapsed"  # ginkgo's last line when --ginkgo.timeout stopped the suite
NETSERVERS_MAX = 10  # the e2e framework's netserver pods: one per schedulable node, at most 10 (maxNetProxyPodsCount)
HEALTHY = "healthy"


def peer_dir(lab: cluster.Lab) -> Path:
    """e2e.test and agnhost of the lab's release, built (cached) beside its binaries."""
    built = lab.binaries / "peer"
    if not (built / "e2e.test").exists():
        done = cluster.build_sh(lab.paths, lab.record["kubernetes"], "--peer", stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise LabError(f"lab/build.sh --kubernetes {lab.record['kubernetes']} --peer failed")
    return built


def newest(listed: str, name: str) -> str:
    """The newest `name` of the e2e test images `e2e.test --list-images` lists (by tag, numerically)."""
    tagged = [ref for ref in listed.split() if re.search(rf"/e2e-test-images/{re.escape(name)}:\d", ref)]
    if not tagged:
        raise LabError(f"e2e.test --list-images names no {name} image")
    return max(tagged, key=lambda ref: [int(p) for p in re.findall(r"\d+", ref.rsplit(":", 1)[1])])


def import_e2e_images(lab: cluster.Lab, built: Path) -> list[str]:
    """agnhost (built from the release) and glibc-dns-testing (the DNS test's second querier), as the e2e tests
    of this release name them, into every node."""
    listed = run([str(built / "e2e.test"), "--list-images"], timeout=60)
    made = [images.e2e_image(newest(listed, "agnhost"), built / "agnhost"),
            images.e2e_image(newest(listed, "glibc-dns-testing"))]
    archives = [images.archived(lab.paths, image) for image in made]
    for n in lab.nodes:
        node.import_images(lab.paths, n, archives)
    return [image.ref for image in made]


# ---------------------------------------------------------------- API requests, as the e2e client logs them
# client-go logs every response at -v=6 (transport/round_trippers.go): `"Response" verb="GET" url=... status=...`
RESPONSE = re.compile(r'"Response" verb="')


def client_requests(log: str) -> int | None:
    """The e2e binary's own API requests: its client's responses logged at -v=6 (kubectl it runs as a
    subprocess logs none; the e2e tests here make their calls through the client). None where no response was
    logged (a run that never reached the apiserver, or a release whose client logs otherwise)."""
    return len(RESPONSE.findall(log)) or None


# ---------------------------------------------------------------- the two tools
def run_e2e(lab: cluster.Lab, built: Path, reports: Path) -> dict:
    targets = schedulable(lab.kubectl.json("get", "nodes"))
    reports.mkdir(parents=True, exist_ok=True)
    env = suite.suite_env(lab.paths)
    argv = [str(built / "e2e.test"), f"--kubeconfig={env['KUBECONFIG']}", "--provider=skeleton",
            f"--kubectl-path={lab.binaries / 'kubectl'}", f"--ginkgo.focus={FOCUS}", "--ginkgo.no-color",
            f"--report-dir={reports}", "--dump-logs-on-failure=false", f"--ginkgo.timeout={E2E_TIMEOUT}s",
            "--v=6", "--ginkgo.v"]  # every response logged, passed tests' too (ginkgo keeps them otherwise)
    started = time.monotonic()
    with open(reports / "e2e.log", "w") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=E2E_TIMEOUT + 300)
    wall = time.monotonic() - started
    tests = junit_cases(reports)
    failed = {name: message for name, message in tests.items() if message is not None}
    text = (reports / "e2e.log").read_text(errors="replace")
    return {"tool": "e2e", "wall_seconds": round(wall, 1), "exit": done.returncode, "stopped": STOPPED in text,
            "api_requests": client_requests(text),
            "pairs": e2e_pairs(tests, targets), "tests": len(tests),
            "failed": bool(failed) or done.returncode != 0,
            "named": [f"{name}: {message}" for name, message in failed.items()]
            or ([] if done.returncode == 0 else [last_lines(reports / "e2e.log")])}


def schedulable(nodes: dict) -> int:
    """The e2e framework's netserver targets: Ready nodes without a NoSchedule/NoExecute taint, at most 10."""
    def ok(n: dict) -> bool:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        tainted = any(t["effect"] in ("NoSchedule", "NoExecute") for t in n["spec"].get("taints", []))
        return ready and not tainted and not n["spec"].get("unschedulable")
    return min(sum(map(ok, nodes["items"])), NETSERVERS_MAX)


def e2e_pairs(tests: dict[str, str | None], targets: int) -> int:
    """Node pairs the e2e tests tried: each Granular Check dials from one node to the netserver on every target
    (counted per test, so a pair two tests share counts twice: the peer's best case)."""
    return sum("Granular Checks" in name for name in tests) * targets


def seatrials_pairs(signoff: dict) -> int:
    """Distinct ordered (source node, target node) pairs seatrials measured, over every path between nodes."""
    matrix = signoff["matrix"]
    nodes = {source for kind in matrix.values() for source in kind["sources"]}
    return len({(source, target) for kind in matrix.values() for source, row in kind["rows"].items()
                for target, code in zip(kind["targets"], row, strict=True) if target in nodes and code not in " -"})


def junit_cases(reports: Path) -> dict[str, str | None]:
    """Test name (without ginkgo's [It] and labels) -> None (passed) or the first 160 characters of its failure,
    from the e2e binary's JUnit files: the [sig-network] tests that ran, and any other node that failed (a
    failed [SynchronizedBeforeSuite] skips every test)."""
    cases = {}
    for path in sorted(reports.glob("junit*.xml")):
        for case in ET.parse(path).getroot().iter("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            name = case.get("name", "")
            if case.find("skipped") is not None or (failure is None and "[sig-network]" not in name):
                continue
            short = re.sub(r"^(\[[^]]*\] )+|( \[[^]]*\])+$", "", name)
            cases[short] = None if failure is None else " ".join((failure.get("message") or failure.text or "")
                                                                 .split())[:160]
    return cases


def last_lines(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-2:])[:200]


def run_seatrials(lab: cluster.Lab, scenario: str, reports: Path) -> dict:
    row = suite.bench_runs(lab.paths, scenario, 1, keep=reports)[0]
    signoff = json.loads((Path(row["reports"]) / "signoff.json").read_text())
    return {"tool": "seatrials", "wall_seconds": row["wall_seconds"], "api_requests": row["api_requests"],
            "pairs": seatrials_pairs(signoff), "tests": sum(row["outcomes"].values()),
            "failed": row["verdict"] != suite.SIGNED_OFF,
            "named": [c["id"] for c in signoff["causes"]] or row["failed"][:1] or signoff["verdict_reasons"][:1]}


# ---------------------------------------------------------------- the bench
def scenarios(text: str) -> tuple[str, ...]:
    """--scenarios: a comma list of `healthy` and documented cause ids, in the order given (default: all)."""
    chosen = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if unknown := [s for s in chosen if s not in (HEALTHY, *DOCUMENTED)]:
        raise ValueError(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join((HEALTHY, *DOCUMENTED))})")
    if not chosen:
        raise ValueError("--scenarios: empty")
    return chosen


def bench(paths: Paths, shape: suite.Shape, chosen: tuple[str, ...] = (HEALTHY, *DOCUMENTED)) -> list[dict]:
    """Both tools on the healthy lab and with each documented cause injected (healed after), for the scenarios
    chosen: several short lab sessions can split the whole bench between them."""
    rows = []
    with suite.lab_up(paths, shape) as was_up:
        lab = cluster.running(paths)
        if was_up and (active := faults.active(paths)):
            raise LabError(f"faults are active ({', '.join(active)}): the comparison needs a healed lab")
        built = peer_dir(lab)
        print(f"lab: peer: {', '.join(import_e2e_images(lab, built))} imported into every node", file=sys.stderr,
              flush=True)
        size = f"{len(lab.masters)}+{len(lab.nodes) - len(lab.masters)}"
        out = paths.lab.parent / "reports" / "peer" / size  # e.g. reports/peer/1+2/healthy/{seatrials,e2e}
        for scenario in chosen:
            if scenario != HEALTHY:
                print(f"lab: {scenario}: {faults.inject(lab, scenario)}", file=sys.stderr, flush=True)
            try:
                shown(rows, scenario, run_seatrials(lab, scenario, out / scenario / "seatrials"))
                shown(rows, scenario, run_e2e(lab, built, out / scenario / "e2e"))
            finally:
                if scenario != HEALTHY:
                    print(f"lab: {scenario}: {faults.heal(lab, scenario)}", file=sys.stderr, flush=True)
                    faults.heal_all(lab)  # and what a heal leaves (the stale front-proxy ConfigMap)
    return rows


def shown(rows: list[dict], scenario: str, tool: dict) -> None:
    """A tool's row, added and printed as soon as it is done."""
    rows.append({"scenario": scenario, **tool})
    print(f"lab: peer: {table_line(rows[-1])}", file=sys.stderr, flush=True)


def table_line(r: dict) -> str:
    requests = "-" if r["api_requests"] is None else str(r["api_requests"])
    named = "; ".join(r["named"]) if r["failed"] else ""
    wall = f"{r['wall_seconds']:.1f}" + ("+" if r.get("stopped") else "")
    return (f"{r['scenario']:38} {r['tool']:9} {wall:>7} {requests:>7} {r['pairs']:>5} "
            f"{'FAILED' if r['failed'] else 'passed':7} {named}")


def table(rows: list[dict]) -> str:
    """One line per scenario and tool, then per scenario e2e's wall time over seatrials' (>= where e2e was
    stopped by its time limit: its tests were not done; wall time marked +), then their median."""
    lines = [f"{'scenario':38} {'tool':9} {'wall s':>7} {'API':>7} {'pairs':>5} {'result':7} named"]
    lines += [table_line(r) for r in rows]
    speedups = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        mine = {r["tool"]: r for r in rows if r["scenario"] == scenario}
        if {"seatrials", "e2e"} <= mine.keys() and mine["seatrials"]["wall_seconds"]:
            speedups.append(mine["e2e"]["wall_seconds"] / mine["seatrials"]["wall_seconds"])
            at_least = ">= " if mine["e2e"].get("stopped") else ""
            lines.append(f"{scenario}: e2e / seatrials wall time {at_least}{speedups[-1]:.1f}")
    if speedups:
        lines.append(f"median e2e / seatrials wall time: {statistics.median(speedups):.1f}")
    return "\n".join(lines)

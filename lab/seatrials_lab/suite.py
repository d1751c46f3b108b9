"""The seatrials suite run against the lab: `lab/lab run-suite` (the lab's main job) and
`lab/lab bench` (the suite's speed on a healthy lab and on one whose pod network is broken).

Both use the Python that runs lab/lab, which must have seatrials' dependencies installed, and
leave the lab as they found it: a lab they brought up they take down again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from . import cluster, faults, kwok
from .layout import Paths, pod_ips_between_nodes
from .shell import LabError

DEFAULT_MASTERS, DEFAULT_WORKERS = 1, 2


@dataclass(frozen=True)
class Shape:
    """The lab asked for on the command line; None: as the running lab, or the default."""

    masters: int | None = None
    workers: int | None = None
    cni: str | None = None
    subnets: int | None = None
    kubernetes: str | None = None  # a minor or a release; None: the running lab's, else the default release
    layout: str | None = None  # hard-way or kubeadm

    def resolved(self, record: dict | None = None) -> tuple[int, int, str, int, str]:
        """(masters, workers, cni, subnets, layout): what was asked, else the running lab's, else the default."""
        record = record or {"masters": DEFAULT_MASTERS, "workers": DEFAULT_WORKERS}
        return (
            self.masters or record["masters"],
            record["workers"] if self.workers is None else self.workers,
            self.cni or record.get("cni", "native"),
            self.subnets or record.get("subnets", 1),
            self.layout or cluster.layout_of(record),
        )


def describe(masters: int, workers: int, cni: str, subnets: int, layout: str) -> str:
    return f"{masters} master(s), {workers} worker(s), cni {cni}, {subnets} subnet(s), layout {layout}"


BROKEN_POD_NETWORK = "ec2-source-dest-check"  # on every node: no pod IP crosses the VPC
HEALTHY = "healthy"  # the bench's scenarios
BROKEN = f"pod network broken ({BROKEN_POD_NETWORK} on every node)"
NOT_READY = "one worker NotReady (its kubelet stopped)"
FAKE_BROKEN = "pod network broken (stand-in: every fake node's pod IPs dropped)"
SIGNED_OFF = "SIGNED OFF"  # the suite's verdict for a healthy cluster (signoff.json)
# seatrials bench's timings, in the order of a run
TOP_ENDPOINTS = 8  # endpoints named per scenario in the bench's table
PHASES = ("collect", "deploy", "ready", "measure", "diagnose", "checks", "report")


def build(paths: Paths, kubernetes: str | None = None) -> None:
    """lab/build.sh: returns at once when the binaries are cached, builds them otherwise."""
    cluster.build_dir(paths, kubernetes)  # a version build.sh cannot name: its one line, before anything runs
    done = cluster.build_sh(paths, kubernetes, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        command = " ".join(["lab/build.sh", *cluster.build_args(kubernetes)])
        raise LabError(f"{command} failed (exit {done.returncode})")


@contextlib.contextmanager
def lab_up(paths: Paths, shape: Shape, keep: bool = False) -> Iterator[bool]:
    """The lab up in the shape and Kubernetes version asked for (built first unless cached); yields whether
    it was already up. A lab brought up here is taken down on the way out (after a failure or Ctrl-C too)
    unless `keep`."""
    record = cluster.load_record(paths)
    if record is not None:
        running = Shape().resolved(record)
        if shape.resolved(record) != running:
            raise LabError(
                f"the lab is up with {describe(*running)}, not {describe(*shape.resolved(record))}: "
                "lab/lab down first, or leave out --masters/--workers/--cni/--subnets/--layout"
            )
        kubernetes = shape.kubernetes
        if kubernetes and cluster.build_dir(paths, kubernetes) != cluster.binaries_of(paths, record):
            raise LabError(f"the lab is up with Kubernetes {record.get('kubernetes')}, not {kubernetes}: "
                           "lab/lab down first, or leave out --kubernetes")
        cluster.running(paths)  # up and ready, or a one-line error
        yield True
        return
    build(paths, shape.kubernetes)
    try:
        masters, workers, cni, subnets, layout = shape.resolved()
        cluster.up(paths, masters, workers, cni, subnets, shape.kubernetes, layout)
        yield False
    finally:
        if not keep:
            cluster.down(paths)
            print("lab: lab is down again", file=sys.stderr)


def suite_env(paths: Paths) -> dict[str, str]:
    return {**os.environ, **cluster.env_values(paths)}


def run_suite(paths: Paths, shape: Shape, keep: bool, pytest_args: list[str]) -> int:
    """Build (cached), bring the lab up unless it is, run `pytest suites/` against it with reports in
    the repository's reports/, take down a lab brought up here unless --keep; pytest's exit code."""
    with lab_up(paths, shape, keep) as was_up:
        if was_up:
            print("lab: the lab was already up; it stays up", file=sys.stderr)
        return _pytest_suites(paths, paths.lab.parent / "reports", pytest_args)


def _pytest_suites(paths: Paths, reports: Path, pytest_args: list[str]) -> int:
    """`python -m pytest suites/` from the repository against the lab up now; pytest's exit code."""
    argv = [sys.executable, "-m", "pytest", "suites/", "--reports-dir", str(reports), *pytest_args]
    print(f"lab: running {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    return subprocess.run(argv, cwd=paths.lab.parent, env=suite_env(paths)).returncode


def releases(paths: Paths) -> list[str]:
    """The release pinned for each minor in lab/build/kubernetes/releases, the default first."""
    lines = (paths.lab / "build" / "kubernetes" / "releases").read_text().splitlines()
    return [line.split()[1] for line in lines if line.strip() and not line.startswith("#")]


def matrix(paths: Paths, shape: Shape, versions: list[str] | None, pytest_args: list[str]) -> list[dict]:
    """For each version (default: every pinned release) in turn: build (cached), up, `pytest suites/`
    with reports in reports/kubernetes-<version>/, every documented fault injected, verified and
    healed, down. One row of figures per version; a version whose lab fails says why in its row,
    and the next one still runs."""
    if cluster.load_record(paths) is not None:
        raise LabError("a lab is up: the matrix brings up each version itself (lab/lab down first)")
    rows = []
    for version in versions or releases(paths):
        row = {"version": version, "build_seconds": None, "ready_seconds": None, "suite_seconds": None,
               "faults": "-"}
        started = time.monotonic()
        try:
            build(paths, version)  # timed apart from `up`, which then finds it cached
            row["build_seconds"] = round(time.monotonic() - started, 1)
            with lab_up(paths, replace(shape, kubernetes=version)):
                record = cluster.load_record(paths)
                row.update(version=record["kubernetes"], ready_seconds=record["ready_seconds"])
                reports = paths.lab.parent / "reports" / f"kubernetes-{record['kubernetes']}"
                started = time.monotonic()
                _pytest_suites(paths, reports, pytest_args)  # its verdict is read from the sign-off it writes
                row["suite_seconds"] = round(time.monotonic() - started, 1)
                row["faults"] = fault_round(cluster.running(paths))
            row["verdict"], row["outcomes"] = _signoff(reports)
        except LabError as e:
            row.update(verdict="lab failed", outcomes=str(e))
        print(f"lab: matrix: {matrix_table([row]).splitlines()[-1]}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def proved(row: dict) -> bool:
    """A matrix row whose lab signed off and took every fault its shape can have."""
    done, _, total = row["faults"].partition(" ")[0].partition("/")
    return row["verdict"] == SIGNED_OFF and done == total != ""


def fault_round(lab: cluster.Lab) -> str:
    """Inject, verify and heal in turn every fault the lab's shape can have, and what a heal leaves behind:
    "N/N", or how many did and the first that did not."""
    failed = []
    applicable = [cause for cause, f in faults.FAULTS.items() if not f.not_in(lab)]
    for cause in applicable:
        for step in (faults.inject, faults.heal):
            try:
                print(f"lab: matrix: {cause}: {step(lab, cause)}", file=sys.stderr, flush=True)
            except LabError as e:
                failed.append(f"{cause} {step.__name__}: {e}")
    for cause, line in faults.heal_all(lab):
        print(f"lab: matrix: {cause}: {line}", file=sys.stderr, flush=True)
    done = len(applicable) - len({f.split()[0] for f in failed})
    return f"{done}/{len(applicable)}" + (f" ({failed[0]})" if failed else "")


def _signoff(reports: Path) -> tuple[str, str]:
    """The suite's verdict and its outcome counts, from the sign-off it wrote."""
    try:
        signoff = json.loads((reports / "signoff.json").read_text())
    except (OSError, ValueError):
        return "no sign-off written", ""
    return signoff["verdict"], ", ".join(f"{n} {outcome}" for outcome, n in sorted(signoff["outcomes"].items()))


def matrix_table(rows: list[dict]) -> str:
    def shown(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds:.1f}"

    lines = [f"{'kubernetes':16} {'build s':>8} {'up to ready s':>13} {'suite s':>8} {'faults':>6}  "
             "verdict (outcomes)"]
    for r in rows:
        lines.append(f"{r['version']:16} {shown(r['build_seconds']):>8} {shown(r['ready_seconds']):>13} "
                     f"{shown(r['suite_seconds']):>8} {r['faults']:>6}  {r['verdict']} ({r['outcomes']})")  # fmt: skip
    return "\n".join(lines)


def bench(paths: Paths, shape: Shape, runs: int = 3, fake_nodes: int = 0) -> list[dict]:
    """`seatrials bench --runs N` on the healthy lab, then with the pod network fully broken (where the
    source/destination check breaks it: not over VXLAN), then with one worker NotReady; one row per run.
    With fake nodes: on that many KWOK nodes, healthy and with every fake node's pod IPs dropped."""
    with lab_up(paths, shape) as was_up:
        if was_up and (active := faults.active(paths)):
            raise LabError(f"faults are active ({', '.join(active)}): the healthy figures need a healed lab")
        if fake_nodes:
            return _bench_fake(cluster.running(paths), runs, fake_nodes)
        rows = bench_runs(paths, HEALTHY, runs)
        lab = cluster.running(paths)
        scenarios = [(BROKEN, BROKEN_POD_NETWORK, "all"), (NOT_READY, "node-not-ready", None)]
        if not pod_ips_between_nodes(lab.cni):
            print(f"lab: {lab.cni} carries pods over VXLAN: {BROKEN_POD_NETWORK} does not break it", file=sys.stderr)
            scenarios = scenarios[1:]
        for label, cause, node in scenarios:
            node = node or quiet_worker(lab)
            if node is None:
                continue
            print(f"lab: {cause}: {faults.inject(lab, cause, node)}", file=sys.stderr)
            try:
                rows += bench_runs(paths, label, runs)
            finally:
                print(f"lab: {cause}: {faults.heal(lab, cause)}", file=sys.stderr)
    return rows


def _bench_fake(lab: cluster.Lab, runs: int, count: int) -> list[dict]:
    """The bench on `count` KWOK nodes (their probes answered by the labelled stand-in), healthy and broken;
    KWOK and its nodes are removed again afterwards."""
    fakes = kwok.start(lab, count)
    try:
        print(f"lab: {kwok.describe(fakes)}", file=sys.stderr, flush=True)
        rows = bench_runs(lab.paths, HEALTHY, runs, kwok.SUITE_ARGS)
        kwok.break_pod_network(lab, [f.name for f in fakes])
        rows += bench_runs(lab.paths, FAKE_BROKEN, runs, kwok.SUITE_ARGS)
    finally:
        kwok.stop(lab)
    return rows


def quiet_worker(lab: cluster.Lab) -> str | None:
    """The last worker that runs no CoreDNS pod: stopping it tells what a NotReady node costs, nothing else."""
    dns = {p["spec"].get("nodeName") for p in lab.kubectl.json("get", "pods", "-n", "kube-system", "-l",
                                                                "k8s-app=kube-dns")["items"]}
    workers = [n.name for n in lab.nodes if not n.is_master and n.name not in dns]
    return workers[-1] if workers else None


def bench_reports(paths: Paths, label: str) -> Path:
    """Where a scenario's runs keep their reports: reports/bench/<scenario>/run-<n> of the repository."""
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return paths.lab.parent / "reports" / "bench" / slug


BENCH_RUN_LIMIT = 1800  # seconds a run of the suite may take in a bench (500 fake nodes: 344 s)


def seatrials_installed() -> None:
    """The bench runs `python -m seatrials.cli` with this Python: say so at once when seatrials is not installed
    for it (from the checkout alone its suites, a package only once installed, are missing halfway through)."""
    try:
        found = importlib.util.find_spec("seatrials.cli") is not None
    except ModuleNotFoundError:  # no seatrials package at all
        found = False
    if not found:
        raise LabError(f"seatrials is not installed for {sys.executable}: run the bench with the venv's Python "
                       "(.venv/bin/python lab/lab bench ...; make venv makes it)")


def bench_runs(paths: Paths, label: str, runs: int, pytest_args: list[str] = (),
               keep: Path | None = None) -> list[dict]:
    """`seatrials bench --json` against the lab up now: one row per run, its reports kept in `keep` (default
    reports/bench/<scenario>)."""
    keep = keep or bench_reports(paths, label)
    argv = [sys.executable, "-m", "seatrials.cli", "bench", "--json", "--label", label, "--runs", str(runs),
            "--keep", str(keep), "--", *pytest_args]
    print(f"lab: bench: {label}, {runs} run(s), reports in {keep}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(argv, cwd=paths.lab.parent, env=suite_env(paths), capture_output=True, text=True,
                              timeout=BENCH_RUN_LIMIT * runs)
    except subprocess.TimeoutExpired:
        raise LabError(f"seatrials bench ({label}) did not end within {BENCH_RUN_LIMIT * runs} s") from None
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not rows:
        why = (done.stderr or done.stdout).strip()[-300:]
        raise LabError(f"seatrials bench failed (exit {done.returncode}): {why}")
    return rows


def bench_table(rows: list[dict]) -> str:
    """Per scenario: median wall time (min to max), API requests (min to max), verdicts;
    then the broken/healthy ratio of the medians (the suite's promise: at most 2)."""
    lines = [f"{'scenario':58} {'nodes':>5} {'runs':>4} {'wall s: median (min-max)':>25} "
             f"{'API requests':>12}  verdicts"]
    medians = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        walls = sorted(r["wall_seconds"] for r in mine)
        requests = sorted(r["api_requests"] for r in mine)
        medians[label] = statistics.median(walls)
        verdicts = ", ".join(sorted({r["verdict"] for r in mine}))
        wall = f"{medians[label]:.1f} ({walls[0]}-{walls[-1]})"
        requested = f"{requests[0]}-{requests[-1]}" if requests[0] != requests[-1] else str(requests[0])
        lines.append(f"{label:58} {mine[0]['nodes']:>5} {len(mine):>4} {wall:>25} {requested:>12}  {verdicts}")
    for label in (BROKEN, FAKE_BROKEN, NOT_READY):
        if medians.get(HEALTHY) and label in medians:
            lines.append(f"{label} / healthy (medians): {medians[label] / medians[HEALTHY]:.2f}")
    for label in medians:  # where the time goes, what the run weighs (rows of seatrials bench have it)
        mine = [r for r in rows if r["label"] == label and r.get("timings")]
        if mine:
            phases = {k: statistics.median(r["timings"][k] or 0 for r in mine) for k in PHASES
                      if k in mine[0]["timings"]}
            lines.append(f"{label}: phases (median s) " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
                         + f"; peak RSS {max(r['peak_rss_mib'] for r in mine)} MiB; "
                         f"JUnit {max(r['junit_mib'] or 0 for r in mine)} MiB")
    for label in medians:  # where the requests go (the first run's count per endpoint, the most first)
        if by := next((r.get("api_requests_by_endpoint") for r in rows if r["label"] == label), None):
            lines.append(f"{label}: API requests by endpoint (run 1) "
                         + ", ".join(f"{endpoint} {n}" for endpoint, n in list(by.items())[:TOP_ENDPOINTS]))
    for r in rows:  # a healthy lab must sign off every time: say what failed, and where its reports are
        if r["label"] == HEALTHY and r["verdict"] != SIGNED_OFF:
            lines.append(f"{HEALTHY} run {r['run']}: {r['verdict']} (reports {r.get('reports') or 'not kept'}): "
                         + "; ".join(r.get("failed") or ["no failed check"]))
    return "\n".join(lines)

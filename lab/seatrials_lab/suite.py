"""The seatrials suite run against the lab: `lab/lab run-suite` (the lab's main job) and
`lab/lab bench` (the suite's speed on a healthy lab and on one whose pod network is broken).

Both use the Python that runs lab/lab, which must have seatrials' dependencies installed, and
leave the lab as they found it: a lab they brought up they take down again.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator

from . import cluster, faults
from .layout import Paths
from .shell import LabError

DEFAULT_MASTERS, DEFAULT_WORKERS = 1, 2
BROKEN_POD_NETWORK = "ec2-source-dest-check"  # on every node: no pod IP crosses the VPC
HEALTHY = "healthy"  # the bench's scenarios
BROKEN = f"pod network broken ({BROKEN_POD_NETWORK} on every node)"
NOT_READY = "one worker NotReady (its kubelet stopped)"


def build(paths: Paths) -> None:
    """lab/build.sh: returns at once when the binaries are cached, builds them otherwise."""
    done = subprocess.run([str(paths.lab / "build.sh")], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise LabError(f"lab/build.sh failed (exit {done.returncode})")


@contextlib.contextmanager
def lab_up(paths: Paths, masters: int | None, workers: int | None, keep: bool = False) -> Iterator[bool]:
    """The lab up at the size asked for; yields whether it was already up. A lab brought up here is
    taken down on the way out (after a failure or Ctrl-C too) unless `keep`."""
    record = cluster.load_record(paths)
    if record is not None:
        asked = (masters or record["masters"], workers if workers is not None else record["workers"])
        if asked != (record["masters"], record["workers"]):
            raise LabError(
                f"the lab is up with {record['masters']} master(s) and {record['workers']} worker(s), not "
                f"{asked[0]} and {asked[1]}: lab/lab down first, or leave out --masters/--workers"
            )
        cluster.running(paths)  # up and ready, or a one-line error
        yield True
        return
    try:
        cluster.up(paths, masters or DEFAULT_MASTERS, DEFAULT_WORKERS if workers is None else workers)
        yield False
    finally:
        if not keep:
            cluster.down(paths)
            print("lab: lab is down again", file=sys.stderr)


def suite_env(paths: Paths) -> dict[str, str]:
    return {**os.environ, **cluster.env_values(paths)}


def run_suite(paths: Paths, masters: int | None, workers: int | None, keep: bool, pytest_args: list[str]) -> int:
    """Build (cached), bring the lab up unless it is, run `pytest suites/` against it with reports in
    the repository's reports/, take down a lab brought up here unless --keep; pytest's exit code."""
    build(paths)
    repository = paths.lab.parent
    with lab_up(paths, masters, workers, keep) as was_up:
        if was_up:
            print("lab: the lab was already up; it stays up", file=sys.stderr)
        argv = [sys.executable, "-m", "pytest", "suites/", "--reports-dir", str(repository / "reports"), *pytest_args]
        print(f"lab: running {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        return subprocess.run(argv, cwd=repository, env=suite_env(paths)).returncode


def bench(paths: Paths, masters: int | None, workers: int | None, runs: int = 3) -> list[dict]:
    """`seatrials bench --runs N` on the healthy lab, then with the pod network fully broken, then with one
    worker NotReady; returns one row per run."""
    build(paths)
    with lab_up(paths, masters, workers) as was_up:
        if was_up and (active := faults.active(paths)):
            raise LabError(f"faults are active ({', '.join(active)}): the healthy figures need a healed lab")
        rows = _bench_runs(paths, HEALTHY, runs)
        lab = cluster.running(paths)
        for label, cause, node in ((BROKEN, BROKEN_POD_NETWORK, "all"), (NOT_READY, "node-not-ready", None)):
            node = node or quiet_worker(lab)
            if node is None:
                continue
            print(f"lab: {cause}: {faults.inject(lab, cause, node)}", file=sys.stderr)
            try:
                rows += _bench_runs(paths, label, runs)
            finally:
                print(f"lab: {cause}: {faults.heal(lab, cause)}", file=sys.stderr)
    return rows


def quiet_worker(lab: cluster.Lab) -> str | None:
    """The last worker that runs no CoreDNS pod: stopping it tells what a NotReady node costs, nothing else."""
    dns = {p["spec"].get("nodeName") for p in lab.kubectl.json("get", "pods", "-n", "kube-system", "-l",
                                                                "k8s-app=kube-dns")["items"]}
    workers = [n.name for n in lab.nodes if not n.is_master and n.name not in dns]
    return workers[-1] if workers else None


def _bench_runs(paths: Paths, label: str, runs: int) -> list[dict]:
    argv = [sys.executable, "-m", "seatrials.cli", "bench", "--json", "--label", label, "--runs", str(runs)]
    print(f"lab: bench: {label}, {runs} run(s)", file=sys.stderr, flush=True)
    done = subprocess.run(argv, cwd=paths.lab.parent, env=suite_env(paths), capture_output=True, text=True)
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
    for label in (BROKEN, NOT_READY):
        if medians.get(HEALTHY) and label in medians:
            lines.append(f"{label} / healthy (medians): {medians[label] / medians[HEALTHY]:.2f}")
    return "\n".join(lines)

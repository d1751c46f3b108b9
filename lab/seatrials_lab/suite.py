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
from dataclasses import dataclass

from . import cluster, faults
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

    def resolved(self, record: dict | None = None) -> tuple[int, int, str, int]:
        """(masters, workers, cni, subnets): what was asked, else the running lab's, else the default."""
        record = record or {"masters": DEFAULT_MASTERS, "workers": DEFAULT_WORKERS}
        return (
            self.masters or record["masters"],
            record["workers"] if self.workers is None else self.workers,
            self.cni or record.get("cni", "native"),
            self.subnets or record.get("subnets", 1),
        )


def describe(masters: int, workers: int, cni: str, subnets: int) -> str:
    return f"{masters} master(s), {workers} worker(s), cni {cni}, {subnets} subnet(s)"
BROKEN_POD_NETWORK = "ec2-source-dest-check"  # on every node: no pod IP crosses the VPC
HEALTHY = "healthy"  # the bench's two scenarios
BROKEN = f"pod network broken ({BROKEN_POD_NETWORK} on every node)"


def build(paths: Paths) -> None:
    """lab/build.sh: returns at once when the binaries are cached, builds them otherwise."""
    done = subprocess.run([str(paths.lab / "build.sh")], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise LabError(f"lab/build.sh failed (exit {done.returncode})")


@contextlib.contextmanager
def lab_up(paths: Paths, shape: Shape, keep: bool = False) -> Iterator[bool]:
    """The lab up in the shape asked for; yields whether it was already up. A lab brought up here is
    taken down on the way out (after a failure or Ctrl-C too) unless `keep`."""
    record = cluster.load_record(paths)
    if record is not None:
        running = Shape().resolved(record)
        if shape.resolved(record) != running:
            raise LabError(
                f"the lab is up with {describe(*running)}, not {describe(*shape.resolved(record))}: "
                "lab/lab down first, or leave out --masters/--workers/--cni/--subnets"
            )
        cluster.running(paths)  # up and ready, or a one-line error
        yield True
        return
    try:
        cluster.up(paths, *shape.resolved())
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
    build(paths)
    repository = paths.lab.parent
    with lab_up(paths, shape, keep) as was_up:
        if was_up:
            print("lab: the lab was already up; it stays up", file=sys.stderr)
        argv = [sys.executable, "-m", "pytest", "suites/", "--reports-dir", str(repository / "reports"), *pytest_args]
        print(f"lab: running {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        return subprocess.run(argv, cwd=repository, env=suite_env(paths)).returncode


def bench(paths: Paths, shape: Shape, runs: int = 3) -> list[dict]:
    """`seatrials bench --runs N` on the healthy lab, then with the pod network fully broken (where the
    source/destination check breaks it: not over VXLAN); returns one row per run."""
    build(paths)
    with lab_up(paths, shape) as was_up:
        if was_up and (active := faults.active(paths)):
            raise LabError(f"faults are active ({', '.join(active)}): the healthy figures need a healed lab")
        rows = _bench_runs(paths, HEALTHY, runs)
        lab = cluster.running(paths)
        if not pod_ips_between_nodes(lab.cni):
            print(f"lab: {lab.cni} carries pods over VXLAN: {BROKEN_POD_NETWORK} does not break it; "
                  "healthy runs only", file=sys.stderr)  # fmt: skip
            return rows
        print(f"lab: {BROKEN_POD_NETWORK}: {faults.inject(lab, BROKEN_POD_NETWORK, 'all')}", file=sys.stderr)
        try:
            rows += _bench_runs(paths, BROKEN, runs)
        finally:
            print(f"lab: {BROKEN_POD_NETWORK}: {faults.heal(lab, BROKEN_POD_NETWORK)}", file=sys.stderr)
    return rows


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
    if medians.get(HEALTHY) and BROKEN in medians:
        lines.append(f"broken / healthy (medians): {medians[BROKEN] / medians[HEALTHY]:.2f}")
    return "\n".join(lines)

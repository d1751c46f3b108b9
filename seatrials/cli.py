"""`seatrials` command: the suite, and the helpers around it.

  seatrials run [PYTEST-ARGS]  the whole suite, installed or in a checkout (pytest's own arguments
                              and the seatrials options: seatrials run --kubeconfig PATH)
  seatrials images            the images the suite needs, and how to mirror them
  seatrials cleanup           remove what earlier runs left in a cluster
  seatrials java-credentials  the kubeconfig's credentials as a Java (fabric8) client needs them
  seatrials bench             run the suite and print wall time and API requests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from seatrials.options import DEFAULT_PROBE_IMAGE, Settings, default_kubeconfig

SUITES = Path(str(resources.files("seatrials.suites")))  # suites/ in the checkout
# The options must be known before pytest parses the command line (a conftest inside an installed package
# is read too late); xunit1 keeps each case's cause in the JUnit file; no cache inside the installed package;
# no assertion rewriting: the suite asserts nothing (every check returns a Result), and rewriting its modules and
# pytest's plugins was redone on every run where bytecode is not written (PYTHONDONTWRITEBYTECODE, read-only).
RUN = ["-p", "seatrials.options", "-o", "junit_family=xunit1", "-p", "no:cacheprovider", "--assert=plain"]


def run(pytest_args: list[str]) -> int:
    """pytest on the installed suite, in this process (Ctrl-C and SIGTERM reach pytest as they would)."""
    argv = [sys.executable, "-m", "pytest", *RUN, str(SUITES), *pytest_args]
    os.execv(sys.executable, argv)
    return 127  # not reached: execv replaces this process


def images(args) -> int:
    settings = Settings(kubeconfig=None, context=None, probe_image=args.probe_image,
                        image_registry=args.image_registry)
    print(settings.image)
    if settings.image != args.probe_image:
        print(f"# mirror it once, from a machine that can reach both registries:\n"
              f"#   crane copy {args.probe_image} {settings.image}\n"
              f"# or: docker pull {args.probe_image} && docker tag {args.probe_image} {settings.image} "
              f"&& docker push {settings.image}", file=sys.stderr)
    return 0


def cleanup(args) -> int:
    from seatrials.cluster import SetupError, connect
    from seatrials.network import probes

    try:
        cluster = connect(args.kubeconfig or default_kubeconfig(), args.context)
        removed, active = probes.cleanup_leftovers(cluster, args.namespace)
    except SetupError as exc:
        print(f"seatrials: {exc}", file=sys.stderr)
        return 2
    print(f"removed {', '.join(removed) or 'nothing'}" + (f"; left the live run {active} alone" if active else ""))
    return 0


def java_credentials(args) -> int:
    from seatrials.checks import credentials

    return credentials.print_java_credentials(args.kubeconfig or default_kubeconfig(), args.context)


def bench(args) -> int:
    """Run the suite `--runs` times; print per run its wall time split into phases, API requests, the peak RSS
    of the pytest process and the verdict with the failed checks (the project's speed figures). --keep DIR
    keeps each run's reports in DIR/run-<n>."""
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="seatrials-bench-") as scratch:
            reports = Path(args.keep) / f"run-{i + 1}" if args.keep else Path(scratch)
            row = bench_run(args, reports)
        if row is None:
            print(f"seatrials bench: run {i + 1} wrote no sign-off report", file=sys.stderr)
            return 2
        rows.append({"run": i + 1, **row})
    for row in rows:
        print(json.dumps(row) if args.json else
              f"{args.label or 'run'} {row['run']}: nodes={row['nodes']} wall={row['wall_seconds']}s "
              f"api_requests={row['api_requests']} peak_rss={row['peak_rss_mib']}MiB junit={row['junit_mib']}MiB "
              f"verdict={row['verdict']} "
              f"timings={row['timings']}" + (f" failed={row['failed']}" if row["failed"] else ""))
    return 0


REPORTS_WRITTEN = re.compile(r"seatrials: reports written to .* in ([\d.]+) s")


def bench_run(args, reports: Path) -> dict | None:
    """One run of the suite: its figures from its sign-off, its stderr and the kernel's account of it."""
    cmd = [sys.executable, "-m", "pytest", *RUN, str(SUITES), "-q", "--reports-dir", str(reports),
           *(["--kubeconfig", args.kubeconfig] if args.kubeconfig else []), *args.pytest_args]
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    signoff = reports / "signoff.json"
    if not signoff.exists():
        print(f"{stdout[-2000:]}{stderr[-2000:]}(pytest exit {proc.returncode})", file=sys.stderr)
        return None
    s = json.loads(signoff.read_text())
    written = REPORTS_WRITTEN.search(stderr)
    failed = [f"{c['check']}[{c['case']}]: {c['summary'] or c['message'][:200]}" if c["case"] else
              f"{c['check']}: {c['summary'] or c['message'][:200]}"
              for c in s["checks"] if c["outcome"] in ("failed", "error")]
    return {"nodes": s["nodes"], "wall_seconds": round(wall, 1), "api_requests": s["api_requests"],
            "api_requests_by_endpoint": s["api_requests_by_endpoint"],
            "peak_rss_mib": usage.ru_maxrss // 1024, "verdict": s["verdict"], "outcomes": s["outcomes"],
            "timings": {**s["trial_timings"], "report": float(written[1]) if written else None},
            "junit_mib": round((reports / "junit.xml").stat().st_size / 2**20, 2)
            if (reports / "junit.xml").exists() else None,
            "failed": failed[:10] + ([f"and {len(failed) - 10} more"] if len(failed) > 10 else []),
            "reports": str(reports) if args.keep else "", "label": args.label}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after `run` is pytest's, options included
        return run(argv[1:])
    parser = argparse.ArgumentParser(prog="seatrials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole suite: seatrials run --kubeconfig PATH [pytest arguments]",
                   add_help=False)
    p = sub.add_parser("images", help="print the images the suite needs (after --image-registry)")
    p.add_argument("--probe-image", default=DEFAULT_PROBE_IMAGE)
    p.add_argument("--image-registry")
    p.set_defaults(func=images)
    for name, func, text in (("cleanup", cleanup, "remove namespaces and expired locks of earlier runs"),
                             ("java-credentials", java_credentials, "print *-data values a Java client needs")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--kubeconfig")
        p.add_argument("--context")
        p.set_defaults(func=func)
        if name == "cleanup":
            p.add_argument("--namespace", help="the namespace runs used (--namespace), instead of their own")
    p = sub.add_parser("bench", help="run the suite and print wall time and API request count")
    p.add_argument("--kubeconfig")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--label", default="", help="a name for the scenario printed with each row")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.add_argument("--keep", metavar="DIR", help="keep each run's reports in DIR/run-<n> (default: thrown away)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    p.set_defaults(func=bench)
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

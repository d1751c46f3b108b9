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
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from seatrials.options import DEFAULT_PROBE_IMAGE, Settings, default_kubeconfig

SUITES = Path(str(resources.files("seatrials.suites")))  # suites/ in the checkout
# The options must be known before pytest parses the command line (a conftest inside an installed package
# is read too late); xunit1 keeps each case's cause in the JUnit file; no cache inside the installed package.
RUN = ["-p", "seatrials.options", "-o", "junit_family=xunit1", "-p", "no:cacheprovider"]


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
    """Run the suite `--runs` times; print wall time and API requests per run (the project's speed figures)."""
    rows = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="seatrials-bench-") as reports:
            cmd = [sys.executable, "-m", "pytest", *RUN, str(SUITES), "-q",
                   "--reports-dir", reports, *(["--kubeconfig", args.kubeconfig] if args.kubeconfig else []),
                   *args.pytest_args]
            started = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.monotonic() - started
            signoff = Path(reports) / "signoff.json"
            if not signoff.exists():
                print(proc.stdout[-2000:] + proc.stderr[-2000:], file=sys.stderr)
                print(f"seatrials bench: run {i + 1} wrote no sign-off report (exit {proc.returncode})",
                      file=sys.stderr)
                return 2
            s = json.loads(signoff.read_text())
            rows.append({"run": i + 1, "nodes": s["nodes"], "wall_seconds": round(wall, 1),
                         "api_requests": s["api_requests"], "verdict": s["verdict"], "outcomes": s["outcomes"],
                         "trial_timings": s["trial_timings"], "label": args.label})
    for row in rows:
        print(json.dumps(row) if args.json else
              f"{args.label or 'run'} {row['run']}: nodes={row['nodes']} wall={row['wall_seconds']}s "
              f"api_requests={row['api_requests']} verdict={row['verdict']} timings={row['trial_timings']}")
    return 0


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
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    p.set_defaults(func=bench)
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

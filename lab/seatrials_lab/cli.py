"""lab/lab: the command line of the seatrials lab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cluster, faults, kwok, peer, suite
from .layout import CNIS, LAYOUTS, Paths
from .shell import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab/lab", description="A real multi-node Kubernetes cluster on this machine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring the cluster up; returns when every node is Ready and answers")
    _size_options(up, defaults=True)
    _version_option(up)
    commands.add_parser("down", help="tear everything down, leaving nothing behind (also after a failed up)")
    commands.add_parser("status", help="what runs and which faults are active; exit 0 only when everything runs")
    commands.add_parser("env", help='export lines for the suite (eval "$(lab/lab env)")')
    sync = commands.add_parser("sync-vpc", help="re-derive the VPC filter from moto's EC2 state")
    sync.add_argument("--print", action="store_true", help="print the iptables rules applied")
    python_image = commands.add_parser(
        "python-image", help="an image of this machine's Python and a venv made from it (its bin/ on PATH), into "
        "every node: for pods that run a Python program, e.g. a CronJob of the tool under test")
    python_image.add_argument("venv", type=Path, help="a venv made with this machine's Python")
    python_image.add_argument("--ref", required=True, help="the image's reference, as pods name it")

    causes = "\n".join(f"  {f.cause}: {f.what}" for f in faults.FAULTS.values())
    fault = commands.add_parser(
        "fault",
        help="inject a documented cause for real, and verify it took effect",
        description=f"Inject one documented cause into the running lab.\n\n{causes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("cause", choices=faults.FAULTS, metavar="CAUSE-ID", help="one of the ids below")
    fault.add_argument("--node", help="for faults of one node (default worker-1); 'all' for ec2-source-dest-check")
    heal = commands.add_parser("heal", help="undo an injected cause (or every one with --all), and verify")
    which = heal.add_mutually_exclusive_group(required=True)
    which.add_argument("cause", nargs="?", choices=faults.FAULTS, metavar="CAUSE-ID")
    which.add_argument("--all", action="store_true", help="heal every active fault")
    heal.add_argument("--except", dest="keep", action="append", default=[], choices=faults.FAULTS,
                      metavar="CAUSE-ID", help="with --all: leave this fault active (repeatable)")

    run_suite = commands.add_parser(
        "run-suite",
        help="build (cached), up unless up, pytest suites/ with reports in reports/, down; pytest's exit code",
    )
    _size_options(run_suite, defaults=False)
    _version_option(run_suite)
    run_suite.add_argument("--keep", action="store_true", help="leave a lab brought up here running afterwards")
    run_suite.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    bench = commands.add_parser("bench", help="the suite's wall time and API requests, healthy and pod network broken")
    _size_options(bench, defaults=False)
    _version_option(bench)
    bench.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    bench.add_argument("--peer", action="store_true",
                       help="Kubernetes' own e2e network tests beside the suite, healthy and with each documented "
                            "cause injected: one table (lab/build.sh --peer builds them)")
    bench.add_argument("--scenarios", default=",".join((peer.HEALTHY, *peer.DOCUMENTED)), metavar="LIST",
                       help="with --peer: a comma list of healthy and cause ids to run (default all), to split the "
                            "bench over several short lab sessions")
    bench.add_argument("--fake-nodes", type=int, default=0, metavar="N",
                       help="run the suite on N KWOK fake nodes instead of the real ones (lab/lab fake-nodes)")
    fake = commands.add_parser("fake-nodes", help="KWOK's fake nodes on the running lab: N registered and Ready "
                                                  "(0 removes them), their probes answered by a labelled stand-in")
    fake.add_argument("count", type=int, help="how many (3 of them the fake cluster's masters)")
    fake.add_argument("--break", dest="broken", metavar="NODES", default="",
                      help="'all' or a comma list: the stand-in drops these fake nodes' pod IPs (none: heal)")
    matrix = commands.add_parser(
        "matrix",
        help="for each Kubernetes version in turn: build (cached), up, pytest suites/ (reports in "
        "reports/kubernetes-<version>/), every fault injected and healed, down; a table of figures; "
        "exit 0 only when every version signed off and took every fault",
    )
    _size_options(matrix, defaults=True)
    matrix.add_argument("--kubernetes", action="append", metavar="VERSION",
                        help="a minor (1.37) or release (v1.37.2); repeat for several (default: every minor "
                             "lab/build/kubernetes/releases pins)")  # fmt: skip
    matrix.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")

    args = parser.parse_args(argv)
    paths = Paths.from_env()
    try:
        if args.command == "up":
            cluster.up(paths, args.masters, args.workers, args.cni, args.subnets, args.kubernetes, args.layout)
        elif args.command == "down":
            cluster.down(paths)
            print("lab is down; nothing of it remains", file=sys.stderr)
        elif args.command == "status":
            report, healthy = cluster.status(paths)
            if cluster.load_record(paths) is not None:
                report += "\n" + faults.describe_active(paths)
            print(report)  # one write: a reader that stops early (| head) does not break the pipe mid-report
            return 0 if healthy else 1
        elif args.command == "env":
            print("\n".join(cluster.env_lines(paths)))
        elif args.command == "sync-vpc":
            rules = cluster.sync_vpc(paths)
            print(rules if args.print else f"VPC filter replaced: {rules.count(chr(10) + '-A ')} rules from moto")
        elif args.command == "python-image":
            print(cluster.import_python_image(paths, args.venv, args.ref))
        elif args.command == "fault":
            lab = cluster.running(paths)
            print(f"{args.cause}: {faults.inject(lab, args.cause, args.node)}")
        elif args.command == "heal":
            lab = cluster.running(paths)
            if args.all:
                healed = faults.heal_all(lab, tuple(args.keep))
            else:
                healed = [(args.cause, faults.heal(lab, args.cause))]
            for cause, line in healed:
                print(f"{cause}: {line}")
            if not healed:
                print("no fault is active; nothing to heal")
            if left := faults.active(paths):
                print(f"still active (a heal leaves it, as the real fix does): {', '.join(left)}")
        elif args.command == "run-suite":
            return suite.run_suite(paths, _shape(args), args.keep, _pytest_args(args))
        elif args.command == "bench":
            suite.seatrials_installed()
            if args.peer:
                print(peer.table(peer.bench(paths, _shape(args), peer.scenarios(args.scenarios))))
            else:
                print(suite.bench_table(suite.bench(paths, _shape(args), args.runs, args.fake_nodes)))
        elif args.command == "fake-nodes":
            lab = cluster.running(paths)
            fakes = kwok.start(lab, args.count)
            if args.broken:
                kwok.break_pod_network(lab, kwok.chosen(fakes, args.broken))
            print(kwok.describe(fakes))
        elif args.command == "matrix":
            rows = suite.matrix(paths, _shape(args), args.kubernetes, _pytest_args(args))
            print(suite.matrix_table(rows))
            return 0 if all(map(suite.proved, rows)) else 1
    except (LabError, ValueError) as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted (lab/lab down cleans up a partial lab)", file=sys.stderr)
        return 130
    return 0


def _pytest_args(args: argparse.Namespace) -> list[str]:
    return args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args


def _version_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--kubernetes", metavar="VERSION",
                         help="a minor (1.37) or a release (v1.37.2) to run; default: the first of "
                              "lab/build/kubernetes/releases")  # fmt: skip


def _size_options(command: argparse.ArgumentParser, defaults: bool) -> None:
    """--masters/--workers/--cni/--subnets/--layout; without defaults, None means: as the running lab, or the
    default (1 master, 2 workers, native, 1 subnet, hard-way)."""
    command.add_argument("--masters", type=int, choices=(1, 3), default=suite.DEFAULT_MASTERS if defaults else None)
    command.add_argument("--workers", type=int, default=suite.DEFAULT_WORKERS if defaults else None)
    command.add_argument("--cni", choices=CNIS, default="native" if defaults else None,
                         help="how pods reach each other between nodes (default native: static routes)")  # fmt: skip
    command.add_argument("--subnets", type=int, default=1 if defaults else None,
                         help="VPC subnets: masters in one, workers spread over the others, in two zones")  # fmt: skip
    command.add_argument("--layout", choices=LAYOUTS, default="hard-way" if defaults else None,
                         help="plain processes per node (hard-way, the default) or kubeadm's init and join: static "
                              "pods, kube-proxy DaemonSet, CoreDNS Deployment")  # fmt: skip


def _shape(args: argparse.Namespace) -> suite.Shape:
    """The shape asked for; the matrix takes its versions apart (one lab each)."""
    kubernetes = args.kubernetes if isinstance(args.kubernetes, str) else None
    return suite.Shape(args.masters, args.workers, args.cni, args.subnets, kubernetes, args.layout)

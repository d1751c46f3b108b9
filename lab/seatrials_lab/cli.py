"""lab/lab: the command line of the seatrials lab."""

from __future__ import annotations

import argparse
import sys

from . import cluster
from .layout import Paths
from .shell import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab/lab", description="A real multi-node Kubernetes cluster on this machine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring the cluster up; returns when every node is Ready and answers")
    up.add_argument("--masters", type=int, choices=(1, 3), default=1)
    up.add_argument("--workers", type=int, default=2)
    commands.add_parser("down", help="tear everything down, leaving nothing behind (also after a failed up)")
    commands.add_parser("status", help="what runs; exit 0 only when everything that should run does")
    commands.add_parser("env", help='export lines for the suite (eval "$(lab/lab env)")')
    sync = commands.add_parser("sync-vpc", help="re-derive the VPC filter from moto's EC2 state")
    sync.add_argument("--print", action="store_true", help="print the iptables rules applied")
    args = parser.parse_args(argv)
    paths = Paths.from_env()
    try:
        if args.command == "up":
            cluster.up(paths, args.masters, args.workers)
        elif args.command == "down":
            cluster.down(paths)
            print("lab is down; nothing of it remains", file=sys.stderr)
        elif args.command == "status":
            report, healthy = cluster.status(paths)
            print(report)
            return 0 if healthy else 1
        elif args.command == "env":
            print("\n".join(cluster.env_lines(paths)))
        elif args.command == "sync-vpc":
            rules = cluster.sync_vpc(paths)
            print(rules if args.print else f"VPC filter replaced: {rules.count(chr(10) + '-A ')} rules from moto")
    except (LabError, ValueError) as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted (lab/lab down cleans up a partial lab)", file=sys.stderr)
        return 130
    return 0

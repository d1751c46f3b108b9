#!/usr/bin/python3 -S
"""A labelled stand-in for the probe pods of KWOK's fake nodes (lab/lab fake-nodes), NOT a probe.

A fake node runs no container, so an exec into its probe pod cannot run the seatrials fan-out.
KWOK answers an exec by running the command on its own host (its exec support, `ClusterExec`);
the lab starts KWOK with this program first on its PATH under the name `sh`, so the exec
`sh -c <fanout.sh> fanout TIMEOUT RETRIES IN_FLIGHT TARGET...` lands here, and this program
answers in the fan-out's own output format (`ST|id|exit code|tries|output`), one line per target.
So the apiserver, the exec streams through it, the collection, the diagnosis and the reports
are measured for real; the network paths are not (every answer names `kwok-stand-in`).

What it answers follows the lab's fake network (lab/seatrials_lab/kwok.py writes it): every path
answers, except pod IPs of the nodes listed as broken (the EC2 source/destination check on
them: pod traffic to or from their pods is dropped, their host IPs answer). A failed target
costs what the fan-out spends on it (a timeout, then the retries at half of it), in windows of
IN_FLIGHT targets, as fanout.sh's sliding window does.
"""

import json
import math
import os
import sys
import time

LABEL = "kwok-stand-in"  # every answer names it
POD_IP_KINDS = ("pod-to-pod", "pod-to-pod-icmp", "host-to-pod")


def line(target_id: str, rc: int, tries: int, out: str) -> str:
    return f"ST|{target_id}|{rc}|{tries}|{out.replace(chr(10), chr(9)).replace('|', ' ')}"


def itself(targets: list[list[str]]) -> str | None:
    """The node this fan-out runs for: named by its own routes (host side), else the one pod-to-pod target
    that is not a pod-to-node target (a node probes its own pod, never its own host IP)."""
    kinds: dict[str, set[str]] = {}
    for t in targets:
        kind, _, name = t[0].partition("/")
        kinds.setdefault(kind, set()).add(name)
    if "routes" in kinds:
        return next(iter(kinds["routes"]))
    own = kinds.get("pod-to-pod", set()) - kinds.get("pod-to-node", set())
    return next(iter(own)) if len(own) == 1 else None


def answer(t: list[str], me: str | None, net: dict, broken: set[str], timeout: int, retries: int) -> tuple[str, bool]:
    """One target's line, and whether it failed."""
    target_id, mode = t[0], t[1]
    kind, _, name = target_id.partition("/")
    dropped = kind in POD_IP_KINDS and name != me and (name in broken or (kind != "host-to-pod" and me in broken))
    if mode == "backends":
        want = t[4].split("+")
        missing = [b for b in want if b != me and (b in broken)]
        seen = [b for b in want if b not in missing]
        errors = " ".join(f"{b}:nc: timed out;" for b in missing)
        return line(target_id, 0, 4 * len(want), f"seen=[ {' '.join(seen)} ] missing=[ {' '.join(missing)} ] "
                                                   f"errors=[{errors}]"), bool(missing)
    if dropped or (kind == "dns" and me in broken):
        out = "PING: 1 packets transmitted, 0 packets received, 100% packet loss" if mode == "icmp" else \
            "nc: timed out" if mode == "tcp" else ";; connection timed out; no servers could be reached"
        return line(target_id, 1, retries + 1, out), True
    if mode == "routes":
        routes = [f"{n['pod_cidr']} via {n['ip']} dev eth0" for other, n in sorted(net["nodes"].items()) if other != me]
        return line(target_id, 0, 1, "\n".join([f"default via {net['gateway']} dev eth0", *routes])), False
    if mode == "health":
        return line(target_id, 0, 1, f"HTTP/1.1 200 OK\n\n{LABEL}: kube-proxy healthy"), False
    if mode == "dns":
        return line(target_id, 0, 1, f"Server: {net['dns']}\nAddress: {net['dns']}:53\n\n"
                                     f"Name: {t[2]}.svc.cluster.local\nAddress: {net['service_ip']}"), False
    return line(target_id, 0, 1, f"HTTP/1.0 200 OK\n\n{LABEL} {name}"), False


def main(argv: list[str]) -> int:
    if len(argv) < 7 or argv[1] != "-c" or "seatrials fan-out" not in argv[2]:
        print(f"{LABEL}: only the seatrials fan-out is answered on a fake node", file=sys.stderr)
        return 127
    timeout, retries, in_flight = int(argv[4]), int(argv[5]), int(argv[6])
    with open(os.environ["SEATRIALS_STANDIN_NETWORK"]) as handle:
        net = json.load(handle)
    broken = set(net.get("broken", []))
    targets = [arg.split(",") for arg in argv[7:]]
    me = itself(targets)
    lines, failed = [], 0
    for t in targets:
        text, bad = answer(t, me, net, broken, timeout, retries)
        lines.append(text)
        failed += bad
    if failed:  # what the fan-out would have waited: each window of failures one timeout and its retries
        time.sleep(math.ceil(failed / in_flight) * (timeout + retries * max(1, timeout // 2)))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

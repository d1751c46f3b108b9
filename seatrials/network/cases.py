"""Which node pairs a run probes, and how they become test cases.

Up to --pair-cases-up-to nodes, one case per ordered pair and path
(`test_pod_to_pod[worker-1->worker-2]`), as a person reads a small cluster.
Above it, one case per source node and path (`test_pod_to_pod[worker-1->*]`)
whose failure lists every failed target: the case count grows linearly, and
collection, JUnit and the report survive clusters of hundreds of nodes. The
JSON report keeps every measured cell whatever the mode.

--pairs sample:K probes K targets per source instead of all of them, drawn
deterministically from the run id (printed, so a draw can be repeated), while
every node stays a source and the target of another node, and every master a
target of every source (the control plane must be reachable from everywhere).
"""

from __future__ import annotations

import random
import re

from seatrials.topology import Everyone

ALL = Everyone().name  # the target of a per-source case
NAMES_SHOWN = 30  # a longer list of nodes is cut, the rest counted (every cell is in the JSON report)


def per_source(node_count: int, pair_cases_up_to: int) -> bool:
    """Whether the run makes one case per source node (above the threshold) instead of one per pair."""
    return node_count > pair_cases_up_to


def sample(nodes: list[str], masters: list[str], k: int | None, seed: str) -> dict[str, set[str]]:
    """The other nodes each source probes: all of them (k None); else every master and k others drawn with
    `seed`, then each node no other source drew is given to one more source (in turn), so that every node
    is probed by another. A node's own probe (pod to its own pod) is always made besides (see paths.plan)."""
    if k is None:
        return {s: set(nodes) - {s} for s in nodes}
    rng = random.Random(seed)
    chosen = {}
    for s in nodes:
        others = sorted(set(nodes) - set(masters) - {s})
        chosen[s] = (set(masters) - {s}) | set(rng.sample(others, min(k, len(others))))
    covered = set().union(*chosen.values()) if chosen else set()
    for i, t in enumerate(n for n in nodes if n not in covered):
        sources = [s for s in nodes if s != t]
        if sources:
            chosen[sources[i % len(sources)]].add(t)
    return chosen


def targets_of(topology, pairs: int | None, seed: str) -> dict[str, set[str]]:
    """The sampled targets of every node of the topology (see `sample`)."""
    return sample([n.name for n in topology.nodes], [n.name for n in topology.masters], pairs, seed)


def pair_cases(nodes: list, targets: dict[str, set[str]], per_source_cases: bool,
               cross: bool) -> tuple[list, list[str]]:
    """(parameter values, ids) of the pair cases: ordered pairs (cross: two different nodes) among the
    sampled ones, or one (source, Everyone()) per node."""
    if per_source_cases:
        return [(n, Everyone()) for n in nodes], [f"{n.name}->{ALL}" for n in nodes]
    pairs = [(a, b) for a in nodes for b in nodes
             if (b.name in targets.get(a.name, ()) or a == b) and not (cross and a == b)]
    return pairs, [f"{a.name}->{b.name}" for a, b in pairs]


def describe(node_count: int, settings, seed: str | None) -> str:
    """The header line saying how pairs become cases and which are probed (with the seed of a sample)."""
    if per_source(node_count, settings.pair_cases_up_to):
        how = f"one per source node and path ({node_count} nodes > --pair-cases-up-to {settings.pair_cases_up_to})"
    else:
        how = f"one per ordered pair and path ({node_count} nodes <= --pair-cases-up-to {settings.pair_cases_up_to})"
    probed = "all" if settings.pairs is None else f"sample:{settings.pairs}, drawn with seed {seed}"
    return f"pair cases: {how}; pairs probed: {probed}"


NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<number>\d+)$")


def name_list(names, limit: int = NAMES_SHOWN) -> str:
    """Node names for a person: runs of numbered names shortened (worker-1 to worker-40), at most `limit`
    items shown and the rest counted."""
    items, run = [], []  # items: (text, how many nodes it names)

    def flush():
        if len(run) > 2:
            items.append((f"{run[0][0]}{run[0][1]} to {run[-1][0]}{run[-1][1]}", len(run)))
        else:
            items.extend((f"{stem}{n}", 1) for stem, n in run)
        run.clear()

    for name in sorted(set(names), key=sort_key):
        m = NUMBERED.match(name)
        if m and run and run[-1][0] == m["stem"] and run[-1][1] + 1 == int(m["number"]):
            run.append((m["stem"], int(m["number"])))
            continue
        flush()
        if m:
            run.append((m["stem"], int(m["number"])))
        else:
            items.append((name, 1))
    flush()
    rest = sum(n for _, n in items[limit:])
    return ", ".join(text for text, _ in items[:limit]) + (f" and {rest} more" if rest else "")


def first_of(items: list[str], shown: int) -> str:
    """The first `shown` items, the rest counted."""
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def sort_key(name: str) -> tuple:
    """worker-2 before worker-10."""
    m = NUMBERED.match(name)
    return (m["stem"], int(m["number"]), "") if m else (name, -1, name)

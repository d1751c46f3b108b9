"""The sign-off of one run as data: `signoff.json` (schema in docs/report-schema.md), from
which the HTML and Markdown reports are rendered, so all three carry the same content.

The decision comes first: the verdict and its reasons, each cause found with the
nodes it concerns (a node, its instance and address, and what was seen there) and its
fix with those ids filled in, and what was not verified and why. Then who ran what
against which cluster (tool version, command line, options, start and end, the
cluster's fingerprint and a stable hash of it), and the detail: every check, the
reachability matrices.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

from seatrials import causes
from seatrials.checks import aws
from seatrials.network import paths
from seatrials.options import AREAS, Settings
from seatrials.reporting.records import CheckReport
from seatrials.reporting.redaction import redact

SCHEMA_VERSION = 2
SEVERITY_ORDER = ("critical", "high", "medium", "low")
# One letter per probe outcome in the matrix rows; " " where a source has no such path (a node to itself
# for paths between two nodes).
OUTCOME_CODES = {"ok": "o", "timeout": "t", "refused": "r", "no-route": "n", "error": "e", "not-run": "-"}
NO_PATH = " "
PLACEHOLDER = re.compile(r"\(([^()]*<(?:id|node|ip)>[^()]*)\)")  # a command in a catalog fix, e.g. (aws ... <id>)
TOKEN = re.compile(r"[A-Za-z0-9._-]+")


@dataclass
class RunRecord:
    """Everything a sign-off says, gathered from the run (record_of) or made by a test."""

    run_id: str
    server: str
    context: str
    started: float
    ended: float
    verdict: str
    reasons: list[str]
    exit_code: int
    not_verified: dict[str, list[str]]
    checks: list[CheckReport] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)  # name, role, ip, instance, pod_cidrs, ready, unreachable
    fingerprint: dict = field(default_factory=dict)
    matrix: dict = field(default_factory=dict)
    command: str = ""
    options: dict = field(default_factory=dict)
    required: tuple[str, ...] = ()
    api_requests: dict[str, int] = field(default_factory=dict)  # "VERB /path/{template}" -> count
    trial_timings: dict = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    namespace_deleted: bool = False
    baseline: dict | None = None  # what changed since --baseline's runs (reporting/baseline.py section)


# ---------------------------------------------------------------- from the run
def record_of(state, trial, command: list[str], secrets: list[str]) -> RunRecord:
    judgement = state.judgement
    return RunRecord(
        run_id=state.run_id or "", server=state.cluster.server, context=state.cluster.context,
        started=state.started, ended=time.time(), verdict=judgement.verdict, reasons=judgement.reasons,
        exit_code=judgement.exit_code, not_verified=judgement.not_verified, checks=state.reports,
        nodes=node_list(state.topology), fingerprint=fingerprint(state.topology), matrix=matrices(trial),
        command=command_line(command, secrets), options=options_of(state.settings, secrets),
        required=tuple(state.settings.require), api_requests=api_requests(state),
        trial_timings=run_timings(state, trial), removed=state.removed,
        namespace_deleted=bool(state.namespace_deleted), baseline=state.since)


def run_timings(state, trial) -> dict:
    """Seconds of each phase: starting (connect, lock, topology) and collecting the cases, the trial's own
    (deploy, ready, measure, diagnose; ready is what the trial still waited: the probes are deployed once the
    cases are collected and become ready while the cases before the first that needs them run), and the cases
    besides the trial; the reports' own time is printed once they are written."""
    timings = dict(trial.timings) if trial else {}
    phases = state.phases
    if "collected" in phases:
        timings["collect"] = round(phases["collected"] - state.started, 2)
        if "cases" in phases:
            timings["checks"] = round(phases["cases"] - phases["collected"] - sum(
                v for k, v in timings.items() if k in ("deploy", "ready", "measure", "diagnose")), 2)
    return timings


def node_list(topology) -> list[dict]:
    if topology is None:
        return []
    return [{"name": n.name, "role": n.role, "ip": n.internal_ip or "",
             "instance": aws.instance_id(n.provider_id) or "", "pod_cidrs": list(n.pod_cidrs), "ready": n.ready,
             "unreachable": n.unreachable} for n in topology.nodes]


def fingerprint(topology) -> dict:
    """The cluster's identity: topology's fingerprint and the nodes' pod CIDRs."""
    if topology is None:
        return {}
    cidrs = [c for n in topology.nodes for c in n.pod_cidrs]
    return {**topology.fingerprint(), "pod cidrs": pod_cidr_summary(cidrs)}


def cluster_hash(topology) -> str:
    fp = fingerprint(topology)
    return fingerprint_hash(fp, node_list(topology)) if fp else ""


def pod_cidr_summary(cidrs: list[str]) -> str:
    if len(cidrs) <= 4:
        return ", ".join(cidrs) or "none assigned to nodes"
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    sizes = ", ".join(sorted({f"/{n.prefixlen}" for n in nets}))
    return f"{len(cidrs)} node ranges ({sizes}) within {supernet(nets)}"


def supernet(nets) -> str:
    """The smallest network holding all of them (of one address family)."""
    outer = nets[0]
    while not all(n.subnet_of(outer) for n in nets if n.version == outer.version):
        outer = outer.supernet()
    return str(outer)


def fingerprint_hash(fp: dict, nodes: list[dict]) -> str:
    """Stable across runs of the same cluster: its version, CNI, service, endpoints, DNS and every node's
    name, role, address, instance and pod CIDRs, in a canonical order."""
    identity = {**fp, "nodes": sorted([n["name"], n["role"], n["ip"], n["instance"], sorted(n["pod_cidrs"])]
                                      for n in nodes)}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def matrices(trial) -> dict[str, dict]:
    """kind -> {title, sources, targets, rows: {source: one OUTCOME_CODES letter per target}}."""
    out: dict[str, dict] = {}
    if trial is None:
        return out
    by_kind = defaultdict(dict)  # kind -> source -> {target: code}
    for (kind, source), results in trial.rows().items():
        by_kind[kind][source] = {r.target: OUTCOME_CODES.get(r.outcome, "e") for r in results}
    for kind in paths.KINDS:
        rows = by_kind.get(kind)
        if not rows:
            continue
        sources = sorted(rows)
        targets = sorted({t for row in rows.values() for t in row})
        out[kind] = {"title": paths.KINDS[kind][1], "sources": sources, "targets": targets,
                     "rows": {s: "".join(rows[s].get(t, NO_PATH) for t in targets) for s in sources}}
    return out


def api_requests(state) -> dict[str, int]:
    """Requests of every process of the run by endpoint, most first (each process leaves its counts in the
    shared directory)."""
    counts = Counter()
    if not state.shared or not state.shared.exists():
        counts.update(state.cluster.requests_by_endpoint if state.cluster else {})
    else:
        for p in state.shared.glob("requests-*.json"):
            counts.update(json.loads(p.read_text() or "{}"))
    return dict(counts.most_common())


def command_line(args: list[str], secrets: list[str]) -> str:
    return redact(shlex.join(["pytest", *args]), secrets)


def options_of(settings: Settings, secrets: list[str]) -> dict:
    """The options that differ from their defaults, secrets redacted."""
    given, default = settings.to_json(), Settings().to_json()
    return {k: redact(str(v), secrets) if isinstance(v, str) else v for k, v in given.items() if v != default[k]}


def tool() -> dict:
    version = metadata.version("seatrials")
    commit = git_commit(Path(__file__).resolve().parent)
    return {"name": "seatrials", "version": version + (f" ({commit})" if commit else ""),
            "python": sys.version.split()[0], "pytest": pytest.__version__}


def git_commit(path: Path) -> str:
    """The checkout's commit when seatrials runs from one, with a mark when it has local changes (one git
    process for both: its "# branch.oid" header line, then a line per changed file)."""
    try:
        status = subprocess.run(["git", "-C", str(path), "status", "--porcelain=v2", "--branch", "--no-ahead-behind",
                                 "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = status.stdout.splitlines()
    head = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if status.returncode or head == "(initial)":
        return ""
    return f"git {head[:12]}" + (", modified" if any(not line.startswith("#") for line in lines) else "")


# ---------------------------------------------------------------- the document
def signoff(record: RunRecord) -> dict:
    checks = record.checks
    found = causes_of(checks, record.nodes)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool(),
        "run_id": record.run_id,
        "server": record.server,
        "context": record.context,
        "command": record.command,
        "options": record.options,
        "started": iso(record.started),
        "ended": iso(record.ended),
        "wall_seconds": round(record.ended - record.started, 1),
        "api_requests": sum(record.api_requests.values()),
        "api_requests_by_endpoint": record.api_requests,
        "nodes": len(record.nodes),
        "node_list": record.nodes,
        "cluster": record.fingerprint,
        "fingerprint_hash": fingerprint_hash(record.fingerprint, record.nodes) if record.fingerprint else "",
        "verdict": record.verdict,
        "verdict_reasons": record.reasons,
        "exit_code": record.exit_code,
        "baseline": record.baseline,
        "required_areas": list(record.required),
        "not_verified": record.not_verified,
        "not_verified_reasons": not_verified_reasons(checks),
        "partly_checked": [{"check": c.name, "area": c.area, "notes": c.notes} for c in checks
                           if c.outcome == "passed" and c.notes],
        "outcomes": dict(Counter(c.outcome for c in checks)),
        "areas": areas_of(checks),
        "causes": found,
        "errors": [{"check": c.name, "area": c.area, "summary": c.summary} for c in checks if c.outcome == "error"],
        "causes_found": {c["id"]: {"title": c["title"], "fix": c["fix"], "page": c["source_page"],
                                   "cases": c["checks"]} for c in found},
        "checks": [dict(vars(c)) for c in checks],
        "matrix": record.matrix,
        "matrix_codes": {code: outcome for outcome, code in OUTCOME_CODES.items()} | {NO_PATH: "no such path"},
        "trial_timings": record.trial_timings,
        "removed_leftovers": record.removed,
        "probe_namespace_deleted": record.namespace_deleted,
    }


def areas_of(checks: list[CheckReport]) -> dict[str, dict[str, int]]:
    """What the sign-off covers: per area (options.AREAS first), how many checks ended how."""
    counted: dict[str, Counter] = {area: Counter() for area in AREAS}
    for c in checks:
        counted.setdefault(c.area or "other", Counter())[c.judged] += 1
    return {area: dict(n) for area, n in counted.items()}


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def not_verified_reasons(checks: list[CheckReport]) -> dict[str, list[dict]]:
    """area -> [{reason, cases}], the most frequent reason first."""
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in checks:
        if c.judged == "skipped":
            grouped[c.area or "other"][c.message.removeprefix("not checked: ")].append(c.name)
    return {area: [{"reason": r, "cases": cases} for r, cases in sorted(reasons.items(), key=lambda kv: -len(kv[1]))]
            for area, reasons in sorted(grouped.items())}


# ---------------------------------------------------------------- causes, by the nodes they concern
def causes_of(checks: list[CheckReport], nodes: list[dict]) -> list[dict]:
    """One entry per cause found, the gravest documented one first and "unknown" last: the nodes it concerns
    and its fix for them."""
    by_cause = defaultdict(list)
    for c in checks:
        if c.outcome == "failed" and c.cause:
            by_cause[c.cause].append(c)
    known = {n["name"]: n for n in nodes}
    found = []
    for cause_id, failures in by_cause.items():
        cause = causes.cause(cause_id)
        subjects, elsewhere = subjects_of(failures, known)
        fix, commands = concrete_fix(cause.fix, subjects)
        found.append({
            "id": cause.id, "title": cause.title, "severity": cause.severity, "origin": cause.origin,
            "failures": len(failures), "subjects": subjects,
            "cluster_wide": [{"check": f.name, "what": what_failed(f)} for f in elsewhere],
            "patterns": distinct(e.removeprefix("pattern: ") for f in failures for e in f.evidence
                                 if e.startswith("pattern: ")),
            "corroboration": distinct(e for f in failures for e in f.corroboration),
            "hints": distinct(f.hint for f in failures if f.hint),
            "fix": fix, "fix_commands": commands, "catalog_fix": cause.fix,
            "page": f"causes/{cause.id}.html", "page_markdown": f"causes/{cause.id}.md", "source_page": cause.page,
            "checks": [f.name for f in failures]})
    return sorted(found, key=lambda c: (c["id"] == causes.UNKNOWN, severity_rank(c["severity"]), -c["failures"],
                                        c["id"]))


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def distinct(items) -> list[str]:
    return list(dict.fromkeys(items))


def nodes_in(lines, known: dict) -> set[str]:
    return {t.rstrip(".:") for t in TOKEN.findall(" ".join(lines))} & known.keys()


def named_nodes(check: CheckReport, known: dict) -> set[str]:
    """The nodes a failure concerns. Its own: the ends of its case and the nodes its evidence names. Where the
    diagnosis names the nodes behind the pattern (pattern and corroboration lines), those of its own that are
    among them; a failure that is only a consequence (DNS from a healthy node) concerns the pattern's nodes."""
    own = nodes_in([check.case.replace("->", " "), *(e for e in check.evidence
                                                      if not e.startswith(("pattern: ", "not checked: ")))], known)
    behind = nodes_in([e for e in check.evidence if e.startswith("pattern: ")] + check.corroboration, known)
    return (own & behind or behind) if behind else own


def subjects_of(failures: list[CheckReport], known: dict) -> tuple[list[dict], list[CheckReport]]:
    """The fewest nodes that account for every failure (greedy: the node most failures name first), each
    with every failure that names it; and the failures that name no node (cluster-wide settings)."""
    named = [(f, named_nodes(f, known)) for f in failures]
    chosen = []
    uncovered = [(f, ns) for f, ns in named if ns]
    while uncovered:
        counts = Counter(n for _, ns in uncovered for n in ns)
        node = min(counts, key=lambda n: (-counts[n], n))
        chosen.append(node)
        uncovered = [(f, ns) for f, ns in uncovered if node not in ns]
    subjects = [subject(known[n], [f for f, ns in named if n in ns]) for n in chosen]
    return subjects, [f for f, ns in named if not ns]


def subject(node: dict, failures: list[CheckReport]) -> dict:
    """A node and what was seen there, the most telling line first: what the cloud says about its instance,
    the pattern its failures form when that names it, what a check of that node alone found, any pattern,
    else its first failure."""
    lines = [e for f in failures for e in (*f.evidence, *f.corroboration)]
    cloud = [e for e in lines if node["instance"] and node["instance"] in e and not e.startswith("pattern: ")]
    patterns = [e.removeprefix("pattern: ") for e in lines if e.startswith("pattern: ")]
    naming = [p for p in patterns if node["name"] in TOKEN.findall(p.replace(",", " "))]
    own = [what_failed(f) for f in failures if f.case == node["name"]]
    what = (cloud + naming + own + patterns + [what_failed(failures[0])])[0]
    return {"node": node["name"], "role": node["role"], "ip": node["ip"], "instance": node["instance"],
            "what": what, "failures": len(failures), "checks": [f.name for f in failures]}


def what_failed(check: CheckReport) -> str:
    lines = [e for e in check.evidence if not e.startswith(("pattern: ", "not checked: "))]
    return lines[0] if lines else check.summary


def concrete_fix(fix: str, subjects: list[dict]) -> tuple[str, list[str]]:
    """The catalog's fix with its command templates, e.g. `(aws ... --instance-id <id> ...)`, filled
    in once per node concerned and moved below the text."""
    commands: list[str] = []
    if not subjects:
        return fix, commands

    def expand(match: re.Match) -> str:
        commands.extend(fill(match.group(1), s) for s in subjects)
        return "(the commands below)"

    return PLACEHOLDER.sub(expand, fix), commands


def fill(template: str, s: dict) -> str:
    values = {"<id>": s["instance"] or f"<instance of {s['node']}>", "<node>": s["node"],
              "<ip>": s["ip"] or f"<address of {s['node']}>"}
    return re.sub(r"<(?:id|node|ip)>", lambda m: values[m.group(0)], template)

"""The pytest side of seatrials, and its only boundary with pytest: one run =
one preflight, one lock, one probe deployment, one measurement, one teardown,
however many xdist workers judge.

Every check in suites/ returns a `causes.Result`; only this module turns a
Result into pass, fail or skip, report properties and the exit code. The
controller (the plain pytest process, or xdist's controller) owns the run: it
connects, takes the lock, clears what dead runs left, discovers the topology,
hands it to the workers, and at the end tears down, judges the whole run
(seatrials.verdict) and writes the reports. Workers (or the same process
without xdist) run the checks; what they learn about the run as a whole (a
selection, probes that never ran) they leave in the run's shared directory.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import allure
import pytest
from kubernetes.client.rest import ApiException

from seatrials import causes, reporting, versions
from seatrials import verdict as verdict_mod
from seatrials.causes import FAILED, NOT_APPLICABLE, NOT_CHECKED, Finding, Result
from seatrials.checks import aws, kubelet
from seatrials.cluster import Cluster, SetupError, api_error_line, connect, one_line
from seatrials.lock import ClusterLock
from seatrials.network import cases, probes
from seatrials.network import trial as trial_mod
from seatrials.options import AREAS, BadOption, Settings, settings_from
from seatrials.reporting import baseline as baseline_mod
from seatrials.topology import Topology, discover


@dataclass
class Run:
    """What one run of the suite holds, in the controller and (partly) in each xdist worker."""

    settings: Settings
    cluster: Cluster | None = None
    topology: Topology | None = None
    run_id: str | None = None
    space: probes.Space | None = None
    deployed: Future | None = None  # the probes' deployment, made once the cases were collected (trial.deploy)
    shared: Path | None = None  # the directory the processes of this run share (trial.json, notes, counts)
    lock: ClusterLock | None = None
    removed: list[str] = field(default_factory=list)  # what dead runs left, removed before deploying
    reports: list[reporting.CheckReport] = field(default_factory=list)
    completed: set[str] = field(default_factory=set)  # node ids whose teardown ran
    started: float = field(default_factory=time.time)
    namespace_deleted: bool | None = None  # None until teardown tried
    phases: dict[str, float] = field(default_factory=dict)  # when collection ended, when the cases ended
    interrupted: str = ""  # Ctrl-C or SIGTERM: the verdict cannot be a sign-off
    stopped: list[str] = field(default_factory=list)  # why the run could not finish (controller's own)
    judgement: verdict_mod.Judgement | None = None
    baseline: list[dict] | None = None  # --baseline: the earlier runs' sign-offs, oldest first
    since: dict | None = None  # what changed since them, and what --fail-on did (signoff.json's baseline)
    sections_left_out: int = 0  # failures pytest's terminal gave no section of its own (FAILURE_SECTIONS_UP_TO)


STATE = pytest.StashKey[Run]()

# The objects of the imports (kubernetes' client's alone: tens of thousands) live as long as the process: frozen,
# the garbage collector's full collections (during the run, pytest's at its end, the interpreter's at exit) no
# longer walk them; at exit the run's own objects are frozen too. Together a third of a second of every run.
gc.freeze()
atexit.register(gc.freeze)

# pytest's terminal gives each failure a section of its own, looking for the failure's teardown among every report
# of the run: quadratic, at 500 nodes whose pod IPs all fail (2500 failures, 18,000 reports) over a minute after the
# reports were written, for 2500 sections no terminal shows. Above this many failures they are left out, and
# seatrials' summary says so; every finding stays in the reports.
FAILURE_SECTIONS_UP_TO = 100

# What suites/conftest.py takes: the hooks and fixtures, nothing else.
__all__ = ["pytest_configure", "pytest_unconfigure", "pytest_configure_node", "pytest_report_header",
           "pytest_generate_tests", "pytest_deselected", "pytest_collection_modifyitems", "pytest_collection_finish",
           "pytest_pyfunc_call", "pytest_runtest_makereport", "pytest_sessionfinish",
           "settings", "run_id", "cluster", "topology", "trial", "kubelets"]


class CauseFailure(pytest.fail.Exception):
    """A check's failed Result, raised by the plugin alone; its message is the finding's. Without pytest's
    traceback (pytrace=False): pytest would format the traceback and the check's arguments (the whole trial)
    for every failed case, only for pytest_runtest_makereport below to replace it with the finding."""

    def __init__(self, finding: Finding):
        super().__init__(finding.message(), pytrace=False)
        self.finding = finding


# ---------------------------------------------------------------- notes shared by the run's processes
def note(state: Run, kind: str, text: str) -> None:
    """Leave a line for the controller (xdist workers cannot tell it otherwise): kind is stopped or selection."""
    if state.shared and state.shared.exists():
        with open(state.shared / f"{kind}-{os.getpid()}.txt", "a") as handle:
            handle.write(text.replace("\n", " ") + "\n")


def notes(state: Run, kind: str) -> list[str]:
    if not state.shared or not state.shared.exists():
        return []
    lines = [line for p in sorted(state.shared.glob(f"{kind}-*.txt")) for line in p.read_text().splitlines()]
    return list(dict.fromkeys(lines))


# ---------------------------------------------------------------- run lifecycle
def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def skips_cluster(config) -> bool:
    option = config.option
    return any(getattr(option, name, False) for name in ("help", "collectonly", "markers", "showfixtures",
                                                          "show_fixtures_per_test", "version"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): the documented causes this check can point at")
    config.addinivalue_line("markers", f"area(name): what the check signs off, one of {', '.join(AREAS)}")
    if skips_cluster(config):
        config.stash[STATE] = Run(Settings())
        return
    try:
        settings = settings_from(config)
    except BadOption as exc:
        raise pytest.UsageError(f"seatrials: {exc}") from None
    state = config.stash[STATE] = Run(settings)
    if is_worker(config):
        given = json.loads(config.workerinput["seatrials"])
        state.run_id = given["run_id"]
        state.shared = Path(given["shared"]) if given["shared"] else None
        state.space = probes.Space(**given["space"]) if given["space"] else None
        state.topology = Topology.from_json(given["topology"]) if given["topology"] else None
        if given.get("allure_dir") and hasattr(config.option, "allure_report_dir"):
            # the results go where the controller chose (its default included), cleaned there once
            config.option.allure_report_dir, config.option.clean_alluredir = given["allure_dir"], False
        return
    try:  # read before the reports are written: --baseline may be the folder this run writes to
        state.baseline = baseline_mod.load(settings.baseline) if settings.baseline else None
    except baseline_mod.BadBaseline as exc:
        raise pytest.UsageError(f"seatrials: {exc}") from None
    default_report_paths(config, settings)
    try:
        start_run(state, settings)
    except SetupError as exc:
        stop_run(state)
        reporting.write_not_started(settings, str(exc), reporting.known_secrets(state), *report_paths(config),
                                    previous=state.baseline or [])
        raise pytest.UsageError(f"seatrials: {exc}") from None
    except BaseException:  # Ctrl-C while starting: leave nothing behind
        stop_run(state)
        raise
    config.pluginmanager.register(RunReporter(config), "seatrials-run-reporter")
    signal.signal(signal.SIGTERM, interrupt)  # CI cancellations clean up like Ctrl-C


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def default_report_paths(config, settings) -> None:
    """JUnit and allure results go to --reports-dir unless the user chose paths."""
    if not config.option.xmlpath:
        config.option.xmlpath = str(settings.reports_dir / "junit.xml")
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(settings.reports_dir / "allure-results")
        config.option.clean_alluredir = True


def start_run(state: Run, settings: Settings) -> None:
    cluster = state.cluster = connect(settings.kubeconfig, settings.context)
    try:
        if settings.cleanup_only:
            removed, active = probes.cleanup_leftovers(cluster, settings.namespace)
            left = f"; left the live run {active} alone" if active else ""
            pytest.exit(f"seatrials cleanup: removed {', '.join(removed) or 'nothing'}{left}", returncode=0)
        run_id = probes.new_run_id()
        state.run_id, state.space = run_id, probes.Space.of(run_id, settings.namespace)
        lock = ClusterLock(cluster, run_id)
        lock.acquire(settings.lock_wait)
        state.lock = lock
        state.shared = Path(tempfile.mkdtemp(prefix=f"seatrials-{run_id}-"))
        state.topology = discover(cluster, settings.master_selector, settings.worker_selector)
        gone = {n.name for n in state.topology.nodes if n.unreachable}
        state.removed = probes.remove_leftovers(cluster, state.space, keep_run=run_id, gone=gone)
    except ApiException as exc:
        raise SetupError(f"the cluster at {cluster.server} refused to prepare the run: {api_error_line(exc)}") from None
    if not state.topology.nodes:
        raise SetupError("the cluster has no nodes matching the selectors")
    if problem := aws.region_problem(settings, state.topology):
        raise SetupError(problem)


def stop_run(state: Run) -> None:
    """Delete what this run created and release the lock. Safe to call twice; never raises."""
    if state.cluster is None:
        return
    try:
        if state.run_id and state.space and not state.settings.keep_probes and state.namespace_deleted is None:
            gone = {n.name for n in state.topology.nodes if n.unreachable} if state.topology else set()
            state.namespace_deleted = probes.delete_run(state.cluster, state.space, state.run_id, gone)
        if state.lock:
            state.lock.release()
            state.lock = None
    except Exception as exc:  # noqa: BLE001 - teardown must report, not crash the run's exit
        print(f"seatrials: cleanup of run {state.run_id} failed ({one_line(exc)}): "
              "run `pytest suites/ --cleanup-only` once the cluster answers", file=sys.stderr)


def caveats(state: Run) -> list[str]:
    """What limits any verdict of this run: a Kubernetes minor the suite is not proved on."""
    line = versions.unproved(state.topology.version) if state.topology else None
    return [line] if line else []


def pytest_unconfigure(config):
    """A safety net: whatever happened, the namespace and the lock go."""
    state = config.stash.get(STATE, None)
    if state and not is_worker(config):
        stop_run(state)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: give each worker the run id, the shared directory, the probes' space and the topology."""
    state = node.config.stash[STATE]
    node.workerinput["seatrials"] = json.dumps({
        "run_id": state.run_id, "shared": str(state.shared) if state.shared else "",
        "space": vars(state.space) if state.space else None,
        "topology": state.topology.to_json() if state.topology else None,
        "allure_dir": getattr(node.config.option, "allure_report_dir", None)})


def pytest_report_header(config):
    state = config.stash.get(STATE, None)
    if not state or not state.topology or state.cluster is None:  # xdist workers have no cluster of their own
        return None
    lines = [f"seatrials run {state.run_id} on {state.cluster.server} (context {state.cluster.context})"]
    lines += [f"  {k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in state.topology.fingerprint().items()]
    lines += [f"  {line}" for line in caveats(state)]
    lines.append(f"  sign-off policy: required areas {', '.join(state.settings.require) or 'none (lenient)'}")
    lines.append(f"  {cases.describe(len(state.topology.nodes), state.settings, state.run_id)}")
    if state.removed:
        lines.append(f"  removed what earlier runs left: {', '.join(state.removed)}")
    return lines


# ---------------------------------------------------------------- collection: the whole suite, or a selection?
def pytest_generate_tests(metafunc):
    state = metafunc.config.stash[STATE]
    topology, settings = state.topology, state.settings
    nodes = topology.nodes if topology else []
    if "node" in metafunc.fixturenames:
        metafunc.parametrize("node", nodes, ids=[n.name for n in nodes])
    # ordered pairs (a node with itself included; cross_pair: two different nodes) among the probed ones,
    # or above --pair-cases-up-to one case per source node
    per_source = cases.per_source(len(nodes), settings.pair_cases_up_to)
    for name, cross in (("pair", False), ("cross_pair", True)):
        if name in metafunc.fixturenames:
            probed = {} if per_source or not topology else cases.targets_of(topology, settings.pairs, state.run_id)
            values, ids = cases.pair_cases(nodes, probed, per_source, cross)
            metafunc.parametrize(name, values, ids=ids)
    if "endpoint_path" in metafunc.fixturenames:  # every node to every apiserver endpoint
        eps = topology.apiserver_endpoints if topology else []
        paths = [(n, f"{ip}:{port}") for n in nodes for ip, port in eps]
        metafunc.parametrize("endpoint_path", paths, ids=[f"{n.name}->{ep}" for n, ep in paths])


def pytest_deselected(items):
    if items:
        state = items[0].config.stash.get(STATE, None)
        option = items[0].config.option
        how = [f"{flag} {value!r}" for flag, value in (("-k", option.keyword), ("-m", option.markexpr)) if value]
        how += ["--deselect"] if getattr(option, "deselect", None) else []
        how += ["--lf"] if getattr(option, "lf", False) else []
        if state:
            note(state, "selection", f"{len(items)} cases deselected ({', '.join(how) or 'by a plugin'})")


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --lf deselect: those say so in pytest_deselected
def pytest_collection_modifyitems(session, config, items):
    """Name the suite's modules and checks that were not collected: a subset of files or node ids was given."""
    state = config.stash.get(STATE, None)
    checks = [i for i in items if i.get_closest_marker("area")]
    if not state or not checks:
        return
    modules = {i.module for i in checks}
    collected_files = {Path(m.__file__).name for m in modules}
    missing = sorted(p.name for p in checks[0].path.parent.glob("test_*.py") if p.name not in collected_files)
    for module in modules:
        collected = {i.originalname for i in checks if i.module is module}
        missing += [f"{Path(module.__file__).name}::{name}" for name, obj in vars(module).items()
                    if name.startswith("test_") and callable(obj) and name not in collected]
    if missing:
        note(state, "selection", f"not collected: {', '.join(missing)}")


@pytest.hookimpl(trylast=True)  # after -k, -m and the like: the cases that will run are known
def pytest_collection_finish(session):
    """Deploy the probes as soon as a collected case needs them: they become ready while the cases before the
    first such case run, and the trial waits only for the rest. Where this process holds the run and runs its
    cases; xdist's controller collects nothing, and its workers deploy when the trial is first asked for."""
    state = session.config.stash.get(STATE, None)
    if state and state.cluster is not None and state.space and not is_worker(session.config) \
            and any("trial" in item.fixturenames for item in session.items):
        state.deployed = trial_mod.deploy(state.cluster, state.topology, state.settings, state.run_id, state.space)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def settings(pytestconfig):
    return pytestconfig.stash[STATE].settings


@pytest.fixture(scope="session")
def run_id(pytestconfig):
    return pytestconfig.stash[STATE].run_id


@pytest.fixture(scope="session")
def cluster(pytestconfig):
    state = pytestconfig.stash[STATE]
    if state.cluster is None:
        try:
            state.cluster = connect(state.settings.kubeconfig, state.settings.context)
        except SetupError as exc:
            note(state, "stopped", f"a test process could not reach the cluster: {exc}")
            pytest.skip(f"not checked: {exc}")
    return state.cluster


@pytest.fixture(scope="session")
def topology(pytestconfig):
    topo = pytestconfig.stash[STATE].topology
    if topo is None:
        pytest.skip("not checked: no cluster was contacted (collect-only)")
    return topo


@pytest.fixture(scope="session")
def trial(pytestconfig, cluster, topology, settings, run_id):
    state = pytestconfig.stash[STATE]

    def measure():
        return trial_mod.run(cluster, topology, settings, run_id, state.space,
                             aws_facts=lambda topo, observed: aws.facts(settings, topo, observed),
                             deployed=state.deployed)

    try:
        return trial_mod.obtain(state.shared, measure, share=is_worker(pytestconfig))  # else this process alone
    except SetupError as exc:
        note(state, "stopped", f"the probes never ran: {exc}")
        pytest.skip(f"not checked: the probes never ran: {exc}")


@pytest.fixture(scope="session")
def kubelets(request, cluster, topology):
    """The kubelet-cgroups Result of a node, kubelets(node): the kubelets of every node with a case in this run are
    read at once, PARALLEL_READS at a time, by the first process that asks; the other xdist workers read its
    answers (one node after another, these reads took 5 s of a 500-node run's checks)."""
    wanted = {item.callspec.params["node"].name for item in request.session.items
              if "kubelets" in item.fixturenames and "node" in item.fixturenames}
    nodes = [n for n in topology.nodes if n.name in wanted]
    state = request.config.stash[STATE]
    results = trial_mod.once_for_run(
        state.shared, "kubelets", lambda: kubelet.cgroups_results(cluster, nodes),
        write=lambda found, path: path.write_text(json.dumps({k: v if isinstance(v, str) else v.to_json()
                                                              for k, v in found.items()})),
        read=lambda data: {k: v if isinstance(v, str) else Result.from_json(v) for k, v in data.items()},
        share=bool(state.shared) and is_worker(request.config))

    def of(node) -> Result:
        found = results[node.name]
        if isinstance(found, str):
            raise RuntimeError(f"the kubelet check of {node.name} raised:\n{found}")
        return found
    return of


# ---------------------------------------------------------------- results
@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a seatrials check (marked with its causes) and turn the Result it returns into pytest's outcome."""
    if not pyfuncitem.get_closest_marker("cause"):
        return None
    names = inspect.signature(pyfuncitem.obj).parameters
    result = pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names})
    conclude(pyfuncitem, result)
    return True


def conclude(item, result) -> None:
    if not isinstance(result, Result):
        raise TypeError(f"seatrials bug: {item.name} returned {type(result).__name__}, not a seatrials Result")
    for name, value in reporting.readable_parameters(item).items():
        allure.dynamic.parameter(name, value)
    if "trial" in item.funcargs:  # its result was measured by the probe trial: reporting gives it that time
        allure.dynamic.label(*reporting.MEASURED)
    item.user_properties += list(result.properties.items())
    item.user_properties += [("not checked", n) for n in result.notes]
    if result.status in (NOT_CHECKED, NOT_APPLICABLE):
        pytest.skip(f"{result.status}: {result.reason}")
    if result.status == FAILED:
        finding = result.finding
        declared = {c for m in item.iter_markers("cause") for c in m.args} | {causes.UNKNOWN}
        if finding.cause not in declared:  # the catalog is the contract: a check may only blame what it declares
            finding.evidence.append(f"(seatrials bug: {item.name} does not declare cause {finding.cause})")
        item.user_properties += [("cause", finding.cause), ("cause_page", causes.cause(finding.cause).page)]
        allure.dynamic.label("cause", finding.cause)
        allure.dynamic.link(reporting.cause_url(finding.cause, item.config.stash[STATE].settings),
                            name=f"cause: {finding.cause}")
        allure.dynamic.description_html(reporting.finding_html(finding))  # the evidence without a click
        allure.attach(reporting.page_html(finding.cause, nav=False), name=f"cause page: {finding.cause}",
                      attachment_type=allure.attachment_type.HTML)
        raise CauseFailure(finding)


@pytest.hookimpl(hookwrapper=True, trylast=True)  # innermost: allure-pytest's wrapper sees the report we leave
def pytest_runtest_makereport(item, call):
    if call.when == "setup" and (area := item.get_closest_marker("area")):
        item.user_properties.append(("area", area.args[0]))
    failure = call.excinfo.value if call.excinfo and isinstance(call.excinfo.value, CauseFailure) else None
    if failure:  # its raise alone: pytest filters every frame of the traceback it shows none of (13 ms a failure)
        call.excinfo = pytest.ExceptionInfo.from_exc_info((type(failure), failure, last_frame(failure)))
    outcome = yield
    report = outcome.get_result()
    secrets = reporting.known_secrets(item.config.stash[STATE])
    if failure and report.when == "call":  # one line for JUnit's message and CI views, the finding as the body
        report.longrepr = reporting.failure_repr(failure.finding, item.location, secrets)
        report.seatrials_finding = reporting.finding_record(failure.finding, secrets)
    elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        path, line, reason = report.longrepr
        report.longrepr = (path, line, reporting.redact(reason, secrets))
    elif report.longrepr is not None and (text := str(report.longrepr)) != reporting.redact(text, secrets):
        report.longrepr = reporting.redact(text, secrets)  # a traceback is kept as it is unless it holds a secret
    report.sections = [(title, reporting.redact(text, secrets)) for title, text in report.sections]


def last_frame(exc: BaseException):
    tb = exc.__traceback__
    while tb.tb_next:
        tb = tb.tb_next
    return tb


class RunReporter:
    """Registered in the controller only: it sees every test report (xdist forwards them),
    tears the run down once, judges the whole run and writes the reports."""

    def __init__(self, config):
        self.config = config
        self.state = config.stash[STATE]

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.state.reports.append(reporting.CheckReport.of(report))
        if report.when == "teardown":
            self.state.completed.add(report.nodeid)
        lock = self.state.lock
        if lock and lock.lost and not any(s.startswith("lost the lock") for s in self.state.stopped):
            self.state.stopped.append(f"lost the lock: {lock.lost}")
            self.request_stop(f"seatrials lost its lock: {lock.lost}")

    def request_stop(self, reason: str) -> None:
        dsession = self.config.pluginmanager.getplugin("dsession")
        if dsession is not None:
            dsession.shouldstop = reason
        else:
            self.session.shouldstop = reason

    def pytest_sessionstart(self, session):
        self.session = session

    def pytest_collection_finish(self, session):
        self.state.phases["collected"] = time.time()

    def pytest_collectreport(self, report):
        if report.failed:
            self.state.stopped.append(f"{report.nodeid} could not be collected: "
                                      f"{str(report.longrepr).strip().splitlines()[-1]}")

    def pytest_keyboard_interrupt(self, excinfo):
        if isinstance(excinfo.value, pytest.exit.Exception):
            self.state.stopped.append(f"stopped: {excinfo.value.msg}")
        elif not isinstance(excinfo.value, pytest.Session.Interrupted):  # a stop we asked for is not Ctrl-C
            self.state.interrupted = str(excinfo.value) or "Ctrl-C"

    def pytest_internalerror(self, excrepr, excinfo):
        self.state.stopped.append(f"internal error: {one_line(excinfo.value)}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        state = self.state
        state.phases["cases"] = time.time()
        stop_run(state)
        stopped = state.stopped + notes(state, "stopped")
        expected = session.testscollected
        if expected and len(state.completed) < expected and not state.interrupted and not stopped:
            stopped.append(f"the run stopped after {len(state.completed)} of {expected} cases")
        facts = verdict_mod.RunFacts(
            outcomes=[(r.judged, r.area, r.name) for r in state.reports],
            interrupted=state.interrupted, stopped=stopped, selection=notes(state, "selection"),
            required=state.settings.require, caveats=caveats(state))
        state.judgement = verdict_mod.judge(facts)
        state.since = since_baseline(state, facts)
        session.exitstatus = state.judgement.exit_code
        failures = sum(r.outcome in ("failed", "error") for r in state.reports)
        if failures > FAILURE_SECTIONS_UP_TO and self.config.option.tbstyle != "no":
            self.config.option.tbstyle = "no"  # read by pytest's terminal summary, which follows this hook
            state.sections_left_out = failures

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        reporting.terminal_summary(terminalreporter, self.state)


def since_baseline(state: Run, facts: verdict_mod.RunFacts) -> dict | None:
    """--baseline: what changed since those runs; --fail-on new: whether the run is excused (exit 0)."""
    settings = state.settings
    if state.baseline is None and settings.fail_on != "new":
        return None
    runs = state.baseline or []
    current = {"checks": [vars(r) for r in state.reports], "fingerprint_hash": reporting.cluster_hash(state.topology)}
    changes = baseline_mod.compare(current, runs)
    policy = ""
    if settings.fail_on == "new":
        new = len(changes.new) if state.baseline is not None else None
        policy = verdict_mod.fail_on_new(state.judgement, facts, new, len(changes.still_failing))
    return baseline_mod.section(current, runs, changes, settings.fail_on, policy)


@pytest.hookimpl(trylast=True)  # after junitxml wrote its file: the controller redacts it with the others
def pytest_sessionfinish(session, exitstatus):
    """Every process leaves its API request counts; the controller then writes the reports."""
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    if state.cluster is not None and state.shared and state.shared.exists():
        (state.shared / f"requests-{os.getpid()}.json").write_text(json.dumps(state.cluster.requests_by_endpoint))
    if state.judgement is not None and not is_worker(session.config):
        started = time.monotonic()
        trial = trial_mod.load(state.shared) if state.shared else None
        reporting.write_all(state, trial, *report_paths(session.config),
                            command=session.config.invocation_params.args)
        shutil.rmtree(state.shared, ignore_errors=True)
        print(f"seatrials: reports written to {state.settings.reports_dir} in {time.monotonic() - started:.1f} s",
              file=sys.stderr)


def report_paths(config) -> tuple[Path | None, Path | None]:
    """Where junitxml and allure-pytest write, as the user or default_report_paths chose."""
    junit, allure_dir = config.option.xmlpath, getattr(config.option, "allure_report_dir", None)
    return (Path(junit) if junit else None), (Path(allure_dir) if allure_dir else None)

"""The pytest side of seatrials: one run = one preflight, one lock, one probe
deployment, one measurement, one teardown, however many xdist workers judge.

The controller (the plain pytest process, or xdist's controller) owns the run:
it connects, takes the lock, discovers the topology, hands both to the
workers, and at the end tears down and writes the reports. Workers (or the
same process without xdist) run the test functions in suites/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import allure
import pytest

from seatrials import causes, probes, reporting
from seatrials import trial as trial_mod
from seatrials.cluster import Cluster, SetupError, connect, one_line
from seatrials.options import Settings, settings_from
from seatrials.topology import Topology, discover


@dataclass
class Run:
    """What one run of the suite holds, in the controller and (partly) in each xdist worker."""

    settings: Settings
    cluster: Cluster | None = None
    topology: Topology | None = None
    run_id: str | None = None
    shared: Path | None = None  # the directory the processes of this run share (trial.json, counts)
    lock: probes.ClusterLock | None = None
    reports: list[reporting.CheckReport] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    namespace_deleted: bool | None = None  # None until teardown tried
    interrupted: bool = False  # Ctrl-C or SIGTERM: the verdict cannot be a sign-off


STATE = pytest.StashKey[Run]()

# What suites/conftest.py takes: the hooks and fixtures, nothing else.
__all__ = ["pytest_configure", "pytest_unconfigure", "pytest_configure_node", "pytest_report_header",
           "pytest_generate_tests", "pytest_runtest_makereport", "pytest_sessionfinish",
           "settings", "run_id", "cluster", "topology", "trial", "judge"]


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
    settings = settings_from(config)
    state = config.stash[STATE] = Run(settings)
    if is_worker(config):
        given = json.loads(config.workerinput["seatrials"])
        state.run_id = given["run_id"]
        state.shared = Path(given["shared"]) if given["shared"] else None
        state.topology = Topology.from_json(given["topology"]) if given["topology"] else None
        return
    if skips_cluster(config):
        return
    default_report_paths(config, settings)
    try:
        start_run(state, settings)
    except SetupError as exc:
        stop_run(state)
        raise pytest.UsageError(f"seatrials: {exc}") from None
    except BaseException:  # Ctrl-C while starting: leave nothing behind
        stop_run(state)
        raise
    config.pluginmanager.register(RunReporter(config), "seatrials-run-reporter")
    signal.signal(signal.SIGTERM, interrupt)  # CI cancellations clean up like Ctrl-C


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def default_report_paths(config, settings) -> None:
    """JUnit and allure results go to --reports-dir unless the user chose paths."""
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    if not config.option.xmlpath:
        config.option.xmlpath = str(settings.reports_dir / "junit.xml")
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(settings.reports_dir / "allure-results")
        config.option.clean_alluredir = True


def start_run(state: Run, settings: Settings) -> None:
    cluster = state.cluster = connect(settings.kubeconfig, settings.context)
    if settings.cleanup_only:
        removed, active = probes.cleanup_leftovers(cluster)
        left = f"; left the live run {active} alone" if active else ""
        pytest.exit(f"seatrials cleanup: removed {', '.join(removed) or 'nothing'}{left}", returncode=0)
    run_id = probes.new_run_id()
    lock = probes.ClusterLock(cluster, run_id)
    lock.acquire(settings.lock_wait)
    state.run_id, state.lock = run_id, lock
    state.shared = Path(tempfile.mkdtemp(prefix=f"seatrials-{run_id}-"))
    state.topology = discover(cluster, settings.master_selector, settings.worker_selector)
    if not state.topology.nodes:
        raise SetupError("the cluster has no nodes matching the selectors")


def stop_run(state: Run) -> None:
    """Delete what this run created and release the lock. Safe to call twice; never raises."""
    if state.cluster is None:
        return
    try:
        if state.run_id and not state.settings.keep_probes and state.namespace_deleted is None:
            state.namespace_deleted = probes.delete_run(state.cluster, state.run_id)
        if state.lock:
            state.lock.release()
            state.lock = None
    except Exception as exc:  # noqa: BLE001 - teardown must report, not crash the run's exit
        print(f"seatrials: cleanup of run {state.run_id} failed ({one_line(exc)}): "
              "run `pytest suites/ --cleanup-only` once the cluster answers", file=sys.stderr)


def pytest_unconfigure(config):
    """A safety net: whatever happened, the namespace and the lock go."""
    state = config.stash.get(STATE, None)
    if state and not is_worker(config):
        stop_run(state)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: give each worker the run id, the shared directory and the topology."""
    state = node.config.stash[STATE]
    node.workerinput["seatrials"] = json.dumps({
        "run_id": state.run_id, "shared": str(state.shared) if state.shared else "",
        "topology": state.topology.to_json() if state.topology else None})


def pytest_report_header(config):
    state = config.stash.get(STATE, None)
    if not state or not state.topology:
        return None
    lines = [f"seatrials run {state.run_id} on {state.cluster.server} (context {state.cluster.context})"]
    lines += [f"  {k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in state.topology.fingerprint().items()]
    return lines


# ---------------------------------------------------------------- parametrization
def pytest_generate_tests(metafunc):
    topology = metafunc.config.stash[STATE].topology
    nodes = topology.nodes if topology else []
    if "node" in metafunc.fixturenames:
        metafunc.parametrize("node", nodes, ids=[n.name for n in nodes])
    if "pair" in metafunc.fixturenames:  # every ordered pair, a node with itself included
        pairs = [(a, b) for a in nodes for b in nodes]
        metafunc.parametrize("pair", pairs, ids=[f"{a.name}->{b.name}" for a, b in pairs])
    if "cross_pair" in metafunc.fixturenames:  # ordered pairs of two different nodes
        pairs = topology.ordered_pairs() if topology else []
        metafunc.parametrize("cross_pair", pairs, ids=[f"{a.name}->{b.name}" for a, b in pairs])
    if "endpoint_path" in metafunc.fixturenames:  # every node to every apiserver endpoint
        eps = topology.apiserver_endpoints if topology else []
        paths = [(n, f"{ip}:{port}") for n in nodes for ip, port in eps]
        metafunc.parametrize("endpoint_path", paths, ids=[f"{n.name}->{ep}" for n, ep in paths])


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
            pytest.fail(f"seatrials: {exc}", pytrace=False)
    return state.cluster


@pytest.fixture(scope="session")
def topology(pytestconfig):
    topo = pytestconfig.stash[STATE].topology
    if topo is None:
        pytest.skip("not checked: no cluster was contacted (collect-only)")
    return topo


@pytest.fixture
def judge(record_property):
    """Judge a causes.Verdict: fail with its cause, skip when nothing was readable,
    and record in the reports what could not be checked next to a pass."""

    def judge_verdict(verdict: causes.Verdict) -> None:
        for note in verdict.judge():
            record_property("not checked", note)

    return judge_verdict


@pytest.fixture(scope="session")
def trial(pytestconfig, cluster, topology, settings, run_id):
    state = pytestconfig.stash[STATE]

    def measure():
        from seatrials import aws  # AWS is optional: read only when credentials exist

        return trial_mod.run(cluster, topology, settings, run_id,
                             aws_findings=lambda topo: aws.findings(settings, topo))

    try:
        return trial_mod.obtain(state.shared, measure)
    except SetupError as exc:
        if is_worker(pytestconfig):
            pytest.fail(f"seatrials: {exc}", pytrace=False)  # pytest.exit inside an xdist worker crashes it
        pytest.exit(f"seatrials: {exc}", returncode=3)


# ---------------------------------------------------------------- results
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    failure = call.excinfo.value if call.excinfo and isinstance(call.excinfo.value, causes.CauseFailure) else None
    if failure:
        declared = {c for m in item.iter_markers("cause") for c in m.args} | {causes.UNKNOWN}
        cause_id = failure.finding.cause
        if cause_id not in declared:  # the catalog is the contract: a check may only blame what it declares
            failure.finding.evidence.append(f"(seatrials bug: {item.name} does not declare cause {cause_id})")
        item.user_properties.append(("cause", cause_id))
        item.user_properties.append(("cause_page", causes.cause(cause_id).page))
        page = reporting.cause_url(cause_id, item.config.stash[STATE].settings)
        allure.dynamic.label("cause", cause_id)
        allure.dynamic.link(page, name=f"cause: {cause_id}")
    outcome = yield
    report = outcome.get_result()
    secrets = reporting.known_secrets(item.config.stash[STATE])
    if failure and report.when == "call":
        report.longrepr = reporting.redact(failure.finding.message(), secrets)
    elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        path, line, reason = report.longrepr
        report.longrepr = (path, line, reporting.redact(reason, secrets))
    elif report.longrepr is not None:
        report.longrepr = reporting.redact(str(report.longrepr), secrets)


class RunReporter:
    """Registered in the controller only: it sees every test report (xdist forwards them),
    tears the run down once and writes the reports."""

    def __init__(self, config):
        self.config = config
        self.state = config.stash[STATE]

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.state.reports.append(reporting.CheckReport.of(report))

    @pytest.hookimpl(trylast=True)  # after every process left its request count
    def pytest_sessionfinish(self, session, exitstatus):
        if self.state.topology is None:
            return
        self.state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        stop_run(self.state)
        reporting.write_all(self.state, trial_mod.load(self.state.shared))
        shutil.rmtree(self.state.shared, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if self.state.reports:
            reporting.terminal_summary(terminalreporter, self.state)


def pytest_sessionfinish(session, exitstatus):
    """Every process leaves its API request count for the controller to add up."""
    state = session.config.stash[STATE]
    if state.cluster is not None and state.shared and state.shared.exists():
        (state.shared / f"requests-{os.getpid()}").write_text(str(state.cluster.requests_made))

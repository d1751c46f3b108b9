"""`lab/lab bench`'s table: medians and spreads per scenario, and each scenario's ratio to the healthy one."""

import pytest
from seatrials_lab import suite
from seatrials_lab.shell import LabError


def rows(label, walls, requests, verdict):
    return [{"label": label, "nodes": 3, "wall_seconds": w, "api_requests": r, "verdict": verdict}
            for w, r in zip(walls, requests, strict=True)]


def test_table_gives_medians_spreads_and_the_ratio():
    table = suite.bench_table(rows(suite.HEALTHY, [6.0, 4.7, 5.1], [43, 44, 43], "SIGNED OFF")
                              + rows(suite.BROKEN, [9.0, 8.1, 8.4], [44, 44, 44], "NOT SIGNED OFF"))
    healthy, broken, ratio = table.splitlines()[1:]
    assert "5.1 (4.7-6.0)" in healthy and "43-44" in healthy and healthy.endswith("SIGNED OFF")
    assert "8.4 (8.1-9.0)" in broken and " 44 " in broken
    assert ratio == f"{suite.BROKEN} / healthy (medians): 1.65"


def test_a_not_ready_worker_gets_its_own_ratio():
    table = suite.bench_table(rows(suite.HEALTHY, [5.0], [43], "SIGNED OFF")
                              + rows(suite.NOT_READY, [6.0], [40], "NOT SIGNED OFF"))
    assert table.splitlines()[-1] == f"{suite.NOT_READY} / healthy (medians): 1.20"


def test_no_ratio_without_both_scenarios():
    assert "ratio" not in suite.bench_table(rows(suite.HEALTHY, [5.0], [43], "SIGNED OFF"))


def test_a_healthy_run_that_did_not_sign_off_says_what_failed_and_where_its_reports_are():
    failed = rows(suite.HEALTHY, [5.0, 5.2], [43, 43], "SIGNED OFF")
    failed[1].update(run=2, verdict="NOT SIGNED OFF", reports="reports/bench/healthy/run-2",
                     failed=["test_pod_to_pod[worker-3->worker-9]: [cause: unknown] ..."])
    last = suite.bench_table(failed).splitlines()[-1]
    assert last == (f"{suite.HEALTHY} run 2: NOT SIGNED OFF (reports reports/bench/healthy/run-2): "
                    "test_pod_to_pod[worker-3->worker-9]: [cause: unknown] ...")


def test_each_scenario_keeps_its_reports_in_a_folder_of_its_own(tmp_path):
    paths = suite.Paths.from_env()
    assert suite.bench_reports(paths, suite.BROKEN).name == "pod-network-broken-ec2-source-dest-check-on-every-node"
    assert suite.bench_reports(paths, suite.HEALTHY).parent == paths.lab.parent / "reports" / "bench"


def test_each_scenario_says_where_its_requests_go():
    mine = rows(suite.HEALTHY, [5.0], [43], "SIGNED OFF")
    mine[0]["api_requests_by_endpoint"] = {"GET /api/v1/namespaces/{namespace}/pods/{name}/exec": 6,
                                           "GET /api/v1/nodes/{name}/proxy/stats/summary": 3}
    assert suite.bench_table(mine).splitlines()[-1] == (
        f"{suite.HEALTHY}: API requests by endpoint (run 1) GET /api/v1/namespaces/{{namespace}}/pods/{{name}}/exec 6, "
        "GET /api/v1/nodes/{name}/proxy/stats/summary 3")


def test_a_python_without_seatrials_is_told_before_the_lab_comes_up(monkeypatch):
    """From the checkout alone `python -m seatrials.cli` starts and then misses the suites, a package only once
    installed: the bench names the Python to use before anything runs."""
    def missing(name, package=None):
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
    monkeypatch.setattr(suite.importlib.util, "find_spec", missing)
    with pytest.raises(LabError, match=r"^seatrials is not installed for .*: run the bench with the venv's Python"):
        suite.seatrials_installed()

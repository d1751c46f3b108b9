"""`lab/lab bench`'s table: medians and spreads per scenario, and each scenario's ratio to the healthy one."""

from seatrials_lab import suite


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

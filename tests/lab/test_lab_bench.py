"""`lab/lab bench`'s table: medians and spreads per scenario, and the broken/healthy ratio."""

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
    assert ratio == "broken / healthy (medians): 1.65"


def test_no_ratio_without_both_scenarios():
    assert "ratio" not in suite.bench_table(rows(suite.HEALTHY, [5.0], [43], "SIGNED OFF"))

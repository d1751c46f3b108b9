"""Choosing the Kubernetes version: lab/build.sh names one bin directory per release and refuses
what it cannot build in one line; `lab/lab matrix`'s list of releases and its table."""

from pathlib import Path

import pytest
from seatrials_lab import cluster, faults, suite
from seatrials_lab.layout import Paths
from seatrials_lab.shell import LabError

LAB = Path(__file__).resolve().parents[2] / "lab"


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths(state=tmp_path / "state", run=tmp_path / "run", cache=tmp_path / "cache", lab=LAB)


def printed(paths: Paths, kubernetes: str | None = None):
    return cluster.build_sh(paths, kubernetes, "--print", capture_output=True, text=True)


def test_the_first_pinned_release_is_the_default_and_each_minor_maps_to_its_release(paths):
    pinned = suite.releases(paths)
    default = Path(printed(paths).stdout.strip())
    assert default.parent == paths.cache / "bin" and default.name.startswith(f"{pinned[0]}-")
    for release in pinned:
        minor = release[1:].rsplit(".", 1)[0]
        by_minor, by_release = printed(paths, minor), printed(paths, release)
        assert by_minor.returncode == 0 and by_minor.stdout == by_release.stdout
        assert Path(by_minor.stdout.strip()).name.startswith(f"{release}-")
    assert len({printed(paths, r).stdout for r in pinned}) == len(pinned)


def test_a_release_that_is_not_pinned_may_still_be_named(paths):
    done = printed(paths, "1.36.1")
    assert done.returncode == 0 and Path(done.stdout.strip()).name.startswith("v1.36.1-")


@pytest.mark.parametrize(("asked", "said"), [
    ("1.33", "kubernetes 1.33: no release of this minor is pinned (pinned: 1.37, 1.36, 1.35, 1.34)"),
    ("latest", "kubernetes latest: not a version"),
    ("2.0.1", "kubernetes 2.0.1: not a version"),
])
def test_what_build_sh_cannot_name_is_one_line(paths, asked, said):
    done = printed(paths, asked)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and said in done.stderr


def test_the_lab_passes_build_sh_s_line_on(paths):
    with pytest.raises(LabError, match=r"^kubernetes 1\.33: no release of this minor is pinned"):
        cluster.build_dir(paths, "1.33")
    with pytest.raises(LabError, match=r"binaries not built \(.*\): run lab/build.sh --kubernetes 1\.36$"):
        cluster.bin_dir(paths, "1.36")


def test_matrix_releases_are_the_pinned_ones_one_per_minor_newest_first(paths):
    minors = [tuple(map(int, release[1:].split(".")[:2])) for release in suite.releases(paths)]
    assert len(minors) >= 4 and minors == sorted(set(minors), reverse=True)


def test_matrix_table_one_row_per_version():
    every = f"{len(faults.FAULTS)}/{len(faults.FAULTS)}"
    rows = [
        {"version": "v1.37.2", "build_seconds": 0.1, "ready_seconds": 16.5, "suite_seconds": 30.2,
         "faults": every, "verdict": suite.SIGNED_OFF, "outcomes": "80 passed, 3 skipped"},
        {"version": "1.35", "build_seconds": None, "ready_seconds": None, "suite_seconds": None,
         "faults": "-", "verdict": "lab failed", "outcomes": "timed out after 300s waiting for every node to be Ready"},
    ]
    assert [suite.proved(r) for r in rows] == [True, False]
    assert not suite.proved({**rows[0], "faults": "6/7 (kubelet-cgroups inject: timed out)"})
    header, signed, failed = suite.matrix_table(rows).splitlines()
    assert header.split()[:2] == ["kubernetes", "build"]
    assert signed.split()[:5] == ["v1.37.2", "0.1", "16.5", "30.2", every] and "SIGNED OFF (80 passed" in signed
    assert failed.split()[:5] == ["1.35", "-", "-", "-", "-"] and "lab failed (timed out" in failed

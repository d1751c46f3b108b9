"""seatrials.versions: which server versions the suite is proved on, and the one line for the others."""

import pytest

from seatrials import versions


@pytest.mark.parametrize(("git_version", "minor"), [
    ("v1.37.2", (1, 37)),
    ("v1.30.4-eks-a737599", (1, 30)),
    ("v1.29.3+k3s1", (1, 29)),
    ("v1.38.0-beta.0", (1, 38)),
    (" v1.34.4\n", (1, 34)),
    ("1.35", (1, 35)),
    ("", None),
    ("unknown", None),
    ("v1", None),
])
def test_minor_of_a_git_version(git_version, minor):
    assert versions.minor_of(git_version) == minor


@pytest.mark.parametrize("git_version", ["v1.34.4", "v1.35.0", "v1.36.3", "v1.37.2", "v1.37.0-rc.1", "v1.36.1-gke.1"])
def test_a_proved_minor_says_nothing(git_version):
    assert versions.unproved(git_version) is None


def test_proved_minors_run_oldest_to_newest_without_gaps():
    proved = versions.PROVED_MINORS
    assert list(proved) == sorted(proved)
    assert [m for _, m in proved] == list(range(proved[0][1], proved[-1][1] + 1))


def test_older_than_the_oldest():
    assert versions.unproved("v1.33.9") == (
        "Kubernetes v1.33.9 is older than 1.34, the oldest minor this suite is proved on "
        "(proved on 1.34, 1.35, 1.36, 1.37): its results are not proved")


def test_newer_than_the_newest():
    line = versions.unproved("v1.38.0-beta.0")
    assert line.startswith("Kubernetes v1.38.0-beta.0 is newer than 1.37, the newest minor this suite is proved on")
    assert "\n" not in line


def test_a_gap_in_the_proved_minors():
    assert versions.unproved("v1.35.1", ((1, 34), (1, 36))) == (
        "Kubernetes v1.35.1 is not a minor this suite is proved on (proved on 1.34, 1.36): its results are not proved")


@pytest.mark.parametrize("git_version", ["", "garbage", "v2"])
def test_what_is_not_a_version_is_said_too(git_version):
    line = versions.unproved(git_version)
    assert line == f"the server's version {git_version!r} is not a Kubernetes version; this suite is proved on " \
                   "1.34, 1.35, 1.36, 1.37"


def test_a_different_major_is_outside_too():
    assert "newer than 1.37" in versions.unproved("v2.0.0")

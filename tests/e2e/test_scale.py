"""The suite on 100 KWOK fake nodes against the lab's real apiserver (`tox -e lab-scale`; not in `make test`).

KWOK (`lab/build.sh --kwok`, `lab/lab fake-nodes N`) registers the nodes, runs the probe pods on them and
serves their kubelet API, so the apiservers' exec streaming, the collection, the diagnosis and the reports
are real; the probes' answers come from the labelled stand-in (lab/kwok_standin.py). Above
--pair-cases-up-to the cases grow with the nodes, not with their pairs."""

import os
import subprocess

import pytest

from seatrials.network.cases import ALL
from tests.e2e.conftest import ROOT, lab

pytestmark = pytest.mark.lab

FAKE_NODES = 100
ON_FAKES = ["--master-selector", "seatrials-lab/fake=master", "--worker-selector", "seatrials-lab/fake=worker"]


@pytest.fixture(scope="module")
def fakes(lab_env):
    built = subprocess.run([str(ROOT / "lab" / "build.sh"), "--kwok"], capture_output=True, text=True, env=os.environ)
    assert built.returncode == 0, f"lab/build.sh --kwok failed:\n{built.stderr[-2000:]}"
    started = lab("fake-nodes", str(FAKE_NODES), check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    lab("fake-nodes", "0", check=False)


def test_a_hundred_fake_nodes_sign_off_with_one_case_per_source(fakes, run_suite):
    run = run_suite(*ON_FAKES, timeout=1200)
    assert run.returncode == 0, run.output[-3000:]
    signoff = run.signoff
    assert signoff["verdict"] == "SIGNED OFF" and signoff["nodes"] == FAKE_NODES
    pair_cases = [c for c in signoff["checks"] if c["nodeid"].startswith("suites/test_network.py::")]
    assert pair_cases and all(c["case"].endswith(f"->{ALL}") for c in pair_cases)
    assert len(pair_cases) <= 10 * FAKE_NODES  # a few path kinds per source node, not 100 x 99 per kind


def test_every_fake_nodes_pods_dropped_fails_each_source_once(fakes, run_suite):
    assert lab("fake-nodes", str(FAKE_NODES), "--break", "all", check=False).returncode == 0
    try:
        run = run_suite(*ON_FAKES, timeout=1200)
    finally:
        lab("fake-nodes", str(FAKE_NODES), "--break", "none", check=False)
    assert run.returncode != 0 and run.signoff["verdict"] != "SIGNED OFF"
    failed = [case for check, case, _ in run.failures() if check == "test_pod_to_pod"]
    assert len(failed) == len(set(failed)) == FAKE_NODES, failed[:5]

"""End-to-end tests against the lab: a real cluster this machine runs (lab/).

The session brings the lab up when it is not running (and down again at the
end); every test runs the suite the way a user does, `pytest suites/`, in a
subprocess, and reads what it printed and the reports it wrote.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab"


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LAB), *args], capture_output=True, text=True, check=check,
                          timeout=900)


@pytest.fixture(scope="session")
def lab_env():
    """The lab's environment (KUBECONFIG, AWS_*, SEATRIALS_HARBOR_*, HARBOR_*), the lab up."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network and mount namespaces)")
    started_here = lab("status", check=False).returncode != 0
    if started_here:
        lab("down", check=False)  # a partial lab from an interrupted run
        up = lab("up", check=False)
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
    env = {}
    for line in lab("env").stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    yield env
    lab("heal", "--all", check=False)  # also what a fault's fix left behind
    if started_here:
        lab("down", check=False)


class SuiteRun:
    def __init__(self, proc: subprocess.CompletedProcess, reports: Path):
        self.returncode, self.stdout, self.stderr, self.reports = proc.returncode, proc.stdout, proc.stderr, reports

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def signoff(self) -> dict:
        return json.loads((self.reports / "signoff.json").read_text())

    def failures(self) -> list[tuple[str, str, str]]:
        """(check, case, cause) of every failed or errored case."""
        return [(c["check"], c["case"], c["cause"]) for c in self.signoff["checks"]
                if c["outcome"] in ("failed", "error")]


def suite_command(reports: Path, *args: str, target: Path = ROOT / "suites") -> list[str]:
    return [sys.executable, "-m", "pytest", str(target), "-q", "-p", "no:cacheprovider",
            "--reports-dir", str(reports), *args]


@pytest.fixture
def run_suite(lab_env, tmp_path):
    """Run `pytest suites/` against the lab as a user would; returns a SuiteRun."""
    runs = iter(range(1000))

    def run(*args: str, env: dict | None = None, timeout: float = 900, target: Path = ROOT / "suites") -> SuiteRun:
        reports = tmp_path / f"reports-{next(runs)}"
        proc = subprocess.run(suite_command(reports, *args, target=target), capture_output=True, text=True,
                              timeout=timeout,
                              env={**os.environ, **lab_env, **(env or {})}, cwd=ROOT)
        return SuiteRun(proc, reports)

    return run


@pytest.fixture(scope="session")
def kube(lab_env):
    """A plain client of the lab cluster, to look at what runs left behind."""
    api = config.new_client_from_config(lab_env["KUBECONFIG"])
    return client.CoreV1Api(api), client.CoordinationV1Api(api)


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel pip builds from this checkout (and its dependencies) and nothing of the
    checkout: its bin/ directory, with `seatrials` in it."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(where / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (where / "dist").glob("seatrials-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=300)
    bin_dir = where / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")})
    (bin_dir / "wheel-path").write_text(str(wheel))
    return bin_dir


def terminal_summary(output: str) -> str:
    """What seatrials printed at the end: its sections, from the failures by cause to the verdict."""
    start = output.find(" seatrials: failures by cause ")
    return output[output.rfind("\n", 0, start) + 1:].rstrip() if start >= 0 else output[-3000:]

"""docs/ci.md's nightly recipes, read out of the page and run as written against the lab, two nights each,
from a venv holding only the wheel (docs/ci.md, "What was run, and how", says what is run and what is not).
The second night of each proves the previous night's artifact became the baseline and that the real
Allure commandline drew a trend of both nights from the history the recipe carried over."""

import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, terminal_summary

pytestmark = pytest.mark.lab
CI_DOC = ROOT / "docs" / "ci.md"
SECRET = re.compile(r"^\$\{\{ secrets\.(\w+) \}\}$")
PROJECT, REF, JOB_TOKEN = "42", "main", "job-token-of-tonight"
# The recipes' policy is `all`. On the lab's native shape network holds a case nothing can check (no CNI agent
# DaemonSet seatrials knows), which `all` rightly refuses to sign off; the lab's nights require areas it checks
# entirely.
LAB_REQUIRE = "kubelet,credentials,harbor"
TOOLS = ("java", "npx", "unzip", "curl")  # what the recipes call besides seatrials (Allure 2 runs on Java 17)


def recipe(file: str) -> dict:
    """The YAML block of docs/ci.md whose first line is `# <file>`."""
    blocks = re.findall(r"```yaml\n(.*?)```", CI_DOC.read_text(), re.S)
    [block] = [b for b in blocks if b.startswith(f"# {file}\n")]
    return yaml.safe_load(block)


def runner_env(wheel_venv: Path, lab_env: dict, **extra: str) -> dict:
    """A CI runner's environment: the wheel's venv first on PATH (what `pip install` installs into), the lab's
    AWS and Harbor settings as the CI's variables, no kubeconfig but the one the recipe names, the lab's policy."""
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")}
    lab = {k: v for k, v in lab_env.items() if k != "KUBECONFIG"}
    return base | lab | {"PATH": f"{wheel_venv}:{os.environ['PATH']}",
                         "SEATRIALS_PACKAGE": (wheel_venv / "wheel-path").read_text()} | extra | {
                             "SEATRIALS_REQUIRE": LAB_REQUIRE}


def run(script: str, shell: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([*shell, script], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    print(f"\n--- {cwd.name}: exit {proc.returncode}\n{terminal_summary(proc.stdout)}\n{proc.stderr[-1500:]}")
    return proc


def trend(report: Path) -> list[dict]:
    """Allure's trend: one entry per run it knows of, newest first (what its trend widget draws)."""
    history = json.loads((report / "history" / "history-trend.json").read_text())
    assert json.loads((report / "widgets" / "history-trend.json").read_text()) == history
    return history


def two_nights(tmp_path: Path, ci: str, previous: str, script: str, shell: list[str], env_of) -> str:
    """A recipe's script two nights running, each in a fresh working folder that holds the night before's
    reports at `previous` (where the CI's artifact download puts them). Both sign off, the second is compared
    with the first, and Allure's trend has both. The executor type Allure was told."""
    nights = []
    for n in (1, 2):
        workdir = tmp_path / f"{ci}-night-{n}"
        workdir.mkdir()
        if nights:
            shutil.copytree(tmp_path / f"{ci}-night-{n - 1}" / "reports", workdir / previous)
        proc = run(script, shell, workdir, env_of(workdir, n))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        nights.append(json.loads((workdir / "reports" / "signoff.json").read_text()))
        assert nights[-1]["verdict"] == "SIGNED OFF" and nights[-1]["required_areas"] == LAB_REQUIRE.split(",")
        assert len(trend(workdir / "reports" / "allure-report")) == n
    assert nights[0]["baseline"]["runs"] == 0  # --fail-on new with no baseline yet: every failure would be new
    assert nights[1]["baseline"]["latest"]["run_id"] == nights[0]["run_id"]
    return json.loads((workdir / "reports" / "allure-results" / "executor.json").read_text())["type"]


@pytest.fixture(autouse=True)
def recipe_tools():
    """Not in lab/setup-host.sh (only these tests need them): a machine without them fails here, in one line."""
    if missing := [tool for tool in TOOLS if not shutil.which(tool)]:
        pytest.fail(f"docs/ci.md's recipes need {', '.join(missing)}: "
                    "apt-get install openjdk-17-jre-headless npm unzip curl", pytrace=False)


@pytest.fixture
def gitlab_artifacts():
    """A test double of the one GitLab endpoint the recipe calls, on 127.0.0.1: the artifacts of a job of the
    latest successful pipeline of a ref, for the job token; `served["zip"]` or GitLab's 404."""
    served = {"zip": None, "asked": []}
    expected = f"/api/v4/projects/{PROJECT}/jobs/artifacts/{REF}/download?job=seatrials-nightly"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            served["asked"].append(self.path)
            found = self.path == expected and self.headers.get("JOB-TOKEN") == JOB_TOKEN and served["zip"]
            body = served["zip"] if found else b'{"message":"404 Not found"}'
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v4", served
    server.shutdown()
    server.server_close()


def test_the_gitlab_job_as_written(wheel_venv, lab_env, gitlab_artifacts, tmp_path):
    job = recipe(".gitlab-ci.yml")["seatrials-nightly"]
    assert job["variables"]["SEATRIALS_REQUIRE"] == "all"
    assert job["artifacts"]["paths"] == ["reports/"] and job["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    api, served = gitlab_artifacts
    env = runner_env(wheel_venv, lab_env, **{k: v for k, v in job["variables"].items() if k != "SEATRIALS_PACKAGE"},
                     CI="true", GITLAB_CI="true", CI_API_V4_URL=api, CI_PROJECT_ID=PROJECT, CI_COMMIT_REF_NAME=REF,
                     CI_JOB_NAME="seatrials-nightly", CI_JOB_TOKEN=JOB_TOKEN,
                     STAGING_KUBECONFIG=lab_env["KUBECONFIG"])  # a variable of type File: a path
    nights = []
    for n in (1, 2):
        workdir = tmp_path / f"gitlab-night-{n}"  # a fresh checkout each night
        workdir.mkdir()
        proc = run("\n".join(job["script"]), ["bash", "-eo", "pipefail", "-c"], workdir, env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert ("no previous nightly artifact: tonight has no baseline" in proc.stdout) == (n == 1)
        nights.append(json.loads((workdir / "reports" / "signoff.json").read_text()))
        assert nights[-1]["verdict"] == "SIGNED OFF" and nights[-1]["required_areas"] == LAB_REQUIRE.split(",")
        assert len(trend(workdir / "reports" / "allure-report")) == n
        # what GitLab keeps of tonight: reports/, zipped with its paths, tomorrow's baseline
        served["zip"] = Path(shutil.make_archive(str(tmp_path / f"artifacts-{n}"), "zip", workdir, "reports")
                             ).read_bytes()
    assert nights[0]["baseline"]["runs"] == 0  # --fail-on new with no baseline yet: every failure would be new
    assert nights[1]["baseline"]["latest"]["run_id"] == nights[0]["run_id"] and nights[1]["baseline"]["runs"] == 1
    assert len(served["asked"]) == 2


def test_the_github_workflow_as_written(wheel_venv, lab_env, tmp_path):
    workflow = recipe(".github/workflows/seatrials-nightly.yml")
    steps = workflow["jobs"]["nightly"]["steps"]
    [step] = [s for s in steps if s.get("name") == "sea trials"]
    assert step["shell"] == "bash" and step["env"]["SEATRIALS_REQUIRE"] == "all"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    secrets = {**lab_env, "STAGING_KUBECONFIG": Path(lab_env["KUBECONFIG"]).read_text()}
    step_env = {k: secrets[m.group(1)] if (m := SECRET.match(str(v))) else str(v) for k, v in step["env"].items()
                if k != "SEATRIALS_PACKAGE"}

    def runner(workdir: Path, n: int) -> dict:
        (workdir / "runner-temp").mkdir()
        return runner_env(wheel_venv, lab_env, **step_env, CI="true", GITHUB_ACTIONS="true",
                          RUNNER_TEMP=str(workdir / "runner-temp"))

    # what `gh run download <last> --name seatrials-reports --dir previous` leaves: the folder's contents
    executor = two_nights(tmp_path, "github", "previous", step["run"],
                          ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"], runner)
    assert executor == "github"


def jenkinsfile() -> tuple[dict, str]:
    """The Jenkinsfile of docs/ci.md: its `environment {}` values and its `sh '''...'''` script."""
    [block] = re.findall(r"```groovy\n// Jenkinsfile\n(.*?)```", CI_DOC.read_text(), re.S)
    environment = re.search(r"environment \{\n(.*?)\n  \}", block, re.S).group(1)
    [script] = re.findall(r"sh '''\n(.*?)'''", block, re.S)
    return dict(re.findall(r"(\w+) = '([^']*)'", environment)), script


def test_the_jenkins_pipeline_as_written(wheel_venv, lab_env, tmp_path):
    environment, script = jenkinsfile()
    assert set(environment) == {"SEATRIALS_PACKAGE", "SEATRIALS_REQUIRE"} and environment["SEATRIALS_REQUIRE"] == "all"

    def agent(workdir: Path, n: int) -> dict:  # withCredentials: the Secret file as a path, AWS and Harbor's
        return runner_env(wheel_venv, lab_env, JENKINS_URL="http://127.0.0.1:1/", BUILD_NUMBER=str(n),
                          JOB_NAME="seatrials-nightly", STAGING_KUBECONFIG=lab_env["KUBECONFIG"])

    # what copyArtifacts(filter: 'reports/**', target: 'previous') leaves: the paths kept; the sh step's `sh -xe`
    executor = two_nights(tmp_path, "jenkins", "previous/reports", script, ["sh", "-xe", "-c"], agent)
    assert executor == "jenkins"

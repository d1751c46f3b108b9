"""What Allure shows beyond the results allure-pytest writes: one category per cause (the
failures of a cause share one status message, so a cause is one group), the verdict and the
cluster's fingerprint as its environment, who ran it as its executor, and the real time the
probe trial took on the checks it measured."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from seatrials import causes
from seatrials.reporting.baseline import listed
from seatrials.reporting.records import headline

MEASURED = ("measured", "probe trial")
CAUSE = re.compile(r"\[cause: ([\w.-]+)\]")  # the label conclude puts on checks the probe trial answered
# CI systems Allure knows: (environment variable that says so, executor type, name, build URL from the environment)
CI = (("GITLAB_CI", "gitlab", "GitLab CI", lambda env: env.get("CI_JOB_URL", "")),
      ("GITHUB_ACTIONS", "github", "GitHub Actions",
       lambda env: f"{env.get('GITHUB_SERVER_URL', '')}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/"
                   f"{env.get('GITHUB_RUN_ID', '')}"),
      ("JENKINS_URL", "jenkins", "Jenkins", lambda env: env.get("BUILD_URL", "")))


def categories() -> list[dict]:
    cats = [{"name": f"{c.id}: {c.title}", "matchedStatuses": ["failed"],
             "messageRegex": rf"(?s).*\[cause: {re.escape(c.id)}\].*"} for c in causes.catalog().values()]
    cats.append({"name": "not checked (skipped)", "matchedStatuses": ["skipped"]})
    cats.append({"name": "broken (setup or seatrials error)", "matchedStatuses": ["broken"]})
    return cats


def environment(signoff: dict) -> dict[str, str]:
    values = {"verdict": signoff["verdict"], "verdict reasons": "; ".join(signoff["verdict_reasons"]),
              "run id": signoff.get("run_id") or "", "server": signoff.get("server") or "",
              "context": signoff.get("context") or "", "tool": signoff.get("tool", {}).get("version", ""),
              "command": signoff.get("command", ""), "started": signoff.get("started", ""),
              "ended": signoff.get("ended", ""), "fingerprint": signoff.get("fingerprint_hash", "")}
    values.update({k: ", ".join(v) if isinstance(v, list) else str(v) for k, v in signoff.get("cluster", {}).items()})
    if since := signoff.get("baseline"):
        values["since last run"] = ", ".join(f"{len(lines)} {heading}" for heading, lines in listed(since))
        values["exit policy"] = since["exit_policy"] or "the verdict's exit code"
    return values


def write_environment(allure_dir: Path, signoff: dict) -> None:
    """Allure shows environment.properties on its overview: the verdict and why, next to the cluster."""
    lines = [f"{k.replace(' ', '.')}={v}".replace("\n", " ") for k, v in environment(signoff).items()]
    (allure_dir / "environment.properties").write_text("\n".join(lines) + "\n")


def executor(signoff: dict, env=os.environ) -> dict:
    kind, name, url = "local", socket.gethostname(), ""
    for variable, ci_kind, ci_name, build_url in CI:
        if env.get(variable):
            kind, name, url = ci_kind, ci_name, build_url(env)
            break
    return {"name": name, "type": kind, "buildName": f"seatrials run {signoff.get('run_id') or '(none)'}",
            "buildUrl": url, "reportName": f"seatrials sign-off: {signoff['verdict']}"}


def write(allure_dir: Path, signoff: dict, trial_window: tuple[float, float] | None) -> None:
    (allure_dir / "categories.json").write_text(json.dumps(categories(), indent=2))
    write_environment(allure_dir, signoff)
    (allure_dir / "executor.json").write_text(json.dumps(executor(signoff), indent=2))
    for path in allure_dir.glob("*-result.json"):
        result = json.loads(path.read_text())
        if finish(result, trial_window):
            path.write_text(json.dumps(result))


def finish(result: dict, trial_window: tuple[float, float] | None) -> bool:
    """One status message per cause (Allure groups a category's results by message; the evidence stays in
    the trace), and the probe trial's measurement window on the checks it answered: every path was measured
    in parallel then. True when the result changed."""
    changed = False
    details = result.get("statusDetails") or {}
    if (match := CAUSE.search(details.get("message") or "")) and match.group(1) in causes.catalog():
        details["message"] = headline(match.group(1))
        changed = True
    if trial_window and {"name": MEASURED[0], "value": MEASURED[1]} in result.get("labels", []):
        result["start"], result["stop"] = (round(t * 1000) for t in trial_window)
        changed = True
    return changed

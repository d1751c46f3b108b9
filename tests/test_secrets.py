"""No secret reaches a report or the terminal: a kubeconfig's token and client key, a password inside
a URL, the AWS secret key and the Harbor password are planted in every path a message can take (a
failure's evidence, a "not checked" reason, notes and properties next to a pass, captured output, an
exception's traceback, a parameter, an allure label), then every file the run wrote is searched."""

import secrets

pytest_plugins = ["pytester"]

SECRETS = {name: f"{name}-{secrets.token_hex(6)}" for name in
           ("token", "clientkey", "urlpassword", "awssecret", "harborpassword")}

CONFTEST = f"""
from types import SimpleNamespace

import pytest

from seatrials.options import Settings
from seatrials.plugin import (STATE, Run, RunReporter, pytest_pyfunc_call, pytest_runtest_makereport,  # noqa: F401
                              pytest_sessionfinish)
from seatrials.topology import Node, Topology

S = {SECRETS!r}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "cause(*ids): causes")
    config.addinivalue_line("markers", "area(name): area")
    settings = Settings(kubeconfig=None, context="lab", reports_dir=config.rootpath / "reports",
                        harbor_url=f"https://admin:{{S['urlpassword']}}@harbor.example.com",
                        extra_secrets=[S["awssecret"], S["harborpassword"]])
    users = [{{"name": "u", "user": {{"token": S["token"], "client-key-data": S["clientkey"]}}}}]
    cluster = SimpleNamespace(server="https://127.0.0.1:6443", context="lab", kubeconfig={{"users": users}},
                              requests_by_endpoint={{"GET /version": 7}})
    topology = Topology([Node("master-1", "master", "10.240.0.11")], ("10.32.0.1", 443), [("10.240.0.11", 6444)],
                        "other")
    config.stash[STATE] = Run(settings, cluster=cluster, topology=topology, run_id="r1")
    config.option.xmlpath = str(config.rootpath / "reports" / "junit.xml")
    config.pluginmanager.register(RunReporter(config), "seatrials-run-reporter")
"""

SUITE = f"""
import allure
import pytest

from seatrials.causes import Result

S = {SECRETS!r}
ALL = " ".join(S.values())
pytestmark = pytest.mark.area("network")


@pytest.mark.cause("sg-node-to-apiserver")
def test_failure_evidence():
    print("stdout:", ALL)
    return Result.failed("sg-node-to-apiserver", ["evidence " + ALL], hint="hint " + ALL)


@pytest.mark.cause("unknown")
def test_not_checked():
    return Result.not_checked("reason " + ALL)


@pytest.mark.cause("unknown")
def test_notes_and_properties():
    allure.dynamic.label("owner", ALL)
    return Result.passed(["note " + ALL], detail=ALL)


@pytest.mark.cause("unknown")
def test_traceback():
    raise RuntimeError("boom " + ALL)


@pytest.mark.cause("unknown")
@pytest.mark.parametrize("param", [ALL], ids=["a-param"])
def test_parameter(param):
    return Result.passed()
"""


def test_no_secret_in_any_report_file_or_the_terminal(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA", "--alluredir", "reports/allure-results")
    written = [p for p in (pytester.path / "reports").rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"junit.xml", "signoff.json", "signoff.md", "signoff.html", "environment.properties"} <= names
    assert any(n.endswith("-result.json") for n in names) and any("attachment" in n for n in names)
    texts = {str(p.relative_to(pytester.path)): p.read_text(errors="replace") for p in written}
    texts["terminal"] = result.stdout.str() + result.stderr.str()
    assert "evidence" in texts["reports/junit.xml"] and "reason" in texts["terminal"]  # the messages are there
    leaks = [(where, name) for where, text in texts.items() for name, value in SECRETS.items() if value in text]
    assert leaks == []

"""Reports: secrets never get through; a cause names the nodes it concerns and fills its fix with
their ids; the one-line message; Markdown and JSON carry what the HTML says; pictures at any size;
cause pages from the catalog and the prose; JUnit and Allure completed."""

import html
import json
import re
import xml.etree.ElementTree as ET

from seatrials import causes, reporting
from seatrials.network.paths import ProbeResult
from seatrials.network.trial import Trial
from seatrials.reporting import allure, junit, pages, svg
from seatrials.reporting.signoff import concrete_fix
from tests import report_samples

KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----"


def test_known_secret_values_and_secret_shapes_are_redacted():
    text = (f"token=abcd1234efgh password: hunter2hunter Authorization: Bearer eyJhbGciOi.x.y "
            f"https://admin:s3cr3tpass@harbor.example.com/v2/ AKIAIOSFODNN7EXAMPLE {KEY} mysecretvalue")
    out = reporting.redact(text, ["mysecretvalue"])
    for secret in ("abcd1234efgh", "hunter2hunter", "eyJhbGciOi", "s3cr3tpass", "AKIAIOSFODNN7EXAMPLE",
                   "MIIEowIBAAKCAQEAx", "mysecretvalue"):
        assert secret not in out
    assert "harbor.example.com" in out and "https://admin:" in out


def test_each_secret_shape_alone_is_redacted_and_a_plain_line_is_left_as_it_is():
    """Each shape by itself: a text is searched for what any pattern needs first (the fast path of evidence)."""
    shapes = {"secret: abcd1234efgh": "abcd1234efgh", "PASSWD=hunter2hunter": "hunter2hunter",
              "client-key-data: LS0tLS1CRUdJTg==": "LS0tLS1CRUdJTg==", "bearer eyJhbGciOi.x.y": "eyJhbGciOi",
              "http://u:s3cr3tpass@h/": "s3cr3tpass", "ASIAIOSFODNN7EXAMPLE": "ASIAIOSFODNN7EXAMPLE", KEY: "MIIEow"}
    for text, secret in shapes.items():
        assert secret not in reporting.redact(text), text
    line = "pod-to-pod kwok-worker-1 -> kwok-worker-2 (10.242.0.5:9376): timeout after 2 tries: nc: timed out"
    assert reporting.redact(line) == line
    lines = [line, "ASIAIOSFODNN7EXAMPLE", "token: mysecretvalue2", "saw hunter2hunter2"]
    assert reporting.redaction.redact_lines(lines, ["hunter2hunter2"]) == [line, "ASIA[REDACTED]", "token: [REDACTED]",
                                                                          "saw [REDACTED]"]
    assert reporting.redaction.redact_lines(lines[:1]) == lines[:1]


def test_categories_group_failures_by_cause_message():
    cats = reporting.allure_categories()
    by_name = {c["name"].split(":")[0]: c for c in cats}
    assert set(causes.catalog()) <= set(by_name)
    message = causes.Finding("kubelet-cgroups", ["worker-1: kubelet log: ..."]).message()
    regex = by_name["kubelet-cgroups"]["messageRegex"]
    assert re.fullmatch(regex, message)
    assert not re.fullmatch(by_name["ec2-source-dest-check"]["messageRegex"], message)


def test_the_one_line_message_says_cause_title_and_what_failed_where():
    finding = causes.Finding("ec2-source-dest-check", [
        "host-to-pod worker-2 -> worker-1 (10.200.22.11:9376): timeout after 3 tries, nc: timed out",
        "pod-to-pod worker-2 -> worker-1 (10.200.22.11:9376): timeout", "pattern: pod IPs on worker-1 ..."])
    line = reporting.one_line(finding)
    assert line == ("[cause: ec2-source-dest-check] EC2 source/destination check is enabled on a node: host-to-pod "
                    "worker-2 -> worker-1 (10.200.22.11:9376): timeout after 3 tries, nc: timed out (+1 more)")
    long = causes.Finding("unknown", ["x" * 1000 + "\nsecond line"])
    assert "\n" not in reporting.one_line(long) and len(reporting.one_line(long)) <= 300


def test_a_cause_names_its_node_with_instance_and_address_and_fills_the_fix():
    s = reporting.signoff(report_samples.three_nodes(("worker-2",)))
    [cause] = s["causes"]
    worker_2 = next(n for n in s["node_list"] if n["name"] == "worker-2")
    [subject] = cause["subjects"]
    assert (subject["node"], subject["instance"], subject["ip"]) == ("worker-2", worker_2["instance"], "10.240.0.13")
    assert subject["what"].startswith(f"instance {worker_2['instance']} sourceDestCheck: true on worker-2")
    assert subject["failures"] == cause["failures"] == 14 and cause["cluster_wide"] == []
    assert cause["fix_commands"] == [f"aws ec2 modify-instance-attribute --instance-id {worker_2['instance']} "
                                     "--no-source-dest-check"]
    assert "(the commands below)" in cause["fix"] and "<id>" not in cause["fix"]
    assert cause["patterns"][0].startswith("pod IPs on worker-2 are unreachable")


def test_two_nodes_each_carry_every_failure_that_names_them():
    s = reporting.signoff(report_samples.three_nodes(("worker-1", "worker-2")))
    [cause] = s["causes"]
    by_node = {x["node"]: x for x in cause["subjects"]}
    assert set(by_node) == {"worker-1", "worker-2"} and len(cause["fix_commands"]) == 2
    both = {"test_pod_to_pod[worker-1->worker-2]", "test_host_to_pod[worker-1->worker-2]"}
    assert both <= set(by_node["worker-1"]["checks"]) and both <= set(by_node["worker-2"]["checks"])


def test_a_healthy_signoff_names_no_cause_and_says_what_was_not_verified_and_why():
    s = reporting.signoff(report_samples.three_nodes())
    assert s["verdict"] == "SIGNED OFF" and s["causes"] == [] and s["errors"] == []
    assert s["not_verified_reasons"]["network"] == [{"reason": "no --expect-service-ip given",
                                                     "cases": ["test_kubernetes_service_ip"]}]
    assert s["partly_checked"] == [{"check": "test_front_proxy_settings", "area": "apiserver",
                                    "notes": ["apiserver flags: apiserver does not run as a pod here"]}]
    assert s["areas"]["network"] == {"passed": 57, "skipped": 1} and s["areas"]["harbor"] == {}
    assert s["schema_version"] == 2 and s["tool"]["version"].startswith("0.1.0")


def test_markdown_and_json_carry_what_the_html_says():
    s = reporting.signoff(report_samples.three_nodes(("worker-2",)))
    html_text = re.sub(r"<[^>]+>", " ", reporting.html_report(s)).replace("&#x27;", "'").replace("&gt;", ">")
    md, data = reporting.markdown(s), json.dumps(s)
    [cause] = s["causes"]
    facts = [s["verdict"], *s["verdict_reasons"], cause["title"], cause["fix_commands"][0],
             cause["subjects"][0]["what"], s["fingerprint_hash"], s["tool"]["version"], s["command"],
             "no --expect-service-ip given", "apiserver flags: apiserver does not run as a pod here", s["ended"]]
    facts += [e for c in s["checks"] if c["outcome"] == "failed" for e in c["evidence"] if not e.startswith("pattern")]
    for fact in facts:
        assert fact in html_text and fact in md and fact in data, fact


def test_the_fingerprint_hash_is_stable_and_follows_the_cluster():
    first, again = (reporting.signoff(report_samples.three_nodes()) for _ in range(2))
    assert first["fingerprint_hash"] == again["fingerprint_hash"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first["fingerprint_hash"])
    moved = report_samples.three_nodes()
    moved.nodes[1]["ip"] = "10.240.0.99"
    assert reporting.signoff(moved)["fingerprint_hash"] != first["fingerprint_hash"]


def test_matrix_rows_and_the_picture_carry_a_symbol_per_outcome():
    results = [ProbeResult("pod-to-pod", "a", "b", "x", "ok", ""),
               ProbeResult("pod-to-pod", "b", "a", "x", "timeout", ""),
               ProbeResult("host-to-host", "a", "b", "x", "refused", ""),
               ProbeResult("host-to-host", "b", "a", "x", "not-run", "")]
    m = reporting.matrices(Trial("r", "ns", [], [], results))
    assert m["pod-to-pod"]["rows"] == {"a": " o", "b": "t "} and m["host-to-host"]["rows"] == {"a": " r", "b": "- "}
    picture = reporting.matrix_svg("host-to-host", m["host-to-host"], "host-to-host: t")
    ET.fromstring(picture)
    assert ">R</text>" in picture and "\u2013</text>" in picture and "url(#nopath-host-to-host)" in picture
    assert "b \u2192 a: not run" in picture  # the tooltip says it in words


def test_a_heatmap_names_failing_and_silent_lines():
    m = reporting.signoff(report_samples.five_hundred_nodes())["matrix"]
    sources, targets = svg.named_lines(m["pod-to-pod"])
    assert [x.text for x in targets] == ["worker-7 (498 failed)", "worker-311 (498 failed)", "worker-400 (not run)"]
    assert {x.name for x in sources} == {"worker-7", "worker-311", "worker-400"}
    picture = reporting.matrix_svg("pod-to-pod", m["pod-to-pod"])
    ET.fromstring(picture)
    assert "data:image/png;base64," in picture and "worker-7 (498 failed)" in picture and "<rect" in picture
    strip = reporting.matrix_svg("dns", m["dns"])  # 500 sources, one target: laid across
    assert "kubernetes.default (5 failed)" in strip and "from \u2192" in strip


def test_cause_pages_render_the_catalog_facts_and_the_prose_once():
    for cause in causes.catalog().values():
        page = pages.page_html(cause.id)
        text = re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)
        assert cause.severity in page and "**" not in text and "`" not in text
        assert page.count(f"<h1>{html.escape(cause.title)}</h1>") == 1
        prose = (causes.DOCS_DIR / f"{cause.id}.md").read_text()  # the facts live in the catalog only
        assert not re.search(r"^# |\*\*(Severity|Origin):\*\*", prose, re.M), cause.id
    assert '<a href="unknown.html">' in pages.markdown_html("see [unknown](unknown.md)")


def test_written_reports_carry_their_pages_and_pictures(tmp_path):
    (tmp_path / "matrix-gone.svg").write_text("<svg/>")
    reporting.write_report(tmp_path, reporting.signoff(report_samples.three_nodes(("worker-2",))))
    assert not (tmp_path / "matrix-gone.svg").exists() and (tmp_path / "matrix-pod-to-pod.svg").exists()
    for cause in causes.catalog():
        assert (tmp_path / "causes" / f"{cause}.html").exists() and (tmp_path / "causes" / f"{cause}.md").exists()
    assert json.loads((tmp_path / "signoff.json").read_text())["causes"][0]["page"] == \
        "causes/ec2-source-dest-check.html"


def test_junit_gets_suite_properties_and_a_type_on_every_failure(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest"><testcase name="a"><failure message="[cause: '
                    'kubelet-cgroups] Kubelet started without ...: worker-1 ...">body</failure></testcase>'
                    '<testcase name="b"><failure message="TypeError: seatrials bug">tb</failure></testcase>'
                    "</testsuite></testsuites>")
    s = reporting.signoff(report_samples.three_nodes())
    junit.complete(path, s)
    root = ET.parse(path).getroot()
    assert [f.get("type") for f in root.iter("failure")] == ["kubelet-cgroups", "TypeError"]
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").find("properties")}
    assert props["verdict"] == "SIGNED OFF" and props["fingerprint_hash"] == s["fingerprint_hash"]
    assert props["run_id"] == s["run_id"]


def test_allure_groups_a_cause_in_one_message_and_gives_trial_checks_their_time():
    result = {"status": "failed", "labels": [{"name": "measured", "value": "probe trial"}], "start": 5, "stop": 5,
              "statusDetails": {"message": "seatrials.plugin.CauseFailure: [cause: kubelet-cgroups] Kubelet ...\n"
                                           "evidence:\n  - worker-1: ...", "trace": "evidence ..."}}
    assert allure.finish(result, (100.0, 101.5))
    assert result["statusDetails"]["message"] == f"[cause: kubelet-cgroups] {causes.cause('kubelet-cgroups').title}"
    assert (result["start"], result["stop"]) == (100000, 101500) and result["statusDetails"]["trace"]
    assert not allure.finish({"status": "passed", "labels": []}, (1.0, 2.0))


def test_allure_environment_and_executor():
    s = reporting.signoff(report_samples.three_nodes())
    env = allure.environment(s)
    assert env["fingerprint"] == s["fingerprint_hash"] and env["verdict"] == "SIGNED OFF" and env["pod cidrs"]
    ci = allure.executor(s, {"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example.com/j/1"})
    assert ci["type"] == "gitlab" and ci["buildUrl"] == "https://gitlab.example.com/j/1"
    assert ci["buildName"] == f"seatrials run {s['run_id']}" and ci["reportName"] == "seatrials sign-off: SIGNED OFF"
    assert allure.executor(s, {})["type"] == "local"


def test_the_fix_of_a_node_without_an_instance_says_which_id_is_needed():
    text, commands = concrete_fix("Disable it (aws ec2 x --instance-id <id>) now.", [
        {"node": "worker-9", "instance": "", "ip": "10.0.0.9"}])
    assert commands == ["aws ec2 x --instance-id <instance of worker-9>"]
    assert text == "Disable it (the commands below) now."

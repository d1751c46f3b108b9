"""One cause catalog: the data file, the pages and the suite's markers agree."""

import ast
from pathlib import Path

from seatrials import causes

ROOT = Path(__file__).resolve().parent.parent
FIELD_REPORT_CAUSES = {"ec2-source-dest-check", "sg-node-to-apiserver", "sg-master-inbound-from-nodes",
                       "kubelet-cgroups", "apiserver-requestheader-allowed-names", "client-pem-not-base64",
                       "harbor-k8s-deploy-stale-ui"}


def declared_causes() -> dict[str, set[str]]:
    """cause ids declared by @pytest.mark.cause(...) on each suite check, read from the source."""
    found = {}
    for path in (ROOT / "suites").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        marks = {}
        for node in ast.walk(tree):  # module-level aliases such as POD_IP_CAUSES = pytest.mark.cause(...)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    ast.unparse(node.value.func) == "pytest.mark.cause":
                marks[node.targets[0].id] = {a.value for a in node.value.args}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids = set()
                for d in node.decorator_list:
                    if isinstance(d, ast.Call) and ast.unparse(d.func) == "pytest.mark.cause":
                        ids |= {a.value for a in d.args}
                    elif isinstance(d, ast.Name) and d.id in marks:
                        ids |= marks[d.id]
                found[f"{path.name}::{node.name}"] = ids
    return found


def test_catalog_has_the_field_report_causes_and_says_where_each_comes_from():
    catalog = causes.catalog()
    assert {cid for cid, c in catalog.items() if c.origin == "field-report"} == FIELD_REPORT_CAUSES
    assert {c.origin for c in catalog.values()} <= {"field-report", "added", "seatrials"}
    assert catalog["unknown"].origin == "seatrials"


def test_every_cause_has_a_page_and_every_page_a_cause():
    pages = {p.stem for p in causes.DOCS_DIR.glob("*.md")}
    assert pages == set(causes.catalog())
    for c in causes.catalog().values():
        assert (ROOT / c.page).exists()


def test_every_cause_states_what_it_requires_and_what_rules_it_out():
    for cid, c in causes.catalog().items():
        if cid != "unknown":
            assert c.requires and c.ruled_out_by, cid
        for text in (*c.signals, *c.requires, *c.ruled_out_by):
            assert isinstance(text, str), (cid, text)  # an unquoted "AWS: ..." is a mapping in YAML


def test_every_suite_module_declares_its_area():
    from seatrials.options import AREAS

    for path in (ROOT / "suites").glob("test_*.py"):
        assert any(f'pytestmark = pytest.mark.area("{area}")' in path.read_text() for area in AREAS), path.name


def test_every_suite_check_declares_known_causes():
    declared = declared_causes()
    assert declared, "no suite checks found"
    for check, ids in declared.items():
        assert ids, f"{check} declares no cause"
        assert ids <= set(causes.catalog()), f"{check} declares unknown ids {ids - set(causes.catalog())}"


def test_every_documented_cause_is_caught_by_some_check():
    covered = set().union(*declared_causes().values())
    assert covered >= FIELD_REPORT_CAUSES, f"no check points at {FIELD_REPORT_CAUSES - covered}"


def test_a_finding_message_carries_id_evidence_fix_and_page():
    f = causes.Finding("sg-node-to-apiserver", ["pod-to-apiserver worker-1 -> 10.240.0.11:6444: timeout"])
    text = f.message()
    assert text.startswith("[cause: sg-node-to-apiserver]")
    assert "10.240.0.11:6444: timeout" in text
    assert "fix: " in text and "docs/causes/sg-node-to-apiserver.md" in text


def test_a_finding_outside_the_catalog_is_a_bug():
    import pytest

    with pytest.raises(KeyError, match="not in the cause catalog"):
        causes.Finding("made-up-cause", [])

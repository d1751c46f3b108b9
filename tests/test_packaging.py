"""The wheel carries the whole suite: its modules, the probes' manifests and the cause pages, next to the
package that reads them (a clean-venv install is run against the lab in tests/e2e/test_nightly.py)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_the_suite_its_manifests_and_cause_pages(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("seatrials-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"seatrials/suites/{p.name}" for p in (ROOT / "suites").glob("*.py")}
    expected |= {f"seatrials/manifests/{p.name}" for p in (ROOT / "manifests").glob("*.yaml")}
    expected |= {f"seatrials/pages/{p.name}" for p in (ROOT / "docs" / "causes").glob("*.md")}
    expected |= {"seatrials/causes.yaml", "seatrials/network/fanout.sh", "seatrials/reporting/report.css"}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith(("tests/", "lab/", "suites/", "docs/"))]

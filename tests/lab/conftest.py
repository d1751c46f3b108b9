"""The lab's own unit tests: its package lives in lab/seatrials_lab, outside the seatrials package."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))

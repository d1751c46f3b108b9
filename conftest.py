"""The seatrials options, so that `pytest --help` lists them anywhere in this
repository without touching a cluster. The run itself is driven by
suites/conftest.py (see seatrials/plugin.py)."""

pytest_plugins = ["seatrials.options"]

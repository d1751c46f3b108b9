"""Registers the seatrials options, so that `pytest --help` lists them anywhere
in this repository without touching a cluster. The run itself is driven by
suites/conftest.py (see seatrials/plugin.py)."""

from seatrials.options import add_options


def pytest_addoption(parser):
    add_options(parser)

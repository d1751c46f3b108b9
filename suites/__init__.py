"""The acceptance suite: `pytest suites/` in a checkout, `seatrials run` (or `pytest --pyargs seatrials.suites
-p seatrials.options`) where seatrials is installed."""

"""Acceptance sea trials: the hooks and fixtures of a run live in seatrials.plugin."""

from seatrials.plugin import *  # noqa: F403 - pytest finds hooks and fixtures by name in this module

"""Reliability suite hook: print the tally of what was tried at the end of the pytest run.

Each attack test adds to :data:`tests.reliability._tally.TALLY` (hostile queries tried and
refused, bad inputs, kills survived, runs verified); ``pytest_terminal_summary`` prints one
line per count so a CI log shows the numbers the reliability issue asks for
(docs/reliability.md has the commands).
"""

from __future__ import annotations

from tests.reliability._tally import TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY:
        return
    terminalreporter.section("reliability counts")
    for key in sorted(TALLY):
        terminalreporter.write_line(f"{key}: {TALLY[key]}")

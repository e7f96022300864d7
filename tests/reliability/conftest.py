"""Shared pieces of the reliability suite: a tally of what was tried, printed at the end.

Each attack test adds to :data:`TALLY` (hostile queries tried and refused, bad inputs, kills
survived, runs verified); ``pytest_terminal_summary`` prints one line per count so a CI log
shows the numbers the reliability issue asks for (docs/reliability.md has the commands).
"""

from __future__ import annotations

from collections import Counter

#: Counts gathered by the reliability tests of this session.
TALLY: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY:
        return
    terminalreporter.section("reliability counts")
    for key in sorted(TALLY):
        terminalreporter.write_line(f"{key}: {TALLY[key]}")

"""Counts gathered by the reliability tests of one pytest run (printed by the conftest hook)."""

from __future__ import annotations

from collections import Counter

#: hostile queries tried/refused, bad inputs, kills survived, runs verified, …
TALLY: Counter[str] = Counter()

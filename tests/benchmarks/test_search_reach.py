"""The reference numbers ``benchmarks/search.py`` prints next to its targets are exact."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

_spec = importlib.util.spec_from_file_location(
    "search_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "search.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["search_bench"] = bench  # dataclasses look their module up while it loads
_spec.loader.exec_module(bench)


def test_random_search_expectation_matches_simulation():
    rng = np.random.default_rng(0)
    regret = rng.uniform(size=30)
    regret[[3, 7]] = 0.0, 1.0
    draws = [regret[rng.permutation(30)[:5]].min() for _ in range(40_000)]
    assert abs(bench._expected_random_regret(regret, 5) - np.mean(draws)) < 0.003
    assert bench._expected_random_regret(regret, 30) == 0.0


def test_best_fixed_set_is_the_brute_force_optimum_and_beats_the_greedy_portfolio():
    rng = np.random.default_rng(1)
    R = pd.DataFrame(rng.uniform(size=(12, 9)) ** 2, columns=[f"c{j}" for j in range(9)])
    for k in (1, 2, 3):
        brute = min(
            R.iloc[:, list(s)].min(axis=1).mean() for s in itertools.combinations(range(9), k)
        )
        assert abs(bench.best_fixed_regret(R, k) - brute) < 1e-9
        greedy = R[bench.greedy_portfolio(R, k)].min(axis=1).mean()
        assert greedy >= brute - 1e-12

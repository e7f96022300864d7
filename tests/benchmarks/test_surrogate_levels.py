"""``benchmarks/surrogate.py --levels`` tells informative meta-features from noise."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

_spec = importlib.util.spec_from_file_location(
    "surrogate_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "surrogate.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["surrogate_bench"] = bench
_spec.loader.exec_module(bench)


def _tasks(informative: bool, n_tasks: int = 40, runs: int = 10, seed: int = 0):
    """Training seconds of ``n_tasks`` tasks whose level follows their size, or not."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(100, 100_000, n_tasks)
    meta = pd.DataFrame(
        {"n_instances": size, "noise": rng.standard_normal(n_tasks)},
        index=[f"t{i}" for i in range(n_tasks)],
    )
    level = np.log(size) if informative else rng.normal(np.log(size).mean(), 2.0, n_tasks)
    rows = [
        {"dataset": f"t{i}", "value": float(np.exp(level[i] + 0.1 * rng.standard_normal()))}
        for i in range(n_tasks)
        for _ in range(runs)
    ]
    return pd.DataFrame(rows), meta


def _ratios(informative: bool) -> dict[str, float]:
    runs, meta = _tasks(informative)
    table = bench.level_predictability("synthetic", runs, meta, "duration_s")
    assert table[0]["predictor"] == "pooled mean of the other tasks"
    return {r["predictor"]: r["RMSE / pooled"] for r in table}


def test_a_size_driven_level_is_predicted_far_better_than_the_pooled_mean():
    ratios = _ratios(informative=True)
    assert ratios["ridge on meta-features, alpha=1"] < 0.7


def test_noise_meta_features_predict_no_better_than_the_pooled_mean():
    ratios = _ratios(informative=False)
    assert min(ratios.values()) > 0.95

"""Synthetic cross-family histories (known truth) and stand-in learners for fast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def synthetic_history(n_datasets: int = 6, n_configs: int = 8, seed: int = 0):
    """Two families on ``n_datasets`` datasets with one meta-feature ``m`` in [-1, 1]:
    knn scores ``0.75 + 0.15 m`` and logistic_regression ``0.75 − 0.15 m`` at their best
    setting, each with a smooth hyperparameter effect, a dataset effect shared by both
    families and small noise. Returns ``(runs, meta)`` in the training-matrix layout."""
    rng = np.random.default_rng(seed)
    m = np.linspace(-1.0, 1.0, n_datasets)
    rows = []
    for d in range(n_datasets):
        shared = rng.normal(0, 0.02)
        for _ in range(n_configs):
            k = int(rng.integers(1, 30))
            acc = 0.75 + 0.15 * m[d] - 0.002 * (k - 10) ** 2 / 10 + shared
            rows.append(
                {
                    "dataset": f"d{d}",
                    "model": "knn",
                    "value": float(np.clip(acc + rng.normal(0, 0.01), 0.05, 0.99)),
                    "duration_s": float(0.1 * np.exp(rng.normal(0, 0.1))),
                    "params.n_neighbors": float(k),
                }
            )
            c = float(10 ** rng.uniform(-3, 3))
            acc = 0.75 - 0.15 * m[d] - 0.01 * (np.log10(c) - 1) ** 2 + shared
            rows.append(
                {
                    "dataset": f"d{d}",
                    "model": "logistic_regression",
                    "value": float(np.clip(acc + rng.normal(0, 0.01), 0.05, 0.99)),
                    "duration_s": float(1.0 * np.exp(rng.normal(0, 0.1))),
                    "params.C": c,
                }
            )
    runs = pd.DataFrame(rows)
    runs.insert(0, "run_id", [f"r{i}" for i in range(len(runs))])
    runs["seq"] = np.arange(len(runs))
    meta = pd.DataFrame(
        {"m": m}, index=pd.Index([f"d{d}" for d in range(n_datasets)], name="dataset")
    )
    return runs, meta


class FakeFamily:
    """A family's stand-in MetaLearner: mean = ``level`` + slope·x, sd 0.05 (0.01 once the
    family has runs on the dataset); residual-free zero-shot."""

    direction = "maximize"
    metric = "accuracy"
    method = "map"
    model_id = None

    def __init__(self, model: str, level: float, param: str = "x", slope: float = 0.01):
        self.model, self.level, self.param, self.slope = model, level, param, slope

    def predict(self, dataset, configs, runs=None, extra_runs=None, predictive=True, **_):
        col = self.param if self.param in configs.columns else "params." + self.param
        x = pd.to_numeric(configs[col], errors="coerce").to_numpy(float)
        mean = self.level + self.slope * x
        seen = any(f is not None and len(f) for f in (runs, extra_runs))
        sd = np.full(len(x), 0.01 if seen else 0.05)
        return pd.DataFrame({"mean": mean, "sd": sd, "lower": mean - sd, "upper": mean + sd})


class FakeSeconds(FakeFamily):
    """Predicted seconds: a constant per family."""

    def predict(self, dataset, configs, **_):
        s = np.full(len(configs), self.level)
        return pd.DataFrame({"mean": s, "sd": 0.0 * s, "lower": s, "upper": s})


@pytest.fixture
def history():
    return synthetic_history()

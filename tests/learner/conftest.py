"""Synthetic hierarchical data for the meta-learner tests (small, seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_hierarchical(
    n_datasets: int = 8, n_runs: int = 30, seed: int = 0, noise: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Runs with an interior optimum in ``lr`` (log scale) whose location depends on a
    meta-feature; returns (runs, meta, truth)."""
    rng = np.random.default_rng(seed)
    rows = []
    meta = {}
    truth = {}
    for d in range(n_datasets):
        name = f"ds{d}"
        size = float(rng.uniform(0, 1))
        meta[name] = {"size": 10 ** (2 + 3 * size), "n_features": float(rng.integers(5, 50))}
        level = 0.2 * rng.normal()
        opt = -3 + 2 * size  # log10 of the best learning rate
        truth[name] = (level, opt)
        lr = 10 ** rng.uniform(-4, 0, n_runs)
        depth = rng.integers(1, 12, n_runs)
        booster = rng.choice(["gbtree", "dart"], n_runs)
        logit = (
            1.0
            + level
            - 0.6 * (np.log10(lr) - opt) ** 2
            + 0.05 * depth
            + 0.2 * (booster == "dart")
            + noise * rng.normal(size=n_runs)
        )
        for i in range(n_runs):
            rows.append(
                {
                    "run_id": f"{name}-{i}",
                    "dataset": name,
                    "model": "gbm",
                    "value": 1 / (1 + np.exp(-logit[i])),
                    "duration_s": float(lr[i] * 100 + 1),
                    "seq": len(rows),
                    "params.lr": lr[i],
                    "params.depth": float(depth[i]),
                    "params.booster": booster[i],
                }
            )
    return pd.DataFrame(rows), pd.DataFrame.from_dict(meta, orient="index"), truth


@pytest.fixture(scope="session")
def synth():
    return make_hierarchical()


@pytest.fixture(scope="session")
def fitted_map(synth):
    from metaopt_bayes.model import MetaLearner

    runs, meta, _ = synth
    train = runs[runs["dataset"] != "ds7"]
    return MetaLearner("accuracy", method="map", interactions=False).fit_frame(train, meta)

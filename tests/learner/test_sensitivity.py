"""A dataset's sensitivity: how strongly its metric responds to its hyperparameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.model import SENSITIVITIES, MetaLearner


def _mixed_population(n_datasets: int, seed: int, n_runs: int = 40) -> pd.DataFrame:
    """Every dataset is the population's surface plus its own random deviation; half the
    datasets stray ten times less far than the other half."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_datasets):
        amp = 0.1 if d % 2 == 0 else 1.0
        c = amp * rng.normal(size=3)
        level = rng.normal(0.0, 0.3)
        lr = 10 ** rng.uniform(-4, 0, n_runs)
        x = np.log10(lr) + 2.0
        depth = rng.integers(1, 12, n_runs).astype(float)
        y = level - 0.3 * x**2 + 0.1 * depth + c[0] * x + c[1] * (depth - 6) / 5 + c[2] * x**2 / 4
        y = y + 0.02 * rng.normal(size=n_runs)
        for i in range(n_runs):
            rows.append(
                {
                    "dataset": f"s{seed}d{d}",
                    "value": y[i],
                    "params.lr": lr[i],
                    "params.depth": depth[i],
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def population():
    train = _mixed_population(16, seed=0)
    fits = {
        on: MetaLearner(
            "score",
            method="map",
            interactions=False,
            discrepancy=False,
            sensitivity=on,
            adapt="off",  # the sensitivity alone
        ).fit_frame(train)
        for on in (True, False)
    }
    return fits, _mixed_population(12, seed=1)


def test_the_grid_weights_find_both_kinds_of_dataset(population):
    fits, _ = population
    w = fits[True].sensitivity_prior
    assert np.isclose(w.sum(), 1.0) and len(w) == len(SENSITIVITIES)
    assert fits[False].sensitivity_prior is None
    # a tenfold smaller deviation is a hundredfold smaller λ: mass far below and near the top
    assert w[SENSITIVITIES <= 1 / 8].sum() > 0.25
    assert w[SENSITIVITIES >= 1 / 2].sum() > 0.25


def test_a_few_runs_tell_a_typical_dataset_from_an_unusual_one(population):
    """After 3 runs on new datasets the held-out runs are predicted with a higher density, and
    the interval of a dataset close to the population is narrower, when the sensitivity is
    integrated over."""
    fits, new = population
    logpdf = {True: [], False: []}
    width = {True: [], False: []}
    for ds, task in new.groupby("dataset"):
        obs, test = task.iloc[:3], task.iloc[3:]
        for on, ml in fits.items():
            p = ml.predict(ds, test, runs=obs)
            sd = ((p["upper"] - p["lower"]) / (2 * 1.6449)).to_numpy()
            z = (test["value"].to_numpy() - p["mean"].to_numpy()) / sd
            logpdf[on].append(-np.log(sd) - 0.5 * z**2)
            if int(ds.split("d")[-1]) % 2 == 0:  # the ones close to the population
                width[on].append(np.median(sd))
    assert np.mean(np.concatenate(logpdf[True])) > np.mean(np.concatenate(logpdf[False])) + 0.05
    assert np.mean(width[True]) < 0.8 * np.mean(width[False])


def test_zero_shot_prior_scales_the_slopes_by_the_mean_sensitivity(population):
    """The population fit does not depend on the option (the grid is a second stage), and
    with no runs the sensitivity spares the level: the intercept's prior variance is
    unchanged and every slope's is scaled by the grid's mean ``E[λ]``."""
    fits, _ = population
    on, off = (fits[k].posterior("new") for k in (True, False))
    cov_on, cov_off = on.moments()[1], off.moments()[1]
    mean_lam = fits[True].sensitivity_prior @ SENSITIVITIES
    assert np.isclose(cov_on[0, 0], cov_off[0, 0], rtol=1e-9)
    np.testing.assert_allclose(np.diag(cov_on)[1:], mean_lam * np.diag(cov_off)[1:], rtol=1e-9)


def test_the_grid_reaches_a_dataset_far_more_sensitive_than_any_seen(population):
    """A new dataset whose deviation is eight times the unusual training datasets' (λ ≈ 64):
    after 5 runs its held-out runs are predicted with a much higher density by the full grid
    than by the same weights capped at λ = 4 (the grid's top until 2026-11-27)."""
    fits, _ = population
    ml = fits[True]
    rng = np.random.default_rng(7)
    lr = 10 ** rng.uniform(-4, 0, 60)
    x = np.log10(lr) + 2.0
    depth = rng.integers(1, 12, 60).astype(float)
    c = 8.0 * np.array([1.0, -1.0, 1.0])
    y = -0.3 * x**2 + 0.1 * depth + c[0] * x + c[1] * (depth - 6) / 5 + c[2] * x**2 / 4
    task = pd.DataFrame(
        {"value": y + 0.02 * rng.normal(size=60), "params.lr": lr, "params.depth": depth}
    )
    obs, test = task.iloc[:5], task.iloc[5:]

    def mean_logpdf() -> float:
        p = ml.predict("strong", test, runs=obs)
        sd = ((p["upper"] - p["lower"]) / (2 * 1.6449)).to_numpy()
        z = (test["value"].to_numpy() - p["mean"].to_numpy()) / sd
        return float(np.mean(-np.log(sd) - 0.5 * z**2))

    full = mean_logpdf()
    saved = ml.sensitivity_grid, ml.sensitivity_prior
    try:
        keep = saved[0] <= 4
        ml.sensitivity_grid, ml.sensitivity_prior = saved[0][keep], saved[1][keep]
        capped = mean_logpdf()
    finally:
        ml.sensitivity_grid, ml.sensitivity_prior = saved
    assert full > capped + 1.0, (full, capped)

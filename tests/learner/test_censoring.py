"""Runs at a metric's bound as censored evidence (metaopt_bayes.censoring)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from metaopt_bayes import censoring
from metaopt_bayes.censoring import censored_mean, censored_sites, tilted_moments
from metaopt_bayes.features import TargetTransform


@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("m_cav", [-3.0, 0.0, 0.4, 5.0])
def test_tilted_moments_match_numerical_integration(side, m_cav):
    v_cav, noise, c = 0.8, 0.3, 0.5
    f = np.linspace(m_cav - 12, m_cav + 12, 400_001)
    dens = norm.pdf(f, m_cav, np.sqrt(v_cav)) * norm.cdf(side * (f - c) / np.sqrt(noise))
    dens /= dens.sum()
    mean = (f * dens).sum()
    var = ((f - mean) ** 2 * dens).sum()
    mt, vt = tilted_moments(np.array([m_cav]), np.array([v_cav]), noise, np.array([c]), side)
    assert mt[0] == pytest.approx(mean, abs=1e-5)
    assert vt[0] == pytest.approx(var, rel=1e-4)


def test_far_on_the_wrong_side_stays_finite():
    mt, vt = tilted_moments(np.array([-60.0]), np.array([1.0]), 0.01, np.array([0.0]), 1.0)
    assert np.isfinite(mt).all() and np.isfinite(vt).all() and vt[0] > 0
    # log density −(f + 60)²/2 + log Φ(10 f): its mode is near −60/101
    f = np.linspace(-3, 1, 400_001)
    logp = norm.logpdf(f, -60, 1) + norm.logcdf(10 * f)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    assert mt[0] == pytest.approx((f * p).sum(), abs=1e-4)
    assert vt[0] == pytest.approx(((f - mt[0]) ** 2 * p).sum(), rel=1e-3)


class _Scalar:
    """A one-parameter conjugate model: ``f = β``, ``β ~ N(0, s0²)``, ``y_i = β + ε_i``,
    ``ε_i ~ N(0, σ² + v_i)``."""

    def __init__(self, s0: float = 2.0, noise: float = 0.25):
        self.s0, self.noise = s0, noise

    def fit(self, y, v):
        v = np.zeros(len(y)) if v is None else v
        prec = 1 / self.s0**2 + np.sum(1 / (self.noise + v))
        return (np.sum(y / (self.noise + v)) / prec, 1 / prec)

    def latent(self, n):
        return lambda post: (np.full(n, post[0]), np.full(n, post[1]), self.noise)

    def exact(self, y, side):
        """Posterior mean and variance of β by quadrature on a fine grid."""
        b = np.linspace(-10, 10, 200_001)
        logp = norm.logpdf(b, 0, self.s0)
        for yi, si in zip(y, side, strict=True):
            if si == 0:
                logp += norm.logpdf(yi, b, np.sqrt(self.noise))
            else:
                logp += norm.logcdf(si * (b - yi) / np.sqrt(self.noise))
        p = np.exp(logp - logp.max())
        p /= p.sum()
        mean = (b * p).sum()
        return mean, ((b - mean) ** 2 * p).sum()


def test_one_censored_run_gives_the_exact_posterior():
    """EP with one non-Gaussian site is exact in the posterior's mean and variance."""
    model = _Scalar()
    y, side = np.array([0.2, 0.6, 1.0]), np.array([0, 0, 1])
    _, _, post, imputed = censored_sites(model.fit, model.latent(1), y, None, side, sweeps=30)
    mean, var = model.exact(y, side)
    assert post[0] == pytest.approx(mean, abs=1e-4)
    assert post[1] == pytest.approx(var, rel=1e-3)
    # its expected value beyond the bound given the *other* runs (the cavity: exact here)
    m0, v0 = model.fit(y[:2], None)
    expect = censored_mean(np.array([m0]), np.array([v0 + model.noise]), np.array([1.0]), 1.0)
    assert imputed[2] == pytest.approx(expect[0], abs=1e-4)
    assert imputed[:2] == pytest.approx(y[:2])
    # the bound says "at least 1.0": the surface rises above what the threshold as a value gave
    as_value = model.fit(y, None)
    assert post[0] > as_value[0]


def test_several_censored_runs_are_close_to_the_exact_posterior():
    model = _Scalar(noise=0.1)
    y, side = np.array([0.9, 1.0, 1.0, 1.0, -0.5]), np.array([0, 1, 1, 1, -1])
    _, _, post, _ = censored_sites(model.fit, model.latent(4), y, None, side, sweeps=4)
    mean, var = model.exact(y, side)
    assert post[0] == pytest.approx(mean, abs=0.02)
    assert post[1] == pytest.approx(var, rel=0.1)


def test_no_censored_run_or_no_sweeps_leaves_the_runs_as_they_are():
    model = _Scalar()
    y = np.array([0.2, 1.0])
    for side, sweeps in ((np.zeros(2), None), (np.array([0, 1]), 0)):
        y2, v2, post, y3 = censored_sites(
            model.fit, model.latent(int(side.sum())), y, None, side, sweeps
        )
        assert v2 is None and np.array_equal(y2, y) and np.array_equal(y3, y)
        assert post == model.fit(y, None)


def test_a_bound_far_below_the_expectation_tells_little():
    """A run at "≥ c" where the model expects far more gets a very wide site."""
    model = _Scalar(s0=0.1, noise=0.01)
    y, side = np.array([0.0, 0.0, -3.0]), np.array([0, 0, 1])
    _, v2, _, y3 = censored_sites(model.fit, model.latent(1), y, None, side, sweeps=4)
    assert v2 is not None and v2[2] > 100 * model.noise
    assert y3[2] == pytest.approx(0.0, abs=1e-4)  # where the model expects it, not at −3


def test_transform_flags_bounds_and_shows_a_run_beyond_its_resolution_at_the_bound():
    t = TargetTransform.fit(np.array([0.5, 0.9, 0.95, 1.0]))
    assert list(t.censored(np.array([0.0, 0.5, 1.0]))) == [-1, 0, 1]
    assert list(TargetTransform("log").censored(np.array([0.0, 2.0]))) == [-1, 0]
    assert not TargetTransform("identity").censored(np.array([0.0, 1.0])).any()
    e = t.resolution_of(np.array([0.5, 0.75, 1.0]))  # grain .25: ε = .01 (eps_max)
    lo, hi = t.band(e)
    assert t.inverse(np.array([hi]))[0] == pytest.approx(0.99)
    shown = t.observe(np.array([hi - 1e-6, hi, lo, 0.0]), (lo, hi))
    assert shown[0] < 1.0 and shown[1] == 1.0 and shown[2] == 0.0
    assert shown[3] == pytest.approx(t.inverse(np.array([0.0]))[0])
    # no spacing to measure (no runs, one value): half a row of the dataset, else the finest
    assert t.resolution_of(np.array([])) == t.resolution_of(np.array([1.0, 1.0])) == t.eps
    assert t.resolution_of(np.array([]), 200.0) == t.resolution_of(np.array([1.0]), 200.0)
    assert t.resolution_of(np.array([]), 200.0) == pytest.approx(0.0025)
    assert t.resolution_of(np.array([0.5, 0.75]), 200.0) == pytest.approx(0.01)  # runs first
    # every row at the bound sits at one dataset's resolution, whatever the other rows are
    assert (
        t.forward(np.array([1.0, 0.9312]), eps=0.005)[0] == t.forward(np.array([1.0]), eps=0.005)[0]
    )
    assert TargetTransform("log").band(0.01) == (-np.inf, np.inf)


@pytest.fixture(scope="module")
def perfect_learner():
    """A MAP learner on datasets where the best configs score 1.0 (the bound)."""
    from metaopt_bayes.model import MetaLearner
    from tests.learner.conftest import make_hierarchical

    runs, meta, _ = make_hierarchical(n_datasets=6, n_runs=30, seed=3)
    runs = runs.copy()
    runs["value"] = np.minimum(np.round(runs["value"] * 1.2, 2), 1.0)  # grain .01
    train = runs[runs["dataset"] != "ds5"]
    ml = MetaLearner("accuracy", method="map", interactions=False).fit_frame(train, meta)
    return ml, runs[runs["dataset"] == "ds5"].reset_index(drop=True), meta


def test_a_learner_can_treat_its_datasets_perfect_runs_as_censored(perfect_learner, monkeypatch):
    ml, target, meta = perfect_learner
    assert (target["value"] == 1.0).sum() >= 3
    obs = target.iloc[:20]
    at = obs[obs["value"] == 1.0].head(3)
    assert censoring.SWEEPS == 0  # by default a run at the bound is its threshold value
    as_value = ml.predict("ds5", at, meta=meta, runs=obs)
    ml._memo[1].clear()
    monkeypatch.setattr(censoring, "SWEEPS", 4)
    censored = ml.predict("ds5", at, meta=meta, runs=obs)
    ml._memo[1].clear()
    latent_c = ml.predict("ds5", at, meta=meta, runs=obs, predictive=False)
    assert (censored["mean"].to_numpy() >= as_value["mean"].to_numpy() - 1e-9).all()
    assert (censored["mean"] > as_value["mean"] + 1e-6).any()
    # a run shows 1.0 beyond the dataset's resolution: the interval reaches the bound itself
    assert (censored["upper"] == 1.0).all() and (as_value["upper"] == 1.0).all()
    assert (latent_c["upper"] < 1.0).all()  # the latent metric has no bound to show at
    assert np.isfinite(censored[["mean", "sd", "lower"]].to_numpy()).all()


def test_predictions_without_runs_at_a_bound_are_unchanged_by_censoring(
    perfect_learner, monkeypatch
):
    ml, target, meta = perfect_learner
    obs = target[target["value"] < 1.0].head(10)
    cands = target.head(5)
    a = ml.predict("ds5", cands, meta=meta, runs=obs)
    ml._memo[1].clear()
    monkeypatch.setattr(censoring, "SWEEPS", 4)
    b = ml.predict("ds5", cands, meta=meta, runs=obs)
    pd.testing.assert_frame_equal(a, b)


def test_a_run_at_the_bound_sits_at_its_datasets_resolution_whatever_the_fantasies(
    perfect_learner,
):
    """Pending trials fantasized near 1.0 do not move a measured 1.0 (nor the band)."""
    ml, target, meta = perfect_learner
    obs = target.iloc[:20]
    at = int(np.flatnonzero(obs["value"].to_numpy() == 1.0)[0])
    fantasy = target.iloc[20:22].assign(value=[0.9312, 0.9905])
    alone = ml._conditioned("ds5", None, meta, obs, None)
    with_f = ml._conditioned("ds5", None, meta, obs, fantasy)
    assert with_f["update"][2][at] == pytest.approx(alone["update"][2][at])
    assert with_f["band"] == alone["band"]

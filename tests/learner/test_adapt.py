"""Task adaptation maths: exact leave-one-out, stacking and ranking weights, mixture intervals."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes import adapt


def _toy(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    U = rng.uniform(-1, 1, size=(n, 2))
    y = np.sin(2 * U[:, 0]) + 0.5 * U[:, 1] + 0.05 * rng.standard_normal(n)
    return U, y


def test_task_gp_leave_one_out_equals_refitting_without_the_run():
    U, y = _toy()
    gp = adapt.fit_task_gp(U, y)
    assert gp is not None
    mean, var = gp.loo()
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        K = adapt._matern_r(np.sqrt(5.0 * adapt._sqdist(U[keep], U[keep])) / gp.length)
        K = gp.signal * K + gp.noise * np.eye(keep.sum())
        k = gp.signal * adapt._matern_r(np.sqrt(5.0 * adapt._sqdist(U[[i]], U[keep])) / gp.length)
        m = gp.mean + k @ np.linalg.solve(K, y[keep] - gp.mean)
        v = gp.signal + gp.noise - k @ np.linalg.solve(K, k.T)
        assert mean[i] == pytest.approx(m[0], rel=1e-8, abs=1e-10)
        assert var[i] == pytest.approx(v[0, 0], rel=1e-8)


def test_linear_leave_one_out_equals_the_posterior_without_the_run():
    rng = np.random.default_rng(1)
    Phi = np.column_stack([np.ones(10), rng.normal(size=(10, 2))])
    y = Phi @ np.array([0.5, 1.0, -2.0]) + 0.1 * rng.standard_normal(10)
    m0, S0, s2 = np.zeros(3), np.eye(3), 0.04
    mean, var = adapt.linear_loo(Phi, y, m0, S0, s2)
    for i in range(10):
        keep = np.arange(10) != i
        A = np.linalg.inv(S0) + Phi[keep].T @ Phi[keep] / s2
        Sn = np.linalg.inv(A)
        mn = Sn @ (np.linalg.solve(S0, m0) + Phi[keep].T @ y[keep] / s2)
        assert mean[i] == pytest.approx(Phi[i] @ mn, rel=1e-6)
        assert var[i] == pytest.approx(Phi[i] @ Sn @ Phi[i] + s2, rel=1e-6)


def test_too_few_or_constant_runs_give_no_task_gp():
    U, y = _toy(2)
    assert adapt.fit_task_gp(U, y) is None
    U, _ = _toy(6)
    assert adapt.fit_task_gp(U, np.ones(6)) is None


def test_stacking_trusts_whichever_model_predicts_the_runs():
    _, y = _toy(20)
    good = (y + 0.01, np.full(20, 0.01))
    wrong = (-y, np.full(20, 0.01))  # confident and upside down
    # only the Beta(2, 1) prior holds the transfer up: the optimum 1/(n+1)
    assert adapt.stacking_weight(y, wrong, good) == pytest.approx(1 / 21, abs=0.005)
    assert adapt.stacking_weight(y, good, wrong) > 0.95
    # with nothing to tell them apart the prior keeps the transfer
    assert adapt.stacking_weight(y, good, good) == 1.0


def test_ranking_weight_follows_the_better_ranker():
    _, y = _toy(15)
    good = (y, np.full(15, 1e-4))
    wrong = (-y, np.full(15, 1e-4))
    assert adapt.ranking_weight(y, good, wrong) == 1.0
    assert adapt.ranking_weight(y, wrong, good) == 0.0
    assert 0.35 < adapt.ranking_weight(y, good, good) < 0.65  # sd 1e-2 swaps close pairs


def test_mixture_moments_and_interval_cover_what_they_claim():
    rng = np.random.default_rng(3)
    m1, v1, m2, v2 = np.array([0.0, 1.0]), np.array([0.5, 0.2]), np.array([2.0, 1.0]), np.ones(2)
    noise_w, noise_var = np.array([0.7, 0.3]), np.array([0.1, 1.0])
    w = 0.6
    n = 200_000
    comp = rng.random((n, 2)) < w
    noise = np.where(rng.random((n, 2)) < noise_w[0], noise_var[0], noise_var[1])
    draws = np.where(
        comp,
        m1 + np.sqrt(v1 + noise) * rng.standard_normal((n, 2)),
        m2 + np.sqrt(v2) * rng.standard_normal((n, 2)),
    )
    W, M, V = adapt.mixture_components(w, m1, v1, noise_w, noise_var, m2, v2)
    lo, hi = adapt.mixture_interval(W, M, V, 0.9)
    inside = ((draws >= lo) & (draws <= hi)).mean(0)
    assert np.allclose(inside, 0.9, atol=0.005)
    assert np.allclose((draws < lo).mean(0), 0.05, atol=0.004)
    # the density integrates to the draws' histogram
    edges = np.linspace(-4, 6, 41)
    mid = 0.5 * (edges[1:] + edges[:-1])
    dens = np.exp(adapt.mixture_logpdf(mid, W, np.repeat(M[:1], 40, 0), np.repeat(V[:1], 40, 0)))
    hist = np.histogram(draws[:, 0], edges, density=True)[0]
    assert np.abs(dens - hist).max() < 0.02
    m, v = adapt.mix_moments(w, m1, v1, m2, v2)
    lat = np.where(
        comp,
        m1 + np.sqrt(v1) * rng.standard_normal((n, 2)),
        m2 + np.sqrt(v2) * rng.standard_normal((n, 2)),
    )
    assert np.allclose(m, lat.mean(0), atol=0.01)
    assert np.allclose(v, lat.var(0), rtol=0.02)


def _periodic(n: int, seed: int) -> pd.DataFrame:
    """A dataset unlike the history: its metric oscillates in the learning rate, where every
    history dataset has one interior optimum."""
    from tests.learner.conftest import make_hierarchical

    runs, _, _ = make_hierarchical(n_runs=n, seed=seed)
    d = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    d["value"] = 1 / (1 + np.exp(-(0.5 + 1.5 * np.sin(4 * np.log10(d["params.lr"])))))
    return d


def _scores(learner, dataset, obs, test, meta) -> tuple[float, float, float]:
    """Mean absolute error, 90% coverage and Spearman correlation on held-out runs."""
    from scipy.stats import spearmanr

    cfg = test[["params.lr", "params.depth", "params.booster"]]
    p = learner.predict(dataset, cfg, meta=meta, runs=obs)
    y = test["value"].to_numpy()
    inside = (y >= p["lower"].to_numpy()) & (y <= p["upper"].to_numpy())
    rho = spearmanr(p["mean"].to_numpy(), y).statistic
    return float(np.abs(p["mean"].to_numpy() - y).mean()), float(inside.mean()), float(rho)


def _both(learner, dataset, obs, test, meta) -> dict:
    before = dict(learner.config)
    try:
        out = {}
        for mode in ("off", "stack"):
            learner.config["adapt"] = mode
            out[mode] = _scores(learner, dataset, obs, test, meta)
        return out
    finally:
        learner.config = before


def test_the_task_outvotes_a_history_that_does_not_fit_it(fitted_map, synth):
    """20 runs of a dataset whose response the history never showed (an oscillation): the
    transferred model alone is overconfident (it covers a third of the held-out runs with
    its 90% intervals); with adaptation the coverage is back near 90% and the ranking and
    the error improve."""
    _, meta, _ = synth
    d = _periodic(220, seed=11)
    r = _both(fitted_map, "ds7", d.iloc[:20], d.iloc[20:], meta)
    (err_off, cov_off, rho_off), (err_on, cov_on, rho_on) = r["off"], r["stack"]
    assert cov_off < 0.6 and cov_on >= 0.85, r
    assert err_on < 0.9 * err_off and rho_on > rho_off + 0.05, r


def test_a_dataset_like_the_history_keeps_the_transfer(fitted_map, synth):
    """Runs of a dataset drawn like the history: predictions barely move with adaptation."""
    runs, meta, _ = synth
    own = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    r = _both(fitted_map, "ds7", own.iloc[:12], own.iloc[12:], meta)
    assert r["stack"][0] <= 1.1 * r["off"][0] + 1e-3, r
    assert r["stack"][2] >= r["off"][2] - 0.02, r


def test_an_unknown_adapt_mode_is_refused():
    from metaopt_bayes.model import MetaLearner
    from warehouse.errors import ValidationError

    with pytest.raises(ValidationError, match="adapt must be one of stack, rank, off"):
        MetaLearner("accuracy", adapt="sometimes")


@pytest.mark.parametrize("mode", ["off", "stack"])
def test_predict_summarizes_the_predictive_components(fitted_map, synth, mode):
    """``predict``'s interval and mean are those of ``predictive_components``' mixture."""
    _, meta, _ = synth
    d = _periodic(60, seed=4)
    obs, cfg = d.iloc[:20], d.iloc[20:][["params.lr", "params.depth", "params.booster"]]
    before = dict(fitted_map.config)
    try:
        fitted_map.config["adapt"] = mode
        p = fitted_map.predict("ds7", cfg, meta=meta, runs=obs)
        W, M, V = fitted_map.predictive_components("ds7", cfg, meta=meta, runs=obs)
    finally:
        fitted_map.config = before
    assert np.allclose(W.sum(1), 1.0)
    t = fitted_map.transform
    for q, col in ((0.05, "lower"), (0.95, "upper")):
        ends = np.array([adapt.mixture_quantile(W[i], M[[i]], V[[i]], q)[0] for i in range(len(W))])
        np.testing.assert_allclose(t.inverse(ends), p[col].to_numpy(), rtol=1e-3, atol=1e-4)


def test_uncertain_runs_enter_both_leave_one_outs_with_their_own_variance():
    """A pruned trial's predicted final (variance ``v`` on top of the noise): the GP's and the
    linear model's covariances carry ``v`` on its diagonal, a measured run's prediction given
    the others is the dense one, and a zero variance changes nothing."""
    U, y = _toy(10, seed=3)
    v = np.r_[np.zeros(7), 0.3, 1.0, 0.05]
    assert (
        adapt.fit_task_gp(U, y, np.zeros(10)).alpha.tolist()
        == adapt.fit_task_gp(U, y).alpha.tolist()
    )
    gp = adapt.fit_task_gp(U, y, v)
    K = gp.signal * adapt._matern_r(np.sqrt(5.0 * adapt._sqdist(U, U)) / gp.length)
    K = K + np.diag(gp.noise + v)
    np.testing.assert_allclose(gp.chol @ gp.chol.T, K, rtol=1e-10)
    mean, var = gp.loo()
    for i in (0, 8):
        keep = np.arange(10) != i
        k = K[i, keep]
        m = gp.mean + k @ np.linalg.solve(K[np.ix_(keep, keep)], y[keep] - gp.mean)
        assert mean[i] == pytest.approx(m, rel=1e-8)
        assert var[i] == pytest.approx(K[i, i] - k @ np.linalg.solve(K[np.ix_(keep, keep)], k))
    Phi = np.column_stack([np.ones(10), U])
    m0, S0, s2 = np.zeros(3), np.eye(3), 0.04
    lm, lv = adapt.linear_loo(Phi, y, m0, S0, s2, obs_var=v)
    keep = np.arange(10) != 0
    D = s2 + v[keep]
    Sn = np.linalg.inv(np.linalg.inv(S0) + Phi[keep].T @ (Phi[keep] / D[:, None]))
    mn = Sn @ (Phi[keep].T @ (y[keep] / D))
    assert lm[0] == pytest.approx(Phi[0] @ mn, rel=1e-6)
    assert lv[0] == pytest.approx(Phi[0] @ Sn @ Phi[0] + s2, rel=1e-6)


def test_a_pruned_trials_interval_is_an_uncertain_observation(fitted_map, synth):
    """``extra_runs`` rows with predictive quantiles (a pruned trial) update the dataset as
    observations with their own variance: the posterior is ``update_dataset``'s with
    ``obs_var``, a wider interval moves the surface less, the memo tells them apart, and
    without quantiles the row is a plain fantasy as before."""
    from metaopt_bayes.pruning import VALUE_Q05, VALUE_Q95
    from metaopt_bayes.update import update_dataset

    _, meta, _ = synth
    d = _periodic(40, seed=5)
    obs = d.iloc[:6]
    cfg = d.iloc[6:][["params.lr", "params.depth", "params.booster"]]
    pruned = d.iloc[[30, 31]][["params.lr", "params.depth", "params.booster"]].copy()
    pruned["value"] = [0.2, 0.25]
    plain = fitted_map.latent("ds7", cfg, meta=meta, runs=obs, extra_runs=pruned)[0]
    states = {}
    for width in (0.02, 0.2):
        rows = pruned.assign(
            **{VALUE_Q05: pruned["value"] - width, VALUE_Q95: pruned["value"] + width}
        )
        state = fitted_map._conditioned("ds7", None, meta, obs, rows)
        post, X, y, _, _ = state["update"]
        v = state["obs_var"]
        # quantiles at a bound (q05 = 0 here) sit at the dataset's own resolution
        own = fitted_map.transform.resolution_of(
            obs["value"].to_numpy(), fitted_map.dataset_rows("ds7", meta=meta)
        )
        t = functools.partial(fitted_map.transform.forward, eps=own)
        want = ((t(rows[VALUE_Q95].to_numpy()) - t(rows[VALUE_Q05].to_numpy())) / 3.29) ** 2
        np.testing.assert_allclose(v[-2:], want, rtol=1e-3)
        assert (v[:-2] == 0).all()
        dr = fitted_map._draws
        z = fitted_map.scaler.transform(meta, ["ds7"])[0]
        ref = update_dataset(
            np.einsum("spq,q->sp", dr["B"], z), dr["tau"] ** 2, X, y, obs_var=v,
            log_sigma_mu=dr["log_sigma_mu"], log_sigma_sd=dr["log_sigma_sd"],
            n_nodes=int(fitted_map.config["n_nodes"]),
            sigma_floor2=float(fitted_map.config["sigma_floor"]) ** 2, **fitted_map._scales(),
        )  # fmt: skip
        np.testing.assert_allclose(post.mean, ref.mean, rtol=1e-10, atol=1e-12)
        states[width] = fitted_map.latent("ds7", cfg, meta=meta, runs=obs, extra_runs=rows)[0]
    none = fitted_map.latent("ds7", cfg, meta=meta, runs=obs)[0]
    # the wider the interval, the closer to not having seen the pruned trials at all
    far, near = np.abs(states[0.2] - none).mean(), np.abs(states[0.02] - none).mean()
    assert far < near < np.abs(plain - none).mean() * 1.0001

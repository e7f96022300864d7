from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import multivariate_normal

from metaopt_bayes.update import (
    CoefficientPosterior,
    collapsed_loglik_grad,
    mixture_quantile,
    noise_mixture,
    predictive_moments,
    update_dataset,
)


def _problem(seed=0, n=7, p=4, D=3):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(n, p)) for _ in range(D)]
    y = [rng.normal(size=n) for _ in range(D)]
    return rng, X, y


def test_node_weights_are_prior_times_dense_evidence():
    # every (σ, λ) node is weighted by its prior times p(y | σ, λ) with β integrated out,
    # checked against the dense n-dimensional Gaussian
    rng, X, y = _problem()
    mu, tau2 = rng.normal(size=(1, 4)), rng.uniform(0.2, 2, (1, 4))
    scales, prior = np.array([0.25, 1.0, 4.0]), np.array([0.2, 0.5, 0.3])
    post = update_dataset(
        mu, tau2, X[0], y[0], log_sigma_mu=np.array([-0.5]), log_sigma_sd=np.array([0.7]),
        n_nodes=3, scales=scales, scale_weights=prior,
    )  # fmt: skip
    logp = []
    for g in range(3):
        for h in range(3):
            s2, lam = post.sigma2[0, 3 * g + h], scales[h]
            T = tau2[0] * np.r_[1.0, np.full(3, lam)]  # the sensitivity spares the intercept
            cov = s2 * np.eye(len(y[0])) + X[0] @ np.diag(T) @ X[0].T
            logp.append(np.log(prior[h]) + multivariate_normal.logpdf(y[0], X[0] @ mu[0], cov))
    want = np.exp(np.array(logp) - max(logp))
    np.testing.assert_allclose(post.weight[0], want / want.sum(), rtol=1e-8)
    np.testing.assert_allclose(post.sigma2[0, ::3], post.sigma2[0, 2::3])


def test_collapsed_gradient_matches_finite_differences():
    rng, X, y = _problem(1)
    S = np.stack([x.T @ x for x in X])
    b = np.stack([x.T @ v for x, v in zip(X, y, strict=True)])
    c = np.array([v @ v for v in y])
    n = np.full(3, 7.0)
    mu, tau2, s2 = rng.normal(size=(3, 4)), rng.uniform(0.5, 2, 4), rng.uniform(0.3, 1, 3)
    ll, gm, gt, gs = collapsed_loglik_grad(S, b, c, n, mu, tau2, s2)
    eps = 1e-6
    f = lambda m, t, s: collapsed_loglik_grad(S, b, c, n, m, t, s)[0]  # noqa: E731
    m2 = mu.copy()
    m2[1, 2] += eps
    assert np.isclose((f(m2, tau2, s2) - f(mu - 0, tau2, s2)) / eps, gm[1, 2], rtol=1e-4)
    t2 = tau2.copy()
    t2[3] += eps
    assert np.isclose((f(mu, t2, s2) - ll) / eps, gt[3], rtol=1e-4)
    sg = s2.copy()
    sg[0] += eps
    assert np.isclose((f(mu, tau2, sg) - ll) / eps, gs[0], rtol=1e-3)


def test_few_shot_update_equals_direct_conjugate_posterior():
    rng, X, y = _problem(2)
    Sdraws, p = 3, 4
    mu = rng.normal(size=(Sdraws, p))
    tau2 = rng.uniform(0.3, 2, (Sdraws, p))
    s2 = rng.uniform(0.2, 1, Sdraws)
    scales = np.array([0.5, 3.0])
    post = update_dataset(mu, tau2, X[0], y[0], sigma2=s2, scales=scales)
    for s in range(Sdraws):
        for h, lam in enumerate(scales):
            T = tau2[s] * np.r_[1.0, np.full(p - 1, lam)]  # column 0 is the intercept
            cov = np.linalg.inv(np.diag(1 / T) + X[0].T @ X[0] / s2[s])
            mean = cov @ (mu[s] / T + X[0].T @ y[0] / s2[s])
            np.testing.assert_allclose(post.mean[s, h], mean, rtol=1e-8)
            np.testing.assert_allclose(post.cov[s, h], cov, rtol=1e-8, atol=1e-12)


def test_zero_shot_is_prior_and_moments_are_exact_mixture():
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(5, 3))
    tau2 = rng.uniform(0.5, 1.5, (5, 3))
    post = update_dataset(
        mu, tau2, None, None, log_sigma_mu=np.full(5, -1.0), log_sigma_sd=np.full(5, 0.3), n_nodes=4
    )
    np.testing.assert_allclose(post.mean[:, 0], mu)
    np.testing.assert_allclose(post.weight, 0.25)
    Phi = rng.normal(size=(6, 3))
    m, v = predictive_moments(post, Phi, noise=False)
    # mixture over draws: mean of means; variance = mean of variances + variance of means
    means = mu @ Phi.T
    vars_ = np.einsum("ni,si,ni->sn", Phi, tau2, Phi)
    np.testing.assert_allclose(m, means.mean(0))
    np.testing.assert_allclose(v, vars_.mean(0) + means.var(0))


def test_sigma_nodes_weighted_by_evidence():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2))
    y = X @ np.array([1.0, -1.0]) + 0.05 * rng.normal(size=40)
    post = update_dataset(
        np.zeros((1, 2)),
        np.ones((1, 2)),
        X,
        y,
        log_sigma_mu=np.array([-1.0]),
        log_sigma_sd=np.array([1.0]),
        n_nodes=8,
    )
    best = post.sigma2[0, np.argmax(post.weight[0])]
    assert np.sqrt(best) < 0.15  # the smallest-noise nodes explain the data


def test_numba_kernel_matches_numpy_and_rejects_singular_points():
    from metaopt_bayes._numba_loglik import collapsed_loglik_grad_nb

    rng, X, y = _problem(3, n=9, p=5, D=4)
    S = np.stack([x.T @ x for x in X])
    b = np.stack([x.T @ v for x, v in zip(X, y, strict=True)])
    c = np.array([v @ v for v in y])
    n = np.full(4, 9.0)
    mu, tau2, s2 = rng.normal(size=(4, 5)), rng.uniform(0.2, 2, 5), rng.uniform(0.1, 1, 4)
    got = collapsed_loglik_grad_nb(S, b, c, n, mu, tau2, s2)
    want = collapsed_loglik_grad(S, b, c, n, mu, tau2, s2)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)
    bad = collapsed_loglik_grad_nb(S, b, c, n, mu, tau2, np.full(4, np.nan))
    assert bad[0] == -np.inf and np.all(bad[1] == 0)


def test_noise_mixture_keeps_the_mean_variance_and_weights():
    rng = np.random.default_rng(3)
    S, G, p = 50, 12, 3
    log_sig = rng.normal(-3.0, 2.0, size=(S, G))
    w = rng.random((S, G))
    w /= w.sum(1, keepdims=True)
    post = CoefficientPosterior(
        mean=np.zeros((S, G, p)),
        factor=np.broadcast_to(np.eye(p), (S, p, p)).copy(),
        eig=np.ones((S, G, p)),
        sigma2=np.exp(2 * log_sig),
        weight=w,
    )
    wk, vk = noise_mixture(post, k=16)
    assert len(wk) <= 16 and np.isclose(wk.sum(), 1.0)
    assert np.all(np.diff(vk) >= 0)
    assert np.isclose(wk @ vk, np.sum(w / S * post.sigma2))


def test_mixture_quantile_matches_gaussian_and_monte_carlo():
    # one component: the Gaussian quantile
    q = mixture_quantile(np.array([0.5, 2.0]), np.array([1.0]), np.array([0.25]), 0.9)
    assert np.allclose(q, 1.6448536 * np.sqrt(np.array([0.75, 2.25])), rtol=1e-6)
    # a heavy scale mixture: Monte Carlo coverage of the interval is the nominal level, and it
    # is narrower than the moment-matched Gaussian's
    rng = np.random.default_rng(0)
    w = np.array([0.7, 0.25, 0.05])
    s2 = np.array([0.01, 0.3, 9.0])
    var_f = np.geomspace(0.001, 1.0, 7)
    q = mixture_quantile(var_f, w, s2, 0.9)
    k = rng.choice(3, size=(200_000,), p=w)
    for vf, qi in zip(var_f, q, strict=True):
        e = rng.standard_normal(200_000) * np.sqrt(vf + s2[k])
        assert abs(np.mean(np.abs(e) <= qi) - 0.9) < 0.004
        assert qi < 1.6448536 * np.sqrt(vf + w @ s2)
    # density: integrates to one and is the Gaussian for one component
    y = np.linspace(-30, 30, 60001)
    from metaopt_bayes.adapt import mixture_logpdf

    V = np.full((len(y), 1), 0.1) + s2[None, :]
    dens = np.exp(mixture_logpdf(y, w, np.zeros_like(V), V))
    assert abs(dens.sum() * (y[1] - y[0]) - 1.0) < 1e-4
    lp = mixture_logpdf(np.array([0.3]), np.ones(1), np.zeros((1, 1)), np.array([[1.5]]))
    assert np.isclose(lp[0], -0.5 * (np.log(2 * np.pi * 1.5) + 0.09 / 1.5))


def _dense_mixture(rng, S=3, n_nodes=4, scales=(0.3, 1.0, 2.5)):
    """A few-shot posterior with several draws, noise nodes and sensitivities, and the dense
    per-component covariances and evidences it must equal."""
    X, y = rng.normal(size=(6, 4)), rng.normal(size=6)
    mu, tau2 = rng.normal(size=(S, 4)), rng.uniform(0.2, 2, (S, 4))
    prior = np.array([0.2, 0.5, 0.3])
    post = update_dataset(
        mu, tau2, X, y, log_sigma_mu=rng.normal(-0.5, 0.2, S), log_sigma_sd=np.full(S, 0.6),
        n_nodes=n_nodes, scales=np.array(scales), scale_weights=prior,
    )  # fmt: skip
    H = len(scales)
    covs, evid = np.zeros((S, n_nodes * H, 4, 4)), np.zeros((S, n_nodes * H))
    for s in range(S):
        for node in range(n_nodes * H):
            T = tau2[s] * np.r_[1.0, np.full(3, scales[node % H])]
            s2 = post.sigma2[s, node]
            covs[s, node] = np.linalg.inv(np.diag(1 / T) + X.T @ X / s2)
            evid[s, node] = multivariate_normal.logpdf(
                y, X @ mu[s], s2 * np.eye(6) + X @ np.diag(T) @ X.T
            )
    return post, covs, evid


def test_log_evidence_and_mixture_moments_equal_the_dense_formulas():
    rng = np.random.default_rng(11)
    post, covs, evid = _dense_mixture(rng)
    np.testing.assert_allclose(post.log_evidence, evid, rtol=1e-9)
    np.testing.assert_allclose(post.cov, covs, rtol=1e-8, atol=1e-12)
    w = post.weight / post.n_draws
    mbar = np.einsum("sg,sgi->i", w, post.mean)
    second = np.einsum("sg,sgij->ij", w, covs) + np.einsum(
        "sg,sgi,sgj->ij", w, post.mean, post.mean
    )
    m, cov, _ = post.moments()
    np.testing.assert_allclose(m, mbar, rtol=1e-9)
    np.testing.assert_allclose(cov, second - np.outer(mbar, mbar), rtol=1e-8, atol=1e-12)


def test_samples_follow_the_mixture():
    rng = np.random.default_rng(12)
    post, _, _ = _dense_mixture(rng, S=2)
    m, cov, _ = post.moments()
    # one β per posterior draw: with every draw repeated 20,000 times they follow the mixture
    many = CoefficientPosterior(
        **{f: np.repeat(getattr(post, f), 20000, axis=0) for f in ("mean", "factor", "eig",
                                                                   "sigma2", "weight")},
        n_scales=post.n_scales,
    )  # fmt: skip
    draws = many.sample(np.random.default_rng(0))[0]
    np.testing.assert_allclose(draws.mean(0), m, atol=0.03 * np.sqrt(np.diag(cov)).max())
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.05, atol=0.02 * np.abs(cov).max())


def test_bad_sensitivity_grids_are_refused():
    mu, tau2 = np.zeros((1, 2)), np.ones((1, 2))
    with pytest.raises(ValueError, match="one per scale"):
        update_dataset(mu, tau2, None, None, sigma2=np.ones(1), scales=np.ones(2),
                       scale_weights=np.ones(3))  # fmt: skip
    with pytest.raises(ValueError, match="not all zero"):
        update_dataset(mu, tau2, None, None, sigma2=np.ones(1), scales=np.ones(2),
                       scale_weights=np.zeros(2))  # fmt: skip
    with pytest.raises(ValueError, match="positive"):
        update_dataset(mu, tau2, None, None, sigma2=np.ones(1), scales=np.array([0.0, 1.0]))


def test_many_draws_are_updated_in_chunks_on_threads_with_the_same_result(monkeypatch):
    """After a NUTS fit the update runs over 250 draws × 12 noise nodes; it is split into
    chunks of draws on several threads. Each draw's posterior is its own, so the result must
    equal the one-piece computation field by field."""
    import metaopt_bayes.update as upd

    rng = np.random.default_rng(5)
    S, p, n = 100, 6, 9
    mu, tau2 = rng.standard_normal((S, p)), rng.uniform(0.1, 2.0, (S, p))
    X = np.column_stack([np.ones(n), rng.uniform(-1, 1, (n, p - 1))])
    y = X @ rng.standard_normal(p) + 0.1 * rng.standard_normal(n)
    kw = {
        "log_sigma_mu": rng.normal(-1.5, 0.3, S),
        "log_sigma_sd": rng.uniform(0.2, 0.6, S),
        "scales": np.array([0.25, 1.0, 4.0]),
        "scale_weights": np.array([0.2, 0.5, 0.3]),
    }
    monkeypatch.setattr(upd, "_THREADS", 1)
    whole = update_dataset(mu, tau2, X, y, **kw)
    monkeypatch.setattr(upd, "_THREADS", 2)
    monkeypatch.setattr(upd, "_CHUNK_DRAWS", 16)
    chunked = update_dataset(mu, tau2, X, y, **kw)
    for field in ("mean", "factor", "eig", "sigma2", "weight", "log_evidence"):
        # (equal up to BLAS rounding, which may block differently per chunk)
        np.testing.assert_allclose(getattr(chunked, field), getattr(whole, field), rtol=1e-11)
    assert chunked.n_scales == whole.n_scales == 3
    for a, b in zip(chunked.moments(), whole.moments(), strict=True):  # combined from chunks
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_with_many_draws_each_draw_can_take_every_strideth_noise_node(monkeypatch):
    """With a NODE_STRIDE and ≥ 30 draws a draw integrates its noise level over every
    NODE_STRIDE-th quantile node, offset by the draw's index: across draws every node of the
    full rule is used equally often, so the zero-shot noise mixture is the full rule's; a known
    noise level (a training dataset) and one draw (MAP) keep one node / every node."""
    import metaopt_bayes.update as upd

    S, p, n_nodes = 60, 3, 12
    mu, tau2 = np.zeros((S, p)), np.ones((S, p))
    kw = {"log_sigma_mu": np.full(S, -1.0), "log_sigma_sd": np.full(S, 0.5), "n_nodes": n_nodes}
    monkeypatch.setattr(upd, "NODE_STRIDE", 3)  # (off by default: see its comment)
    strided = update_dataset(mu, tau2, None, None, **kw)
    assert strided.sigma2.shape == (S, n_nodes // upd.NODE_STRIDE)
    full_rule = np.exp(2 * (-1.0 + 0.5 * ndtri((np.arange(n_nodes) + 0.5) / n_nodes)))
    used = np.sort(np.unique(np.round(strided.sigma2, 12)))
    np.testing.assert_allclose(used, np.sort(full_rule))
    counts = np.unique(np.round(strided.sigma2, 12), return_counts=True)[1]
    assert len(set(counts)) == 1  # each node equally often
    one = {k: v[:1] if k != "n_nodes" else v for k, v in kw.items()}
    assert update_dataset(mu[:1], tau2[:1], None, None, **one).sigma2.shape == (1, n_nodes)
    known = update_dataset(mu, tau2, None, None, sigma2=np.full(S, 0.1))
    assert known.sigma2.shape == (S, 1)
    monkeypatch.setattr(upd, "NODE_STRIDE", 1)
    full = update_dataset(mu, tau2, None, None, **kw)
    assert full.sigma2.shape == (S, n_nodes)
    np.testing.assert_allclose(strided.moments()[2], full.moments()[2])  # E[σ²] zero-shot


def test_fewer_runs_than_slopes_decompose_through_the_runs(monkeypatch):
    """With n runs < r slopes the update decomposes n × n matrices per draw and node (and one
    QR per draw) instead of r × r ones: the posterior must be the full decomposition's up to
    rounding — also with a repeated run (rank below n) and a single one."""
    import metaopt_bayes.update as upd

    rng = np.random.default_rng(8)
    S, p = 40, 9
    mu, tau2 = rng.standard_normal((S, p)), rng.uniform(0.05, 3.0, (S, p))
    kw = {
        "log_sigma_mu": rng.normal(-1.0, 0.3, S),
        "log_sigma_sd": rng.uniform(0.2, 0.6, S),
        "scales": np.array([0.25, 1.0, 4.0]),
        "scale_weights": np.array([0.2, 0.5, 0.3]),
    }
    X = np.column_stack([np.ones(6), rng.uniform(-1, 1, (6, p - 1))])
    X[5] = X[2]  # a repeated config
    y = X @ rng.standard_normal(p) + 0.1 * rng.standard_normal(6)
    for n in (1, 4, 6):
        monkeypatch.setattr(upd, "_FEW_RUNS", True)
        few = update_dataset(mu, tau2, X[:n], y[:n], **kw)
        monkeypatch.setattr(upd, "_FEW_RUNS", False)
        full = update_dataset(mu, tau2, X[:n], y[:n], **kw)
        for field in ("mean", "weight", "log_evidence", "cov"):
            np.testing.assert_allclose(getattr(few, field), getattr(full, field), atol=1e-8)
        for a, b in zip(few.moments(), full.moments(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def _dense_heteroscedastic(mu, tau2, X, y, v, post, scales):
    """Each component's posterior mean, covariance and log evidence from the dense
    n-dimensional Gaussian with noise ``σ²_g + v_i`` (no sufficient statistics)."""
    S, p = mu.shape
    H = len(scales)
    G = post.weight.shape[1]
    means, covs, evid = (np.empty((S, G, *shape)) for shape in ((p,), (p, p), ()))
    for s in range(S):
        for node in range(post.weight.shape[1]):
            s2, lam = post.sigma2[s, node], scales[node % H]
            T = tau2[s] * np.r_[1.0, np.full(p - 1, lam)]
            D = s2 + v
            cov = np.linalg.inv(np.diag(1 / T) + X.T @ (X / D[:, None]))
            covs[s, node] = cov
            means[s, node] = cov @ (mu[s] / T + X.T @ (y / D))
            evid[s, node] = multivariate_normal.logpdf(
                y, X @ mu[s], np.diag(D) + X @ np.diag(T) @ X.T
            )
    return means, covs, evid


@pytest.mark.parametrize("n", [7, 2])  # more runs than slopes, and fewer (no few-runs path)
def test_observation_variances_match_the_dense_gaussian(n):
    """A pruned trial's predicted final carries its own variance ``v_i``: the update must be
    the dense Gaussian's with noise ``σ² + v_i`` per draw and node — posterior mean,
    covariance and log evidence — for a known noise level and for integrated nodes."""
    rng = np.random.default_rng(21)
    S, p = 3, 5
    mu, tau2 = rng.normal(size=(S, p)), rng.uniform(0.2, 2, (S, p))
    X = np.column_stack([np.ones(n), rng.uniform(-1, 1, (n, p - 1))])
    y = rng.normal(size=n)
    v = np.r_[0.0, rng.uniform(0.05, 3.0, n - 1)]
    scales = np.array([0.5, 2.0])
    for kw in (
        {"sigma2": rng.uniform(0.1, 1, S)},
        {"log_sigma_mu": rng.normal(-1, 0.3, S), "log_sigma_sd": np.full(S, 0.6), "n_nodes": 4},
    ):
        post = update_dataset(mu, tau2, X, y, scales=scales, obs_var=v, **kw)
        means, covs, evid = _dense_heteroscedastic(mu, tau2, X, y, v, post, scales)
        np.testing.assert_allclose(post.mean, means, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(post.cov, covs, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(post.log_evidence, evid, rtol=1e-9)
        want = np.exp(evid - evid.max(1, keepdims=True))  # equal scale weights
        np.testing.assert_allclose(post.weight, want / want.sum(1, keepdims=True), rtol=1e-8)


def test_zero_observation_variances_change_nothing_and_huge_ones_drop_the_run():
    rng = np.random.default_rng(22)
    S, p, n = 4, 4, 8
    mu, tau2 = rng.normal(size=(S, p)), rng.uniform(0.2, 2, (S, p))
    X = np.column_stack([np.ones(n), rng.uniform(-1, 1, (n, p - 1))])
    y = rng.normal(size=n)
    kw = {"log_sigma_mu": rng.normal(-1, 0.3, S), "log_sigma_sd": np.full(S, 0.5), "n_nodes": 5}
    plain = update_dataset(mu, tau2, X, y, **kw)
    zero = update_dataset(mu, tau2, X, y, obs_var=np.zeros(n), **kw)
    for field in ("mean", "factor", "eig", "sigma2", "weight", "log_evidence"):
        np.testing.assert_array_equal(getattr(zero, field), getattr(plain, field))
    # one more run with a variance far beyond the noise: as if it had not been observed
    Xb, yb = np.vstack([X, X[:1] + 0.3]), np.r_[y, 5.0]
    far = update_dataset(mu, tau2, Xb, yb, obs_var=np.r_[np.zeros(n), 1e12], **kw)
    np.testing.assert_allclose(far.mean, plain.mean, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(far.cov, plain.cov, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(far.weight, plain.weight, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="obs_var"):
        update_dataset(mu, tau2, X, y, obs_var=np.r_[np.zeros(n - 1), -1.0], **kw)


def test_observation_variances_reach_every_chunk_of_draws(monkeypatch):
    import metaopt_bayes.update as upd

    rng = np.random.default_rng(23)
    S, p, n = 70, 5, 9
    mu, tau2 = rng.standard_normal((S, p)), rng.uniform(0.1, 2.0, (S, p))
    X = np.column_stack([np.ones(n), rng.uniform(-1, 1, (n, p - 1))])
    y = X @ rng.standard_normal(p) + 0.1 * rng.standard_normal(n)
    kw = {
        "log_sigma_mu": rng.normal(-1.5, 0.3, S),
        "log_sigma_sd": rng.uniform(0.2, 0.6, S),
        "obs_var": np.r_[np.zeros(n - 3), 0.2, 1.0, 4.0],
    }
    monkeypatch.setattr(upd, "_THREADS", 1)
    whole = update_dataset(mu, tau2, X, y, **kw)
    monkeypatch.setattr(upd, "_THREADS", 2)
    monkeypatch.setattr(upd, "_CHUNK_DRAWS", 16)
    chunked = update_dataset(mu, tau2, X, y, **kw)
    for field in ("mean", "weight", "log_evidence"):
        np.testing.assert_allclose(getattr(chunked, field), getattr(whole, field), rtol=1e-11)
    plain = update_dataset(mu, tau2, X, y, **{k: v for k, v in kw.items() if k != "obs_var"})
    assert not np.allclose(whole.mean, plain.mean)

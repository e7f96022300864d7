"""Second stages of the meta-learner, as functions of arrays: what is learnt from the training
datasets around the population fit (empirical Bayes) rather than inside it.

* :func:`meta_prior_scale` — before the fit: the prior scale of the meta-features' effects on
  a dataset's level (``prior_meta="auto"``), by type-II maximum likelihood on the levels;
* :func:`sensitivity_prior` — after it: the weights of the sensitivity grid (how far one
  dataset's slopes stray from the population), by EM over the datasets' evidence;
* :func:`discrepancy_prior` — after it: the model discrepancy's grid weights, by how well they
  predict held-out runs of each training dataset treated as a new one.

The arrays are those of a fit: the basis ``Phi`` and transformed metric ``y`` of every training
run, ``codes`` its dataset's index, ``Z`` the datasets' standardized meta-features and
``draws`` the population's posterior draws (``B``, ``tau``, ``log_sigma``, ``log_sigma_mu``,
``log_sigma_sd``; see :func:`metaopt_bayes.pymc_graph.posterior_draws`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import logsumexp

from metaopt_bayes.discrepancy import fit_prior
from metaopt_bayes.update import CoefficientPosterior, predictive_moments, update_dataset

# candidate prior scales of the meta-features' effects (standardized units; see below), and
# the scale used with fewer than META_PRIOR_MIN_DATASETS datasets, too few to estimate it
META_PRIOR_GRID = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
META_PRIOR_FALLBACK = 0.03
META_PRIOR_MIN_DATASETS = 10
# a wider scale must beat the tightest one within this many nats of evidence to be chosen
META_PRIOR_MARGIN = 1.0


def meta_prior_scale(
    y: np.ndarray, codes: np.ndarray, Z: np.ndarray, grid: tuple[float, ...] = META_PRIOR_GRID
) -> float:
    """Empirical-Bayes prior scale ``s`` of the meta-features' effects on a dataset's level.

    The datasets' mean levels ``ȳ_d`` are modelled as ``ȳ_d = b₀ + z_dᵀb + η_d + ē_d`` with
    ``b₀ ~ N(0, 1)``, ``b ~ N(0, s² I)``, ``η_d ~ N(0, t²)`` and ``ē_d`` the sampling error of
    the mean (its variance the dataset's spread over its run count). Everything is Gaussian,
    so ``ȳ ~ N(0, 11ᵀ + s² ZZᵀ + t² I + diag v)``; its log density (Woodbury, O(D q²)) is
    maximized over ``t`` for each ``s`` of ``grid`` — type-II maximum likelihood, as for the
    ridge penalty of Bayesian linear regression (MacKay 1992; Bishop, *PRML* §3.5). The
    smallest ``s`` within ``META_PRIOR_MARGIN`` nats of the best is returned, a parsimony rule
    like the one-standard-error rule (Hastie et al., *ESL* §7.10): with 20–30 datasets and
    ten meta-features a chance correlation gains up to 0.8 nats and, taken at face value,
    raised the zero-shot NLPD of tabrepo's multiclass error from 2.16 to 2.61, while the
    training time's real signal gains ~30. Meta-features that predict the level (training
    time from the dataset's size) get a wide prior, uninformative ones the tightest. With no
    meta-features or fewer than ``META_PRIOR_MIN_DATASETS`` datasets: ``META_PRIOR_FALLBACK``."""
    Zm = np.asarray(Z, dtype=float)[:, 1:]
    D, q = Zm.shape
    if q == 0 or D < META_PRIOR_MIN_DATASETS:
        return META_PRIOR_FALLBACK
    n = np.maximum(np.bincount(codes, minlength=D), 1).astype(float)
    mean = np.bincount(codes, weights=y, minlength=D) / n
    v = np.maximum(np.bincount(codes, weights=y**2, minlength=D) / n - mean**2, 0.0) / n
    t2_grid = np.geomspace(1e-4, 4.0, 49) * max(float(np.var(mean)), 1e-8)
    evidence = np.full(len(grid), -np.inf)
    for i, s in enumerate(grid):
        U = np.hstack([np.ones((D, 1)), s * Zm])  # C = diag(t² + v) + U Uᵀ
        for t2 in t2_grid:
            d = t2 + v
            Ud = U / d[:, None]
            L = np.linalg.cholesky(np.eye(q + 1) + U.T @ Ud)
            w = np.linalg.solve(L, Ud.T @ mean)
            logdet = np.log(d).sum() + 2.0 * np.log(np.diag(L)).sum()
            evidence[i] = max(evidence[i], -0.5 * (logdet + mean @ (mean / d) - w @ w))
    return float(grid[int(np.argmax(evidence >= evidence.max() - META_PRIOR_MARGIN))])


def sensitivity_prior(
    Phi: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    Z: np.ndarray,
    draws: dict[str, np.ndarray],
    grid: np.ndarray,
    *,
    sigma_floor: float = 0.0,
) -> np.ndarray:
    """Weights of the sensitivity grid ``grid`` (:data:`metaopt_bayes.model.SENSITIVITIES`
    when fitting; empirical Bayes).

    The population fit gives every dataset the same spread ``τ`` of its coefficients
    around ``B z_d``, but datasets differ. On openml100_rf (MAP, all 500 runs of each of
    94 tasks) the mean squared deviation of a dataset's fitted slopes from the population,
    in units of ``τ²``, has a log-sd of 1.06 across datasets (sampling noise alone gives
    about 0.35) and grows with the dataset's noise level (correlation 0.68). One ``τ``
    then makes a typical dataset's intervals too wide and an unusual one's too narrow once
    it has a few runs. So each dataset's slopes (not its level) deviate by
    ``N(0, λ τ²)``, ``λ`` on a log₂ grid. The grid's weights are the maximum-likelihood
    mixture (EM) over the training datasets, each scored by the evidence of all its runs
    at its own noise level (the likelihood averaged over 50 posterior draws), with
    Dirichlet pseudo-counts worth one dataset per grid point, half of them on ``λ = 1``.
    On a new dataset the few-shot update weighs the grid by the evidence of its runs
    (:func:`~metaopt_bayes.update.update_dataset`).

    The grid reaches ``λ = 64`` because some datasets respond to their hyperparameters far
    more than any typical one: on tabrepo's task_359987 (shuttle) LightGBM's error spans
    four orders of magnitude with ``extra_trees`` and the learning rate. Measured for grid
    tops 4 / 16 / 64 (leave-tasks-out, MAP, 5 task folds on tabrepo; with a top of 16 the
    EM piled weight on the top point, so mass lay beyond it):

    - tabrepo multiclass NLPD after 5 runs +0.50 / −0.28 / −1.00 (task_359987 alone:
      46 / 28 / 10; −0.78 without the sensitivity);
    - tabrepo regression RMSE after 5 / 20 runs .116 / .107, .113 / .099, .077 / .059;
    - openml100_rf (default NUTS, one split), after 5 runs RMSE .665 / .604 / .731, NLPD
      −0.49 / −0.47 / −0.45, 90% coverage .956 / .946 / .944; after 20 runs RMSE .408 /
      .418 / .465. The whole loss at 64 is two tasks (task_9967, task_3492) whose accuracy
      is 1.0 on many runs, i.e. at the logit transform's clip (fixed since format 5: a
      value at a bound moves inside by its dataset's resolution, see
      :class:`~metaopt_bayes.features.TargetTransform`).
    """
    keep, tau2, floor2 = _second_stage_draws(draws, sigma_floor)
    H = len(grid)
    default = _centred_prior(H, int(np.argmin(np.abs(np.log(grid)))))
    logL = []
    for d in range(len(Z)):
        idx = np.flatnonzero(codes == d)
        mu = np.einsum("spq,q->sp", draws["B"][keep], Z[d])
        post = update_dataset(
            mu,
            tau2,
            Phi[idx],
            y[idx],
            sigma2=np.exp(2.0 * draws["log_sigma"][keep, d]) + floor2,
            scales=grid,
        )
        # the likelihood averaged over draws, per grid point (S, H) → (H,)
        logL.append(logsumexp(post.log_evidence, axis=0) - np.log(len(keep)))
    L = np.array(logL).reshape(-1, H)
    L = L[np.isfinite(L).any(axis=1) & ~np.isnan(L).any(axis=1)]  # no usable evidence
    if len(L) == 0:
        return default
    L = np.exp(L - L.max(axis=1, keepdims=True))
    pi = default.copy()
    for _ in range(20000):  # EM for the mixture weights, with pseudo-counts H · default
        r = L * pi
        r /= r.sum(axis=1, keepdims=True)
        new = (r.sum(0) + H * default) / (len(L) + H)
        done = np.abs(new - pi).max() < 1e-10
        pi = new
        if done:
            break
    else:
        warnings.warn("sensitivity grid weights: EM did not converge", RuntimeWarning, 2)
    return pi


def discrepancy_prior(
    Phi: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    Z: np.ndarray,
    draws: dict[str, np.ndarray],
    U: np.ndarray,
    *,
    seed: int = 0,
    n_nodes: int = 12,
    sigma_floor: float = 0.0,
    scales: np.ndarray | None = None,
    scale_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Grid weights of the model discrepancy, chosen on the training datasets
    (:func:`metaopt_bayes.discrepancy.fit_prior`): each dataset, treated as a new one, is
    updated on 5 and on 20 of its runs and the weights are those that predict up to 50 of
    its other runs best. (Learnt from 10 and 20 runs instead, on openml100_rf: MAP 90%
    coverage after 5 runs .961 vs .969 at equal NLPD, but the default NUTS fit lost 0.06
    NLPD after 5 runs at equal coverage, .954.) 50 evenly spaced posterior draws carry
    the population. The held-out runs were part of the population fit, so the learnt
    discrepancy errs small.

    ``U`` is the discrepancy's inputs for every run (the encoder's linear terms of ``Phi``);
    ``scales`` / ``scale_weights`` the sensitivity grid and its weights, as the update takes
    them (:func:`~metaopt_bayes.update.update_dataset`)."""
    keep, tau2, floor2 = _second_stage_draws(draws, sigma_floor)
    rng = np.random.default_rng(seed)
    groups = []
    for d in range(len(Z)):
        idx = np.flatnonzero(codes == d)
        mu = np.einsum("spq,q->sp", draws["B"][keep], Z[d])
        for k in (5, 20):
            if len(idx) < k + 5:
                continue
            perm = rng.permutation(idx)
            obs, test = perm[:k], perm[k : k + 50]
            post = update_dataset(
                mu,
                tau2,
                Phi[obs],
                y[obs],
                log_sigma_mu=draws["log_sigma_mu"][keep],
                log_sigma_sd=draws["log_sigma_sd"][keep],
                n_nodes=n_nodes,
                sigma_floor2=floor2,
                scales=scales,
                scale_weights=scale_weights,
            )
            m_test, v_test = predictive_moments(post, Phi[test], noise=False)
            mbar, _, s2 = post.moments()
            groups.append(
                (
                    U[obs],
                    y[obs] - Phi[obs] @ mbar,
                    s2,
                    typical_noise(post),
                    U[test],
                    y[test] - m_test,
                    v_test,
                )
            )
    return fit_prior(groups)


def _second_stage_draws(
    draws: dict[str, np.ndarray], sigma_floor: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """What the second-stage learners (sensitivity and discrepancy grid weights) share: 50
    evenly spaced indices into the posterior draws, their ``τ²`` and the noise floor²."""
    keep = np.unique(np.linspace(0, len(draws["tau"]) - 1, 50).astype(int))
    return keep, draws["tau"][keep] ** 2, float(sigma_floor) ** 2


def _centred_prior(n: int, centre: int) -> np.ndarray:
    """Grid weights before any data: ½ on point ``centre``, ½ spread evenly over the rest."""
    if n == 1:
        return np.ones(1)
    w = np.full(n, 0.5 / (n - 1))
    w[centre] = 0.5
    return w


def typical_noise(post: CoefficientPosterior) -> float:
    """The posterior geometric mean of a dataset's noise variance, ``exp E[log σ²]``: the unit
    of the discrepancy's amplitude. After a few runs the arithmetic mean ``E[σ²]`` is dominated
    by the log-normal's upper tail and would inflate the discrepancy with the noise doubt."""
    w = post.weight / post.n_draws
    return float(np.exp(np.sum(w * np.log(post.sigma2))))

"""Task adaptation: the task's own runs outvote a misleading transfer as they accumulate.

The meta-learner's prediction for a dataset is a *transferred* one: a population prior learnt
on other datasets, sharpened by the dataset's runs through the closed-form update. When the
history misleads (its best region is wrong for this dataset, or the meta-features point at the
wrong neighbours) that prior can outvote the runs for a long time. Here a second predictor
sees the task alone — a Gaussian process on the task's runs, its hyperparameters chosen by
marginal likelihood on those runs (plain Bayesian optimization's model) — and the two are
combined as a mixture

    p(y | x) = w · p_transfer(y | x) + (1 − w) · p_task(y | x),

with ``w`` learnt from the task's runs by **stacking of leave-one-out predictive densities**
(Yao, Vehtari, Simpson & Gelman 2018, "Using stacking to average Bayesian predictive
distributions"): the weight that best predicts each run from the others. It is the calibrated
sibling of the ranking-weighted GP ensemble (RGPE, Feurer, Letham & Bakshy 2018), which weights
by leave-one-out *ranking* loss; :func:`ranking_weight` gives that weight too, for comparison.
A weak prior ``Beta(prior_a, 1)`` on ``w`` keeps the transfer while the task has a handful of
runs; with many runs the data decide. Leave-one-out is exact and closed form for both models
(Rasmussen & Williams 2006, §5.4.2): for ``y ~ N(μ, K)``, ``y_i | y_−i`` has mean
``y_i − [K⁻¹(y−μ)]_i / [K⁻¹]_ii`` and variance ``1 / [K⁻¹]_ii``. The transferred model enters
as the Gaussian its update starts from — ``β ~ N(m₀, S₀)`` with the population draws,
sensitivities and noise levels weighted as the task's runs weight them
(:func:`metaopt_bayes.update.tuned_prior`), plus its model discrepancy — so its leave-one-out
predictions are those of Bayesian linear regression with a GP residual on the task's basis,
its hyperparameters tuned on the runs exactly as the task GP's are.

Everything here is a function of arrays (no model object, no warehouse).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from metaopt_bayes.discrepancy import _matern_r, _sqdist

#: length scales of the task GP (RMS distance per dimension of the encoder's linear terms,
#: where a numeric parameter's range has width 2)
LENGTHS = (0.1, 0.2, 0.4, 0.8, 1.6)
#: signal variance, as multiples of the runs' variance
SIGNALS = (0.25, 1.0, 4.0)
#: noise variance, as multiples of the runs' variance
NOISES = (1e-3, 1e-2, 0.1, 0.3)
#: fewest task runs before the task GP takes part
MIN_RUNS = 3
#: weight grid for the stacking / ranking weight
_W = np.linspace(0.0, 1.0, 201)


@dataclass
class TaskGP:
    """A zero-mean Matérn-5/2 GP on ``y − mean`` of one task's runs."""

    U: np.ndarray  # (n, d) inputs
    y: np.ndarray  # (n,) targets (modelling scale)
    mean: float
    signal: float  # a²
    length: float
    noise: float  # s²
    chol: np.ndarray  # Cholesky factor of a² C + s² I
    alpha: np.ndarray  # (a² C + s² I)⁻¹ (y − mean)

    def moments(self, U_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent (noise-free) mean and variance at ``U_new``."""
        r = np.sqrt(5.0 * _sqdist(np.asarray(U_new, float), self.U)) / self.length
        Ks = self.signal * _matern_r(r)
        m = self.mean + Ks @ self.alpha
        V = np.linalg.solve(self.chol, Ks.T)
        v = np.maximum(self.signal - (V * V).sum(0), 1e-12)
        return m, v

    def loo(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out predictive mean and variance (observation noise included)."""
        Kinv = _chol_inverse(self.chol)
        return _loo(Kinv, self.y - self.mean, self.mean)


def _chol_inverse(L: np.ndarray) -> np.ndarray:
    Li = np.linalg.solve(L, np.eye(len(L)))
    return Li.T @ Li


def _loo(
    Kinv: np.ndarray, r: np.ndarray, mean: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    d = np.maximum(np.diag(Kinv), 1e-300)
    return mean + r - (Kinv @ r) / d, 1.0 / d


def fit_task_gp(U: np.ndarray, y: np.ndarray, obs_var: np.ndarray | None = None) -> TaskGP | None:
    """The task GP with the grid's hyperparameters of highest marginal likelihood, or None
    (fewer than :data:`MIN_RUNS` runs, or runs that do not vary). ``obs_var``: each run's
    variance on top of the noise (a pruned trial's predicted final; None: all 0), in the
    covariance ``a² C + s² I + diag(obs_var)`` — so also in its leave-one-out predictions;
    ``noise`` stays ``s²``, a measured run's."""
    U, y = np.asarray(U, float), np.asarray(y, float)
    extra = np.zeros(len(y)) if obs_var is None else np.asarray(obs_var, float)
    if len(y) < MIN_RUNS:
        return None
    mean = float(y.mean())
    r = y - mean
    scale = float(r @ r) / len(r)
    if not np.isfinite(scale) or scale <= 0:
        return None
    d2 = _sqdist(U, U)
    best: tuple[float, TaskGP] | None = None
    for length in LENGTHS:
        C = _matern_r(np.sqrt(5.0 * d2) / length)
        for sig in SIGNALS:
            for nz in NOISES:
                a2, s2 = sig * scale, nz * scale
                try:
                    L = np.linalg.cholesky(a2 * C + np.diag(s2 + extra))
                except np.linalg.LinAlgError:
                    continue
                z = np.linalg.solve(L, r)
                ll = -0.5 * float(z @ z) - float(np.log(np.diag(L)).sum())
                if best is None or ll > best[0]:
                    alpha = np.linalg.solve(L.T, z)
                    best = (ll, TaskGP(U, y, mean, a2, length, s2, L, alpha))
    return None if best is None else best[1]


def linear_loo(
    Phi: np.ndarray,
    y: np.ndarray,
    m0: np.ndarray,
    S0: np.ndarray,
    noise: float,
    extra_cov: np.ndarray | None = None,
    obs_var: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out predictive mean and variance of Bayesian linear regression with prior
    ``β ~ N(m0, S0)`` and noise variance ``noise`` (the transferred model's starting point),
    plus a zero-mean Gaussian process with covariance ``extra_cov`` between the runs (its
    model discrepancy), when given; ``obs_var``: each run's variance on top of the noise."""
    K = Phi @ S0 @ Phi.T + noise * np.eye(len(y))
    if obs_var is not None:
        K = K + np.diag(np.asarray(obs_var, float))
    if extra_cov is not None:
        K = K + extra_cov
    L = np.linalg.cholesky(K + 1e-10 * np.trace(K) / len(K) * np.eye(len(K)))
    return _loo(_chol_inverse(L), np.asarray(y, float) - Phi @ m0, Phi @ m0)


def _logpdf(y: np.ndarray, m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * v) + (y - m) ** 2 / v)


def stacking_weight(
    y: np.ndarray,
    loo_transfer: tuple[np.ndarray, np.ndarray],
    loo_task: tuple[np.ndarray, np.ndarray],
    prior_a: float = 2.0,
) -> float:
    """The transfer's weight ``w`` maximizing ``Σ_i log(w p_t(y_i|y_−i) + (1−w) p_g(y_i|y_−i))
    + (prior_a − 1) log w`` (stacking with a ``Beta(prior_a, 1)`` prior), on a grid."""
    lt = _logpdf(y, *loo_transfer)
    lg = _logpdf(y, *loo_task)
    with np.errstate(divide="ignore"):
        lw, l1w = np.log(_W), np.log1p(-_W)
    obj = logsumexp(np.stack([lw[:, None] + lt[None, :], l1w[:, None] + lg[None, :]]), axis=0)
    total = obj.sum(1) + (prior_a - 1.0) * lw
    return float(_W[int(np.nanargmax(np.where(np.isfinite(total), total, -np.inf)))])


def ranking_weight(
    y: np.ndarray,
    loo_transfer: tuple[np.ndarray, np.ndarray],
    loo_task: tuple[np.ndarray, np.ndarray],
    n_samples: int = 256,
    seed: int = 0,
) -> float:
    """RGPE's weight: the share of joint draws of the leave-one-out predictions in which the
    transfer misranks fewer pairs of the task's runs than the task GP (ties split; the count
    of discordant pairs does not depend on the direction of optimization)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y, float)
    truth = np.sign(y[:, None] - y[None, :])

    def losses(m: np.ndarray, v: np.ndarray) -> np.ndarray:
        s = m[None, :] + np.sqrt(v)[None, :] * rng.standard_normal((n_samples, len(y)))
        pred = np.sign(s[:, :, None] - s[:, None, :])
        return (pred != truth[None]).sum((1, 2)) / 2.0

    lt, lg = losses(*loo_transfer), losses(*loo_task)
    return float(np.mean((lt < lg) + 0.5 * (lt == lg)))


def mix_moments(
    w: float, m1: np.ndarray, v1: np.ndarray, m2: np.ndarray, v2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the two-component mixture ``w N(m1, v1) + (1−w) N(m2, v2)``."""
    m = w * m1 + (1.0 - w) * m2
    v = w * (v1 + m1 * m1) + (1.0 - w) * (v2 + m2 * m2) - m * m
    return m, np.maximum(v, 1e-12)


def mixture_components(
    w: float,
    m1: np.ndarray,
    v1: np.ndarray,
    noise_w: np.ndarray,
    noise_var: np.ndarray,
    m2: np.ndarray,
    v2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w Σ_k noise_w_k N(m1, v1 + noise_var_k) + (1−w) N(m2, v2)`` as per-row components:
    weights (K,), means (n, K) and variances (n, K)."""
    M = np.stack([m1] * len(noise_w) + [m2], 1)
    V = np.stack([v1 + s2 for s2 in noise_var] + [v2], 1)
    W = np.append(w * np.asarray(noise_w, dtype=float), 1.0 - w)
    return W, M, V


def mixture_logpdf(y: np.ndarray, W: np.ndarray, M: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``log Σ_k W_k N(y; M_k, V_k)`` per row (``W``: (K,) for every row, or (n, K))."""
    with np.errstate(divide="ignore"):
        logw = np.log(np.broadcast_to(W, M.shape))
        return logsumexp(logw + _logpdf(np.asarray(y, float)[:, None], M, V), axis=1)


#: rows beyond which a mixture's interval is the moment-matched Gaussian's (the exact one costs
#: a root search over every component per row: ~1 s per 100,000 rows)
EXACT_ROWS = 20_000


def mixture_quantile(W: np.ndarray, M: np.ndarray, V: np.ndarray, p: float) -> np.ndarray:
    """The ``p`` quantile of ``Σ_k W_k N(M_k, V_k)`` per row (``W``: (K,) or (n, K)), by
    bisection to ~1e-11 of the components' spread; beyond :data:`EXACT_ROWS` rows, the
    quantile of the Gaussian with the mixture's mean and variance."""
    S = np.sqrt(V)
    W = np.broadcast_to(W, M.shape)
    if len(M) > EXACT_ROWS:
        mean = (W * M).sum(1)
        var = np.maximum((W * (V + M * M)).sum(1) - mean**2, 0.0)
        return mean + np.sqrt(var) * float(ndtri(p))
    lo, hi = (M - 9.0 * S).min(1), (M + 9.0 * S).max(1)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        below = (ndtr((mid[:, None] - M) / S) * W).sum(1) < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def mixture_interval(
    W: np.ndarray, M: np.ndarray, V: np.ndarray, prob: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the central ``prob`` interval of ``Σ_k W_k N(M_k, V_k)``."""
    return mixture_quantile(W, M, V, 0.5 - prob / 2.0), mixture_quantile(W, M, V, 0.5 + prob / 2.0)


__all__ = [
    "EXACT_ROWS",
    "MIN_RUNS",
    "TaskGP",
    "fit_task_gp",
    "linear_loo",
    "mix_moments",
    "mixture_components",
    "mixture_interval",
    "mixture_logpdf",
    "mixture_quantile",
    "ranking_weight",
    "stacking_weight",
]

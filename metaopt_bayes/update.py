"""Closed-form few-shot update of one dataset's coefficients, per posterior draw.

The meta-learner's likelihood for dataset ``d`` with basis ``X`` (n×p) and standardized
target ``y`` is ``y = Xβ + ε``, ``ε ~ N(0, σ²I)``, with prior ``β ~ N(μ, T)``, ``T = diag(τ²)``
and ``μ = B z_d``. Given one posterior draw of the population parameters ``(B, τ, σ)`` this is
Bayesian linear regression (Bishop, *PRML* §3.3; Murphy, *MLPP* §7.6):

    A = T⁻¹ + XᵀX/σ²            (posterior precision)
    m = A⁻¹ (T⁻¹μ + Xᵀy/σ²)     (posterior mean)

and the marginal likelihood, with ``β`` integrated out, by the Woodbury identity and the
matrix determinant lemma uses only the sufficient statistics ``S = XᵀX``, ``b = Xᵀy``,
``c = yᵀy``, ``n``:

    r = y − Xμ,   rᵀr = c − 2μᵀb + μᵀSμ,   Xᵀr = b − Sμ
    log p(y) = −½ [ n log 2π + n log σ² + Σ log τ² + log|A|
                    + rᵀr/σ² − (Xᵀr/σ²)ᵀ A⁻¹ (Xᵀr/σ²) ]

The same algebra is what the PyMC model evaluates, so the fast update here is exactly the
conditional posterior the MCMC fit implies. Everything is batched over draws with numpy.

When the dataset's noise ``σ`` is unknown (a dataset the model was not fitted on), it is
integrated numerically per draw: ``G`` quantile nodes of the population ``log σ ~ N(m, s)``
weighted by the marginal likelihood of the observed runs (a mixture posterior over ``σ``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import ndtri


def sufficient_stats(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """``(XᵀX, Xᵀy, yᵀy, n)`` of one dataset."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    return X.T @ X, X.T @ y, float(y @ y), len(y)


def marginal_loglik(
    S: np.ndarray,
    b: np.ndarray,
    c: np.ndarray | float,
    n: np.ndarray | int,
    mu: np.ndarray,
    tau2: np.ndarray,
    sigma2: np.ndarray,
) -> np.ndarray:
    """``log p(y | μ, τ, σ)`` with ``β`` integrated out (Woodbury form, module docstring).

    Shapes broadcast over leading batch axes: ``S`` (..., p, p), ``b``/``mu``/``tau2`` (..., p),
    ``c``/``n``/``sigma2`` (...).
    """
    S = np.asarray(S, dtype=float)
    sigma2 = np.asarray(sigma2, dtype=float)
    tau2 = np.asarray(tau2, dtype=float)
    p = S.shape[-1]
    A = S / sigma2[..., None, None] + _diag(1.0 / tau2, p)
    L = safe_cholesky(A)
    Smu = np.einsum("...ij,...j->...i", S, mu)
    rr = c - 2.0 * np.einsum("...i,...i->...", mu, b) + np.einsum("...i,...i->...", mu, Smu)
    v = (b - Smu) / sigma2[..., None]
    w = np.linalg.solve(L, v[..., None])[..., 0]
    logdetA = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    quad = rr / sigma2 - (w**2).sum(-1)
    return -0.5 * (
        n * np.log(2 * np.pi) + n * np.log(sigma2) + np.log(tau2).sum(-1) + logdetA + quad
    )


def safe_cholesky(A: np.ndarray) -> np.ndarray:
    """Batched Cholesky factor of symmetric PSD ``A`` (..., p, p), robust to round-off.

    Tries the plain factorization; when a matrix is numerically not positive definite (e.g. a
    posterior covariance for a collapsed ``τ → 0``), retries with diagonal jitter
    ``ε · mean(diag A)``, ``ε = 1e-10 … 1e-4``, the usual "nugget" remedy (Rasmussen & Williams,
    *GPML* §A.4). Raises ``LinAlgError`` only if even the largest jitter fails.
    """
    A = 0.5 * (A + np.swapaxes(A, -1, -2))
    try:
        return np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        pass
    p = A.shape[-1]
    scale = np.abs(np.diagonal(A, axis1=-2, axis2=-1)).mean(-1)[..., None, None]
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    eye = np.eye(p)
    for eps in (1e-10, 1e-8, 1e-6, 1e-4):
        try:
            return np.linalg.cholesky(A + eps * scale * eye)
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("matrix is not positive definite even with jitter")


def _diag(v: np.ndarray, p: int) -> np.ndarray:
    out = np.zeros((*v.shape[:-1], p, p))
    idx = np.arange(p)
    out[..., idx, idx] = v
    return out


def posterior_coefficients(
    S: np.ndarray, b: np.ndarray, mu: np.ndarray, tau2: np.ndarray, sigma2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate posterior ``(m, A⁻¹)`` of ``β`` per draw (batched; see module docstring)."""
    p = mu.shape[-1]
    A = S / sigma2[..., None, None] + _diag(1.0 / tau2, p)
    rhs = mu / tau2 + b / sigma2[..., None]
    L = safe_cholesky(A)
    Linv = np.linalg.inv(L)
    cov = np.einsum("...ki,...kj->...ij", Linv, Linv)
    mean = np.einsum("...ij,...j->...i", cov, rhs)
    return mean, cov


@dataclass
class CoefficientPosterior:
    """Mixture posterior of one dataset's coefficients after the few-shot update.

    Component ``(s, g)``: posterior draw ``s`` and noise node ``g``, with ``β ~ N(mean, cov)``,
    noise variance ``sigma2`` and mixture weight ``weight`` (each row of ``weight`` sums to 1;
    draws are equally likely).
    """

    mean: np.ndarray  # (S, G, p)
    cov: np.ndarray  # (S, G, p, p)
    sigma2: np.ndarray  # (S, G)
    weight: np.ndarray  # (S, G)

    @property
    def n_draws(self) -> int:
        return self.mean.shape[0]

    def moments(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Mixture mean ``E[β]``, covariance ``Cov[β]`` and mean noise variance ``E[σ²]``.

        ``Cov[β] = Σ w (C + m mᵀ) − m̄ m̄ᵀ`` (law of total covariance over components).
        Computed once per posterior (the surface and its discrepancy both need them).
        """
        return self._moments

    @cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray, float]:
        w = self.weight / self.n_draws
        mbar = np.einsum("sg,sgi->i", w, self.mean)
        second = np.einsum("sg,sgij->ij", w, self.cov) + np.einsum(
            "sg,sgi,sgj->ij", w, self.mean, self.mean
        )
        cov = second - np.outer(mbar, mbar)
        cov = 0.5 * (cov + cov.T)
        return mbar, cov, float(np.sum(w * self.sigma2))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One ``β`` (S, p) and its noise variance (S,) per draw: a node by weight, then β."""
        S, G, p = self.mean.shape
        if G == 1:
            g = np.zeros(S, dtype=int)
        else:
            u = rng.random(S)[:, None]
            g = np.minimum((np.cumsum(self.weight, axis=1) < u).sum(1), G - 1)
        idx = np.arange(S)
        mean = self.mean[idx, g]
        cov = self.cov[idx, g]
        L = safe_cholesky(cov)
        beta = mean + np.einsum("sij,sj->si", L, rng.standard_normal((S, p)))
        return beta, self.sigma2[idx, g]


def update_dataset(
    mu: np.ndarray,
    tau2: np.ndarray,
    X: np.ndarray | None,
    y: np.ndarray | None,
    sigma2: np.ndarray | None = None,
    log_sigma_mu: np.ndarray | None = None,
    log_sigma_sd: np.ndarray | None = None,
    n_nodes: int = 12,
    sigma_floor2: float = 0.0,
) -> CoefficientPosterior:
    """Few-shot posterior of a dataset's coefficients for every population draw.

    ``mu`` (S, p) is ``B z_d`` per draw and ``tau2`` (S, p). With ``sigma2`` (S,) the dataset's
    noise is known per draw (a dataset seen in fitting). Otherwise ``σ`` is integrated over
    ``n_nodes`` quantiles of ``log σ ~ N(log_sigma_mu, log_sigma_sd)`` weighted by the
    marginal likelihood of ``(X, y)``; ``sigma_floor2`` is added to each node's variance (the
    model's noise floor). ``X``/``y`` may be empty (zero-shot: prior only).
    """
    S, p = mu.shape
    if X is None or y is None or len(y) == 0:
        Ss, bs, cs, ns = np.zeros((p, p)), np.zeros(p), 0.0, 0
    else:
        Ss, bs, cs, ns = sufficient_stats(X, y)
    if sigma2 is not None:
        sig2 = np.asarray(sigma2, dtype=float).reshape(S, 1)
        logw = np.zeros((S, 1))
    else:
        q = ndtri((np.arange(n_nodes) + 0.5) / n_nodes)  # standard-normal quantile nodes
        log_sig = np.asarray(log_sigma_mu)[:, None] + np.asarray(log_sigma_sd)[:, None] * q
        sig2 = np.exp(2.0 * log_sig) + sigma_floor2
        if ns > 0:
            logw = marginal_loglik(Ss, bs, cs, ns, mu[:, None, :], tau2[:, None, :], sig2)
        else:
            logw = np.zeros_like(sig2)
    G = sig2.shape[1]
    mu_g = np.broadcast_to(mu[:, None, :], (S, G, p))
    tau2_g = np.broadcast_to(tau2[:, None, :], (S, G, p))
    mean, cov = posterior_coefficients(Ss, bs, mu_g, tau2_g, sig2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return CoefficientPosterior(mean=mean, cov=cov, sigma2=sig2, weight=w)


def predictive_moments(
    post: CoefficientPosterior, Phi: np.ndarray, noise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``φ(x)ᵀβ (+ ε)`` for each row of ``Phi`` (n, p): O(n p²).

    Uses the mixture's exact first two moments (:meth:`CoefficientPosterior.moments`), so the
    cost does not grow with the number of posterior draws.
    """
    mbar, cov, s2 = post.moments()
    mean = Phi @ mbar
    var = np.einsum("ni,ni->n", Phi @ cov, Phi)
    if noise:
        var = var + s2
    return mean, np.maximum(var, 1e-12)


def noise_mixture(post: CoefficientPosterior, k: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The observation noise as a discrete scale mixture: ``(weights (k,), variances (k,))``.

    Every component ``(s, g)`` of the posterior carries its own ``σ²``; for a dataset the model
    has not seen they spread over orders of magnitude (the population ``log σ`` is Gaussian), a
    heavy-tailed noise law that one Gaussian with the mean variance describes badly — too wide
    in the middle, too thin in the tails. Components are pooled into ``k`` bins of equal weight
    by ``σ²`` (each bin keeps its weighted mean variance, so ``E[σ²]`` is exact).
    """
    w = (post.weight / post.n_draws).ravel()
    s2 = post.sigma2.ravel()
    order = np.argsort(s2)
    w, s2 = w[order], s2[order]
    mid = np.cumsum(w) - 0.5 * w
    b = np.minimum((mid / w.sum() * k).astype(int), k - 1)
    wk = np.bincount(b, weights=w, minlength=k)
    keep = wk > 0
    vk = np.bincount(b, weights=w * s2, minlength=k)[keep] / wk[keep]
    return wk[keep] / wk[keep].sum(), vk


def mixture_quantile(
    var_f: np.ndarray, weights: np.ndarray, noise_var: np.ndarray, prob: float
) -> np.ndarray:
    """``q`` with ``P(|y − m| ≤ q) = prob`` for ``y − m ~ Σ_k w_k N(0, v_f + s²_k)``, per row.

    The quantile depends on a row only through ``v_f``, so it is solved by bisection on a
    64-point log grid of ``v_f`` and interpolated in log–log (smooth and monotone in ``v_f``):
    O(n) for any number of rows.
    """
    from scipy.special import ndtr

    var_f = np.maximum(np.asarray(var_f, dtype=float), 1e-300)
    lo_v, hi_v = float(var_f.min()), float(var_f.max())
    grid = np.geomspace(lo_v, hi_v, 64) if hi_v > lo_v * (1 + 1e-9) else np.array([lo_v])
    sd = np.sqrt(grid[:, None] + noise_var[None, :])  # (64, k)
    target = 0.5 + prob / 2.0
    lo = np.zeros(len(grid))
    hi = float(ndtri(target)) * sd.max(axis=1) * 1.01 + 1e-300
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = (ndtr(mid[:, None] / sd) * weights[None, :]).sum(1) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    q = 0.5 * (lo + hi)
    if len(grid) == 1:
        return np.full(var_f.shape, q[0])
    return np.exp(np.interp(np.log(var_f), np.log(grid), np.log(q)))


def mixture_logpdf(
    y: np.ndarray, mean: np.ndarray, var_f: np.ndarray, weights: np.ndarray, noise_var: np.ndarray
) -> np.ndarray:
    """``log Σ_k w_k N(y; m, v_f + s²_k)`` per row (the predictive density under the noise
    mixture of :func:`noise_mixture`)."""
    v = np.asarray(var_f, dtype=float)[:, None] + noise_var[None, :]
    r2 = (np.asarray(y, dtype=float) - np.asarray(mean, dtype=float))[:, None] ** 2
    comp = -0.5 * (np.log(2 * np.pi * v) + r2 / v) + np.log(weights)[None, :]
    top = comp.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(comp - top).sum(axis=1, keepdims=True)))[:, 0]


def collapsed_loglik_grad(
    S: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    n: np.ndarray,
    mu: np.ndarray,
    tau2: np.ndarray,
    sigma2: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Summed collapsed log-likelihood over datasets and its exact gradient.

    ``S`` (D, p, p), ``b``/``mu`` (D, p), ``c``/``n``/``sigma2`` (D,), ``tau2`` (p,). With the
    per-dataset posterior ``β | y ~ N(m, P)``, ``m = μ + u``, ``P = A⁻¹`` (module docstring),
    Fisher's identity gives the gradients as posterior expectations:

        ∂ℓ/∂μ   = u / τ²
        ∂ℓ/∂τ²  = ½ [ (P_jj + u_j²)/τ⁴ − 1/τ² ]                (summed over datasets)
        ∂ℓ/∂σ²  = ½ [ (‖y − Xm‖² + tr(S P))/σ⁴ − n/σ² ],  ‖y − Xm‖² = c − 2mᵀb + mᵀSm
    """
    D, p, _ = S.shape
    tau2 = np.maximum(tau2, 1e-12)
    sigma2 = np.maximum(sigma2, 1e-12)
    A = S / sigma2[:, None, None] + _diag(np.broadcast_to(1.0 / tau2, (D, p)), p)
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:  # numerically singular: reject the point (NUTS/optimizers)
        return -np.inf, np.zeros_like(mu), np.zeros_like(tau2), np.zeros_like(sigma2)
    Smu = np.einsum("dij,dj->di", S, mu)
    rr = c - 2.0 * np.einsum("di,di->d", mu, b) + np.einsum("di,di->d", mu, Smu)
    v = (b - Smu) / sigma2[:, None]
    Linv = np.linalg.inv(L)
    P = np.einsum("dki,dkj->dij", Linv, Linv)
    u = np.einsum("dij,dj->di", P, v)
    logdetA = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
    quad = rr / sigma2 - np.einsum("di,di->d", v, u)
    ll = -0.5 * (n * np.log(2 * np.pi) + n * np.log(sigma2) + np.log(tau2).sum() + logdetA + quad)
    m = mu + u
    Sm = np.einsum("dij,dj->di", S, m)
    resid2 = c - 2.0 * np.einsum("di,di->d", m, b) + np.einsum("di,di->d", m, Sm)
    trSP = np.einsum("dij,dji->d", S, P)
    g_mu = u / tau2
    Pjj = np.diagonal(P, axis1=1, axis2=2)
    g_tau2 = 0.5 * (((Pjj + u**2) / tau2**2).sum(0) - D / tau2)
    g_sig2 = 0.5 * ((resid2 + trSP) / sigma2**2 - n / sigma2)
    return float(ll.sum()), g_mu, g_tau2, g_sig2

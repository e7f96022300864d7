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
The dataset's sensitivity ``λ`` (how far its slopes stray from the population, ``T → λT``
except for the intercept) is integrated the same way over a grid (:func:`update_dataset`).
The population fit itself has ``λ = 1``; the grid's weights are a second, empirical-Bayes
stage (``MetaLearner._sensitivity_prior``), like the model discrepancy's.

An observation may carry a variance of its own, ``v_i ≥ 0`` on top of the dataset's noise (a
pruned trial's final value is a prediction, not a measurement): its noise is then
``σ² + v_i``. Scaling row ``i`` of ``X`` and ``y`` by ``√(σ²/(σ²+v_i))`` turns it back into an
observation with noise ``σ²``, so the formulas above hold with the sufficient statistics of the
scaled rows — per noise node, since the factor depends on ``σ²`` — and ``n log σ²`` replaced by
``Σ log(σ² + v_i)`` (the scaling's Jacobian).
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


def _diag(v: np.ndarray, p: int) -> np.ndarray:
    out = np.zeros((*v.shape[:-1], p, p))
    idx = np.arange(p)
    out[..., idx, idx] = v
    return out


@dataclass
class CoefficientPosterior:
    """Mixture posterior of one dataset's coefficients after the few-shot update.

    Component ``(s, g)``: posterior draw ``s`` and node ``g`` (a noise level and a
    sensitivity), with ``β ~ N(mean, F (diag(eig) + l lᵀ) Fᵀ)`` where ``F = factor[s, g // H]``
    (nodes with the same noise level share one factor, ``H = n_scales``) and ``l = lift[s,
    g]`` (a rank-one term, zero when absent), noise variance ``sigma2`` and mixture weight
    ``weight`` (each row of ``weight`` sums to 1; draws are equally likely). The covariances
    are kept factored; ``cov`` builds them on demand.
    """

    mean: np.ndarray  # (S, G, p)
    factor: np.ndarray  # (S, G // H, p, p)
    eig: np.ndarray  # (S, G, p)
    sigma2: np.ndarray  # (S, G)
    weight: np.ndarray  # (S, G)
    n_scales: int = 1
    log_evidence: np.ndarray | None = None  # (S, G) log p(runs | component), prior left out
    lift: np.ndarray | None = None  # (S, G, p)

    @property
    def n_draws(self) -> int:
        return self.mean.shape[0]

    def _factors(self) -> np.ndarray:
        """The factor of every node (S, G, p, p) (a copy: nodes share one per noise level)."""
        return np.repeat(self.factor, self.n_scales, axis=1)

    def _lifted(self) -> np.ndarray | None:
        """``F l`` of every component (S, G, p), None without a rank-one term."""
        if self.lift is None:
            return None
        S, G, p = self.lift.shape
        per = self.lift.reshape(S, G // self.n_scales, self.n_scales, p)
        return (per @ self.factor.transpose(0, 1, 3, 2)).reshape(S, G, p)

    @property
    def cov(self) -> np.ndarray:
        """Each component's covariance (S, G, p, p)."""
        F = self._factors()
        cov = np.einsum("sgij,sgj,sgkj->sgik", F, self.eig, F)
        lifted = self._lifted()
        if lifted is not None:
            cov = cov + lifted[..., :, None] * lifted[..., None, :]
        return cov

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
        S, G, p = self.eig.shape
        we = (w[:, :, None] * self.eig).reshape(S, G // self.n_scales, self.n_scales, p).sum(2)
        Y = (self.factor * np.sqrt(we)[:, :, None, :]).transpose(2, 0, 1, 3).reshape(p, -1)
        Wm = (np.sqrt(w)[:, :, None] * self.mean).reshape(-1, p)
        second = Y @ Y.T + Wm.T @ Wm
        lifted = self._lifted()
        if lifted is not None:
            Wl = (np.sqrt(w)[:, :, None] * lifted).reshape(-1, p)
            second += Wl.T @ Wl
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
        z = rng.standard_normal((S, p)) * np.sqrt(self.eig[idx, g])
        if self.lift is not None:  # the rank-one term's own standard normal
            z = z + rng.standard_normal((S, 1)) * self.lift[idx, g]
        beta = self.mean[idx, g] + np.einsum("sij,sj->si", self.factor[idx, g // self.n_scales], z)
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
    scales: np.ndarray | None = None,
    scale_weights: np.ndarray | None = None,
    obs_var: np.ndarray | None = None,
) -> CoefficientPosterior:
    """Few-shot posterior of a dataset's coefficients for every population draw.

    ``mu`` (S, p) is ``B z_d`` per draw and ``tau2`` (S, p); column 0 is the intercept. With
    ``sigma2`` (S,) the dataset's noise is known per draw (a dataset seen in fitting).
    Otherwise ``σ`` is integrated over ``n_nodes`` quantiles of ``log σ ~ N(log_sigma_mu,
    log_sigma_sd)`` weighted by the marginal likelihood of ``(X, y)``; ``sigma_floor2`` is
    added to each node's variance (the model's noise floor).
    ``X``/``y`` may be empty (zero-shot: prior only).

    ``scales`` (H,) with prior ``scale_weights`` is the dataset's sensitivity ``λ``: its
    slopes (every term but the intercept) deviate from the population by ``N(0, λ τ²)``,
    integrated the same way over the given values (default ``λ = 1`` only). Nodes are every
    (σ, λ) pair, ``g · H + h``.

    ``obs_var`` (n,): each observation's own variance on top of the noise (module docstring;
    None or all zero: every observation has the dataset's noise, the same numbers as
    without it).

    Algebra (the module docstring's formulas, arranged so that one symmetric
    eigendecomposition per draw serves every noise level and ``λ``): eliminating the intercept
    (Schur complement, ``a₀₀ = 1/τ₀² + S₀₀/σ²``) leaves the slopes with precision
    ``T_r⁻¹/λ + (S_rr − S_r0 S_0r / (σ² a₀₀))/σ²``. With ``D = T_r^½``, ``D S_rr D = V
    diag(Λ) Vᵀ`` (per draw, not per node) and ``F = D V``, that precision is, in the
    coordinates ``F``, ``diag(q) − ρ ŵŵᵀ`` with ``q = 1/λ + Λ/σ²``, ``ŵ = Fᵀ S_r0`` and ``ρ =
    1/(σ⁴ a₀₀)``: a diagonal minus a rank-one term. By Sherman–Morrison the covariance is
    ``F (diag(e) + κ (e∘ŵ)(e∘ŵ)ᵀ) Fᵀ`` with ``e = 1/q = λσ²/(σ² + λΛ)`` and ``κ = ρ/(1 −
    ρ ŵᵀ diag(e) ŵ)``, and the matrix determinant lemma gives the log-determinant; each
    (σ, λ) node costs no decomposition, O(r²) once ``V`` is known, and ``T`` is never
    inverted. Before 0.6.2 the
    rank-one term was folded into ``M`` and decomposed per draw *and* noise node (12 times as
    many decompositions: 52 of the update's 84 ms after a NUTS fit; now 26 ms in all). With
    observation variances the statistics, and so the decomposition, are per draw and node.
    """
    S, p = mu.shape
    if X is None or y is None or len(y) == 0:
        Ss, bs, cs, ns = np.zeros((p, p)), np.zeros(p), 0.0, 0
    else:
        Ss, bs, cs, ns = sufficient_stats(X, y)
    if sigma2 is not None:
        sig2 = np.asarray(sigma2, dtype=float).reshape(S, 1)
    else:
        q = ndtri((np.arange(n_nodes) + 0.5) / n_nodes)  # standard-normal quantiles
        log_sig = np.asarray(log_sigma_mu)[:, None] + np.asarray(log_sigma_sd)[:, None] * q
        sig2 = np.exp(2.0 * log_sig) + sigma_floor2
    lam = np.ones(1) if scales is None else np.asarray(scales, dtype=float)
    lam_w = np.ones(len(lam)) if scale_weights is None else np.asarray(scale_weights, float)
    if lam_w.shape != lam.shape or not (np.all(np.isfinite(lam_w)) and np.any(lam_w > 0)):
        raise ValueError("scale_weights must be finite, one per scale, and not all zero")
    if not np.all(np.isfinite(lam) & (lam > 0)):
        raise ValueError("scales must be positive and finite")
    keep = lam_w > 0
    lam, log_prior = lam[keep], np.log(lam_w[keep] / lam_w[keep].sum())
    H, G, r = len(lam), sig2.shape[1], p - 1
    tau2 = np.maximum(np.asarray(tau2, dtype=float), 1e-300)
    if obs_var is not None:
        obs_var = np.asarray(obs_var, dtype=float).reshape(-1)
        if len(obs_var) != ns or not np.all(np.isfinite(obs_var) & (obs_var >= 0)):
            raise ValueError("obs_var must hold one finite variance ≥ 0 per observation")
    if ns == 0:
        return _prior_posterior(mu, tau2, sig2, lam, log_prior)
    if obs_var is not None and np.any(obs_var > 0):
        # statistics per draw and node (S, G, …); the sums of the scaled rows
        Ss, bs, cs, noise_logdet = _scaled_stats(np.asarray(X), np.asarray(y), obs_var, sig2)
        mu_S = np.einsum("si,sgij->sgj", mu, Ss)
        rr = cs - 2.0 * np.einsum("si,sgi->sg", mu, bs) + np.einsum("sgj,sj->sg", mu_S, mu)
    else:
        noise_logdet = ns * np.log(2 * np.pi * sig2)
        mu_S = (mu @ Ss)[:, None, :]
        rr = (cs - 2.0 * mu @ bs + np.einsum("si,si->s", mu, mu_S[:, 0]))[:, None]
        Ss, bs = Ss[None, None], bs[None, None]  # one node axis of length 1: shared
    # the decomposition D S_rr D = V diag(Λ) Vᵀ, F = D V: per draw (node axis 1) or per node
    d = np.sqrt(tau2[:, 1:])  # (S, r)
    Lam, V = np.linalg.eigh(d[:, None, :, None] * Ss[..., 1:, 1:] * d[:, None, None, :])
    Lam = np.maximum(Lam, 0.0)
    F = d[:, None, :, None] * V
    Gf = F.shape[1]
    # eliminating the intercept, per draw s and noise node g
    a00 = 1.0 / tau2[:, :1] + Ss[..., 0, 0] / sig2  # (S, G)
    s_r0 = np.broadcast_to(Ss[..., 1:, 0], (S, Gf, r))
    w_hat = np.einsum("sgj,sgji->sgi", s_r0, F)  # Fᵀ S_r0 (S, Gf, r)
    rho = 1.0 / (sig2**2 * a00)  # (S, G)
    h = (bs - mu_S) / sig2[:, :, None]  # Xᵀ(y − Xμ)/σ², (S, G, p)
    a = s_r0 / sig2[:, :, None]  # (S, G, r)
    t = _times(h[..., None, 1:] - a[:, :, None] * (h[..., None, :1] / a00[:, :, None, None]), F)
    t = t[:, :, 0]  # Fᵀ(…) per node, (S, G, r)
    s2 = sig2[:, :, None, None]
    lam4 = lam[None, None, :, None]
    e = lam4 * s2 / (s2 + lam4 * Lam[:, :, None, :])  # diag(q)⁻¹, (S, G, H, r)
    v = e * w_hat[:, :, None, :]  # diag(q)⁻¹ ŵ
    vw = np.einsum("sghr,sgr->sgh", v, np.broadcast_to(w_hat, (S, G, r)))
    # den > 0 (P is positive definite), and exactly ≥ 1/(τ₀² a₀₀): the Schur complement and
    # prior terms it sums are non-negative. The floor guards the cancellation in 1 − ρ vw,
    # which rounding can push to ≤ 0 at noise levels ~1e-11 with a column constant over runs
    den = np.maximum(1.0 - rho[:, :, None] * vw, (1.0 / (tau2[:, :1] * a00))[:, :, None])
    kappa = rho[:, :, None] / den  # (S, G, H)
    vt = np.einsum("sghr,sgr->sgh", v, t)
    coef = e * t[:, :, None, :] + (kappa * vt)[..., None] * v  # P⁻¹ t, (S, G, H, r)
    # the arrays are filled in place: at 250 draws × 132 nodes this is memory-bound work
    flat = np.empty((S, G * H, p))
    mean = flat.reshape(S, G, H, p)  # (a view)
    if Gf == 1:  # straight into place
        np.matmul(coef.reshape(S, G * H, r), F[:, 0].transpose(0, 2, 1), out=flat[..., 1:])
    else:
        mean[..., 1:] = _times(coef, F.transpose(0, 1, 3, 2))
    mean[..., 0] = (h[..., :1] - np.einsum("sgi,sghi->sgh", a, mean[..., 1:])) / a00[:, :, None]
    mean += mu[:, None, None, :]
    # full factor: the slopes' F with the intercept's induced row, then the intercept
    full = np.zeros((S, Gf, p, p))
    full[:, :, 1:, :r] = F
    factor = np.repeat(full, G, axis=1) if Gf == 1 else full
    factor[:, :, 0, :r] = -_times(a[:, :, None], F)[:, :, 0] / a00[:, :, None]
    factor[:, :, 0, r] = 1.0
    eig = np.empty((S, G, H, p))
    eig[..., :r] = e
    eig[..., r] = (1.0 / a00)[:, :, None]
    lift = np.zeros((S, G, H, p))
    np.multiply(np.sqrt(kappa)[..., None], v, out=lift[..., :r])
    evidence = (
        -0.5
        * (
            (noise_logdet + np.log(tau2[:, :1] * a00) + rr / sig2)[:, :, None]
            + r * np.log(lam)[None, None, :]  # Σ log(1 + λΛ/σ²) = Σ log(λ/e)
            - np.log(e).sum(-1)
            + np.log(den)
            - (h[..., :1] ** 2 / a00[:, :, None])
            - (e * t[:, :, None, :] ** 2).sum(-1)
            - kappa * vt**2
        )
    )
    logw = (evidence + log_prior[None, None, :]).reshape(S, G * H)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    post = CoefficientPosterior(
        mean=mean.reshape(S, G * H, p),
        factor=factor,
        eig=eig.reshape(S, G * H, p),
        sigma2=np.repeat(sig2, H, axis=1),
        weight=w,
        n_scales=H,
        log_evidence=evidence.reshape(S, G * H),
        lift=lift.reshape(S, G * H, p),
    )
    # the mixture's moments from the factors' structure (filling the cached property)
    W = w.reshape(S, G, H) / S
    post.__dict__["_moments"] = _structured_moments(
        W, mean, F, e, 1.0 / a00, v, kappa, vw, 1.0 / (sig2 * a00), float(np.sum(W * s2[..., 0]))
    )
    return post


def _prior_posterior(
    mu: np.ndarray, tau2: np.ndarray, sig2: np.ndarray, lam: np.ndarray, log_prior: np.ndarray
) -> CoefficientPosterior:
    """:func:`update_dataset` without runs (zero-shot): every component is its prior, ``β ~
    N(μ, diag(τ₀², λτ_r²))``, weighted by the prior alone (the noise nodes equally). Built
    directly — the factor is ``diag(τ_r^½)`` with the intercept last, the arrays shared views
    where they repeat — with the mixture's moments in closed form: the mean of ``μ`` over
    draws, and the mean prior covariance (``λ`` at its prior mean) plus the covariance of
    ``μ`` over draws."""
    S, p = mu.shape
    G, H, r = sig2.shape[1], len(lam), p - 1
    full = np.zeros((S, p, p))
    full[:, 1:, :r] = np.sqrt(tau2[:, 1:])[:, :, None] * np.eye(r)
    full[:, 0, r] = 1.0
    eig = np.empty((S, G, H, p))
    eig[..., :r] = lam[None, None, :, None]
    eig[..., r] = tau2[:, :1, None]
    prior = np.exp(log_prior)
    post = CoefficientPosterior(
        mean=np.broadcast_to(mu[:, None, :], (S, G * H, p)),
        factor=np.broadcast_to(full[:, None], (S, G, p, p)),
        eig=eig.reshape(S, G * H, p),
        sigma2=np.repeat(sig2, H, axis=1),
        weight=np.broadcast_to(np.tile(prior, G) / G, (S, G * H)),
        n_scales=H,
        log_evidence=np.zeros((S, G * H)),
    )
    mbar = mu.mean(0)
    cov = np.cov(mu.T, bias=True).reshape(p, p)
    cov[0, 0] += tau2[:, 0].mean()
    idx = np.arange(1, p)
    cov[idx, idx] += float(prior @ lam) * tau2[:, 1:].mean(0)
    post.__dict__["_moments"] = (mbar, cov, float(sig2.mean()))
    return post


def _times(x: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``x @ M`` per draw and node: ``x`` (S, G, K, r), ``M`` (S, Gf, r, r) with ``Gf`` 1 (one
    matrix per draw, shared by its nodes: one product per draw) or ``G``."""
    S, G, K, r = x.shape
    if M.shape[1] == 1:
        return (x.reshape(S, G * K, r) @ M[:, 0]).reshape(S, G, K, M.shape[-1])
    return x @ M


def _scaled_stats(
    X: np.ndarray, y: np.ndarray, obs_var: np.ndarray, sig2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sufficient statistics of observations with variances ``σ²_g + v_i`` per draw ``s``
    and noise node ``g`` (``sig2`` (S, G)): those of the rows scaled by ``√(σ²_g/(σ²_g+v_i))``
    — ``XᵀWX`` (S, G, p, p), ``XᵀWy`` (S, G, p), ``yᵀWy`` (S, G) — and ``Σ log 2π(σ²_g+v_i)``
    (S, G), the noise's log-determinant in the evidence (module docstring)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    total = sig2[:, :, None] + obs_var  # (S, G, n)
    w = sig2[:, :, None] / total
    XwT = np.swapaxes(X * w[..., None], -1, -2)  # (S, G, p, n)
    return (
        XwT @ X,
        XwT @ y,
        np.einsum("sgn,n->sg", w, y * y),
        (np.log(2 * np.pi) + np.log(total)).sum(-1),
    )


def _structured_moments(
    W: np.ndarray,
    mean: np.ndarray,
    F: np.ndarray,
    e: np.ndarray,
    inv_a00: np.ndarray,
    v: np.ndarray,
    kappa: np.ndarray,
    vw: np.ndarray,
    c: np.ndarray,
    noise: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """:meth:`CoefficientPosterior.moments` of :func:`update_dataset`'s posterior, using how
    its factors are built: ``Φ_sg = B_s + e₀ k_sgᵀ``, where ``B_s`` holds the draw's ``F``
    (every noise node shares it; ``F`` (S, Gf, r, r) may also be one per node) and the
    intercept's own column, and ``k_sg = −c_g (ŵ_s, 0)`` is the intercept's induced row (``c =
    1/(σ² a₀₀)``). With ``C`` a component's covariance in the factor's coordinates (``diag(e,
    1/a₀₀) + κ (v, 0)(v, 0)ᵀ``, ``v = e∘ŵ``, ``vw = vᵀŵ``), ``Σ_gh W Φ C Φᵀ = B M̄ Bᵀ + B q
    e₀ᵀ + e₀ qᵀ Bᵀ + γ e₀e₀ᵀ`` per draw, with ``M̄ = Σ W C``, ``q = Σ W C k = −Σ c W (1 + κ
    vw) (v, 0)`` and ``γ = Σ W kᵀCk = Σ c² W vw (1 + κ vw)``: O(S·G·H·r²) work and one p × p
    product per factor, instead of one per component. ``W`` (S, G, H) are the components'
    weights over all draws (summing to 1)."""
    S, p = mean.shape[0], mean.shape[-1]
    Gf, r = F.shape[1], p - 1
    mbar = np.einsum("sgh,sghi->i", W, mean)
    Wm = (np.sqrt(W)[..., None] * mean).reshape(-1, p)
    second = Wm.T @ Wm

    def per_factor(x: np.ndarray) -> np.ndarray:  # (S, G, …) summed onto the factors' nodes
        return x.sum(1, keepdims=True) if Gf == 1 else x

    # M̄ per factor (S, Gf, p, p): the diagonal, then the rank-one terms over the slopes
    Mbar = np.zeros((S, Gf, p, p))
    idx = np.arange(r)
    Mbar[:, :, idx, idx] = per_factor(np.einsum("sgh,sghr->sgr", W, e))
    Mbar[:, :, r, r] = per_factor(np.einsum("sgh,sg->sg", W, inv_a00))
    Lw = v * np.sqrt(W * kappa)[..., None]  # (S, G, H, r)
    Lw = Lw.reshape(S, Gf, Lw.shape[1] // Gf * Lw.shape[2], r)
    Mbar[:, :, :r, :r] += Lw.transpose(0, 1, 3, 2) @ Lw
    # B: row 0 the intercept (its own column r), rows 1.. the slopes' F
    B = np.zeros((S, Gf, p, p))
    B[:, :, 0, r] = 1.0
    B[:, :, 1:, :r] = F
    cov = (B @ Mbar @ B.transpose(0, 1, 3, 2)).sum((0, 1))  # Σ B M̄ Bᵀ
    q = -per_factor(np.einsum("sg,sgh,sghr->sgr", c, W * (1.0 + kappa * vw), v))  # slopes' part
    Bq = np.einsum("sgir,sgr->i", B[..., :r], q)
    cov[:, 0] += Bq
    cov[0, :] += Bq
    cov[0, 0] += float(np.einsum("sg,sgh->", c**2, W * vw * (1.0 + kappa * vw)))
    cov += second - np.outer(mbar, mbar)
    return mbar, 0.5 * (cov + cov.T), noise


def tuned_prior(
    post: CoefficientPosterior,
    mu: np.ndarray,
    tau2: np.ndarray,
    scales: np.ndarray | None = None,
    scale_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The prior the update started from, with its hyperparameters (draw, noise level,
    sensitivity ``λ``) weighted as the runs weighted them: mean, covariance of ``β`` and mean
    noise variance. A Gaussian with these moments is the transferred model "before the runs,
    knowing which population draws and sensitivities they favour" — the empirical-Bayes
    prior whose leave-one-out predictions :mod:`metaopt_bayes.adapt` compares with the task
    GP's (whose hyperparameters are tuned on the same runs)."""
    S, p = mu.shape
    lam = np.ones(1) if scales is None else np.asarray(scales, dtype=float)
    if scale_weights is not None:
        lam = lam[np.asarray(scale_weights, dtype=float) > 0]
    H = post.n_scales
    wl = post.weight.reshape(S, -1, H).sum(1) / S  # (S, H): each draw's weight on each λ
    ws = wl.sum(1)  # (S,)
    m0 = ws @ mu
    tau2 = np.asarray(tau2, dtype=float)
    var = np.empty(p)
    var[0] = ws @ tau2[:, 0]
    var[1:] = np.einsum("sh,h,si->i", wl, lam[:H], tau2[:, 1:])
    second = np.diag(var) + (mu * ws[:, None]).T @ mu
    cov = second - np.outer(m0, m0)
    return m0, 0.5 * (cov + cov.T), float(np.sum(post.weight * post.sigma2) / S)


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
    # an optimizer's trial step at extreme scales may overflow: the infinite gradient makes
    # its line search step back, which is the intended outcome, so no warning is raised
    with np.errstate(over="ignore"):
        g_tau2 = 0.5 * (((Pjj + u**2) / tau2**2).sum(0) - D / tau2)
        g_sig2 = 0.5 * ((resid2 + trSP) / sigma2**2 - n / sigma2)
    return float(ll.sum()), g_mu, g_tau2, g_sig2

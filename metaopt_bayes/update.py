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

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy.special import ndtri

#: draws per chunk and threads for :func:`update_dataset` on many draws (a NUTS fit keeps 250:
#: 3,000 eigendecompositions per update with 12 noise nodes)
_CHUNK_DRAWS = 32
#: with fewer runs than slopes, decompose through the runs (:func:`_eigh_few_runs`)
_FEW_RUNS = True
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_THREADS = min(4, _CORES or 1)
#: with at least _STRIDE_MIN_DRAWS draws, each draw may integrate its noise level over every
#: NODE_STRIDE-th of the ``n_nodes`` quantile nodes, starting at its index mod NODE_STRIDE:
#: across draws every node is used equally often (a stratified rule over draws and nodes), at
#: 1/NODE_STRIDE of the update's cost. Off (1): a stride of 3 cut a NUTS update from 60 to 22
#: ms but raised RMSE after 20 runs from .265 to .281 on openml100_rf (NLPD level;
#: ``benchmarks/surrogate.py --compare-stride``, record ``benchmarks/results/recommend_speed.md``).
NODE_STRIDE = 1
_STRIDE_MIN_DRAWS = 30


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
    sensitivity), with ``β ~ N(mean, F diag(eig) Fᵀ)`` where ``F = factor[s, g // H]`` (nodes
    with the same noise level share one factor, ``H = n_scales``), noise variance ``sigma2``
    and mixture weight ``weight`` (each row of ``weight`` sums to 1; draws are equally
    likely). The covariances are kept factored; ``cov`` builds them on demand.
    """

    mean: np.ndarray  # (S, G, p)
    factor: np.ndarray  # (S, G // H, p, p)
    eig: np.ndarray  # (S, G, p)
    sigma2: np.ndarray  # (S, G)
    weight: np.ndarray  # (S, G)
    n_scales: int = 1
    log_evidence: np.ndarray | None = None  # (S, G) log p(runs | component), prior left out

    @property
    def n_draws(self) -> int:
        return self.mean.shape[0]

    def _factors(self) -> np.ndarray:
        """The factor of every node (S, G, p, p) (a copy: nodes share one per noise level)."""
        return np.repeat(self.factor, self.n_scales, axis=1)

    @property
    def cov(self) -> np.ndarray:
        """Each component's covariance (S, G, p, p)."""
        return np.einsum("sgij,sgj,sgkj->sgik", self._factors(), self.eig, self._factors())

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
    log_sigma_sd)`` weighted by the marginal likelihood of ``(X, y)`` (with a
    :data:`NODE_STRIDE` above 1 and many draws, each draw over every stride-th of them, offset
    by draw); ``sigma_floor2`` is added to each node's variance (the model's noise floor).
    ``X``/``y`` may be empty (zero-shot: prior only).

    ``scales`` (H,) with prior ``scale_weights`` is the dataset's sensitivity ``λ``: its
    slopes (every term but the intercept) deviate from the population by ``N(0, λ τ²)``,
    integrated the same way over the given values (default ``λ = 1`` only). Nodes are every
    (σ, λ) pair, ``g · H + h``.

    ``obs_var`` (n,): each observation's own variance on top of the noise (module docstring;
    None or all zero: every observation has the dataset's noise, the same numbers as
    without it). With a positive one the statistics are per draw and node and the few-runs
    decomposition is not used: 250 draws × 12 nodes, 17 terms, took 74 ms with 10 runs (5 of
    them with a variance) against 50 ms without, 87 against 79 ms with 30 (a loaded 2-core
    machine).

    Algebra (the module docstring's formulas, arranged so that one symmetric
    eigendecomposition per draw and noise level serves every ``λ``): eliminating the intercept
    (Schur complement, ``a₀₀ = 1/τ₀² + S₀₀/σ²``) leaves the slopes with precision
    ``T_r⁻¹/λ + M/σ²``, ``M = S_rr − S_r0 S_0r / (σ² a₀₀)``. With ``D = T_r^½`` and
    ``D M D = U diag(Λ) Uᵀ``, their covariance is ``F diag(e) Fᵀ``, ``F = D U``,
    ``e = λσ² / (σ² + λΛ)``; ``T`` is never inverted.
    """
    kw: dict[str, Any] = {
        "n_nodes": n_nodes,
        "sigma_floor2": sigma_floor2,
        "scales": scales,
        "scale_weights": scale_weights,
        "obs_var": obs_var,
    }
    S = mu.shape[0]
    stride = NODE_STRIDE if S >= _STRIDE_MIN_DRAWS and n_nodes % NODE_STRIDE == 0 else 1
    kw["node_stride"] = stride
    offset = np.arange(S) % stride  # draw s takes the nodes s mod stride, + stride, …
    if S <= _CHUNK_DRAWS or _THREADS == 1:
        return _update_draws(mu, tau2, X, y, sigma2, log_sigma_mu, log_sigma_sd, offset, **kw)
    # draws are independent: chunks of them on several threads (NumPy's batched eigh and
    # elementwise kernels release the GIL), the same numbers as in one piece up to rounding

    def chunk(ix: np.ndarray) -> CoefficientPosterior:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[ix]

        q = _update_draws(
            mu[ix],
            tau2[ix],
            X,
            y,
            pick(sigma2),
            pick(log_sigma_mu),
            pick(log_sigma_sd),
            offset[ix],
            **kw,
        )
        q.moments()  # every prediction needs them: computed here, on this thread
        return q

    with ThreadPoolExecutor(_THREADS) as pool:
        parts = list(pool.map(chunk, np.array_split(np.arange(S), -(-S // _CHUNK_DRAWS))))
    post = CoefficientPosterior(
        mean=np.concatenate([q.mean for q in parts]),
        factor=np.concatenate([q.factor for q in parts]),
        eig=np.concatenate([q.eig for q in parts]),
        sigma2=np.concatenate([q.sigma2 for q in parts]),
        weight=np.concatenate([q.weight for q in parts]),
        n_scales=parts[0].n_scales,
        log_evidence=np.concatenate([q.log_evidence for q in parts]),
    )
    # the mixture's moments from the chunks' (draws are equally likely): the law of total
    # covariance over chunks
    share = np.array([q.n_draws for q in parts], dtype=float) / S
    means = np.stack([q.moments()[0] for q in parts])
    mbar = share @ means
    second = sum(
        f * (q.moments()[1] + np.outer(m, m)) for f, q, m in zip(share, parts, means, strict=True)
    )
    cov = second - np.outer(mbar, mbar)
    post.__dict__["_moments"] = (  # the cached_property, filled
        mbar,
        0.5 * (cov + cov.T),
        float(share @ [q.moments()[2] for q in parts]),
    )
    return post


def _update_draws(
    mu: np.ndarray,
    tau2: np.ndarray,
    X: np.ndarray | None,
    y: np.ndarray | None,
    sigma2: np.ndarray | None = None,
    log_sigma_mu: np.ndarray | None = None,
    log_sigma_sd: np.ndarray | None = None,
    node_offset: np.ndarray | None = None,
    n_nodes: int = 12,
    sigma_floor2: float = 0.0,
    scales: np.ndarray | None = None,
    scale_weights: np.ndarray | None = None,
    node_stride: int = 1,
    obs_var: np.ndarray | None = None,
) -> CoefficientPosterior:
    """:func:`update_dataset` on one set of draws; draw ``s`` integrates its noise level over
    the quantile nodes ``node_offset[s] + node_stride·j`` of ``n_nodes``. With a positive
    ``obs_var`` the sufficient statistics are per draw and node (``(S, G, p, p)`` …)."""
    S, p = mu.shape
    if X is None or y is None or len(y) == 0:
        Ss, bs, cs, ns = np.zeros((p, p)), np.zeros(p), 0.0, 0
    else:
        Ss, bs, cs, ns = sufficient_stats(X, y)
    if sigma2 is not None:
        sig2 = np.asarray(sigma2, dtype=float).reshape(S, 1)
    else:
        off = np.zeros(S) if node_offset is None else np.asarray(node_offset, dtype=float)
        j = node_stride * np.arange(n_nodes // node_stride)
        q = ndtri((off[:, None] + j[None, :] + 0.5) / n_nodes)  # standard-normal quantiles
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
    H, G = len(lam), sig2.shape[1]
    tau2 = np.maximum(np.asarray(tau2, dtype=float), 1e-300)
    if obs_var is not None:
        obs_var = np.asarray(obs_var, dtype=float).reshape(-1)
        if len(obs_var) != ns or not np.all(np.isfinite(obs_var) & (obs_var >= 0)):
            raise ValueError("obs_var must hold one finite variance ≥ 0 per observation")
    hetero = ns > 0 and obs_var is not None and bool(np.any(obs_var > 0))
    if hetero:
        Ss, bs, cs, noise_logdet = _scaled_stats(X, y, obs_var, sig2)
    else:
        noise_logdet = ns * np.log(2 * np.pi * sig2)

    # eliminate the intercept: per draw s and noise node g
    a00 = 1.0 / tau2[:, :1] + Ss[..., 0, 0] / sig2  # (S, G)
    s_r0 = Ss[..., 1:, 0]  # (r,), or (S, G, r) with obs_var
    M = Ss[..., 1:, 1:] - (s_r0[..., :, None] * s_r0[..., None, :]) / (sig2 * a00)[:, :, None, None]
    d = np.sqrt(tau2[:, 1:])  # (S, r)
    if 0 < ns < p - 1 and _FEW_RUNS and not hetero:
        Lam, U = _eigh_few_runs(np.asarray(X, dtype=float), d, 1.0 / (sig2 * a00))
    elif ns > 0:
        Lam, U = np.linalg.eigh(d[:, None, :, None] * M * d[:, None, None, :])
        Lam = np.maximum(Lam, 0.0)  # (S, G, r)
    else:  # no runs: M = 0, so every decomposition is the identity's (zero-shot)
        Lam = np.zeros(M.shape[:-1])
        U = np.broadcast_to(np.eye(p - 1), M.shape)
    F = d[:, None, :, None] * U  # (S, G, r, r)
    if hetero:  # Xᵀ(y − Xμ)/σ², (S, G, p)
        h = (bs - np.einsum("si,sgij->sgj", mu, Ss)) / sig2[:, :, None]
    else:
        h = (bs[None, :] - mu @ Ss)[:, None, :] / sig2[:, :, None]
    a = s_r0 / sig2[:, :, None]  # (S, G, r)
    t = np.einsum("sgji,sgj->sgi", F, h[..., 1:] - a * (h[..., :1] / a00[:, :, None]))
    s2 = sig2[:, :, None, None]
    lam4 = lam[None, None, :, None]
    e = lam4 * s2 / (s2 + lam4 * Lam[:, :, None, :])  # (S, G, H, r)
    delta_r = np.einsum("sgij,sghj->sghi", F, e * t[:, :, None, :])
    delta_0 = (h[..., :1] - np.einsum("sgi,sghi->sgh", a, delta_r)) / a00[:, :, None]
    mean = mu[:, None, None, :] + np.concatenate([delta_0[..., None], delta_r], axis=-1)
    # full factor: slopes' eigenvectors with the intercept's induced row, then the intercept
    factor = np.zeros((S, G, p, p))
    factor[:, :, 1:, : p - 1] = F
    factor[:, :, 0, : p - 1] = -np.einsum("sgi,sgij->sgj", a, F) / a00[:, :, None]
    factor[:, :, 0, p - 1] = 1.0
    eig = np.concatenate([e, np.broadcast_to((1.0 / a00)[:, :, None, None], (S, G, H, 1))], axis=-1)
    evidence = np.zeros((S, G, H))
    if ns > 0:
        if hetero:
            rr = (
                cs - 2.0 * np.einsum("si,sgi->sg", mu, bs) + np.einsum("si,sgij,sj->sg", mu, Ss, mu)
            )
        else:
            rr = (cs - 2.0 * mu @ bs + np.einsum("si,si->s", mu, mu @ Ss))[:, None]
        evidence = -0.5 * (
            (noise_logdet + np.log(tau2[:, :1] * a00) + rr / sig2)[:, :, None]
            + np.log1p(lam4 * Lam[:, :, None, :] / s2).sum(-1)
            - (h[..., :1] ** 2 / a00[:, :, None])
            - (e * t[:, :, None, :] ** 2).sum(-1)
        )
    logw = (evidence + log_prior[None, None, :]).reshape(S, G * H)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return CoefficientPosterior(
        mean=mean.reshape(S, G * H, p),
        factor=factor,
        eig=eig.reshape(S, G * H, p),
        sigma2=np.repeat(sig2, H, axis=1),
        weight=w,
        n_scales=H,
        log_evidence=evidence.reshape(S, G * H),
    )


def _scaled_stats(
    X: np.ndarray, y: np.ndarray, obs_var: np.ndarray, sig2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sufficient statistics of observations with variances ``σ²_g + v_i`` per draw ``s``
    and noise node ``g`` (``sig2`` (S, G)): those of the rows scaled by ``√(σ²_g/(σ²_g+v_i))``
    — ``XᵀWX`` (S, G, p, p), ``XᵀWy`` (S, G, p), ``yᵀWy`` (S, G) — and ``Σ log 2π(σ²_g+v_i)``
    (S, G), the noise's log-determinant in the evidence (module docstring)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    total = sig2[:, :, None] + np.asarray(obs_var, dtype=float)  # (S, G, n)
    w = sig2[:, :, None] / total
    XwT = np.swapaxes(X * w[..., None], -1, -2)  # (S, G, p, n)
    return (
        XwT @ X,
        XwT @ y,
        np.einsum("sgn,n->sg", w, y * y),
        np.log(2 * np.pi * total).sum(-1),
    )


def _eigh_few_runs(X: np.ndarray, d: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigendecompositions of ``D M D`` per draw ``s`` and noise node ``g`` (see
    :func:`update_dataset`) when the dataset has fewer runs ``n`` than slopes ``r``.

    ``M = X_rᵀ (I − c x₀x₀ᵀ) X_r``, so ``D M D = Bᵀ W B`` with ``B = X_r D`` (n × r). Per
    draw, ``Bᵀ = Q R`` (complete QR): ``D M D = Q₁ (R₁ W R₁ᵀ) Q₁ᵀ``, whose eigenvectors are
    ``Q₁`` times those of the n × n matrix ``R₁ W R₁ᵀ = R₁R₁ᵀ − c (R₁x₀)(R₁x₀)ᵀ`` and, with
    eigenvalue 0, ``Q₂`` (the same for every node). 3,000 decompositions of 16 × 16 become 250
    QRs and 3,000 of n × n. The same decomposition up to rounding and the choice of basis of
    the zero eigenvalue's space, which the posterior does not depend on."""
    n = X.shape[0]
    Q, R = np.linalg.qr(d[:, :, None] * X[:, 1:].T[None, :, :], mode="complete")  # (S, r, ·)
    R1 = R[:, :n, :]  # (S, n, n)
    w = R1 @ X[:, 0]  # (S, n)
    C = (R1 @ R1.transpose(0, 2, 1))[:, None] - c[:, :, None, None] * (
        w[:, None, :, None] * w[:, None, None, :]
    )
    lam, V = np.linalg.eigh(C)  # (S, G, n), (S, G, n, n)
    S, G, r = c.shape[0], c.shape[1], Q.shape[1]
    U = np.empty((S, G, r, r))
    U[..., : r - n] = Q[:, None, :, n:]
    U[..., r - n :] = Q[:, None, :, :n] @ V
    Lam = np.concatenate([np.zeros((S, G, r - n)), np.maximum(lam, 0.0)], axis=-1)
    return Lam, U


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

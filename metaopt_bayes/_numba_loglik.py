"""Numba kernel of the collapsed marginal likelihood and its gradient (see ``update.py``).

The same algebra as :func:`metaopt_bayes.update.collapsed_loglik_grad`, written as loops so
that nutpie's numba backend compiles the whole log-density (no object-mode fallback, chains run
in parallel threads). The Cholesky factorization is hand-rolled so a numerically singular point
returns ``-inf`` (rejected by NUTS / optimizers) instead of raising inside compiled code.
Imported only when a NUTS fit is requested (numba is a nutpie dependency).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, fastmath=False)
def collapsed_loglik_grad_nb(S, b, c, n, mu, tau2, sigma2):  # pragma: no cover - numba
    """``(ℓ, ∂ℓ/∂μ, ∂ℓ/∂τ², ∂ℓ/∂σ²)``; formulas in ``update.collapsed_loglik_grad``."""
    D, p, _ = S.shape
    g_mu = np.zeros((D, p))
    g_tau2 = np.zeros(p)
    g_sig2 = np.zeros(D)
    t2 = np.empty(p)
    for j in range(p):
        t2[j] = max(tau2[j], 1e-12)
    sum_log_t2 = 0.0
    for j in range(p):
        sum_log_t2 += math.log(t2[j])
    L = np.zeros((p, p))
    Linv = np.zeros((p, p))
    Pd = np.empty(p)
    w = np.empty(p)
    Smu = np.empty(p)
    v = np.empty(p)
    u = np.empty(p)
    m = np.empty(p)
    total = 0.0
    for d in range(D):
        s2 = max(sigma2[d], 1e-12)
        # A = S/σ² + diag(1/τ²); L Lᵀ = A
        for i in range(p):
            for j in range(i + 1):
                acc = S[d, i, j] / s2
                if i == j:
                    acc += 1.0 / t2[i]
                for k in range(j):
                    acc -= L[i, k] * L[j, k]
                if i == j:
                    if not (acc > 0.0) or not math.isfinite(acc):
                        return -np.inf, np.zeros((D, p)), np.zeros(p), np.zeros(D)
                    L[i, i] = math.sqrt(acc)
                else:
                    L[i, j] = acc / L[j, j]
        # Linv (lower triangular); only diag(A⁻¹) is needed: P_jj = Σ_k Linv[k, j]²
        for j in range(p):
            Linv[j, j] = 1.0 / L[j, j]
            for i in range(j + 1, p):
                acc = 0.0
                for k in range(j, i):
                    acc -= L[i, k] * Linv[k, j]
                Linv[i, j] = acc / L[i, i]
        for j in range(p):
            acc = 0.0
            for k in range(j, p):
                acc += Linv[k, j] * Linv[k, j]
            Pd[j] = acc
        logdetA = 0.0
        for i in range(p):
            logdetA += 2.0 * math.log(L[i, i])
        rr = c[d]
        for i in range(p):
            acc = 0.0
            for j in range(p):
                acc += S[d, i, j] * mu[d, j]
            Smu[i] = acc
        for i in range(p):
            rr += -2.0 * mu[d, i] * b[d, i] + mu[d, i] * Smu[i]
            v[i] = (b[d, i] - Smu[i]) / s2
        # u = A⁻¹ v by two triangular solves: L w = v, Lᵀ u = w
        for i in range(p):
            acc = v[i]
            for k in range(i):
                acc -= L[i, k] * w[k]
            w[i] = acc / L[i, i]
        vu = 0.0
        for i in range(p):
            vu += w[i] * w[i]
        for i in range(p - 1, -1, -1):
            acc = w[i]
            for k in range(i + 1, p):
                acc -= L[k, i] * u[k]
            u[i] = acc / L[i, i]
        quad = rr / s2 - vu
        total += -0.5 * (
            n[d] * math.log(2.0 * math.pi) + n[d] * math.log(s2) + sum_log_t2 + logdetA + quad
        )
        for i in range(p):
            m[i] = mu[d, i] + u[i]
        # tr(S A⁻¹) = σ² (p − Σ_j P_jj / τ_j²) because S = σ² (A − diag(1/τ²))
        resid2 = c[d]
        trSP = float(p)
        for i in range(p):
            acc = 0.0
            for j in range(p):
                acc += S[d, i, j] * m[j]
            resid2 += -2.0 * m[i] * b[d, i] + m[i] * acc
            trSP -= Pd[i] / t2[i]
        trSP *= s2
        for i in range(p):
            g_mu[d, i] = u[i] / t2[i]
            g_tau2[i] += 0.5 * ((Pd[i] + u[i] * u[i]) / (t2[i] * t2[i]) - 1.0 / t2[i])
        g_sig2[d] = 0.5 * ((resid2 + trSP) / (s2 * s2) - n[d] / s2)
    return total, g_mu, g_tau2, g_sig2

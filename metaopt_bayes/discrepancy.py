"""Model discrepancy: a Gaussian process on what one dataset's parametric surface misses.

The meta-learner gives every dataset a quadratic surface ``φ(x)ᵀβ_d``. That surface is the
strength of transfer (a few runs fix it) and its blind spot: a response with a cliff — e.g.
gradient boosting on 250 rows is flat in ``min_samples_leaf`` up to ~20 and collapses at 100 —
bends the quadratic so far that it no longer fits a run it was given. Measured on the
head-to-head target ``prnn_synth``: after 10 trials the updated surface predicted .785 ± .018 at
a configuration next to the scikit-learn default, which had scored .840, so the search never
went back there and Optuna's TPE found .876 around it.

Following Kennedy & O'Hagan (2001), the target is modelled as

    y(x) = φ(x)ᵀβ + δ(x) + ε,     δ ~ GP(0, a² k_ℓ),   k_ℓ = Matérn-5/2,

fitted in two stages, the way Vizier stacks a GP on the residuals of its transfer prior
(Golovin et al., 2017): the closed-form update gives ``β``'s posterior, and ``δ`` is the GP
posterior of the residuals ``r = y − Φ E[β]`` with the update's noise ``s² = E[σ²]``. Nothing
about ``δ`` is fixed by hand: ``(a², ℓ)`` is averaged over a small grid (Bayesian model
averaging, "no discrepancy" ``a = 0`` included) by the residuals' marginal likelihood times a
prior over the grid. That prior is learnt from the training datasets (:func:`fit_prior`:
empirical Bayes, the grid weights that best explain all their residuals), so how much
discrepancy to expect is a property of the model family and history, like ``τ``. When a
dataset's residuals look like noise, ``a = 0`` dominates and predictions are unchanged; when a
run contradicts the surface, ``δ`` lifts (or lowers) its neighbourhood and adds variance away
from the runs, where the surface is not to be trusted.

Inputs are the encoder's linear terms (numeric parameters in ``[-1, 1]``, booleans ``±1``,
categoricals 0/1); distances are root-mean-square per dimension, so one length-scale grid
serves any number of parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: length scales (RMS distance per dimension; a numeric parameter's range has width 2)
#: (each twice the last: StackedMeans.at squares one exponential from one to the next)
LENGTH_SCALES = (0.2, 0.4, 0.8)
#: discrepancy variance as multiples of the amplitude unit ``scale`` (the model passes the
#: dataset's typical noise variance, so a sensitive dataset may deviate more)
AMPLITUDES = (1.0, 4.0, 16.0)
#: the grid's components: every (length scale, amplitude), then "no discrepancy"
N_COMPONENTS = len(LENGTH_SCALES) * len(AMPLITUDES) + 1
#: the GP uses at most this many runs, the most recent ones (it is O(n³); by then the
#: surface is pinned down by its data)
MAX_RUNS = 1000
#: candidate rows per block in :meth:`Discrepancy.moments` (bounds memory on large pools)
_BLOCK = 4096
#: candidate rows per block in :meth:`StackedMeans.at` (its temporaries stay in cache)
_MEAN_BLOCK = 4


def default_prior() -> np.ndarray:
    """Grid weights before any training data: ½ on "no discrepancy", ½ spread evenly."""
    w = np.full(N_COMPONENTS, 0.5 / (N_COMPONENTS - 1))
    w[-1] = 0.5
    return w


def _sqdist(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Mean squared difference per dimension between rows of ``U`` (m, d) and ``V`` (n, d)."""
    d2 = U @ V.T
    d2 *= -2.0
    d2 += (U * U).sum(1)[:, None]
    d2 += (V * V).sum(1)[None, :]
    np.maximum(d2, 0.0, out=d2)
    d2 /= U.shape[1]
    return d2


def matern52(d2: np.ndarray, length: float) -> np.ndarray:
    """Matérn-5/2 correlation at mean squared per-dimension distances ``d2``."""
    return _matern_r(np.sqrt(5.0 * d2) / length)


def _matern_r(r: np.ndarray) -> np.ndarray:
    """``(1 + r + r²/3) e^{−r}``, in place on ``r`` (the scaled distance; a large candidate
    pool makes this the cost of a prediction, so no temporaries beyond one)."""
    k = np.exp(-r)
    r += r * r / 3.0
    r += 1.0
    k *= r
    return k


def _eigen(U: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(eigenvalues, eigenvectors)`` of the runs' correlation matrix per length scale: one
    decomposition serves every amplitude, ``a²C + s²I = Q (a²Λ + s²) Qᵀ``."""
    d2 = _sqdist(U, U)
    out = []
    for ell in LENGTH_SCALES:
        lam, Q = np.linalg.eigh(matern52(d2, ell))
        out.append((np.maximum(lam, 0.0), Q))
    return out


def _loglik(
    eig: list[tuple[np.ndarray, np.ndarray]], r: np.ndarray, noise: float, scale: float
) -> np.ndarray:
    """Log marginal likelihood of residuals ``r`` under each grid component (−n/2·log 2π left
    out: it is the same for all)."""
    out = []
    for lam, Q in eig:
        rq2 = (Q.T @ r) ** 2
        for mult in AMPLITUDES:
            ev = mult * scale * lam + noise
            out.append(-0.5 * (rq2 / ev).sum() - 0.5 * np.log(ev).sum())
    out.append(-0.5 * (r @ r) / noise - 0.5 * len(r) * np.log(noise))
    return np.array(out)


@dataclass
class Discrepancy:
    """The fitted discrepancy of one dataset: its runs, the per-length-scale eigen
    decompositions and the posterior weight of each grid component."""

    U: np.ndarray  # (n, d) inputs of the runs
    r: np.ndarray  # (n,) residuals
    noise: float  # s², the update's mean noise variance
    scale: float  # the unit of the amplitude grid (a² = AMPLITUDES × scale)
    weights: np.ndarray  # (N_COMPONENTS,) posterior weights; the last is "no discrepancy"
    eig: list[tuple[np.ndarray, np.ndarray]]

    @property
    def weight_none(self) -> float:
        """Posterior probability of "no discrepancy"."""
        return float(self.weights[-1])

    def moments(self, U_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of ``δ`` at ``U_new`` under the model average (law of total
        variance over components; "no discrepancy" contributes zero to both). O(m n) per
        component after one O(m n d) distance matrix, in blocks of rows."""
        U_new = np.asarray(U_new, dtype=float)
        if len(U_new) > _BLOCK:
            parts = [self.moments(U_new[i : i + _BLOCK]) for i in range(0, len(U_new), _BLOCK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        r0 = np.sqrt(5.0 * _sqdist(U_new, self.U))
        mean = np.zeros(len(r0))
        second = np.zeros(len(r0))
        w = self.weights[:-1].reshape(len(LENGTH_SCALES), len(AMPLITUDES))
        for ell, (lam, Q), w_ell in zip(LENGTH_SCALES, self.eig, w, strict=True):
            if w_ell.max() < 1e-12:
                continue
            P = _matern_r(r0 / ell) @ Q  # (m, n): cross-correlations in the eigenbasis
            P2 = P * P
            rq = Q.T @ self.r
            for mult, wj in zip(AMPLITUDES, w_ell, strict=True):
                if wj < 1e-12:
                    continue
                a2 = mult * self.scale
                inv = 1.0 / (a2 * lam + self.noise)
                mu = a2 * (P @ (rq * inv))
                var = np.maximum(a2 - a2 * a2 * (P2 @ inv), 0.0)
                mean += wj * mu
                second += wj * (var + mu * mu)
        return mean, np.maximum(second - mean * mean, 0.0)

    def mean_weights(self) -> np.ndarray:
        """``(n, L)`` dual weights of the posterior mean, one column per length scale: the
        mean at ``U_new`` is ``Σ_ℓ k_ℓ(U_new, U) V[:, ℓ]`` (:meth:`StackedMeans.at`), the
        amplitudes and their weights summed in. Keeps what a mean needs without the
        decompositions."""
        V = np.zeros((len(self.r), len(LENGTH_SCALES)))
        w = self.weights[:-1].reshape(len(LENGTH_SCALES), len(AMPLITUDES))
        for i, ((lam, Q), w_ell) in enumerate(zip(self.eig, w, strict=True)):
            rq = Q.T @ self.r
            for mult, wj in zip(AMPLITUDES, w_ell, strict=True):
                if wj >= 1e-12:
                    a2 = mult * self.scale
                    V[:, i] += wj * a2 * (Q @ (rq / (a2 * lam + self.noise)))
        return V

    def covariance(self, U: np.ndarray) -> np.ndarray:
        """The covariance of ``δ`` between the rows of ``U`` under the model average: the
        components' kernels ``a² k_ℓ`` weighted by their posterior weights (all zero mean)."""
        d2 = _sqdist(np.asarray(U, dtype=float), np.asarray(U, dtype=float))
        out = np.zeros(d2.shape)
        w = self.weights[:-1].reshape(len(LENGTH_SCALES), len(AMPLITUDES))
        for ell, w_ell in zip(LENGTH_SCALES, w, strict=True):
            total = float(w_ell @ np.asarray(AMPLITUDES))
            if total > 1e-12:
                out += total * self.scale * matern52(d2, ell)
        return out


@dataclass
class StackedMeans:
    """The posterior means of many datasets' discrepancies, kept for scoring candidates on
    all of them at once (the history's surfaces of :meth:`MetaLearner.history_regret`):
    ``U`` (N, d), every dataset's run inputs stacked; ``V`` (N, L), their dual weights
    (:meth:`Discrepancy.mean_weights`); ``counts`` (D,), runs per dataset (0: none)."""

    U: np.ndarray
    V: np.ndarray
    counts: np.ndarray

    @classmethod
    def stack(cls, parts: list[tuple[np.ndarray, np.ndarray]], d: int) -> StackedMeans:
        """From per-dataset ``(U, V)`` pairs (``d`` input columns; empty pairs allowed)."""
        U = [np.asarray(u, dtype=float).reshape(len(u), d) for u, _ in parts]
        V = [np.asarray(v, dtype=float).reshape(len(v), len(LENGTH_SCALES)) for _, v in parts]
        counts = np.array([len(u) for u in U], dtype=int)
        empty_v = np.zeros((0, len(LENGTH_SCALES)))
        return cls(
            np.concatenate(U) if U else np.zeros((0, d)),
            np.concatenate(V) if V else empty_v,
            counts,
        )

    def at(self, U_new: np.ndarray, dataset: int | None = None) -> np.ndarray:
        """``(D, m)``: each dataset's discrepancy mean at the rows of ``U_new``; with
        ``dataset``, ``(1, m)`` for that one alone.

        The cost is a kernel over candidates × every dataset's runs (400 × 18,600 on
        ``openml100_rf``), so it is computed in single precision (errors typically ~1e-6 of
        the surface's span, more where dual weights are large; far below what a ranking
        sees; NumPy's float32 exponential is several times faster), in small blocks of
        candidates that stay in cache, with one exponential for all length scales (they
        double: ``e^{−2s} = (e^{−s})²``)."""
        ends = np.cumsum(self.counts)
        starts = ends - self.counts
        if dataset is not None:
            starts, ends = starts[dataset : dataset + 1], ends[dataset : dataset + 1]
        U_new = np.asarray(U_new, dtype=float)
        out = np.zeros((len(starts), len(U_new)))
        has = ends > starts
        if not has.any() or len(U_new) == 0:
            return out
        lo, hi = int(starts[has][0]), int(ends[has][-1])
        U, V = self.U[lo:hi], self.V[lo:hi]
        # s = √5·rms distance / ℓ_max from one matrix product: |a|² + |b|² − 2a·b
        unit = np.sqrt(5.0 / U.shape[1]) / LENGTH_SCALES[-1]
        A, B = U_new * unit, U * unit
        A = np.column_stack([A, (A * A).sum(1), np.ones(len(A))]).astype(np.float32)
        B = np.column_stack([-2.0 * B, np.ones(len(B)), (B * B).sum(1)]).astype(np.float32)
        # per length scale ℓ_max/m (largest first), k = (1 + ms + (ms)²/3)·e^{−ms} times the
        # dual weights v: the polynomial's coefficients (v, mv, m²v/3) per run
        polys = [
            np.stack([v, m * v, m * m * v / 3.0]).astype(np.float32)
            for m, v in zip(LENGTH_SCALES[-1] / np.array(LENGTH_SCALES), V.T, strict=True)
        ][::-1]
        segments, rows = starts[has] - lo, np.flatnonzero(has)
        for c in range(0, len(A), _BLOCK):
            S = A[c : c + _BLOCK] @ B.T
            np.maximum(S, 0.0, out=S)
            np.sqrt(S, out=S)
            for i in range(0, len(S), _MEAN_BLOCK):
                s = S[i : i + _MEAN_BLOCK]
                power = np.negative(s)
                np.exp(power, out=power)  # e^{−ms}: squared from one length scale to the next
                k, term = None, np.empty_like(s)
                for v0, v1, v2 in polys:
                    if k is not None:
                        power *= power
                    np.multiply(s, v2, out=term)
                    term += v1
                    term *= s
                    term += v0
                    term *= power
                    if k is None:
                        k, term = term, np.empty_like(s)
                    else:
                        k += term
                out[rows, c + i : c + i + len(s)] = np.add.reduceat(k, segments, axis=1).T
        return out


def _usable(U: np.ndarray, r: np.ndarray, noise: float, scale: float | None = None) -> bool:
    finite = np.isfinite(noise) and (scale is None or (np.isfinite(scale) and scale > 0))
    return (
        len(r) > 0
        and U.ndim == 2
        and U.shape[1] > 0
        and bool(finite)
        and noise > 0
        and bool(np.isfinite(U).all() and np.isfinite(r).all())
    )


def fit_discrepancy(
    U: np.ndarray,
    r: np.ndarray,
    noise: float,
    prior: np.ndarray | None = None,
    scale: float | None = None,
) -> Discrepancy | None:
    """Model-averaged GP on residuals ``r`` at inputs ``U`` (module docstring) under grid
    weights ``prior`` (default :func:`default_prior`), on the last :data:`MAX_RUNS` runs;
    None when there is nothing to fit (no runs, no inputs, a non-finite value or a
    non-positive noise). ``scale``: the amplitude grid's unit (default ``noise``)."""
    U = np.asarray(U, dtype=float)[-MAX_RUNS:]
    r = np.asarray(r, dtype=float)[-MAX_RUNS:]
    if not _usable(U, r, noise, scale):
        return None
    prior = default_prior() if prior is None else np.asarray(prior, dtype=float)
    eig = _eigen(U)
    scale = float(noise if scale is None else scale)
    logp = _loglik(eig, r, noise, scale) + np.log(np.maximum(prior, 1e-300))
    w = np.exp(logp - logp.max())
    return Discrepancy(U=U, r=r, noise=float(noise), scale=scale, weights=w / w.sum(), eig=eig)


def fit_prior(
    groups: list[tuple[np.ndarray, ...]],
) -> np.ndarray:
    """Grid weights that make the discrepancy predict held-out runs best (empirical Bayes).

    Each group is one training dataset seen as a new one: ``(U, r, noise, scale)`` of a few
    runs it was updated on (residuals after that update), then ``(U_test, r_test, v_test)``
    of other runs (residuals from the updated surface, and its variance there), scored with
    the mean noise variance. (Scored under the update's noise mixture instead, as
    ``predict`` scores runs, nothing measured changed beyond noise: openml100_rf after 5 runs,
    NUTS, NLPD −0.496 vs −0.492 and 90% coverage .954 vs .956; tabrepo multiclass after 5
    runs, MAP, NLPD 0.508 vs 0.501.) The weights ``π`` maximize the summed log
    predictive density of the held-out residuals, with each dataset's components weighted by
    ``π_j`` times their marginal likelihood on its few runs (exactly how
    :func:`fit_discrepancy` uses them on a target), plus a Dirichlet log prior centred on
    :func:`default_prior` and worth as many held-out runs as there are components, so an
    uninformative history leaves the default nearly unchanged. The weights are chosen for
    the calibration a user sees after a few runs, not for the fit of a full history.
    """
    from scipy.optimize import minimize

    logml, logpred, gid = [], [], []
    for U, r, noise, scale, U_test, r_test, v_test in groups:
        U, r = np.asarray(U, dtype=float), np.asarray(r, dtype=float)
        if not _usable(U, r, noise, scale) or len(r_test) == 0:
            continue
        eig = _eigen(U)
        logml.append(_loglik(eig, r, noise, scale))
        d = Discrepancy(U, r, float(noise), float(scale), np.zeros(N_COMPONENTS), eig)
        cols = []
        for j in range(N_COMPONENTS):  # each component's predictive for the held-out runs
            d.weights = np.eye(N_COMPONENTS)[j]
            mean, var = d.moments(U_test)
            tot = np.asarray(v_test, dtype=float) + var + noise
            cols.append(-0.5 * (np.log(2 * np.pi * tot) + (r_test - mean) ** 2 / tot))
        logpred.append(np.column_stack(cols))  # (n_test, J)
        gid.append(np.full(len(r_test), len(logml) - 1))
    if not logml:
        return default_prior()
    ML, LP, g = np.array(logml), np.vstack(logpred), np.concatenate(gid)
    n_g = np.bincount(g, minlength=len(ML))
    prior = default_prior()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative objective and its gradient in the softmax parameters ``θ``."""
        logpi = theta - _lse(theta)
        A = logpi + ML
        logw = A - _lse(A, axis=1)[:, None]  # (G, J) each dataset's posterior weights
        R = LP + logw[g]
        ell = _lse(R, axis=1)
        q = np.exp(R - ell[:, None])  # (N, J) responsibilities
        Q = np.zeros_like(ML)
        np.add.at(Q, g, q)
        grad_logpi = (Q - n_g[:, None] * np.exp(logw)).sum(0) + N_COMPONENTS * prior
        pi = np.exp(logpi)
        grad = grad_logpi - pi * grad_logpi.sum()
        return -float(ell.sum() + N_COMPONENTS * (prior @ logpi)), -grad

    theta0 = np.log(prior)
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B")
    theta = res.x if np.isfinite(res.fun) else theta0
    return np.exp(theta - _lse(theta))


def _lse(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``log Σ exp x`` (stable)."""
    top = np.max(x, axis=axis, keepdims=True)
    out = top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))
    return out.squeeze() if axis is None else np.squeeze(out, axis=axis)

"""Acquisition functions: pure numpy over posterior summaries and posterior draws.

Every function here works in *maximization* form. A metric to be minimized is handled by the
``maximize=False`` flag, which flips signs before scoring (``f → −f``, ``best → −best``), so a
larger acquisition value is always better. Nothing here touches a model or a database: inputs
are arrays of predictive means ``mu``, standard deviations ``sigma`` (shape ``(n,)``) or
posterior draws (shape ``(S, n)``), plus the incumbent value ``best``.

Notation: ``z = (mu − best − xi) / sigma``, ``φ`` and ``Φ`` the standard normal pdf and cdf.

- Expected improvement (Jones, Schonlau & Welch 1998):
  ``EI = sigma · h(z)``, ``h(z) = φ(z) + z Φ(z)``.
- log-EI, numerically stable (Ament, Daulton, Eriksson, Balandat & Bakshy 2023, "Unexpected
  Improvements to Expected Improvement for Bayesian Optimization", eq. 9):
  ``log EI = log h(z) + log sigma`` with ``log h`` evaluated through ``erfcx`` for ``z ≤ −1``
  so it stays finite (and exact to rounding) where ``EI`` itself underflows to 0.
- Probability of improvement (Kushner 1964): ``PI = Φ(z)`` (``log PI = log Φ(z)``).
- Upper confidence bound (Srinivas et al. 2010): ``UCB = mu + beta · sigma``.
- Thompson sampling (Thompson 1933): score each candidate by one joint posterior draw.
- Cost-aware EI, "EI per second" (Snoek, Larochelle & Adams 2012, §3.2):
  ``EIpu = EI / cost^alpha``, computed as ``log EI − alpha · log cost``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "ACQUISITIONS",
    "EI_KEYS",
    "cost_aware_log_ei",
    "expected_improvement",
    "incumbent",
    "log_expected_improvement",
    "log_h",
    "log_probability_of_improvement",
    "mc_expected_improvement",
    "probability_of_improvement",
    "score",
    "summarize_draws",
    "thompson_batch",
    "thompson_scores",
    "upper_confidence_bound",
]

#: Names accepted by :func:`score` (and the CLI's ``--acquisition``).
ACQUISITIONS = ("ei", "logei", "pi", "ucb", "ts", "cost-ei")
#: the names that all mean (log) expected improvement
EI_KEYS = ("ei", "logei", "log-ei")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)  # c1 in Ament et al.
_LOG_SQRT_PI_OVER_2 = 0.5 * math.log(math.pi / 2.0)  # c2 in Ament et al.
_TAIL_Z = 1e3  # below −_TAIL_Z, log h uses its asymptotic series (see log_h)
_MIN_SIGMA = 1e-12


def _prepare(
    mu: ArrayLike, sigma: ArrayLike, best: float, maximize: bool, xi: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return ``(z, sigma)`` in maximization form, ``sigma`` floored at a tiny positive value."""
    m = np.asarray(mu, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if np.any(s < 0) or np.any(~np.isfinite(s)):
        raise ValueError("sigma must be finite and non-negative")
    if not math.isfinite(float(best)):
        raise ValueError("best (the incumbent) must be finite")
    s = np.maximum(s, _MIN_SIGMA)
    diff = (m - best) if maximize else (best - m)
    return (diff - xi) / s, s


def _log1mexp(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(1 − exp(x))`` for ``x < 0``, accurate on both sides of ``−log 2``
    (Mächler 2012, "Accurately computing log(1 − exp(−|a|))")."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    near = x > -math.log(2.0)
    out[near] = np.log(-np.expm1(x[near]))
    out[~near] = np.log1p(-np.exp(x[~near]))
    return out


def log_h(z: ArrayLike) -> NDArray[np.float64]:
    """``log h(z)`` with ``h(z) = φ(z) + z Φ(z)``, stable for all finite ``z``.

    Ament et al. (2023), eq. 9:

    - ``z > −1``: ``log(φ(z) + z Φ(z))`` directly;
    - ``−1000 < z ≤ −1``: ``−z²/2 − c1 + log1mexp(log(erfcx(−z/√2)·|z|) + c2)``;
    - ``z ≤ −1000``: ``−z²/2 − c1 − 2 log|z| + log1p(−3/z² + 15/z⁴)``, the asymptotic series
      ``h(z) = φ(z) z⁻² (1 − 3z⁻² + 15z⁻⁴ − …)`` (Abramowitz & Stegun 7.1.23; the next term is
      below 1e-16 there),

    with ``c1 = log √(2π)`` and ``c2 = log √(π/2)``. The paper switches to the asymptote only
    at ``−1/√ε``; just above it the log1mexp argument is ``≈ −z⁻²``, within round-off of 0, and
    came out non-negative (log h = NaN at z = −5.3e7, found by hypothesis).
    """
    # below −1e154, z² overflows; log h is then < −5e307 anyway and candidates tie there
    z = np.maximum(np.asarray(z, dtype=np.float64), -1e154)
    out = np.empty_like(z)
    upper = z > -1.0
    tail = z <= -_TAIL_Z
    mid = ~upper & ~tail
    zu = z[upper]
    out[upper] = np.log(special.ndtr(zu) * zu + np.exp(-0.5 * zu * zu - _LOG_SQRT_2PI))
    zm = z[mid]
    out[mid] = (
        -0.5 * zm * zm
        - _LOG_SQRT_2PI
        + _log1mexp(np.log(special.erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + _LOG_SQRT_PI_OVER_2)
    )
    zt = z[tail]
    zi2 = 1.0 / (zt * zt)
    out[tail] = (
        -0.5 * zt * zt
        - _LOG_SQRT_2PI
        - 2.0 * np.log(np.abs(zt))
        + np.log1p(-3.0 * zi2 + 15.0 * zi2 * zi2)
    )
    return out


def expected_improvement(
    mu: ArrayLike, sigma: ArrayLike, best: float, *, maximize: bool = True, xi: float = 0.0
) -> NDArray[np.float64]:
    """Closed-form expected improvement over ``best`` of a Gaussian ``N(mu, sigma²)``.

    ``EI = E[max(f − best − xi, 0)] = sigma · (φ(z) + z Φ(z))`` (Jones et al. 1998).
    Computed as ``exp(log EI)`` so it is never negative; it underflows to 0 far below the
    incumbent — rank with :func:`log_expected_improvement` there.
    """
    return np.exp(log_expected_improvement(mu, sigma, best, maximize=maximize, xi=xi))


def log_expected_improvement(
    mu: ArrayLike, sigma: ArrayLike, best: float, *, maximize: bool = True, xi: float = 0.0
) -> NDArray[np.float64]:
    """Numerically stable ``log EI = log h(z) + log sigma`` (Ament et al. 2023, "LogEI").

    Finite for every finite input, so candidates far below the incumbent remain ranked by how
    far below they are instead of tying at ``EI = 0``.
    """
    z, s = _prepare(mu, sigma, best, maximize, xi)
    return log_h(z) + np.log(s)


def log_probability_of_improvement(
    mu: ArrayLike, sigma: ArrayLike, best: float, *, maximize: bool = True, xi: float = 0.0
) -> NDArray[np.float64]:
    """``log PI = log Φ(z)`` (Kushner 1964), via ``scipy.special.log_ndtr`` (finite for all z)."""
    z, _ = _prepare(mu, sigma, best, maximize, xi)
    return special.log_ndtr(z)


def probability_of_improvement(
    mu: ArrayLike, sigma: ArrayLike, best: float, *, maximize: bool = True, xi: float = 0.0
) -> NDArray[np.float64]:
    """``PI = P(f > best + xi) = Φ(z)`` (Kushner 1964)."""
    z, _ = _prepare(mu, sigma, best, maximize, xi)
    return special.ndtr(z)


def upper_confidence_bound(
    mu: ArrayLike, sigma: ArrayLike, *, beta: float = 2.0, maximize: bool = True
) -> NDArray[np.float64]:
    """GP-UCB (Srinivas et al. 2010) in maximization form: ``±mu + beta · sigma``.

    For a minimized metric this is the negated lower confidence bound ``−(mu − beta · sigma)``.
    """
    m = np.asarray(mu, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    return (m if maximize else -m) + beta * s


def cost_aware_log_ei(
    mu: ArrayLike,
    sigma: ArrayLike,
    best: float,
    cost: ArrayLike,
    *,
    maximize: bool = True,
    xi: float = 0.0,
    alpha: float = 1.0,
) -> NDArray[np.float64]:
    """log of expected improvement per unit cost, ``log(EI / cost^alpha)``.

    Snoek, Larochelle & Adams (2012), "Practical Bayesian Optimization of Machine Learning
    Algorithms", §3.2 ("EI per second"); ``alpha < 1`` softens the cost penalty (the
    "cost-cooling" exponent of Lee et al. 2020). ``cost`` is the predicted training time in
    seconds, floored at 1 ms.
    """
    c = np.maximum(np.asarray(cost, dtype=np.float64), 1e-3)
    return log_expected_improvement(mu, sigma, best, maximize=maximize, xi=xi) - alpha * np.log(c)


def summarize_draws(draws: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Moment-match posterior draws ``(S, n)`` to per-candidate ``(mean, sd)``."""
    d = np.asarray(draws, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"draws must have shape (S, n), got {d.shape}")
    sd = d.std(axis=0, ddof=1) if d.shape[0] > 1 else np.zeros(d.shape[1])
    return d.mean(axis=0), sd


def mc_expected_improvement(
    draws: ArrayLike, best: float, *, maximize: bool = True, xi: float = 0.0
) -> NDArray[np.float64]:
    """Monte Carlo EI over posterior draws: ``(1/S) Σ_s max(f_s − best − xi, 0)``.

    Exact for the posterior the draws come from (no Gaussian assumption); used to refine a
    shortlist ranked by the closed form.
    """
    d = np.asarray(draws, dtype=np.float64)
    diff = (d - best) if maximize else (best - d)
    return np.maximum(diff - xi, 0.0).mean(axis=0)


def thompson_scores(
    draws: ArrayLike, rng: np.random.Generator | int | None = None, *, maximize: bool = True
) -> NDArray[np.float64]:
    """Thompson sampling (Thompson 1933): the candidates' values in one random joint draw."""
    d = np.asarray(draws, dtype=np.float64)
    gen = np.random.default_rng(rng)
    row = d[gen.integers(d.shape[0])]
    return row if maximize else -row


def thompson_batch(
    draws: ArrayLike,
    q: int,
    rng: np.random.Generator | int | None = None,
    *,
    maximize: bool = True,
) -> NDArray[np.int64]:
    """Indices of ``q`` distinct candidates, each the argmax of a fresh joint posterior draw.

    Parallel Thompson sampling (Kandasamy et al. 2018): draw ``s`` at random, take the best
    candidate not already chosen under that draw; repeat ``q`` times.
    """
    d = np.asarray(draws, dtype=np.float64)
    n = d.shape[1]
    q = min(int(q), n)
    gen = np.random.default_rng(rng)
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for _ in range(q):
        row = d[gen.integers(d.shape[0])].copy()
        if not maximize:
            row = -row
        row[taken] = -np.inf
        idx = int(np.argmax(row))
        chosen.append(idx)
        taken[idx] = True
    return np.asarray(chosen, dtype=np.int64)


def incumbent(
    observed: ArrayLike | None, predicted_mean: ArrayLike | None = None, *, maximize: bool = True
) -> float:
    """The value to improve on: the best observed value on the target dataset, or — when
    nothing has been observed there yet — the best *predicted* mean among the candidates."""
    obs = np.asarray([] if observed is None else observed, dtype=np.float64)
    obs = obs[np.isfinite(obs)]
    if obs.size:
        return float(obs.max() if maximize else obs.min())
    if predicted_mean is None:
        raise ValueError("no observed runs and no predictions: cannot pick an incumbent")
    pm = np.asarray(predicted_mean, dtype=np.float64)
    pm = pm[np.isfinite(pm)]
    if not pm.size:
        raise ValueError("no finite predicted mean to use as the incumbent")
    return float(pm.max() if maximize else pm.min())


def score(
    name: str,
    mu: ArrayLike,
    sigma: ArrayLike,
    best: float,
    *,
    maximize: bool = True,
    draws: ArrayLike | None = None,
    cost: ArrayLike | None = None,
    beta: float = 2.0,
    xi: float = 0.0,
    alpha: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.float64]:
    """Score candidates with the named acquisition; larger is better for every name.

    ``ei`` and ``logei`` both return ``log EI`` (the ranking is the same, and the log stays
    finite), ``pi`` returns ``log PI``, ``ucb`` the bound, ``ts`` one Thompson draw (needs
    ``draws``), ``cost-ei`` ``log(EI / cost^alpha)`` (needs ``cost``).
    """
    key = name.lower().replace("_", "-")
    if key in EI_KEYS:
        return log_expected_improvement(mu, sigma, best, maximize=maximize, xi=xi)
    if key == "pi":
        return log_probability_of_improvement(mu, sigma, best, maximize=maximize, xi=xi)
    if key == "ucb":
        return upper_confidence_bound(mu, sigma, beta=beta, maximize=maximize)
    if key in ("ts", "thompson"):
        if draws is None:
            raise ValueError("Thompson sampling needs posterior draws")
        return thompson_scores(draws, rng, maximize=maximize)
    if key in ("cost-ei", "cei", "eipu"):
        if cost is None:
            raise ValueError("cost-aware EI needs a predicted cost per candidate")
        return cost_aware_log_ei(mu, sigma, best, cost, maximize=maximize, xi=xi, alpha=alpha)
    raise ValueError(f"unknown acquisition {name!r}; choose one of {', '.join(ACQUISITIONS)}")

"""Runs at a metric's bound as censored evidence.

An accuracy of 1.0 on a test set of ``n`` rows does not say the latent accuracy is 1 (its
logit is infinite); it says the latent value lies beyond the dataset's resolution,
``logit(1 − ε)`` with ``ε`` half the finest spacing of the dataset's scores
(:meth:`~metaopt_bayes.features.TargetTransform.bound_eps`). On the modelling scale that is a
*censored* observation of ``z = f(x) + ε``: ``z ≥ c`` (or ``z ≤ c`` at a lower bound, an
error of 0), with likelihood ``Φ(±(f − c)/σ)`` — the Tobit model. By default such a run is
taken as the exact value ``c`` (:data:`SWEEPS` = 0), which measured better than the censored
update on real suites (see :data:`SWEEPS`); what a run beyond ``c`` *shows* — the bound
itself — is the predictive side of this observation model
(:meth:`~metaopt_bayes.features.TargetTransform.observe`), always on.

The closed-form update is conjugate to Gaussian observations, so each censored run enters as
a Gaussian *site* ``N(ỹ, ṽ)`` on ``f`` fitted by expectation propagation (Minka 2001;
Rasmussen & Williams 2006, §3.6, whose probit site this is, shifted to the threshold and
scaled by the noise): the site is chosen so that the Gaussian posterior matches the mean and
variance of the *tilted* distribution, the cavity (the posterior without the site) times the
exact likelihood. The site's variance above the noise travels as the run's own variance,
the channel pruned trials use (``obs_var`` in :func:`metaopt_bayes.update.update_dataset`).
A run far beyond the threshold where the model already expects it gets a very wide site (the
bound tells little); one where the model expected it well inside gets a tight site above
``c``.

Pure arrays: the posterior is reached through two callables, so the same loop serves any
conjugate model (tests use a one-dimensional one with a numerically exact answer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import log_ndtr

#: parallel EP sweeps over the censored runs; 0 (the default): a run at the bound counts as
#: the exact value at its threshold. Measured in 0.7.0 (``benchmarks/bounds.py``,
#: ``benchmarks/results/bounds.md``) the censored update predicted the runs *off* the bound
#: worse on the datasets with runs at 1.0 (squared error 6.7 ± 2.3 against 2.4 ± 0.9 after 5
#: runs on extra trees): on the logit scale a run at 1.0 reads as "anything above the
#: threshold", and the quadratic surface then rises far above the dataset's other runs,
#: while real scores pile up at a ceiling just past the threshold. 4 sweeps switch it on.
SWEEPS = 0
#: weight of a sweep's new site against the old one (natural parameters)
DAMPING = 0.7
#: widest site variance, as a multiple of the noise variance (a bound that says nothing)
MAX_SITE = 1e6


def tilted_moments(
    m_cav: np.ndarray, v_cav: np.ndarray, noise: float, c: np.ndarray, side: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``N(f; m_cav, v_cav) · Φ(side · (f − c) / √noise)``, normalized.

    ``side`` is +1 for ``z ≥ c`` (an upper bound such as accuracy 1.0), −1 for ``z ≤ c``.
    Computed in log space, so a cavity far on the wrong side of ``c`` stays finite."""
    s = np.sqrt(v_cav + noise)
    a = side * (m_cav - c) / s
    logphi = -0.5 * a * a - 0.5 * np.log(2.0 * np.pi)
    r = np.exp(logphi - log_ndtr(a))  # φ(a) / Φ(a), the inverse Mills ratio
    mean = m_cav + side * v_cav * r / s
    var = v_cav - v_cav**2 * r * (a + r) / s**2
    return mean, np.maximum(var, 1e-12 * v_cav)


def censored_mean(m: np.ndarray, var: np.ndarray, c: np.ndarray, side: np.ndarray) -> np.ndarray:
    """``E[z | side · (z − c) ≥ 0]`` for ``z ~ N(m, var)``: a censored run's expected value
    beyond its threshold (never on the wrong side of it)."""
    s = np.sqrt(var)
    a = side * (m - c) / s
    r = np.exp(-0.5 * a * a - 0.5 * np.log(2.0 * np.pi) - log_ndtr(a))
    out = m + side * s * r
    return np.where(side > 0, np.maximum(out, c), np.minimum(out, c))


def censored_sites(
    fit: Callable[[np.ndarray, np.ndarray], Any],
    latent: Callable[[Any], tuple[np.ndarray, np.ndarray, float]],
    y: np.ndarray,
    obs_var: np.ndarray | None,
    side: np.ndarray,
    sweeps: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, Any, np.ndarray]:
    """Gaussian sites for the censored runs of one dataset, by parallel EP.

    ``y``: the runs on the modelling scale, a censored run at its threshold; ``obs_var``:
    each run's variance on top of the noise (None: all 0); ``side``: per run +1 (``z ≥ y``),
    −1 (``z ≤ y``) or 0 (an exact observation). ``fit(y, obs_var)`` gives the posterior,
    ``latent(post)`` the latent mean and variance of ``f`` at the censored runs and the noise
    variance. Returns ``(y, obs_var, post)`` with each censored run replaced by its site (its
    variance above the noise, never below 0) and the posterior given them, and ``y`` with
    each censored run at its expected value beyond the threshold under that posterior
    (:func:`censored_mean`, noise included): for the parts of a model that take only exact
    observations — the E-step of the Tobit model's EM. ``sweeps``: default :data:`SWEEPS`."""
    sweeps = SWEEPS if sweeps is None else int(sweeps)
    side = np.asarray(side, dtype=float)
    cens = np.flatnonzero(side != 0)
    y = np.array(y, dtype=float)
    v = np.zeros(len(y)) if obs_var is None else np.array(obs_var, dtype=float)
    if not len(cens) or sweeps <= 0:
        post = fit(y, v if np.any(v > 0) else None)
        return y, (v if np.any(v > 0) else None), post, y.copy()
    c, sd = y[cens].copy(), side[cens]
    v[cens] = MAX_SITE  # first without the censored runs (a site that says nothing) …
    post = fit(y, v)
    m_f, v_f, noise = latent(post)
    tau = np.full(len(cens), 1.0 / (MAX_SITE + noise))
    nu = c * tau
    for sweep in range(sweeps):  # … then each sweep moves the sites to the tilted moments
        damping = 1.0 if sweep == 0 else DAMPING
        tau_cav = 1.0 / v_f - tau
        ok = tau_cav > 1e-12  # else the site explains the whole posterior: keep it
        tau_cav = np.where(ok, tau_cav, 1.0)
        m_cav, v_cav = (m_f / v_f - nu) / tau_cav, 1.0 / tau_cav
        mean_t, var_t = tilted_moments(m_cav, v_cav, noise, c, sd)
        tau_new = np.maximum(1.0 / var_t - 1.0 / v_cav, 1.0 / (MAX_SITE * noise))
        nu_new = tau_new * np.where(
            1.0 / var_t - 1.0 / v_cav > 0, (mean_t / var_t - m_cav / v_cav) / tau_new, c
        )
        tau_d = damping * tau_new + (1 - damping) * tau
        mean_d = (damping * nu_new + (1 - damping) * nu) / tau_d
        # a censored run tells at most what an exact one would (log Φ curves by ≤ 1/σ²)
        tau = np.where(ok, np.minimum(tau_d, 1.0 / noise), tau)
        nu = np.where(ok, mean_d * tau, nu)
        y[cens] = nu / tau
        v[cens] = np.maximum(1.0 / tau - noise, 0.0)
        post = fit(y, v if np.any(v > 0) else None)
        m_f, v_f, noise = latent(post)
    # E[z | the other runs, z beyond c]: from the cavity, the posterior without the run's site
    tau_cav = np.maximum(1.0 / v_f - tau, 1e-12)
    m_cav = (m_f / v_f - nu) / tau_cav
    imputed = y.copy()
    imputed[cens] = censored_mean(m_cav, 1.0 / tau_cav + noise, c, sd)
    return y, (v if np.any(v > 0) else None), post, imputed


__all__ = [
    "DAMPING",
    "MAX_SITE",
    "SWEEPS",
    "censored_mean",
    "censored_sites",
    "tilted_moments",
]

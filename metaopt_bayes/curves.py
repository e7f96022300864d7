"""Learning curves: a run's final metric predicted from its partial curve (issue #28).

A training run logs its metric at steps ``t`` (epochs, boosting iterations) up to the budget
``T`` of its dataset. On the modelling scale ``z`` (logit of an accuracy, log of a loss, then
standardized; :class:`~metaopt_bayes.features.TargetTransform`) the model predicts the change
still to come after the last observed step ``t_j``, at the fraction ``f = t_j / T``::

    Δ = z(T) − z(t_j) = x(f, curve, config)ᵀ β + (L, s·L) u_d + ε,
    ε ~ N(0, σ_d² (e^{2a} L^{2κ} + e^{2b})),     L = −log f = log(T / t_j)

* ``x`` — the curve shape shared by every dataset: ``L``, ``L²`` (how much a typical curve
  still gains), ``s·L``, ``s·L²`` (how far the local slope ``s`` carries on: ``s`` is the least
  squares slope of ``z`` against ``log t`` over the last doubling of steps, so ``s·L`` is the
  straight-line extrapolation to ``T`` on log steps), ``r``, ``r·L`` (``r``: the last point's
  residual from that line, a noisy last value that partly reverts), and optionally the
  configuration's linear terms times ``L`` (:class:`~metaopt_bayes.features.FeatureEncoder`).
  Every term but ``r`` vanishes at ``f = 1``.
* ``u_d = (level, rate)`` — per dataset, ``u_d ~ N(0, diag τ²)``: how much more (or less)
  than the population its runs still gain, and how much more of their slope persists.
* ``σ_d = e^{v_d}``, ``v_d ~ N(0, s_v²)`` — the dataset's noise level (curves on a validation
  set of 30 rows jump; on 600 rows they do not); the rest of the noise shrinks as ``f → 1``
  (``κ > 0``) to a floor ``e^{b}`` (the final value's own evaluation noise).

Training rows: every finished curve of the training datasets cut at the fractions
:data:`CHECKPOINTS` of its budget; the rows of one run share its final value, so each row is
weighted ``1 / (rows of its run)`` (a composite likelihood in which a run counts once). Fitted
with PyMC: MAP (the mode with the Jacobian, :func:`~metaopt_bayes.inference.map_point`) or
NUTS (nutpie), the draws kept (at most :data:`MAX_DRAWS`).

A dataset the model was not fitted on gets the population: per draw, its ``u_d`` and ``v_d``
are integrated out — ``v_d`` on :data:`NODES` Gauss–Hermite nodes of ``N(0, s_v²)``, ``u_d``
in closed form given ``v_d`` (Bayesian linear regression on the residuals of its finished
curves, the ``context``, cut at the same checkpoints with the same weights). The predictive
law of ``z(T)`` is then a mixture of Gaussians over draws × nodes, which :meth:`prob_beats`
evaluates with numpy alone (no PyMC at predict time).

Measured in ``benchmarks/curve_calibration.py`` (record: ``benchmarks/results/
curve_calibration.md``), against "final = last value", a pooled regression without the dataset
effects and a per-run power law with hierarchical priors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, roots_hermitenorm

from metaopt_bayes.features import PARAM_PREFIX, FeatureEncoder, TargetTransform
from warehouse.errors import ValidationError

#: fractions of the budget at which each finished training curve is cut into training rows
CHECKPOINTS = tuple(float(f) for f in np.round(np.geomspace(0.05, 0.9, 10), 4))
#: the shared shape's terms (fixed effects) and the per-dataset ones (random effects)
SHAPE_TERMS = ("L", "L2", "sL", "sL2", "r", "rL")
EFFECT_TERMS = ("L", "sL")
#: Gauss–Hermite nodes of a new dataset's noise level ``v_d``
NODES = 9
#: posterior draws kept after NUTS (thinned evenly)
MAX_DRAWS = 200
METHODS = ("map", "nuts")
#: file format of :meth:`CurveModel.save`
FORMAT_VERSION = 1
_LOG2 = math.log(2.0)
_CONTEXT_CACHE = 16


# --------------------------------------------------------------------------------------------
# features of a partial curve


def curve_summary(log_steps: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """``(s, r)`` of a partial curve on log steps: ``s`` the least-squares slope over the
    points within the last doubling of steps (at least the last three), ``r`` the last
    point's residual from that line; ``(0, 0)`` for a single point."""
    n = len(log_steps)
    if n < 2:
        return 0.0, 0.0
    k = int(np.count_nonzero(log_steps >= log_steps[-1] - _LOG2 - 1e-12))
    k = min(max(k, 3), n)
    x = log_steps[n - k :]
    y = z[n - k :]
    xm = x.mean()
    ym = y.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if sxx <= 0:
        return 0.0, 0.0
    s = float(dx @ (y - ym)) / sxx
    return s, float(y[-1] - ym - s * dx[-1])


def shape_terms(L: np.ndarray, s: np.ndarray, r: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """The columns ``terms`` (names of :data:`SHAPE_TERMS` / :data:`EFFECT_TERMS`) for rows
    with remaining log-budget ``L``, slope ``s`` and last residual ``r``."""
    L, s, r = (np.asarray(a, dtype=float) for a in (L, s, r))
    table = {
        "L": lambda: L,
        "L2": lambda: L * L,
        "sL": lambda: s * L,
        "sL2": lambda: s * L * L,
        "r": lambda: r,
        "rL": lambda: r * L,
        "sqrtL": lambda: np.sqrt(L),
    }
    return np.stack([table[t]() for t in terms], axis=-1)


def _cut_points(steps: np.ndarray, budget: float, fractions: Sequence[float]) -> np.ndarray:
    """Indices of the last step at or before each fraction of the budget (distinct, before
    the final step)."""
    idx = np.searchsorted(steps, np.asarray(fractions) * budget + 1e-9, side="right") - 1
    idx = idx[(idx >= 0) & (idx < len(steps) - 1)]
    return np.unique(idx)


def _curve_rows(
    steps: np.ndarray, z: np.ndarray, budget: float, fractions: Sequence[float]
) -> tuple[np.ndarray, ...]:
    """One finished curve cut at ``fractions``: ``(L, s, r, anchor, target)`` per cut, the
    target the change from the cut's value to the final one."""
    idx = _cut_points(steps, budget, fractions)
    lt = np.log(steps)
    out = np.empty((len(idx), 5))
    for k, j in enumerate(idx):
        s, r = curve_summary(lt[: j + 1], z[: j + 1])
        out[k] = (math.log(budget / steps[j]), s, r, z[j], z[-1] - z[j])
    return tuple(out.T)


def _gh_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights of the standard normal."""
    x, w = roots_hermitenorm(n)
    return x, w / w.sum()


def _fingerprint(*arrays: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# the dataset's posterior given its finished curves, and the predictive mixture


class _DatasetState:
    """One dataset's effects as a mixture over draws × nodes: ``u ~ N(m, C)``, noise level
    ``v``, component weights ``w`` (summing to 1); arrays of shape (S, G, …)."""

    __slots__ = ("C", "loglik", "m", "v", "w")

    def __init__(
        self,
        m: np.ndarray,
        C: np.ndarray,
        v: np.ndarray,
        w: np.ndarray,
        loglik: np.ndarray | None = None,
    ) -> None:
        self.m, self.C, self.v, self.w = m, C, v, w
        #: the context's log marginal likelihood per component (``u`` integrated out)
        self.loglik = np.zeros(w.shape) if loglik is None else loglik


class CurveModel:
    """Hierarchical model of learning curves across datasets (see the module docstring).

    ``metric``: the metric's name (rows of a ``metric`` column in the curves are filtered by
    it); ``maximize``: whether larger is better; ``transform``: ``logit`` (metrics in [0, 1]),
    ``log`` (losses, times), ``identity``, or None to infer from the training values.
    ``eps``: values at a bound of [0, 1] are moved this far inside before the logit.
    ``configs``: whether the configuration's linear terms enter the shape (when ``fit`` gets
    configs); ``dataset_effects``: False for the pooled regression (no ``u_d``, ``v_d``).
    """

    def __init__(
        self,
        metric: str,
        maximize: bool,
        transform: str | None = None,
        *,
        eps: float = 1e-3,
        dataset_effects: bool = True,
        dataset_noise: bool | None = None,
        use_configs: bool = True,
        shape: Sequence[str] = SHAPE_TERMS,
        effects: Sequence[str] = EFFECT_TERMS,
        checkpoints: Sequence[float] = CHECKPOINTS,
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
    ) -> None:
        if transform not in (None, "logit", "log", "identity"):
            raise ValidationError(
                f"unknown transform {transform!r}; use logit, log, identity or None"
            )
        self.metric = str(metric)
        self.maximize = bool(maximize)
        self.transform_kind = transform
        self.eps = float(eps)
        self.dataset_effects = bool(dataset_effects)
        self.dataset_noise = bool(dataset_effects if dataset_noise is None else dataset_noise)
        if len(tuple(effects)) not in (1, 2):
            raise ValidationError("effects: one or two terms (level, rate)")
        self.use_configs = bool(use_configs)
        self.shape = tuple(shape)
        self.effects = tuple(effects)
        self.checkpoints = tuple(float(f) for f in checkpoints)
        self.draws, self.tune, self.chains = int(draws), int(tune), int(chains)
        self.transform: TargetTransform | None = None
        self.encoder: FeatureEncoder | None = None
        self.datasets: list[str] = []
        self.budgets: dict[str, float] = {}
        self.method = ""
        self.diagnostics: dict[str, Any] = {}
        self._draws: dict[str, np.ndarray] = {}
        self._cache: OrderedDict[str, _DatasetState] = OrderedDict()
        self._quick: dict[tuple, str] = {}
        self._config_cache: dict[tuple, np.ndarray] = {}

    # ---- data ---------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self._draws)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValidationError("the curve model is not fitted: call fit(curves) first")

    @property
    def config_terms(self) -> list[str]:
        """The configuration's terms in the shape (``<linear term>·L``)."""
        if self.encoder is None:
            return []
        return [f"{n}*L" for n in self.encoder.names[1:]]

    @property
    def terms(self) -> list[str]:
        return [*self.shape, *self.config_terms]

    def _select(self, curves: pd.DataFrame, what: str, need: Sequence[str]) -> pd.DataFrame:
        missing = [c for c in need if c not in curves.columns]
        if missing:
            raise ValidationError(f"{what} lacks column(s) {', '.join(missing)}")
        if "metric" in curves.columns:
            curves = curves[curves["metric"] == self.metric]
        curves = curves.dropna(subset=["value"])
        return curves.sort_values(["run_id", "step"], kind="stable")

    def _z(self, values: np.ndarray) -> np.ndarray:
        assert self.transform is not None
        return self.transform.forward(np.asarray(values, dtype=float))

    def _config_matrix(self, configs: pd.DataFrame | None, run_ids: Sequence[Any]) -> np.ndarray:
        """Linear config terms per run (rows in ``run_ids`` order); zeros — the middle of
        each range — for runs without a config."""
        n_c = len(self.config_terms)
        out = np.zeros((len(run_ids), n_c))
        if n_c == 0 or configs is None or len(configs) == 0:
            return out
        assert self.encoder is not None
        conf = configs.drop_duplicates("run_id").set_index("run_id")
        have = pd.Index(run_ids).isin(conf.index)
        if have.any():
            rows = conf.loc[np.asarray(run_ids, dtype=object)[have]].reset_index()
            out[have] = self.encoder.transform(rows)[:, 1:]
        return out

    def _rows(
        self, curves: pd.DataFrame, budgets: Mapping[str, float] | float
    ) -> tuple[np.ndarray, ...]:
        """Training rows of finished curves (one dataset or several): ``(L, s, r, target,
        weight, run position)``; ``budgets`` per dataset, or one number for all."""
        out = []
        run_ids = []
        for rid, g in curves.groupby("run_id", sort=False):
            steps = g["step"].to_numpy(dtype=float)
            if isinstance(budgets, Mapping):
                budget = float(budgets[g["dataset"].iat[0]])
            else:
                budget = float(budgets)
            if steps[-1] < budget - 1e-9:
                continue  # not finished: no final value
            keep = steps <= budget + 1e-9
            L, s, r, _, y = _curve_rows(
                steps[keep], self._z(g["value"].to_numpy()[keep]), budget, self.checkpoints
            )
            if len(L) == 0:
                continue
            w = np.full(len(L), 1.0 / len(L))
            out.append(np.column_stack([L, s, r, y, w, np.full(len(L), len(run_ids))]))
            run_ids.append(rid)
        if not out:
            return (*(np.zeros(0) for _ in range(5)), np.zeros(0, dtype=int), [])
        a = np.vstack(out)
        return (*(a[:, k] for k in range(5)), a[:, 5].astype(int), run_ids)

    def _design(
        self, L: np.ndarray, s: np.ndarray, r: np.ndarray, C: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(X, R)``: the shape (with config terms ``C · L``) and the dataset effects'
        columns."""
        X = shape_terms(L, s, r, self.shape)
        if C.shape[1]:
            X = np.hstack([X, C * np.asarray(L)[:, None]])
        return X, shape_terms(L, s, r, self.effects)

    # ---- fit ----------------------------------------------------------------------------
    def fit(
        self,
        curves: pd.DataFrame,
        configs: pd.DataFrame | None = None,
        method: str = "map",
        seed: int = 0,
    ) -> CurveModel:
        """Fit on finished curves: long ``run_id, dataset, step, value`` (and ``metric``, kept
        where it is this model's metric). A dataset's budget is its largest step; runs that
        stop before it have no final value and are left out. ``configs``: ``run_id`` +
        ``params.*`` (optional; used when ``use_configs``). ``method``: ``map`` or ``nuts``."""
        if method not in METHODS:
            raise ValidationError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        X, R, L, y, w, ds_idx = self._prepare(curves, configs)
        self._fit_pymc(X, R, L, y, w, ds_idx, method, seed)
        self.method = method
        self.diagnostics.update(
            n_runs=self._n_runs, n_rows=len(L), n_datasets=len(self.datasets), method=method
        )
        self._cache.clear()
        self._quick.clear()
        self._config_cache.clear()
        return self

    def _prepare(
        self, curves: pd.DataFrame, configs: pd.DataFrame | None
    ) -> tuple[np.ndarray, ...]:
        """Set the transform, budgets, config encoder and datasets from the training curves;
        return their rows ``(X, R, L, y, w, dataset index)``."""
        if configs is not None and "dataset" not in curves.columns and "dataset" in configs.columns:
            curves = curves.merge(configs[["run_id", "dataset"]], on="run_id", how="left")
        curves = self._select(curves, "curves", ("run_id", "dataset", "step", "value"))
        if curves.empty:
            raise ValidationError(f"no curve points of metric {self.metric!r} to fit on")
        curves = curves.assign(dataset=curves["dataset"].astype(str))
        values = curves["value"].to_numpy(dtype=float)
        kind = self.transform_kind
        if kind is None:
            kind = TargetTransform.fit(values, self.metric).kind
        t = TargetTransform(kind, eps=self.eps, resolution=False)
        t.check(values, "curves")
        g = t._g(values)
        t.center, t.scale = float(np.mean(g)), float(np.std(g)) or 1.0
        self.transform = t
        self.budgets = {
            str(d): float(b) for d, b in curves.groupby("dataset")["step"].max().items()
        }
        self.encoder = None
        if self.use_configs and configs is not None and len(configs):
            params = [c for c in configs.columns if str(c).startswith(PARAM_PREFIX)]
            conf = configs[configs["run_id"].isin(curves["run_id"].unique())]
            if params and len(conf):
                enc = FeatureEncoder.fit(
                    conf[["run_id", *params]], quadratic=False, interactions=False
                )
                if enc.n_features > 1:
                    self.encoder = enc
        L, s, r, y, w, pos, run_ids = self._rows(curves, self.budgets)
        if len(L) == 0:
            raise ValidationError("no finished curve has a point before its budget")
        run_ds = curves.drop_duplicates("run_id").set_index("run_id")["dataset"]
        datasets = sorted(run_ds.loc[run_ids].unique())
        self.datasets = list(datasets)
        ds_idx = pd.Index(datasets).get_indexer(run_ds.loc[run_ids].to_numpy()[pos])
        C = self._config_matrix(configs, run_ids)[pos]
        X, R = self._design(L, s, r, C)
        self._n_runs = len(run_ids)
        return X, R, L, y, w, ds_idx

    def _build_pymc(
        self,
        X: np.ndarray,
        R: np.ndarray,
        L: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        ds_idx: np.ndarray,
    ) -> Any:
        """The PyMC model: population parameters, each dataset's ``u_d`` integrated out
        analytically (its 1×1 or 2×2 Gaussian posterior in closed form — the algebra of
        :meth:`_posterior_state` — so neither the sampler nor the optimizer meets the funnel
        of a centred random effect whose scale may be small)."""
        import pymc as pm
        import pytensor.tensor as pt

        D = len(self.datasets)
        E = R.shape[1]
        Mt = np.zeros((D, len(y)))
        Mt[ds_idx, np.arange(len(y))] = 1.0
        coords = {"term": self.terms, "effect": list(self.effects), "dataset": self.datasets}
        with pm.Model(coords=coords) as model:
            beta = pm.Normal("beta", 0.0, 1.0, dims="term")
            a = pm.Normal("a", -1.0, 1.5)
            b = pm.Normal("b", -2.5, 1.5)
            kappa = pm.LogNormal("kappa", 0.0, 0.75)
            e = y - pt.dot(X, beta)
            var = pt.exp(2 * a) * L ** (2 * kappa) + pt.exp(2 * b)
            if self.dataset_noise:
                s_v = pm.HalfNormal("s_v", 0.5)
                v = pm.Normal("v", 0.0, s_v, dims="dataset")
                var = var * pt.exp(2 * v[ds_idx])
            prec = w / var
            loglik = -0.5 * (w * pt.log(2 * np.pi * var) + prec * e * e).sum()
            if self.dataset_effects:
                tau = pm.HalfNormal("tau", 0.5, dims="effect")
                seg = lambda col: pt.dot(Mt, col)  # noqa: E731 - per-dataset sums
                b1 = seg(prec * e * R[:, 0])
                A11 = seg(prec * R[:, 0] ** 2) + 1 / tau[0] ** 2
                if E == 1:
                    det, quad = A11, b1**2 / A11
                else:
                    b2 = seg(prec * e * R[:, 1])
                    A22 = seg(prec * R[:, 1] ** 2) + 1 / tau[1] ** 2
                    A12 = seg(prec * R[:, 0] * R[:, 1])
                    det = A11 * A22 - A12**2
                    quad = (A22 * b1**2 - 2 * A12 * b1 * b2 + A11 * b2**2) / det
                loglik = loglik + 0.5 * (quad - pt.log(det)).sum() - D * pt.log(tau).sum()
            pm.Potential("loglik", loglik)
        return model

    def _fit_pymc(
        self,
        X: np.ndarray,
        R: np.ndarray,
        L: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        ds_idx: np.ndarray,
        method: str,
        seed: int,
    ) -> None:
        """The population by MAP or NUTS (:meth:`_build_pymc`), then each training dataset's
        ``u_d`` per draw in closed form."""
        import time

        from metaopt_bayes.inference import configure_compile_cache

        configure_compile_cache()
        D = len(self.datasets)
        E = R.shape[1]
        model = self._build_pymc(X, R, L, y, w, ds_idx)
        t0 = time.perf_counter()
        names = ["beta", "a", "b", "kappa"]
        names += ["tau"] if self.dataset_effects else []
        names += ["s_v", "v"] if self.dataset_noise else []
        if method == "map":
            from metaopt_bayes.inference import map_point

            point = map_point(model, seed)
            draws = {k: np.asarray(point[k])[None] for k in names}
        else:
            from metaopt_bayes.inference import diagnose, sample_nuts

            idata, t_compile, _ = sample_nuts(
                model,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=seed,
                target_accept=0.9,
            )
            post = idata.posterior
            total = post.sizes["chain"] * post.sizes["draw"]
            keep = np.unique(np.linspace(0, total - 1, min(MAX_DRAWS, total)).astype(int))
            draws = {}
            for n in names:
                arr = np.asarray(post[n].values)
                draws[n] = arr.reshape(total, *arr.shape[2:])[keep]
            self.diagnostics.update(diagnose(idata, "nuts", names))
            self.diagnostics["compile_s"] = t_compile
        S = len(draws["beta"])
        if not self.dataset_effects:
            draws["tau"] = np.zeros((S, E))
        if not self.dataset_noise:
            draws["s_v"] = np.zeros(S)
            draws["v"] = np.zeros((S, D))
        self._draws = {
            k: np.asarray(draws[k], dtype=float)
            for k in ("beta", "a", "b", "kappa", "tau", "s_v", "v")
        }
        self.diagnostics["fit_s"] = time.perf_counter() - t0
        # each training dataset's u_d per draw, given its rows (the conjugate posterior)
        m = np.zeros((S, D, E))
        C = np.zeros((S, D, E, E))
        for k in range(D):
            sel = ds_idx == k
            v = self._draws["v"][:, k, None]
            st = self._posterior_state(X[sel], R[sel], L[sel], y[sel], w[sel], v=v)
            m[:, k], C[:, k] = st.m[:, 0], st.C[:, 0]
        self._draws["u_mean"], self._draws["u_cov"] = m, C

    # ---- the dataset's effects ----------------------------------------------------------
    def _noise_base(self, L: np.ndarray) -> np.ndarray:
        """``e^{2a} L^{2κ} + e^{2b}`` per draw (S, n)."""
        d = self._draws
        L = np.maximum(np.asarray(L, dtype=float), 1e-12)
        return (
            np.exp(2 * d["a"])[:, None] * L[None, :] ** (2 * d["kappa"][:, None])
            + np.exp(2 * d["b"])[:, None]
        )

    def _known_state(self, dataset: str) -> _DatasetState:
        d = self._draws
        k = self.datasets.index(dataset)
        S = d["beta"].shape[0]
        return _DatasetState(
            d["u_mean"][:, k, None],
            d["u_cov"][:, k, None],
            d["v"][:, k, None],
            np.full((S, 1), 1.0 / S),
        )

    def _state(
        self,
        dataset: str | None,
        context: pd.DataFrame | None,
        budget: float,
        configs: pd.DataFrame | None = None,
    ) -> _DatasetState:
        """The dataset's effects: the fitted ones for a training dataset, else the population
        updated by ``context`` (its finished curves, cut as the training curves were)."""
        self._check_fitted()
        if dataset is not None and str(dataset) in self.datasets:
            return self._known_state(str(dataset))
        key = None
        if context is not None and len(context):
            if configs is None and any(str(c).startswith(PARAM_PREFIX) for c in context.columns):
                configs = context  # the context's own configs, as params.* columns
            # a cheap key first (the frame's identity, length and sums), so the pruner's
            # repeated calls with one context skip the pandas work below
            quick = None
            if "value" in context.columns and "step" in context.columns:
                quick = (
                    id(context),
                    len(context),
                    float(np.nansum(context["value"].to_numpy(dtype=float))),
                    float(np.nansum(context["step"].to_numpy(dtype=float))),
                    float(budget),
                    None if configs is None else id(configs),
                )
                hit = self._quick.get(quick)
                if hit is not None and hit in self._cache:
                    self._cache.move_to_end(hit)
                    return self._cache[hit]
            ctx = self._select(context, "context", ("run_id", "step", "value"))
            ids = pd.factorize(ctx["run_id"])[0]
            key = _fingerprint(
                ids,
                ctx["step"].to_numpy(dtype=float),
                ctx["value"].to_numpy(dtype=float),
                np.array([budget]),
            )
            if configs is not None:
                key += _fingerprint(pd.util.hash_pandas_object(configs, index=False).to_numpy())
            if quick is not None:
                self._quick[quick] = key
                while len(self._quick) > _CONTEXT_CACHE:
                    self._quick.pop(next(iter(self._quick)))
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            L, s, r, y, w, pos, run_ids = self._rows(ctx, float(budget))
            C = self._config_matrix(configs, run_ids)[pos] if len(L) else None
        else:
            L = np.zeros(0)
        if len(L) == 0:
            state = self._prior_state()
        else:
            X, R = self._design(L, s, r, C)
            state = self._posterior_state(X, R, L, y, w)
        if key is not None:
            self._cache[key] = state
            while len(self._cache) > _CONTEXT_CACHE:
                self._cache.popitem(last=False)
        return state

    def _nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Noise-level nodes ``v`` (S, G) and their prior weights (G,)."""
        x, pw = _gh_nodes(NODES)
        return self._draws["s_v"][:, None] * x[None, :], pw

    def _prior_state(self) -> _DatasetState:
        d = self._draws
        v, pw = self._nodes()
        S, G = v.shape
        E = d["tau"].shape[1]
        C = np.zeros((S, G, E, E))
        idx = np.arange(E)
        C[:, :, idx, idx] = (d["tau"] ** 2)[:, None, :]
        return _DatasetState(np.zeros((S, G, E)), C, v, np.broadcast_to(pw / S, (S, G)).copy())

    def _posterior_state(
        self,
        X: np.ndarray,
        R: np.ndarray,
        L: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        v: np.ndarray | None = None,
    ) -> _DatasetState:
        """Per draw and noise node: ``u | context`` in closed form and the context's marginal
        likelihood (weighted rows, as in the fit), which weighs the nodes. ``v``: the noise
        levels (S, G) when known (a training dataset's draws), else the population's nodes."""
        d = self._draws
        if v is None:
            v, pw = self._nodes()  # (S, G)
        else:
            pw = np.ones(v.shape[1]) / v.shape[1]
        e = y[None, :] - d["beta"] @ X.T  # (S, n)
        var = np.exp(2 * v)[:, :, None] * self._noise_base(L)[:, None, :]  # (S, G, n)
        prec = w[None, None, :] / var
        E = R.shape[1]
        tau2 = np.maximum(d["tau"] ** 2, 1e-12)  # (S, E)
        P = np.einsum("sgn,ni,nj->sgij", prec, R, R)
        b = np.einsum("sgn,sn,ni->sgi", prec, e, R)
        idx = np.arange(E)
        A = P.copy()
        A[:, :, idx, idx] += (1.0 / tau2)[:, None, :]
        Ainv = np.linalg.inv(A)
        m = np.einsum("sgij,sgj->sgi", Ainv, b)
        _, logdet = np.linalg.slogdet(A)
        ll = -0.5 * (
            (w[None, None, :] * np.log(2 * np.pi * var)).sum(-1)
            + (prec * e[:, None, :] ** 2).sum(-1)
            - np.einsum("sgi,sgi->sg", b, m)
            + logdet
            + np.log(tau2).sum(-1)[:, None]
        )
        lw = ll + np.log(pw)[None, :]
        ll_out = ll.copy()
        lw -= lw.max(axis=1, keepdims=True)
        wts = np.exp(lw)
        wts /= wts.sum(axis=1, keepdims=True) * len(wts)
        return _DatasetState(m, Ainv, v, wts, ll_out)

    # ---- prediction ---------------------------------------------------------------------
    def _mixture(
        self,
        state: _DatasetState,
        x: np.ndarray,
        rr: np.ndarray,
        L: np.ndarray,
        anchor: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predictive mixture of ``z(T)`` per query row: means, variances (Q, K), weights (K,)."""
        d = self._draws
        mu = anchor[:, None, None] + (x @ d["beta"].T)[:, :, None]  # (Q, S, 1)
        mu = mu + np.einsum("qe,sge->qsg", rr, state.m)
        var = np.einsum("qe,sgef,qf->qsg", rr, state.C, rr)
        noise = self._noise_base(L).T  # (Q, S)
        var = var + noise[:, :, None] * np.exp(2 * state.v)[None, :, :]
        Q = len(L)
        return mu.reshape(Q, -1), var.reshape(Q, -1), state.w.reshape(-1)

    def _partial_features(
        self, steps: np.ndarray, z: np.ndarray, budget: float
    ) -> tuple[float, float, float, float]:
        """``(L, s, r, anchor)`` of a partial curve (sorted steps, transformed values)."""
        s, r = curve_summary(np.log(steps), z)
        return math.log(budget / steps[-1]), s, r, float(z[-1])

    def _encode_config(self, config: Mapping | None) -> np.ndarray:
        n_c = len(self.config_terms)
        if n_c == 0 or not config:
            return np.zeros(n_c)
        key = tuple(sorted((str(k), repr(v)) for k, v in config.items()))
        hit = self._config_cache.get(key)
        if hit is None:
            assert self.encoder is not None
            row = pd.DataFrame(
                [
                    {
                        (k if str(k).startswith(PARAM_PREFIX) else PARAM_PREFIX + str(k)): v
                        for k, v in config.items()
                    }
                ]
            )
            hit = self.encoder.transform(row)[0, 1:]
            self._config_cache[key] = hit
        return hit

    def _predictive(
        self,
        partial: pd.DataFrame,
        budget: float,
        dataset: str | None,
        context: pd.DataFrame | None,
        configs: pd.DataFrame | None,
    ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """``(run_ids, means, variances, weights)`` of the mixture of ``z(T)`` per run."""
        self._check_fitted()
        part = self._select(partial, "partial", ("run_id", "step", "value"))
        part = part[part["step"] <= budget + 1e-9]
        state = self._state(dataset, context, float(budget), configs)
        run_ids, feats = [], []
        for rid, g in part.groupby("run_id", sort=False):
            steps = g["step"].to_numpy(dtype=float)
            feats.append(self._partial_features(steps, self._z(g["value"].to_numpy()), budget))
            run_ids.append(rid)
        if not run_ids:
            return [], np.zeros((0, 1)), np.zeros((0, 1)), np.ones(1)
        L, s, r, anchor = np.asarray(feats).T
        C = self._config_matrix(configs, run_ids)
        X, R = self._design(L, s, r, C)
        mu, var, w = self._mixture(state, X, R, L, anchor)
        done = L <= 1e-12  # observed at the budget: the final value is known
        mu[done] = anchor[done, None]
        var[done] = 0.0
        return run_ids, mu, var, w

    def predict_final(
        self,
        partial: pd.DataFrame,
        budget: int,
        dataset: str | None = None,
        context: pd.DataFrame | None = None,
        configs: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The final value (at ``budget``) of each run in ``partial`` (long: ``run_id, step,
        value``, the points observed so far), on the metric's own scale: one row per run_id
        with ``mean, sd, q05, q25, q50, q75, q95`` (and ``z_mean, z_sd`` on the modelling
        scale). ``dataset``: a training dataset's name uses its fitted effects; otherwise
        ``context`` (the same dataset's finished curves, long ``run_id, step, value``)
        updates the population's. ``configs``: ``run_id`` + ``params.*`` of the partial runs
        (and of the context's), when the model uses configurations. A run observed at the
        budget already has its final value (sd 0)."""
        run_ids, mu, var, w = self._predictive(partial, float(budget), dataset, context, configs)
        cols = ["mean", "sd", "q05", "q25", "q50", "q75", "q95", "z_mean", "z_sd"]
        out = _summaries(mu, var, w, self.transform) if run_ids else np.zeros((0, len(cols)))
        return pd.DataFrame(out, columns=cols, index=pd.Index(run_ids, name="run_id"))

    def cdf(
        self,
        partial: pd.DataFrame,
        budget: int,
        values: Mapping[Any, float] | pd.Series,
        dataset: str | None = None,
        context: pd.DataFrame | None = None,
        configs: pd.DataFrame | None = None,
    ) -> pd.Series:
        """``P(final ≤ values[run_id])`` per run of ``partial`` (the predictive CDF on the
        metric's scale; its value at the true final is the PIT of a calibration check)."""
        run_ids, mu, var, w = self._predictive(partial, float(budget), dataset, context, configs)
        vals = pd.Series(values).reindex(run_ids).to_numpy(dtype=float)
        z = self._z(vals)
        sd = np.sqrt(var)
        safe = np.where(sd > 0, sd, 1.0)
        c = np.where(sd > 0, ndtr((z[:, None] - mu) / safe), (z[:, None] >= mu).astype(float))
        return pd.Series(c @ w, index=pd.Index(run_ids, name="run_id"))

    def prob_beats(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        budget: int,
        incumbent: float,
        context: pd.DataFrame | None = None,
        config: Mapping | None = None,
        dataset: str | None = None,
    ) -> float:
        """``P(final value better than incumbent)`` for one partial curve (its ``steps`` and
        ``values``), better meaning larger when ``maximize``. numpy only; the dataset's state
        for a ``context`` is cached by content, so repeated calls cost ~0.1 ms."""
        self._check_fitted()
        st = np.asarray(steps, dtype=float)
        if len(st) == 0:
            raise ValidationError("prob_beats needs at least one observed point")
        order = np.argsort(st, kind="stable")
        st = st[order]
        z = self._z(np.asarray(values, dtype=float)[order])
        keep = st <= budget + 1e-9
        st, z = st[keep], z[keep]
        assert self.transform is not None
        z_inc = float(self.transform.forward(np.array([float(incumbent)]))[0])
        L, s, r, anchor = self._partial_features(st, z, float(budget))
        if L <= 1e-12:
            better = anchor > z_inc if self.maximize else anchor < z_inc
            return float(better)
        state = self._state(dataset, context, float(budget))
        c = self._encode_config(config)
        X, R = self._design(np.array([L]), np.array([s]), np.array([r]), c[None, :])
        mu, var, w = self._mixture(state, X, R, np.array([L]), np.array([anchor]))
        t = (mu[0] - z_inc) / np.sqrt(var[0])
        p = float(ndtr(t if self.maximize else -t) @ w)
        return min(max(p, 0.0), 1.0)

    # ---- persistence --------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "maximize": self.maximize,
            "transform": self.transform_kind,
            "eps": self.eps,
            "dataset_effects": self.dataset_effects,
            "dataset_noise": self.dataset_noise,
            "use_configs": self.use_configs,
            "shape": list(self.shape),
            "effects": list(self.effects),
            "checkpoints": list(self.checkpoints),
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to ``path`` (``.npz``: the draws, and the settings,
        transform, encoder and datasets as JSON), aside and then moved into place."""
        self._check_fitted()
        assert self.transform is not None
        meta = {
            "format": FORMAT_VERSION,
            "config": self.config_dict(),
            "transform": self.transform.to_dict(),
            "encoder": None if self.encoder is None else self.encoder.to_dict(),
            "datasets": self.datasets,
            "budgets": self.budgets,
            "method": self.method,
            "diagnostics": self.diagnostics,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        try:
            with open(name, "wb") as fh:
                np.savez_compressed(
                    fh, meta=np.array(json.dumps(meta, default=_json_default)), **self._draws
                )
            os.replace(name, path)
        finally:
            Path(name).unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CurveModel:
        """A model :meth:`save` wrote; refuses a file of another format."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                draws = {k: np.asarray(data[k]) for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise ValidationError(f"cannot read curve model {str(path)!r}: {exc}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValidationError(
                f"curve model {str(path)!r} has format {meta.get('format')!r}; this version "
                f"reads format {FORMAT_VERSION}: refit it"
            )
        c = meta["config"]
        model = cls(
            c["metric"],
            c["maximize"],
            c["transform"],
            eps=c["eps"],
            dataset_effects=c["dataset_effects"],
            dataset_noise=c["dataset_noise"],
            use_configs=c["use_configs"],
            shape=c["shape"],
            effects=c["effects"],
            checkpoints=c["checkpoints"],
            draws=c["draws"],
            tune=c["tune"],
            chains=c["chains"],
        )
        model.transform = TargetTransform.from_dict(meta["transform"])
        if meta["encoder"] is not None:
            model.encoder = FeatureEncoder.from_dict(meta["encoder"])
        model.datasets = list(meta["datasets"])
        model.budgets = {str(k): float(v) for k, v in meta["budgets"].items()}
        model.method = meta["method"]
        model.diagnostics = meta["diagnostics"]
        model._draws = draws
        return model


# --------------------------------------------------------------------------------------------
# mixture summaries


def _summaries(
    mu: np.ndarray, var: np.ndarray, w: np.ndarray, transform: TargetTransform | None
) -> np.ndarray:
    """Per row of a Gaussian mixture on the modelling scale (means ``mu``, variances ``var``,
    weights ``w``): mean, sd, 5/25/50/75/95% quantiles on the metric's scale (the mean and sd
    by 16-point Gauss–Hermite per component), then the mean and sd on the modelling scale."""
    assert transform is not None
    sd = np.sqrt(np.maximum(var, 0.0))
    z_mean = mu @ w
    z_sd = np.sqrt(np.maximum((var + mu**2) @ w - z_mean**2, 0.0))
    x, gw = _gh_nodes(16)
    vals = transform.inverse(mu[:, :, None] + sd[:, :, None] * x[None, None, :])
    m1 = np.einsum("qkh,h,k->q", vals, gw, w)
    m2 = np.einsum("qkh,h,k->q", vals**2, gw, w)
    msd = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    probs = (0.05, 0.25, 0.5, 0.75, 0.95)
    qz = mixture_quantiles(mu, sd, w, probs)
    qs = transform.inverse(qz)
    if transform.kind == "logit":  # the clip maps [1 − eps, 1] to one point: the bound
        qs = np.where(qs >= 1 - transform.eps * (1 + 1e-9), 1.0, qs)
        qs = np.where(qs <= transform.eps * (1 + 1e-9), 0.0, qs)
    return np.column_stack([m1, msd, qs, z_mean, z_sd])


def mixture_quantiles(
    mu: np.ndarray, sd: np.ndarray, w: np.ndarray, probs: Sequence[float]
) -> np.ndarray:
    """Quantiles ``probs`` of ``Σ_k w_k N(mu_qk, sd_qk²)`` per row ``q`` (bisection; a
    component with sd 0 is a point mass): (Q, len(probs))."""
    mu = np.asarray(mu, dtype=float)
    sd = np.asarray(sd, dtype=float)
    out = np.empty((len(mu), len(probs)))
    lo0 = (mu - 10 * sd).min(axis=1)
    hi0 = (mu + 10 * sd).max(axis=1)
    safe = np.where(sd > 0, sd, 1.0)
    for j, p in enumerate(probs):
        lo, hi = lo0.copy(), hi0.copy()
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            t = (mid[:, None] - mu) / safe
            cdf = np.where(sd > 0, ndtr(t), (mid[:, None] >= mu).astype(float)) @ w
            below = cdf < p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out[:, j] = 0.5 * (lo + hi)
    return out


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


__all__ = ["CHECKPOINTS", "CurveModel", "curve_summary", "mixture_quantiles", "shape_terms"]

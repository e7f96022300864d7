"""MetaLearner: a hierarchical Bayesian model of a metric across datasets (PyMC).

Model (one model family, one metric; ``y`` is the metric on the standardized modelling scale,
see :class:`~metaopt_bayes.features.TargetTransform`; ``φ`` the configuration basis, see
:class:`~metaopt_bayes.features.FeatureEncoder`; ``z_d`` standardized meta-features, see
:class:`~metaopt_bayes.features.MetaFeatureScaler`)::

    y_dr   = φ(x_dr)ᵀ β_d + ε_dr,        ε_dr ~ N(0, σ_d² + σ_floor²)
    β_d    ~ N(B z_d, diag τ²)           (population mean depends on the meta-features)
    log σ_d ~ N(m_σ, s_σ)
    B[:,0] ~ N(0, 1),  B[J,1:] ~ N(0, prior_meta²),  τ ~ HalfNormal(prior_tau),
    m_σ ~ N(−1, 1),  s_σ ~ HalfNormal(0.5)

``J`` (option ``meta_terms``) are the basis terms whose population mean moves with the
meta-features: by default the intercept only — the level of the metric on a dataset. Measured
on ``openml100_rf`` (leave-19-tasks-out, MAP), letting the main effects or every term depend on
the meta-features lowered the zero-shot within-task Spearman from 0.618 to 0.506 / 0.583: with
tens of datasets the extra ``p × q`` coefficients fit noise. The other terms share ``B[:,0]``.

The levels' population is Gaussian. A heavy-tailed one was measured and not adopted (a scale
mixture ``N(0, κ τ₀²)``, ``κ`` on a log₂ grid 1/16…16 with weights by EM over the training
datasets' evidence, used for zero-shot predictions; MAP, tabrepo five task folds and
openml100_rf NUTS): on the training levels its leave-one-dataset-out likelihood did not beat
the Gaussian (−2.2 to +0.8 nats per fold), and on held-out tasks it changed the zero-shot
NLPD by −0.04 (openml100_rf) and −0.07 / −0.48 / +0.10 (tabrepo binary / multiclass /
regression error) while the 50% coverage fell to .31–.41 when the mixture kept the fitted
variance; without that constraint the 90% coverage rose to .95–.97.

``β_d`` is conjugate and is integrated out analytically: each dataset contributes its
marginal likelihood computed from sufficient statistics ``(XᵀX, Xᵀy, yᵀy, n)`` with the
Woodbury identity (:mod:`metaopt_bayes.update`), so the sampler sees only the population
parameters and the cost of one gradient does not depend on the number of runs. At predict
time the posterior of a dataset's ``β`` given its runs logged *at call time* is the same
closed form per draw — the few-shot update costs milliseconds and needs no refit. This is the
collapsed-Gibbs / "marginalized" treatment of Gaussian hierarchical models (e.g. Gelman et al.,
*Bayesian Data Analysis* 3rd ed., §15.4).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from metaopt_bayes import censoring
from metaopt_bayes.adapt import (
    MIN_RUNS,
    TaskGP,
    fit_task_gp,
    linear_loo,
    mix_moments,
    mixture_components,
    mixture_interval,
    ranking_weight,
    stacking_weight,
)
from metaopt_bayes.censoring import censored_sites
from metaopt_bayes.discrepancy import (
    LENGTH_SCALES,
    Discrepancy,
    StackedMeans,
    fit_discrepancy,
)
from metaopt_bayes.empirical_bayes import (
    discrepancy_prior,
    meta_prior_scale,
    sensitivity_prior,
    typical_noise,
)
from metaopt_bayes.features import (
    PARAM_PREFIX,
    FeatureEncoder,
    MetaFeatureScaler,
    TargetTransform,
)
from metaopt_bayes.inference import METHODS, configure_compile_cache, diagnose, run_inference
from metaopt_bayes.persistence import (
    FIT_METRIC,
    hash_config,
    json_default,
    load_learner,
    save_learner,
    settings_hash,
    training_digest,
    writable_model_path,
)
from metaopt_bayes.pruning import pruned_targets
from metaopt_bayes.pymc_graph import POPULATION_VARS, build_pymc_model, posterior_draws
from metaopt_bayes.update import (
    CoefficientPosterior,
    mixture_quantile,
    noise_mixture,
    predictive_moments,
    tuned_prior,
    update_dataset,
)
from warehouse.errors import NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike

#: the grid of a dataset's sensitivity ``λ``: its slopes (every term but the intercept) deviate
#: from the population by ``N(0, λ τ²)`` (see :meth:`MetaLearner._sensitivity_prior`)
SENSITIVITIES = 2.0 ** np.arange(-4, 7)

#: runs per training dataset behind its discrepancy in the history's surfaces
HISTORY_RUNS = 200
#: dataset states (posterior given its runs) kept between predictions, see _conditioned
_MEMO_STATES = 3
#: a candidate frame up to this many rows is remembered with its state's predictions
_MEMO_ROWS = 200_000

#: how a dataset's own runs are weighed against the transfer (see DEFAULT_CONFIG["adapt"])
ADAPT_MODES = ("stack", "rank", "off")

DEFAULT_CONFIG: dict[str, Any] = {
    "draws": 1000,  # per chain (nuts) / total (advi, pathfinder)
    "tune": 1000,
    "chains": 2,
    "seed": 0,
    "target_accept": 0.95,
    "quadratic": True,
    "interactions": True,
    "transform": None,  # logit | log | identity | None (infer)
    "prior_tau": 1.0,
    # prior sd of a standardized meta-feature's effect on the level: "auto" (empirical Bayes
    # from the datasets' mean levels, see meta_prior_scale) or a number. A fixed scale cannot
    # serve every metric: 0.03 was best for error metrics, whose levels the meta-features do
    # not predict (`benchmarks/surrogate.py --levels`), but left the training time's zero-shot
    # RMSE at 1.61 where 0.3 gives 1.09 (tabrepo, MAP, five task folds)
    "prior_meta": "auto",
    # noise floor on the standardized scale: σ_d² = exp(2 log σ_d) + floor², so a dataset
    # whose metric never varies (e.g. 100% accuracy everywhere) cannot drive log σ_d → −∞.
    # Without a floor the likelihood of a constant dataset grows without bound as σ_d → 0.
    # Measured on openml100_rf (NUTS, 200+200 draws): floor 0.02 sat above most datasets' noise
    # and left their log σ_d unidentified (31 leapfrog steps per draw, min ESS 29); floor 0.001
    # → 15 steps, min ESS 152.
    "sigma_floor": 0.001,
    # which basis terms have meta-feature-dependent population means: "intercept" (the level
    # only), "linear" (level + main effects) or "all" (every term); measured in the docstring
    "meta_terms": "intercept",
    # parameters that count training rows, encoded as value / the dataset's n_instances
    # (None: the zoo family's ``per_row``, e.g. min_samples_leaf); see Family.per_row
    "per_row": None,
    "n_nodes": 12,  # σ quadrature nodes for datasets unseen in fitting
    # a Gaussian-process discrepancy on each dataset's residuals (metaopt_bayes.discrepancy)
    "discrepancy": True,
    # a per-dataset scale of the coefficients' deviation from the population (some datasets
    # barely respond to their hyperparameters, others strongly); see _sensitivity_prior
    "sensitivity": True,
    # posterior draws kept for prediction (evenly thinned). The few-shot update's cost grows
    # with the draws (one eigendecomposition each); 250 draws of the population posterior
    # (effective sizes are in the hundreds) keep a search step within ~100 ms.
    "max_draws": 250,
    "space": None,
    "progress": False,
    "advi_steps": 20000,
    "sampler": "nutpie",  # NUTS implementation: nutpie (numba) | pymc
    # task adaptation (metaopt_bayes.adapt): a GP on the task's own runs mixed with the
    # transferred prediction, weighted by leave-one-out stacking ("stack"), by leave-one-out
    # ranking loss as in RGPE ("rank"), or not at all ("off": the transferred model alone)
    "adapt": "stack",
}


def infer_direction(metric: str) -> str:
    """``minimize`` for names that look like losses/errors/times, else ``maximize`` (the
    warehouse's rule for metrics it registers, :func:`warehouse.ingest.guess_direction`)."""
    from warehouse.ingest import guess_direction

    return guess_direction(metric)


# ----------------------------------------------------------------------------------------------


# the largest value whose square is a finite float (moments of predictions in metric units)
_MOMENT_CAP = float(np.sqrt(np.finfo(np.float64).max)) / 32


class MetaLearner:
    """Predict a configuration's metric on any dataset, with calibrated uncertainty.

    ``method``: ``nuts`` (nutpie, else PyMC's NUTS), ``pathfinder`` (pymc-extras), ``advi``,
    ``map`` (a point estimate of the population parameters; ``β_d`` stays Bayesian).
    ``config`` overrides :data:`DEFAULT_CONFIG` (draws, tune, chains, seed, quadratic,
    interactions, transform, space, …). ``direction`` (used by recommendations) defaults to
    the metric's direction registered in the warehouse it is fitted on, else the one its name
    suggests: ``MetaLearner("log_loss")`` minimizes, ``MetaLearner("accuracy")`` maximizes.
    """

    def __init__(
        self,
        metric: str,
        model: str | None = None,
        direction: str | None = None,
        method: str = "nuts",
        **config: Any,
    ) -> None:
        if method not in METHODS:
            raise ValidationError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        unknown = set(config) - set(DEFAULT_CONFIG) - {"path"}
        if unknown:
            raise ValidationError(f"unknown MetaLearner option {sorted(unknown)[0]!r}")
        self._direction_given = direction is not None
        if direction is None:
            direction = infer_direction(metric)
        if direction not in ("maximize", "minimize"):
            raise ValidationError(f"direction must be maximize or minimize, not {direction!r}")
        self.metric = metric
        self.model = model
        self.direction = direction
        self.method = method
        self.config = {**DEFAULT_CONFIG, **config}
        if self.config["meta_terms"] not in ("intercept", "linear", "all"):
            raise ValidationError(
                f"meta_terms must be intercept, linear or all, not {self.config['meta_terms']!r}"
            )
        self._check_numbers()
        pr = self.config["per_row"]
        if pr is not None and (isinstance(pr, str) or not all(isinstance(n, str) for n in pr)):
            raise ValidationError(f"per_row must be a list of parameter names, not {pr!r}")
        if pr is not None:
            self.config["per_row"] = sorted(pr)
        pm_ = self.config["prior_meta"]
        if pm_ != "auto" and not (
            isinstance(pm_, int | float) and not isinstance(pm_, bool) and pm_ > 0
        ):
            raise ValidationError(f"prior_meta must be 'auto' or a positive number, not {pm_!r}")
        self.warehouse = None
        self.idata = None
        self.encoder: FeatureEncoder | None = None
        self.scaler: MetaFeatureScaler | None = None
        self.transform: TargetTransform | None = None
        self.datasets: list[str] = []
        self.diagnostics: dict[str, Any] = {}
        self.model_id: str | None = None
        # what the fit learnt from (:meth:`fingerprint`), recorded with it for reuse
        self.settings_hash: str | None = None
        self.data_digest: dict[str, str] | None = None
        # the best configuration seen on each training dataset (params without prefix):
        # search adds these to its candidates, a data-driven portfolio (Feurer et al. 2015)
        self.portfolio: list[dict[str, Any]] = []
        # (D, p): each training dataset's posterior-mean coefficients given its own runs (the
        # history's surfaces, see history_regret); None for files saved before 0.6.0
        self.history_coefs: np.ndarray | None = None
        # the training datasets' discrepancy means (inputs and dual weights, stacked); None
        # without the discrepancy
        self.history_disc: StackedMeans | None = None
        self._draws: dict[str, np.ndarray] = {}
        # the last few datasets' states given their runs (_conditioned), for these draws
        self._memo: tuple[dict[str, np.ndarray], OrderedDict] = (self._draws, OrderedDict())
        self._memo_lock = threading.Lock()
        self._Z: np.ndarray | None = None
        # grid weights of the model discrepancy, learnt in fitting (None: the default prior)
        self.discrepancy_prior: np.ndarray | None = None
        # weights of the sensitivity grid, learnt in fitting, and the grid itself
        self.sensitivity_prior: np.ndarray | None = None
        self.sensitivity_grid: np.ndarray = SENSITIVITIES
        # each training dataset's size (n_instances), for parameters encoded per row
        self.rows: dict[str, float] = {}

    # ---- public properties -------------------------------------------------------------
    @property
    def param_names(self) -> list[str]:
        self._require_fitted()
        return self.encoder.param_names

    @property
    def space(self) -> Any:
        return self.config.get("space")

    @property
    def is_fitted(self) -> bool:
        return bool(self._draws)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ValidationError("this MetaLearner is not fitted yet: call fit() or load()")

    def config_dict(self) -> dict[str, Any]:
        """JSON-safe configuration (what the config hash covers)."""
        cfg = {k: v for k, v in self.config.items() if k not in ("progress", "path")}
        if cfg.get("space") is not None and not isinstance(cfg["space"], dict | list):
            cfg["space"] = (
                cfg["space"].to_dict() if hasattr(cfg["space"], "to_dict") else str(cfg["space"])
            )
        return {
            "metric": self.metric,
            "model": self.model,
            "direction": self.direction,
            "method": self.method,
            **cfg,
        }

    def config_hash(self) -> str:
        blob = json.dumps(self.config_dict(), sort_keys=True, default=str)
        return hash_config(blob)

    # ---- fitting -------------------------------------------------------------------------
    def _check_numbers(self) -> None:
        """One-line errors for sampler settings that cannot work (instead of a deep failure
        inside PyMC or nutpie minutes later)."""
        c = self.config
        for key, least in (
            ("draws", 1), ("tune", 0), ("chains", 1), ("max_draws", 1), ("n_nodes", 1),
            ("advi_steps", 1),
        ):  # fmt: skip
            v = c[key]
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < least:
                raise ValidationError(f"{key} must be an integer >= {least}, not {v!r}")
        if not (isinstance(c["target_accept"], float | int) and 0 < c["target_accept"] < 1):
            raise ValidationError(f"target_accept must be in (0, 1), not {c['target_accept']!r}")
        if c["transform"] not in (None, "logit", "log", "identity"):
            raise ValidationError(
                f"transform must be logit, log, identity or None, not {c['transform']!r}"
            )
        if c["sampler"] not in ("nutpie", "pymc"):
            raise ValidationError(f"sampler must be nutpie or pymc, not {c['sampler']!r}")
        if c["adapt"] not in ADAPT_MODES:
            raise ValidationError(
                f"adapt must be one of {', '.join(ADAPT_MODES)}, not {c['adapt']!r}"
            )

    def fit(self, warehouse: WarehouseLike, datasets: list[str] | None = None, exclude: Any = None):
        """Fit on the warehouse's training matrix (and meta-features); record the fit there."""
        if self.config.get("path"):
            writable_model_path(self.config["path"], create=False)  # fail before the fit
        if hasattr(warehouse, "has_dataset") and datasets and not isinstance(datasets, str):
            # (exclude may name a dataset the warehouse does not know: a new optimize target)
            unknown = [d for d in datasets if not warehouse.has_dataset(str(d))]
            if unknown:
                raise NotFoundError(f"datasets: {unknown[0]!r} is not in the warehouse")
        runs = _training_matrix(warehouse, self.metric, self.model, datasets, exclude)
        if len(runs) == 0 and hasattr(warehouse, "sql"):
            raise ValidationError(
                _why_no_runs(warehouse, self.metric, self.model, bool(datasets or exclude))
            )
        if not self._direction_given and hasattr(warehouse, "metric_direction"):
            self.direction = warehouse.metric_direction(self.metric)
        meta = warehouse.meta_features()
        self.fit_frame(runs, meta)
        self.fingerprint(runs, meta)
        self.warehouse = warehouse
        path = self.config.get("path")
        if path:
            self.save(path)
        if hasattr(warehouse, "record_meta_model"):
            self.model_id = warehouse.record_meta_model(**self.meta_model_row(path))
        return self

    def fingerprint(
        self, runs: pd.DataFrame, meta: pd.DataFrame | None, fitted_to: str = FIT_METRIC
    ) -> dict[str, Any]:
        """Note what this fit learnt from, for :meth:`meta_model_row` to record: the hash of
        its settings and one content hash per training dataset (``runs``: the training frame
        it was fitted on; ``fitted_to``: its metric, or the runs' training seconds). A later
        call with the same settings whose other datasets hash the same reuses the fit
        (:mod:`metaopt_bayes.reuse`)."""
        self.settings_hash = settings_hash(self.config_dict(), fitted_to)
        self.data_digest = training_digest(runs, meta)
        return {"settings_hash": self.settings_hash, "data_digest": self.data_digest}

    def meta_model_row(self, path: str | os.PathLike | None = None) -> dict[str, Any]:
        """The ``meta_models`` row describing this fit (columns in docs/CONTRACT.md)."""
        d = self.diagnostics
        return {
            "metric": self.metric,
            "model_family": self.model,
            "method": self.method,
            "config_hash": self.config_hash(),
            "config": json.dumps(self.config_dict(), sort_keys=True, default=str),
            "path": str(path) if path else None,
            "n_runs": int(d.get("n_runs", 0)),
            "n_datasets": int(d.get("n_datasets", 0)),
            "max_rhat": _none_if_nan(d.get("max_rhat")),
            "min_ess": _none_if_nan(d.get("min_ess")),
            "n_divergences": d.get("n_divergences"),
            "fit_s": d.get("fit_s"),
            "compile_s": d.get("compile_s"),
            "status": d.get("status", "ok"),
            "diagnostics": json.dumps(d, default=json_default),
            "settings_hash": self.settings_hash,
            "data_digest": (
                None if self.data_digest is None else json.dumps(self.data_digest, sort_keys=True)
            ),
        }

    def _target(self, runs: pd.DataFrame) -> np.ndarray:
        if (
            self.metric in ("duration_s",)
            and "duration_s" in runs.columns
            and ("value" not in runs.columns or runs["value"].isna().all())
        ):
            return pd.to_numeric(runs["duration_s"], errors="coerce").to_numpy(dtype=float)
        if "value" not in runs.columns:
            raise ValidationError("training matrix has no 'value' column")
        return pd.to_numeric(runs["value"], errors="coerce").to_numpy(dtype=float)

    def fit_frame(self, runs: pd.DataFrame, meta: pd.DataFrame | None = None) -> MetaLearner:
        """Fit on a training-matrix DataFrame (``dataset``, ``value``, ``params.*``) and a wide
        meta-feature frame indexed by dataset. The warehouse-free core of :meth:`fit`."""
        t_start = time.perf_counter()
        if runs is None or len(runs) == 0:
            raise ValidationError(f"no finished runs with metric {self.metric!r} to fit on")
        if "dataset" not in runs.columns:
            raise ValidationError("training matrix has no 'dataset' column")
        runs = runs.copy()
        if self.model is not None and "model" in runs.columns:
            runs = runs[runs["model"].astype(str) == str(self.model)]
            if runs.empty:
                raise ValidationError(
                    f"no runs of model {self.model!r} with metric {self.metric!r}"
                )
        elif "model" in runs.columns and runs["model"].nunique() > 1:
            names = sorted(runs["model"].astype(str).unique())
            fams = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise ValidationError(
                f"runs of several model families ({fams}); choose one (model= in Python, "
                "--model in the CLI)"
            )
        if self.model is None and "model" in runs.columns:
            self.model = str(runs["model"].iloc[0])
        y_raw = self._target(runs)
        keep = np.isfinite(y_raw)
        runs, y_raw = runs[keep].reset_index(drop=True), y_raw[keep]
        if len(runs) == 0:
            raise ValidationError(f"no finite values of metric {self.metric!r} to fit on")
        runs["dataset"] = runs["dataset"].astype(str)
        groups = runs["dataset"].to_numpy()
        self.transform = TargetTransform.fit(
            y_raw, self.metric, self.config.get("transform"), groups=groups
        )
        self.transform.check(y_raw, "training run")
        y = self.transform.forward(y_raw, groups)
        datasets = sorted(runs["dataset"].unique())
        sizes = _dataset_rows(meta, datasets)
        self.rows = {d: float(r) for d, r in zip(datasets, sizes, strict=True) if np.isfinite(r)}
        run_rows = runs["dataset"].map(self.rows).to_numpy(dtype=float)
        self.encoder = FeatureEncoder.fit(
            runs,
            space=self.config.get("space"),
            quadratic=self.config["quadratic"],
            interactions=self.config["interactions"],
            per_row=self._per_row(),
            rows=run_rows,
        )
        Phi = self.encoder.transform(runs, rows=run_rows)
        self.datasets = datasets
        self.portfolio = _portfolio(runs, y_raw, self.direction == "maximize")
        self.scaler = MetaFeatureScaler.fit(meta, datasets)
        self._Z = self.scaler.transform(meta, datasets)
        codes = pd.Categorical(runs["dataset"], categories=datasets).codes
        p = Phi.shape[1]
        D = len(datasets)
        S = np.zeros((D, p, p))
        b = np.zeros((D, p))
        c = np.zeros(D)
        n = np.zeros(D)
        for d in range(D):
            m = codes == d
            Xd, yd = Phi[m], y[m]
            S[d], b[d], c[d], n[d] = Xd.T @ Xd, Xd.T @ yd, yd @ yd, m.sum()
        meta_prior = self.config["prior_meta"]  # "auto": empirical Bayes, before the fit
        if meta_prior == "auto":
            meta_prior = meta_prior_scale(y, codes, self._Z)
        t_prep = time.perf_counter() - t_start
        configure_compile_cache()
        model = build_pymc_model(
            S,
            b,
            c,
            n,
            self._Z,
            self.encoder.names,
            self.scaler.names,
            datasets,
            prior_tau=self.config["prior_tau"],
            prior_meta=meta_prior,
            meta_rows=self._meta_rows(),
            sigma_floor=float(self.config["sigma_floor"]),
        )
        idata, compile_s, sample_s = self._infer(model)
        self.idata = idata
        self._extract_draws(idata)
        self.sensitivity_prior, self.sensitivity_grid = None, SENSITIVITIES
        if self.config["sensitivity"]:
            self.sensitivity_prior = self._sensitivity_prior(Phi, y, codes)
        if self.config["discrepancy"]:
            self.discrepancy_prior = self._discrepancy_prior(Phi, y, codes)
        self._history_surfaces(Phi, y, codes)
        self.diagnostics = diagnose(idata, self.method, POPULATION_VARS)
        self.diagnostics.update(
            n_runs=len(runs),
            n_datasets=D,
            n_basis=p,
            n_meta=self._Z.shape[1],
            prep_s=t_prep,
            compile_s=compile_s,
            sample_s=sample_s,
            fit_s=time.perf_counter() - t_start,
            transform=self.transform.kind,
            prior_meta=float(meta_prior),
        )
        if self.diagnostics["status"] != "ok":
            msg = (
                f"MetaLearner fit for {self.metric!r} failed its diagnostics: "
                f"max r_hat={self.diagnostics.get('max_rhat'):.3f}, "
                f"min ESS={self.diagnostics.get('min_ess'):.0f}, "
                f"divergences={self.diagnostics.get('n_divergences')}; "
                "predictions may be unreliable (try more draws/tune)"
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return self

    def _per_row(self) -> tuple[str, ...]:
        """Parameters to encode per training row: the ``per_row`` option, else the zoo
        family's (none for a family the zoo does not know, e.g. an imported history)."""
        names = self.config["per_row"]
        if names is None:
            from metaopt_bayes.zoo import FAMILIES

            fam = FAMILIES.get(str(self.model))
            names = fam.per_row if fam is not None else ()
        return tuple(str(n) for n in names)

    def _sensitivity_prior(self, Phi: np.ndarray, y: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Weights of the sensitivity grid ``sensitivity_grid`` (:data:`SENSITIVITIES` when
        fitting), learnt by :func:`metaopt_bayes.empirical_bayes.sensitivity_prior`."""
        return sensitivity_prior(
            Phi,
            y,
            codes,
            self._Z,
            self._draws,
            self.sensitivity_grid,
            sigma_floor=float(self.config["sigma_floor"]),
        )

    def _discrepancy_prior(self, Phi: np.ndarray, y: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Grid weights of the model discrepancy, learnt by
        :func:`metaopt_bayes.empirical_bayes.discrepancy_prior`."""
        return discrepancy_prior(
            Phi,
            y,
            codes,
            self._Z,
            self._draws,
            self.encoder.linear_terms(Phi),
            seed=int(self.config["seed"]),
            n_nodes=int(self.config["n_nodes"]),
            sigma_floor=float(self.config["sigma_floor"]),
            **self._scales(),
        )

    def _history_surfaces(self, Phi: np.ndarray, y: np.ndarray, codes: np.ndarray) -> None:
        """Each training dataset's posterior-mean surface given its own runs, kept for
        :meth:`history_regret`: the coefficients' mean, plus the model discrepancy's mean as
        dual weights over at most :data:`HISTORY_RUNS` of its runs (an even subsample: the
        surfaces only rank candidates, and the discrepancy costs O(n³) per dataset)."""
        coefs, disc = [], []
        for i in range(len(self.datasets)):
            idx = np.flatnonzero(codes == i)
            post = self._posterior_xy(i, self._Z[i], Phi[idx], y[idx])
            coefs.append(post.moments()[0])
            if len(idx) > HISTORY_RUNS:
                idx = idx[np.linspace(0, len(idx) - 1, HISTORY_RUNS).round().astype(int)]
            d = self._discrepancy(post, Phi[idx], y[idx])
            U = self.encoder.linear_terms(Phi[idx])
            disc.append(
                (U, d.mean_weights())
                if d is not None
                else (U[:0], np.zeros((0, len(LENGTH_SCALES))))
            )
        self.history_coefs = np.stack(coefs)
        n_linear = self.encoder.linear_terms(Phi).shape[1]
        on = self.config["discrepancy"]
        self.history_disc = StackedMeans.stack(disc, n_linear) if on else None

    def _meta_rows(self) -> np.ndarray:
        """Basis indices whose population mean depends on meta-features (``meta_terms``)."""
        terms = self.config["meta_terms"]
        n_lin = 1 + len(self.encoder._linear)
        if terms == "intercept":
            return np.arange(1)
        if terms == "linear":
            return np.arange(n_lin)
        return np.arange(len(self.encoder.names))

    def _infer(self, model) -> tuple[Any, float, float]:
        """Run the chosen inference; returns (InferenceData, compile seconds, sampling seconds)."""
        c = self.config
        return run_inference(
            model,
            self.method,
            draws=c["draws"],
            tune=c["tune"],
            chains=c["chains"],
            seed=c["seed"],
            target_accept=c["target_accept"],
            advi_steps=c["advi_steps"],
            sampler=c["sampler"],
            progress=c["progress"],
        )

    def _extract_draws(self, idata) -> None:
        """Keep the fit's population draws (:func:`~metaopt_bayes.pymc_graph.posterior_draws`)."""
        self._draws = posterior_draws(
            idata.posterior,
            len(self.encoder.names),
            self._Z.shape[1],
            self._meta_rows(),
            int(self.config["max_draws"]),
        )

    # ---- prediction ----------------------------------------------------------------------
    def _dataset_inputs(
        self,
        dataset: str,
        warehouse: WarehouseLike,
        meta: pd.DataFrame | None,
        runs: pd.DataFrame | None,
    ) -> tuple[np.ndarray, pd.DataFrame | None, float]:
        """Meta-feature row ``z``, the dataset's observed runs (from warehouse unless given)
        and its size (NaN when unknown; only parameters encoded per row need it)."""
        wh = warehouse if warehouse is not None else self.warehouse
        dataset = str(dataset)
        if meta is None and wh is not None:
            meta = wh.meta_features(datasets=[dataset])
        rows = self.dataset_rows(dataset, meta=meta)
        if meta is None and dataset in self.datasets:
            z = self._Z[self.datasets.index(dataset)]
        else:
            z = self.scaler.transform(meta, [dataset])[0]
        if runs is None and wh is not None:
            try:
                runs = _training_matrix(wh, self.metric, self.model, [dataset], None)
            except NotFoundError:
                runs = None
        if runs is not None and len(runs) and "dataset" in runs.columns:
            runs = runs[runs["dataset"].astype(str) == dataset]
        return z, runs, rows

    def dataset_rows(
        self, dataset: str, warehouse: WarehouseLike | None = None, meta: pd.DataFrame | None = None
    ) -> float:
        """The dataset's size (``n_instances``) from ``meta``, the warehouse's meta-features or
        what the fit recorded; NaN when unknown. Parameters encoded per row need it."""
        wh = warehouse if warehouse is not None else self.warehouse
        if meta is None and wh is not None:
            meta = wh.meta_features(datasets=[str(dataset)])
        rows = float(_dataset_rows(meta, [str(dataset)])[0])
        return rows if np.isfinite(rows) else float(self.rows.get(str(dataset), np.nan))

    def posterior(
        self,
        dataset: str,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        extra_runs: pd.DataFrame | None = None,
    ) -> CoefficientPosterior:
        """Few-shot posterior of ``dataset``'s coefficients per draw (closed form, no refit).

        Uses the dataset's runs logged at call time (``runs`` overrides the warehouse) plus
        ``extra_runs`` (parameter columns + ``value``, e.g. fantasized pending trials; rows
        with predictive quantiles, pruned trials, are uncertain observations: see
        :meth:`_conditioned`).
        """
        return self._conditioned(dataset, warehouse, meta, runs, extra_runs)["update"][0]

    def _conditioned(
        self,
        dataset: str,
        warehouse: WarehouseLike,
        meta: pd.DataFrame | None,
        runs: pd.DataFrame | None,
        extra_runs: pd.DataFrame | None,
    ) -> dict[str, Any]:
        """The dataset's state given its runs: ``update``, the coefficient posterior and the
        runs it conditions on — basis ``X`` and transformed metric ``y`` (both None without
        runs), the dataset's size, and a function giving the prior the update starts from,
        its hyperparameters weighted by the runs (:func:`~metaopt_bayes.update.tuned_prior`)
        — plus what :meth:`_parts` derives from it (``disc``, ``adapted``) once computed.

        An ``extra_runs`` row with the curve model's predictive quantiles of its final value
        (a pruned trial, :class:`~metaopt_bayes.curve_pruning.PrunedEvidence`) is an
        observation with a variance of its own on top of the dataset's noise
        (:func:`~metaopt_bayes.pruning.pruned_targets`): ``obs_var``, None when every
        observation is a measurement.

        Memoized by content — the draws, the settings and learnt grid weights, the
        meta-features row and the runs' values — for the last few states: one search step
        predicts the same state several times (the shown predictions, the acquisition,
        pending trials), and after a NUTS fit the update over every draw is the largest
        single cost of a step."""
        self._require_fitted()
        z, runs, rows = self._dataset_inputs(dataset, warehouse, meta, runs)
        if extra_runs is not None and len(extra_runs):
            # configs keyed by parameter name (fantasized pending trials) stacked on runs
            # read from the warehouse (params.<name>): one name per parameter
            extra_runs = extra_runs.rename(
                columns={
                    n: PARAM_PREFIX + n
                    for n in self.encoder.param_names
                    if n in extra_runs.columns and PARAM_PREFIX + n not in extra_runs.columns
                }
            )
        frames = [f for f in (runs, extra_runs) if f is not None and len(f)]
        X = y = v = side = None
        # the resolution of the dataset's own scores (not of fantasies or predicted finals):
        # where every row at the bound sits, and the band beyond which a run shows the bound
        own = self._target(runs) if runs is not None and len(runs) else np.array([])
        eps = self.transform.resolution_of(own, rows)
        band = self.transform.band(eps)
        forward = functools.partial(self.transform.forward, eps=eps)
        if frames:
            obs = pd.concat(frames, ignore_index=True)
            y_raw = self._target(obs)
            ok = np.isfinite(y_raw)
            obs, y_raw = obs[ok], y_raw[ok]
            if len(obs):
                self.transform.check(y_raw, f"dataset {dataset!r} run")
                X = self.encoder.transform(obs.reset_index(drop=True), rows=rows)
                y = forward(y_raw)
                y, v = pruned_targets(obs, y, forward, self.direction == "maximize")
                side = np.where(_measured(v, len(y)), self.transform.censored(y_raw), 0)
        index = self.datasets.index(str(dataset)) if str(dataset) in self.datasets else None
        key = (
            index,
            z.tobytes(),
            rows,
            None if X is None else (X.shape, X.tobytes(), y.tobytes()),
            None if v is None else v.tobytes(),
            band,
            censoring.SWEEPS,
            json.dumps(self.config, sort_keys=True, default=str),
            *(
                None if a is None else np.asarray(a, dtype=float).tobytes()
                for a in (self.sensitivity_grid, self.sensitivity_prior, self.discrepancy_prior)
            ),
        )
        with self._memo_lock:
            draws, memo = self._memo
            if draws is not self._draws:  # refitted or loaded: start afresh
                self._memo = (self._draws, OrderedDict())
                memo = self._memo[1]
            if key in memo:
                memo.move_to_end(key)
                return memo[key]
        if side is not None and side.any():  # runs at the metric's bound
            # their threshold values unless the censored update is on (censoring.SWEEPS):
            # then an EP site each for the update, and for the discrepancy and the task GP,
            # which take exact observations, the expected value beyond the bound
            cens = side != 0
            _, _, post, y = censored_sites(
                lambda yy, vv: self._posterior_xy(index, z, X, yy, vv),
                lambda p: (*predictive_moments(p, X[cens], noise=False), p.moments()[2]),
                y,
                v,
                side,
            )
        else:
            post = self._posterior_xy(index, z, X, y, v)
        for arr in (post.mean, post.factor, post.eig, post.sigma2, post.weight, post.lift):
            if arr is not None:
                arr.flags.writeable = False  # shared by every caller of this state
        mu = np.einsum("spq,q->sp", self._draws["B"], z)
        tau2 = self._draws["tau"] ** 2
        prior = lambda: tuned_prior(post, mu, tau2, **self._scales())  # noqa: E731
        state = {"update": (post, X, y, rows, prior), "obs_var": v, "band": band}
        with self._memo_lock:
            memo[key] = state
            while len(memo) > _MEMO_STATES:
                memo.popitem(last=False)
        return state

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a copy, a worker process) without the remembered states."""
        state = self.__dict__.copy()
        state.pop("_memo", None)
        state.pop("_memo_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._memo = (self._draws, OrderedDict())
        self._memo_lock = threading.Lock()

    def _posterior_xy(
        self,
        index: int | None,
        z: np.ndarray,
        X: np.ndarray | None,
        y: np.ndarray | None,
        obs_var: np.ndarray | None = None,
    ) -> CoefficientPosterior:
        """The closed-form coefficient posterior per draw of a dataset with meta-features
        ``z`` and runs ``(X, y)`` (modelling scale; ``obs_var``: each run's variance on top
        of the noise); ``index``: its place among the training datasets (their noise level is
        known), None for any other dataset."""
        dr = self._draws
        mu = np.einsum("spq,q->sp", dr["B"], z)
        tau2 = dr["tau"] ** 2
        floor2 = float(self.config["sigma_floor"]) ** 2
        if index is not None:
            sig2 = np.exp(2.0 * dr["log_sigma"][:, index])
            kw: dict[str, Any] = {"sigma2": sig2 + floor2, **self._scales()}
        else:
            kw = {
                "log_sigma_mu": dr["log_sigma_mu"],
                "log_sigma_sd": dr["log_sigma_sd"],
                "n_nodes": int(self.config["n_nodes"]),
                "sigma_floor2": floor2,
                **self._scales(),
            }
        return update_dataset(mu, tau2, X, y, obs_var=obs_var, **kw)

    def _scales(self) -> dict[str, np.ndarray]:
        """The sensitivity grid and its learnt weights for :func:`update_dataset` (none when
        the option is off or the model predates it: ``λ = 1``)."""
        if not self.config["sensitivity"] or self.sensitivity_prior is None:
            return {}
        return {"scales": self.sensitivity_grid, "scale_weights": self.sensitivity_prior}

    def _state_discrepancy(self, state: dict[str, Any]) -> Discrepancy | None:
        """The discrepancy of a dataset state (:meth:`_conditioned`), fitted once per state."""
        if "disc" not in state:
            post, X, y, _, _ = state["update"]
            state["disc"] = self._discrepancy(post, X, y, state.get("obs_var"))
        return state["disc"]

    def _discrepancy(
        self,
        post: CoefficientPosterior,
        X: np.ndarray | None,
        y: np.ndarray | None,
        obs_var: np.ndarray | None = None,
    ) -> Discrepancy | None:
        """The dataset's model discrepancy (:mod:`metaopt_bayes.discrepancy`) given the update's
        posterior and its runs, or None (no runs, or ``discrepancy=False``).

        Fitted on the measured runs alone: a run with a variance of its own (``obs_var > 0``,
        a pruned trial's predicted final) is left out. The discrepancy's grid shares one
        eigendecomposition per length scale across amplitudes because every run has the same
        noise; a predicted final is also the curve model's extrapolation, not a residual the
        surface failed to fit, and what it says is already in the update."""
        if X is None or y is None or not self.config["discrepancy"]:
            return None
        measured = _measured(obs_var, len(y))
        if not measured.any():
            return None
        X, y = X[measured], y[measured]
        mbar, _, s2 = post.moments()
        return fit_discrepancy(
            self.encoder.linear_terms(X),
            y - X @ mbar,
            s2,
            prior=self.discrepancy_prior,
            scale=typical_noise(post),
        )

    def _adaptation(
        self,
        prior: Any,
        post: CoefficientPosterior,
        X: np.ndarray | None,
        y: np.ndarray | None,
        disc: Discrepancy | None,
        obs_var: np.ndarray | None = None,
    ) -> tuple[float, TaskGP] | None:
        """The transfer's weight and the task GP (:mod:`metaopt_bayes.adapt`), or None: no
        adaptation (``adapt='off'``, fewer than :data:`~metaopt_bayes.adapt.MIN_RUNS` runs, or
        the runs trust the transfer entirely).

        A run with a variance of its own (``obs_var``, a pruned trial) enters both models
        with that variance added to their noise, and the weight is learnt from the measured
        runs' leave-one-out predictions alone (each given every other run, uncertain ones
        included): a predicted final is not a value to be predicted well."""
        mode = self.config.get("adapt", "off")
        if mode == "off" or X is None or y is None or len(y) < MIN_RUNS:
            return None
        U = self.encoder.linear_terms(X)
        gp = fit_task_gp(U, y, obs_var)
        if gp is None:
            return None
        m0, S0, noise = prior()
        extra = disc.covariance(U) if disc is not None else None
        loo_transfer = linear_loo(X, y, m0, S0, noise, extra, obs_var)
        loo_task = gp.loo()
        measured = _measured(obs_var, len(y))
        if not measured.any():
            return None
        y = y[measured]
        loo_transfer = (loo_transfer[0][measured], loo_transfer[1][measured])
        loo_task = (loo_task[0][measured], loo_task[1][measured])
        if mode == "rank":
            w = ranking_weight(y, loo_transfer, loo_task, seed=int(self.config["seed"]))
        else:
            w = stacking_weight(y, loo_transfer, loo_task)
        return None if w >= 1.0 else (w, gp)

    def _parts(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike,
        meta: pd.DataFrame | None,
        runs: pd.DataFrame | None,
        extra_runs: pd.DataFrame | None,
    ) -> tuple[np.ndarray, np.ndarray, CoefficientPosterior, tuple | None, tuple[float, float]]:
        """The transferred latent mean and variance (modelling scale), the coefficient
        posterior, the task component ``(w, mean, variance, noise)`` when adapting, and the
        band beyond which a run shows at the metric's bound
        (:meth:`~metaopt_bayes.features.TargetTransform.band`)."""
        configs = _as_configs(configs)
        state = self._conditioned(dataset, warehouse, meta, runs, extra_runs)
        post, X, y, rows, prior = state["update"]
        key, seen = _content_key(configs), state.get("parts")
        if key is not None and seen is not None and seen[0] == key:
            return (*_fresh(seen[1]), state["band"])  # the same candidates again
        Phi = self.encoder.transform(configs, rows=rows)
        m, v = predictive_moments(post, Phi, noise=False)
        disc = self._state_discrepancy(state)
        if disc is not None:
            dm, dv = disc.moments(self.encoder.linear_terms(Phi))
            m, v = m + dm, v + dv
        if "adapted" not in state:
            state["adapted"] = self._adaptation(prior, post, X, y, disc, state.get("obs_var"))
        adapted = state["adapted"]
        task = None
        if adapted is not None:
            w, gp = adapted
            mg, vg = gp.moments(self.encoder.linear_terms(Phi))
            task = (w, mg, vg, gp.noise)
        if key is not None:
            state["parts"] = (key, _fresh((m, v, post, task)))
        return m, v, post, task, state["band"]

    def latent(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        extra_runs: pd.DataFrame | None = None,
    ) -> tuple[np.ndarray, np.ndarray, CoefficientPosterior]:
        """Mean and variance of the noise-free metric on the modelling (transformed) scale for
        each config, and the coefficient posterior behind them: the quadratic surface after the
        closed-form update plus the dataset's model discrepancy, when it has runs — mixed with
        the task GP when adapting (:meth:`_adaptation`; the moments of the mixture)."""
        m, v, post, task, _ = self._parts(dataset, configs, warehouse, meta, runs, extra_runs)
        if task is not None:
            w, mg, vg, _ = task
            m, v = mix_moments(w, m, v, mg, vg)
        return m, v, post

    def predict(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        extra_runs: pd.DataFrame | None = None,
        interval: float = 0.9,
        predictive: bool = True,
    ) -> pd.DataFrame:
        """Predictive ``mean``, ``sd``, ``lower``, ``upper`` (``interval`` central, default 90%)
        of the metric for each config on ``dataset`` — zero-shot from its meta-features when it
        has no runs, else after the closed-form update with its runs (plus the model
        discrepancy those runs reveal, see :meth:`latent`) and, once the task has a few runs,
        mixed with a GP on the task's runs alone by the weight those runs give each
        (:mod:`metaopt_bayes.adapt`): the task's evidence outvotes a misleading transfer.

        The mixture over draws is moment-matched to a Gaussian on the modelling scale
        (:func:`metaopt_bayes.update.predictive_moments`, O(n p²)), except the observation
        noise: its interval comes from the noise's scale mixture over draws and σ-nodes
        (:func:`~metaopt_bayes.update.mixture_quantile`) — for a new dataset the noise level is
        uncertain over orders of magnitude and one Gaussian made intervals too wide. With the
        task GP the interval is that of the two-component mixture
        (:func:`~metaopt_bayes.adapt.mixture_interval`). Interval ends map back through the
        monotone inverse transform and mean/sd on the metric scale come from 20-node
        Gauss–Hermite quadrature. ``predictive=False`` leaves out the noise.

        Configs given as a dict or a list of dicts are checked as typed by a user: an unknown
        parameter name or a level the training runs never had is an error (a DataFrame may
        carry other columns, e.g. a runs frame, which are ignored).
        """
        if not 0.0 < float(interval) < 1.0:
            raise ValidationError(f"interval must be between 0 and 1, not {interval!r}")
        if isinstance(configs, dict | list):
            self._require_fitted()
            configs = _as_configs(configs)
            self.encoder.check(configs)
        m, v, post, task, band = self._parts(dataset, configs, warehouse, meta, runs, extra_runs)
        if not predictive:  # the latent metric, not a run's: no bound to show at
            band = (-np.inf, np.inf)
        if task is None:
            if not predictive:
                return self._summarize(m, np.sqrt(v), interval, band=band)
            w, s2 = noise_mixture(post)
            half = mixture_quantile(v, w, s2, interval)
            return self._summarize(m, np.sqrt(v + float(w @ s2)), interval, half, band)
        W, M, V = self._components(m, v, post, task, predictive)
        lo, hi = mixture_interval(W, M, V, interval)
        # mean and sd: each component's noise mixture moment-matched (as without adaptation)
        wt = float(task[0])
        v_t = (W[:-1] @ V[:, :-1].T) / wt if predictive else v
        two = np.array([wt, 1.0 - wt])
        return self._summarize_mixture(
            two, np.column_stack([m, M[:, -1]]), np.column_stack([v_t, V[:, -1]]), lo, hi, band
        )

    def _components(
        self,
        m: np.ndarray,
        v: np.ndarray,
        post: CoefficientPosterior,
        task: tuple,
        predictive: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The adapted predictive as a Gaussian mixture (modelling scale): the transfer's
        noise as its scale mixture (8 bins), then the task GP's component."""
        wt, mg, vg, noise_g = task
        if predictive:
            nw, ns2 = noise_mixture(post, k=8)
            return mixture_components(wt, m, v, nw, ns2, mg, vg + noise_g)
        return mixture_components(wt, m, v, np.ones(1), np.zeros(1), mg, vg)

    def predictive_components(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        extra_runs: pd.DataFrame | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The predictive distribution of a run's metric on the modelling (transformed) scale
        as a Gaussian mixture, for scoring predictions: weights (n, K), means (n, K),
        variances (n, K) — the observation noise's scale mixture and, when adapting, the task
        GP's component (:meth:`predict` summarizes the same distribution, showing the values
        beyond the dataset's resolution at the metric's bound)."""
        m, v, post, task, _ = self._parts(dataset, configs, warehouse, meta, runs, extra_runs)
        if task is None:
            w, s2 = noise_mixture(post)
            W, M, V = w, np.repeat(m[:, None], len(w), 1), v[:, None] + s2[None, :]
        else:
            W, M, V = self._components(m, v, post, task, predictive=True)
        return np.broadcast_to(W, M.shape).copy(), M, V

    def _summarize(
        self,
        m: np.ndarray,
        s: np.ndarray,
        interval: float,
        half: np.ndarray | None = None,
        band: tuple[float, float] = (-np.inf, np.inf),
    ) -> pd.DataFrame:
        """Metric-scale mean, sd and interval of ``N(m, s²)`` on the modelling scale; values
        beyond ``band`` show at the metric's bound (a run's censored observation)."""
        if half is None:
            half = float(ndtri(0.5 + interval / 2.0)) * s
        lower = self.transform.observe(m - half, band)
        upper = self.transform.observe(m + half, band)
        if self.transform.kind == "identity":
            mean = self.transform.inverse(m)
            sd = s * self.transform.scale
        else:
            x, w = np.polynomial.hermite_e.hermegauss(20)
            w = w / w.sum()
            with np.errstate(over="ignore"):
                vals = self.transform.observe(m[:, None] + s[:, None] * x[None, :], band)
            # a log-scale metric with a vast spread (a zero-shot RMSE, whose level is the
            # target's unit) has moments beyond floats: capped so that they stay finite
            vals = np.minimum(vals, _MOMENT_CAP)
            mean = vals @ w
            sd = np.sqrt(np.maximum((vals**2) @ w - mean**2, 0.0))
        return pd.DataFrame({"mean": mean, "sd": sd, "lower": lower, "upper": upper})

    def _summarize_mixture(
        self,
        W: np.ndarray,
        M: np.ndarray,
        V: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        band: tuple[float, float] = (-np.inf, np.inf),
    ) -> pd.DataFrame:
        """Metric-scale mean and sd of the Gaussian mixture ``Σ_k W_k N(M_k, V_k)`` on the
        modelling scale (Gauss–Hermite per component), and its interval ends mapped back
        (beyond ``band`` at the metric's bound, as in :meth:`_summarize`)."""
        x, gw = np.polynomial.hermite_e.hermegauss(20)
        gw = gw / gw.sum()
        with np.errstate(over="ignore"):
            vals = self.transform.observe(M[:, :, None] + np.sqrt(V)[:, :, None] * x, band)
        vals = np.minimum(vals, _MOMENT_CAP)  # (n, K, 20)
        first = np.einsum("k,nkq,q->n", W, vals, gw)
        second = np.einsum("k,nkq,q->n", W, vals**2, gw)
        sd = np.sqrt(np.maximum(second - first**2, 0.0))
        lower, upper = self.transform.observe(lo, band), self.transform.observe(hi, band)
        return pd.DataFrame({"mean": first, "sd": sd, "lower": lower, "upper": upper})

    def history_regret(self, configs: pd.DataFrame) -> np.ndarray | None:
        """How each config would do on each training dataset: ``(D, n)`` normalized regret
        ``(best − f_d(x)) / (best − worst)`` over ``configs`` (0 = the best of them, 1 = the
        worst), ``f_d`` the dataset's posterior-mean surface given its own runs on the
        modelling scale (sign-flipped for a minimized metric). A dataset on which ``configs``
        all predict alike scores 0 everywhere. None for a learner saved before 0.6.0.

        The history as a portfolio over any candidate set: the greedy warm start of
        :func:`metaopt_bayes.batch.history_batch` covers it as auto-sklearn 2.0's portfolios
        cover their training tasks, without needing the same configs on every dataset."""
        if self.history_coefs is None:
            return None
        configs = _as_configs(configs)
        shared = None if self.encoder.uses_rows else self.encoder.transform(configs)
        disc, lin = self.history_disc, self.encoder.linear_terms
        if shared is not None:
            F = self.history_coefs @ shared.T
            if disc is not None:
                F += disc.at(lin(shared))
        else:
            F = np.empty((len(self.datasets), len(configs)))
            for i, d in enumerate(self.datasets):
                Phi = self.encoder.transform(configs, rows=self.rows.get(d, np.nan))
                F[i] = Phi @ self.history_coefs[i]
                if disc is not None:
                    F[i] += disc.at(lin(Phi), dataset=i)[0]
        if self.direction != "maximize":
            F = -F
        best = F.max(axis=1, keepdims=True)
        span = best - F.min(axis=1, keepdims=True)
        return (best - F) / np.where(span > 0, span, 1.0)

    def predict_draws(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike | None = None,
        extra_runs: pd.DataFrame | None = None,
        predictive: bool = False,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """(S, n) posterior draws of the noise-free mean metric on the original scale after the
        few-shot update (``predictive=True`` adds observation noise per draw). The model
        discrepancy enters through its posterior mean only: a joint draw over a candidate pool
        costs O(m³), and independent draws per config would make Thompson sampling favour
        configs far from the runs (the maximum of many independent noises), so draws carry
        the surface's uncertainty and :meth:`predict` alone the discrepancy's."""
        configs = _as_configs(configs)
        state = self._conditioned(dataset, warehouse, meta, runs, extra_runs)
        post, _, _, rows, _ = state["update"]
        rng = np.random.default_rng(self.config["seed"] if seed is None else seed)
        beta, sig2 = post.sample(rng)
        Phi = self.encoder.transform(configs, rows=rows)
        f = beta @ Phi.T
        disc = self._state_discrepancy(state)
        if disc is not None:  # the discrepancy's posterior mean (see the docstring)
            f += disc.moments(self.encoder.linear_terms(Phi))[0]
        if predictive:
            f = f + rng.standard_normal(f.shape) * np.sqrt(sig2)[:, None]
        return self.transform.inverse(f)

    def recommend(
        self,
        warehouse: WarehouseLike,
        dataset: str,
        candidates: Any,
        n: int = 1,
        acquisition: str = "ei",
        **kwargs: Any,
    ) -> pd.DataFrame:
        """The ``n`` best candidates by ``acquisition`` (see ``metaopt_bayes.recommend_model``)."""
        from metaopt_bayes.recommend_model import recommend

        return recommend(self, warehouse, dataset, candidates, n, acquisition, **kwargs)

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write draws + encoders to netCDF; attrs carry config JSON, its hash and the version
        (:func:`metaopt_bayes.persistence.save_learner`)."""
        self._require_fitted()
        return save_learner(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        warehouse: WarehouseLike | None = None,
        metric: str | None = None,
        model: str | None = None,
    ) -> MetaLearner:
        """Read a model written by :meth:`save`; refuses files that are not metaopt models,
        come from a newer format, whose config does not match its hash, or whose metric or
        model family differs from ``metric`` / ``model`` when given
        (:func:`metaopt_bayes.persistence.load_learner`)."""
        return load_learner(cls, path, warehouse, metric, model)

    def __repr__(self) -> str:
        state = f"{len(self.datasets)} datasets" if self.is_fitted else "unfitted"
        return (
            f"MetaLearner({self.metric!r}, model={self.model!r}, method={self.method!r}, {state})"
        )


# ----------------------------------------------------------------------------------------------


def _training_matrix(
    wh: WarehouseLike, metric: str, model: str | None, datasets: Any, exclude: Any
):
    """The warehouse's training matrix; ``duration_s`` (a run column, not a logged metric)
    is read from the runs of the most frequently logged metric when no run logged it."""
    df = wh.training_matrix(metric, model=model, datasets=datasets, exclude=exclude)
    if metric == "duration_s" and len(df) == 0:
        top = next((m for m in wh.metric_counts() if m != "duration_s"), None)
        if top is not None:
            df = wh.training_matrix(top, model=model, datasets=datasets, exclude=exclude)
            df = df.assign(value=df["duration_s"])
    return df


def _why_no_runs(wh: WarehouseLike, metric: str, model: str | None, filtered: bool) -> str:
    """Why the warehouse has nothing to fit on, as one line naming what it does have."""
    n = wh.count_runs(model=model)
    if model and n == 0:
        known = wh.model_names()
        have = ", ".join(map(str, known[:8])) or "none yet; run `metaopt sweep`"
        return f"no runs of model {model!r} in the warehouse (models with runs: {have})"
    logged = sorted(wh.metric_counts(model))
    of = f"runs of {model!r}" if model else "runs"
    if metric in set(logged):
        return f"no finished {of} with metric {metric!r} are left to fit on" + (
            " after the dataset selection (datasets / exclude)" if filtered else ""
        )
    if n == 0:
        return "the warehouse has no runs yet; log some first (metaopt sweep / ingest / import)"
    return (
        f"no finished {of} logged metric {metric!r} (metrics logged: "
        f"{', '.join(map(str, logged[:8])) or 'none'})"
    )


def _measured(obs_var: np.ndarray | None, n: int) -> np.ndarray:
    """Which of a dataset's ``n`` observations are measurements: those without a variance of
    their own (``obs_var`` 0 or None; a pruned trial's predicted final has one)."""
    return np.ones(n, dtype=bool) if obs_var is None else np.asarray(obs_var) <= 0


def _fresh(parts: tuple) -> tuple:
    """``(m, v, post, task)`` of :meth:`MetaLearner._parts` with its arrays copied, so that a
    caller's in-place change cannot reach the remembered ones."""
    m, v, post, task = parts
    if task is not None:
        task = (task[0], task[1].copy(), task[2].copy(), task[3])
    return m.copy(), v.copy(), post, task


def _content_key(configs: pd.DataFrame) -> bytes | None:
    """A digest of a candidate frame's values (columns and rows in order), or None when it
    is too large to be worth remembering or cannot be hashed."""
    if len(configs) > _MEMO_ROWS:
        return None
    try:
        rows = pd.util.hash_pandas_object(configs, index=False).to_numpy()
    except TypeError:
        return None
    cols = "\x1f".join(f"{c}:{t}" for c, t in configs.dtypes.items()).encode()
    return hashlib.blake2b(rows.tobytes() + cols, digest_size=16).digest()


def _as_configs(configs: Any) -> pd.DataFrame:
    if isinstance(configs, pd.DataFrame):
        return configs.reset_index(drop=True)
    if isinstance(configs, dict):
        return pd.DataFrame([configs])
    if isinstance(configs, list):
        return pd.DataFrame(configs)
    raise ValidationError(
        f"configs must be a DataFrame, a dict or a list of dicts, not {type(configs).__name__}"
    )


def _none_if_nan(v: Any) -> Any:
    if v is None:
        return None
    try:
        return None if math.isnan(float(v)) else float(v)
    except (TypeError, ValueError):
        return None


def _dataset_rows(meta: pd.DataFrame | None, datasets: list[str]) -> np.ndarray:
    """Each dataset's size from its meta-features (``n_instances``, else
    ``exp(log_n_instances)``); NaN where unknown."""
    out = np.full(len(datasets), np.nan)
    if meta is None or meta.empty:
        return out
    m = meta.copy()
    m.index = m.index.astype(str)
    m = m.reindex([str(d) for d in datasets])
    if "n_instances" in m.columns:
        out = pd.to_numeric(m["n_instances"], errors="coerce").to_numpy(dtype=float)
    if "log_n_instances" in m.columns:
        alt = np.exp(pd.to_numeric(m["log_n_instances"], errors="coerce").to_numpy(dtype=float))
        out = np.where(np.isfinite(out), out, alt)
    return out


def _portfolio(runs: pd.DataFrame, y: np.ndarray, maximize: bool) -> list[dict[str, Any]]:
    """The best run's parameters on each training dataset, in dataset-name order (NaN, i.e.
    inactive, parameters dropped)."""
    cols = [c for c in runs.columns if str(c).startswith(PARAM_PREFIX)]
    if not cols:
        return []
    score = pd.Series(y if maximize else -y, index=runs.index)
    best = score.groupby(runs["dataset"]).idxmax().sort_index()
    out = []
    for rec in runs.loc[best.to_numpy(), cols].to_dict(orient="records"):
        cfg = {}
        for c, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            cfg[c[len(PARAM_PREFIX) :]] = v
        out.append(cfg)
    return out


__all__ = ["PARAM_PREFIX", "MetaLearner", "build_pymc_model", "configure_compile_cache"]

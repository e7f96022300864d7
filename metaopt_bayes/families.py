"""Search across model families: a joint space, a meta-learner per family, family ranking.

A user with a new dataset first wants to know *which kind of model* to train, then its
settings. This module lifts the one-family machinery of :mod:`metaopt_bayes.model` and
:mod:`metaopt_bayes.recommend_model` to several families:

* :class:`JointSpace` — the union of the families' spaces with a ``model`` choice at the top;
  every other parameter is conditional on its family (a tree-structured space, as in
  auto-sklearn's CASH formulation, Thornton et al. 2013 / Feurer et al. 2015). Candidates are
  rows with a ``model`` column plus the union of parameter columns (unset where inactive).
  Parameter names may repeat across families with different ranges (``C`` of logistic
  regression vs ``C`` of the SVM): each family keeps its own space.
* :class:`FamilyLearner` — one :class:`~metaopt_bayes.model.MetaLearner` per family for the
  metric, and one per family for training seconds (``duration_s`` on a log scale), all fitted
  on the same datasets. Each predicts zero-shot from meta-features and is sharpened by the
  runs of *its* family on the target dataset (the closed-form few-shot update).
* Sharing across families (``share=True``, off by default — see the measurement below): a
  *dataset effect* common to all families. On the training datasets the zero-shot residual of
  family ``f`` on dataset ``d`` is ``r_df = mean_runs(y − ŷ₀)``; ``ρ = Σ_d,f r_df · r̄_d,−f /
  Σ_d,f r̄_d,−f²`` (least squares through the origin, clipped to [0, 1]) regresses one
  family's residual on the mean residual of the *other* families. On a target dataset, a
  family with no runs of its own gets its zero-shot mean shifted by ``ρ · r̄``, ``r̄`` the mean
  residual of the families observed there (a one-factor "dataset difficulty" model on the
  metric scale). Families with runs of their own rely on their own update.
  Measured (``benchmarks/families.py evaluate``, 19 PMLB datasets × 6 families, 2-fold
  leave-datasets-out, 5 seeds): ``ρ`` = 0.39 and 0.00 on the two folds; family selection
  after 3 observed runs hit the best family (within 1%) 0.495 ± 0.063 of the time with
  sharing vs 0.474 ± 0.033 without — inside the seed spread, so sharing stays *off* by
  default. The raw per-dataset mean accuracies are strongly correlated across families
  (0.92), but the residuals above are in-sample (each training dataset's level is partly
  absorbed by the meta-feature regression), which understates the shared effect; a
  cross-fitted ``ρ`` is the next thing to try.
* :func:`recommend_families` / :meth:`FamilyLearner.recommend` — EI (or cost-aware EI with
  each family's predicted seconds) over the joint candidates, against the incumbent across
  families; :meth:`FamilyLearner.rank_families` — each family's predicted best metric with an
  interval, its predicted training time and its observed history on the dataset.
* The closed loop over the joint space is :func:`metaopt_bayes.optimize_families.optimize_families`
  (the ``model=None`` / list form of :func:`metaopt_bayes.search.optimize`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.batch import (
    RANDOM_EVERY,
    believer_batch,
    fantasies,
    random_steps,
    ranked,
    trials_since_best,
)
from metaopt_bayes.candidates import (
    PARAM_PREFIX,
    best_configs,
    exclude_run,
    is_set,
    load_candidates,
    space_candidates,
)
from metaopt_bayes.space import plain
from warehouse.errors import CandidatesExhaustedError, NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike

MODEL_COLUMN = "model"
OUTPUT_COLUMNS = ("mean", "sd", "acquisition", "rank", "random", "predicted_s", "lower", "upper")


# --------------------------------------------------------------------------------------------
# families and the joint space
# --------------------------------------------------------------------------------------------
def zoo_families(task: str = "classification") -> list[str]:
    """Names of the built-in families that support ``task``, in zoo order."""
    from metaopt_bayes.zoo import FAMILIES

    return [name for name, fam in FAMILIES.items() if fam.supports(task)]


def resolve_families(model: str | Iterable[str] | None, task: str = "classification") -> list[str]:
    """``None`` → every zoo family for ``task``; a name or list → those (each checked)."""
    from metaopt_bayes.zoo import get_family

    if model is None:
        return zoo_families(task)
    names = [model] if isinstance(model, str) else [str(m) for m in model]
    if not names:
        raise ValidationError("the list of model families is empty")
    out: list[str] = []
    for name in names:
        fam = get_family(name)
        if not fam.supports(task):
            raise ValidationError(f"model {name!r} does not support {task}")
        if name not in out:
            out.append(name)
    return out


class JointSpace:
    """A ``model`` choice over families, each with its own (conditional) search space."""

    def __init__(self, spaces: Mapping[str, Any]) -> None:
        if not spaces:
            raise ValidationError("a joint space needs at least one model family")
        self.spaces: dict[str, Any] = dict(spaces)

    @classmethod
    def from_families(
        cls, families: str | Iterable[str] | None = None, task: str = "classification"
    ) -> JointSpace:
        """The zoo's default spaces of ``families`` (None = every family for ``task``)."""
        from metaopt_bayes.zoo import get_family

        names = resolve_families(families, task)
        return cls({n: get_family(n).default_space(task) for n in names})

    @property
    def families(self) -> list[str]:
        return list(self.spaces)

    @property
    def names(self) -> list[str]:
        """``model`` then the union of the families' parameter names (first-seen order)."""
        out = [MODEL_COLUMN]
        for sp in self.spaces.values():
            out.extend(n for n in sp.names if n not in out)
        return out

    def __repr__(self) -> str:
        return f"JointSpace({', '.join(self.families)})"

    def to_dict(self) -> dict[str, Any]:
        return {"model": {f: sp.to_dict() for f, sp in self.spaces.items()}}

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A complete config of its family (``model`` first); other families' keys must be
        unset. Raises ValidationError naming the model or parameter at fault."""
        fam = config.get(MODEL_COLUMN)
        if fam not in self.spaces:
            raise ValidationError(
                f"config has model {fam!r}; the joint space has {', '.join(self.families)}"
            )
        sp = self.spaces[fam]
        own = {k: v for k, v in config.items() if k in sp.names}
        foreign = [
            k for k, v in config.items() if k != MODEL_COLUMN and k not in sp.names and is_set(v)
        ]
        if foreign:
            raise ValidationError(f"parameter {foreign[0]!r} does not belong to model {fam!r}")
        return {MODEL_COLUMN: fam, **sp.validate({k: v for k, v in own.items() if is_set(v)})}

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` scrambled-Sobol configs *per family* (families stratified, so a family with a
        small space is not starved), as one frame with a ``model`` column."""
        frames = [
            _with_model(sp.sample(n, seed=seed + 7 * i), fam)
            for i, (fam, sp) in enumerate(self.spaces.items())
        ]
        return _concat(frames)

    def candidates(
        self,
        n: int = 256,
        seed: int = 0,
        incumbents: Mapping[str, list[dict[str, Any]]] | None = None,
        n_local: int = 64,
        portfolios: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> pd.DataFrame:
        """Per family ``n`` Sobol points, ``n_local`` neighbours of each of its incumbents and
        its portfolio configs (see :func:`metaopt_bayes.candidates.space_candidates`)."""
        frames = []
        for i, (fam, sp) in enumerate(self.spaces.items()):
            inc = (incumbents or {}).get(fam)
            c = space_candidates(
                sp,
                n,
                seed=seed + 7 * i,
                incumbents=inc,
                n_local=n_local,
                portfolio=(portfolios or {}).get(fam),
            )
            frames.append(_with_model(c.drop_duplicates(), fam))
        return _concat(frames)


def _with_model(df: pd.DataFrame, fam: str) -> pd.DataFrame:
    df = df.reset_index(drop=True).copy()
    df.insert(0, MODEL_COLUMN, fam)
    return df


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f.astype(object) for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=[MODEL_COLUMN])
    return pd.concat(frames, ignore_index=True)


def family_rows(df: pd.DataFrame, fam: str) -> pd.DataFrame:
    """Rows of ``df`` whose ``model`` is ``fam``, with the columns no row of it sets dropped."""
    sub = df[df[MODEL_COLUMN].astype(str) == fam]
    return sub.dropna(axis=1, how="all").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# the learner across families
# --------------------------------------------------------------------------------------------
def _log_seconds_runs(runs: pd.DataFrame) -> pd.DataFrame:
    dur = pd.to_numeric(runs.get("duration_s"), errors="coerce")
    out = runs.assign(value=dur)
    return out[np.isfinite(out["value"].to_numpy(float)) & (out["value"] > 0)]


class FamilyLearner:
    """One MetaLearner per model family (metric) plus one per family (training seconds).

    ``families``: the families to learn (None = every family with runs in the training
    matrix). ``method`` and ``config`` go to every MetaLearner. ``cost``: also fit duration
    learners. ``share``: the cross-family dataset effect (module docstring).
    """

    def __init__(
        self,
        metric: str,
        families: str | Iterable[str] | None = None,
        direction: str | None = None,
        method: str = "nuts",
        share: bool = False,
        cost: bool = True,
        **config: Any,
    ) -> None:
        from metaopt_bayes.model import infer_direction

        self.metric = metric
        self.families: list[str] | None = (
            None
            if families is None
            else ([families] if isinstance(families, str) else list(families))
        )
        self._direction_given = direction is not None
        self.direction = direction or infer_direction(metric)
        if self.direction not in ("maximize", "minimize"):
            raise ValidationError(f"direction must be maximize or minimize, not {direction!r}")
        self.method = method
        self.share = bool(share)
        self.cost = bool(cost)
        # Choosing between families needs meta-features to shape every term, not only the level
        # (MetaLearner's default): benchmarks/families.py evaluate, 19 PMLB datasets, 2 folds —
        # zero-shot family choice within 1% of the best on 0.421 of datasets with "all" vs 0.263
        # with "intercept" (0.368 for "best family on average").
        self.config = {"meta_terms": "all", **config}
        self.learners: dict[str, Any] = {}
        self.cost_learners: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.rho: float = 0.0
        self.rho_n: int = 0
        self.warehouse: WarehouseLike | None = None
        self._meta: pd.DataFrame | None = None

    # ---- construction --------------------------------------------------------------------
    @property
    def model(self) -> list[str]:
        """The fitted families (what ``MetaLearner.model`` is for one family)."""
        return list(self.learners)

    @property
    def is_fitted(self) -> bool:
        return bool(self.learners)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @classmethod
    def from_learners(
        cls,
        learners: Mapping[str, Any],
        cost_learners: Mapping[str, Any] | None = None,
        share: bool = False,
    ) -> FamilyLearner:
        """Wrap already fitted MetaLearners (e.g. loaded from disk), keyed by family.

        The sharing coefficient needs the training matrix: call :meth:`estimate_sharing`.
        """
        if not learners:
            raise ValidationError("no fitted meta-learners to combine")
        first = next(iter(learners.values()))
        out = cls(first.metric, list(learners), first.direction, first.method, share=share)
        out.learners = dict(learners)
        out.cost_learners = dict(cost_learners or {})
        out.cost = bool(out.cost_learners)
        return out

    def _learner_config(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.items() if k != "space"}

    def fit_frame(self, runs: pd.DataFrame, meta: pd.DataFrame | None = None) -> FamilyLearner:
        """Fit on a training matrix holding several families (``model`` column) and a wide
        meta-feature frame. A family with too few runs to fit is skipped (``.skipped``)."""
        from metaopt_bayes.model import MetaLearner

        if runs is None or len(runs) == 0:
            raise ValidationError(f"no finished runs with metric {self.metric!r} to fit on")
        if MODEL_COLUMN not in runs.columns:
            raise ValidationError("training matrix has no 'model' column")
        present = sorted(runs[MODEL_COLUMN].astype(str).unique())
        wanted = self.families if self.families is not None else present
        missing = [f for f in wanted if f not in present]
        self.learners, self.cost_learners, self.skipped = {}, {}, {}
        for f in missing:
            self.skipped[f] = "no runs in the training matrix"
        for fam in [f for f in wanted if f in present]:
            sub = runs[runs[MODEL_COLUMN].astype(str) == fam].reset_index(drop=True)
            sub = sub.dropna(axis=1, how="all")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    self.learners[fam] = MetaLearner(
                        self.metric,
                        model=fam,
                        direction=self.direction,
                        method=self.method,
                        **self._learner_config(),
                    ).fit_frame(sub, meta)
            except (ValidationError, np.linalg.LinAlgError, ValueError) as exc:
                self.skipped[fam] = str(exc).splitlines()[0]
                continue
            if self.cost:
                cost_runs = _log_seconds_runs(sub)
                if len(cost_runs):
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", RuntimeWarning)
                            self.cost_learners[fam] = MetaLearner(
                                "duration_s",
                                model=fam,
                                direction="minimize",
                                method=self.method,
                                **{**self._learner_config(), "transform": "log"},
                            ).fit_frame(cost_runs, meta)
                    except (ValidationError, np.linalg.LinAlgError, ValueError):
                        pass
        if not self.learners:
            why = "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
            raise ValidationError(f"no model family could be fitted ({why})")
        self._meta = meta
        if self.share:
            self.estimate_sharing(runs, meta)
        return self

    def fit(
        self, warehouse: WarehouseLike, datasets: list[str] | None = None, exclude: Any = None
    ) -> FamilyLearner:
        """Fit on the warehouse's training matrix of every (wanted) family."""
        if not self._direction_given and hasattr(warehouse, "metric_direction"):
            self.direction = warehouse.metric_direction(self.metric)
        runs = warehouse.training_matrix(self.metric, datasets=datasets, exclude=exclude)
        self.fit_frame(runs, warehouse.meta_features())
        self.warehouse = warehouse
        for lrn in self.learners.values():
            lrn.warehouse = warehouse
        for lrn in self.cost_learners.values():
            lrn.warehouse = warehouse
        return self

    # ---- sharing -------------------------------------------------------------------------
    def _zero_shot(self, fam: str, dataset: str, configs: pd.DataFrame, meta: Any) -> np.ndarray:
        lrn = self.learners[fam]
        empty = pd.DataFrame(columns=["dataset", "value"])
        pred = lrn.predict(dataset, configs, meta=meta, runs=empty, predictive=False)
        return pred["mean"].to_numpy(float)

    def residuals(
        self, runs: pd.DataFrame, meta: pd.DataFrame | None, dataset: str
    ) -> dict[str, float]:
        """Mean zero-shot residual ``mean(y − ŷ₀)`` of each fitted family observed in ``runs``
        (one dataset's runs, metric scale)."""
        out: dict[str, float] = {}
        if runs is None or not len(runs):
            return out
        for fam, sub in runs.groupby(runs[MODEL_COLUMN].astype(str)):
            if fam not in self.learners:
                continue
            y = pd.to_numeric(sub["value"], errors="coerce").to_numpy(float)
            ok = np.isfinite(y)
            if not ok.any():
                continue
            sub = sub[ok].dropna(axis=1, how="all").reset_index(drop=True)
            yhat = self._zero_shot(str(fam), dataset, sub, meta)
            out[str(fam)] = float(np.mean(y[ok] - yhat))
        return out

    def estimate_sharing(self, runs: pd.DataFrame, meta: pd.DataFrame | None) -> float:
        """``ρ``: least squares (through 0) of a family's zero-shot residual on the mean
        residual of the other families, over the training datasets; clipped to [0, 1]."""
        xs: list[float] = []
        ys: list[float] = []
        for d, sub in runs.groupby(runs["dataset"].astype(str)):
            r = self.residuals(sub, meta, str(d))
            if len(r) < 2:
                continue
            for f, rf in r.items():
                others = [v for g, v in r.items() if g != f]
                xs.append(float(np.mean(others)))
                ys.append(rf)
        x, y = np.asarray(xs), np.asarray(ys)
        self.rho_n = len(x)
        denom = float(x @ x)
        self.rho = float(np.clip((x @ y) / denom, 0.0, 1.0)) if denom > 0 else 0.0
        return self.rho

    # ---- prediction ----------------------------------------------------------------------
    def _meta_for(self, dataset: str, warehouse: WarehouseLike, meta: pd.DataFrame | None) -> Any:
        wh = warehouse if warehouse is not None else self.warehouse
        if meta is not None:
            return meta
        if wh is not None:
            return wh.meta_features(datasets=[dataset])
        return self._meta

    def observed_runs(
        self, warehouse: WarehouseLike, dataset: str, runs: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The dataset's finished runs of the fitted families (``runs`` overrides the
        warehouse; it may hold other datasets, which are dropped)."""
        if runs is None:
            wh = warehouse if warehouse is not None else self.warehouse
            if wh is None:
                return pd.DataFrame(columns=["dataset", MODEL_COLUMN, "value"])
            try:
                runs = wh.training_matrix(self.metric, datasets=[dataset])
            except NotFoundError:
                return pd.DataFrame(columns=["dataset", MODEL_COLUMN, "value"])
        if len(runs) and "dataset" in runs.columns:
            runs = runs[runs["dataset"].astype(str) == str(dataset)]
        if len(runs) and MODEL_COLUMN in runs.columns:
            runs = runs[runs[MODEL_COLUMN].astype(str).isin(self.learners)]
        return runs.reset_index(drop=True)

    def predict(
        self,
        dataset: str,
        configs: pd.DataFrame,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        extra_runs: pd.DataFrame | None = None,
        predictive: bool = True,
        interval: float = 0.9,
        share: bool | None = None,
    ) -> pd.DataFrame:
        """``mean, sd, lower, upper`` (and ``predicted_s`` when duration learners exist) for
        configs of several families (``model`` column), in the input order.

        Each family's learner uses that family's observed runs on ``dataset`` (``runs``, else
        the warehouse) plus ``extra_runs`` (fantasies); families without runs there are
        shifted by the shared dataset effect when ``share`` (default: the learner's).
        """
        if MODEL_COLUMN not in configs.columns:
            raise ValidationError("configs need a 'model' column naming each row's family")
        configs = configs.reset_index(drop=True)
        dataset = str(dataset)
        meta = self._meta_for(dataset, warehouse, meta)
        obs = self.observed_runs(warehouse, dataset, runs)
        share = self.share if share is None else share
        shift = 0.0
        own = set(obs[MODEL_COLUMN].astype(str)) if len(obs) else set()
        if extra_runs is not None and len(extra_runs):
            own |= set(extra_runs[MODEL_COLUMN].astype(str))
        if share and self.rho > 0 and len(obs):
            r = self.residuals(obs, meta, dataset)
            if r:
                shift = self.rho * float(np.mean(list(r.values())))
        out = pd.DataFrame(
            {
                "mean": np.nan,
                "sd": np.nan,
                "lower": np.nan,
                "upper": np.nan,
                "predicted_s": np.nan,
            },
            index=configs.index,
        )
        fams = configs[MODEL_COLUMN].astype(str)
        unknown = sorted(set(fams) - set(self.learners))
        if unknown:
            raise NotFoundError(
                f"no meta-learner for model {unknown[0]!r}; fitted: {', '.join(self.learners)}"
            )
        empty = pd.DataFrame(columns=["dataset", "value"])
        for fam in fams.unique():
            idx = np.flatnonzero(fams.to_numpy() == fam)
            cf_ = family_rows(configs.iloc[idx], fam)
            fam_obs = family_rows(obs, fam) if len(obs) else empty
            extra = None
            if extra_runs is not None and len(extra_runs):
                e = extra_runs[extra_runs[MODEL_COLUMN].astype(str) == fam]
                extra = family_rows(e, fam) if len(e) else None
            lrn = self.learners[fam]
            pred = lrn.predict(
                dataset,
                cf_,
                meta=meta,
                runs=fam_obs if len(fam_obs) else empty,
                extra_runs=extra,
                predictive=predictive,
                interval=interval,
            )
            delta = shift if fam not in own else 0.0
            for c in ("mean", "lower", "upper"):
                out.loc[idx, c] = pred[c].to_numpy(float) + delta
            out.loc[idx, "sd"] = pred["sd"].to_numpy(float)
            if fam in self.cost_learners:
                cobs = _log_seconds_runs(fam_obs) if len(fam_obs) else empty
                cp = self.cost_learners[fam].predict(
                    dataset, cf_, meta=meta, runs=cobs if len(cobs) else empty
                )
                out.loc[idx, "predicted_s"] = cp["mean"].to_numpy(float)
        return out

    def rank_families(
        self,
        dataset: str,
        candidates: JointSpace | pd.DataFrame | None = None,
        warehouse: WarehouseLike | None = None,
        meta: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        n_candidates: int = 256,
        seed: int = 0,
        interval: float = 0.9,
        share: bool | None = None,
    ) -> pd.DataFrame:
        """One row per family, best first: the predicted metric of its best candidate
        (``mean``, ``sd``, ``lower``, ``upper`` — a ``interval`` predictive interval of what a
        run of that config would score), that config's ``predicted_s``, the family's observed
        ``best_observed`` and ``n_runs`` on the dataset, ``expected_best`` = the better of
        ``mean`` and ``best_observed`` (what the family is expected to reach; the ranking key)
        and the ``config`` (JSON text).

        ``candidates``: a JointSpace (default: the fitted families' zoo spaces for the
        dataset's task, ``n_candidates`` Sobol points each plus neighbours of the family's
        best runs) or a frame with a ``model`` column (e.g. a tabular pool).
        """
        import json

        dataset = str(dataset)
        obs = self.observed_runs(warehouse, dataset, runs)
        cands = self._candidates(candidates, obs, n_candidates, seed, warehouse, dataset)
        pred = self.predict(
            dataset,
            cands,
            warehouse,
            meta,
            runs=obs,
            predictive=True,
            interval=interval,
            share=share,
        )
        lat = self.predict(dataset, cands, warehouse, meta, runs=obs, predictive=False, share=share)
        rows = []
        sign = 1.0 if self.maximize else -1.0
        for fam, idx in cands.groupby(cands[MODEL_COLUMN].astype(str)).groups.items():
            idx = np.asarray(idx)
            best = idx[int(np.argmax(sign * lat.loc[idx, "mean"].to_numpy(float)))]
            fam_obs = obs[obs[MODEL_COLUMN].astype(str) == fam] if len(obs) else obs
            vals = pd.to_numeric(fam_obs["value"], errors="coerce") if len(fam_obs) else None
            cfg = {
                k: plain(v)
                for k, v in cands.loc[best].items()
                if k != MODEL_COLUMN and is_set(v) and not str(k).startswith("_")
            }
            rows.append(
                {
                    "model": fam,
                    "mean": float(lat.at[best, "mean"]),
                    "sd": float(pred.at[best, "sd"]),
                    "lower": float(pred.at[best, "lower"]),
                    "upper": float(pred.at[best, "upper"]),
                    "predicted_s": float(pred.at[best, "predicted_s"]),
                    "best_observed": (
                        float(vals.max() if self.maximize else vals.min())
                        if vals is not None and vals.notna().any()
                        else np.nan
                    ),
                    "n_runs": len(fam_obs),
                    "config": json.dumps(cfg, default=str),
                }
            )
        out = pd.DataFrame(rows)
        # what the family is expected to reach: its predicted best, or what it already
        # reached on this dataset when that is better (a run observed is not undone)
        obs_best = out["best_observed"].fillna(-np.inf if self.maximize else np.inf)
        out["expected_best"] = (
            np.maximum(out["mean"], obs_best)
            if self.maximize
            else np.minimum(out["mean"], obs_best)
        )
        out = out.sort_values("expected_best", ascending=not self.maximize, kind="stable")
        out.insert(1, "rank", np.arange(1, len(out) + 1))
        cols = [c for c in out.columns if c != "config"] + ["config"]
        return out[cols].reset_index(drop=True)

    def _candidates(
        self,
        candidates: Any,
        obs: pd.DataFrame,
        n_candidates: int,
        seed: int,
        warehouse: WarehouseLike,
        dataset: str,
    ) -> pd.DataFrame:
        if candidates is None:
            candidates = JointSpace.from_families(
                self.model, _task(warehouse or self.warehouse, dataset)
            )
        if isinstance(candidates, JointSpace):
            spaces = {f: s for f, s in candidates.spaces.items() if f in self.learners}
            if not spaces:
                raise ValidationError(
                    f"none of the space's families ({', '.join(candidates.families)}) has a "
                    "fitted meta-learner"
                )
            inc = {
                f: best_configs(family_rows(obs, f), self.maximize, drop_unset=True) for f in spaces
            }
            folios = {f: getattr(self.learners[f], "portfolio", None) for f in spaces}
            return JointSpace(spaces).candidates(
                n_candidates, seed=seed, incumbents=inc, portfolios=folios
            )
        cands = load_candidates(candidates)
        if MODEL_COLUMN not in cands.columns:
            raise ValidationError("candidates for several families need a 'model' column")
        keep = cands[MODEL_COLUMN].astype(str).isin(self.learners)
        if not keep.any():
            raise ValidationError("no candidate belongs to a family with a fitted meta-learner")
        return cands[keep].reset_index(drop=True)

    # ---- recommend -----------------------------------------------------------------------
    def recommend(
        self,
        warehouse: WarehouseLike,
        dataset: str,
        candidates: JointSpace | pd.DataFrame | None = None,
        n: int = 1,
        acquisition: str = "ei",
        *,
        runs: pd.DataFrame | None = None,
        meta: pd.DataFrame | None = None,
        include_run: bool = False,
        pending: pd.DataFrame | None = None,
        n_candidates: int = 256,
        seed: int = 0,
        beta: float = 2.0,
        xi: float = 0.0,
        alpha: float = 1.0,
        share: bool | None = None,
        record: bool = False,
        random_every: int = RANDOM_EVERY,
    ) -> pd.DataFrame:
        """The ``n`` best joint candidates (any family) by ``acquisition``, best first.

        Every family's candidates are scored under its own learner, against the incumbent
        *across* families (the dataset's best observed run of any fitted family; with none,
        the best predicted mean). ``cost-ei`` divides EI by each family's predicted seconds.
        A batch (``n > 1``) is picked by Kriging believer per family; ``pending`` configs
        (with a ``model`` column) are fantasized at their predicted mean.
        Once the dataset's best run has not improved for ``random_every`` trials, the pick is
        a random candidate (``random`` True; see :mod:`metaopt_bayes.batch`).
        Returns ``model``, parameter columns, ``mean``, ``sd`` (predictive), ``acquisition``,
        ``rank``, ``random`` and ``predicted_s`` (NaN without duration learners).
        """
        if n < 1:
            raise ValidationError(f"n must be a positive integer, not {n!r}")
        key = acquisition.lower().replace("_", "-")
        if key not in ("ei", "log-ei", "logei", "pi", "ucb", "cost-ei"):
            raise ValidationError(
                f"acquisition {acquisition!r} is not available across families; "
                "choose ei, cost-ei, pi or ucb"
            )
        if key == "cost-ei" and not self.cost_learners:
            raise ValidationError("acquisition 'cost-ei' needs duration learners (cost=True)")
        dataset = str(dataset)
        obs = self.observed_runs(warehouse, dataset, runs)
        cands = self._candidates(candidates, obs, n_candidates, seed, warehouse, dataset)
        keep = pd.Series(True, index=cands.index)
        fams = cands[MODEL_COLUMN].astype(str)
        for fam in fams.unique():
            m = (fams == fam).to_numpy()
            sub = family_rows(cands[m], fam)
            names = [c for c in sub.columns if c != MODEL_COLUMN and not str(c).startswith("_")]
            fobs = obs[obs[MODEL_COLUMN].astype(str) == fam] if len(obs) else None
            mask = pd.Series(True, index=sub.index)
            if not include_run:
                mask &= exclude_run(sub, fobs, names).to_numpy()
            if pending is not None and len(pending):
                pf = pending[pending[MODEL_COLUMN].astype(str) == fam]
                if len(pf):
                    pf = pf.drop(columns=[MODEL_COLUMN]).add_prefix(PARAM_PREFIX)
                    mask &= exclude_run(sub, pf, names).to_numpy()
            keep[np.flatnonzero(m)] = mask.to_numpy()
        pool = cands[keep.to_numpy()].reset_index(drop=True)
        if pool.empty:
            raise CandidatesExhaustedError(
                f"every candidate was already run on dataset {dataset!r} (pass include_run=True)"
            )
        n = min(int(n), len(pool))
        observed = pd.to_numeric(obs["value"], errors="coerce").to_numpy(float) if len(obs) else []
        n_pending = 0 if pending is None else len(pending)
        in_order = obs.sort_values("seq")["value"] if "seq" in obs.columns else observed
        since = trials_since_best(pd.to_numeric(in_order, errors="coerce"), self.maximize)
        random_at = random_steps(
            random_every,
            None if since is None else since + n_pending,
            n,
            seed,
            int(np.isfinite(np.asarray(observed, float)).sum()) + n_pending,
        )
        extra = None
        if pending is not None and len(pending):
            # only families with a learner can be conditioned on (the others' pending rows
            # still keep their configs out of the pool above)
            known = pending[MODEL_COLUMN].astype(str).isin(set(self.learners)).to_numpy()
            extra = fantasies(self, dataset, pending[known], obs, warehouse, meta)
        shown = self.predict(dataset, pool, warehouse, meta, obs, extra, share=share)
        cost = shown["predicted_s"].to_numpy(float) if key == "cost-ei" else None
        if cost is not None:
            cost = np.where(np.isfinite(cost), cost, np.nanmedian(cost))
        chosen, scores = believer_batch(
            lambda ext: self.predict(
                dataset, pool, warehouse, meta, obs, ext, predictive=False, share=share
            ),
            pool,
            n,
            key,
            observed,
            self.maximize,
            extra,
            random_at=random_at,
            cost=cost,
            beta=beta,
            xi=xi,
            alpha=alpha,
        )
        out = ranked(pool, chosen, shown, scores, [step in random_at for step in range(n)])
        out["predicted_s"] = shown["predicted_s"].to_numpy(float)[chosen]
        out = out.dropna(axis=1, how="all") if len(out) else out
        for c in ("mean", "sd", "acquisition", "rank", "predicted_s"):
            if c not in out.columns:
                out[c] = np.nan
        if record:
            record_family_recommendations(warehouse or self.warehouse, self, dataset, out, key)
        return out


def _task(warehouse: WarehouseLike, dataset: str) -> str:
    if warehouse is None:
        return "classification"
    try:
        return warehouse.dataset_task(dataset) or "classification"
    except Exception:
        return "classification"


def record_family_recommendations(
    warehouse: WarehouseLike,
    learner: FamilyLearner,
    dataset: str,
    recs: pd.DataFrame,
    acquisition: str,
    run_ids: list[str | None] | None = None,
) -> list[str]:
    """Store joint recommendations: one ``recommendations`` row each, with the ``model_id`` of
    the row's family learner (so ``family_predictions`` knows the metric)."""
    rows = []
    for i, rec in enumerate(recs.to_dict("records")):
        fam = str(rec[MODEL_COLUMN])
        lrn = learner.learners.get(fam)
        cfg = {
            k: plain(v)
            for k, v in rec.items()
            if k not in (*OUTPUT_COLUMNS, MODEL_COLUMN, "config", "best_observed", "n_runs")
            and not str(k).startswith("_")
            and is_set(v)
        }
        rows.append(
            {
                "model_id": getattr(lrn, "model_id", None),
                "dataset": dataset,
                "model": fam,
                "config": cfg,
                "mean": float(rec["mean"]),
                "sd": float(rec["sd"]),
                "acquisition": acquisition,
                "acquisition_value": float(rec.get("acquisition", np.nan)),
                "rank": int(rec["rank"]),
                **({"run_id": run_ids[i]} if run_ids is not None else {}),
            }
        )
    return warehouse.record_recommendations(pd.DataFrame(rows))


def recommend_families(
    learner: FamilyLearner,
    warehouse: WarehouseLike,
    dataset: str,
    candidates: JointSpace | pd.DataFrame | None = None,
    n: int = 1,
    acquisition: str = "ei",
    **kwargs: Any,
) -> pd.DataFrame:
    """Functional form of :meth:`FamilyLearner.recommend`."""
    return learner.recommend(warehouse, dataset, candidates, n, acquisition, **kwargs)


def fit_family_learner(
    warehouse: WarehouseLike,
    metric: str,
    families: str | Iterable[str] | None = None,
    method: str = "nuts",
    exclude: Any = None,
    record: bool = True,
    **config: Any,
) -> FamilyLearner:
    """Fit a :class:`FamilyLearner` on the warehouse and record each family's fit in
    ``meta_models`` (so its recommendations carry a ``model_id``)."""
    lrn = FamilyLearner(metric, families, method=method, **config).fit(warehouse, exclude=exclude)
    if record and hasattr(warehouse, "record_meta_model"):
        for sub in lrn.learners.values():
            with contextlib.suppress(Exception):
                sub.model_id = warehouse.record_meta_model(**sub.meta_model_row())
    return lrn


__all__ = [
    "FamilyLearner",
    "JointSpace",
    "fit_family_learner",
    "recommend_families",
    "record_family_recommendations",
    "resolve_families",
    "zoo_families",
]

"""Calibration of final-value predictions from partial learning curves (issue #28, item 2).

Real curves of ``benchmarks/make_curve_suites.py`` (PMLB: ``mlp`` epochs 1..40,
``hist_gradient_boosting`` iterations 5..200; 32 configs per dataset, validation accuracy and
log-loss at every step). Every model is fitted on ``dev`` datasets (``pmlb_splits.csv``) and
predicts the final value (the value at the dataset's budget, its largest step) of runs of
datasets it was not fitted on, from the points observed up to 10%, 25% and 50% of the budget,
with ``context`` = 0 or 5 finished curves of the same dataset (the same 5 for every model; the
other 27 runs are predicted in both cases).

* ``--cv K`` (development): leave-datasets-out cross-validation within ``dev`` (K folds of
  datasets, a fixed shuffle); every design decision was made on this.
* ``--holdout``: fitted on all ``dev`` datasets, predicts the ``holdout`` datasets (run once).

Per family × metric × fraction × context, for each model: coverage of the central 90% and 50%
predictive intervals, mean absolute error of the point prediction (the predictive median
``q50``, metric scale), the Spearman correlation of ``q50`` and the true finals among a
dataset's runs and the interval score of the 90% interval — each the mean over datasets of a
per-dataset score, ± its standard error over datasets. Record:
``benchmarks/results/curve_calibration.md``. Models:

* ``hier`` — :class:`metaopt_bayes.curves.CurveModel` (the product's curve model);
* ``pooled`` — the same regression without dataset effects (``dataset_effects=False``);
* ``last`` — final = last observed value, its interval the empirical quantiles of the change
  still to come (last → final) over the training curves cut at the same fraction;
* ``powerlaw`` — per run ``z(t) = c − a((t/T)^−α − 1)`` on the modelling scale, ``α`` on a
  grid with prior weights (how often each ``α`` fitted a training curve best), ``(c, a)``
  conjugate Gaussian given ``α`` under priors whose means have per-dataset shifts (empirical
  Bayes by moments over the training curves, updated by the context's curves), i.i.d.
  Gaussian noise per point.

Variants for development: ``--models hier,hier-noconfig,...`` (see ``VARIANTS``).

    PYTHONPATH=. python benchmarks/curve_calibration.py --cv 4 [--families mlp]
        [--metrics accuracy] [--models hier,pooled,last,powerlaw] [--method map|nuts]
    PYTHONPATH=. python benchmarks/curve_calibration.py --holdout --write

``--parts DIR`` reads the generator's per-dataset part files (``<family>/<dataset>.parquet``
and ``<family>_runs/<dataset>.parquet``) instead of ``benchmarks/data/pmlb_curves_*``.
``--write`` writes the tables (markdown), the per-dataset scores (CSV) and the calibration plot
(from the PIT, randomized where the predictive has a point mass) to
``benchmarks/results/curve_calibration/``. ``--write --merge`` re-runs only the ``--models``
given: their rows replace theirs in the existing ``<name>_scores.csv`` (every other model's rows
kept as they are), the tables are made from the merged scores, and the plot, which needs every
model's PIT, is left as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaopt_bayes.curves import (  # noqa: E402
    CurveModel,
    _curve_rows,
    _to_metric,
    mixture_quantiles,
)
from metaopt_bayes.features import TargetTransform  # noqa: E402

FAMILIES = ("mlp", "hist_gradient_boosting")
FRACTIONS = (0.1, 0.25, 0.5)
CONTEXTS = (0, 5)
MAXIMIZE = {"accuracy": True, "log_loss": False}
PROBS = (0.05, 0.25, 0.5, 0.75, 0.95)

#: CurveModel settings by model name (development variants beside the chosen ``hier``)
VARIANTS: dict[str, dict] = {
    "hier": {},
    "pooled": {"dataset_effects": False},
    "hier-noconfig": {"use_configs": False},
    "hier-noact": {"activity_noise": False},
    "hier-nostay": {"stay": False},
    "hier-gauss": {"residual_mixture": 1},
    "hier-nuts": {"method": "nuts"},
    "hier-noconfig-nuts": {"method": "nuts", "use_configs": False},
    "hier-level": {"effects": ("L",)},
    "hier-nonoise": {"dataset_noise": False},
    "hier-effects-only": {"dataset_noise": False},
    "noise-only": {"dataset_effects": False, "dataset_noise": True},
}


# ------------------------------------------------------------------------------------ data
def load_family(family: str, data: Path, parts: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(curves, runs)``: long ``run_id, dataset, metric, step, value`` and one row per run
    (``run_id, dataset, params.*``), from the committed files or the part files."""
    if parts is not None:
        files = sorted((parts / family).glob("*.parquet"))
        curves = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        runs = pd.concat(
            [pd.read_parquet(parts / f"{family}_runs" / f.name) for f in files], ignore_index=True
        )
    else:
        curves = pd.read_parquet(data / f"pmlb_curves_{family}.parquet")
        runs = pd.read_parquet(data / f"pmlb_curves_{family}_runs.parquet")
    params = [c for c in runs.columns if c.startswith("params.")]
    runs = runs[["run_id", "dataset", *params]].copy()
    runs["run_id"] = runs["run_id"].astype(str)
    runs["dataset"] = runs["dataset"].astype(str)
    curves = curves[["run_id", "metric", "step", "value"]].copy()
    curves["run_id"] = curves["run_id"].astype(str)
    curves["metric"] = curves["metric"].astype(str)
    curves = curves.merge(runs[["run_id", "dataset"]], on="run_id")
    return curves.sort_values(["run_id", "metric", "step"]).reset_index(drop=True), runs


def _seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


# ---------------------------------------------------------------------------------- models
def _fitted_transform(metric: str, values: np.ndarray) -> TargetTransform:
    """The baselines' modelling scale: logit (accuracy) or log, standardized over ``values``."""
    t = TargetTransform("logit" if metric == "accuracy" else "log", eps=1e-3, resolution=False)
    g = t._g(values)
    t.center, t.scale = float(g.mean()), float(g.std())
    return t


class Last:
    """Final = last observed value; interval from the training curves' changes at f, mapped
    to the metric's scale as :class:`CurveModel` maps its own (``_to_metric``: the logit's clip
    region stands for the bound, so a run that ends at accuracy 1.0 can be covered). The PIT is
    taken on the modelling scale, as ``CurveModel.cdf`` takes it."""

    name = "last"

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def fit(self, curves: pd.DataFrame, runs: pd.DataFrame) -> Last:
        self.t = t = _fitted_transform(self.metric, curves["value"].to_numpy(dtype=float))
        budgets = curves.groupby("dataset")["step"].max()
        self.delta: dict[float, np.ndarray] = {}
        for f in FRACTIONS:
            out = []
            for _, c in curves.groupby("run_id", sort=False):
                steps = c["step"].to_numpy(dtype=float)
                b = float(budgets[c["dataset"].iat[0]])
                *_, y = _curve_rows(steps, t.forward(c["value"].to_numpy()), b, [f])
                out.append(y)
            self.delta[f] = np.sort(np.concatenate(out))
        return self

    def predict(self, partial, budget, frac, context, runs, truth) -> pd.DataFrame:
        last = partial.groupby("run_id", sort=False)["value"].last()
        z = self.t.forward(last.to_numpy())
        d = self.delta[frac]
        qs = np.quantile(d, PROBS)
        out = pd.DataFrame(
            _to_metric(self.t, z[:, None] + qs[None, :]),
            columns=["q05", "q25", "q50", "q75", "q95"],
            index=last.index,
        )
        out["mean"] = last.to_numpy()
        out["q50"] = last.to_numpy()  # the point prediction is the last value
        zt = self.t.forward(truth.reindex(last.index).to_numpy())
        lo = np.searchsorted(d, zt - z, side="left") / len(d)
        hi = np.searchsorted(d, zt - z, side="right") / len(d)
        out["pit"] = _randomized(lo, hi, truth.reindex(last.index).to_numpy())
        return out


class Hier:
    """A :class:`CurveModel` variant."""

    def __init__(self, name: str, metric: str, default_method: str, **kw) -> None:
        self.name = name
        self.metric = metric
        self.method = kw.pop("method", default_method)
        self.model = CurveModel(metric, MAXIMIZE[metric], **kw)

    def fit(self, curves: pd.DataFrame, runs: pd.DataFrame) -> Hier:
        self.model.fit(curves, runs, method=self.method)
        return self

    def predict(self, partial, budget, frac, context, runs, truth) -> pd.DataFrame:
        out = self.model.predict_final(partial, budget, context=context, configs=runs)
        kw = dict(context=context, configs=runs)
        hi = self.model.cdf(partial, budget, truth, **kw).reindex(out.index).to_numpy()
        lo = self.model.cdf(partial, budget, truth, strict=True, **kw).reindex(out.index)
        out["pit"] = _randomized(lo.to_numpy(), hi, truth.reindex(out.index).to_numpy())
        return out


class PowerLaw:
    """Per-run power law with empirical-Bayes hierarchical priors (see module docstring)."""

    name = "powerlaw"
    alphas = np.geomspace(0.05, 3.0, 14)

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def _z(self, v: np.ndarray) -> np.ndarray:
        return self.t.forward(np.asarray(v, dtype=float))

    def _ols(self, t: np.ndarray, z: np.ndarray, budget: float) -> tuple[np.ndarray, np.ndarray]:
        """Per α: least-squares ``(c, a)`` (A, 2) and residual sum of squares (A,)."""
        g = (t[None, :] / budget) ** (-self.alphas[:, None]) - 1.0  # (A, n)
        G = np.stack([np.ones_like(g), -g], axis=-1)  # (A, n, 2)
        GtG = np.einsum("ani,anj->aij", G, G) + 1e-9 * np.eye(2)
        coef = np.linalg.solve(GtG, np.einsum("ani,n->ai", G, z)[..., None])[..., 0]
        res = z[None, :] - np.einsum("ani,ai->an", G, coef)
        return coef, (res**2).sum(1)

    def _coefs(self, curves: pd.DataFrame, budgets) -> pd.DataFrame:
        rows = []
        for rid, c in curves.groupby("run_id", sort=False):
            b = float(budgets[c["dataset"].iat[0]]) if not np.isscalar(budgets) else budgets
            t = c["step"].to_numpy(dtype=float)
            if t[-1] < b:
                continue
            coef, sse = self._ols(t, self._z(c["value"].to_numpy()), b)
            rows.append((rid, c["dataset"].iat[0], coef, sse, len(t)))
        return rows

    def fit(self, curves: pd.DataFrame, runs: pd.DataFrame) -> PowerLaw:
        self.t = _fitted_transform(self.metric, curves["value"].to_numpy(dtype=float))
        budgets = curves.groupby("dataset")["step"].max()
        rows = self._coefs(curves, budgets)
        coef = np.stack([r[2] for r in rows])  # (runs, A, 2)
        sse = np.stack([r[3] for r in rows])
        n = np.array([r[4] for r in rows])
        ds = pd.factorize(np.array([r[1] for r in rows]))[0]
        best = sse.argmin(1)
        counts = np.bincount(best, minlength=len(self.alphas)) + 1.0
        self.prior_alpha = counts / counts.sum()
        var = sse[np.arange(len(best)), best] / np.maximum(n - 2, 1)
        dsv = pd.Series(np.log(var)).groupby(ds).mean()
        self.log_s2 = float(np.median(dsv))
        # per α: population mean, between-dataset and within-dataset variances of (c, a)
        D = ds.max() + 1
        dm = np.stack([coef[ds == d].mean(0) for d in range(D)])  # (D, A, 2)
        self.mu = dm.mean(0)
        within = np.stack([coef[ds == d].var(0) for d in range(D)]).mean(0)
        self.within = np.maximum(within, 1e-4)
        self.between = np.maximum(dm.var(0) - self.within / (len(coef) / D), 1e-4)
        return self

    def predict(self, partial, budget, frac, context, runs, truth) -> pd.DataFrame:
        mu, s2_prior, log_s2 = self.mu, self.within + self.between, self.log_s2
        if context is not None and len(context):
            rows = self._coefs(context, float(budget))
            if rows:
                coef = np.stack([r[2] for r in rows])
                k = len(coef)
                shrink = self.between / (self.between + self.within / k)
                mu = self.mu + shrink * (coef.mean(0) - self.mu)
                s2_prior = self.within + shrink * self.within / k
                sse = np.stack([r[3] for r in rows])
                best = sse[np.arange(k), sse.argmin(1)].sum() / max(sum(r[4] - 2 for r in rows), 1)
                log_s2 = (np.log(best) * k + self.log_s2 * 2) / (k + 2)
        s2 = np.exp(log_s2)
        out = {}
        for rid, c in partial.groupby("run_id", sort=False):
            tt = c["step"].to_numpy(dtype=float)
            z = self._z(c["value"].to_numpy())
            g = (tt[None, :] / budget) ** (-self.alphas[:, None]) - 1.0
            G = np.stack([np.ones_like(g), -g], axis=-1)  # (A, n, 2)
            P0 = 1.0 / s2_prior  # (A, 2) diagonal prior precision
            A = np.einsum("ani,anj->aij", G, G) / s2
            A[:, 0, 0] += P0[:, 0]
            A[:, 1, 1] += P0[:, 1]
            rhs = np.einsum("ani,n->ai", G, z) / s2 + P0 * mu
            Ainv = np.linalg.inv(A)
            m = np.einsum("aij,aj->ai", Ainv, rhs)
            # marginal likelihood of the points per α
            r = z[None, :] - np.einsum("ani,ai->an", G, mu)
            cov = np.einsum("ani,ai,amj->anm", G, s2_prior, G) + s2 * np.eye(len(z))
            _, logdet = np.linalg.slogdet(cov)
            quad = np.einsum("an,an->a", r, np.linalg.solve(cov, r[..., None])[..., 0])
            lw = np.log(self.prior_alpha) - 0.5 * (logdet + quad)
            w = np.exp(lw - lw.max())
            w /= w.sum()
            out[rid] = (m[:, 0], Ainv[:, 0, 0] + s2, w)
        ids = list(out)
        M = np.stack([out[i][0] for i in ids])
        V = np.stack([out[i][1] for i in ids])
        W = np.stack([out[i][2] for i in ids])
        return _mixture_frame(ids, M, V, W, self.t, truth)


def _randomized(lo: np.ndarray, hi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The randomized PIT ``F(y−) + U (F(y) − F(y−))`` (uniform under a calibrated forecast
    even where the forecast has point masses), ``U`` seeded by the true values."""
    seed = int(np.abs(np.nansum(y)) * 1e6) % (2**32)
    return lo + np.random.default_rng(seed).random(len(lo)) * (hi - lo)


def _mixture_frame(ids, M, V, W, t: TargetTransform, truth: pd.Series) -> pd.DataFrame:
    """Summaries of per-row mixtures with row-specific weights (Q, K), mapped to the metric's
    scale as :class:`CurveModel` maps its own (``_to_metric``)."""
    sd = np.sqrt(V)
    qs = np.stack(
        [mixture_quantiles(M[i : i + 1], sd[i : i + 1], W[i], PROBS)[0] for i in range(len(M))]
    )
    out = pd.DataFrame(_to_metric(t, qs), columns=["q05", "q25", "q50", "q75", "q95"], index=ids)
    x, gw = np.polynomial.hermite_e.hermegauss(16)
    gw = gw / gw.sum()
    vals = _to_metric(t, M[:, :, None] + sd[:, :, None] * x)
    out["mean"] = np.einsum("qkh,h,qk->q", vals, gw, W)
    zt = t.forward(truth.reindex(ids).to_numpy())
    out["pit"] = (ndtr((zt[:, None] - M) / sd) * W).sum(1)
    return out


def make_model(name: str, metric: str, method: str):
    if name == "last":
        return Last(metric)
    if name == "powerlaw":
        return PowerLaw(metric)
    return Hier(name, metric, method, **dict(VARIANTS[name]))


# ------------------------------------------------------------------------------ evaluation
def dataset_scores(pred: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
    y = truth.reindex(pred.index).to_numpy()
    tol = 1e-12
    rho = np.nan
    if np.ptp(y) > 0 and np.ptp(pred["q50"].to_numpy()) > 0:
        rho = float(spearmanr(pred["q50"], y).statistic)
    return {
        "cov90": float(np.mean((y >= pred["q05"] - tol) & (y <= pred["q95"] + tol))),
        "cov50": float(np.mean((y >= pred["q25"] - tol) & (y <= pred["q75"] + tol))),
        "mae": float(np.mean(np.abs(pred["q50"].to_numpy() - y))),
        "mae_mean": float(np.mean(np.abs(pred["mean"].to_numpy() - y))),
        "spearman": rho,
        "width90": float(np.mean(pred["q95"] - pred["q05"])),
        # the interval score of the central 90% interval (Gneiting & Raftery 2007, eq. 43):
        # width plus 2/α times the miss — proper, so it rewards sharpness and calibration
        "is90": float(
            np.mean(
                (pred["q95"] - pred["q05"])
                + 20 * np.maximum(pred["q05"] - y, 0)
                + 20 * np.maximum(y - pred["q95"], 0)
            )
        ),
    }


def evaluate(
    family: str,
    metric: str,
    curves: pd.DataFrame,
    runs: pd.DataFrame,
    train: list[str],
    test: list[str],
    models: list[str],
    method: str,
    split: str,
    pits: list | None = None,
) -> list[dict]:
    cur = curves[curves["metric"] == metric].drop(columns="metric")
    tr = cur[cur["dataset"].isin(train)]
    rows = []
    fitted = []
    for name in models:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.append(make_model(name, metric, method).fit(tr, runs))
        print(
            f"  fit {name} on {len(train)} datasets: {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    for ds in test:
        c = cur[cur["dataset"] == ds]
        budget = float(c["step"].max())
        ids = np.array(sorted(c["run_id"].unique()))
        ids = ids[np.random.default_rng(_seed(ds)).permutation(len(ids))]
        ctx_ids, eval_ids = ids[:5], ids[5:]
        ev = c[c["run_id"].isin(eval_ids)]
        finished = ev.groupby("run_id")["step"].max() >= budget
        truth = ev.groupby("run_id")["value"].last()[finished]
        for n_ctx in CONTEXTS:
            context = c[c["run_id"].isin(ctx_ids[:n_ctx])] if n_ctx else None
            for frac in FRACTIONS:
                partial = ev[(ev["step"] <= frac * budget) & ev["run_id"].isin(truth.index)]
                for m in fitted:
                    pred = m.predict(partial, budget, frac, context, runs, truth)
                    sc = dataset_scores(pred, truth)
                    rows.append(
                        dict(
                            split=split, family=family, metric=metric, model=m.name,
                            fraction=frac, context=n_ctx, dataset=ds, n=len(pred), **sc,
                        )
                    )  # fmt: skip
                    if pits is not None:
                        pits.append(
                            pd.DataFrame(
                                dict(
                                    family=family,
                                    metric=metric,
                                    model=m.name,
                                    fraction=frac,
                                    context=n_ctx,
                                    dataset=ds,
                                    pit=pred["pit"].to_numpy(),
                                )
                            )
                        )
    return rows


def merge_scores(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` with the rows of ``new`` in place of those with the same split, family, metric,
    model, fraction, context and dataset; every other row of ``old`` as it is and where it was,
    rows of ``new`` that ``old`` lacks at the end."""
    keys = ["split", "family", "metric", "model", "fraction", "context", "dataset"]
    if list(new.columns) != list(old.columns):
        raise SystemExit(f"--merge: columns differ ({list(old.columns)} / {list(new.columns)})")
    o, n = old.set_index(keys), new.set_index(keys)
    kept = ~o.index.isin(n.index)
    at = o.index.get_indexer(n.index)
    pos = np.concatenate([np.flatnonzero(kept), np.where(at >= 0, at, len(o) + np.arange(len(n)))])
    merged = pd.concat([old[kept], new], ignore_index=True)
    return merged.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean over datasets ± standard error over datasets, per cell and model."""
    keys = ["family", "metric", "fraction", "context", "model"]
    out = []
    for key, g in scores.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        row["datasets"] = len(g)
        for col in ("cov90", "cov50", "mae", "spearman", "is90"):
            v = g[col].dropna().to_numpy()
            row[col] = v.mean() if len(v) else np.nan
            row[col + "_se"] = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def markdown(summary: pd.DataFrame) -> str:
    lines = []
    for (family, metric), g in summary.groupby(["family", "metric"], sort=False):
        lines.append(f"\n**{family}, {metric}** ({g['datasets'].max()} datasets)\n")
        lines.append("| fraction | context | model | 90% cov | 50% cov | MAE | Spearman | IS90 |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for _, r in g.iterrows():
            lines.append(
                f"| {r.fraction:.0%} | {r.context} | {r.model} | {r.cov90:.3f} ± {r.cov90_se:.3f}"
                f" | {r.cov50:.3f} ± {r.cov50_se:.3f} | {r.mae:.4f} ± {r.mae_se:.4f}"
                f" | {r.spearman:.3f} ± {r.spearman_se:.3f} | {r.is90:.3f} ± {r.is90_se:.3f} |"
            )
    return "\n".join(lines)


def paired(scores: pd.DataFrame, ref: str = "hier") -> str:
    """Each model minus ``ref`` on the same datasets (IS90, MAE, Spearman): mean ± s.e. over
    datasets, pooled over fractions and contexts per family × metric × context."""
    keys = ["family", "metric", "fraction", "context", "dataset"]
    base = scores[scores["model"] == ref].set_index(keys)
    lines = [f"\n**paired differences, model − {ref}** (negative IS90/MAE = better)\n"]
    lines.append("| family | metric | context | model | ΔIS90 | ΔMAE | ΔSpearman |")
    lines.append("|---|---|---|---|---|---|---|")
    for (family, metric, ctx, model), g in scores.groupby(
        ["family", "metric", "context", "model"], sort=False
    ):
        if model == ref:
            continue
        d = g.set_index(keys)[["is90", "mae", "spearman"]] - base[["is90", "mae", "spearman"]]
        d = d.dropna(how="all").groupby(level="dataset").mean()  # a dataset counts once
        cells = []
        for col in ("is90", "mae", "spearman"):
            v = d[col].dropna()
            cells.append(f"{v.mean():+.4f} ± {v.std(ddof=1) / np.sqrt(len(v)):.4f}")
        lines.append(f"| {family} | {metric} | {ctx} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(pits: pd.DataFrame, path: Path, title: str) -> None:
    """Observed coverage of central intervals against their nominal level (from the PIT values
    ``P(final ≤ truth)``, randomized where the predictive has a point mass): one panel per
    context × family; ``hier`` per fraction, the baselines pooled over fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(pits["family"]))
    contexts = sorted(pits["context"].unique())
    fig, axes = plt.subplots(
        len(contexts), len(families), figsize=(4.6 * len(families), 4.2 * len(contexts)),
        squeeze=False,
    )  # fmt: skip
    levels = np.linspace(0.02, 0.98, 49)

    def curve(p: np.ndarray) -> list[float]:
        return [float((np.abs(p - 0.5) <= lv / 2).mean()) for lv in levels]

    for i, ctx in enumerate(contexts):
        for j, family in enumerate(families):
            ax = axes[i, j]
            sub = pits[(pits.family == family) & (pits.context == ctx)]
            for frac, g in sub[sub.model == "hier"].groupby("fraction"):
                ax.plot(levels, curve(g["pit"].to_numpy()), "-", lw=1.6, label=f"hier f={frac:g}")
            for model, style in (("pooled", "--"), ("last", ":"), ("powerlaw", "-.")):
                g = sub[sub.model == model]
                if len(g):
                    ax.plot(levels, curve(g["pit"].to_numpy()), style, lw=1.2, label=model)
            ax.plot([0, 1], [0, 1], "k-", lw=0.5, alpha=0.5)
            ax.set_title(f"{family}, context {ctx}", fontsize=9)
            ax.set_xlabel("nominal central interval")
            ax.set_ylabel("observed coverage")
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cv", type=int, default=0, help="K-fold leave-datasets-out CV on dev")
    ap.add_argument("--holdout", action="store_true", help="fit on dev, predict holdout")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--metrics", default="accuracy")
    ap.add_argument("--models", default="hier,pooled,last,powerlaw")
    ap.add_argument("--method", default="map", choices=("map", "nuts"))
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--parts", type=Path, default=None)
    ap.add_argument("--folds-only", default=None, help="comma-separated fold numbers")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="with --write: replace only these models' rows in the existing scores",
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 2 folds of 12 dev datasets, mlp"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.cv, args.holdout, args.families = 2, False, "mlp"
    if not args.cv and not args.holdout:
        ap.error("give --cv K or --holdout")
    if args.merge and not args.write:
        ap.error("--merge goes with --write")
    print(
        "command: PYTHONPATH=. python benchmarks/curve_calibration.py "
        + " ".join(argv or sys.argv[1:])
    )
    splits = pd.read_csv(args.data / "pmlb_splits.csv").set_index("dataset")["split"]
    models = args.models.split(",")
    all_scores, pits = [], []
    for family in args.families.split(","):
        curves, runs = load_family(family, args.data, args.parts)
        have = sorted(curves["dataset"].unique())
        dev = [d for d in have if splits.get(d) == "dev"][: 12 if args.quick else None]
        hold = [d for d in have if splits.get(d) == "holdout"]
        for metric in args.metrics.split(","):
            if args.holdout:
                print(f"{family} {metric}: fit on {len(dev)} dev, test {len(hold)} holdout",
                      file=sys.stderr)  # fmt: skip
                all_scores += evaluate(
                    family, metric, curves, runs, dev, hold, models, args.method, "holdout", pits
                )
            else:
                order = np.array(dev)[np.random.default_rng(0).permutation(len(dev))]
                folds = np.array_split(order, args.cv)
                only = (
                    range(args.cv)
                    if not args.folds_only
                    else [int(k) for k in args.folds_only.split(",")]
                )
                for k in only:
                    test = sorted(folds[k])
                    train = sorted(set(dev) - set(test))
                    print(f"{family} {metric} fold {k}: {len(train)} train, {len(test)} test",
                          file=sys.stderr)  # fmt: skip
                    all_scores += evaluate(
                        family, metric, curves, runs, train, test, models, args.method, "cv", pits
                    )
    scores = pd.DataFrame(all_scores)
    summary = summarize(scores)
    print(markdown(summary))
    if "hier" in models and len(models) > 1:
        print(paired(scores))
    if args.write:
        out = ROOT / "benchmarks" / "results" / "curve_calibration"  # per-dataset rows, plots
        out.mkdir(parents=True, exist_ok=True)
        name = ("holdout" if args.holdout else f"cv{args.cv}") + (
            f"_{args.tag}" if args.tag else ""
        )
        merge = args.merge and (out / f"{name}_scores.csv").exists()
        if merge:
            old = pd.read_csv(out / f"{name}_scores.csv", dtype={"dataset": str})
            scores = merge_scores(old, scores)
            summary = summarize(scores)
        scores.to_csv(out / f"{name}_scores.csv", index=False, float_format="%.6g")
        has_ref = "hier" in set(scores["model"])
        text = markdown(summary) + ("\n" + paired(scores) if has_ref else "")
        (out / f"{name}_summary.md").write_text(text + "\n")
        if merge:
            print(f"merged into {name}_scores.csv; {name}_calibration.png left as it is",
                  file=sys.stderr)  # fmt: skip
        else:
            plot(pd.concat(pits, ignore_index=True), out / f"{name}_calibration.png",
                 f"curve calibration ({name})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

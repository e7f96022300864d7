"""One self-contained HTML report of what the meta-learner knows about a dataset.

Sections (every plot is a matplotlib PNG embedded as base64; the page loads no external asset):

1. **Predicted vs observed** with 90% intervals, by *K-fold cross-validation within the target
   dataset*: the population model is fitted on the *other* datasets (the target is excluded
   from the fit whenever another dataset exists), and each fold's runs are predicted after the
   closed-form update of the target's coefficients on the remaining folds' runs. Every
   prediction is therefore out-of-sample for the run it scores.
2. **Calibration**: for nominal central-interval levels ``q`` the empirical coverage
   ``mean(lower_q <= y <= upper_q)`` of those same held-out predictions (a calibrated model
   lies on the diagonal; Gneiting, Balabdaoui & Raftery 2007, "Probabilistic forecasts,
   calibration and sharpness").
3. **Optimization trace**: the target's runs in logging order (``seq``) with the best so far.
4. **Parameter effects**: Friedman's partial dependence (Friedman 2001, "Greedy function
   approximation", §8.2) under the meta-learner, ``PD_j(v) = 1/n Σ_i E[f(v, x_{i,-j})]``,
   averaging the posterior mean over the target's observed configurations (background) with
   the j-th parameter set to ``v``; the band averages the 90% credible interval of the mean.
5. **Similar datasets**: nearest datasets by Euclidean distance between meta-features
   standardized across datasets (z-scores, averaging over the features both datasets have).

Python API: :func:`build_report` returns the HTML text, :func:`write_report` writes it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from warehouse.errors import NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike

__all__ = ["LEVELS", "ReportData", "build_report", "nearest_datasets", "write_report"]

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
_PREFIX = "params."


@dataclass
class ReportData:
    """Everything the page shows, as plain tables (also useful without the HTML)."""

    metric: str
    model: str
    dataset: str
    direction: str
    method: str
    fit_note: str
    n_runs: int
    n_datasets: int
    fit_s: float
    heldout: pd.DataFrame  # run_id, seq, fold, observed, mean, lower, upper
    calibration: pd.DataFrame  # nominal, empirical, n
    trace: pd.DataFrame  # seq, value, best
    partial_dependence: dict[str, pd.DataFrame] = field(default_factory=dict)
    neighbours: pd.DataFrame | None = None
    learner_note: str = ""  # which recorded learner answered, or why one was fitted
    notes: list[str] = field(default_factory=list)
    # the dataset's learning curves of this model and metric: run_id, status, step, value
    curves: pd.DataFrame | None = None


# ------------------------------------------------------------------------------------ maths
def nearest_datasets(meta: pd.DataFrame, target: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` datasets closest to ``target`` in standardized meta-feature space.

    ``meta``: index dataset, one numeric column per meta-feature (NaN = unknown). Each column
    is z-scored across datasets (columns with zero spread are dropped); the distance is
    ``sqrt(mean_j (z_tj − z_dj)²)`` over the features both datasets have, so datasets missing
    a few features stay comparable. Returns columns dataset, distance, meta_features_compared.
    """
    if target not in meta.index:
        raise NotFoundError(f"dataset {target!r} has no meta-features")
    x = meta.astype(float)
    sd = x.std(ddof=0)
    x = x.loc[:, sd > 0]
    z = (x - x.mean()) / x.std(ddof=0)
    t = z.loc[target]
    diff = (z.drop(index=target) - t) ** 2
    used = diff.notna().sum(axis=1)
    dist = np.sqrt(diff.mean(axis=1, skipna=True))
    out = pd.DataFrame(
        {
            "dataset": diff.index.astype(str).to_numpy(),
            "distance": dist.to_numpy(),
            "meta_features_compared": used.to_numpy(),
        }
    )
    out = out[out["meta_features_compared"] > 0].sort_values(["distance", "dataset"]).head(k)
    return out.reset_index(drop=True)


def _coverage(held: pd.DataFrame, bounds: dict[float, tuple[np.ndarray, np.ndarray]]):
    y = held["observed"].to_numpy(float)
    rows = []
    for q, (lo, hi) in bounds.items():
        rows.append({"nominal": q, "empirical": float(np.mean((y >= lo) & (y <= hi))), "n": len(y)})
    return pd.DataFrame(rows)


def _best_so_far(values: np.ndarray, direction: str) -> np.ndarray:
    return (
        np.maximum.accumulate(values) if direction == "maximize" else np.minimum.accumulate(values)
    )


def _configs(runs: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in runs.columns if c.startswith(_PREFIX)]
    return runs[cols].rename(columns=lambda c: c[len(_PREFIX) :]).reset_index(drop=True)


def _grid(spec: Any, n: int = 21, rows: float = float("nan")) -> list[Any]:
    """Values spanning the parameter's encoded range; a parameter encoded per training row
    (``spec.per_row``) spans it as counts on a dataset of ``rows`` rows."""
    if spec.kind == "categorical":
        return list(spec.levels)
    if spec.kind == "bool":
        return [0.0, 1.0]
    enc = np.linspace(spec.low, spec.high, n)
    values = 10.0**enc if spec.log else enc
    if spec.per_row:  # counts: at least one row
        values = np.maximum(values * rows, 1.0)
    if spec.kind == "int":
        values = np.unique(np.round(values))
    return [float(v) for v in values]


# ------------------------------------------------------------------------------------ build
def collect(
    warehouse: WarehouseLike,
    dataset: str | None = None,
    model: str | None = None,
    metric: str = "accuracy",
    learner: Any = None,
    method: str = "map",
    folds: int = 5,
    seed: int = 0,
    background: int = 40,
    refit: bool = False,
    **learner_config: Any,
) -> ReportData:
    """Fit (or reuse) a meta-learner and compute every table of the report. ``learner``: a
    fitted learner, a recorded fit's id or a learner file, or None: the newest recorded fit
    of the other datasets with these settings while they are unchanged, else (or with
    ``refit``) a fit now, recorded (:func:`metaopt_bayes.reuse.learner_for`)."""

    tm = warehouse.training_matrix(metric, model=model)
    if tm.empty:
        raise NotFoundError(
            f"no finished runs with metric {metric!r}"
            + (f" for model {model!r}" if model else "")
            + "; see `metaopt runs`"
        )
    if dataset is not None and dataset not in set(tm["dataset"].astype(str)):
        raise NotFoundError(f"dataset {dataset!r} has no finished runs with metric {metric!r}")
    if model is None:
        pool = tm if dataset is None else tm[tm["dataset"] == dataset]
        model = str(pool["model"].value_counts().idxmax())
        tm = tm[tm["model"] == model]
    if dataset is None:
        dataset = str(tm["dataset"].value_counts().idxmax())
    runs = tm[tm["dataset"] == dataset].sort_values("seq").reset_index(drop=True)
    others = sorted(set(tm["dataset"].astype(str)) - {dataset})
    direction = warehouse.metric_direction(metric)

    notes: list[str] = []
    t0 = time.perf_counter()
    if learner is None or isinstance(learner, str):
        from metaopt_bayes.reuse import learner_for

        # the population from the other datasets (the runs are predicted out of sample): a
        # recorded fit of them with these settings is reused while they are unchanged
        learner = learner_for(
            warehouse, metric, model, dataset=dataset, exclude=[dataset] if others else None,
            direction=direction, method=method, refit=refit, learner=learner, **learner_config,
        )  # fmt: skip
        if getattr(learner, "reused", False) and dataset in learner.datasets and others:
            fit_note = "a chosen meta-learner whose fit includes this dataset (in-sample)"
        elif others:
            fit_note = f"population fitted on {len(others)} other dataset(s), {dataset!r} excluded"
        else:
            fit_note = f"only {dataset!r} has runs: the population fit includes it (in-sample)"
        fit_note += f"; {learner.reuse_note}"
    else:
        fit_note = "a given, already fitted meta-learner (its fit may include this dataset)"
    fit_s = time.perf_counter() - t0

    # 1-2. K-fold within the dataset: held-out predictions at several interval levels.
    rng = np.random.default_rng(seed)
    k = max(2, min(folds, len(runs))) if len(runs) > 1 else 1
    fold = rng.permutation(np.arange(len(runs)) % k)
    bounds: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    lo_all = {q: np.empty(len(runs)) for q in LEVELS}
    hi_all = {q: np.empty(len(runs)) for q in LEVELS}
    mean_all = np.empty(len(runs))
    for f in range(k):
        test = fold == f
        train = runs[~test]
        cfg = _configs(runs[test])
        for q in LEVELS:
            pred = learner.predict(dataset, cfg, warehouse=warehouse, runs=train, interval=q)
            lo_all[q][test] = pred["lower"].to_numpy()
            hi_all[q][test] = pred["upper"].to_numpy()
            if q == 0.9:
                mean_all[test] = pred["mean"].to_numpy()
    for q in LEVELS:
        bounds[q] = (lo_all[q], hi_all[q])
    held = pd.DataFrame(
        {
            "run_id": runs["run_id"].astype(str),
            "seq": runs["seq"].astype(int),
            "fold": fold,
            "observed": runs["value"].astype(float),
            "mean": mean_all,
            "lower": lo_all[0.9],
            "upper": hi_all[0.9],
        }
    )
    if len(runs) < 10:
        notes.append(f"only {len(runs)} runs on {dataset!r}: coverage estimates are rough")

    # 3. Trace.
    values = runs["value"].to_numpy(float)
    trace = pd.DataFrame(
        {"seq": runs["seq"].astype(int), "value": values, "best": _best_so_far(values, direction)}
    )

    # 4. Partial dependence under the learner, background = observed configs of the dataset.
    bg = _configs(runs)
    if len(bg) > background:
        bg = bg.sample(background, random_state=seed).reset_index(drop=True)
    pdp: dict[str, pd.DataFrame] = {}
    rows = learner.dataset_rows(dataset, warehouse)
    for spec in learner.encoder.specs:
        grid = _grid(spec, rows=rows)
        batch = pd.concat(
            [bg.assign(**{spec.name: [g] * len(bg)}) for g in grid], ignore_index=True
        )
        pred = learner.predict(dataset, batch, warehouse=warehouse, runs=runs, predictive=False)
        idx = np.repeat(np.arange(len(grid)), len(bg))
        agg = pred.assign(i=idx).groupby("i")[["mean", "lower", "upper"]].mean()
        pdp[spec.name] = pd.DataFrame(
            {
                "value": grid,
                "mean": agg["mean"].to_numpy(),
                "lower": agg["lower"].to_numpy(),
                "upper": agg["upper"].to_numpy(),
            }
        ).assign(kind=spec.kind, log=spec.log)

    # 5. Neighbours by meta-features.
    neighbours = None
    meta = warehouse.meta_features()
    if len(meta) and dataset in meta.index:
        neighbours = nearest_datasets(meta, dataset)
        counts = tm.groupby("dataset").size()
        neighbours["runs"] = [int(counts.get(d, 0)) for d in neighbours["dataset"]]
    else:
        notes.append(f"{dataset!r} has no meta-features: no similar datasets to show")

    # 6. Learning curves (runs that reported steps: finished and pruned).
    curves = warehouse.curves(dataset=dataset, model=model, metric=metric)
    curves = curves[["run_id", "status", "step", "value"]] if len(curves) else None

    return ReportData(
        metric=metric,
        model=model,
        dataset=dataset,
        direction=direction,
        method=learner.method,
        fit_note=fit_note,
        n_runs=len(tm),
        n_datasets=tm["dataset"].nunique(),
        fit_s=fit_s,
        heldout=held,
        calibration=_coverage(held, bounds),
        trace=trace,
        partial_dependence=pdp,
        neighbours=neighbours,
        notes=notes,
        learner_note=str(getattr(learner, "reuse_note", "") or ""),
        curves=curves,
    )


# ------------------------------------------------------------------------------------ render
def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(data: ReportData) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figs: dict[str, str] = {}
    h = data.heldout
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    inside = (h["observed"] >= h["lower"]) & (h["observed"] <= h["upper"])
    for mask, color, label in ((inside, "tab:blue", "inside 90%"), (~inside, "tab:red", "outside")):
        sub = h[mask]
        ax.errorbar(
            sub["observed"],
            sub["mean"],
            yerr=[sub["mean"] - sub["lower"], sub["upper"] - sub["mean"]],
            fmt="o",
            ms=4,
            color=color,
            ecolor=color,
            alpha=0.7,
            elinewidth=1,
            label=f"{label} ({len(sub)})",
        )
    lo = float(min(h["observed"].min(), h["lower"].min()))
    hi = float(max(h["observed"].max(), h["upper"].max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"observed {data.metric}")
    ax.set_ylabel(f"predicted {data.metric} (90% interval)")
    ax.set_title("Held-out predictions (K-fold within dataset)")
    ax.legend(fontsize=8)
    figs["pred"] = _png(fig)

    c = data.calibration
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.plot(c["nominal"], c["empirical"], "o-", color="tab:blue", label="meta-learner")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("empirical coverage")
    ax.set_title("Calibration")
    ax.legend(fontsize=8)
    figs["calib"] = _png(fig)

    t = data.trace
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = np.arange(1, len(t) + 1)
    ax.plot(x, t["value"], "o", ms=4, color="tab:gray", alpha=0.7, label="run")
    ax.step(x, t["best"], where="post", color="tab:green", lw=2, label="best so far")
    ax.set_xlabel("run (in logging order)")
    ax.set_ylabel(data.metric)
    ax.set_title(f"Optimization trace on {data.dataset}")
    ax.legend(fontsize=8)
    figs["trace"] = _png(fig)

    names = list(data.partial_dependence)
    if names:
        ncol = min(3, len(names))
        nrow = (len(names) + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.0 * nrow), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            p = data.partial_dependence[name]
            kind = str(p["kind"].iloc[0])
            if kind in ("categorical", "bool"):
                pos = np.arange(len(p))
                ax.errorbar(
                    pos,
                    p["mean"],
                    yerr=[p["mean"] - p["lower"], p["upper"] - p["mean"]],
                    fmt="o",
                    capsize=4,
                )
                ax.set_xticks(pos, [str(v) for v in p["value"]], rotation=30, fontsize=8)
            else:
                xv = p["value"].astype(float)
                ax.fill_between(xv, p["lower"], p["upper"], alpha=0.25)
                ax.plot(xv, p["mean"], lw=2)
                if bool(p["log"].iloc[0]):
                    ax.set_xscale("log")
            ax.set_title(name, fontsize=10)
            ax.set_ylabel(data.metric, fontsize=8)
        for ax in list(axes.flat)[len(names) :]:
            ax.axis("off")
        fig.suptitle("Partial dependence under the meta-learner (90% band)")
        fig.tight_layout()
        figs["pdp"] = _png(fig)

    if data.curves is not None and len(data.curves):
        figs["curves"] = _png(_curves_figure(data, plt))

    if data.neighbours is not None and len(data.neighbours):
        nb = data.neighbours.iloc[::-1]
        fig, ax = plt.subplots(figsize=(5.5, 0.35 * len(nb) + 1.2))
        ax.barh(nb["dataset"], nb["distance"], color="tab:purple")
        ax.set_xlabel("distance (standardized meta-features)")
        ax.set_title(f"Datasets most like {data.dataset}")
        figs["neighbours"] = _png(fig)
    return figs


def _curves_figure(data: ReportData, plt: Any) -> Any:
    """Each run's learning curve: finished runs in blue (the best one bold), pruned runs in
    red, ending where the pruner stopped them."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    finals = {}
    for (run_id, status), c in data.curves.groupby(["run_id", "status"], sort=False):
        pruned = status == "pruned"
        ax.plot(
            c["step"], c["value"], color="tab:red" if pruned else "tab:blue",
            alpha=0.6 if pruned else 0.35, lw=1, ls="--" if pruned else "-",
        )  # fmt: skip
        if pruned:
            ax.plot(c["step"].iloc[-1], c["value"].iloc[-1], "x", color="tab:red", ms=5)
        else:
            finals[run_id] = float(c["value"].iloc[-1])
    if finals:
        pick = max if data.direction == "maximize" else min
        best = pick(finals, key=finals.__getitem__)
        c = data.curves[data.curves["run_id"] == best]
        ax.plot(c["step"], c["value"], color="tab:blue", lw=2.5, label=f"best finished ({best})")
    counts = data.curves.drop_duplicates("run_id")["status"].value_counts()
    ax.plot([], [], color="tab:blue", lw=1, label=f"finished ({counts.get('finished', 0)})")
    ax.plot([], [], color="tab:red", lw=1, ls="--", label=f"pruned ({counts.get('pruned', 0)})")
    ax.set_xlabel("step")
    ax.set_ylabel(data.metric)
    ax.set_title(f"Learning curves on {data.dataset}")
    ax.legend(fontsize=8)
    return fig


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem} td,th{border:1px solid #ddd;padding:.2rem .5rem}
th{background:#f5f5f5} .note{color:#555;font-size:.9rem} img{max-width:100%}
.kv td:first-child{font-weight:600}
"""


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, escape=True)


def render_html(data: ReportData) -> str:
    """The report page for ``data`` (self-contained: inline CSS, base64 PNGs)."""
    figs = _figures(data)
    e = html.escape
    cov90 = data.calibration.set_index("nominal")["empirical"].get(0.9, float("nan"))
    summary = pd.DataFrame(
        {
            "": [
                "dataset",
                "model family",
                "metric",
                "runs (all datasets)",
                "datasets",
                "meta-learner",
                "fit",
                "held-out 90% coverage",
                "generated",
            ],
            "value": [
                data.dataset,
                data.model,
                f"{data.metric} ({data.direction})",
                str(data.n_runs),
                str(data.n_datasets),
                f"method={data.method}; {data.fit_note}",
                f"{data.fit_s:.1f} s",
                f"{cov90:.2f} over {len(data.heldout)} runs",
                _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            ],
        }
    )

    def img(key: str, alt: str) -> str:
        if key not in figs:
            return "<p class='note'>(nothing to plot)</p>"
        return f"<img alt='{e(alt)}' src='data:image/png;base64,{figs[key]}'>"

    best = data.trace["best"].iloc[-1] if len(data.trace) else float("nan")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>metaopt report: {e(data.dataset)}</title><style>{_CSS}</style></head><body>",
        f"<h1>metaopt report — {e(data.dataset)} / {e(data.model)} / {e(data.metric)}</h1>",
        f"<table class='kv'>{_table(summary)[_table(summary).index('<tbody>') :]}",
        *(f"<p class='note'>Note: {e(n)}</p>" for n in data.notes),
        "<h2>Predicted vs observed</h2>",
        "<p class='note'>Each run is predicted out-of-sample: the population model never saw "
        "this dataset (when others exist) and the dataset's coefficients are updated in closed "
        "form on the other folds' runs only.</p>",
        img("pred", "predicted vs observed"),
        "<h2>Calibration</h2>",
        img("calib", "calibration curve"),
        _table(data.calibration),
        "<h2>Optimization trace</h2>",
        f"<p>Best {e(data.metric)} so far: <b>{best:.4g}</b> after {len(data.trace)} runs.</p>",
        img("trace", "optimization trace"),
        *(
            [
                "<h2>Learning curves</h2>",
                "<p class='note'>The metric at each reported step; a pruned run stops where "
                "the pruner judged it unlikely to beat the best finished run.</p>",
                img("curves", "learning curves"),
            ]
            if data.curves is not None
            else []
        ),
        "<h2>Parameter effects</h2>",
        "<p class='note'>Partial dependence: the posterior mean averaged over this dataset's "
        "observed configurations with one parameter varied (Friedman 2001).</p>",
        img("pdp", "partial dependence"),
        "<h2>Similar datasets</h2>",
        img("neighbours", "nearest datasets"),
        _table(data.neighbours) if data.neighbours is not None else "",
        "<p class='note'>Generated by metaopt.</p></body></html>",
    ]
    return "\n".join(parts)


def build_report(warehouse: WarehouseLike, **kwargs: Any) -> str:
    """The HTML text of the report; keyword arguments as :func:`collect` (dataset, model,
    metric, learner, method, folds, seed, background, MetaLearner options)."""
    return render_html(collect(warehouse, **kwargs))


def write_report(warehouse: WarehouseLike, path: str | Path, **kwargs: Any) -> Path:
    """Write the report to ``path`` (``.html``); returns the path."""
    _check_path(path)
    return write_html(collect(warehouse, **kwargs), path)


def write_html(data: ReportData, path: str | Path) -> Path:
    """Write the report of ``data`` (:func:`collect`) to ``path`` (``.html``)."""
    out = _check_path(path)
    out.write_text(render_html(data), encoding="utf-8")
    return out


def _check_path(path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValidationError(f"report path {str(out)!r} should end in .html")
    if not out.parent.is_dir():
        raise NotFoundError(f"folder {str(out.parent)!r} does not exist")
    return out

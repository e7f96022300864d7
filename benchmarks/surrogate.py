"""Leave-datasets-out benchmark of the MetaLearner against baselines on shared meta-data.

Fits on 80% of the tasks (fixed seed), predicts every held-out configuration zero-shot and
after k = 5 and 20 observed runs of the held-out task (the fast closed-form update), and
prints one table: RMSE, mean within-task Spearman, NLPD and coverage of 50%/90% intervals.
All scores are on the model's transformed metric scale (logit for accuracy-like metrics in
[0, 1], log for errors/times), the scale every method predicts a Gaussian on; a value at a
bound of [0, 1] is moved inside by half its dataset's resolution, taken from all of the
dataset's runs, so the yardstick is the same for every method and k. The same k runs
are observed by every method; test points are the held-out task's runs outside the first 20
of a fixed permutation, identical for every k.

Baselines in the same split: the per-task mean (k ≥ 2; zero-shot: the pooled training mean),
a random forest over encoded parameters + meta-features with across-tree variance (SMAC,
Hutter et al. 2011), and a scikit-learn GP (Matérn-5/2 + white noise) on the target task's
observed runs only (k ≥ 5).

The learner is scored as it predicts: coefficients moment-matched to a Gaussian, observation
noise as its scale mixture over posterior draws and σ-nodes (NLPD from the mixture density,
intervals from its quantiles). A second table pairs the learner with each baseline on the same
held-out rows: the NLPD difference and the learner's 90% coverage, each with a standard error
clustered by task (a task's rows share its level, so the number of tasks, not of rows, sets
how precisely a zero-shot cell is known). ``--folds K`` holds out K of the five task fifths in
turn and pools the scores (a single 20% split holds out only ~6 tasks per tabrepo problem type,
too few to read a 90% coverage from).

    PYTHONPATH=. python benchmarks/surrogate.py [--quick] [--method map|nuts|advi|pathfinder]
        [--folds 1..5] [--only NAME] [--set KEY=VALUE]

``--speed`` instead times the issue's scale target: NUTS (default draws/tune/chains) on 50,000
runs over 100 datasets — all 47,000 openml100_rf runs of 94 tasks plus six of those tasks again
under new names — with compile and sampling apart, then the fast update on 20 runs plus
prediction for 100,000 candidate configs (best of ``--repeat``).

``--levels`` instead prints, in seconds, how well the meta-features predict each task's level
(its mean metric), leave one task out: ridge regressions on the standardized meta-features
against the pooled mean of the other tasks. Zero-shot scores rest mostly on that level.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import load_openml_rf, load_pmlb_suite, load_tabrepo, shared_data_dir
from metaopt_bayes import adapt
from metaopt_bayes.features import TargetTransform
from metaopt_bayes.model import MetaLearner

KS = (0, 5, 20)


def _scores(y: np.ndarray, m: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    s = np.maximum(s, 1e-6)
    return {
        "se": (y - m) ** 2,
        "nlpd": -norm.logpdf(y, m, s),
        "c50": np.abs(y - m) <= norm.ppf(0.75) * s,
        "c90": np.abs(y - m) <= norm.ppf(0.95) * s,
    }


def _learner_scores(ml: MetaLearner, ds: str, test: pd.DataFrame, obs: pd.DataFrame, meta):
    """The learner's predictive on the transformed (unstandardized) scale, scored as the
    product predicts it (:meth:`MetaLearner.predictive_components`: moment-matched
    coefficients plus the model discrepancy, the observation noise as its scale mixture, and
    the task GP's component when adapting): the mixture's mean and its components."""
    W, M, V = ml.predictive_components(ds, test, meta=meta, runs=obs)
    t = ml.transform
    M, V = t.center + t.scale * M, t.scale**2 * V
    return (W * M).sum(1), W, M, V


def _metric_coverage(a: dict, ml: MetaLearner, ds: str, test, obs, meta, se) -> None:
    """The product's 90% interval (:meth:`MetaLearner.predict`) on the metric's own scale:
    whether each held-out run lies inside it (``c90m``), and the same for the runs at the
    metric's bound alone (``c90b``, e.g. accuracy 1.0: inside when the interval reaches it);
    ``se``'s rows off the bound (``se_in``: a run at the bound is only "at least" there, so
    its squared error on the transformed scale is not an error of the prediction)."""
    p = ml.predict(ds, test, meta=meta, runs=obs)
    raw = ml._target(test)
    inside = (raw >= p["lower"].to_numpy()) & (raw <= p["upper"].to_numpy())
    at_bound = ml.transform.censored(raw) != 0
    a.setdefault("c90m", []).append(inside)
    a.setdefault("c90b", []).append(inside[at_bound])
    a.setdefault("se_in", []).append(se[~at_bound])


def _mixture_scores(y, m, W, M, V) -> dict[str, np.ndarray]:
    out = {"se": (y - m) ** 2, "nlpd": -adapt.mixture_logpdf(y, W, M, V)}
    for prob, key in ((0.5, "c50"), (0.9, "c90")):
        lo, hi = adapt.mixture_interval(W, M, V, prob)
        out[key] = (y >= lo) & (y <= hi)
    return out


def run_scenario(
    name, runs, meta, metric, method, seed, quick, rows, timings, paired, extra=None, folds=1,
    compare_adapt=(),
):  # fmt: skip
    """Score every method on ``folds`` of a 5-way task split (fold f holds out the f-th fifth
    of the shuffled tasks and fits on the rest); scores are pooled over the folds. ``rows``
    gets the pooled scores, ``paired`` the learner's NLPD against each baseline on the same
    rows, with standard errors clustered by held-out task."""
    rng = np.random.default_rng(seed)
    tasks = np.array(sorted(runs["dataset"].unique()))
    rng.shuffle(tasks)
    n_test = max(2, round(0.2 * len(tasks)))
    acc: dict[tuple[str, int], dict[str, list]] = {}
    for f in range(folds):
        test_tasks = tasks[f * n_test : (f + 1) * n_test] if f < 4 else tasks[4 * n_test :]
        train_tasks = np.setdiff1d(tasks, test_tasks)
        ml = _run_fold(
            name, runs, meta, metric, method, seed, quick, timings, extra,
            train_tasks, test_tasks, acc, compare_adapt,
        )  # fmt: skip
        if f == 0:
            first = (ml, tasks[:n_test])
    for (method_name, k), a in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows.append(
            {
                "scenario": name,
                "k": k,
                "method": method_name,
                "RMSE": float(np.sqrt(np.concatenate(a["se"]).mean())),
                "Spearman": float(np.nanmean(a["rho"])) if a["rho"] else float("nan"),
                "NLPD": float(np.concatenate(a["nlpd"]).mean()),
                "cov50": float(np.concatenate(a["c50"]).mean()),
                "cov90": float(np.concatenate(a["c90"]).mean()),
                **_metric_columns(a),
            }
        )
    learner = {k: a for (m_, k), a in acc.items() if m_ == "MetaLearner"}
    for (method_name, k), a in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if method_name == "MetaLearner":
            continue
        diff = [ml_ - b for ml_, b in zip(learner[k]["nlpd"], a["nlpd"], strict=True)]
        d, d_se = _clustered(diff)
        c90, c90_se = _clustered(learner[k]["c90"])
        paired.append(
            {
                "scenario": name,
                "k": k,
                "baseline": method_name,
                "tasks": len(diff),
                "NLPD learner - baseline": d,
                "s.e.": d_se,
                "learner cov90": c90,
                "cov90 s.e.": c90_se,
            }
        )
    return first


def _metric_columns(a: dict) -> dict:
    """``RMSE off bound``, ``cov90 metric`` (± s.e. clustered by task) and ``cov90 at bound``
    (with the number of such runs) when :func:`_metric_coverage` scored this method."""
    if "c90m" not in a:
        return {}
    c, se = _clustered(a["c90m"])
    bound = np.concatenate(a["c90b"])
    return {
        "RMSE off bound": float(np.sqrt(np.concatenate(a["se_in"]).mean())),
        "cov90 metric": c,
        "s.e.": se,
        "cov90 at bound": float(bound.mean()) if len(bound) else float("nan"),
        "runs at bound": len(bound),
    }


def _clustered(per_task: list[np.ndarray]) -> tuple[float, float]:
    """The mean over every held-out row and its standard error with rows clustered by task
    (the rows of one task share its level, so they are not independent draws)."""
    sums = np.array([np.sum(v, dtype=float) for v in per_task])
    sizes = np.array([len(v) for v in per_task], dtype=float)
    mean = sums.sum() / sizes.sum()
    t = len(per_task)
    resid = sums - sizes * mean
    return float(mean), float(np.sqrt(t / max(t - 1, 1) * np.sum(resid**2)) / sizes.sum())


def _run_fold(
    name, runs, meta, metric, method, seed, quick, timings, extra, train_tasks, test_tasks, acc,
    compare_adapt=(),
):  # fmt: skip
    train = runs[runs["dataset"].isin(train_tasks)]
    draws = {"draws": 500, "tune": 500} if quick else {}
    ml = MetaLearner(metric, method=method, seed=seed, **draws, **(extra or {}))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml.fit_frame(train, meta)
    d = ml.diagnostics
    timings.append(
        {
            "scenario": name,
            "method": method,
            "runs": d["n_runs"],
            "datasets": d["n_datasets"],
            "basis": d["n_basis"],
            "fit_s": time.perf_counter() - t0,
            "compile_s": d["compile_s"],
            "sample_s": d["sample_s"],
            "status": d["status"],
            "max_rhat": d["max_rhat"],
            "min_ess": d["min_ess"],
            "div": d["n_divergences"],
        }
    )

    # metric → transformed (unstandardized) scale; a value at a bound moves in by its dataset's
    # resolution, taken from all of the dataset's runs, so the yardstick is the same at every k
    yardstick = TargetTransform(ml.transform.kind, resolution=True)

    def g(df: pd.DataFrame) -> np.ndarray:
        return yardstick._g(ml._target(df), df["dataset"].to_numpy())

    # random forest features: linear encoded params + meta-features
    n_lin = 1 + len(ml.encoder._linear)

    def rf_X(df: pd.DataFrame, ds_names) -> np.ndarray:
        Z = ml.scaler.transform(meta, list(ds_names))[:, 1:]
        return np.hstack([ml.encoder.transform(df)[:, 1:n_lin], Z])

    from sklearn.ensemble import RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    rf_train = train.sample(n=min(len(train), 8000 if quick else 20000), random_state=seed)
    g_train = pd.Series(g(train), index=train.index)
    y_rf_train = g_train.loc[rf_train.index].to_numpy()
    pooled_m, pooled_s = float(g_train.mean()), float(g_train.std(ddof=0))

    def add(method_name, k, y, m, s, ds, scores=None):
        a = acc.setdefault(
            (method_name, k), {"se": [], "nlpd": [], "c50": [], "c90": [], "rho": []}
        )
        for key, val in (scores or _scores(y, m, s)).items():
            a[key].append(val)
        if np.std(m) > 0:
            a["rho"].append(spearmanr(y, m).statistic)

    for ds in test_tasks:
        task = runs[runs["dataset"] == ds].reset_index(drop=True)
        perm = np.random.default_rng(seed + 1).permutation(len(task))
        test = task.iloc[perm[20:]].reset_index(drop=True)
        g_task = g(task)
        y = g_task[perm[20:]]
        for k in KS:
            obs = task.iloc[perm[:k]].reset_index(drop=True)
            y_obs = g_task[perm[:k]]
            m, W, M, V = _learner_scores(ml, ds, test, obs, meta)
            add("MetaLearner", k, y, m, None, ds, _mixture_scores(y, m, W, M, V))
            _metric_coverage(acc[("MetaLearner", k)], ml, ds, test, obs, meta, (y - m) ** 2)
            for mode in compare_adapt or ():  # the same fit, another way to adapt
                kept = ml.config["adapt"]
                ml.config["adapt"] = mode
                m, W, M, V = _learner_scores(ml, ds, test, obs, meta)
                ml.config["adapt"] = kept
                add(f"MetaLearner adapt={mode}", k, y, m, None, ds, _mixture_scores(y, m, W, M, V))
            if k >= 2:
                add(
                    "task mean",
                    k,
                    y,
                    np.full(len(y), y_obs.mean()),
                    np.full(len(y), y_obs.std(ddof=1) * np.sqrt(1 + 1 / k)),
                    ds,
                )
            else:
                add("task mean", k, y, np.full(len(y), pooled_m), np.full(len(y), pooled_s), ds)
            Xtr = rf_X(rf_train, rf_train["dataset"])
            ytr = y_rf_train
            if k:
                Xtr = np.vstack([Xtr, rf_X(obs, [ds] * k)])
                ytr = np.concatenate([ytr, y_obs])
            rf = RandomForestRegressor(
                n_estimators=30 if quick else 50,
                min_samples_leaf=3,
                max_features=0.8,
                random_state=seed,
                n_jobs=1,
            )
            rf.fit(Xtr, ytr)
            Xte = rf_X(test, [ds] * len(test))
            per_tree = np.stack([t.predict(Xte) for t in rf.estimators_])
            add("RF (SMAC)", k, y, per_tree.mean(0), per_tree.std(0), ds)
            if k >= 5:
                Xo = ml.encoder.transform(obs)[:, 1:n_lin]
                kern = ConstantKernel() * Matern(nu=2.5, length_scale=np.ones(Xo.shape[1])) + (
                    WhiteKernel(1e-2)
                )
                gp = GaussianProcessRegressor(kern, normalize_y=True, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gp.fit(Xo, y_obs)
                gm, gs = gp.predict(ml.encoder.transform(test)[:, 1:n_lin], return_std=True)
                add("GP (Matérn)", k, y, gm, gs, ds)
    return ml


LEVEL_ALPHAS = (1.0, 10.0, 100.0, 1000.0)


def level_predictability(name: str, runs: pd.DataFrame, meta: pd.DataFrame, metric: str):
    """How much the meta-features tell about a task's level, the quantity a zero-shot
    prediction mostly rests on: each task's mean metric on the transformed scale, predicted
    leave-one-task-out by the pooled mean of the other tasks and by ridge regressions on the
    product's standardized meta-features (:class:`MetaFeatureScaler`, fitted on all tasks: it
    sees no metric). Rows: the RMSE of those predictions across tasks, and its ratio to the
    pooled mean's (below 1: the meta-features carry information about the level)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    from metaopt_bayes.features import MetaFeatureScaler

    groups = runs["dataset"].astype(str).to_numpy()
    y_raw = pd.to_numeric(runs["value"], errors="coerce").to_numpy(float)
    g = TargetTransform.fit(y_raw, metric, None, groups=groups)._g(y_raw, groups)
    level = pd.Series(g).groupby(groups).mean()
    tasks = list(level.index)
    Z = MetaFeatureScaler.fit(meta, tasks).transform(meta, tasks)[:, 1:]
    y = level.to_numpy()
    n = len(y)
    preds = {"pooled mean of the other tasks": (y.sum() - y) / (n - 1)}
    for a in LEVEL_ALPHAS:
        preds[f"ridge on meta-features, alpha={a:g}"] = cross_val_predict(
            Ridge(alpha=a), Z, y, cv=LeaveOneOut()
        )
    rmse = {k: float(np.sqrt(np.mean((v - y) ** 2))) for k, v in preds.items()}
    pooled = rmse["pooled mean of the other tasks"]
    return [
        {
            "scenario": name,
            "tasks": n,
            "meta-features": Z.shape[1],
            "level sd": float(y.std(ddof=1)),
            "predictor": k,
            "RMSE": v,
            "RMSE / pooled": v / pooled,
        }
        for k, v in rmse.items()
    ]


def speed_update(ml: MetaLearner, runs: pd.DataFrame, meta, ds: str) -> dict[str, float]:
    """Seconds for the few-shot update on 20 runs + predict of 100k candidate configs."""
    task = runs[runs["dataset"] == ds]
    cands = task.sample(n=100_000, replace=True, random_state=0).reset_index(drop=True)
    obs = task.head(20)
    ml.predict(ds, cands.head(10), meta=meta, runs=obs)  # warm
    t0 = time.perf_counter()
    ml.predict(ds, cands, meta=meta, runs=obs)
    t_pred = time.perf_counter() - t0
    return {"update+predict 100k (s)": t_pred}


def speed(method: str, repeat: int, extra: dict) -> None:
    """The scale benchmark (see the module docstring); prints one table."""
    runs, meta = load_openml_rf(shared_data_dir())
    tasks = sorted(runs["dataset"].unique())
    extra_tasks = tasks[: 100 - len(tasks)]
    copies = []
    for t in extra_tasks:
        c = runs[runs["dataset"] == t].copy()
        c["dataset"] = f"{t}_copy"
        c["run_id"] = c["run_id"] + "_copy"
        copies.append(c)
        if t in meta.index:
            meta.loc[f"{t}_copy"] = meta.loc[t]
    runs = pd.concat([runs, *copies], ignore_index=True)
    runs = runs.groupby("dataset").head(50_000 // 100).reset_index(drop=True)
    print(f"… {len(runs)} runs over {runs['dataset'].nunique()} datasets", file=sys.stderr)
    rows = []
    for _ in range(repeat):
        ml = MetaLearner("predictive_accuracy", method=method, **extra)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml.fit_frame(runs, meta)
        fit_total = time.perf_counter() - t0
        d = ml.diagnostics
        upd = min(
            speed_update(ml, runs, meta, tasks[0])["update+predict 100k (s)"] for _ in range(5)
        )
        rows.append(
            {
                "runs": d["n_runs"],
                "datasets": d["n_datasets"],
                "method": method,
                "compile_s": d["compile_s"],
                "sample_s": d["sample_s"],
                "fit_total_s": fit_total,
                "max_rhat": d["max_rhat"],
                "min_ess": d["min_ess"],
                "divergences": d["n_divergences"],
                "leapfrog/draw": d.get("mean_leapfrog_steps"),
                "update+predict 100k (s)": upd,
            }
        )
        print(pd.DataFrame(rows[-1:]).to_string(index=False), file=sys.stderr, flush=True)
    print("\n## Scale: fit and update timings (one row per repeat)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--method", default="nuts", choices=["map", "nuts", "advi", "pathfinder"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="run only scenarios whose name contains this")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="MetaLearner option, e.g. --set prior_meta=0.1 (repeatable)",
    )
    ap.add_argument(
        "--folds",
        type=int,
        default=1,
        choices=range(1, 6),
        help="how many of the 5 task folds to hold out in turn (scores pooled; default 1)",
    )
    ap.add_argument("--speed", action="store_true", help="the 50k-runs/100-datasets timing")
    ap.add_argument(
        "--levels",
        action="store_true",
        help="only the table of how well the meta-features predict a task's level (seconds)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="--speed repeats")
    ap.add_argument(
        "--compare-adapt",
        default="",
        help="also score the same fit with these adapt modes (e.g. off,rank), paired",
    )
    ap.add_argument(
        "--pmlb",
        default="",
        help="PMLB suites of benchmarks/data to add, e.g. knn,logistic_regression",
    )
    ap.add_argument("--pmlb-split", default="dev", choices=["dev", "holdout", "all"])
    args = ap.parse_args()
    import json

    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    compare_adapt = [m for m in args.compare_adapt.split(",") if m]
    args.pmlb = [f for f in args.pmlb.split(",") if f]
    if args.speed:
        speed(args.method, args.repeat, extra)
        return
    root = shared_data_dir()
    if root is None:
        sys.exit("shared data not found: set METAOPT_SHARED_DATA")
    scenarios = []
    rf_runs, rf_meta = load_openml_rf(root)
    if args.quick:
        keep = sorted(rf_runs["dataset"].unique())[:30]
        rf_runs = rf_runs[rf_runs["dataset"].isin(keep)]
        rf_runs = rf_runs.groupby("dataset").head(150)
    scenarios.append(("openml100_rf accuracy", rf_runs, rf_meta, "predictive_accuracy"))
    err_runs, tab_meta = load_tabrepo(root, "metric_error")
    for ptype in ("binary", "multiclass", "regression"):
        sub = err_runs[err_runs["problem_type"] == ptype]
        scenarios.append((f"tabrepo metric_error {ptype}", sub, tab_meta, "metric_error"))
    time_runs, _ = load_tabrepo(root, "time_train_s")
    scenarios.append(("tabrepo time_train_s", time_runs, tab_meta, "duration_s"))
    for family in args.pmlb:
        runs_, meta_ = load_pmlb_suite(family, args.pmlb_split)
        scenarios.append((f"pmlb_{family} accuracy ({args.pmlb_split})", runs_, meta_, "accuracy"))
    if args.quick:
        scenarios = [scenarios[0], scenarios[1], scenarios[-1]]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s[0]]
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 20)
    if args.levels:
        levels = [r for sc in scenarios for r in level_predictability(*sc)]
        print("\n## Task levels predicted leave-one-task-out (transformed metric scale)")
        print(pd.DataFrame(levels).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    rows, timings, paired = [], [], []
    for name, runs, meta, metric in scenarios:
        print(f"… {name} ({len(runs)} runs)", file=sys.stderr, flush=True)
        ml, test_tasks = run_scenario(
            name,
            runs,
            meta,
            metric,
            args.method,
            args.seed,
            args.quick,
            rows,
            timings,
            paired,
            extra,
            args.folds,
            compare_adapt,
        )
        timings[-1].update(speed_update(ml, runs, meta, str(test_tasks[0])))
    print("\n## Leave-datasets-out accuracy (transformed metric scale)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n## Paired on the same held-out rows (s.e. clustered by task)")
    print(pd.DataFrame(paired).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\n## Fit and update timings")
    print(pd.DataFrame(timings).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()

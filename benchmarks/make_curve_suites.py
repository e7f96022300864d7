"""Real learning curves on PMLB: shared pools of configurations per model family.

For every classification dataset of the shared PMLB folder (``<shared>/data/pmlb``, cheapest
first) and every family asked for, ONE pool of ``--configs`` configurations (scrambled Sobol,
seed 0 — the *same* configs on every dataset) is trained once on a fixed train/validation
split, and the validation ``accuracy`` and ``log_loss`` are recorded at every step of
training: a learning curve per run. The datasets, their row cap and their dev/holdout split
are those of ``make_pmlb_suites.py`` (whose loaders this script imports), so
``pmlb_splits.csv`` and ``pmlb_meta.parquet`` describe these datasets too.

Families (parameter names and model names of the product zoo, ``metaopt_bayes/zoo.py``;
``u`` is the Sobol coordinate in [0, 1)):

``mlp`` — ``StandardScaler`` → ``MLPClassifier(hidden_layer_sizes=(width,) * n_layers)``
    * ``n_layers``: 1–3 uniform integer.  ``width``: 16–256 log-uniform integer.
    * ``activation``: relu / tanh / logistic.  ``alpha``: 1e-6–1e-1 log-uniform.
    * ``learning_rate_init``: 1e-4–1e-1 log-uniform.  ``batch_size``: 32–256 log-uniform
      integer (scikit-learn clips it to the training rows).
    * fixed (recorded as params): ``solver`` adam (the default), ``max_iter`` = ``--epochs``
      (40), ``early_stopping`` false.
    * trained by ``partial_fit``, ONE EPOCH PER STEP, steps 1..``--epochs``; no convergence
      stop. ``random_state`` is ``np.random.RandomState(0)`` rather than the integer 0: the
      initial weights and the first epoch are those of ``random_state=0``, and each later
      epoch draws a fresh shuffle (with an integer, every ``partial_fit`` call restarts the
      generator and repeats the first epoch's order).
``hist_gradient_boosting`` — ``HistGradientBoostingClassifier(max_iter=200,
early_stopping=False, random_state=0)``
    * ``learning_rate``: 0.01–0.5 log-uniform.  ``max_leaf_nodes``: 8–128 log-uniform
      integer.  ``min_samples_leaf``: 2–100 log-uniform integer.  ``l2_regularization``:
      1e-6–10 log-uniform.  ``max_features``: 0.2–1.0 uniform (fraction of features per
      split).  ``max_iter`` = 200 and ``early_stopping`` false are recorded as params.
    * fitted once; the curve is read with ``staged_predict_proba`` on the validation rows
      every 5 boosting iterations: steps 5, 10, ..., 200 (step = iterations; a multi-class
      iteration grows one tree per class).

Evaluation: each dataset (capped at ``--max-rows`` = 2000 rows by the stratified subsample of
``make_pmlb_suites.load_dataset``, labels coded 0..K-1) is split once: the validation rows
are the first fold of ``StratifiedKFold(3, shuffle=True, random_state=0)`` (1/3), the rest
train (2/3) — the same split for every config and family. At each step: ``accuracy`` of the
arg-max of the probabilities over all K classes, and ``log_loss`` with probabilities clipped
to [1e-15, 1] and renormalised (``make_pmlb_suites.fold_scores``; a class absent from the
training rows gets probability 0 before clipping). ``elapsed_s`` is the cumulative training
wall time up to the step, evaluation excluded: for the MLP the scaler fit plus the
``partial_fit`` calls so far; for boosting the clock at the end of the step's iteration since
the start of ``fit`` (recorded by a subclass hook at each iteration's end, where
``verbose=2`` would print), so the binning is in the first step, and ``elapsed_s`` at step
200 is the whole fit time.

Outputs in ``--out`` (default ``benchmarks/data``), zstd Parquet:

* ``pmlb_curves_<family>_runs.parquet``: one row per dataset × config in the MLflow layout
  that ``Warehouse.log_runs`` / ``metaopt ingest`` take: ``run_id``
  (``pmlb-curves-<family>-<dataset>-<config>``), ``dataset``, ``model``, ``params.<name>``,
  ``metrics.accuracy`` and ``metrics.log_loss`` (the values at the LAST step),
  ``duration_s`` (total training wall time = ``elapsed_s`` of the last step), ``cpu_s``
  (process CPU time of the training), ``seed``, ``source`` and ``tags.config_id`` (the pool
  index, shared across datasets).
* ``pmlb_curves_<family>.parquet``: the curves, long, like an MLflow metric history:
  ``run_id, metric, step, value, elapsed_s`` with ``metric`` in {accuracy, log_loss}.

Run: configs are evaluated by ``--jobs`` worker processes (default 2, one BLAS/OpenMP thread
each), datasets cheapest first, each dataset's families in ``--families`` order. Resumable:
as soon as a dataset × family is complete its curves are written to ``--work``
(``benchmarks/out/curve_parts/<family>/<dataset>.parquet``, atomically; its run rows to
``<family>_runs/<dataset>.parquet`` just before) and a restart skips it. The outputs are
re-assembled from the parts after every part.

Made on 2026-12-07 (metaopt 0.4.0, scikit-learn 1.9.1): all 59 datasets × 32 configs × both
families took 28.5 min wall with 2 workers under ``nice -n 19`` on a 2-core machine shared
with other jobs (training: MLP 19.0 min wall / 9.1 min cpu, boosting 32.5 / 15.1, summed over
runs; the workers got about half a core each). ``check`` prints these and how early the
curves rank the configs; ``benchmarks/data/README.md`` documents the files.

Usage::

    PYTHONPATH=. nice -n 19 python benchmarks/make_curve_suites.py --jobs 2
    PYTHONPATH=. python benchmarks/make_curve_suites.py --check
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

# one thread per process (a shared machine): set before numpy/scikit-learn load their
# BLAS/OpenMP runtimes
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.make_pmlb_suites import (  # noqa: E402
    SEED,
    _choice,
    _concat,
    _log_int,
    _log_uniform,
    _sobol,
    _uniform_int,
    _write_atomic,
    classification_datasets,
    fold_scores,
    load_dataset,
)

FAMILIES = ("mlp", "hist_gradient_boosting")
METRICS = ("accuracy", "log_loss")
SOURCE = "benchmarks/make_curve_suites.py"
MIN_PER_CLASS = 5  # the subsample of make_pmlb_suites (its --folds): same rows
VALID_FOLDS = 3  # validation = first fold of StratifiedKFold(3): 1/3 of the rows
HGB_ITER, HGB_EVERY = 200, 5


# --------------------------------------------------------------------------------- spaces
def family_pool(family: str, n: int, epochs: int, seed: int = SEED) -> pd.DataFrame:
    """The shared pool of ``n`` configs of ``family`` (index = config_id). See module doc."""
    if family == "mlp":
        u = _sobol(6, n, seed)
        pool = {
            "n_layers": _uniform_int(u[:, 0], 1, 3),
            "width": _log_int(u[:, 1], 16, 256),
            "activation": _choice(u[:, 2], ("relu", "tanh", "logistic")),
            "alpha": _log_uniform(u[:, 3], 1e-6, 1e-1),
            "learning_rate_init": _log_uniform(u[:, 4], 1e-4, 1e-1),
            "batch_size": _log_int(u[:, 5], 32, 256),
            "solver": ["adam"] * n,
            "max_iter": np.full(n, epochs),
            "early_stopping": [False] * n,
        }
    elif family == "hist_gradient_boosting":
        u = _sobol(5, n, seed)
        pool = {
            "learning_rate": _log_uniform(u[:, 0], 0.01, 0.5),
            "max_leaf_nodes": _log_int(u[:, 1], 8, 128),
            "min_samples_leaf": _log_int(u[:, 2], 2, 100),
            "l2_regularization": _log_uniform(u[:, 3], 1e-6, 10.0),
            "max_features": 0.2 + u[:, 4] * 0.8,
            "max_iter": np.full(n, HGB_ITER),
            "early_stopping": [False] * n,
        }
    else:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    out = pd.DataFrame(pool)
    out.index.name = "config_id"
    return out


# ----------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=2)
def split_dataset(name: str, max_rows: int) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_valid, y_valid`` of a dataset, and its class count ``k``."""
    from sklearn.model_selection import StratifiedKFold

    frame, _ = load_dataset(name, max_rows, MIN_PER_CLASS)
    x = frame.drop(columns="target").to_numpy(dtype=float)
    y = frame["target"].to_numpy()
    cv = StratifiedKFold(VALID_FOLDS, shuffle=True, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer than 3 rows
        train, valid = next(cv.split(x, y))
    return x[train], y[train], x[valid], y[valid], int(y.max()) + 1


def _scores(y: np.ndarray, part: np.ndarray, classes: np.ndarray, k: int) -> dict[str, float]:
    proba = np.zeros((len(y), k))
    proba[:, classes] = part
    pred = np.argmax(proba, axis=1)
    s = fold_scores(y, pred, proba, k)
    return {m: float(s[m]) for m in METRICS}


# ------------------------------------------------------------------------------ training
def _curve_mlp(cfg: dict[str, Any], data: tuple) -> tuple[list, list, float]:
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x_tr, y_tr, x_va, y_va, k = data
    width, n_layers = int(cfg["width"]), int(cfg["n_layers"])
    est = MLPClassifier(
        hidden_layer_sizes=(width,) * n_layers,
        activation=cfg["activation"],
        alpha=float(cfg["alpha"]),
        learning_rate_init=float(cfg["learning_rate_init"]),
        batch_size=int(cfg["batch_size"]),
        solver=cfg["solver"],
        max_iter=int(cfg["max_iter"]),
        early_stopping=False,
        random_state=np.random.RandomState(SEED),
    )
    classes = np.arange(k)
    steps, elapsed, scores = [], [], []
    c0 = time.process_time()
    t0 = time.perf_counter()
    scaler = StandardScaler().fit(x_tr)
    xs_tr = scaler.transform(x_tr)
    wall = time.perf_counter() - t0
    xs_va = scaler.transform(x_va)
    cpu = time.process_time() - c0
    for epoch in range(1, int(cfg["max_iter"]) + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        est.partial_fit(xs_tr, y_tr, classes=classes)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        steps.append(epoch)
        elapsed.append(wall)
        scores.append(_scores(y_va, est.predict_proba(xs_va), est.classes_, k))
    return steps, list(zip(elapsed, scores, strict=True)), cpu


def _timed_hgb() -> type:
    """``HistGradientBoostingClassifier`` that keeps the clock time at the end of every
    boosting iteration (``verbose >= 2`` calls ``_print_iteration_stats`` there; this
    override records instead of printing)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    class TimedHGB(HistGradientBoostingClassifier):
        def _print_iteration_stats(self, iteration_start_time: float) -> None:
            self.iteration_ends_.append(time.time())

    return TimedHGB


def _curve_hgb(cfg: dict[str, Any], data: tuple) -> tuple[list, list, float]:
    x_tr, y_tr, x_va, y_va, k = data
    est = _timed_hgb()(
        learning_rate=float(cfg["learning_rate"]),
        max_leaf_nodes=int(cfg["max_leaf_nodes"]),
        min_samples_leaf=int(cfg["min_samples_leaf"]),
        l2_regularization=float(cfg["l2_regularization"]),
        max_features=float(cfg["max_features"]),
        max_iter=int(cfg["max_iter"]),
        early_stopping=False,
        random_state=SEED,
        verbose=2,  # for the iteration times; the rest of its printing is swallowed
    )
    est.iteration_ends_ = []
    c0, t0 = time.process_time(), time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        est.fit(x_tr, y_tr)
    wall = time.time() - t0
    cpu = time.process_time() - c0
    ends = np.asarray(est.iteration_ends_) - t0
    if len(ends) != est.n_iter_:
        raise RuntimeError(f"{len(ends)} iteration times for {est.n_iter_} iterations")
    ends[-1] = wall  # the last step takes the whole fit
    steps, points = [], []
    for i, part in enumerate(est.staged_predict_proba(x_va), start=1):
        if i % HGB_EVERY == 0:
            steps.append(i)
            points.append((float(ends[i - 1]), _scores(y_va, part, est.classes_, k)))
    return steps, points, cpu


def run_config(
    family: str, cfg: dict[str, Any], name: str, cid: int, max_rows: int
) -> tuple[dict, pd.DataFrame]:
    """One config on one dataset: its run row and its curve rows."""
    data = split_dataset(name, max_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning and the like
        if family == "mlp":
            steps, points, cpu = _curve_mlp(cfg, data)
        else:
            steps, points, cpu = _curve_hgb(cfg, data)
    run_id = f"pmlb-curves-{family}-{name}-{cid:04d}"
    last = points[-1][1]
    run = {
        "run_id": run_id,
        "dataset": name,
        "model": family,
        "tags.config_id": cid,
        **{f"params.{k}": v for k, v in cfg.items()},
        **{f"metrics.{m}": last[m] for m in METRICS},
        "duration_s": points[-1][0],
        "cpu_s": cpu,
        "seed": SEED,
        "source": SOURCE,
    }
    curve = pd.DataFrame(
        [
            {"run_id": run_id, "metric": m, "step": s, "value": sc[m], "elapsed_s": t}
            for m in METRICS
            for s, (t, sc) in zip(steps, points, strict=True)
        ]
    )
    return run, curve


def _worker_init() -> None:
    import sklearn.ensemble
    import sklearn.neural_network  # noqa: F401  (load the runtimes, then limit them)
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(limits=1)


# ------------------------------------------------------------------------------ files
def assemble(work: Path, out: Path) -> None:
    """Rebuild the outputs in ``out`` from the part files in ``work``."""
    out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        done = sorted((work / family).glob("*.parquet"))
        if not done:
            continue
        runs = _concat([work / f"{family}_runs" / p.name for p in done])
        runs = runs.sort_values(["dataset", "tags.config_id"]).reset_index(drop=True)
        _write_atomic(runs, out / f"pmlb_curves_{family}_runs.parquet")
        curves = _concat(done)
        curves = curves.sort_values(["run_id", "metric", "step"]).reset_index(drop=True)
        _write_atomic(curves, out / f"pmlb_curves_{family}.parquet")


# ------------------------------------------------------------------------------ check
def _early_agreement(curves: pd.DataFrame, runs: pd.DataFrame) -> tuple[float, float, float]:
    """Per dataset: is the best (validation accuracy) config at 25% of the steps the best at
    the end (ties count), is the final best among the top 3 at 25%, and the Spearman
    correlation of the accuracies at 25% and at the end; fractions / median over datasets."""
    acc = curves[curves["metric"] == "accuracy"]
    steps = np.sort(acc["step"].unique())
    early_step, last_step = steps[max(0, len(steps) // 4 - 1)], steps[-1]
    ds = runs.set_index("run_id")["dataset"]
    wide = acc[acc["step"].isin([early_step, last_step])].pivot(
        index="run_id", columns="step", values="value"
    )
    wide["dataset"] = ds.reindex(wide.index).to_numpy()
    top1, top3, rho = [], [], []
    for _, g in wide.groupby("dataset"):
        early, last = g[early_step], g[last_step]
        top1.append(bool(last[early == early.max()].max() == last.max()))
        top3.append(bool(last[early.rank(ascending=False, method="min") <= 3].max() == last.max()))
        rho.append(early.rank().corr(last.rank()))
    return float(np.mean(top1)), float(np.mean(top3)), float(np.nanmedian(rho))


def check(out: Path, configs: int) -> int:
    """Every file loads; each (dataset, config) once; params shared per config; every run has
    both metrics at every step, no NaN, values in range, elapsed_s non-decreasing; the runs'
    metrics are the curves' last values; the datasets are those of pmlb_splits.csv. Prints
    coverage and how early the curves rank the configs; returns the exit code."""
    problems: list[str] = []
    splits = pd.read_csv(out / "pmlb_splits.csv")
    for family in FAMILIES:
        rpath = out / f"pmlb_curves_{family}_runs.parquet"
        cpath = out / f"pmlb_curves_{family}.parquet"
        if not (rpath.exists() and cpath.exists()):
            print(f"{family:>22}: no files")
            continue
        runs, curves = pd.read_parquet(rpath), pd.read_parquet(cpath)
        if runs.duplicated(["dataset", "tags.config_id"]).any() or runs.run_id.duplicated().any():
            problems.append(f"{rpath.name}: a (dataset, config) or run_id appears twice")
        per = runs.groupby("dataset")["tags.config_id"].nunique()
        if (per != configs).any():
            problems.append(f"{rpath.name}: {(per != configs).sum()} dataset(s) lack configs")
        if set(runs["dataset"]) != set(splits["dataset"]):
            problems.append(f"{rpath.name}: datasets differ from pmlb_splits.csv")
        params = [c for c in runs.columns if c.startswith("params.")]
        if runs.groupby("tags.config_id")[params].nunique(dropna=False).max().max() > 1:
            problems.append(f"{rpath.name}: a config_id has different params across datasets")
        if set(runs["model"]) != {family}:
            problems.append(f"{rpath.name}: model column is not {family!r}")
        numeric = ["metrics.accuracy", "metrics.log_loss", "duration_s", "cpu_s"]
        if runs[numeric].isna().any().any() or not (runs["duration_s"] > 0).all():
            problems.append(f"{rpath.name}: NaN metric or non-positive duration")
        if list(curves.columns) != ["run_id", "metric", "step", "value", "elapsed_s"]:
            problems.append(f"{cpath.name}: columns {list(curves.columns)}")
        if curves.isna().any().any():
            problems.append(f"{cpath.name}: NaN")
        if set(curves["run_id"]) != set(runs["run_id"]) or set(curves["metric"]) != set(METRICS):
            problems.append(f"{cpath.name}: run_ids or metrics differ from the runs file")
        expected = sorted(curves["step"].unique())
        if curves.duplicated(["run_id", "metric", "step"]).any():
            problems.append(f"{cpath.name}: a (run_id, metric, step) appears twice")
        counts = curves.groupby(["run_id", "metric"])["step"].nunique()
        if len(counts) != len(runs) * len(METRICS) or (counts != len(expected)).any():
            problems.append(f"{cpath.name}: a curve lacks steps (expected {len(expected)})")
        acc = curves.loc[curves["metric"] == "accuracy", "value"]
        if not (acc.between(0, 1).all() and (curves["value"] >= 0).all()):
            problems.append(f"{cpath.name}: a value out of range")
        ordered = curves.sort_values(["run_id", "metric", "step"])
        if (ordered.groupby(["run_id", "metric"])["elapsed_s"].diff().dropna() < 0).any():
            problems.append(f"{cpath.name}: elapsed_s decreases along a curve")
        last = ordered.groupby(["run_id", "metric"]).tail(1)
        last = last.pivot(index="run_id", columns="metric", values="value")
        r = runs.set_index("run_id").loc[last.index]
        for m in METRICS:
            if not np.allclose(last[m], r[f"metrics.{m}"]):
                problems.append(f"{rpath.name}: metrics.{m} is not the curve's last value")
        top1, top3, rho = _early_agreement(curves, runs)
        best = runs.groupby("dataset")["metrics.accuracy"]
        gap = best.max() - best.median()
        print(
            f"{family:>22}: {per.size} datasets x {runs['tags.config_id'].nunique()} configs = "
            f"{len(runs)} runs, {len(curves)} curve rows (steps {expected[0]}..{expected[-1]}); "
            f"{runs['duration_s'].sum() / 60:.1f} min training, {runs['cpu_s'].sum() / 60:.1f} "
            f"min cpu; final best - median accuracy per dataset min/median/max "
            f"{gap.min():.3f}/{gap.median():.3f}/{gap.max():.3f}; best at 25% of the steps "
            f"is best at the end on {top1:.0%} of datasets, in the top 3 at 25% on {top3:.0%}; "
            f"median Spearman(25%, end) {rho:.2f}"
        )
    for p in problems:
        print("PROBLEM:", p)
    print("check:", "ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--datasets", default=None, help="comma-separated names (default all)")
    ap.add_argument("--configs", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=40, help="MLP epochs (steps)")
    ap.add_argument("--max-rows", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "curve_parts")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--check", action="store_true", help="only check the files in --out")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out, args.configs)

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f not in FAMILIES:
            ap.error(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    datasets = list(classification_datasets(None)["dataset"])
    if args.datasets:
        wanted = args.datasets.split(",")
        unknown = sorted(set(wanted) - set(datasets))
        if unknown:
            ap.error(f"unknown dataset(s): {', '.join(unknown)}")
        datasets = [d for d in datasets if d in wanted]
    pools = {f: family_pool(f, args.configs, args.epochs).to_dict("records") for f in families}
    stamp = f"configs={args.configs} epochs={args.epochs} max_rows={args.max_rows} seed={SEED}"
    stamp_file = args.work / "SETTINGS"
    if stamp_file.exists() and stamp_file.read_text().strip() != stamp:
        raise SystemExit(f"{args.work} holds parts made with {stamp_file.read_text().strip()}")
    args.work.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(stamp + "\n")

    todo = [
        (name, f)
        for name in datasets
        for f in families
        if not (args.work / f / f"{name}.parquet").exists()
    ]
    print(f"{len(todo)} dataset x family parts to make, {args.jobs} workers, {stamp}", flush=True)
    t_start = time.perf_counter()
    results: dict[tuple[str, str], dict[int, tuple]] = {key: {} for key in todo}
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
        futures = {
            pool.submit(run_config, f, cfg, name, cid, args.max_rows): (name, f, cid)
            for name, f in todo
            for cid, cfg in enumerate(pools[f])
        }
        try:
            for fut in as_completed(futures):
                name, f, cid = futures[fut]
                got = results[(name, f)]
                got[cid] = fut.result()
                if len(got) < args.configs:
                    continue
                runs = pd.DataFrame([got[c][0] for c in range(args.configs)])
                curves = pd.concat([got[c][1] for c in range(args.configs)], ignore_index=True)
                _write_atomic(runs, args.work / f"{f}_runs" / f"{name}.parquet")
                _write_atomic(curves, args.work / f / f"{name}.parquet")
                del results[(name, f)]
                assemble(args.work, args.out)
                print(
                    f"{f} {name}: {runs['duration_s'].sum():.1f}s training, "
                    f"best final acc {runs['metrics.accuracy'].max():.3f}; "
                    f"total {(time.perf_counter() - t_start) / 60:.1f} min",
                    flush=True,
                )
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    assemble(args.work, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

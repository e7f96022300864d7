"""Real meta-data on PMLB: shared pools of configurations per model family, cross-validated.

For every classification dataset of the shared PMLB folder (``<shared>/data/pmlb``, smallest
first), and every family asked for, ONE pool of ``--configs`` configurations (scrambled Sobol,
seed 0 — the *same* configs on every dataset: a lookup table) is evaluated with ``--folds``
stratified cross-validation (seed 0; the same folds for every config and family of a dataset).

Families and their search spaces (``u`` is the Sobol coordinate in [0, 1)):

``knn`` — ``StandardScaler`` → ``KNeighborsClassifier``
    * ``n_neighbors``: 1–50, log-uniform integer (``floor(51**u)``, clipped to 1..50). On a
      dataset whose training fold is smaller than k, k is capped at the fold size (every
      training row votes); ``params.n_neighbors`` keeps the pool value.
    * ``weights``: uniform / distance.  ``p``: 1 (Manhattan) / 2 (Euclidean).
``logistic_regression`` — ``StandardScaler`` → ``LogisticRegression``
    * ``C``: 1e-4–1e3 log-uniform.  ``class_weight``: none / balanced.
    * fixed: ``penalty='l2'``, ``solver='lbfgs'``, ``max_iter=300`` (recorded as a param;
      non-converged fits are kept as they are, as a user with that budget would get them).
``extra_trees`` — ``ExtraTreesClassifier(n_estimators=64, n_jobs=1, random_state=0)``
    * ``max_features``: 0.05–1.0 uniform (fraction of features).
    * ``min_samples_leaf``: 1–20 log-uniform integer.  ``min_samples_split``: 2–20 uniform
      integer.  ``bootstrap``: false / true.  ``criterion``: gini / entropy.
    * ``n_estimators`` = 64 is recorded as a (constant) param.
``svc`` — ``StandardScaler`` → ``SVC(kernel='rbf')``
    * ``C``: 1e-3–1e3 log-uniform.  ``gamma``: 1e-4–10 log-uniform.
    * ``probability=False`` (Platt scaling would cost ~5x), so SVC runs have no
      ``metrics.log_loss`` (the column is absent from ``pmlb_svc.parquet``).

Data: each dataset is capped at ``--max-rows`` rows by a stratified subsample (seed 0; every
class keeps at least ``min(count, folds)`` rows). Labels are coded 0..K-1. PMLB features are
all numeric and complete.

Metrics (mean over folds): ``accuracy``, ``balanced_accuracy``, ``f1_macro`` and ``log_loss``
(probabilities clipped to [1e-15, 1] and renormalised; a class missing from a training fold
gets probability 0 → clipped). ``duration_s`` is the wall time of fit + predict (+
predict_proba) summed over the folds, ``cpu_s`` the process CPU time of the same.

Outputs in ``--out`` (default ``benchmarks/data``):

* ``pmlb_<family>.parquet`` (zstd): one row per dataset × config in the MLflow layout that
  ``Warehouse.log_runs`` / ``metaopt ingest`` take unchanged: ``run_id`` (stable:
  ``pmlb-<family>-<dataset>-<config>``), ``dataset``, ``model``, ``params.<name>``,
  ``metrics.<name>``, ``duration_s``, ``cpu_s``, ``seed``, ``source`` and ``tags.config_id``
  (the pool index, shared across datasets; a ``tags.`` column because the ingest refuses
  unknown columns and ignores ``tags.*``).
* ``pmlb_meta.parquet``: the product's meta-features (``warehouse.metafeatures.
  compute_meta_features``, as ``register_dataset`` calls it) of each subsampled dataset, wide,
  one row per dataset (column ``dataset`` + one column per meta-feature).
* ``pmlb_splits.csv``: ``dataset, split, n_rows_original, n_rows, n_features, n_classes``;
  ``split`` is ``holdout`` when ``sha256(name) % 3 == 0``, else ``dev``.

Datasets are visited smallest first and, within a dataset, the families in ``--families``
order (run the cheap families first in one invocation, the costly ones in later ones).
Resumable: each finished dataset × family is written to ``--work``
(``benchmarks/out/pmlb_parts/<family>/<dataset>.parquet``, atomically); a restart skips those.
The outputs are re-assembled from the parts after every dataset.

Usage::

    PYTHONPATH=. nice -n 19 python benchmarks/make_pmlb_suites.py \\
        --families knn,logistic_regression,extra_trees,svc --jobs 1
    PYTHONPATH=. python benchmarks/make_pmlb_suites.py --check
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# one thread per process (a shared machine): set before numpy/scikit-learn load their
# BLAS/OpenMP runtimes, which a later threadpool_limits would not reach
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._data import shared_data_dir  # noqa: E402

FAMILIES = ("knn", "logistic_regression", "extra_trees", "svc")
METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")
SEED = 0
EPS = 1e-15
SOURCE = "benchmarks/make_pmlb_suites.py"


# --------------------------------------------------------------------------------- spaces
def _log_uniform(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))


def _log_int(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Log-uniform integers in [lo, hi]: ``floor(exp(log lo + u (log(hi + 1) - log lo)))``."""
    return np.clip(np.floor(_log_uniform(u, lo, hi + 1)), lo, hi).astype(int)


def _uniform_int(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.floor(lo + u * (hi - lo + 1)), lo, hi).astype(int)


def _choice(u: np.ndarray, options: tuple) -> list:
    idx = np.clip(np.floor(u * len(options)), 0, len(options) - 1).astype(int)
    return [options[i] for i in idx]


def _sobol(d: int, n: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    sampler = qmc.Sobol(d, scramble=True, rng=seed)
    return sampler.random_base2(max(0, math.ceil(math.log2(n))))[:n]


def family_pool(family: str, n: int, seed: int = SEED) -> pd.DataFrame:
    """The shared pool of ``n`` configs of ``family`` (index = config_id). See module doc."""
    if family == "knn":
        u = _sobol(3, n, seed)
        pool = {
            "n_neighbors": _log_int(u[:, 0], 1, 50),
            "weights": _choice(u[:, 1], ("uniform", "distance")),
            "p": _choice(u[:, 2], (1, 2)),
        }
    elif family == "logistic_regression":
        u = _sobol(2, n, seed)
        pool = {
            "C": _log_uniform(u[:, 0], 1e-4, 1e3),
            "class_weight": _choice(u[:, 1], ("none", "balanced")),
            "max_iter": np.full(n, 300),
        }
    elif family == "extra_trees":
        u = _sobol(5, n, seed)
        pool = {
            "n_estimators": np.full(n, 64),
            "max_features": 0.05 + u[:, 0] * 0.95,
            "min_samples_leaf": _log_int(u[:, 1], 1, 20),
            "min_samples_split": _uniform_int(u[:, 2], 2, 20),
            "bootstrap": _choice(u[:, 3], (False, True)),
            "criterion": _choice(u[:, 4], ("gini", "entropy")),
        }
    elif family == "svc":
        u = _sobol(2, n, seed)
        pool = {
            "C": _log_uniform(u[:, 0], 1e-3, 1e3),
            "gamma": _log_uniform(u[:, 1], 1e-4, 10.0),
            "kernel": ["rbf"] * n,
        }
    else:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    out = pd.DataFrame(pool)
    out.index.name = "config_id"
    return out


def make_estimator(family: str, cfg: dict[str, Any], n_train: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if family == "knn":
        k = min(int(cfg["n_neighbors"]), n_train)
        est = KNeighborsClassifier(n_neighbors=k, weights=cfg["weights"], p=int(cfg["p"]))
        return make_pipeline(StandardScaler(), est)
    if family == "logistic_regression":
        est = LogisticRegression(
            C=float(cfg["C"]),
            class_weight=None if cfg["class_weight"] == "none" else "balanced",
            solver="lbfgs",
            max_iter=int(cfg["max_iter"]),
            random_state=SEED,
        )
        return make_pipeline(StandardScaler(), est)
    if family == "extra_trees":
        return ExtraTreesClassifier(
            n_estimators=int(cfg["n_estimators"]),
            max_features=float(cfg["max_features"]),
            min_samples_leaf=int(cfg["min_samples_leaf"]),
            min_samples_split=int(cfg["min_samples_split"]),
            bootstrap=bool(cfg["bootstrap"]),
            criterion=cfg["criterion"],
            n_jobs=1,
            random_state=SEED,
        )
    if family == "svc":
        est = SVC(C=float(cfg["C"]), gamma=float(cfg["gamma"]), kernel="rbf", random_state=SEED)
        return make_pipeline(StandardScaler(), est)
    raise ValueError(f"unknown family {family!r}")


# ----------------------------------------------------------------------------------- data
def pmlb_dir() -> Path:
    shared = shared_data_dir()
    if shared is None or not (shared / "pmlb" / "index.csv").exists():
        raise SystemExit("shared PMLB data not found (set METAOPT_SHARED_DATA)")
    return shared / "pmlb"


def classification_datasets(max_datasets: int | None) -> pd.DataFrame:
    """Classification datasets of the PMLB index, smallest (rows × columns) first."""
    index = pd.read_csv(pmlb_dir() / "index.csv")
    cls = index[index["task"] == "classification"].copy()
    cls["_cells"] = cls["n_rows"] * cls["n_cols"]
    cls = cls.sort_values(["n_rows", "_cells", "dataset"]).reset_index(drop=True)
    return cls if max_datasets is None else cls.head(max_datasets)


def stratified_subsample(y: np.ndarray, max_rows: int, min_per_class: int, seed: int) -> np.ndarray:
    """Sorted row indices: each class in proportion (largest remainders), at least
    ``min(count, min_per_class)`` rows per class; all rows when ``len(y) <= max_rows``."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * max_rows / n
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: max_rows - take.sum()]] += 1
    take = np.minimum(np.maximum(take, np.minimum(counts, min_per_class)), counts)
    picked = [
        rng.choice(np.flatnonzero(y == c), t, replace=False)
        for c, t in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def load_dataset(name: str, max_rows: int, folds: int) -> tuple[pd.DataFrame, int]:
    """The (subsampled) frame with ``target`` coded 0..K-1, and the original row count."""
    frame = pd.read_csv(pmlb_dir() / "datasets" / f"{name}.tsv.gz", sep="\t")
    frame.columns = [str(c) for c in frame.columns]
    codes, _ = pd.factorize(frame["target"], sort=True)
    frame["target"] = codes.astype(np.int64)
    idx = stratified_subsample(codes, max_rows, folds, SEED)
    return frame.iloc[idx].reset_index(drop=True), len(frame)


def split_of(name: str) -> str:
    """``holdout`` for a third of the datasets (by a hash of the name), else ``dev``."""
    return "holdout" if int(hashlib.sha256(name.encode()).hexdigest(), 16) % 3 == 0 else "dev"


# ------------------------------------------------------------------------------ evaluate
def fold_scores(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, k: int) -> dict:
    """Accuracy, balanced accuracy (mean recall over the classes in ``y``), macro F1 over all
    ``k`` classes (0 for a class neither present nor predicted) and log-loss (``proba`` over
    all ``k`` classes, clipped to [EPS, 1] and renormalised). Equal to scikit-learn's
    ``accuracy_score``, ``balanced_accuracy_score``, ``f1_score(labels=range(k),
    average='macro', zero_division=0)`` and ``log_loss``, without their per-call validation."""
    conf = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(conf).astype(float)
    true_n, pred_n = conf.sum(axis=1), conf.sum(axis=0)
    present = true_n > 0
    denom = true_n + pred_n
    out = {
        "accuracy": tp.sum() / len(y),
        "balanced_accuracy": float(np.mean(tp[present] / true_n[present])),
        "f1_macro": float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))),
    }
    if proba is not None:
        p = np.clip(proba, EPS, 1.0)
        p /= p.sum(axis=1, keepdims=True)
        out["log_loss"] = float(-np.mean(np.log(p[np.arange(len(y)), y])))
    return out


def evaluate_config(
    family: str, cfg: dict[str, Any], x: np.ndarray, y: np.ndarray, folds: list, n_classes: int
) -> dict[str, float]:
    """Cross-validated mean scores of one config; fit + predict timed per fold and summed.

    For the probabilistic families the prediction is the arg-max of ``predict_proba`` (what
    their ``predict`` returns), so the neighbours/trees are evaluated once per fold."""
    scores: dict[str, list[float]] = {m: [] for m in METRICS}
    wall = cpu = 0.0
    for train, test in folds:
        est = make_estimator(family, cfg, len(train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            est.fit(x[train], y[train])
            if family == "svc":
                proba = None
                pred = est.predict(x[test])
            else:
                part = est.predict_proba(x[test])
                classes = est.classes_
                pred = classes[np.argmax(part, axis=1)]
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
        if family != "svc":
            proba = np.zeros((len(test), n_classes))
            proba[:, classes] = part
        for m, v in fold_scores(y[test], pred.astype(np.int64), proba, n_classes).items():
            scores[m].append(v)
    out = {f"metrics.{m}": float(np.mean(v)) for m, v in scores.items() if v}
    return {**out, "duration_s": wall, "cpu_s": cpu}


def run_family_dataset(
    family: str, pool: pd.DataFrame, frame: pd.DataFrame, name: str, folds_n: int, jobs: int
) -> pd.DataFrame:
    from sklearn.model_selection import StratifiedKFold

    x = frame.drop(columns="target").to_numpy(dtype=float)
    y = frame["target"].to_numpy()
    n_classes = int(y.max()) + 1
    cv = StratifiedKFold(folds_n, shuffle=True, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folds = list(cv.split(x, y))
    cfgs = pool.to_dict("records")
    if jobs > 1:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, backend="loky")(
            delayed(evaluate_config)(family, c, x, y, folds, n_classes) for c in cfgs
        )
    else:
        results = [evaluate_config(family, c, x, y, folds, n_classes) for c in cfgs]
    rows = []
    for cid, (cfg, res) in enumerate(zip(cfgs, results, strict=True)):
        rows.append(
            {
                "run_id": f"pmlb-{family}-{name}-{cid:04d}",
                "dataset": name,
                "model": family,
                "tags.config_id": cid,
                **{f"params.{k}": v for k, v in cfg.items()},
                **res,
                "seed": SEED,
                "source": SOURCE,
            }
        )
    return pd.DataFrame(rows)


def meta_row(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The product's meta-features of ``frame`` (as ``register_dataset`` computes them)."""
    from warehouse.metafeatures import compute_meta_features

    mf = compute_meta_features(frame, "target", "classification")
    wide = mf.set_index("name")["value"].to_frame().T.reset_index(drop=True)
    wide.insert(0, "dataset", name)
    return wide


# ------------------------------------------------------------------------------ files
def _write_atomic(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False, compression="zstd")
    os.replace(tmp, path)


def _concat(paths: list[Path]) -> pd.DataFrame | None:
    frames = [pd.read_parquet(p) for p in sorted(paths)]
    return pd.concat(frames, ignore_index=True) if frames else None


def assemble(work: Path, out: Path) -> None:
    """Rebuild the outputs in ``out`` from the part files in ``work``."""
    out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        runs = _concat(list((work / family).glob("*.parquet")))
        if runs is not None:
            runs = runs.sort_values(["dataset", "tags.config_id"]).reset_index(drop=True)
            _write_atomic(runs, out / f"pmlb_{family}.parquet")
    meta = _concat(list((work / "meta").glob("*.parquet")))
    if meta is not None:
        meta = meta.sort_values("dataset").reset_index(drop=True)
        cols = ["dataset", *sorted(c for c in meta.columns if c != "dataset")]
        _write_atomic(meta[cols], out / "pmlb_meta.parquet")
    info = _concat(list((work / "info").glob("*.parquet")))
    if info is not None:
        info = info.sort_values("dataset").reset_index(drop=True)
        info.to_csv(out / "pmlb_splits.csv", index=False)


# ------------------------------------------------------------------------------ check
def check(out: Path, configs: int) -> int:
    """Every file loads; each (dataset, config) once; params shared per config; metrics in
    range; meta and splits cover every dataset. Prints coverage; returns the exit code."""
    problems: list[str] = []
    splits = pd.read_csv(out / "pmlb_splits.csv")
    meta = pd.read_parquet(out / "pmlb_meta.parquet")
    if splits["dataset"].duplicated().any() or meta["dataset"].duplicated().any():
        problems.append("a dataset appears twice in pmlb_splits.csv or pmlb_meta.parquet")
    if set(meta["dataset"]) != set(splits["dataset"]):
        problems.append("pmlb_meta.parquet and pmlb_splits.csv list different datasets")
    if not np.isfinite(meta.drop(columns="dataset").to_numpy(dtype=float, na_value=0)).all():
        problems.append("pmlb_meta.parquet: a non-finite meta-feature")
    if not set(splits["split"]) <= {"dev", "holdout"}:
        problems.append("pmlb_splits.csv: split other than dev/holdout")
    for family in FAMILIES:
        path = out / f"pmlb_{family}.parquet"
        if not path.exists():
            print(f"{family:>20}: no file")
            continue
        runs = pd.read_parquet(path)
        key = ["dataset", "tags.config_id"]
        if runs.duplicated(key).any() or runs["run_id"].duplicated().any():
            problems.append(f"{path.name}: a (dataset, config) or run_id appears twice")
        per = runs.groupby("dataset")["tags.config_id"].nunique()
        incomplete = per[per != configs]
        if len(incomplete):
            problems.append(f"{path.name}: {len(incomplete)} dataset(s) without {configs} configs")
        params = [c for c in runs.columns if c.startswith("params.")]
        if runs.groupby("tags.config_id")[params].nunique(dropna=False).max().max() > 1:
            problems.append(f"{path.name}: a config_id has different params across datasets")
        if set(runs["model"]) != {family}:
            problems.append(f"{path.name}: model column is not {family!r}")
        missing = set(runs["dataset"]) - set(splits["dataset"])
        if missing:
            problems.append(f"{path.name}: datasets without meta/splits: {sorted(missing)[:3]}")
        for m in METRICS:
            col = f"metrics.{m}"
            if col not in runs.columns:
                if family != "svc" or m != "log_loss":
                    problems.append(f"{path.name}: no column {col}")
                continue
            v = runs[col].to_numpy(dtype=float)
            hi = np.inf if m == "log_loss" else 1.0
            if not (np.isfinite(v).all() and (v >= 0).all() and (v <= hi).all()):
                problems.append(f"{path.name}: {col} out of range or missing")
        if not (runs["duration_s"] > 0).all():
            problems.append(f"{path.name}: duration_s not positive")
        acc = runs.groupby("dataset")["metrics.accuracy"]
        gap = acc.max() - acc.median()
        print(
            f"{family:>20}: {per.size} datasets x {runs['tags.config_id'].nunique()} configs = "
            f"{len(runs)} runs; {runs['duration_s'].sum() / 60:.1f} min of fitting; "
            f"best - median accuracy per dataset min/median/max "
            f"{gap.min():.3f}/{gap.median():.3f}/{gap.max():.3f}"
        )
    print(f"{len(splits)} datasets with meta-features: {splits['split'].value_counts().to_dict()}")
    for p in problems:
        print("PROBLEM:", p)
    print("check:", "ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="knn,logistic_regression,extra_trees,svc")
    ap.add_argument("--max-datasets", type=int, default=None, help="smallest N (default all)")
    ap.add_argument("--configs", type=int, default=200)
    ap.add_argument("--max-rows", type=int, default=2000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "pmlb_parts")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (loky) per dataset")
    ap.add_argument("--check", action="store_true", help="only check the files in --out")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out, args.configs)

    import sklearn.ensemble
    import sklearn.linear_model
    import sklearn.neighbors
    import sklearn.svm  # noqa: F401  (load the runtimes before limiting their threads)
    from threadpoolctl import threadpool_limits

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for f in families:
        if f not in FAMILIES:
            ap.error(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")
    datasets = classification_datasets(args.max_datasets)
    pools = {f: family_pool(f, args.configs) for f in families}
    # parts made with other settings must not be mixed in
    stamp = f"configs={args.configs} max_rows={args.max_rows} folds={args.folds} seed={SEED}"
    stamp_file = args.work / "SETTINGS"
    if stamp_file.exists() and stamp_file.read_text().strip() != stamp:
        raise SystemExit(f"{args.work} holds parts made with {stamp_file.read_text().strip()}")
    args.work.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(stamp + "\n")

    t_start = time.perf_counter()
    print(f"{len(datasets)} datasets, families {families}, {stamp}", flush=True)
    with threadpool_limits(limits=1):
        for name in datasets["dataset"]:
            todo = [f for f in families if not (args.work / f / f"{name}.parquet").exists()]
            if not todo:
                continue
            frame, n_orig = load_dataset(name, args.max_rows, args.folds)
            info_part = args.work / "info" / f"{name}.parquet"
            if not info_part.exists():
                t0 = time.perf_counter()
                _write_atomic(meta_row(frame, name), args.work / "meta" / f"{name}.parquet")
                info = {
                    "dataset": name,
                    "split": split_of(name),
                    "n_rows_original": n_orig,
                    "n_rows": len(frame),
                    "n_features": frame.shape[1] - 1,
                    "n_classes": int(frame["target"].nunique()),
                }
                _write_atomic(pd.DataFrame([info]), info_part)
                print(f"  meta {name}: {time.perf_counter() - t0:.1f}s", flush=True)
            for family in todo:
                t0 = time.perf_counter()
                runs = run_family_dataset(family, pools[family], frame, name, args.folds, args.jobs)
                _write_atomic(runs, args.work / family / f"{name}.parquet")
                assemble(args.work, args.out)
                print(
                    f"{family} {name} ({len(frame)}x{frame.shape[1] - 1}): "
                    f"{time.perf_counter() - t0:.1f}s wall, {runs['cpu_s'].sum():.1f}s cpu, "
                    f"best acc {runs['metrics.accuracy'].max():.3f}; "
                    f"total {(time.perf_counter() - t_start) / 60:.1f} min",
                    flush=True,
                )
    assemble(args.work, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

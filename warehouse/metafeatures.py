"""Dataset meta-features: the characteristics of a dataset that the meta-learner conditions on.

Four standard groups (Rivolli et al., "Meta-features for meta-learning", Knowledge-Based
Systems 2022; Brazdil et al., *Metalearning*, 2nd ed., ch. 4):

* ``general`` — instances, features, classes, numeric/categorical counts, missing ratio,
  dimensionality (features / instances), class balance. Computed in DuckDB.
* ``statistical`` — mean and standard deviation over numeric features of the sample skewness
  ``G1 = sqrt(n(n-1))/(n-2) · m3/m2^{3/2}`` and excess kurtosis ``G2`` (both bias-corrected,
  equal to ``scipy.stats.skew/kurtosis(bias=False)``; computed in DuckDB), mean absolute
  Pearson correlation between numeric features, and the number of principal components
  needed to explain 95% of the variance of the standardized features.
* ``info_theory`` — class entropy ``H(Y) = -Σ p log2 p``, mean feature entropy ``H(X_j)``
  and mean mutual information ``I(X_j; Y) = H(X_j) + H(Y) - H(X_j, Y)`` of features
  discretized into equal-width bins, and the noise-to-signal ratio
  ``(mean H(X_j) - mean I(X_j;Y)) / mean I(X_j;Y)`` (Michie et al., 1994).
* ``landmarking`` — cross-validated score of cheap learners on a bounded stratified
  subsample: accuracy of 1-NN, a decision stump, Gaussian naive Bayes and LDA
  (classification; Pfahringer et al., ICML 2000), or R² of 1-NN, a stump and linear
  regression (regression).

Values are returned in long form: one row per meta-feature with its value, its group
(``method``) and its compute time. Rows of one computation (one SQL query, one pass) share
its time evenly, so ``SUM(compute_s)`` over a dataset is the total time spent.

This module is in ``warehouse/`` because it runs SQL in DuckDB over the dataset loaded as a
table (an in-memory connection of its own, so it never touches the user's warehouse).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from warehouse.errors import ValidationError

#: Meta-features shown by ``metaopt datasets`` next to each dataset.
KEY_META_FEATURES = (
    "missing_ratio",
    "class_entropy",
    "mean_abs_correlation",
    "pca_95_components",
    "landmark_1nn",
)

#: Upper bound on the rows used by the landmarkers and the correlation/PCA pass.
LANDMARK_MAX_ROWS = 2000
CORRELATION_MAX_ROWS = 20_000
#: Wider data: correlation and PCA use a seeded random subset of this many numeric features.
CORRELATION_MAX_FEATURES = 500
#: Equal-width bins used to discretize numeric features for entropies.
N_BINS = 10
LANDMARK_FOLDS = 5


def is_categorical(series: pd.Series) -> bool:
    """A column is categorical when it is not numeric (strings, categories, booleans)."""
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def compute_meta_features(
    data: pd.DataFrame,
    target: str,
    task: str,
    seed: int = 0,
    groups: tuple[str, ...] = ("general", "statistical", "info_theory", "landmarking"),
    threads: int | None = 1,
) -> pd.DataFrame:
    """Compute the meta-features of ``data`` (features + the ``target`` column).

    Returns a DataFrame with columns ``name, value, method, compute_s``; every value is a
    finite float (a meta-feature that is undefined for this dataset, e.g. the correlation of
    a dataset with one numeric feature, is left out rather than stored as NaN).

    ``threads`` caps BLAS/OpenMP threads (None = library default). One thread is the
    default: on a busy 2-core machine an oversubscribed BLAS made LDA on 500 × 1,500 data
    20x slower (29.9 s vs 1.5 s).
    """
    from threadpoolctl import threadpool_limits

    if target not in data.columns:
        raise ValidationError(f"target column {target!r} is not in the data")
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', not {task!r}")
    if len(data) < 2:
        raise ValidationError(f"dataset has {len(data)} row(s); at least 2 are needed")
    if data.shape[1] < 2:
        raise ValidationError("dataset has no feature columns besides the target")
    if data[target].isna().any():
        row = int(np.flatnonzero(data[target].isna().to_numpy())[0])
        raise ValidationError(f"target column {target!r} is missing in row {row}")

    features = [c for c in data.columns if c != target]
    numeric = [c for c in features if not is_categorical(data[c])]
    categorical = [c for c in features if c not in numeric]
    y_codes, n_classes = _encode_target(data[target], task)

    rows: list[dict[str, Any]] = []
    steps: dict[str, Callable[[], None]] = {
        "general": lambda: rows.extend(
            _timed("general", _general_sql, data, target, features, numeric, task)
        ),
        "statistical": lambda: (
            rows.extend(_timed("statistical", _moments_sql, data, numeric)),
            rows.extend(_timed("statistical", _correlation_pca, data, numeric, seed)),
        ),
        "info_theory": lambda: rows.extend(
            _timed("info_theory", _info_theory, data, numeric, categorical, y_codes, task)
        ),
        "landmarking": lambda: rows.extend(
            _landmarkers(data, numeric, categorical, y_codes, n_classes, task, seed)
        ),
    }
    unknown = [g for g in groups if g not in steps]
    if unknown:
        raise ValidationError(f"unknown meta-feature group {unknown[0]!r}")
    with threadpool_limits(limits=threads):
        for group in groups:
            steps[group]()
    out = pd.DataFrame(rows, columns=["name", "value", "method", "compute_s"])
    out = out[np.isfinite(out["value"].astype(float))].reset_index(drop=True)
    out["value"] = out["value"].astype(float)
    return out


# --------------------------------------------------------------------------------------
# helpers


def _timed(method: str, fn: Callable[..., dict[str, float]], *args: Any) -> list[dict]:
    """Run ``fn`` and spread its wall time evenly over the meta-features it returned."""
    t0 = time.perf_counter()
    values = fn(*args)
    elapsed = time.perf_counter() - t0
    share = elapsed / max(len(values), 1)
    return [
        {"name": k, "value": float(v), "method": method, "compute_s": share}
        for k, v in values.items()
    ]


def _encode_target(y: pd.Series, task: str) -> tuple[np.ndarray, int]:
    """Integer class codes for classification; the float target for regression."""
    if task == "classification":
        codes, uniques = pd.factorize(y, sort=True)
        return codes.astype(np.int64), len(uniques)
    try:
        return y.to_numpy(dtype=float), 0
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"regression target {y.name!r} is not numeric") from exc


def _duckdb_frame(data: pd.DataFrame):  # -> duckdb.DuckDBPyConnection
    """A private in-memory DuckDB connection with ``data`` registered as table ``ds``."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.register("ds", data)
    return con


def _col(name: str):  # -> sqlglot expression for a quoted column
    from sqlglot import exp

    return exp.column(name, quoted=True)


def _general_sql(
    data: pd.DataFrame, target: str, features: list[str], numeric: list[str], task: str
) -> dict[str, float]:
    """Counts, missing cells and class balance, in one DuckDB pass over the dataset."""
    from sqlglot import exp, select

    # flat expressions only (a chain of 1,000+ ORs/additions exceeds DuckDB's depth limit)
    counts = [exp.func("count", _col(c)).as_(f"c{i}") for i, c in enumerate(features)]
    any_null = exp.func(
        "list_contains",
        exp.func("list_value", *[exp.Is(this=_col(c), expression=exp.Null()) for c in features]),
        exp.true(),
    )
    query = select(
        exp.func("count_star").as_("n"),
        exp.func("count_if", any_null).as_("rows_missing"),
        *counts,
    ).from_("ds")
    con = _duckdb_frame(data)
    try:
        n, rows_missing, *present = con.execute(query.sql("duckdb")).fetchone()
        n_missing = n * len(features) - sum(present)
        out = {
            "n_instances": n,
            "log_n_instances": math.log(n),
            "n_features": len(features),
            "n_numeric": len(numeric),
            "n_categorical": len(features) - len(numeric),
            "dimensionality": len(features) / n,
            "missing_ratio": n_missing / (n * max(len(features), 1)),
            "rows_with_missing_ratio": rows_missing / n,
        }
        if task == "classification":
            counts_q = (
                select(exp.func("count_star").as_("k"))
                .from_("ds")
                .group_by(_col(target))
                .sql("duckdb")
            )
            counts = np.array([r[0] for r in con.execute(counts_q).fetchall()], dtype=float)
            out["n_classes"] = len(counts)
            out["majority_class_ratio"] = counts.max() / n
            out["minority_class_ratio"] = counts.min() / n
        else:
            out["n_classes"] = 0
    finally:
        con.close()
    return out


def _moments_sql(data: pd.DataFrame, numeric: list[str]) -> dict[str, float]:
    """Mean and SD over numeric features of sample skewness and excess kurtosis (DuckDB)."""
    from sqlglot import exp, select

    if not numeric:
        return {}
    cols = []
    for i, c in enumerate(numeric):
        x = exp.cast(_col(c), "DOUBLE")
        cols.append(exp.func("skewness", x).as_(f"s{i}"))
        cols.append(exp.func("kurtosis", x).as_(f"k{i}"))
    con = _duckdb_frame(data)
    try:
        row = con.execute(select(*cols).from_("ds").sql("duckdb")).fetchone()
    finally:
        con.close()
    vals = np.array([np.nan if v is None else v for v in row], dtype=float)
    skew, kurt = vals[0::2], vals[1::2]
    skew, kurt = skew[np.isfinite(skew)], kurt[np.isfinite(kurt)]
    out: dict[str, float] = {}
    if skew.size:
        out["skewness_mean"] = skew.mean()
        out["skewness_sd"] = skew.std(ddof=1) if skew.size > 1 else 0.0
    if kurt.size:
        out["kurtosis_mean"] = kurt.mean()
        out["kurtosis_sd"] = kurt.std(ddof=1) if kurt.size > 1 else 0.0
    return out


def _numeric_matrix(data: pd.DataFrame, numeric: list[str]) -> np.ndarray:
    """Numeric features as float64 with missing values imputed by the column median."""
    x = np.array(data[numeric].to_numpy(dtype=float, na_value=np.nan), copy=True)
    if np.isnan(x).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column → 0
            med = np.nanmedian(x, axis=0)
        med = np.where(np.isnan(med), 0.0, med)
        idx = np.nonzero(np.isnan(x))
        x[idx] = np.take(med, idx[1])
    return x


def _correlation_pca(data: pd.DataFrame, numeric: list[str], seed: int) -> dict[str, float]:
    """Mean |Pearson r| over feature pairs, and #components for 95% variance (standardized).

    The PCA is an eigen-decomposition of the correlation matrix: the eigenvalues, sorted
    descending, are the variances of the principal components of the standardized data.
    Constant features are dropped (their correlation is undefined). Beyond
    ``CORRELATION_MAX_ROWS`` rows / ``CORRELATION_MAX_FEATURES`` features, a seeded random
    subsample is used (and ``pca_95_ratio`` is relative to the features used).
    """
    if not numeric:
        return {}
    if len(numeric) > CORRELATION_MAX_FEATURES:
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(numeric), CORRELATION_MAX_FEATURES, replace=False)
        numeric = [numeric[i] for i in sorted(picked)]
    sub = data[numeric]
    if len(sub) > CORRELATION_MAX_ROWS:
        sub = sub.sample(CORRELATION_MAX_ROWS, random_state=seed)
    x = _numeric_matrix(sub, numeric)
    x = x[:, x.std(axis=0) > 0]
    out: dict[str, float] = {}
    if x.shape[1] == 0:
        return out
    corr = np.corrcoef(x, rowvar=False) if x.shape[1] > 1 else np.ones((1, 1))
    if x.shape[1] > 1:
        iu = np.triu_indices_from(corr, k=1)
        out["mean_abs_correlation"] = float(np.mean(np.abs(corr[iu])))
    eig = np.clip(np.linalg.eigvalsh(corr)[::-1], 0, None)
    ratio = np.cumsum(eig) / eig.sum()
    n95 = int(np.searchsorted(ratio, 0.95 - 1e-12) + 1)
    out["pca_95_components"] = n95
    out["pca_95_ratio"] = n95 / len(numeric)
    return out


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a histogram: ``-Σ p log2 p`` over non-empty cells."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def discretize(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin codes 0..n_bins-1 (edges ``linspace(min, max, n_bins + 1)``, right-open
    inner bins); missing values get bin ``n_bins``."""
    out = np.full(values.shape, n_bins, dtype=np.int64)
    ok = ~np.isnan(values)
    if not ok.any():
        return out
    lo, hi = values[ok].min(), values[ok].max()
    if hi == lo:
        out[ok] = 0
        return out
    edges = np.linspace(lo, hi, n_bins + 1)
    out[ok] = np.clip(np.digitize(values[ok], edges[1:-1]), 0, n_bins - 1)
    return out


def _info_theory(
    data: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    y: np.ndarray,
    task: str,
) -> dict[str, float]:
    """Class entropy, mean feature entropy, mean mutual information, noise-to-signal ratio.

    Numeric features (and a regression target) are discretized into ``N_BINS`` equal-width
    bins, missing values forming a bin of their own; categorical features use their codes.
    """
    y_codes = y if task == "classification" else discretize(np.asarray(y, dtype=float))
    k_y = int(y_codes.max()) + 1
    h_y = _entropy(np.bincount(y_codes, minlength=k_y))
    out: dict[str, float] = {"class_entropy" if task == "classification" else "target_entropy": h_y}
    if task == "classification" and k_y > 1:
        out["normalized_class_entropy"] = h_y / math.log2(k_y)
    h_x, mi = [], []
    columns: list[np.ndarray] = []
    for c in numeric:
        columns.append(discretize(data[c].to_numpy(dtype=float, na_value=np.nan)))
    for c in categorical:
        codes, _ = pd.factorize(data[c], use_na_sentinel=True)
        codes = codes.astype(np.int64)
        codes[codes < 0] = codes.max() + 1
        columns.append(codes)
    for codes in columns:
        k_x = int(codes.max()) + 1
        hx = _entropy(np.bincount(codes, minlength=k_x))
        hxy = _entropy(np.bincount(codes * k_y + y_codes, minlength=k_x * k_y))
        h_x.append(hx)
        mi.append(max(hx + h_y - hxy, 0.0))
    if columns:
        mean_hx, mean_mi = float(np.mean(h_x)), float(np.mean(mi))
        out["mean_feature_entropy"] = mean_hx
        out["mean_mutual_information"] = mean_mi
        out["max_mutual_information"] = float(np.max(mi))
        if mean_mi > 0:
            out["noise_to_signal_ratio"] = (mean_hx - mean_mi) / mean_mi
            out["equivalent_n_features"] = h_y / mean_mi
    return out


def landmark_matrix(
    data: pd.DataFrame, numeric: list[str], categorical: list[str], standardize: bool = False
) -> np.ndarray:
    """Numeric features (median-imputed; standardized if asked) plus one-hot categoricals."""
    parts = []
    if numeric:
        x = _numeric_matrix(data, numeric)
        if standardize:
            sd = x.std(axis=0)
            x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        parts.append(x)
    for c in categorical:
        codes, _ = pd.factorize(data[c], use_na_sentinel=False)
        parts.append(np.eye(int(codes.max()) + 1)[codes])
    return np.hstack(parts) if parts else np.zeros((len(data), 0))


def landmark_subsample(y: np.ndarray, task: str, max_rows: int, seed: int) -> np.ndarray:
    """Row indices of a (stratified, for classification) subsample of at most ``max_rows``."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    if task == "classification":
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(
                np.arange(n), train_size=max_rows, stratify=y, random_state=seed
            )
        except ValueError:  # a class too small to stratify
            idx, _ = train_test_split(np.arange(n), train_size=max_rows, random_state=seed)
        return np.sort(idx)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _landmarkers(
    data: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    y: np.ndarray,
    n_classes: int,
    task: str,
    seed: int,
) -> list[dict[str, Any]]:
    """Cross-validated scores of cheap learners on a subsample of ≤ ``LANDMARK_MAX_ROWS``.

    Standardization (which only 1-NN is sensitive to) is fitted inside each training fold,
    so no statistic of a validation fold leaks into the score.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    t0 = time.perf_counter()
    idx = landmark_subsample(y, task, LANDMARK_MAX_ROWS, seed)
    sub = data.iloc[idx]
    x = landmark_matrix(sub, numeric, categorical)  # numeric columns come first
    n_num = len(numeric)
    ys = y[idx]
    prep_s = time.perf_counter() - t0
    if x.shape[1] == 0:
        return []
    if task == "classification":
        if n_classes < 2 or len(np.unique(ys)) < 2:
            return []
        # stratified whenever the largest class can fill every fold; a rare class only
        # triggers scikit-learn's warning instead of shrinking the number of folds
        counts = np.bincount(ys)
        folds = int(max(2, min(LANDMARK_FOLDS, counts.max())))
        cv: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
        learners = {
            "landmark_1nn": KNeighborsClassifier(n_neighbors=1),
            "landmark_stump": DecisionTreeClassifier(max_depth=1, random_state=seed),
            "landmark_naive_bayes": GaussianNB(),
            "landmark_lda": LinearDiscriminantAnalysis(),
        }
        scoring = "accuracy"
    else:
        cv = KFold(min(LANDMARK_FOLDS, len(ys)), shuffle=True, random_state=seed)
        learners = {
            "landmark_1nn": KNeighborsRegressor(n_neighbors=1),
            "landmark_stump": DecisionTreeRegressor(max_depth=1, random_state=seed),
            "landmark_linear": LinearRegression(),
        }
        scoring = "r2"
    rows = []
    for name, learner in learners.items():
        scale = ColumnTransformer(
            [("num", StandardScaler(), list(range(n_num)))], remainder="passthrough"
        )
        est = make_pipeline(scale, learner)
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                score = float(np.mean(cross_val_score(est, x, ys, cv=cv, scoring=scoring)))
            except (ValueError, np.linalg.LinAlgError):
                continue
        rows.append(
            {
                "name": name,
                "value": score,
                "method": "landmarking",
                "compute_s": time.perf_counter() - t1 + prep_s / len(learners),
            }
        )
    return rows

"""Train and evaluate one configuration, measure its cost, and log it as a run.

Three layers, so a parallel executor can run the expensive part anywhere:

* :func:`evaluate` — pure: cross-validate (or hold out) one config on ``(X, y)`` and return
  the mean of each metric over the folds. Classification: accuracy, balanced accuracy,
  macro precision/recall/F1, ROC-AUC (binary, or macro one-vs-rest) and log-loss (when the
  estimator has ``predict_proba``); regression: RMSE, MAE, R². Computed with
  :mod:`sklearn.metrics` on each validation fold.
* :func:`run_trial` — :func:`evaluate` plus measurements and failure capture, returning a
  plain dict (status, metrics, duration_s, cpu_s, peak_mem_mb, error, times). With
  ``timeout_s`` the work runs in a child process that is killed at the deadline.
* :func:`train_and_evaluate` — loads a registered dataset from the warehouse, runs one trial
  and logs it with :meth:`warehouse.Warehouse.log_run`. Only the calling (driver) process
  writes to the warehouse.

Measurements cover the whole cross-validated evaluation (every fold's fit and predict):

* ``duration_s`` — wall time (``time.perf_counter``);
* ``cpu_s`` — user + system CPU of the process and of its waited-for children
  (``os.times``), so multi-threaded fits count every core they used;
* ``peak_mem_mb`` — peak resident memory *added* during the evaluation: on Linux the
  process's high-water mark is reset before the fit (``/proc/self/clear_refs`` ← 5) and
  ``VmHWM − RSS_before − ΔRssFile`` is read after it (ΔRssFile: shared-library pages first
  touched by the fit, not memory the configuration needs); elsewhere the ``ru_maxrss``
  increase (a lower bound). This costs nothing during the fit, unlike ``tracemalloc``
  (which also misses memory allocated by native code) or a psutil polling thread (which
  can miss short peaks).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.pruning import TrialHandle, TrialPruned
from warehouse import sources
from warehouse.errors import ValidationError
from warehouse.protocol import WarehouseLike

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_HOLDOUT = 0.25
#: Seconds an isolated trial's process may take to start before it counts as failed.
STARTUP_LIMIT_S = 300.0
_STARTED = "started"

# Modules the fork server imports once, so each isolated trial starts in milliseconds.
_PRELOAD = [
    "metaopt_bayes.trainer",
    "metaopt_bayes.zoo",
    "sklearn.ensemble",
    "sklearn.svm",
    "sklearn.linear_model",
    "sklearn.neighbors",
    "sklearn.neural_network",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.metrics",
    "sklearn.model_selection",
]


# ---------------------------------------------------------------------------------------
# data


def load_dataset(warehouse: WarehouseLike, name: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Features ``X``, target ``y`` and task of a dataset registered in ``warehouse``.

    Registered data is stored inside the warehouse itself (a table per dataset in the
    ``dataset_data`` schema; see :mod:`warehouse.datasets`), so it travels with the file and
    works for in-memory warehouses too.
    """
    frame, target, task = warehouse.dataset_frame(name)
    y = frame[target].to_numpy()
    return frame.drop(columns=[target]), y, task


def split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names; non-numeric and boolean columns are categorical."""
    from warehouse.metafeatures import is_categorical

    categorical = [c for c in X.columns if is_categorical(X[c])]
    return [c for c in X.columns if c not in categorical], categorical


def _as_model_input(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """``X`` with categorical columns as plain ``object`` strings and ``np.nan`` for missing.

    scikit-learn's imputers and encoders do not understand pandas' nullable ``string`` /
    ``boolean`` dtypes (``pd.NA`` raises "boolean value of NA is ambiguous"), which is what
    a DuckDB table with missing categories loads as.
    """
    if not categorical:
        return X
    X = X.copy()
    for c in categorical:
        col = X[c]
        X[c] = np.where(col.isna().to_numpy(), np.nan, col.astype(str).to_numpy(dtype=object))
        X[c] = X[c].astype(object)
    return X


def _splits(y: np.ndarray, task: str, cv: int | float | None, seed: int) -> list[tuple]:
    """Train/validation index pairs: k-fold for ``cv >= 2`` (stratified for classification),
    else one holdout split (stratified when every class has two rows)."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    n = len(y)
    idx = np.arange(n)
    if task == "classification":  # any labels (text, bool, numbers) as class codes
        y = pd.factorize(pd.Series(np.asarray(y)), sort=True)[0]
    if cv is None or (isinstance(cv, float) and 0 < cv < 1) or (cv == 1 and cv is not True):
        test = cv if isinstance(cv, float) and 0 < cv < 1 else DEFAULT_HOLDOUT
        strat = y if task == "classification" and np.bincount(y).min() >= 2 else None
        tr, te = train_test_split(idx, test_size=test, random_state=seed, stratify=strat)
        return [(tr, te)]
    k = int(cv)
    if k != cv or k < 2:
        raise ValidationError(f"cv must be an integer >= 2 or a holdout fraction, not {cv!r}")
    if k > n:
        raise ValidationError(f"cv={k} folds but the dataset has only {n} rows")
    if task == "classification" and np.bincount(y).max() >= k:
        # stratified even when a rare class has fewer than k rows (those rows spread over
        # as many folds as they can; scikit-learn's warning about it is expected here)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y))
    return list(KFold(k, shuffle=True, random_state=seed).split(idx))


def released_while(warehouse: WarehouseLike, when: bool) -> contextlib.AbstractContextManager[Any]:
    """For a block that trains: the warehouse file let go of (:meth:`Warehouse.released`)
    when ``when`` and the warehouse can, so other processes read what is logged so far."""
    if when and hasattr(warehouse, "released"):
        return warehouse.released()
    return contextlib.nullcontext()


def check_setup(
    family: Any,
    configs: list[Mapping[str, Any]],
    y: np.ndarray,
    task: str,
    cv: Any,
    max_configs: int = 64,
) -> None:
    """Refuse, before any trial runs, what would fail every trial: an impossible ``cv`` for
    the dataset, or configs of which none is accepted by the family's estimator (a parameter
    it does not have, a value of the wrong type or outside scikit-learn's own constraints).
    Up to ``max_configs`` distinct configs are checked by building the estimator and
    validating its parameters, without fitting; keys starting with ``_`` are not parameters.
    A mix of good and bad configs passes: the bad ones become failed trials, as before."""
    from warehouse.errors import one_line

    _splits(np.asarray(y), task, cv, 0)
    seen: set[str] = set()
    first_error: str | None = None
    for cfg in configs:
        params = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
        key = repr(sorted(params.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        try:
            est = family.make_estimator(params, task)
            validate = getattr(est, "_validate_params", None)  # scikit-learn >= 1.2
            if validate is not None:
                validate()
            return  # one config a trial can run with: the setup is sound
        except ValidationError:
            raise  # a parameter the family does not have: wrong for every config
        except (ValueError, TypeError) as exc:
            first_error = first_error or f"config {params!r}: {one_line(exc)}"
        if len(seen) >= max_configs:
            break
    if first_error is not None:
        raise ValidationError(f"every configuration tried would fail; {first_error}")


def _aligned_proba(est: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray | None:
    """Class probabilities with one column per class of the *whole* dataset."""
    if not hasattr(est, "predict_proba"):
        return None
    try:
        p = est.predict_proba(X)
    except AttributeError:  # e.g. SVC(probability=False) exposes it but refuses
        return None
    out = np.zeros((len(X), n_classes))
    out[:, est.classes_.astype(int)] = p
    return out


def _decision_scores(est: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray | None:
    if not hasattr(est, "decision_function"):
        return None
    s = np.asarray(est.decision_function(X))
    if s.ndim == 1:
        return s
    # a class the fold's training rows lacked gets a constant score: its one-vs-rest AUC
    # is then 0.5 (no ranking), not a crash on non-finite scores
    out = np.zeros((len(X), n_classes))
    out[:, est.classes_.astype(int)] = s
    return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, scores: Any, n_classes: int
) -> dict[str, float]:
    """Metrics of one validation fold (labels are integer codes 0..n_classes-1).

    ROC-AUC is binary AUC for two classes, else the unweighted mean of one-vs-rest AUCs over
    the classes present in the fold (one-vs-rest macro AUC, Provost & Domingos 2000, as
    ``roc_auc_score(..., multi_class='ovr', average='macro')`` when every class is present).
    Log-loss uses all ``n_classes`` labels, so a class missing from a fold is still scored.
    """
    from sklearn import metrics as skm

    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "precision_macro": skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    labels = np.arange(n_classes)
    score = proba if proba is not None else scores
    present = np.unique(y_true)
    if score is not None and len(present) > 1:
        if n_classes == 2:
            s = score[:, 1] if np.ndim(score) == 2 else score
            out["roc_auc"] = skm.roc_auc_score(y_true, s)
        elif np.ndim(score) == 2:
            aucs = [skm.roc_auc_score(y_true == k, score[:, k]) for k in present]
            out["roc_auc"] = float(np.mean(aucs))
    if proba is not None:
        out["log_loss"] = skm.log_loss(y_true, proba, labels=labels)
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE ``sqrt(mean((y - ŷ)²))``, MAE and R² of one validation fold."""
    from sklearn import metrics as skm

    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def evaluate(
    X: pd.DataFrame,
    y: np.ndarray | pd.Series,
    task: str,
    model: str,
    config: Mapping[str, Any],
    cv: int | float | None = 5,
    seed: int = 0,
    threads: int | None = 1,
    trial: TrialHandle | None = None,
    metric: str | None = None,
) -> dict[str, float]:
    """Cross-validated metrics of ``model`` with ``config`` on ``(X, y)``: the mean over folds.

    Pure (no warehouse, no measurement): suitable to run in any worker process. Raises
    whatever the estimator raises. ``threads`` caps the BLAS/OpenMP threads of the fit (1 by
    default: parallelism comes from running trials side by side, and an unbounded OpenMP
    pool on a busy machine made gradient boosting ~8x slower in our measurements).

    ``trial`` (a :class:`~metaopt_bayes.pruning.TrialHandle` with a pruner) and ``metric``:
    a family that trains in steps (``mlp`` epochs, ``hist_gradient_boosting`` iterations) is
    fitted stepwise with its folds in lockstep, reporting the mean of ``metric`` over the
    folds after each step, and raises :class:`~metaopt_bayes.pruning.TrialPruned` when the
    trial's pruner says so (:mod:`metaopt_bayes.stepwise`); other families ignore them.
    """
    from threadpoolctl import threadpool_limits

    from metaopt_bayes.zoo import get_family, make_pipeline

    family = get_family(model)
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X)).rename(columns=str)
    y = np.asarray(y)
    if task == "classification":
        y_codes, uniques = pd.factorize(pd.Series(y), sort=True)
        y_fit, n_classes = y_codes.astype(np.int64), len(uniques)
        if n_classes < 2:
            raise ValidationError("classification needs at least 2 classes in the target")
    else:
        y_fit, n_classes = y.astype(float), 0
    numeric, categorical = split_columns(X)
    X = _as_model_input(X, categorical)
    pipe = make_pipeline(family.make_estimator(config, task, seed), numeric, categorical)
    folds: list[dict[str, float]] = []
    stepwise = trial is not None and metric is not None and family.step_unit is not None
    with threadpool_limits(limits=threads):
        if stepwise:
            from metaopt_bayes.stepwise import evaluate_stepwise

            folds = evaluate_stepwise(
                pipe, X, y_fit, _splits(y_fit, task, cv, seed), task, n_classes, model,
                str(metric), trial, lambda est, xv, yv: _score(est, xv, yv, task, n_classes),
                seed,
            )  # fmt: skip
        else:
            for tr, te in _splits(y_fit, task, cv, seed):
                folds.append(_fit_fold(pipe, X, y_fit, tr, te, task, n_classes))
    names = dict.fromkeys(k for f in folds for k in f)
    out = {}
    for name in names:
        vals = [f[name] for f in folds if name in f and math.isfinite(f[name])]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def _fit_fold(
    pipe: Any,
    X: pd.DataFrame,
    y_fit: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    task: str,
    n_classes: int,
) -> dict[str, float]:
    """Fit a clone of ``pipe`` on the training rows, score it on the validation rows."""
    from sklearn.base import clone

    est = clone(pipe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings are the config's business
        est.fit(X.iloc[tr], y_fit[tr])
        return _score(est, X.iloc[te], y_fit[te], task, n_classes)


def _score(est: Any, xte: Any, yte: np.ndarray, task: str, n_classes: int) -> dict[str, float]:
    """The metrics of a fitted estimator (or pipeline) on one fold's validation rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = est.predict(xte)
        if task == "classification":
            proba = _aligned_proba(est, xte, n_classes)
            scores = None if proba is not None else _decision_scores(est, xte, n_classes)
            return classification_metrics(yte, pred.astype(int), proba, scores, n_classes)
        return regression_metrics(yte, pred)


# ---------------------------------------------------------------------------------------
# measurement


def _proc_status(*fields: str) -> dict[str, int] | None:
    """Selected ``kB`` fields of ``/proc/self/status`` in bytes (None off Linux)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in fields:
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return out if len(out) == len(fields) else None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    import resource
    import sys

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class _Meter:
    """Wall time, CPU time (self + children) and peak added resident memory of a block."""

    def __enter__(self) -> _Meter:
        self.started_at = datetime.now(UTC)
        self.exact = _reset_hwm()
        self.status0 = _proc_status("VmRSS", "RssFile") if self.exact else None
        self.maxrss0 = _maxrss_bytes()
        t = os.times()
        self.cpu0 = t.user + t.system + t.children_user + t.children_system
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.duration_s = time.perf_counter() - self.t0
        t = os.times()
        self.cpu_s = t.user + t.system + t.children_user + t.children_system - self.cpu0
        self.finished_at = datetime.now(UTC)
        status = _proc_status("VmHWM", "RssFile") if self.status0 is not None else None
        if status is not None and self.status0 is not None:
            # peak RSS growth minus the file-backed pages (shared-library code) first touched
            # during the block: a freshly forked worker faults in scikit-learn's code pages
            # on its first fit, which is not memory the configuration needs (it inflated
            # the peak of isolated trials by ~15 MB). File pages are rarely dropped, so the
            # end-of-block RssFile bounds their contribution to the peak.
            file_growth = max(status["RssFile"] - self.status0["RssFile"], 0)
            added = status["VmHWM"] - self.status0["VmRSS"] - file_growth
        else:
            added = _maxrss_bytes() - self.maxrss0
        self.peak_mem_mb = max(added, 0) / 2**20


def _error_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _warm_imports(payload: Mapping[str, Any]) -> None:
    """Import what the evaluation will import, so one-off module loading is not measured
    as the fit's time or memory (a failure here resurfaces inside the measured call)."""
    try:
        import sklearn.metrics
        import sklearn.model_selection  # noqa: F401

        from metaopt_bayes.zoo import get_family, make_pipeline

        est = get_family(payload["model"]).make_estimator(
            payload["config"], payload["task"], payload.get("seed", 0)
        )
        make_pipeline(est, ["x"], ["c"])
    except Exception:
        return
    key = (payload["model"], payload["task"])
    if key not in _WARMED:
        _warm_fit(payload)
        _WARMED.add(key)


#: Rows of the tiny warm-up fit (see :func:`_warm_fit`).
WARM_ROWS = 40
#: (model, task) pairs this process has already fitted once.
_WARMED: set[tuple[str, str]] = set()


def _warm_fit(payload: Mapping[str, Any]) -> None:
    """Fit the configuration once on a tiny slice of the data, unmeasured.

    The first fit in a process loads code lazily (scikit-learn's submodules, Cython
    extensions, BLAS kernels) and grows the allocator's heap; in a freshly started worker
    that one-off cost was ~5 MB of "peak memory" and a fraction of a second that belong to
    the process, not to the configuration. Iterations are capped so a slow config stays
    cheap here; any error is ignored (the measured call reports it).
    """
    try:
        X, y = payload["X"], np.asarray(payload["y"])
        n = len(y)
        if n < 4:
            return
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(n, size=min(WARM_ROWS, n), replace=False))
        if payload["task"] == "classification":
            # keep two classes present so the classifier actually fits
            first = {v: i for i, v in reversed(list(enumerate(y)))}
            idx = np.unique(np.concatenate([idx, list(first.values())[:2]]))
        cfg = dict(payload["config"])
        for key in ("max_iter", "n_estimators"):
            if isinstance(cfg.get(key), int | float) and cfg[key] > 5:
                cfg[key] = 5
        Xs = X.iloc[idx] if isinstance(X, pd.DataFrame) else np.asarray(X)[idx]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluate(Xs, y[idx], payload["task"], payload["model"], cfg, cv=0.5, seed=0)
    except Exception:
        return


def _measured_trial(
    payload: Mapping[str, Any], on_start: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run :func:`evaluate` on a payload, measuring it and capturing any error."""
    out: dict[str, Any] = {"status": "finished", "metrics": {}, "error": None}
    _warm_imports(payload)
    metric = payload.get("metric")
    pruner = payload.get("pruner")
    trial = TrialHandle(pruner, metric) if pruner is not None and metric is not None else None
    if on_start is not None:
        on_start()
    with _Meter() as m:
        try:
            out["metrics"] = evaluate(
                payload["X"],
                payload["y"],
                payload["task"],
                payload["model"],
                payload["config"],
                cv=payload.get("cv", 5),
                seed=payload.get("seed", 0),
                threads=payload.get("threads", 1),
                trial=trial,
                metric=metric,
            )
        except TrialPruned:  # stopped by the pruner: its last reported value is its metric
            out["status"] = "pruned"
            if trial is not None and trial.last_value is not None:
                out["metrics"] = {str(metric): trial.last_value}
        except Exception as exc:  # a failing config is a result, not a crash
            out["status"] = "failed"
            out["error"] = _error_line(exc)
            out["traceback"] = traceback.format_exc(limit=5)
    out.update(
        duration_s=m.duration_s,
        cpu_s=m.cpu_s,
        peak_mem_mb=m.peak_mem_mb,
        started_at=m.started_at,
        finished_at=m.finished_at,
    )
    if trial is not None and trial.steps:
        out["curve"] = trial.curve()
    if out["status"] == "pruned" and not out["metrics"]:
        out["status"], out["error"] = "failed", "pruned before any step was reported"
    if out["status"] == "finished" and not out["metrics"]:
        out["status"], out["error"] = "failed", "no metric could be computed"
    return out


def _child_main(payload: Mapping[str, Any], conn: Any) -> None:
    try:
        result = _measured_trial(payload, on_start=lambda: conn.send(_STARTED))
    except BaseException as exc:
        result = {"status": "failed", "metrics": {}, "error": _error_line(exc)}
    conn.send(result)
    conn.close()


def _isolation_context() -> mp.context.BaseContext:
    """Fork server from a main process (never forks a process with DuckDB/OpenMP threads);
    plain fork from a worker process, which only ever fits models in its own children."""
    methods = mp.get_all_start_methods()
    if mp.parent_process() is not None and "fork" in methods:
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def _isolated_trial(payload: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one trial in a child process; kill it when it exceeds ``timeout_s`` seconds.

    The clock starts when the child reports that it is about to fit (after start-up,
    unpickling the data and imports, which get ``STARTUP_LIMIT_S`` of their own), so a
    slow first start of the fork server never counts against the configuration.
    """
    ctx = _isolation_context()
    recv, send = ctx.Pipe(duplex=False)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    proc = ctx.Process(target=_child_main, args=(payload, send), daemon=True)
    proc.start()
    send.close()

    def failed(error: str) -> dict[str, Any]:
        return {
            "status": "failed",
            "metrics": {},
            "error": error,
            "duration_s": time.perf_counter() - t0,
            "started_at": started,
            "finished_at": datetime.now(UTC),
        }

    try:
        try:
            if not recv.poll(STARTUP_LIMIT_S):
                proc.kill()
                return failed(f"worker process did not start within {STARTUP_LIMIT_S:g} s")
            first = recv.recv()
            if first != _STARTED:  # the child failed before fitting
                return first
            started, t0 = datetime.now(UTC), time.perf_counter()
            if recv.poll(timeout_s):
                return recv.recv()
        except EOFError:
            proc.join()
            return failed(f"worker process died (exit code {proc.exitcode})")
        proc.kill()
        return failed(f"TimeoutError: exceeded the time limit of {timeout_s:g} s")
    finally:
        recv.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def run_trial(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate one config and measure it; never raises for a failing config.

    ``payload`` holds ``X, y, task, model, config, cv, seed`` and optionally ``timeout_s``
    (None = no limit, run in this process), ``pruner`` and ``metric`` (a stepwise fit that
    reports ``metric``'s curve and may be pruned). Returns ``status``
    ('finished'/'failed'/'pruned'), ``metrics`` (a pruned trial's: its last reported value),
    ``error``, ``duration_s``, ``cpu_s``, ``peak_mem_mb``, ``started_at``, ``finished_at``
    and, for a stepwise fit, ``curve`` (``metric, step, value, elapsed_s`` per step). A
    top-level function, so any ``concurrent.futures`` executor (local processes, a Dask
    cluster) can run it.
    """
    timeout_s = payload.get("timeout_s")
    if timeout_s is not None:
        if not timeout_s > 0:
            raise ValidationError(f"timeout_s must be > 0, not {timeout_s!r}")
        return _isolated_trial(payload, float(timeout_s))
    return _measured_trial(payload)


# ---------------------------------------------------------------------------------------
# logging


def log_trial(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    config: Mapping[str, Any],
    result: Mapping[str, Any],
    seed: int = 0,
    split: str = "valid",
    source: str = sources.TRAIN,
    run_id: str | None = None,
) -> str:
    """Write one trial's result to the warehouse as a run (under ``run_id`` when given: a
    claimed trial's); returns its run_id."""
    from metaopt_bayes.zoo import get_family

    family = get_family(model)
    try:
        arch = family.architecture(config)
    except Exception:
        arch = {"kind": family.kind}
    meta = {
        k: result.get(k)
        for k in ("status", "duration_s", "cpu_s", "peak_mem_mb", "error", "started_at")
        if result.get(k) is not None
    }
    if result.get("finished_at") is not None:
        meta["finished_at"] = result["finished_at"]
    if result.get("curve"):  # a stepwise fit's learning curve (finished or pruned)
        meta["curve"] = list(result["curve"])
    if run_id is not None:
        meta["run_id"] = run_id
    params = {k: _plain(v) for k, v in config.items()}
    return warehouse.log_run(
        dataset,
        model,
        params,
        dict(result.get("metrics") or {}),
        seed=seed,
        source=source,
        arch={k: _plain(v) for k, v in arch.items() if v is not None},
        split=split,
        **meta,
    )


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def make_payload(
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    model: str,
    config: Mapping[str, Any],
    cv: int | float | None = 5,
    seed: int = 0,
    timeout_s: float | None = None,
    threads: int | None = 1,
    pruner: Any = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """The picklable work order :func:`run_trial` expects (``pruner`` and ``metric``: fit
    stepwise and report ``metric``'s curve, see :func:`evaluate`)."""
    return {
        "pruner": pruner,
        "metric": metric,
        "X": X,
        "y": y,
        "task": task,
        "model": model,
        "config": {k: _plain(v) for k, v in config.items()},
        "cv": cv,
        "seed": seed,
        "timeout_s": timeout_s,
        "threads": threads,
    }


def train_and_evaluate(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    config: Mapping[str, Any],
    cv: int | float | None = 5,
    seed: int = 0,
    timeout_s: float | None = None,
    split: str = "valid",
) -> str:
    """Train ``model`` with ``config`` on a registered ``dataset``, evaluate, log one run.

    ``cv``: k-fold cross-validation for an integer ≥ 2 (stratified for classification), a
    single holdout for a fraction in (0, 1) or None (25%). A config that raises or runs past
    ``timeout_s`` is logged as a run with ``status='failed'`` and its error. Unknown dataset
    or model raise :class:`~warehouse.errors.NotFoundError`. Returns the run_id.
    """
    from metaopt_bayes.zoo import get_family

    family = get_family(model)
    X, y, task = load_dataset(warehouse, dataset)
    if not family.supports(task):
        raise ValidationError(f"model {model!r} does not support {task} (dataset {dataset!r})")
    if not isinstance(config, Mapping):
        raise ValidationError(f"config must be a mapping, not {type(config).__name__}")
    result = run_trial(make_payload(X, y, task, model, config, cv, seed, timeout_s))
    return log_trial(warehouse, dataset, model, config, result, seed=seed, split=split)


__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "evaluate",
    "load_dataset",
    "log_trial",
    "make_payload",
    "run_trial",
    "train_and_evaluate",
]

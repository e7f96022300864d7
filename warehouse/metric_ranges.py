"""Known metrics: the direction and range a metric name gets when a warehouse first sees it.

This table only seeds the warehouse's own ``metrics`` table (``name, direction, lower,
upper``), which is the one source every check reads: ingest (``log_runs``, ``log_run``,
``metaopt ingest``) refuses a value outside its metric's stored range, and the audit
``metric_out_of_range`` (``metaopt check``) reports stored values outside it (values stored
before the range was set, or by an older metaopt). ``Warehouse.set_metric_range`` overrides
a range (accuracy logged in percent: ``set_metric_range("accuracy", 0, 100)``) before or
after the first run. A name not listed here (after dropping a ``val_``/``valid_``/``test_``/
``train_``/``eval_`` prefix) gets no range and the direction its name suggests
(:func:`guess_direction`). docs/warehouse.md prints this table.
"""

from __future__ import annotations

import math
from typing import Any

_UNIT = (0.0, 1.0)
_NONNEG = (0.0, None)
_MAX, _MIN = "maximize", "minimize"

#: name → (direction, lower, upper); ``None`` is an open end.
KNOWN_METRICS: dict[str, tuple[str, float | None, float | None]] = {
    # scores in [0, 1], higher is better
    **{
        name: (_MAX, *_UNIT)
        for name in (
            "accuracy",
            "balanced_accuracy",
            "predictive_accuracy",
            "top_k_accuracy",
            "precision",
            "precision_macro",
            "precision_micro",
            "precision_weighted",
            "recall",
            "recall_macro",
            "recall_micro",
            "recall_weighted",
            "sensitivity",
            "specificity",
            "f1",
            "f1_macro",
            "f1_micro",
            "f1_weighted",
            "jaccard",
            "auc",
            "roc_auc",
            "roc_auc_ovr",
            "roc_auc_ovo",
            "pr_auc",
            "average_precision",
        )
    },
    # correlations in [-1, 1]
    "mcc": (_MAX, -1.0, 1.0),
    "matthews_corrcoef": (_MAX, -1.0, 1.0),
    "cohen_kappa": (_MAX, -1.0, 1.0),
    "r2": (_MAX, None, 1.0),
    # error rates in [0, 1], lower is better
    "error_rate": (_MIN, *_UNIT),
    "misclassification_rate": (_MIN, *_UNIT),
    "brier_score": (_MIN, *_UNIT),
    # losses and errors >= 0
    **{
        name: (_MIN, *_NONNEG)
        for name in ("log_loss", "cross_entropy", "rmse", "mse", "mae", "mape", "rmsle", "msle")
    },
    # tabrepo's metric_error is a loss of several kinds: no range
    "metric_error": (_MIN, None, None),
    # costs >= 0
    **{
        name: (_MIN, *_NONNEG)
        for name in (
            "duration_s",
            "time_train_s",
            "time_infer_s",
            "fit_time",
            "score_time",
            "cpu_s",
            "peak_mem_mb",
        )
    },
}

_PREFIXES = ("val_", "valid_", "validation_", "test_", "train_", "eval_")
_MINIMIZE_HINTS = (
    "loss", "error", "rmse", "mae", "mse", "time", "duration", "regret", "cpu_s", "mem",
)  # fmt: skip


def guess_direction(metric: str) -> str:
    """The direction of a metric new to a warehouse: the known table's, else ``'minimize'``
    when the name says lower is better (loss, error, rmse, mae, mse, time, duration, regret,
    cpu_s, mem), else ``'maximize'``."""
    known = known_metric(metric)
    if known is not None:
        return known[0]
    low = metric.lower()
    return _MIN if any(h in low for h in _MINIMIZE_HINTS) else _MAX


def known_metric(metric: str) -> tuple[str, float | None, float | None] | None:
    """``(direction, lower, upper)`` of a known metric name (case-insensitive, a ``val_``/
    ``test_``/… prefix dropped), else None."""
    low = metric.strip().lower()
    if low in KNOWN_METRICS:
        return KNOWN_METRICS[low]
    for prefix in _PREFIXES:
        if low.startswith(prefix) and low[len(prefix) :] in KNOWN_METRICS:
            return KNOWN_METRICS[low[len(prefix) :]]
    return None


def default_range(metric: str) -> tuple[float | None, float | None]:
    """``(lower, upper)`` a metric new to a warehouse gets (``None``: open)."""
    known = known_metric(metric)
    return (None, None) if known is None else (known[1], known[2])


def describe_range(lower: float | None, upper: float | None) -> str:
    """``[0, 1]``, ``>= 0``, ``<= 1`` for a message."""
    if lower is not None and upper is not None:
        return f"[{lower:g}, {upper:g}]"
    return f">= {lower:g}" if lower is not None else f"<= {upper:g}"


def outside(value: float, lower: float | None, upper: float | None) -> bool:
    """Whether a finite ``value`` lies outside ``[lower, upper]`` (open ends ignored)."""
    return (lower is not None and value < lower) or (upper is not None and value > upper)


def check_bounds(name: str, lower: float | None, upper: float | None) -> None:
    """Refuse a range that is not two finite numbers (or None) in order."""
    from warehouse.errors import ValidationError

    for end, value in (("lower", lower), ("upper", upper)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValidationError(f"metric {name!r}: {end} bound {value!r} is not a finite number")
    if lower is not None and upper is not None and lower > upper:
        raise ValidationError(f"metric {name!r}: lower bound {lower!r} is above upper {upper!r}")


# ---------------------------------------------------------------------------- the stored table
# Both take an open DuckDB connection inside the caller's transaction (this module imports no
# database code): ingest (runs) and warehouse.curves (learning curves) share them.
def stored_ranges(con: Any, names: list[str]) -> dict[str, tuple[float | None, float | None]]:
    """``(lower, upper)`` of each metric: the warehouse's ``metrics`` table (the one a user
    overrides with ``set_metric_range``), else the known table's default for a new name."""
    bounds = {name: default_range(name) for name in names}
    if names:
        for name, lower, upper in con.execute(
            "SELECT name, lower, upper FROM metrics WHERE list_contains(?::VARCHAR[], name)",
            [sorted(set(names))],
        ).fetchall():
            bounds[name] = (lower, upper)
    return bounds


def register_metrics(con: Any, names: list[str]) -> None:
    """Register the metric names the warehouse does not know yet, with the direction and
    range of this module's table (one statement for any number of names)."""
    ranges = [default_range(n) for n in names]
    con.execute(
        "INSERT INTO metrics (name, direction, lower, upper) SELECT n, d, lo, hi FROM "
        "(SELECT unnest(?::VARCHAR[]) AS n, unnest(?::VARCHAR[]) AS d, unnest(?::DOUBLE[]) AS lo, "
        "unnest(?::DOUBLE[]) AS hi) WHERE n NOT IN (SELECT name FROM metrics)",
        [names, [guess_direction(n) for n in names], *map(list, zip(*ranges, strict=True))],
    )

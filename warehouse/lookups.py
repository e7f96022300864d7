"""Small typed reads of the warehouse's tables, for the search loop and the CLI.

Each function runs trusted SQL with bound parameters (user input is never formatted into
the text) and returns plain Python values or a small DataFrame, so nothing above the
warehouse writes SQL of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse.ingest import guess_direction

if TYPE_CHECKING:
    from warehouse.store import Store


def has_dataset(wh: Store, name: str) -> bool:
    """Whether ``name`` is a registered dataset, has runs (imported histories) or has
    meta-features."""
    rows = wh._read_df(
        "SELECT 1 FROM datasets WHERE name = $n UNION ALL "
        "SELECT 1 FROM (SELECT 1 FROM runs WHERE dataset = $n LIMIT 1) UNION ALL "
        "SELECT 1 FROM (SELECT 1 FROM dataset_meta_features WHERE dataset = $n LIMIT 1)",
        {"n": name},
    )
    return len(rows) > 0


def metric_direction(wh: Store, metric: str) -> str:
    """``'maximize'`` or ``'minimize'``: the direction registered for ``metric``, else the
    one its name suggests (:func:`warehouse.ingest.guess_direction`)."""
    rows = wh._read_df("SELECT direction FROM metrics WHERE name = ?", [metric])
    return str(rows["direction"].iloc[0]) if len(rows) else guess_direction(metric)

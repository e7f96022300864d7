"""Shared fixtures. The warehouse fixtures are reused by every area's tests: keep them stable.

* ``wh_memory`` — an empty in-memory :class:`warehouse.Warehouse`.
* ``wh_file`` — an empty file-backed warehouse in ``tmp_path`` (``wh_file.path``).
* ``tiny_history`` — a 7-run MLflow-layout DataFrame over 2 datasets and 2 model families
  (fixed run ids ``r1``..``r7``; see :func:`tiny_history_frame`).
* ``tiny_meta_features`` — wide meta-features for the two datasets.
* ``wh_seeded`` — an in-memory warehouse holding ``tiny_history`` and ``tiny_meta_features``.
* ``shared_data`` — ``/work/shared/data`` (or ``$METAOPT_SHARED_DATA``), skipping when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def tiny_history_frame() -> pd.DataFrame:
    """Seven runs: datasets d1/d2, models rf/svm; accuracy (maximize) and log_loss (minimize).

    r6 failed (no metrics); r7 ties r1 on d1/rf accuracy but was logged later.
    """
    return pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7"],
            "dataset": ["d1", "d1", "d1", "d2", "d2", "d2", "d1"],
            "model": ["rf", "rf", "svm", "rf", "svm", "svm", "rf"],
            "status": ["finished"] * 5 + ["failed", "finished"],
            "duration_s": [1.0, 2.0, 0.5, 3.0, 0.25, 0.1, 1.5],
            "params.max_depth": [3, 5, np.nan, 4, np.nan, np.nan, 8],
            "params.criterion": ["gini", "entropy", None, "gini", None, None, "gini"],
            "params.C": [np.nan, np.nan, 1.0, np.nan, 10.0, 0.1, np.nan],
            "metrics.accuracy": [0.90, 0.85, 0.80, 0.70, 0.75, np.nan, 0.90],
            "metrics.log_loss": [0.30, 0.40, 0.50, 0.90, 0.60, np.nan, 0.20],
        }
    )


def tiny_meta_features_frame() -> pd.DataFrame:
    """Meta-features for d1 and d2 (d2 lacks ``class_entropy``)."""
    return pd.DataFrame(
        {"dataset": ["d1", "d2"], "n_rows": [150.0, 1000.0], "class_entropy": [1.58, np.nan]}
    )


@pytest.fixture
def wh_memory():
    from warehouse import Warehouse

    with Warehouse(":memory:") as wh:
        yield wh


@pytest.fixture
def wh_file(tmp_path: Path):
    from warehouse import Warehouse

    with Warehouse(tmp_path / "wh.duckdb") as wh:
        yield wh


@pytest.fixture
def tiny_history() -> pd.DataFrame:
    return tiny_history_frame()


@pytest.fixture
def tiny_meta_features() -> pd.DataFrame:
    return tiny_meta_features_frame()


@pytest.fixture
def wh_seeded(wh_memory):
    wh_memory.log_runs(tiny_history_frame())
    wh_memory.log_dataset_meta_features(tiny_meta_features_frame())
    return wh_memory


@pytest.fixture
def shared_data() -> Path:
    env = os.environ.get("METAOPT_SHARED_DATA")
    here = Path(__file__).resolve()
    candidates = (
        [Path(env)] if env else [here.parents[n] / ".." / "shared" / "data" for n in (1, 2)]
    )
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    pytest.skip(
        f"shared data folder is absent (looked in {candidates[0]}; set METAOPT_SHARED_DATA)"
    )

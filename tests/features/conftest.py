"""Fixtures for the datasets / meta-features / trainer tests (issue 3)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest


def shared_data_dir() -> Path | None:
    """``$METAOPT_SHARED_DATA`` or ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("METAOPT_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def pmlb_dir() -> Path:
    base = shared_data_dir()
    if base is None or not (base / "pmlb" / "datasets").is_dir():
        pytest.skip("shared data folder with pmlb/ is absent (set METAOPT_SHARED_DATA)")
    return base / "pmlb" / "datasets"


@pytest.fixture
def mem_wh():
    from warehouse import Warehouse

    wh = Warehouse(":memory:")
    yield wh
    wh.close()


@pytest.fixture
def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    return load_iris(as_frame=True).frame

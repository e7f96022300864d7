"""Fixtures for the datasets / meta-features / trainer tests (issue 3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def pmlb_dir(shared_data: Path) -> Path:
    """The PMLB datasets folder of the shared data (``shared_data`` skips when it is absent)."""
    path = shared_data / "pmlb" / "datasets"
    if not path.is_dir():
        pytest.skip(f"shared data folder has no pmlb/datasets ({shared_data})")
    return path


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

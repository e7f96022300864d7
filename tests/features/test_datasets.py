"""Dataset registration: sources, content hash, conflicts, atomicity, stored data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from warehouse.datasets import SKLEARN_DATASETS, infer_task, list_datasets, load_dataset_frame
from warehouse.errors import NotFoundError, ValidationError


def _mf(wh, name):
    return wh._read_df(
        "SELECT name, value, method FROM dataset_meta_features WHERE dataset = ?", [name]
    )


def test_register_dataframe_stores_row_meta_features_and_data(mem_wh, iris_frame):
    info = mem_wh.register_dataset("iris", iris_frame, "target")
    assert info["created"] and info["task"] == "classification"
    assert (info["n_rows"], info["n_features"], info["n_classes"]) == (150, 4, 3)
    mf = _mf(mem_wh, "iris")
    assert set(mf["method"]) == {"general", "statistical", "info_theory", "landmarking"}
    assert len(mf) == info["n_meta_features"]
    frame, target, task = load_dataset_frame(mem_wh, "iris")
    assert (target, task) == ("target", "classification")
    pd.testing.assert_frame_equal(frame, iris_frame, check_dtype=False)
    # visible to user SQL through the warehouse
    out = mem_wh.sql(
        "SELECT value FROM dataset_meta_features WHERE dataset = 'iris' AND name = 'n_instances'"
    )
    assert out["value"].iloc[0] == 150


def test_same_data_is_a_noop_and_other_data_is_an_error(mem_wh, iris_frame):
    mem_wh.register_dataset("iris", iris_frame, "target")
    again = mem_wh.register_dataset("iris", iris_frame.copy(), "target")
    assert again["created"] is False
    assert len(mem_wh.sql("SELECT * FROM datasets")) == 1
    changed = iris_frame.copy()
    changed.loc[0, "sepal length (cm)"] += 0.1
    with pytest.raises(ValidationError, match="'iris' is already registered with different"):
        mem_wh.register_dataset("iris", changed, "target")
    with pytest.raises(ValidationError, match="already registered as classification"):
        mem_wh.register_dataset("iris", iris_frame, "target", task="regression")


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet"])
def test_files_of_every_format(mem_wh, iris_frame, tmp_path, suffix):
    path = tmp_path / f"flowers{suffix}"
    if suffix == ".parquet":
        iris_frame.to_parquet(path)
    else:
        iris_frame.to_csv(path, sep="\t" if ".tsv" in suffix else ",", index=False)
    info = mem_wh.register_dataset(None, str(path), "target")
    assert info["name"] == "flowers" and info["n_rows"] == 150
    assert info["source"] == str(path.resolve())


@pytest.mark.parametrize("name", sorted(SKLEARN_DATASETS))
def test_bundled_sklearn_datasets(mem_wh, name):
    info = mem_wh.register_dataset(None, f"sklearn:{name}", "target")
    assert info["name"] == name and info["task"] == SKLEARN_DATASETS[name][1]
    assert info["n_meta_features"] >= 20


def test_pmlb_tsv(mem_wh, pmlb_dir):
    info = mem_wh.register_dataset(None, str(pmlb_dir / "monk1.tsv.gz"), "target")
    assert info["name"] == "monk1" and info["task"] == "classification"
    assert (info["n_rows"], info["n_features"], info["n_classes"]) == (556, 6, 2)


def test_bad_input_is_refused_and_writes_nothing(mem_wh, iris_frame, tmp_path):
    with pytest.raises(ValidationError, match="target column 'y' is not in the data"):
        mem_wh.register_dataset("iris", iris_frame, "y")
    with pytest.raises(NotFoundError, match="unknown bundled dataset 'sklearn:mnist'"):
        mem_wh.register_dataset(None, "sklearn:mnist", "target")
    with pytest.raises(NotFoundError, match="does not exist"):
        mem_wh.register_dataset(None, str(tmp_path / "nope.csv"), "target")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValidationError, match="cannot tell the format"):
        mem_wh.register_dataset(None, str(tmp_path / "x.json"), "target")
    with pytest.raises(ValidationError, match="is a folder, not a data file"):
        mem_wh.register_dataset(None, str(tmp_path), "target")
    with pytest.raises(ValidationError, match="a dataset needs a name"):
        mem_wh.register_dataset("  ", iris_frame, "target")
    bad = iris_frame.copy()
    bad.loc[3, "target"] = np.nan
    with pytest.raises(ValidationError, match="missing in row 3"):
        mem_wh.register_dataset("iris", bad, "target")
    assert mem_wh.sql("SELECT count(*) AS n FROM datasets")["n"].iloc[0] == 0


def test_failure_inside_the_transaction_rolls_everything_back(mem_wh, iris_frame, monkeypatch):
    import warehouse.metafeatures as mfmod

    real = mfmod.compute_meta_features

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        out.loc[len(out)] = ["poison", float("inf"), "general", 0.0]  # CHECK isfinite fails
        return out

    monkeypatch.setattr(mfmod, "compute_meta_features", poisoned)
    with pytest.raises(ValidationError):
        mem_wh.register_dataset("iris", iris_frame, "target")
    assert mem_wh.sql("SELECT count(*) AS n FROM datasets")["n"].iloc[0] == 0
    assert mem_wh.sql("SELECT count(*) AS n FROM dataset_meta_features")["n"].iloc[0] == 0
    with pytest.raises(NotFoundError):
        load_dataset_frame(mem_wh, "iris")


def test_dataset_created_by_ingest_is_completed(mem_wh, iris_frame):
    mem_wh.log_run("iris", "knn", {"n_neighbors": 3}, {"accuracy": 0.9})
    with pytest.raises(NotFoundError, match="no stored data"):
        load_dataset_frame(mem_wh, "iris")
    info = mem_wh.register_dataset("iris", iris_frame, "target")
    assert info["created"]
    listed = list_datasets(mem_wh)
    assert listed.loc[0, "name"] == "iris" and listed.loc[0, "n_runs"] == 1
    assert listed.loc[0, "landmark_1nn"] > 0.8


def test_infer_task():
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([0, 1, 2, 1])) == "classification"
    assert infer_task(pd.Series([0.5, 1.2, 3.3])) == "regression"
    assert infer_task(pd.Series(np.arange(100))) == "regression"


def test_single_class_target_is_rejected_and_nothing_is_stored(mem_wh, iris_frame):
    one = iris_frame.assign(target=0)
    with pytest.raises(ValidationError, match="single class"):
        mem_wh.register_dataset("one", one, "target")
    assert mem_wh._read_df("SELECT count(*) AS n FROM datasets")["n"].iloc[0] == 0

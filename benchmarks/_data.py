"""Load the shared third-party meta-data as training-matrix frames (no warehouse needed).

Each loader returns ``(runs, meta)``: ``runs`` has the columns of ``Warehouse.training_matrix``
(run_id, dataset, model, value, duration_s, seq, ``params.<name>``) and ``meta`` is a wide
meta-feature frame indexed by dataset, as ``Warehouse.meta_features`` returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def shared_data_dir() -> Path | None:
    """``$METAOPT_SHARED_DATA`` or ``<repo>/../shared/data``; None when absent."""
    env = os.environ.get("METAOPT_SHARED_DATA")
    repo = Path(__file__).resolve().parents[1]
    cands = (
        [Path(env)]
        if env
        else [repo / ".." / "shared" / "data", repo / ".." / ".." / "shared" / "data"]
    )
    return next((c for c in cands if c.is_dir()), None)


def _none(v):
    return None if isinstance(v, str) and v.strip() in ("None", "") else v


def load_openml_rf(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """openml100_rf: 47k random-forest runs over 94 tasks; meta-features for 51 of them."""
    df = pd.read_csv(root / "openml100_rf" / "random_forest.csv", dtype=str)
    runs = pd.DataFrame(
        {
            "run_id": "rf-" + df["task_id"] + "-" + df["config_row"],
            "dataset": "task_" + df["task_id"],
            "model": "random_forest",
            "value": df["predictive_accuracy"].astype(float),
            "duration_s": np.nan,
            "seq": np.arange(len(df)),
        }
    )
    for col in [
        "bootstrap",
        "criterion",
        "max_depth",
        "max_features",
        "max_leaf_nodes",
        "min_samples_leaf",
        "min_samples_split",
        "min_weight_fraction_leaf",
        "n_estimators",
        "strategy",
    ]:
        vals = df[col].map(_none)
        if col == "bootstrap":
            runs["params." + col] = vals.map({"True": 1.0, "False": 0.0}).astype(float)
        elif col in ("criterion", "strategy"):
            runs["params." + col] = vals.astype(object)
        else:
            runs["params." + col] = pd.to_numeric(vals, errors="coerce")
    q = pd.read_csv(root / "openml100_rf" / "task_qualities.csv")
    q = q.drop(columns=["source"], errors="ignore")
    q.index = "task_" + q.pop("task_id").astype(str)
    q.index.name = "dataset"
    return runs, q.astype(float)


def load_tabrepo(root: Path, target: str = "metric_error") -> tuple[pd.DataFrame, pd.DataFrame]:
    """tabrepo_lightgbm_2022: 104 LightGBM configs × 93 tasks, with problem_type column.

    ``target`` is ``metric_error`` or ``time_train_s`` (the latter also goes in duration_s).
    """
    base = root / "tabrepo_lightgbm_2022"
    res = pd.read_csv(base / "results.csv")
    cfg = pd.read_csv(base / "configs_lightgbm.csv")
    res = res.merge(cfg, on="config_name", how="left")
    runs = pd.DataFrame(
        {
            "run_id": "lgb-" + res["task_id"].astype(str) + "-" + res["config_name"],
            "dataset": "task_" + res["task_id"].astype(str),
            "model": "lightgbm",
            "value": res[target].astype(float),
            "duration_s": res["time_train_s"].astype(float),
            "seq": np.arange(len(res)),
            "problem_type": res["problem_type"].astype(str),
        }
    )
    for col in ["hp_learning_rate", "hp_num_leaves", "hp_feature_fraction", "hp_min_data_in_leaf"]:
        runs["params." + col[3:]] = pd.to_numeric(res[col], errors="coerce")
    runs["params.extra_trees"] = res["hp_extra_trees"].map(
        lambda v: 1.0 if str(v) == "True" else (0.0 if str(v) == "False" else np.nan)
    )
    meta = pd.read_csv(base / "task_metadata.csv")
    keep = [
        "MajorityClassSize",
        "MaxNominalAttDistinctValues",
        "MinorityClassSize",
        "NumberOfClasses",
        "NumberOfFeatures",
        "NumberOfInstances",
        "NumberOfInstancesWithMissingValues",
        "NumberOfMissingValues",
        "NumberOfNumericFeatures",
        "NumberOfSymbolicFeatures",
    ]
    m = meta[["tid", *keep]].drop_duplicates("tid")
    m.index = "task_" + m.pop("tid").astype(str)
    m.index.name = "dataset"
    return runs, m.astype(float)


def load_pmlb_suite(family: str, split: str = "all") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``benchmarks/data/pmlb_<family>.parquet`` (real training on PMLB classification
    datasets, ``make_pmlb_suites.py``): accuracy of one shared pool of configs per dataset;
    ``split`` keeps the ``dev`` or ``holdout`` datasets of ``pmlb_splits.csv`` (or ``all``)."""
    data = Path(__file__).resolve().parent / "data"
    df = pd.read_parquet(data / f"pmlb_{family}.parquet")
    if split != "all":
        groups = pd.read_csv(data / "pmlb_splits.csv")
        keep = set(groups.loc[groups["split"] == split, "dataset"].astype(str))
        df = df[df["dataset"].astype(str).isin(keep)].reset_index(drop=True)
    runs = pd.DataFrame(
        {
            "run_id": family
            + "-"
            + df["dataset"].astype(str)
            + "-"
            + df["tags.config_id"].astype(str),
            "dataset": df["dataset"].astype(str),
            "model": family,
            "value": df["metrics.accuracy"].astype(float),
            "duration_s": df["duration_s"].astype(float),
            "seq": np.arange(len(df)),
        }
    )
    for col in [c for c in df.columns if c.startswith("params.")]:
        runs[col] = df[col].to_numpy()
    meta = pd.read_parquet(data / "pmlb_meta.parquet")
    meta = meta.set_index(meta["dataset"].astype(str)).drop(columns=["dataset"])
    meta.index.name = "dataset"
    return runs, meta.select_dtypes("number").astype(float)

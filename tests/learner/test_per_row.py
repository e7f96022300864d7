"""Hyperparameters that count training rows, encoded relative to the dataset's size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.features import FeatureEncoder
from metaopt_bayes.model import MetaLearner
from warehouse.errors import ValidationError


def _cliff(sizes: list[int], seed: int, n_runs: int = 24) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Datasets whose score falls off a cliff once a leaf needs more than a third of the rows
    (a tree that cannot split), as ``min_samples_leaf`` does; the learning rate has a smooth
    optimum everywhere."""
    rng = np.random.default_rng(seed)
    rows, meta = [], []
    for d, n in enumerate(sizes):
        name = f"s{seed}d{d}"
        leaf = np.round(10 ** rng.uniform(0, 2, n_runs))
        lr = 10 ** rng.uniform(-2, 0, n_runs)
        ratio = leaf / n
        cliff = 1.5 / (1.0 + np.exp(-4.0 * (np.log10(ratio) + 0.5)))  # soft step at 0.3
        y = 1.0 - 0.3 * (np.log10(lr) + 1) ** 2 - cliff
        y = y + 0.1 * rng.normal() + 0.02 * rng.normal(size=n_runs)
        rows += [
            {"dataset": name, "value": v, "params.min_samples_leaf": a, "params.lr": b}
            for v, a, b in zip(y, leaf, lr, strict=True)
        ]
        meta.append({"dataset": name, "n_instances": n, "n_features": 5 + d % 3})
    return pd.DataFrame(rows), pd.DataFrame(meta).set_index("dataset")


@pytest.fixture(scope="module")
def fits():
    sizes = [40, 60, 90, 150, 250, 400, 700, 1000, 2000, 5000] * 2
    runs, meta = _cliff(sizes, seed=0)
    kw = {"method": "map", "discrepancy": False, "direction": "maximize"}
    rel = MetaLearner("score", per_row=["min_samples_leaf"], **kw).fit_frame(runs, meta)
    raw = MetaLearner("score", per_row=[], **kw).fit_frame(runs, meta)
    return rel, raw, _cliff([50, 80, 120, 3000], seed=1)


def test_the_encoder_codes_the_ratio_and_needs_the_size():
    runs, meta = _cliff([50, 500], seed=2)
    sizes = runs["dataset"].map(meta["n_instances"]).to_numpy(float)
    enc = FeatureEncoder.fit(runs, per_row=["min_samples_leaf"], rows=sizes)
    assert enc.uses_rows and [s.per_row for s in enc.specs] == [True, False]
    cfg = pd.DataFrame({"min_samples_leaf": [10.0, 10.0], "lr": [0.1, 0.1]})
    code = enc.linear_terms(enc.transform(cfg, rows=np.array([50.0, 500.0])))[:, 0]
    assert code[0] > code[1]  # ten rows per leaf is a larger share of 50 rows than of 500
    with pytest.raises(ValidationError, match="dataset's size is unknown"):
        enc.transform(cfg)
    back = FeatureEncoder.from_dict(enc.to_dict())
    assert np.allclose(back.transform(cfg, rows=50.0), enc.transform(cfg, rows=50.0))
    # without sizes the parameter is encoded as before
    assert not FeatureEncoder.fit(runs, per_row=["min_samples_leaf"]).uses_rows


def test_a_new_small_dataset_is_predicted_to_fall_off_the_cliff(fits):
    rel, raw, (new, new_meta) = fits
    grid = pd.DataFrame({"min_samples_leaf": [2.0, 60.0], "lr": [0.1, 0.1]})
    drops = {}
    for name, ml in (("rel", rel), ("raw", raw)):
        small = ml.predict("s1d0", grid, meta=new_meta, runs=new.iloc[:0])["mean"].to_numpy()
        big = ml.predict("s1d3", grid, meta=new_meta, runs=new.iloc[:0])["mean"].to_numpy()
        drops[name] = (small[0] - small[1], big[0] - big[1])
    # 60 rows per leaf on 50 rows is the cliff, on 3,000 rows it is harmless (a quadratic
    # in the ratio bends the flat side, so the large dataset's prediction is not exactly flat)
    assert drops["rel"][0] > 0.5 and drops["rel"][0] > drops["rel"][1] + 0.5
    # encoded raw, the parameter's effect is one average for every size
    assert abs(drops["raw"][0] - drops["raw"][1]) < 0.05


def test_held_out_datasets_are_predicted_better_zero_shot(fits):
    """Before a dataset has runs its size is all that tells the cliff apart (after a few runs
    its own slopes learn it either way)."""
    rel, raw, (new, new_meta) = fits
    err = {}
    for name, ml in (("rel", rel), ("raw", raw)):
        se = []
        for ds, task in new.groupby("dataset"):
            p = ml.predict(ds, task, meta=new_meta, runs=task.iloc[:0])
            se.append((p["mean"].to_numpy() - task["value"].to_numpy()) ** 2)
        err[name] = float(np.sqrt(np.concatenate(se).mean()))
    assert err["rel"] < 0.9 * err["raw"]


def test_zoo_families_declare_their_row_counting_parameters():
    assert MetaLearner("accuracy", model="hist_gradient_boosting")._per_row() == (
        "min_samples_leaf",
    )
    assert MetaLearner("accuracy", model="imported_xgboost")._per_row() == ()
    with pytest.raises(ValidationError, match="per_row"):
        MetaLearner("accuracy", per_row="min_samples_leaf")


def test_save_load_keeps_the_sizes(fits, tmp_path):
    rel, _, (new, new_meta) = fits
    back = MetaLearner.load(rel.save(tmp_path / "m.nc"))
    assert back.rows == rel.rows and back.encoder.uses_rows
    task = new[new["dataset"] == "s1d1"]
    pd.testing.assert_frame_equal(
        back.predict("s1d1", task, meta=new_meta, runs=task.iloc[:3]),
        rel.predict("s1d1", task, meta=new_meta, runs=task.iloc[:3]),
    )
    # a training dataset's size is known to the model without meta-features
    train_ds = rel.datasets[0]
    assert np.isfinite(back.predict(train_ds, task.iloc[:2])["mean"]).all()

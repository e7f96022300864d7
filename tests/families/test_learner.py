"""FamilyLearner: predictions across families, sharing, recommend (fakes) and a real fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.families import FamilyLearner
from tests.families.conftest import FakeFamily, FakeSeconds, synthetic_history
from warehouse import Warehouse
from warehouse.errors import NotFoundError, ValidationError


def _fake(levels=(("a", 0.80), ("b", 0.70)), seconds=None) -> FamilyLearner:
    learners = {m: FakeFamily(m, lv) for m, lv in levels}
    costs = {m: FakeSeconds(m, s) for m, s in (seconds or {}).items()}
    return FamilyLearner.from_learners(learners, costs)


def _pool() -> pd.DataFrame:
    return pd.DataFrame({"model": ["a", "a", "b", "b"], "x": [0.0, 1.0, 0.0, 2.0]})


def _obs(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["model", "params.x", "value"])
    df["dataset"] = "t"
    return df


def test_predict_keeps_row_order_and_routes_rows_to_their_family():
    fl = _fake(seconds={"a": 10.0, "b": 1.0})
    out = fl.predict("t", _pool().iloc[[2, 0, 3, 1]], runs=_obs([]))
    assert out["mean"].round(3).tolist() == [0.70, 0.80, 0.72, 0.81]
    assert out["predicted_s"].tolist() == [1.0, 10.0, 1.0, 10.0]
    with pytest.raises(ValidationError, match="'model' column"):
        fl.predict("t", pd.DataFrame({"x": [1.0]}), runs=_obs([]))
    with pytest.raises(NotFoundError, match="'zzz'"):
        fl.predict("t", pd.DataFrame({"model": ["zzz"], "x": [1.0]}), runs=_obs([]))


def test_rank_families_best_first_with_observed_history():
    fl = _fake()
    obs = _obs([("b", 0.0, 0.65), ("b", 2.0, 0.71)])
    r = fl.rank_families("t", _pool(), runs=obs)
    assert r["model"].tolist() == ["a", "b"] and r["rank"].tolist() == [1, 2]
    assert r.loc[0, "n_runs"] == 0 and np.isnan(r.loc[0, "best_observed"])
    assert r.loc[1, "n_runs"] == 2 and r.loc[1, "best_observed"] == pytest.approx(0.71)
    assert (r["lower"] <= r["mean"]).all() and (r["mean"] <= r["upper"]).all()
    assert r.loc[0, "config"] == '{"x": 1.0}'  # the family's best candidate


def test_recommend_scores_all_families_against_the_incumbent_across_them():
    fl = _fake()
    out = fl.recommend(None, "t", _pool(), n=4, runs=_obs([]))
    assert out.loc[0, "model"] == "a" and out.loc[0, "x"] == 1.0
    assert sorted(out["model"]) == ["a", "a", "b", "b"]
    # an excellent observed run of b becomes the incumbent for a as well: a's EI collapses
    hi = fl.recommend(None, "t", _pool(), n=1, runs=_obs([("b", 0.0, 0.95)]))
    lo = fl.recommend(None, "t", _pool(), n=1, runs=_obs([("b", 0.0, 0.60)]))
    assert hi.loc[0, "acquisition"] < lo.loc[0, "acquisition"]
    # configs already run are excluded per family
    ran = fl.recommend(None, "t", _pool(), n=3, runs=_obs([("a", 1.0, 0.8)]))
    assert not ((ran["model"] == "a") & (ran["x"] == 1.0)).any()


def test_cost_aware_ei_prefers_a_cheap_family_that_is_as_good():
    fl = _fake(levels=(("a", 0.80), ("b", 0.80)), seconds={"a": 100.0, "b": 1.0})
    pool = pd.DataFrame({"model": ["a", "b"], "x": [1.0, 1.0]})
    assert fl.recommend(None, "t", pool, runs=_obs([])).loc[0, "model"] == "a"  # tie → first
    cheap = fl.recommend(None, "t", pool, acquisition="cost-ei", runs=_obs([]))
    assert cheap.loc[0, "model"] == "b"
    assert cheap.loc[0, "predicted_s"] == 1.0
    with pytest.raises(ValidationError, match="cost-ei"):
        _fake().recommend(None, "t", pool, acquisition="cost-ei", runs=_obs([]))


def test_shared_dataset_effect_shifts_only_unobserved_families():
    fl = _fake()
    fl.share, fl.rho = True, 0.5
    obs = _obs([("b", 0.0, 0.80)])  # b scores 0.10 above its zero-shot 0.70
    out = fl.predict("t", _pool(), runs=obs, predictive=False)
    assert out["mean"].round(4).tolist() == [0.85, 0.86, 0.70, 0.72]  # a shifted by 0.05
    off = fl.predict("t", _pool(), runs=obs, predictive=False, share=False)
    assert off["mean"].round(4).tolist() == [0.80, 0.81, 0.70, 0.72]


def test_estimate_sharing_recovers_a_common_dataset_effect():
    fl = _fake()
    rows = []
    rng = np.random.default_rng(0)
    for d in range(20):
        e = rng.normal(0, 0.05)  # the dataset is easier/harder for every family alike
        rows += [(f"d{d}", "a", 0.0, 0.80 + e), (f"d{d}", "b", 0.0, 0.70 + e)]
    runs = pd.DataFrame(rows, columns=["dataset", "model", "params.x", "value"])
    assert fl.estimate_sharing(runs, None) == pytest.approx(1.0, abs=0.05)
    assert fl.rho_n == 40
    # anti-correlated residuals (one family's good dataset is the other's bad) → no sharing
    anti = runs.copy()
    anti.loc[anti["model"] == "b", "value"] = 1.5 - anti.loc[anti["model"] == "a", "value"].values
    assert fl.estimate_sharing(anti, None) == 0.0


@pytest.fixture(scope="module")
def fitted():
    runs, meta = synthetic_history(n_datasets=8, n_configs=6)
    train = runs[runs["dataset"] != "d7"]
    fl = FamilyLearner("accuracy", method="map", cost=True, prior_meta=1.0)
    return fl.fit_frame(train, meta), runs, meta


@pytest.mark.slow  # four MAP fits: ~60 s on a busy 2-core machine (PyTensor compiles each)
def test_real_fit_ranks_families_zero_shot_and_after_runs(fitted):
    fl, runs, meta = fitted
    assert set(fl.learners) == {"knn", "logistic_regression"}
    assert set(fl.cost_learners) == set(fl.learners)
    pool = pd.DataFrame(
        {
            "model": ["knn"] * 3 + ["logistic_regression"] * 3,
            "n_neighbors": [5.0, 10.0, 20.0, None, None, None],
            "C": [None, None, None, 0.1, 10.0, 100.0],
        }
    )
    empty = runs.iloc[:0]
    # d7 (held out, m = 1): knn ~0.90 vs logistic ~0.60; d0 (m = -1) the reverse
    zs = fl.rank_families("d7", pool, meta=meta, runs=empty)
    assert zs.loc[0, "model"] == "knn"
    assert fl.rank_families("d0", pool, meta=meta, runs=empty).loc[0, "model"] == (
        "logistic_regression"
    )
    # knn is ~10x cheaper in the history, and predicted so
    s = zs.set_index("model")["predicted_s"]
    assert s["knn"] < s["logistic_regression"] / 3
    # observed runs on d7 sharpen the prediction of their family
    seen = fl.rank_families("d7", pool, meta=meta, runs=runs[runs["dataset"] == "d7"])
    truth = runs[runs["dataset"] == "d7"].groupby("model")["value"].max()
    err_zs = abs(zs.set_index("model").loc["knn", "mean"] - truth["knn"])
    err_seen = abs(seen.set_index("model").loc["knn", "mean"] - truth["knn"])
    assert err_seen <= err_zs + 1e-9


@pytest.mark.slow
def test_fit_through_the_warehouse_skips_families_without_runs(fitted):
    _, runs, meta = fitted
    with Warehouse(":memory:") as wh:
        wh.log_runs(
            runs.drop(columns=["seq", "run_id"]).rename(columns={"value": "metrics.accuracy"})
        )
        wh.log_dataset_meta_features(meta.reset_index())
        fl = FamilyLearner("accuracy", ["knn", "mlp"], method="map", cost=False, share=False)
        fl.fit(wh, exclude=["d7"])
        assert list(fl.learners) == ["knn"] and "mlp" in fl.skipped
        out = fl.recommend(wh, "d7", None, n=2)
        assert (out["model"] == "knn").all() and out["rank"].tolist() == [1, 2]


def test_a_family_that_already_reached_more_than_predicted_ranks_by_it():
    fl = _fake()  # a predicted 0.81, b 0.72
    r = fl.rank_families("t", _pool(), runs=_obs([("b", 0.0, 0.95)]))
    assert r["model"].tolist() == ["b", "a"]
    assert r.loc[0, "expected_best"] == pytest.approx(0.95)
    assert r.loc[1, "expected_best"] == pytest.approx(r.loc[1, "mean"])


def test_recommend_with_pending_rows_of_a_family_without_a_learner_and_with_values():
    """Pending rows of a family the learner has no fit for (explored by design points) leave
    the pick alone; a pending row that carries a value (a pruned trial's predicted final)
    keeps it instead of being fantasized at the predicted mean."""
    fl = _fake()
    plain = fl.recommend(None, "t", _pool(), n=1, runs=_obs([]))
    other = pd.DataFrame({"model": ["c"], "x": [5.0], "value": [np.nan]})
    out = fl.recommend(None, "t", _pool(), n=1, runs=_obs([]), pending=other)
    pd.testing.assert_frame_equal(out, plain)
    # a's best config pending with a poor value of its own: it is out of the pool, and the
    # pick stays within the pool's other configs
    held = pd.DataFrame({"model": ["a", "c"], "x": [1.0, 5.0], "value": [0.1, np.nan]})
    out = fl.recommend(None, "t", _pool(), n=3, runs=_obs([]), pending=held)
    assert not ((out["model"] == "a") & (out["x"] == 1.0)).any() and len(out) == 3

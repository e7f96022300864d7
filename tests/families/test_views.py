"""Golden tests for the family views: tiny seeded input, expected rows."""

from __future__ import annotations

import pandas as pd
import pytest


def test_family_ranking_golden(wh_seeded):
    df = wh_seeded.view("family_ranking").sort_values(["dataset", "metric", "rank"])
    acc = df[df["metric"] == "accuracy"].reset_index(drop=True)
    got = acc[["dataset", "model", "best", "n_runs", "n_failed", "rank"]].to_dict("records")
    assert got == [
        {"dataset": "d1", "model": "rf", "best": 0.90, "n_runs": 3, "n_failed": 0, "rank": 1},
        {"dataset": "d1", "model": "svm", "best": 0.80, "n_runs": 1, "n_failed": 0, "rank": 2},
        {"dataset": "d2", "model": "svm", "best": 0.75, "n_runs": 1, "n_failed": 1, "rank": 1},
        {"dataset": "d2", "model": "rf", "best": 0.70, "n_runs": 1, "n_failed": 0, "rank": 2},
    ]
    assert acc["gap"].round(6).tolist() == [0.0, 0.1, 0.0, 0.05]
    d1rf = acc.iloc[0]
    assert d1rf["median_duration_s"] == pytest.approx(1.5)  # runs of 1.0, 2.0, 1.5 s
    assert d1rf["median_value"] == pytest.approx(0.90)
    # a minimized metric ranks the lowest first
    ll = df[(df["metric"] == "log_loss") & (df["dataset"] == "d1")]
    assert ll["model"].tolist() == ["rf", "svm"] and ll["best"].tolist() == [0.20, 0.50]
    assert ll["direction"].unique().tolist() == ["minimize"]


def test_family_predictions_compares_trained_recommendations(wh_seeded):
    wh = wh_seeded
    mid = wh.record_meta_model(metric="accuracy", model_family="rf", method="map", status="ok")
    svm = wh.record_meta_model(metric="accuracy", model_family="svm", method="map", status="ok")
    recs = pd.DataFrame(
        {
            "model_id": [mid, mid, svm, mid],
            "dataset": ["d1", "d1", "d2", "d2"],
            "model": ["rf", "rf", "svm", "rf"],
            "config": [{}, {}, {}, {}],
            "mean": [0.88, 0.80, 0.70, 0.50],
            "sd": [0.05, 0.01, 0.05, 0.05],
            "rank": [1, 1, 1, 1],
            # r2 scored 0.85, r1 0.90, r5 0.75; the last was never trained
            "run_id": ["r1", "r2", "r5", None],
        }
    )
    wh.record_recommendations(recs)
    got = wh.view("family_predictions").set_index("model")
    assert sorted(got.index) == ["rf", "svm"]
    rf = got.loc["rf"]
    assert rf["n"] == 2 and rf["n_datasets"] == 1 and rf["metric"] == "accuracy"
    assert rf["bias"] == pytest.approx(((0.90 - 0.88) + (0.85 - 0.80)) / 2)
    assert rf["mae"] == pytest.approx(0.035)
    # |0.02| <= 1.645 * 0.05 is inside, |0.05| > 1.645 * 0.01 is not
    assert rf["coverage_90"] == pytest.approx(0.5)
    assert got.loc["svm", "coverage_90"] == pytest.approx(1.0)


def test_family_views_parse_and_are_listed(wh_memory):
    names = set(wh_memory.views()["name"]) if "name" in wh_memory.views() else set()
    assert {"family_ranking", "family_predictions"} <= names or not names
    assert wh_memory.view("family_ranking").empty
    assert wh_memory.view("family_predictions").empty

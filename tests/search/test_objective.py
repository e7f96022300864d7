"""A user's own objective: what it may return, which metric it optimizes, one-line errors."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.optimize_model import objective_metric
from metaopt_bayes.search import TRIAL_SOURCE, optimize
from metaopt_bayes.trials import call_objective, objective_result
from tests.search.conftest import FakeLearner
from warehouse.errors import ValidationError

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _trial_runs(wh):
    return wh.sql(
        "SELECT run_id, status, duration_s, cpu_s, peak_mem_mb, error FROM runs "
        "WHERE source = ? ORDER BY seq",
        [TRIAL_SOURCE],
    )


def test_cost_and_architecture_returned_by_the_objective_are_logged(wh, pool):
    def objective(cfg):
        time.sleep(0.01)
        return {
            "score": float(FakeLearner.truth(cfg["x"], cfg["c"])),
            "loss": 1.5,
            "duration_s": 123.0,  # e.g. the cluster job's own time, not this call's
            "cpu_s": 456.0,
            "peak_mem_mb": 789.0,
            "arch.layers": 3,
            "arch.activation": "relu",
            "arch.residual": True,
        }

    res = optimize(wh, "d1", "toy", 2, candidates=pool, objective=objective, learner=FakeLearner())
    assert res.n_new == 2 and res.best_value is not None
    runs = _trial_runs(wh)
    assert (runs.status == "finished").all()
    assert runs.duration_s.tolist() == [123.0, 123.0]
    assert runs.cpu_s.tolist() == [456.0, 456.0] and runs.peak_mem_mb.tolist() == [789.0] * 2
    arch = wh.sql(
        "SELECT name, value_num, value_text FROM run_architecture WHERE run_id = ? ORDER BY name",
        [runs.run_id[0]],
    )
    assert arch.name.tolist() == ["activation", "layers", "residual"]
    assert arch.value_text[0] == "relu" and arch.value_num[1] == 3.0 and arch.value_num[2] == 1.0
    metrics = wh.sql("SELECT DISTINCT name FROM run_metrics ORDER BY name").name.tolist()
    assert metrics == ["loss", "score"]  # the reserved keys are not metrics


def test_without_cost_keys_the_call_is_measured():
    out = call_objective(lambda cfg: {"score": sum(range(200_000)) * 0.0}, None, {"x": 1})
    assert out["status"] == "finished" and out["metric"] == "score"
    assert out["duration_s"] > 0 and out["cpu_s"] >= 0 and "peak_mem_mb" not in out


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "returned NoneType None; it must return a number or a dict"),
        ("0.9", "returned str '0.9'"),
        ({"score": "high"}, "returned 'score': 'high'; a metric must be a number"),
        ({"score": 1.0, "duration_s": -1}, "duration_s=-1; it must be a finite number ≥ 0"),
        ({"score": 1.0, "cpu_s": "1s"}, "cpu_s='1s'"),
        ({"score": 1.0, "peak_mem_mb": float("nan")}, "peak_mem_mb=nan"),
        ({"score": 1.0, "arch.layers": [1, 2]}, r"arch.layers=\[1, 2\]; an architecture"),
        ({"score": 1.0, "arch.": 1}, "key 'arch.': name it arch.NAME"),
        ({"loss": 1.0}, r"returned no 'score' \(its metrics: loss\)"),
    ],
)
def test_a_bad_return_is_one_line_naming_the_key_and_logs_nothing(wh, pool, returned, message):
    with pytest.raises(ValidationError, match=message) as err:
        optimize(
            wh, "d1", "toy", 3, candidates=pool, objective=lambda cfg: returned,
            learner=FakeLearner(),
        )  # fmt: skip
    assert "\n" not in str(err.value)
    assert len(_trial_runs(wh)) == 0


def test_a_raising_objective_or_a_nan_metric_is_a_failed_trial_not_a_bad_return(wh, pool):
    calls = []

    def objective(cfg):
        calls.append(cfg)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return {"score": float("nan") if len(calls) == 2 else 0.5, "loss": 2.0}

    res = optimize(wh, "d1", "toy", 3, candidates=pool, objective=objective, learner=FakeLearner())
    runs = _trial_runs(wh)
    assert runs.status.tolist() == ["failed", "failed", "finished"]
    assert "CUDA out of memory" in runs.error[0] and "no finite 'score'" in runs.error[1]
    assert res.best_value == 0.5


def _log_custom(wh, dataset, xs, metrics=("val_accuracy",)):
    for x in xs:
        wh.log_run(
            dataset, "my_net", {"x": float(x)},
            {m: float(1 - (x - 0.3) ** 2) for m in metrics},
        )  # fmt: skip


def test_the_metric_defaults_to_the_one_the_warehouse_has_for_the_model(wh):
    # a custom family whose only metric is val_accuracy: optimize without metric= used to
    # look for `accuracy`, fail every trial and end with best_value=None
    _log_custom(wh, "other", np.linspace(0, 1, 6))
    assert objective_metric(wh, "my_net", None) == "val_accuracy"
    res = optimize(
        wh, "target", "my_net", 3, space=SPACE, fit_method="map",
        objective=lambda cfg: {"val_accuracy": float(1 - (cfg["x"] - 0.3) ** 2)},
    )  # fmt: skip
    assert res.metric == "val_accuracy" and res.direction == "maximize"
    assert res.best_value is not None and (res.trials.status == "finished").all()
    # a bare number is that metric
    more = optimize(
        wh, "target", "my_net", 4, space=SPACE, fit_method="map",
        objective=lambda cfg: float(1 - (cfg["x"] - 0.3) ** 2),
    )  # fmt: skip
    assert more.n_new == 1 and more.trials.value.notna().all()


def test_several_metrics_in_the_warehouse_need_a_name_before_any_trial(wh):
    _log_custom(wh, "other", [0.1, 0.5], metrics=("val_accuracy", "val_loss"))
    n_before = wh.count_runs()
    with pytest.raises(ValidationError, match=r"log 2 metrics \(val_accuracy, val_loss\); name"):
        optimize(wh, "target", "my_net", 3, space=SPACE, objective=lambda cfg: 1.0)
    assert wh.count_runs() == n_before
    res = optimize(
        wh, "target", "my_net", 2, space=SPACE, metric="val_loss", fit_method="map",
        objective=lambda cfg: {"val_loss": float((cfg["x"] - 0.3) ** 2), "val_accuracy": 0.5},
    )  # fmt: skip
    assert res.direction == "minimize" and res.best_value is not None


def test_with_no_runs_of_the_model_the_first_result_names_the_metric(wh):
    calls = []

    def objective(cfg):
        calls.append(cfg)
        if len(calls) == 1:
            raise RuntimeError("first run crashed")  # names nothing: the next one will
        return {"val_loss": float((cfg["x"] - 0.3) ** 2), "duration_s": 2.0}

    events = []
    res = optimize(
        wh, "target", "fresh_net", 5, space=SPACE, objective=objective, fit_method="map",
        n_init=2, callback=events.append,
    )  # fmt: skip
    assert res.metric == "val_loss" and res.direction == "minimize"
    assert res.n_new == 5 and res.trials.status.tolist() == ["failed"] + ["finished"] * 4
    assert res.best_value == pytest.approx(res.trials.value.min())
    assert [e["metric"] for e in events] == [None] + ["val_loss"] * 4
    assert not res.trials.duplicated(["x"]).any()
    # resumed: the warehouse names it now
    again = optimize(wh, "target", "fresh_net", 6, space=SPACE, objective=objective)
    assert again.metric == "val_loss" and again.n_new == 1


def test_with_no_runs_a_bare_number_or_several_metrics_need_a_name(wh):
    with pytest.raises(ValidationError, match="bare number but no metric is named"):
        optimize(wh, "target", "fresh_net", 3, space=SPACE, objective=lambda cfg: 0.5)
    with pytest.raises(ValidationError, match=r"2 metrics \(a, b\) and no metric is named"):
        optimize(wh, "target", "fresh_net", 3, space=SPACE, objective=lambda c: {"a": 1, "b": 2})
    assert wh.count_runs() == 0
    res = optimize(
        wh, "target", "fresh_net", 2, space=SPACE, metric="score", fit_method="map",
        objective=lambda cfg: 0.5,
    )  # fmt: skip
    assert res.metric == "score" and res.trials.value.tolist() == [0.5, 0.5]


@pytest.mark.filterwarnings("ignore:every one of")
def test_with_no_runs_and_every_trial_failing_the_result_says_so(wh):
    def broken(cfg):
        raise RuntimeError("bad setup")

    with pytest.warns(UserWarning, match="every one of the 2 new trials failed"):
        res = optimize(wh, "target", "fresh_net", 2, space=SPACE, objective=broken)
    assert res.best_value is None and len(res.trials) == 2 and res.metric == ""


def test_objective_result_reads_tensors_and_numpy_numbers():
    out = objective_result({"acc": np.float32(0.5), "arch.width": np.int64(64)}, None)
    assert out == {"metrics": {"acc": 0.5}, "arch": {"width": 64.0}}
    assert objective_result(np.float64(0.25), "acc")["metrics"] == {"acc": 0.25}
    assert pd.isna(objective_result({"acc": float("nan")}, "acc")["metrics"]["acc"])

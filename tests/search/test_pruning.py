"""Pruning: the trial handle an objective gets, the curve pruner's rules, the zoo's stepwise
fits, and a pruned trial's result — the parts that need no warehouse (the logging and the
searches are in test_pruning_search.py)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

import metaopt_bayes
from metaopt_bayes.pruning import CurvePruner, TrialHandle, TrialPruned
from metaopt_bayes.trials import call_objective, make_executor, takes_trial
from warehouse.errors import ValidationError


class StandIn:
    """A curve model stand-in: P(beat) falls as the curve stays below the incumbent (the
    real CurveModel is tested on its own branch; this keeps these tests fast)."""

    def __init__(self, p: float | None = None) -> None:
        self.p = p
        self.calls: list[dict] = []

    def prob_beats(self, steps, values, budget, incumbent, context=None, config=None):
        self.calls.append(
            {"steps": list(steps), "budget": budget, "incumbent": incumbent, "config": config}
        )
        if self.p is not None:
            return self.p
        return float(np.clip(0.5 + 5 * (values[-1] - incumbent), 0.0, 1.0))


class Broken:
    def prob_beats(self, *args, **kwargs):
        raise RuntimeError("no fit")


class Never:
    def should_prune(self, steps, values):
        return False


class AfterTwo:
    """Prunes once a trial has reported two steps (picklable: module level)."""

    def should_prune(self, steps, values):
        return len(steps) >= 2


# ------------------------------------------------------------------ the trial handle
def test_should_prune_is_false_before_any_report_and_without_a_pruner():
    assert TrialHandle(AfterTwo(), "acc").should_prune() is False
    h = TrialHandle(None, "acc")
    h.report(1, 0.5)
    h.report(2, 0.6)
    assert h.should_prune() is False


@pytest.mark.parametrize(
    ("step", "value", "message"),
    [
        (1, float("nan"), "value must be a finite number, not nan"),
        (1, float("inf"), "value must be a finite number, not inf"),
        (1, "0.5", "value must be a finite number, not '0.5'"),
        (1, None, "value must be a finite number, not None"),
        (1, True, "value must be a finite number, not True"),
        (-1, 0.5, "step must be a whole number ≥ 0, not -1"),
        (1.5, 0.5, "step must be a whole number ≥ 0, not 1.5"),
        (True, 0.5, "step must be a whole number ≥ 0, not True"),
    ],
)
def test_a_bad_report_is_a_one_line_error(step, value, message):
    h = TrialHandle(None, "acc")
    with pytest.raises(ValidationError, match=message) as err:
        h.report(step, value)
    assert "\n" not in str(err.value)
    assert h.steps == []  # nothing recorded


def test_steps_must_increase_and_elapsed_is_measured_unless_given():
    h = TrialHandle(None, "acc")
    h.report(0, 0.4)
    h.report(np.int64(3), np.float32(0.5), elapsed_s=12.5)
    with pytest.raises(ValidationError, match="step 3 is not after the last reported step 3"):
        h.report(3, 0.6)
    with pytest.raises(ValidationError, match="elapsed_s must be ≥ 0"):
        h.report(4, 0.6, elapsed_s=-1)
    assert h.curve() == [
        {"metric": "acc", "step": 0, "value": 0.4, "elapsed_s": h.elapsed[0]},
        {"metric": "acc", "step": 3, "value": pytest.approx(0.5), "elapsed_s": 12.5},
    ]
    assert h.elapsed[0] >= 0


def test_the_decision_is_asked_once_per_report():
    class Counting:
        n = 0

        def should_prune(self, steps, values):
            Counting.n += 1
            return False

    h = TrialHandle(Counting(), "acc")
    h.report(1, 0.5)
    assert [h.should_prune() for _ in range(3)] == [False] * 3 and Counting.n == 1
    h.report(2, 0.5)
    h.should_prune()
    assert Counting.n == 2


# ------------------------------------------------------------------ the curve pruner
@pytest.mark.parametrize("threshold", [0, 1, -0.1, 1.5, "0.1", None, True])
def test_a_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValidationError, match="threshold must be") as err:
        CurvePruner(StandIn(), threshold=threshold, budget=10)
    assert "\n" not in str(err.value)


def test_other_bad_options_are_refused():
    with pytest.raises(ValidationError, match="min_fraction must be in"):
        CurvePruner(StandIn(), min_fraction=1.0, budget=10)
    with pytest.raises(ValidationError, match="budget must be a positive whole number"):
        CurvePruner(StandIn(), budget=0)
    with pytest.raises(ValidationError, match="needs a curve model with prob_beats"):
        CurvePruner(object(), budget=10)


def test_the_curve_pruner_prunes_only_when_it_may():
    model = StandIn(p=0.01)
    base = CurvePruner(model, threshold=0.05, min_fraction=0.2, budget=50)
    assert base.should_prune([10, 20], [0.5, 0.5]) is False  # no incumbent: nothing to beat
    assert model.calls == []
    p = base.bind(incumbent=0.9, config={"x": 1})
    assert p.should_prune([5], [0.5]) is False  # before 20% of the budget
    assert p.should_prune([10], [0.5]) is True  # at 20%: P = 0.01 < 0.05
    assert p.should_prune([10, 50], [0.5, 0.5]) is False  # at the budget: done anyway
    assert p.last_probability == 0.01
    assert model.calls == [{"steps": [10.0], "budget": 50, "incumbent": 0.9, "config": {"x": 1}}]
    assert base.incumbent is None  # bind gives a copy
    assert p.bind(incumbent=0.9, budget=20).budget == 20  # a config's own budget
    assert p.bind(incumbent=float("nan")).incumbent is None


def test_a_likely_winner_goes_on_and_a_broken_model_only_warns():
    p = CurvePruner(StandIn(), budget=10).bind(incumbent=0.8)
    assert p.should_prune([5], [0.85]) is False  # P = 0.75
    assert p.should_prune([5], [0.6]) is True  # P = 0
    broken = CurvePruner(Broken(), budget=10).bind(incumbent=0.8)
    with pytest.warns(UserWarning, match="could not judge the trial.*no fit"):
        assert broken.should_prune([5], [0.1]) is False


def test_the_pruner_and_the_handle_travel_pickled():
    p = CurvePruner(StandIn(p=0.0), budget=10).bind(
        incumbent=0.5, context=pd.DataFrame({"run_id": ["a"], "step": [1], "value": [0.4]})
    )
    q = pickle.loads(pickle.dumps(p))
    assert q.should_prune([5], [0.1]) is True and q.context.shape == (1, 3)
    h = TrialHandle(q, "acc")
    h.report(5, 0.1)
    assert pickle.loads(pickle.dumps(h)).curve()[0]["value"] == 0.1


def test_trial_pruned_is_exported():
    assert metaopt_bayes.TrialPruned is TrialPruned
    assert metaopt_bayes.CurvePruner is CurvePruner


# ------------------------------------------------------------------ objectives
def one_arg(config):
    return {"score": config["x"]}


def two_args(config, trial):
    for epoch in range(1, 6):
        trial.report(epoch, config["x"] * epoch / 5)
        if trial.should_prune():
            raise TrialPruned()
    return {"score": config["x"]}


def reports_nan(config, trial):
    trial.report(1, float("nan"))
    return 1.0


def test_objectives_with_one_or_two_arguments():
    assert takes_trial(one_arg) is False and takes_trial(two_args) is True
    assert takes_trial(lambda c, t=None: 0) is True and takes_trial(lambda *a: 0) is True
    assert takes_trial(lambda c, **kw: 0) is False and takes_trial(len) is False
    out = call_objective(one_arg, "score", {"x": 0.5}, AfterTwo())
    assert out["status"] == "finished" and "curve" not in out  # unchanged
    done = call_objective(two_args, "score", {"x": 0.5}, Never())
    assert done["status"] == "finished" and done["metrics"] == {"score": 0.5}
    assert [p["step"] for p in done["curve"]] == [1, 2, 3, 4, 5]
    assert {p["metric"] for p in done["curve"]} == {"score"}


def test_a_pruned_objective_keeps_its_partial_curve_and_last_value():
    out = call_objective(two_args, "score", {"x": 0.5}, AfterTwo())
    assert out["status"] == "pruned" and out["error"] is None
    assert out["metrics"] == {"score": pytest.approx(0.2)}  # its value at step 2
    assert [(p["step"], p["value"]) for p in out["curve"]] == [(1, 0.1), (2, 0.2)]
    assert out["duration_s"] >= 0


def test_pruned_before_a_report_and_a_bad_report_are_failed_trials():
    def early(config, trial):
        raise TrialPruned()

    out = call_objective(early, "score", {"x": 1}, AfterTwo())
    assert out["status"] == "failed" and "before any trial.report" in out["error"]
    bad = call_objective(reports_nan, "score", {"x": 1}, None)
    assert bad["status"] == "failed"
    assert bad["error"] == ("ValidationError: trial.report: value must be a finite number, not nan")
    unnamed = call_objective(two_args, None, {"x": 0.5}, AfterTwo())
    assert unnamed["status"] == "failed" and "metric=" in unnamed["error"]


def test_a_process_pool_decides_in_the_worker_and_returns_the_curve():
    ex, shutdown, _ = make_executor(None, 2)
    try:
        pruner = CurvePruner(StandIn(p=0.0), budget=5, min_fraction=0.0).bind(incumbent=1.0)
        futures = [ex.submit(call_objective, two_args, "score", {"x": x}, pruner) for x in (0.5,)]
        futures.append(ex.submit(call_objective, two_args, "score", {"x": 0.5}, Never()))
        pruned, finished = (f.result(timeout=120) for f in futures)
    finally:
        shutdown(True)
    assert pruned["status"] == "pruned" and len(pruned["curve"]) == 1  # P = 0 at step 1
    assert finished["status"] == "finished" and len(finished["curve"]) == 5


# ------------------------------------------------------------------ the zoo, stepwise
def _data(task: str):
    from sklearn.datasets import load_breast_cancer, load_diabetes

    load = load_breast_cancer if task == "classification" else load_diabetes
    X, y = load(return_X_y=True, as_frame=True)
    rows = np.random.default_rng(0).choice(len(y), 200, replace=False)
    return X.iloc[rows].reset_index(drop=True), np.asarray(y)[rows]


@pytest.mark.parametrize(
    ("task", "metric"), [("classification", "accuracy"), ("regression", "rmse")]
)
def test_hist_gradient_boosting_steps_are_iteration_blocks_with_the_same_result(task, metric):
    from metaopt_bayes.trainer import evaluate

    X, y = _data(task)
    cfg = {"max_iter": 35, "learning_rate": 0.1, "max_leaf_nodes": 8, "early_stopping": False}
    whole = evaluate(X, y, task, "hist_gradient_boosting", cfg, cv=3)
    h = TrialHandle(Never(), metric)
    steps = evaluate(X, y, task, "hist_gradient_boosting", cfg, cv=3, trial=h, metric=metric)
    assert h.steps == [10, 20, 30, 35]
    assert steps == pytest.approx(whole)  # warm-started blocks: the same trees
    assert h.values[-1] == pytest.approx(whole[metric])


@pytest.mark.parametrize("early_stopping", [True, False])
def test_mlp_steps_are_epochs(early_stopping):
    from metaopt_bayes.trainer import evaluate

    X, y = _data("classification")
    cfg = {"n_layers": 1, "width": 16, "max_iter": 30, "early_stopping": early_stopping}
    whole = evaluate(X, y, "classification", "mlp", cfg, cv=3)
    h = TrialHandle(Never(), "accuracy")
    steps = evaluate(X, y, "classification", "mlp", cfg, cv=3, trial=h, metric="accuracy")
    assert h.steps == list(range(1, len(h.steps) + 1)) and 1 < len(h.steps) <= 30
    assert set(steps) == set(whole)  # every metric, as a one-go fit logs them
    assert h.values[-1] == pytest.approx(steps["accuracy"])
    assert abs(steps["accuracy"] - whole["accuracy"]) < 0.1  # the same rule, other shuffles


def test_a_pruned_zoo_trial_stops_early_with_its_curve_and_other_families_ignore_pruning():
    from metaopt_bayes.trainer import make_payload, run_trial

    X, y = _data("classification")
    cfg = {"n_layers": 1, "width": 16, "max_iter": 40, "early_stopping": False}
    out = run_trial(
        make_payload(X, y, "classification", "mlp", cfg, 3, pruner=AfterTwo(), metric="accuracy")
    )
    assert out["status"] == "pruned" and out["error"] is None
    assert [p["step"] for p in out["curve"]] == [1, 2]
    assert out["metrics"] == {"accuracy": out["curve"][-1]["value"]}
    plain = run_trial(make_payload(X, y, "classification", "mlp", cfg, 3))
    assert plain["status"] == "finished" and "curve" not in plain  # no pruner: unchanged
    svc = run_trial(
        make_payload(X, y, "classification", "svc", {"C": 1.0}, 3, pruner=AfterTwo(),
                     metric="accuracy")
    )  # fmt: skip
    assert svc["status"] == "finished" and "curve" not in svc
    timed = run_trial(
        make_payload(X, y, "classification", "hist_gradient_boosting", {"max_iter": 50}, 3,
                     timeout_s=120, pruner=AfterTwo(), metric="accuracy")
    )  # fmt: skip
    assert timed["status"] == "pruned" and [p["step"] for p in timed["curve"]] == [10, 20]


def test_quick_metrics_equal_scikit_learns():
    from sklearn import metrics as skm

    from metaopt_bayes.stepwise import quick_metric

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert quick_metric("accuracy", "classification", y, p) == skm.accuracy_score(y, p)
    assert quick_metric("balanced_accuracy", "classification", y, p) == pytest.approx(
        skm.balanced_accuracy_score(y, p)
    )
    assert quick_metric("log_loss", "classification", y, p) is None
    yr, pr = rng.normal(size=50), rng.normal(size=50)
    assert quick_metric("rmse", "regression", yr, pr) == pytest.approx(
        math.sqrt(skm.mean_squared_error(yr, pr))
    )
    assert quick_metric("mae", "regression", yr, pr) == pytest.approx(
        skm.mean_absolute_error(yr, pr)
    )
    assert quick_metric("r2", "regression", yr, pr) == pytest.approx(skm.r2_score(yr, pr))


def test_fantasies_keep_a_value_of_their_own():
    from metaopt_bayes.batch import fantasies
    from tests.search.conftest import FakeLearner

    pend = pd.DataFrame({"x": [0.1, 0.9], "c": ["a", "b"], "value": [np.nan, -5.0]})
    out = fantasies(FakeLearner(), "d1", pend, pd.DataFrame(), None)
    assert out["value"].tolist() == pytest.approx([float(FakeLearner.truth(0.1, "a")), -5.0])


def test_a_curve_pruner_around_the_real_curve_model_judges_curves_and_travels():
    from metaopt_bayes.curves import CurveModel

    def value(final, step):
        return final * (1 - math.exp(-step / 2)) / (1 - math.exp(-5))

    rng = np.random.default_rng(0)
    rows = [
        {"run_id": f"{d}-{i}", "dataset": d, "step": s, "value": value(f, s)}
        for d in ("o1", "o2", "o3")
        for i, f in enumerate(0.3 + 0.4 * rng.random(8))
        for s in range(1, 11)
    ]
    model = CurveModel("score", True).fit(pd.DataFrame(rows), method="map")
    pruner = pickle.loads(pickle.dumps(CurvePruner(model, budget=10).bind(incumbent=0.6)))
    early = [1, 2, 3]
    assert pruner.should_prune(early, [value(0.3, s) for s in early]) is True
    assert pruner.should_prune(early, [value(0.65, s) for s in early]) is False
    assert pruner.last_probability > 0.5


# ------------------------------------------------------------------ a pruned trial's evidence
def test_a_predicted_final_becomes_a_mean_and_variance_on_the_learners_scale():
    """The quantiles map through the learner's transform (a logit here) and read as a
    Gaussian: mean t(q50), sd = the transformed 5–95% span / (2·1.645)."""
    from scipy.special import logit
    from scipy.stats import truncnorm

    from metaopt_bayes.pruning import evidence_moments

    def fwd(y):
        return (logit(y) - 1.0) / 0.5

    q05, q50, q95 = np.array([0.70, 0.80]), np.array([0.80, 0.85]), np.array([0.88, 0.95])
    mean, var = evidence_moments(q05, q50, q95, fwd)
    np.testing.assert_allclose(mean, fwd(q50))
    np.testing.assert_allclose(var, ((fwd(q95) - fwd(q05)) / (2 * 1.6448536269514722)) ** 2)
    # a lower bound (maximizing): the truncated normal's moments; none (NaN) leaves a row be
    bound = np.array([0.83, np.nan])
    tm, tv = evidence_moments(q05, q50, q95, fwd, bound=bound)
    sd0, b0 = np.sqrt(var[0]), (fwd(0.83) - mean[0]) / np.sqrt(var[0])
    want = truncnorm.stats(b0, np.inf, loc=mean[0], scale=sd0, moments="mv")
    np.testing.assert_allclose([tm[0], tv[0]], np.array(want, dtype=float), rtol=1e-10)
    assert tm[0] > mean[0] and tv[0] < var[0]
    assert (tm[1], tv[1]) == (mean[1], var[1])
    # minimizing, the bound caps the value; far beyond the predictive it is a point mass
    lm, _ = evidence_moments(q05, q50, q95, fwd, bound=np.array([0.78, 0.999]), maximize=False)
    assert lm[0] < mean[0]
    hm, hv = evidence_moments(q05, q50, q95, fwd, bound=np.array([0.999999, np.nan]))
    assert hm[0] == pytest.approx(fwd(0.999999), rel=1e-3) and hv[0] < 1e-3 * var[0]


def test_rows_without_quantiles_stay_measurements():
    from metaopt_bayes.pruning import pruned_targets

    obs = pd.DataFrame({"value": [0.5, 0.6, 0.7], "value_q05": [np.nan, 0.5, np.nan],
                        "value_q95": [np.nan, 0.7, np.nan]})  # fmt: skip
    y = np.array([0.5, 0.6, 0.7])
    y2, v = pruned_targets(obs, y, lambda a: np.asarray(a) * 1.0)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_allclose(v, [0.0, (0.2 / 3.2897072539029444) ** 2, 0.0])
    assert pruned_targets(obs.iloc[[0, 2]], y[[0, 2]], lambda a: a)[1] is None
    assert pruned_targets(obs[["value"]], y, lambda a: a)[1] is None

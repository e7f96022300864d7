"""optimize(): the loop with a custom objective (fast, with the stand-in learner)."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.search import TRIAL_SOURCE, optimize
from tests.search.conftest import FakeLearner
from warehouse.errors import ValidationError


def objective(cfg):
    return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}


def test_optimize_with_pool_and_objective(wh, pool):
    lrn = FakeLearner()
    seen = []
    res = optimize(
        wh,
        "d1",
        "toy",
        6,
        candidates=pool,
        objective=objective,
        learner=lrn,
        refit_every=3,
        callback=seen.append,
    )
    assert res.n_new == 6 and res.n_resumed == 0 and not res.interrupted
    assert [t["number"] for t in seen] == [1, 2, 3, 4, 5, 6]
    assert len(res.trials) == 6
    assert not res.trials.duplicated(["x", "c"]).any()
    assert res.best_value == pytest.approx(0.1)  # x = 0.3, c = b is in the pool and found
    assert res.best_config == {"x": 0.3, "c": "b"}
    assert lrn.fits >= 1  # refit every 3 trials
    runs = wh.sql("SELECT count(*) AS n FROM runs WHERE source = ?", [TRIAL_SOURCE])
    assert int(runs.n[0]) == 6
    # every trial's recommendation was recorded with its run
    recs = wh.sql("SELECT run_id FROM recommendations WHERE dataset = 'd1'")
    assert set(recs.run_id) == set(res.trials.run_id)
    # best-so-far column is monotone
    assert np.all(np.diff(res.trials["best"].to_numpy(float)) >= 0)


def test_optimize_resumes_without_duplicates(wh, pool):
    lrn = FakeLearner()
    first = optimize(wh, "d1", "toy", 3, candidates=pool, objective=objective, learner=lrn)
    assert first.n_new == 3
    again = optimize(wh, "d1", "toy", 3, candidates=pool, objective=objective, learner=lrn)
    assert again.n_new == 0 and again.n_resumed == 3  # budget already reached
    more = optimize(wh, "d1", "toy", 7, candidates=pool, objective=objective, learner=lrn)
    assert more.n_resumed == 3 and more.n_new == 4
    assert len(more.trials) == 7 and not more.trials.duplicated(["x", "c"]).any()


@pytest.mark.filterwarnings("ignore:every one of")
def test_failing_objective_is_a_failed_trial(wh, pool):
    def bad(cfg):
        if cfg["c"] == "b":
            raise RuntimeError("boom")
        return {"score": 0.0}

    res = optimize(wh, "d1", "toy", 3, candidates=pool, objective=bad, learner=FakeLearner())
    st = wh.sql("SELECT status, error FROM runs WHERE source = ?", [TRIAL_SOURCE])
    assert len(st) == 3
    failed = st[st.status == "failed"]
    assert len(failed) >= 1 and failed.error.str.contains("boom").all()
    assert res.n_new == 3


def test_parallel_trials_are_distinct(wh, pool):
    with cf.ThreadPoolExecutor(2) as ex:
        res = optimize(
            wh,
            "d1",
            "toy",
            6,
            candidates=pool,
            objective=objective,
            learner=FakeLearner(),
            jobs=2,
            executor=ex,
        )
    assert len(res.trials) == 6 and not res.trials.duplicated(["x", "c"]).any()


def test_bad_arguments(wh, pool):
    with pytest.raises(ValidationError, match="budget"):
        optimize(wh, "d1", "toy", 0, candidates=pool, objective=objective, learner=FakeLearner())
    with pytest.raises(ValidationError, match="space= or candidates="):
        optimize(wh, "d1", "toy", 2, objective=objective, learner=FakeLearner())
    with pytest.raises(ValidationError, match="dask://"):
        optimize(
            wh,
            "d1",
            "toy",
            2,
            candidates=pool,
            objective=objective,
            learner=FakeLearner(),
            executor="tcp://x:1",
        )
    with pytest.raises(ValidationError, match="unknown acquisition 'eii'"):
        optimize(
            wh, "d1", "toy", 2, candidates=pool, objective=objective, learner=FakeLearner(),
            acquisition="eii",
        )  # fmt: skip
    assert len(wh.runs(dataset="d1", limit=None)) == 0  # refused before any trial


def test_objective_returning_a_number(wh):
    pool = pd.DataFrame({"x": [0.1, 0.3], "c": ["a", "a"]})
    res = optimize(
        wh,
        "d1",
        "toy",
        2,
        candidates=pool,
        learner=FakeLearner(),
        objective=lambda cfg: -((cfg["x"] - 0.3) ** 2),
    )
    assert res.best_value == pytest.approx(0.0)


def _registered(wh, name="tiny"):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(40, 4)), columns=list("abcd"))
    df["y"] = (df["a"] > 0).astype(int)
    wh.register_dataset(name, df, target="y", task="classification")
    return name


def _config(row, names):
    return {k: (None if pd.isna(row[k]) else row[k]) for k in names}


def test_first_trial_is_the_family_default(wh):
    from metaopt_bayes.zoo import get_family

    name = _registered(wh)
    svc = get_family("svc")
    space = svc.default_space("classification")

    def score(cfg):
        return {"accuracy": 1.0 / (1.0 + abs(np.log10(cfg["C"])))}

    res = optimize(
        wh, name, "svc", 2, space=space, objective=score, metric="accuracy", fit_method="map"
    )
    first = _config(res.trials.iloc[0], ["C", "kernel", "gamma"])
    # scikit-learn's SVC(): C=1, rbf, gamma='scale' = 1/n_features on standardized features
    assert first == {"C": 1.0, "kernel": "rbf", "gamma": 0.25}
    assert svc.default_config("classification", 4)["gamma"] == 0.25
    # runs of the model on the dataset exist now: no second default on resume
    more = optimize(
        wh, name, "svc", 3, space=space, objective=score, metric="accuracy", fit_method="map"
    )
    assert (more.trials["C"] == 1.0).sum() == 1


def test_default_first_can_be_turned_off(wh):
    name = _registered(wh)
    from metaopt_bayes.zoo import get_family

    space = get_family("knn").default_space("classification")
    res = optimize(
        wh,
        name,
        "knn",
        2,
        space=space,
        objective=lambda cfg: {"accuracy": 1.0 / cfg["n_neighbors"]},
        metric="accuracy",
        fit_method="map",
        default_first=False,
    )
    first = _config(res.trials.iloc[0], ["n_neighbors", "weights", "p"])
    assert first != {"n_neighbors": 5, "weights": "uniform", "p": 2}


def test_every_family_default_lies_in_its_space():
    from metaopt_bayes.zoo import FAMILIES

    for fam in FAMILIES.values():
        for task in fam.tasks:
            cfg = fam.default_config(task, n_features=12)
            assert cfg is not None, (fam.name, task)
            assert fam.default_space(task).validate(cfg) == cfg


def _log_other(wh, dataset, x):
    wh.log_run(dataset=dataset, model="toy", params={"x": x, "c": "a"}, metrics={"score": 0.0})


def test_fits_leave_the_target_out_and_skip_refits_that_would_see_the_same_data(wh, pool):
    # History on another dataset: the population is learned from it alone; the target's
    # trials reach the learner through the closed-form update at predict time.
    for x in (0.1, 0.5, 0.9):
        _log_other(wh, "other", x)
    lrn = FakeLearner()
    optimize(wh, "d1", "toy", 7, candidates=pool, objective=objective, learner=lrn, refit_every=2)
    # the learner came fitted; the refit after trial 2 fitted it, those after 4 and 6 would
    # have seen the same data and were skipped
    assert lrn.excluded == [["d1"]]

    def objective_with_a_neighbour(cfg):
        _log_other(wh, "other2", float(cfg["x"]))  # another process logging elsewhere
        return objective(cfg)

    lrn2 = FakeLearner()
    optimize(
        wh, "d2", "toy", 6, candidates=pool, objective=objective_with_a_neighbour,
        learner=lrn2, refit_every=2,
    )  # fmt: skip
    assert lrn2.excluded == [["d2"], ["d2"]]  # other datasets grew: refits at 2 and 4


def test_without_other_datasets_the_target_is_the_history(wh, pool):
    lrn = FakeLearner()
    optimize(wh, "d1", "toy", 5, candidates=pool, objective=objective, learner=lrn, refit_every=2)
    assert lrn.fits == 2 and lrn.excluded == [None, None]  # refits at 2 and 4, target included


def test_the_winner_of_a_family_with_a_boolean_is_retrained(wh):
    # hist_gradient_boosting fixes early_stopping=False; the warehouse gives it back as 0.0,
    # which scikit-learn refuses — the retrain of the winner used to crash on it
    name = _registered(wh)
    res = optimize(wh, name, "hist_gradient_boosting", 2, fit_method="map", cv=2)
    assert res.best_config["early_stopping"] is False
    assert isinstance(res.best_config["max_iter"], int)
    assert res.test_metrics["accuracy"] > 0.5  # retrained on the train split, tested once


def test_a_second_call_with_its_budget_spent_keeps_the_retrained_winner(tmp_path):
    from warehouse import Warehouse

    with Warehouse(tmp_path / "w.duckdb") as wh:
        name = _registered(wh)
        first = optimize(wh, name, "knn", 2, fit_method="map", cv=2)
        again = optimize(wh, name, "knn", 2, fit_method="map", cv=2)
        assert again.n_new == 0 and again.final_run_id == first.final_run_id
        assert again.test_metrics == pytest.approx(first.test_metrics)
        assert again.model_path == first.model_path and first.model_path.exists()
        finals = wh.sql("SELECT count(*) AS n FROM runs WHERE source = 'metaopt:final'")
        assert finals["n"][0] == 1 and len(list(first.model_path.parent.glob("*.joblib"))) == 1
        other_seed = optimize(wh, name, "knn", 2, fit_method="map", cv=2, seed=1)
        assert other_seed.final_run_id != first.final_run_id  # another test split: retrained
        more = optimize(wh, name, "knn", 3, fit_method="map", cv=2, seed=1)
        assert more.n_new == 1


def test_a_real_learner_optimizes_a_dataset_the_warehouse_has_never_seen(wh):
    # the fit leaves the target out with exclude=[target]; the target being unknown to the
    # warehouse (no runs, no meta-features) must not stop it: it is the zero-shot case
    rng = np.random.default_rng(0)
    for d in ("a", "b", "c"):
        for x in rng.uniform(0, 1, 8):
            wh.log_run(d, "toy", {"x": float(x)}, {"score": float((x - 0.3) ** 2)})
    res = optimize(
        wh, "fresh", "toy", 3, space={"x": {"type": "float", "low": 0, "high": 1}},
        objective=lambda cfg: {"score": float((cfg["x"] - 0.3) ** 2)}, metric="score",
        fit_method="map",
    )  # fmt: skip
    assert res.n_new == 3 and res.best_value is not None


def test_a_pool_with_pass_through_columns_and_some_bad_rows_still_runs(wh):
    # "_" columns are carried along, not parameters; a row scikit-learn rejects is a failed
    # trial, not a reason to refuse the pool (only a pool where every row fails is refused)
    wh.register_dataset("iris", "sklearn:iris", "target")
    pool = pd.DataFrame({"n_neighbors": [3, 5, 0], "_source": ["a", "b", "c"]})
    res = optimize(wh, "iris", "knn", 3, candidates=pool, cv=3, retrain=False, fit_method="map")
    assert res.n_new == 3 and res.best_value is not None
    with pytest.raises(ValidationError, match="every configuration tried would fail"):
        optimize(wh, "iris", "knn", 2, candidates=pool.iloc[2:], cv=3, retrain=False)


def test_optimize_over_several_families_refuses_an_unknown_acquisition(wh):
    wh.register_dataset("iris", "sklearn:iris", "target")
    with pytest.raises(ValidationError, match="unknown acquisition 'eii'"):
        optimize(wh, "iris", ["knn", "logistic_regression"], 2, acquisition="eii", cv=3)
    assert len(wh.runs(dataset="iris", limit=None)) == 0


def test_an_objective_that_names_another_metric_stops_at_its_first_result(wh, pool):
    # it would fail every trial: a one-line error naming the key instead, nothing logged
    with pytest.raises(ValidationError, match=r"returned no 'score' \(its metrics: loss\)"):
        optimize(wh, "d1", "toy", 2, candidates=pool, objective=lambda c: {"loss": 1.0},
                 metric="score", learner=FakeLearner())  # fmt: skip
    assert len(wh.runs(dataset="d1", limit=None)) == 0


def test_a_saved_winner_loads_only_while_it_matches_its_hash(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    from metaopt_bayes import load_winner
    from metaopt_bayes.trials import save_winner

    est = KNeighborsClassifier(n_neighbors=3).fit([[0.0], [1.0], [2.0]], [0, 1, 1])
    path = tmp_path / "metaopt_models" / "w-knn-1.joblib"
    save_winner(est, path)
    side = path.with_name(path.name + ".sha256")
    assert side.read_text().split() == [hashlib.sha256(path.read_bytes()).hexdigest(), path.name]
    assert load_winner(path).predict([[1.9]]).tolist() == [1]
    path.write_bytes(path.read_bytes() + b"\0")  # changed after it was saved
    with pytest.raises(ValidationError, match=r"does not match its w-knn-1\.joblib\.sha256"):
        load_winner(path)
    side.unlink()
    with pytest.raises(ValidationError, match="refusing to unpickle an unchecked file"):
        load_winner(path)
    with pytest.raises(ValidationError, match="no saved model"):
        load_winner(tmp_path / "missing.joblib")

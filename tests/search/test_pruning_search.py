"""Pruning in searches, on real warehouses: pruned trials logged (status, curve, metric, cost),
optimize with an objective and with the zoo, ask/tell, pruned trials as evidence, prune=True
with and without a curve history (the real CurveModel), MetaoptPruner in a real Optuna study,
and the CLI's --prune."""

from __future__ import annotations

import json
import math
import types
import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.ask_tell import Search
from metaopt_bayes.candidates import config_keys
from metaopt_bayes.cli import main
from metaopt_bayes.curve_pruning import PrunedEvidence, SearchPruning
from metaopt_bayes.pruning import CurvePruner, TrialPruned
from metaopt_bayes.search import TRIAL_SOURCE, optimize
from tests.search.conftest import FakeLearner
from warehouse import Warehouse
from warehouse.errors import ValidationError

STEPS = 10


def final_of(x: float, c: str) -> float:
    """The final score of a config: FakeLearner's truth moved into (0, 1)."""
    return 0.6 + float(FakeLearner.truth(x, c))


def curve_value(final: float, step: int) -> float:
    return final * (1.0 - math.exp(-step / 2.0)) / (1.0 - math.exp(-STEPS / 2.0))


def curve_objective(config, trial):
    """Reports a saturating curve for STEPS steps; stops when told to."""
    final = final_of(config["x"], config["c"])
    for step in range(1, STEPS + 1):
        trial.report(step, curve_value(final, step))
        if trial.should_prune():
            raise TrialPruned()
    return {"score": final}


class Zero:
    """A curve model that gives no trial a chance (picklable)."""

    def prob_beats(self, *args, **kwargs):
        return 0.0


class Margin:
    """A curve model stand-in (picklable): the final is the last value scaled up to the
    budget by the saturating shape; P(beat) is 1 when that beats the incumbent, else 0."""

    maximize = True

    def _final(self, steps, values, budget):
        s = float(steps[-1])
        return float(values[-1]) * (1 - math.exp(-budget / 2)) / (1 - math.exp(-s / 2))

    def prob_beats(self, steps, values, budget, incumbent, context=None, config=None):
        return float(self._final(steps, values, budget) > incumbent)

    def predict_final(self, partial, budget, dataset=None, context=None, configs=None):
        rows = {}
        for rid, g in partial.groupby("run_id"):
            g = g.sort_values("step")
            f = self._final(g["step"].to_numpy(), g["value"].to_numpy(), budget)
            rows[rid] = {"mean": f, "sd": 0.01, "q05": f - 0.02, "q50": f, "q95": f + 0.02}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run_id")


def _runs(wh):
    return wh.sql(
        "SELECT run_id, status, duration_s, error FROM runs WHERE source = ? ORDER BY seq",
        [TRIAL_SOURCE],
    )


def _pruner(**kw):
    return CurvePruner(Margin(), budget=STEPS, min_fraction=0.2, **kw)


# ------------------------------------------------------------------ optimize, an objective
def test_pruned_objective_trials_are_logged_with_their_partial_curve(wh, pool):
    res = optimize(
        wh, "d1", "toy", 8, candidates=pool, objective=curve_objective, learner=FakeLearner(),
        metric="score", prune=_pruner(),
    )  # fmt: skip
    runs = _runs(wh)
    pruned = runs[runs.status == "pruned"]
    finished = runs[runs.status == "finished"]
    assert len(pruned) >= 1 and len(finished) >= 1 and res.n_pruned == len(pruned)
    assert pruned.error.isna().all() and (pruned.duration_s > 0).all()  # its cost
    curves = wh.curves(run_ids=list(runs.run_id))
    for rid in pruned.run_id:
        c = curves[curves.run_id == rid].sort_values("step")
        assert 2 <= len(c) < STEPS and set(c.metric) == {"score"}  # never before 20%
        logged = wh.sql(
            "SELECT value FROM run_metrics WHERE run_id = ? AND name = 'score'", [rid]
        ).value.tolist()
        assert logged == [pytest.approx(c.value.iloc[-1])]  # its last reported value
    for rid in finished.run_id:  # a finished trial's curve is logged too
        assert curves[curves.run_id == rid].step.tolist() == list(range(1, STEPS + 1))
    t = res.trials
    assert "steps" in t.columns and set(t.status) == {"finished", "pruned"}
    assert (t.loc[t.status == "finished", "steps"] == STEPS).all()
    assert (t.loc[t.status == "pruned", "steps"] < STEPS).all()
    best = t.loc[t.status == "finished", "value"].max()
    assert res.best_value == pytest.approx(best) and t["best"].iloc[-1] == pytest.approx(best)
    # pruned configs are evidence, never proposed again (this call's and the next's)
    more = optimize(
        wh, "d1", "toy", 12, candidates=pool, objective=curve_objective, learner=FakeLearner(),
        metric="score",
    )  # fmt: skip
    keys = config_keys(more.trials, ["x", "c"])
    assert len(set(keys)) == len(keys) == 12


def test_the_evidence_of_a_pruned_trial_is_its_predicted_final(wh, pool):
    optimize(
        wh, "d1", "toy", 6, candidates=pool, objective=curve_objective, learner=FakeLearner(),
        metric="score", prune=_pruner(),
    )  # fmt: skip
    rows = PrunedEvidence("d1", "toy", "score", Margin(), lambda cfg: STEPS).rows(wh)
    assert len(rows) == wh.count_runs(dataset="d1", status="pruned") >= 1
    for _, r in rows.iterrows():  # Margin's prediction: the truth, from the partial curve
        assert r["value"] == pytest.approx(final_of(r["x"], r["c"]), abs=1e-6)
        # with its predictive interval, which the update reads as the row's own variance
        assert (r["value_q05"], r["value_q95"]) == pytest.approx(
            (r["value"] - 0.02, r["value"] + 0.02)
        )
    assert "value_bound" not in rows.columns  # CENSOR_AT_PARTIAL_BEST is off
    plain = PrunedEvidence("d1", "toy", "score").rows(wh)  # no curve model: the learner's
    assert plain["value"].isna().all() and len(plain) == len(rows)
    assert plain["value_q05"].isna().all()


def test_trials_in_worker_processes_decide_there_and_bring_their_curve_back(wh, pool):
    res = optimize(
        wh, "d1", "toy", 6, candidates=pool, objective=curve_objective, learner=FakeLearner(),
        metric="score", prune=_pruner(), jobs=2,
    )  # fmt: skip
    runs = _runs(wh)
    assert len(runs) == 6 and set(runs.status) <= {"finished", "pruned"}
    assert len(wh.curves(run_ids=list(runs.run_id)).run_id.unique()) == 6
    assert res.n_new == 6


def test_bad_pruning_options_are_one_line_errors(wh, pool):
    for kw, message in (
        ({"prune": True, "prune_threshold": 1.0}, r"threshold must be in \(0, 1\)"),
        ({"prune": True, "prune_threshold": 0}, r"threshold must be in \(0, 1\)"),
        ({"prune": "yes"}, "prune= takes True, False or a pruner"),
        ({"prune": True, "budget_steps": 0}, "budget_steps must be a positive whole number"),
    ):
        with pytest.raises(ValidationError, match=message) as err:
            optimize(
                wh, "d1", "toy", 2, candidates=pool, objective=curve_objective,
                learner=FakeLearner(), metric="score", **kw,
            )  # fmt: skip
        assert "\n" not in str(err.value)
    assert wh.count_runs() == 0


def test_with_no_curve_history_nothing_is_pruned_and_the_curves_are_logged(wh, pool):
    with pytest.warns(UserWarning, match="nothing is pruned.*next one can prune"):
        res = optimize(
            wh, "d1", "toy", 3, candidates=pool, objective=curve_objective,
            learner=FakeLearner(), metric="score", prune=True,
        )  # fmt: skip
    assert set(res.trials.status) == {"finished"}
    assert len(wh.curves(model="toy", status="finished").run_id.unique()) == 3


# ------------------------------------------------------------------ the zoo
def _tiny(wh, name="tiny"):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    rows = np.random.default_rng(0).choice(len(y), 150, replace=False)
    df = X.iloc[rows, :6].reset_index(drop=True).assign(y=np.asarray(y)[rows])
    wh.register_dataset(name, df, target="y", task="classification")
    return name


HGB_SPACE = {
    "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
    "max_iter": {"type": "int", "low": 20, "high": 30},
    "max_leaf_nodes": 8,
    "early_stopping": False,
}
MLP_SPACE = {
    "width": {"type": "int", "low": 8, "high": 16},
    "learning_rate_init": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    "max_iter": 12,
    "early_stopping": False,
}


@pytest.mark.parametrize(("model", "space", "first"), [
    ("hist_gradient_boosting", HGB_SPACE, 10), ("mlp", MLP_SPACE, 1),
])  # fmt: skip
def test_the_zoo_reports_steps_and_is_pruned(wh, model, space, first):
    name = _tiny(wh)
    # the first trial has no incumbent and finishes; the next ones are pruned at once (the
    # budget in steps: each config's own max_iter)
    pruner = CurvePruner(Zero(), min_fraction=0.0, threshold=0.5)
    res = optimize(
        wh, name, model, 3, space=space, prune=pruner, cv=3, retrain=False, default_first=False,
        fit_method="map",
    )  # fmt: skip
    t = res.trials
    assert t.status.tolist() == ["finished", "pruned", "pruned"]
    curves = wh.curves(run_ids=list(t.run_id), metric="accuracy")
    done = curves[curves.run_id == t.run_id[0]]
    last = int(t.max_iter[0])
    assert done.step.iloc[0] == first and done.step.iloc[-1] == last
    assert done.value.iloc[-1] == pytest.approx(t.value[0])  # the run's metric
    assert (done.elapsed_s.diff().dropna() >= 0).all()
    for rid in t.run_id[1:]:
        assert curves[curves.run_id == rid].step.tolist() == [first]
    assert res.best_run_id == t.run_id[0]


def test_a_search_across_families_prunes_the_families_that_train_in_steps(wh):
    from metaopt_bayes.families import JointSpace
    from metaopt_bayes.optimize_families import FamilyPruning
    from metaopt_bayes.space import SearchSpace

    name = _tiny(wh)
    knn = {"n_neighbors": {"type": "int", "low": 3, "high": 9}}
    space = JointSpace({"mlp": SearchSpace.from_dict(MLP_SPACE), "knn": SearchSpace.from_dict(knn)})
    pruner = CurvePruner(Zero(), min_fraction=0.0, threshold=0.5)
    res = optimize(
        wh, name, ["mlp", "knn"], 6, space=space, prune=pruner, cv=3, retrain=False,
        fit_method="map", n_init=4,
    )  # fmt: skip
    t = res.trials
    mlp, knn = t[t.model == "mlp"], t[t.model == "knn"]
    assert len(mlp) >= 2 and len(knn) >= 2
    # the first trial has no incumbent; afterwards every mlp trial faces the best run of
    # either family and this pruner stops it at its first epoch; knn trains in one go
    assert mlp.status.iloc[0] == "finished" and set(mlp.status.iloc[1:]) == {"pruned"}
    assert set(knn.status) == {"finished"}
    curves = wh.curves(run_ids=list(mlp.run_id), metric="accuracy")
    for rid in mlp.run_id.iloc[1:]:
        assert curves[curves.run_id == rid].step.tolist() == [1]
    # a pruned config is never proposed again
    keys = list(zip(mlp.width, mlp.learning_rate_init, strict=True))
    assert len(set(keys)) == len(keys)
    # the pruned rows the joint learner sees: one per pruned trial, with its family and the
    # family's curve model's predicted final (a stand-in model here)
    part = SearchPruning(pruner, name, "mlp", "accuracy", True, None, None, Margin())
    rows = FamilyPruning({"mlp": part}).pruned_rows(wh)
    assert len(rows) == len(mlp) - 1 and set(rows.model) == {"mlp"}
    assert rows["value"].notna().all() and (rows["value_q95"] > rows["value_q05"]).all()


def test_a_search_across_families_none_of_which_trains_in_steps_warns(wh):
    name = _tiny(wh)
    with pytest.warns(UserWarning, match="none of knn, svc trains in steps"):
        res = optimize(
            wh, name, ["knn", "svc"], 2, prune=True, cv=3, retrain=False, fit_method="map"
        )
    assert set(res.trials.status) == {"finished"}


def test_the_zoo_without_a_pruner_is_unchanged(wh):
    name = _tiny(wh)
    res = optimize(wh, name, "mlp", 1, space=MLP_SPACE, cv=3, retrain=False)
    assert res.trials.status.tolist() == ["finished"] and "steps" not in res.trials.columns
    assert wh.curves(dataset=name).empty


# ------------------------------------------------------------------ ask and tell
def test_ask_tell_reports_prunes_and_tells_pruned(wh, pool):
    s = Search(
        wh, "d1", "toy", candidates=pool, metric="score", learner=FakeLearner(),
        prune=_pruner(),
    )  # fmt: skip
    first = s.ask()
    assert first.should_prune() is False  # before any report
    for step in range(1, STEPS + 1):
        first.report(step, curve_value(0.6, step))
        assert first.should_prune() is False  # no incumbent yet
    s.tell(first, {"score": 0.6})
    second = s.ask()
    with pytest.raises(ValidationError, match="reported no step") as err:
        s.tell(second, pruned=True)
    assert "\n" not in str(err.value)
    with pytest.raises(ValidationError, match="finite number, not nan"):
        second.report(1, float("nan"))
    second.report(1, curve_value(0.3, 1))
    assert second.should_prune() is False  # before 20% of the budget
    second.report(2, curve_value(0.3, 2))
    assert second.should_prune() is True
    with pytest.raises(ValidationError, match="takes no result"):
        s.tell(second, {"score": 0.3}, pruned=True)
    rid = s.tell(second, pruned=True)
    status = wh.sql("SELECT status FROM runs WHERE run_id = ?", [rid]).status.tolist()
    assert status == ["pruned"]
    assert wh.curves(run_ids=[rid]).step.tolist() == [1, 2]
    assert wh.curves(run_ids=[first.run_id]).step.tolist() == list(range(1, STEPS + 1))
    asked = [s.ask() for _ in range(5)]
    keys = {(t.config["x"], t.config["c"]) for t in asked}
    assert (second.config["x"], second.config["c"]) not in keys  # never asked again
    assert s.best()["run_id"] == first.run_id
    s.close()


# ------------------------------------------------------------------ the real curve model
def seed_curves(wh, datasets=("o1", "o2", "o3"), model="toy", n=8, seed=0):
    """Finished runs of ``model`` with saturating curves on other datasets."""
    rng = np.random.default_rng(seed)
    for d in datasets:
        for x in np.linspace(0.0, 1.0, n):
            c = str(rng.choice(["a", "b"]))
            final = final_of(x, c) + rng.normal(0, 0.01)
            curve = [
                {"metric": "score", "step": st, "value": curve_value(final, st)}
                for st in range(1, STEPS + 1)
            ]
            wh.log_run(d, model, {"x": float(x), "c": c}, {"score": final}, curve=curve)


def test_prune_true_learns_from_the_curves_of_other_datasets(wh, pool):
    seed_curves(wh)
    res = optimize(
        wh, "d1", "toy", 10, candidates=pool, objective=curve_objective, learner=FakeLearner(),
        metric="score", prune=True, prune_threshold=0.1, seed=3,
    )  # fmt: skip
    t = res.trials
    assert (t.status == "pruned").sum() >= 1, t
    best = t.loc[t.status == "finished", "value"].max()
    for _, r in t[t.status == "pruned"].iterrows():  # pruned: not a would-be winner
        assert final_of(r["x"], r["c"]) < best + 0.02
    from metaopt_bayes.curve_pruning import search_pruning

    pruning = search_pruning(wh, "d1", "toy", "score", True, True, 0.1)
    assert pruning is not None and pruning.budget == STEPS
    ev = pruning.evidence()
    rows = ev.rows(wh)
    assert len(rows) == (t.status == "pruned").sum() and rows["value"].notna().all()


# ------------------------------------------------------------------ Optuna
def test_metaopt_pruner_in_a_real_optuna_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    from metaopt_bayes import MetaoptPruner, MetaoptSampler

    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        seed_curves(wh)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        c = trial.suggest_categorical("c", ["a", "b"])
        final = final_of(x, c)
        for step in range(1, STEPS + 1):
            trial.report(curve_value(final, step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final

    pruner = MetaoptPruner(db, "toy", "score", dataset="d1", threshold=0.1)
    sampler = MetaoptSampler(db, "d1", "toy", "score", fit_method="map", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=12)
    states = [t.state for t in study.trials]
    n_pruned = states.count(optuna.trial.TrialState.PRUNED)
    assert n_pruned >= 1 and pruner.budget == STEPS and pruner.curve_model is not None
    with Warehouse(db, read_only=True) as wh:
        runs = wh.sql("SELECT run_id, status FROM runs WHERE source LIKE 'optuna:%'")
        curves = wh.curves(run_ids=list(runs.run_id))
        # the sampler passes the pruned runs on with their predictive quantiles
        space = types.SimpleNamespace(names=["x", "c"])
        evidence = sampler._with_pruned(wh, study, None, space)
        metrics = wh.sql(
            "SELECT r.run_id, m.value FROM runs r JOIN run_metrics m USING (run_id) "
            "WHERE r.status = 'pruned'"
        )
    assert (runs.status == "pruned").sum() == n_pruned
    assert len(evidence) == n_pruned and evidence[["value_q05", "value_q95"]].notna().all(None)
    assert (evidence["value_q05"] <= evidence["value"]).all()
    assert set(runs.status) == {"finished", "pruned"}
    assert set(curves.run_id) == set(runs.run_id)  # every trial's intermediate values
    for rid, v in zip(metrics.run_id, metrics.value, strict=True):
        assert v == pytest.approx(curves[curves.run_id == rid].value.iloc[-1])


def test_metaopt_pruner_options_and_no_history(tmp_path):
    optuna = pytest.importorskip("optuna")
    from metaopt_bayes import MetaoptPruner

    with pytest.raises(ValidationError, match=r"threshold must be in \(0, 1\)"):
        MetaoptPruner(tmp_path / "w.duckdb", "toy", "score", threshold=2)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        wh.log_run("o1", "toy", {"x": 0.1}, {"score": 0.5})  # no curve
    pruner = MetaoptPruner(tmp_path / "w.duckdb", "toy", "score")
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.enqueue_trial({"x": 0.5})

    def objective(trial):
        trial.suggest_float("x", 0, 1)
        for step in range(1, 4):
            trial.report(0.1, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.9

    study.optimize(objective, n_trials=1)  # nothing to beat yet
    with pytest.warns(UserWarning, match="prunes nothing"):
        study.optimize(objective, n_trials=1)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


# ------------------------------------------------------------------ CLI
def test_cli_optimize_prune(tmp_path):
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        _tiny(wh, "bc")
    space = tmp_path / "hgb.yaml"
    space.write_text(
        "params:\n  learning_rate: {type: float, low: 0.05, high: 0.3, log: true}\n"
        "  max_iter: {type: int, low: 20, high: 30}\n  max_leaf_nodes: 8\n"
        "  early_stopping: false\n"
    )
    args = ["--db", str(db), "optimize", "-d", "bc", "-m", "hist_gradient_boosting", "-t", "2",
            "--space", str(space), "--cv", "3", "--no-retrain", "--method", "map",
            "--format", "json", "--prune"]  # fmt: skip
    with pytest.warns(UserWarning, match="nothing is pruned"):
        out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)[0]
    assert summary["trials"] == 2 and summary["pruned_trials"] == 0
    with Warehouse(db, read_only=True) as wh:  # the first --prune search records curves
        assert len(wh.curves(dataset="bc", status="finished").run_id.unique()) == 2
    bad = CliRunner().invoke(main, [*args, "--prune-threshold", "1.5"])
    assert bad.exit_code == 1 and "threshold must be in (0, 1)" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    two = ["--db", str(db), "optimize", "-d", "bc", "-m", "svc", "-m", "knn", "-t", "2",
           "--cv", "3", "--no-retrain", "--method", "map", "--format", "json",
           "--prune"]  # fmt: skip
    with pytest.warns(UserWarning, match="none of svc, knn trains in steps"):
        out = CliRunner().invoke(main, two)  # across families: the families that step prune
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["pruned_trials"] == 0

"""optimize across families (real training on iris, stand-in learners) and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main
from metaopt_bayes.families import FamilyLearner
from metaopt_bayes.search import TRIAL_SOURCE, optimize
from tests.families.conftest import FakeFamily, FakeSeconds
from warehouse import Warehouse
from warehouse.errors import ValidationError

FAMS = ["knn", "logistic_regression"]


def _fake_learner() -> FamilyLearner:
    """knn predicted better than logistic regression, and better with more neighbours."""
    learners = {
        "knn": FakeFamily("knn", 0.90, "n_neighbors", slope=0.001),
        "logistic_regression": FakeFamily("logistic_regression", 0.50, "C", slope=0.0),
    }
    costs = {f: FakeSeconds(f, s) for f, s in (("knn", 0.1), ("logistic_regression", 1.0))}
    return FamilyLearner.from_learners(learners, costs)


@pytest.fixture
def iris(tmp_path):
    with Warehouse(str(tmp_path / "w.duckdb")) as wh:
        wh.register_dataset("iris", "sklearn:iris", "target")
        yield wh


def test_optimize_across_families_trains_logs_and_resumes(iris, tmp_path):
    seen = []
    res = optimize(
        iris,
        "iris",
        FAMS,
        3,
        learner=_fake_learner(),
        cv=3,
        refit_every=0,
        callback=seen.append,
        artifacts_dir=tmp_path,
    )
    assert len(res.trials) == 3 and res.n_new == 3
    assert set(res.trials["model"]) <= set(FAMS)
    # the learner prefers knn, so the joint EI keeps choosing knn configs
    assert (res.trials["model"] == "knn").all()
    assert [t["model"] for t in seen] == ["knn"] * 3
    assert all(t["predicted_mean"] is not None for t in seen)
    assert res.model == "knn" and res.best_value == pytest.approx(res.trials["value"].max())
    assert res.test_metrics.get("accuracy", 0) > 0.8 and res.model_path.exists()
    logged = iris.sql("SELECT model, source, count(*) AS n FROM runs GROUP BY ALL")
    assert set(logged.source) == {TRIAL_SOURCE, "metaopt:final"}
    # architecture descriptors of the family are logged with each trial
    arch = iris.sql("SELECT DISTINCT name FROM run_architecture")["name"].tolist()
    assert "n_neighbors" in arch and "kind" in arch
    # each trial's recommendation is recorded with its run
    recs = iris.sql("SELECT model, run_id FROM recommendations WHERE run_id IS NOT NULL")
    assert len(recs) == 3 and set(recs.model) == {"knn"}
    again = optimize(iris, "iris", FAMS, 4, learner=_fake_learner(), cv=3, retrain=False)
    assert again.n_resumed == 3 and again.n_new == 1 and len(again.trials) == 4


def test_without_history_the_initial_design_visits_every_family(iris, monkeypatch):
    import metaopt_bayes.optimize_families as fam

    def no_fit(*a, **k):
        raise ValidationError("nothing to learn from")

    monkeypatch.setattr(fam, "family_learner", no_fit)
    res = optimize(iris, "iris", FAMS, 2, cv=3, retrain=False, refit_every=0)
    assert sorted(res.trials["model"]) == sorted(FAMS)


def test_optimize_rejects_what_a_joint_search_cannot_take(iris):
    with pytest.raises(ValidationError, match="objective"):
        optimize(iris, "iris", None, 2, objective=lambda c: 1.0)
    with pytest.raises(ValidationError, match="JointSpace"):
        optimize(iris, "iris", FAMS, 2, space={"C": [1.0]})


def test_cli_recommend_without_model_ranks_families(tmp_path, monkeypatch):
    import metaopt_bayes.cli.search_cmds as sc

    db = str(tmp_path / "w.duckdb")
    with Warehouse(db) as wh:
        wh.log_run("t", "knn", {"n_neighbors": 5}, {"accuracy": 0.8}, duration_s=0.1)
    calls = {}

    def fake(wh, dataset, metric, families, method, fmt, refit=False):
        calls.update(dataset=dataset, metric=metric, families=families, method=method)
        fl = _fake_learner()
        fl.warehouse = wh
        fl.reuse_notes = ["using learner … (unchanged)"]
        return fl

    monkeypatch.setattr(sc, "_family_learner", fake)
    cands = tmp_path / "pool.csv"
    pd.DataFrame(
        {
            "model": ["knn", "knn", "logistic_regression"],
            "n_neighbors": [3, 30, None],
            "C": [None, None, 1.0],
        }
    ).to_csv(cands, index=False)
    out = CliRunner().invoke(
        main,
        [
            "--db",
            db,
            "recommend",
            "-d",
            "t",
            "--candidates",
            str(cands),
            "--method",
            "map",
            "--format",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["model"] for r in rows] == ["knn", "logistic_regression"]
    assert out.stderr == "using learner … (unchanged)\n"  # which learners answered
    for r in rows:
        assert r["lower"] <= r["mean"] <= r["upper"] and r["predicted_s"] > 0
    assert rows[0]["n_runs"] == 1 and rows[0]["best_observed"] == pytest.approx(0.8)
    assert calls == {"dataset": "t", "metric": "accuracy", "families": None, "method": "map"}
    with Warehouse(db, read_only=True) as wh:
        rec = wh.sql("SELECT model, acquisition FROM recommendations ORDER BY rank")
    assert rec["model"].tolist() == ["knn", "logistic_regression"]
    assert set(rec["acquisition"]) == {"family-rank"}


def test_cli_recommend_without_history_is_one_line(tmp_path):
    db = str(tmp_path / "w.duckdb")
    out = CliRunner().invoke(main, ["--db", db, "recommend", "-d", "x"])
    assert out.exit_code == 1 and "w.duckdb' does not exist" in out.output  # a mistyped --db
    assert not (tmp_path / "w.duckdb").exists()
    with Warehouse(db) as wh:
        wh.register_dataset("iris", "sklearn:iris", "target")
    out = CliRunner().invoke(main, ["--db", db, "recommend", "-d", "x"])
    assert out.exit_code == 1 and "dataset 'x' is not in the warehouse" in out.output
    out = CliRunner().invoke(main, ["--db", db, "recommend", "-d", "iris"])
    assert out.exit_code == 1
    assert "no runs of" in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(
        main, ["--db", str(tmp_path / "w.duckdb"), "optimize", "-d", "x", "--space", "s.yaml"]
    )
    assert out.exit_code == 1 and "exactly one --model" in out.output


def test_cli_optimize_without_model_shows_the_family(tmp_path, monkeypatch):
    import metaopt_bayes.optimize_families as fam

    db = str(tmp_path / "w.duckdb")
    with Warehouse(db) as wh:
        wh.register_dataset("iris", "sklearn:iris", "target")
    monkeypatch.setattr(fam, "family_learner", lambda *a, **k: _fake_learner())
    out = CliRunner().invoke(
        main,
        [
            "--db",
            db,
            "optimize",
            "-d",
            "iris",
            "-m",
            "knn",
            "-m",
            "logistic_regression",
            "--budget",
            "2",
            "--cv",
            "3",
            "--no-retrain",
            "--format",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    summary = summary[0] if isinstance(summary, list) else summary
    assert summary["model"] == "knn" and summary["trials"] == 2
    assert isinstance(summary["best_config"], dict) and "n_neighbors" in summary["best_config"]


def test_a_second_joint_optimize_reuses_each_familys_fits(iris):
    """optimize across families takes each family's learner, and with cost-ei its cost
    learner, through learner_for: a second call on unchanged history fits nothing new."""
    from tests.families.conftest import synthetic_history

    runs, meta = synthetic_history(n_datasets=4, n_configs=6)
    iris.log_runs(runs.drop(columns=["value", "seq"]).assign(**{"metrics.accuracy": runs.value}))
    iris.log_dataset_meta_features(meta.rename_axis("dataset").reset_index())
    kw = {"cv": 2, "retrain": False, "refit_every": 0, "fit_method": "map"}
    first = optimize(iris, "iris", FAMS, 2, acquisition="cost-ei", **kw)
    fits = iris.meta_models()
    assert len(fits) == 4 and set(fits.metric) == {"accuracy", "duration_s"}
    ids = {f: lrn.model_id for f, lrn in first.learner.learners.items()}
    costs = {f: lrn.model_id for f, lrn in first.learner.cost_learners.items()}
    assert sorted(ids) == sorted(costs) == sorted(FAMS)
    again = optimize(iris, "iris", FAMS, 3, acquisition="cost-ei", **kw)
    assert again.n_new == 1 and len(iris.meta_models()) == 4  # no new fit recorded
    assert {f: lrn.model_id for f, lrn in again.learner.learners.items()} == ids
    assert {f: lrn.model_id for f, lrn in again.learner.cost_learners.items()} == costs
    assert all(lrn.reused for lrn in again.learner.learners.values())
    assert any("using learner" in note for note in again.learner.reuse_notes)

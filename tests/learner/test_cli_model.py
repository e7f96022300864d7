from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main
from tests.learner.conftest import make_hierarchical


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from warehouse import Warehouse

    runs, meta, _ = make_hierarchical(n_datasets=5, n_runs=20, seed=1)
    path = tmp_path_factory.mktemp("wh") / "m.duckdb"
    mlflow = runs.drop(columns=["value", "seq"]).assign(**{"metrics.accuracy": runs["value"]})
    with Warehouse(str(path)) as wh:
        wh.log_runs(mlflow)
        wh.log_dataset_meta_features(meta.rename_axis("dataset").reset_index())
    return path


def test_fit_models_predict_diagnose(db, tmp_path):
    r = CliRunner()
    out = r.invoke(
        main,
        [
            "--db",
            str(db),
            "fit",
            "--metric",
            "accuracy",
            "--method",
            "map",
            "--exclude",
            "ds4",
            "--format",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    row = json.loads(out.stdout)[0]
    assert row["n_datasets"] == 4 and row["status"] == "ok"
    models = r.invoke(main, ["--db", str(db), "models", "--format", "json"])
    listed = json.loads(models.stdout)
    assert listed[0]["model_id"] == row["model_id"] and listed[0]["method"] == "map"
    predict = ["--db", str(db), "predict", "--metric", "accuracy", "--format", "json"]
    config = ["--config", '{"lr": 0.01, "depth": 3, "booster": "dart"}']
    typo = r.invoke(main, [*predict, "--dataset", "brand_nwe", *config])
    assert typo.exit_code == 1 and "dataset 'brand_nwe' is not in the warehouse" in typo.output
    from warehouse import Warehouse

    with Warehouse(str(db)) as wh:  # a new dataset: only its meta-features are known
        wh.log_dataset_meta_features(pd.DataFrame({"dataset": ["brand_new"], "n_rows": [500.0]}))
    pred = r.invoke(main, [*predict, "--dataset", "ds4", *config])
    assert pred.exit_code == 0, pred.output  # the fit left ds4 out: it is the target here
    assert pred.stderr.startswith(f"using learner {row['model_id'][:12]} (") and (
        ", map, " in pred.stderr and "unchanged" in pred.stderr
    )  # which one, said
    # for another target the fit missed ds4's runs: a fit is made now, recorded and then used
    pred = r.invoke(main, [*predict, "--method", "map", "--dataset", "brand_new", *config])
    assert pred.exit_code == 0, pred.output
    p = json.loads(pred.stdout)[0]
    assert p["lower"] < p["mean"] < p["upper"] and p["lr"] == 0.01
    assert pred.stderr.startswith("fitted learner ") and "'ds4' new" in pred.stderr
    again = r.invoke(main, [*predict, "--dataset", "brand_new", *config])
    assert again.stderr.startswith(f"using learner {pred.stderr.split()[2]}")
    assert json.loads(again.stdout) == json.loads(pred.stdout)
    cfgs = tmp_path / "c.csv"
    pd.DataFrame({"lr": [1e-3, 1e-2], "depth": [2, 4], "booster": ["gbtree", "dart"]}).to_csv(
        cfgs, index=False
    )
    pred2 = r.invoke(
        main,
        [
            "--db",
            str(db),
            "predict",
            "--model-id",
            row["model_id"],
            "--dataset",
            "ds4",
            "--configs",
            str(cfgs),
            "--format",
            "csv",
        ],
    )
    assert pred2.exit_code == 0, pred2.output
    assert len(pred2.stdout.strip().splitlines()) == 3
    diag = r.invoke(
        main,
        [
            "--db",
            str(db),
            "diagnose",
            row["model_id"][:8],  # a prefix, as the models table shows ids
            "--out-dir",
            str(tmp_path / "plots"),
            "--format",
            "json",
        ],
    )
    assert diag.exit_code == 0, diag.output
    assert (tmp_path / "plots" / f"meta_model_{row['model_id']}_trace.png").exists()
    assert (tmp_path / "plots" / f"meta_model_{row['model_id']}_calibration.png").exists()
    plain = r.invoke(
        main, ["--db", str(db), "diagnose", row["model_id"], "--out-dir", str(tmp_path)]
    )
    assert "B0[intercept]" in plain.output


def test_errors_are_one_line(db):
    r = CliRunner()
    out = r.invoke(
        main, ["--db", str(db), "predict", "--dataset", "x", "--metric", "rmse", "--config", "{}"]
    )
    assert out.exit_code == 1 and out.output.startswith("Error: dataset 'x' is not in")
    out = r.invoke(
        main, ["--db", str(db), "predict", "--dataset", "ds1", "--metric", "rmse", "--config", "{}"]
    )
    assert out.exit_code == 1 and "Error:" in out.output and "rmse" in out.output
    assert len(out.output.strip().splitlines()) == 1
    out = r.invoke(main, ["--db", str(db), "predict", "--dataset", "x", "--metric", "accuracy"])
    assert out.exit_code == 1 and "exactly one of" in out.output


def test_commands_have_help_with_example():
    r = CliRunner()
    for cmd in ("fit", "predict", "models", "diagnose"):
        out = r.invoke(main, [cmd, "--help"])
        assert out.exit_code == 0 and "Example:" in out.output


def test_predict_and_recommend_refuse_what_a_user_cannot_have_meant(db, tmp_path):
    r = CliRunner()
    fit = r.invoke(
        main, ["--db", str(db), "fit", "--metric", "accuracy", "--method", "map", "--out",
               str(tmp_path / "m.nc"), "--format", "json"],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    predict = ["--db", str(db), "predict", "--metric", "accuracy", "--dataset", "ds1"]
    cases = {
        '{"lr": 0.01, "dpeth": 3}': "unknown parameter 'dpeth'; the meta-learner knows",
        '{"booster": "gbtre"}': "booster='gbtre' is not a value the meta-learner was fitted on",
        "5": "--config must be a JSON object of parameters",
        "[]": "--config must be a JSON object of parameters",
    }
    for config, message in cases.items():
        out = r.invoke(main, [*predict, "--config", config])
        assert out.exit_code == 1 and message in out.output, (config, out.output)
        assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("lr,depth\n0.01,3,7\n0.1,2\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path, message in ((ragged, "cannot read"), (empty, "is empty")):
        out = r.invoke(main, [*predict, "--configs", str(path)])
        assert out.exit_code == 1 and message in out.output, out.output
    extra = tmp_path / "extra.csv"
    pd.DataFrame({"lr": [0.01], "depth": [3], "n_trees": [100]}).to_csv(extra, index=False)
    rec = r.invoke(
        main, ["--db", str(db), "recommend", "--dataset", "ds1", "--metric", "accuracy",
               "--model", "gbm", "--learner", str(tmp_path / "m.nc"), "--candidates", str(extra)],
    )  # fmt: skip
    assert rec.exit_code == 1 and "unknown parameter 'n_trees'" in rec.output, rec.output
    wrong_family = r.invoke(
        main, ["--db", str(db), "recommend", "--dataset", "ds1", "--metric", "accuracy",
               "--model", "svc", "--learner", str(tmp_path / "m.nc"), "--candidates", str(extra)],
    )  # fmt: skip
    assert wrong_family.exit_code == 1 and "not 'svc'" in wrong_family.output, wrong_family.output
    good = tmp_path / "good.csv"
    pd.DataFrame({"lr": [0.01, 0.1], "depth": [3, 5], "booster": ["dart"] * 2}).to_csv(
        good, index=False
    )
    rec = r.invoke(
        main, ["--db", str(db), "recommend", "--dataset", "ds1", "--metric", "accuracy",
               "--model", "gbm", "--candidates", str(good), "--format", "json"],
    )  # fmt: skip
    assert rec.exit_code == 0 and len(json.loads(rec.stdout)) == 2, rec.output
    assert rec.stderr.startswith("using learner ") and ", map, " in rec.stderr  # the saved fit


def test_fit_explains_what_is_missing_before_any_work(db, tmp_path):
    r = CliRunner()
    fit = ["--db", str(db), "fit", "--method", "map"]
    other = tmp_path / "notes.nc"
    other.write_text("my notes")
    cases = [
        (["--metric", "accuracy", "--model", "gbn"], "no runs of model 'gbn' in the warehouse"),
        (["--metric", "f1"], "logged metric 'f1' (metrics logged: accuracy)"),
        (["--metric", "accuracy", "--dataset", "ds9"], "datasets: 'ds9' is not in the warehouse"),
        (["--metric", "accuracy", "--exclude", "ds0", "--exclude", "ds1", "--exclude", "ds2",
          "--exclude", "ds3", "--exclude", "ds4"], "left to fit on after the dataset selection"),
        (["--metric", "accuracy", "--out", str(tmp_path / "m.csv")], "a model file ends in .nc"),
        (["--metric", "accuracy", "--out", str(other)], "exists and is not a model file"),
    ]  # fmt: skip
    for args, message in cases:
        out = r.invoke(main, [*fit, *args])
        assert out.exit_code == 1 and message in out.output, (args, out.output)
    assert other.read_text() == "my notes"


def test_learner_takes_an_id_or_a_file_in_predict_and_recommend(db, tmp_path):
    r = CliRunner()
    path = tmp_path / "lrn.nc"
    fit = r.invoke(
        main, ["--db", str(db), "fit", "--metric", "accuracy", "-m", "gbm", "--method", "map",
               "--out", str(path), "--format", "json"],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    model_id = json.loads(fit.stdout)[0]["model_id"]
    good = tmp_path / "good.csv"
    pd.DataFrame({"lr": [0.01, 0.1], "depth": [3, 5], "booster": ["dart"] * 2}).to_csv(
        good, index=False
    )
    base = ["--db", str(db), "predict", "-d", "ds1", "--configs", str(good), "--format", "json"]
    by_file = r.invoke(main, [*base, "--learner", str(path)])
    by_id = r.invoke(main, [*base, "--learner", model_id[:10]])
    assert by_file.exit_code == 0 and by_id.exit_code == 0, by_file.output + by_id.output
    assert json.loads(by_file.stdout) == json.loads(by_id.stdout)
    rec = ["--db", str(db), "recommend", "-d", "ds1", "--metric", "accuracy", "-m", "gbm",
           "--candidates", str(good), "--format", "json"]  # fmt: skip
    by_id = r.invoke(main, [*rec, "--learner", model_id[:10]])
    assert by_id.exit_code == 0 and len(json.loads(by_id.stdout)) == 2, by_id.output
    typo = r.invoke(main, [*rec, "--learner", "nosuchid"])
    assert typo.exit_code == 1 and "no meta-model (learner) with id 'nosuchid'" in typo.output

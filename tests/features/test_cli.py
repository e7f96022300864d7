"""CLI: datasets, datasets add/show, zoo, sweep."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main


@pytest.fixture
def run(tmp_path):
    db = str(tmp_path / "w.duckdb")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["--db", db, *args], catch_exceptions=False)

    return invoke


def test_add_list_show_and_sweep(run, tmp_path, iris_frame):
    r = run("datasets", "add", "sklearn:wine", "--format", "json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)[0]
    assert info["name"] == "wine" and info["created"] is True and info["n_classes"] == 3
    path = tmp_path / "flowers.csv"
    iris_frame.to_csv(path, index=False)
    r = run("datasets", "add", str(path), "--target", "target", "--name", "iris")
    assert r.exit_code == 0, r.output
    r = run("datasets", "add", str(path), "--target", "target", "--name", "iris")
    assert r.exit_code == 0 and "already registered" in r.stderr
    r = run("datasets", "--format", "json")
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    assert set(rows) == {"iris", "wine"}
    assert rows["iris"]["landmark_1nn"] > 0.8 and rows["wine"]["n_features"] == 13
    r = run("datasets", "show", "iris", "--format", "csv")
    assert r.exit_code == 0 and "class_entropy," in r.stdout and "landmarking" in r.stdout
    r = run(
        "sweep",
        "--dataset",
        "iris",
        "--model",
        "knn",
        "--n",
        "3",
        "--cv",
        "3",
        "-q",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out) == 3 and all(o["status"] == "finished" for o in out)
    assert all(o["metric"] == "accuracy" and o["value"] > 0.8 for o in out)
    r = run("sql", "SELECT count(*) AS n FROM runs WHERE dataset = 'iris'", "--format", "json")
    assert json.loads(r.stdout)[0]["n"] == 3


def test_errors_are_one_line(run):
    r = CliRunner().invoke(main, ["datasets", "add", "data.csv"])
    assert r.exit_code == 1 and "Error: --target is required" in r.output
    r = run("datasets", "add", "sklearn:nope")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "unknown bundled" in r.output
    r = run("datasets", "show", "missing")
    assert r.exit_code == 1 and "'missing' is not registered" in r.output


def test_zoo_lists_families_and_spaces(run):
    r = run("zoo", "--format", "json")
    names = {d["model"] for d in json.loads(r.stdout)}
    assert {
        "hist_gradient_boosting",
        "random_forest",
        "logistic_regression",
        "svc",
        "knn",
        "mlp",
    } <= names
    r = run("zoo", "mlp", "--format", "json")
    params = {d["param"] for d in json.loads(r.stdout)}
    assert {"n_layers", "width", "activation"} <= params


def test_sweep_errors_are_one_line_and_log_nothing(run, tmp_path):
    assert run("datasets", "add", "sklearn:iris").exit_code == 0
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("C: {type: float, low: 5, high: 1}\n")
    cases = [
        (["-d", "nope", "-m", "knn"], "dataset 'nope' is not registered"),
        (["-d", "iris", "-m", "gbm"], "unknown model 'gbm'"),
        (["-d", "iris", "-m", "ridge"], "does not support classification"),
        (["-d", "iris", "-m", "svc", "--space", str(bad_space)], "'C'"),
        (["-d", "iris", "-m", "knn", "--n", "0"], "--n must be at least 1"),
        (["-d", "iris", "-m", "knn", "--cv", "0"], "cv must be an integer >= 2"),
        (["-d", "iris", "-m", "knn", "--cv", "500"], "cv=500 folds but the dataset has only"),
    ]
    for args, message in cases:
        r = run("sweep", *args, "-q")
        assert r.exit_code == 1, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], args
    r = run("sql", "SELECT count(*) AS n FROM runs", "--format", "json")
    assert json.loads(r.stdout)[0]["n"] == 0
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    r = run("datasets", "add", str(csv), "--target", "y")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "target column 'y'" in r.output


def test_run_features_shows_every_feature_group_through_sql(run):
    assert run("datasets", "add", "sklearn:wine").exit_code == 0
    r = run("sweep", "-d", "wine", "-m", "mlp", "--n", "2", "--cv", "3", "-q")
    assert r.exit_code == 0, r.output
    r = run("sql", "SELECT * FROM run_features", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "finished" and row["n_rows"] == 178
        assert row["duration_s"] > 0 and row["cpu_s"] >= 0 and row["peak_mem_mb"] >= 0
        mf = row["meta_features"]
        for name in ("n_instances", "skewness_mean", "class_entropy", "landmark_lda"):
            assert name in mf  # general, statistical, info-theory, landmarking
        assert {"n_layers", "width", "alpha"} <= set(row["params_num"])
        assert {"n_layers", "width", "n_hidden_units"} <= set(row["arch_num"])
        assert row["arch_text"]["kind"] == "neural_net"
        assert set(row["metrics"]) >= {"accuracy", "f1_macro", "roc_auc", "log_loss"}


def test_a_sweep_whose_every_run_failed_exits_non_zero(run, tmp_path):
    assert run("datasets", "add", "sklearn:iris").exit_code == 0
    space = tmp_path / "big_k.yaml"  # more neighbours than training rows: every fit fails
    space.write_text("n_neighbors: {type: int, low: 200, high: 400}\n")
    r = run("sweep", "-d", "iris", "-m", "knn", "--n", "2", "--cv", "3", "--space", str(space),
            "-q", "--format", "csv")  # fmt: skip
    assert r.exit_code == 1 and "every one of the 2 runs failed" in r.output, r.output


def test_sweep_again_adds_new_configs_and_says_when_the_space_runs_out(run, tmp_path):
    assert run("datasets", "add", "sklearn:iris").exit_code == 0
    space = tmp_path / "two.yaml"  # two distinct configs in all
    space.write_text("n_neighbors: {type: int, low: 3, high: 4}\nweights: [uniform]\n")
    args = ("sweep", "-d", "iris", "-m", "knn", "--cv", "3", "--space", str(space), "-q")
    r = run(*args, "--n", "1", "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1, r.output
    r = run(*args, "--n", "3", "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1  # only the other one is new
    assert "only 1 new configs: the space has no more" in r.stderr
    r = run("sql", "SELECT count(DISTINCT value_num) AS k FROM run_params", "--format", "json")
    assert json.loads(r.stdout)[0]["k"] == 2
    r = run(*args, "--n", "1", "--include-run", "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1


def test_zoo_yaml_is_a_space_file_that_reads_back_the_same(tmp_path):
    import yaml

    from metaopt_bayes.space import SearchSpace
    from metaopt_bayes.zoo import FAMILIES

    for name, family in FAMILIES.items():
        task = "classification" if family.supports("classification") else family.tasks[0]
        out = CliRunner().invoke(main, ["zoo", name, "--yaml"])
        assert out.exit_code == 0, out.output
        path = tmp_path / f"{name}.yaml"
        path.write_text(out.stdout)
        again = SearchSpace.from_file(path)
        assert again.to_dict() == family.default_space(task).to_dict(), name
        assert yaml.safe_load(out.stdout)["params"]  # plain YAML, comment line aside


def test_the_space_in_the_docs_sweeps(run, tmp_path):
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "spaces.md").read_text()
    space = tmp_path / "doc.yaml"
    space.write_text(text.split("```yaml\n")[1].split("```")[0])
    assert run("datasets", "add", "sklearn:iris").exit_code == 0
    r = run("sweep", "-d", "iris", "-m", "svc", "--n", "2", "--cv", "3", "--space", str(space),
            "-q", "--format", "json")  # fmt: skip
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 2, r.output

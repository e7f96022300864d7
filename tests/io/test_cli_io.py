"""CLI: import optuna / import mlflow / export through click, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main

optuna = pytest.importorskip("optuna", reason="optuna is not installed")


def _study(storage: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1)
    )
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=5)


def test_cli_import_optuna_twice_then_export(tmp_path: Path):
    db = str(tmp_path / "wh.duckdb")
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    _study(storage)
    runner = CliRunner()
    args = ["--db", db, "import", "optuna", "--storage", storage, "--study", "s"]
    args += ["--dataset", "toy", "--model", "quad", "--metric", "loss", "--format", "json"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)[0]["imported"] == 5
    second = runner.invoke(main, args)
    assert json.loads(second.output)[0] == {
        "source": f"{storage}#s",
        "imported": 0,
        "already_present": 5,
        "skipped_unfinished": 0,
    }
    out = tmp_path / "exp"
    res = runner.invoke(
        main, ["--db", db, "export", str(out), "--dialect", "trino", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    rows = {r["table"]: r["rows"] for r in json.loads(res.output)}
    assert rows["runs"] == 5 and rows["run_metrics"] == 5
    assert (out / "runs" / "dataset=toy").is_dir()
    assert (out / "views" / "incumbents.sql").read_text().startswith("-- incumbents")


def test_cli_import_errors_are_one_line(tmp_path: Path):
    db = str(tmp_path / "wh.duckdb")
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    _study(storage)
    res = CliRunner().invoke(
        main,
        [
            *("--db", db, "import", "optuna", "--storage", storage, "--study", "nope"),
            *("--dataset", "d", "--model", "m"),
        ],
    )
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: no Optuna study named 'nope' in {storage}; known: s"
    ]
    res = CliRunner().invoke(
        main, ["--db", db, "import", "mlflow", "--tracking-uri", str(tmp_path / "none")]
    )
    assert res.exit_code == 1 and "does not exist" in res.output
    not_a_db = tmp_path / "runs.db"
    not_a_db.write_text("dataset,model\n")
    res = CliRunner().invoke(
        main, ["--db", db, "import", "mlflow", "--tracking-uri", f"sqlite:///{not_a_db}"]
    )
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and lines[-1].startswith("Error: cannot read MLflow store")
    assert "file is not a database" in lines[-1]

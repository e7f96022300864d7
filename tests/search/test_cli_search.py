"""CLI: recommend / optimize / demo are registered, documented, and fail with one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main


@pytest.mark.parametrize("cmd", ["recommend", "optimize", "demo"])
def test_help_has_an_example(cmd):
    out = CliRunner().invoke(main, [cmd, "--help"])
    assert out.exit_code == 0
    assert "Example:" in out.output


def test_space_and_candidates_are_exclusive(tmp_path):
    db = tmp_path / "w.duckdb"
    for cmd in ("recommend", "optimize"):
        out = CliRunner().invoke(
            main,
            [
                "--db",
                str(db),
                cmd,
                "-d",
                "x",
                "-m",
                "svc",
                "--space",
                "a.yaml",
                "--candidates",
                "b.csv",
            ],
        )
        assert out.exit_code == 1
        assert "not both" in out.output


def test_demo_verdict_line():
    import pandas as pd

    from metaopt_bayes.cli.search_cmds import _verdict

    def table(default_cv, found_cv):
        return pd.DataFrame({"cv_accuracy": [default_cv, found_cv], "test_accuracy": [0.95, 0.96]})

    assert _verdict(table(0.90, 0.93)).startswith("metaopt's winner beats the default by 3.0")
    assert _verdict(table(0.93, 0.93)).startswith("no trial beat scikit-learn's default")
    assert "test accuracy 0.960 vs 0.950" in _verdict(table(0.93, 0.93))
    assert _verdict(table(0.93, 0.92)).startswith("the default is 1.0 CV accuracy points better")


def test_demo_table_shows_settings_as_text():
    import json

    import pandas as pd

    from metaopt_bayes.cli.search_cmds import _readable_settings

    cfg = {"learning_rate": 0.49999999999999994, "max_iter": 300, "early_stopping": False}
    table = pd.DataFrame(
        {"settings": ["{}", json.dumps(cfg)], "cv_accuracy": [0.9, 0.95], "log_loss": [None] * 2}
    )
    out = _readable_settings(table)
    assert list(out.columns) == ["settings", "cv_accuracy"]
    assert list(out["settings"]) == [
        "(none set)",
        "learning_rate=0.5 max_iter=300 early_stopping=False",
    ]
    assert table["settings"][1] == json.dumps(cfg)  # the JSON for --format json is untouched


def test_optimize_again_says_the_budget_is_spent_and_retrains_nothing(tmp_path):
    from warehouse import Warehouse

    db = str(tmp_path / "w.duckdb")
    with Warehouse(db) as wh:
        wh.register_dataset("iris", "sklearn:iris", "target")
    args = ["--db", db, "optimize", "-d", "iris", "-m", "knn", "--budget", "2", "--cv", "2",
            "--method", "map", "--format", "json"]  # fmt: skip
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "2 of --budget 2 trials" in again.stderr
    assert "budget is spent" in again.stderr
    a, b = (json.loads(r.stdout)[0] for r in (first, again))
    assert b["new_trials"] == 0 and b["model_path"] == a["model_path"]


def test_optimize_objective_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_train.py").write_text("VALUE = 1\n\ndef objective(cfg):\n    return 1.0\n")
    (tmp_path / "broken_train.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "s.yaml").write_text("params:\n  x: {type: float, low: 0, high: 1}\n")
    db = str(tmp_path / "w.duckdb")
    base = ["--db", db, "optimize", "-d", "mine", "-t", "2", "--space", "s.yaml", "-q"]
    cases = [
        (["-m", "net", "--objective", "my_train"], "must look like package.module:function"),
        (["-m", "net", "--objective", "nowhere:f"], "cannot import 'nowhere': ModuleNotFound"),
        (["-m", "net", "--objective", "broken_train:f"], "cannot import 'broken_train'"),
        (["-m", "net", "--objective", "my_train:nope"], "module 'my_train' has no 'nope'"),
        (["-m", "net", "--objective", "my_train:VALUE"], "is a int, not a function"),
        (["-m", "a", "-m", "b", "--objective", "my_train:objective"], "exactly one --model"),
        (["-m", "net", "--objective", "my_train:objective"], "bare number but no metric"),
    ]
    for extra, message in cases:
        out = CliRunner().invoke(main, [*base, *extra])
        assert out.exit_code == 1, (extra, out.output)
        assert message in out.output and len(out.output.strip().splitlines()) == 1, out.output
    no_space = [
        "--db",
        db,
        "optimize",
        "-d",
        "mine",
        "-m",
        "n",
        "--objective",
        "my_train:objective",
    ]
    out = CliRunner().invoke(main, no_space)
    assert out.exit_code == 1 and "--objective needs --space" in out.output
    ok = CliRunner().invoke(main, [*base, "-m", "net", "--objective", "my_train:objective",
                                   "--metric", "score", "--format", "json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["best_value"] == 1.0

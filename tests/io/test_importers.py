"""Importers read real MLflow and Optuna stores (built here with the real libraries)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd
import pytest

from warehouse.errors import NotFoundError, ValidationError
from warehouse.importers import import_mlflow, import_optuna

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install mlflow)")
optuna = pytest.importorskip("optuna", reason="optuna is not installed")


def _mlflow_store(uri: str) -> dict[str, str]:
    """Three runs in experiment 'iris-exp' (one failed, one still running) and one in 'other'."""
    from mlflow.tracking import MlflowClient

    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        client = MlflowClient(tracking_uri=uri)
        eid = client.create_experiment("iris-exp")
        other = client.create_experiment("other")
        ids = {}
        start = 1_700_000_000_000  # ms: the history's timestamps are seconds after it
        r = client.create_run(
            eid, start_time=start, tags={"dataset": "iris", "model": "mlp", "team": "a"}
        )
        client.log_param(r.info.run_id, "learning_rate", "0.01")
        client.log_param(r.info.run_id, "activation", "relu")
        client.log_param(r.info.run_id, "early_stopping", "True")
        client.log_param(r.info.run_id, "alpha", "None")
        client.log_metric(r.info.run_id, "accuracy", 0.5, timestamp=start + 2000, step=0)
        client.log_metric(r.info.run_id, "accuracy", float("nan"), timestamp=start + 4000, step=1)
        client.log_metric(r.info.run_id, "accuracy", 0.9, timestamp=start + 5000, step=1)
        # step 0 twice: the later value is the one kept (MLflow's latest value too)
        client.log_metric(r.info.run_id, "log_loss", 0.35, timestamp=start + 5800, step=0)
        client.log_metric(r.info.run_id, "log_loss", 0.3, timestamp=start + 6000, step=0)
        client.set_terminated(r.info.run_id)
        ids["good"] = r.info.run_id
        r = client.create_run(eid, tags={"model": "mlp"})  # dataset from the param
        client.log_param(r.info.run_id, "dataset", "wine")
        client.log_param(r.info.run_id, "learning_rate", "0.1")
        client.set_terminated(r.info.run_id, status="FAILED")
        ids["failed"] = r.info.run_id
        r = client.create_run(eid, tags={"dataset": "iris", "model": "mlp"})
        ids["running"] = r.info.run_id
        r = client.create_run(other, tags={"model": "rf"})  # dataset = experiment name
        client.log_param(r.info.run_id, "max_depth", "7")
        client.log_metric(r.info.run_id, "accuracy", 0.7)
        client.set_terminated(r.info.run_id)
        ids["other"] = r.info.run_id
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old
    return ids


@pytest.fixture(params=["folder", "sqlite"])
def mlflow_store(request, tmp_path: Path) -> tuple[str, dict[str, str]]:
    if request.param == "folder":
        location = tmp_path / "mlruns"
        ids = _mlflow_store(location.as_uri())
    else:
        location = tmp_path / "mlflow.db"
        ids = _mlflow_store(f"sqlite:///{location}")
    return str(location), ids


def test_mlflow_import_maps_runs_params_metrics_and_is_idempotent(wh_memory, mlflow_store):
    location, ids = mlflow_store
    result = import_mlflow(wh_memory, location, include_tags=["team"])
    assert (result.imported, result.already_present, result.skipped_unfinished) == (3, 0, 1)

    runs = wh_memory.sql("SELECT * FROM runs ORDER BY run_id").set_index("run_id")
    good = runs.loc[f"mlflow:{ids['good']}"]
    assert (good["dataset"], good["model"], good["status"]) == ("iris", "mlp", "finished")
    assert good["duration_s"] >= 0 and good["source"] == "mlflow:iris-exp"
    failed = runs.loc[f"mlflow:{ids['failed']}"]
    assert (failed["dataset"], failed["status"]) == ("wine", "failed")
    assert runs.loc[f"mlflow:{ids['other']}", "dataset"] == "other"
    assert f"mlflow:{ids['running']}" not in runs.index

    params = wh_memory.sql(
        "SELECT name, value_num, value_text FROM run_params WHERE run_id = ?",
        [f"mlflow:{ids['good']}"],
    ).set_index("name")
    assert params.loc["learning_rate", "value_num"] == pytest.approx(0.01)
    assert params.loc["activation", "value_text"] == "relu"
    assert params.loc["early_stopping", "value_num"] == 1.0
    assert params.loc["alpha"].isna().all()  # "None" → explicitly unset
    assert params.loc["tag.team", "value_text"] == "a"
    # the 'dataset' parameter of the failed run became its dataset, not a parameter
    names = wh_memory.sql(
        "SELECT name FROM run_params WHERE run_id = ?", [f"mlflow:{ids['failed']}"]
    )["name"].tolist()
    assert names == ["learning_rate"]

    metrics = wh_memory.sql(
        "SELECT name, value FROM run_metrics WHERE run_id = ?", [f"mlflow:{ids['good']}"]
    ).set_index("name")["value"]
    assert metrics["accuracy"] == pytest.approx(0.9)  # the last value logged
    assert metrics["log_loss"] == pytest.approx(0.3)

    again = import_mlflow(wh_memory, location, include_tags=["team"])
    assert (again.imported, again.already_present) == (0, 3)
    assert int(wh_memory.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 3


def test_mlflow_import_brings_each_metrics_history_as_a_curve(wh_memory, mlflow_store):
    location, ids = mlflow_store
    import_mlflow(wh_memory, location)
    good = wh_memory.curves(run_ids=[f"mlflow:{ids['good']}"])
    points = list(zip(good.metric, good.step, good.value, good.elapsed_s, strict=True))
    # the NaN logged at step 1 is dropped; seconds are counted from the run's start
    assert points == [
        ("accuracy", 0, 0.5, 2.0),
        ("accuracy", 1, 0.9, 5.0),
        ("log_loss", 0, 0.3, 6.0),
    ]
    other = wh_memory.curves(run_ids=[f"mlflow:{ids['other']}"])
    assert other[["metric", "step", "value"]].values.tolist() == [["accuracy", 0, 0.7]]
    assert set(wh_memory.curves().run_id) == {f"mlflow:{ids['good']}", f"mlflow:{ids['other']}"}
    # a second import adds no point twice (the runs are skipped with their curves)
    assert import_mlflow(wh_memory, location).imported == 0
    assert len(wh_memory.curves()) == 4
    assert wh_memory.check().ok.all()


def test_mlflow_experiment_filter_and_overrides(wh_memory, mlflow_store):
    location, _ = mlflow_store
    result = import_mlflow(wh_memory, location, experiments=["other"], dataset="d9", model="m9")
    assert result.imported == 1
    row = wh_memory.sql("SELECT dataset, model FROM runs").iloc[0]
    assert (row["dataset"], row["model"]) == ("d9", "m9")
    with pytest.raises(NotFoundError, match="no MLflow experiment named 'nope'"):
        import_mlflow(wh_memory, location, experiments=["nope"])


def test_mlflow_run_without_model_fails_whole_batch(wh_memory, mlflow_store):
    location, _ = mlflow_store
    with pytest.raises(ValidationError, match="no 'flavour' tag or parameter"):
        import_mlflow(wh_memory, location, model_tag="flavour")
    assert int(wh_memory.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 0


def test_mlflow_missing_store_is_one_line_error(wh_memory, tmp_path: Path):
    with pytest.raises(NotFoundError, match="does not exist"):
        import_mlflow(wh_memory, tmp_path / "absent")


def _optuna_study(storage: str, name: str = "s1", directions=("maximize",)):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=list(directions),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    def objective(trial):
        lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
        depth = trial.suggest_int("max_depth", 1, 8)
        act = trial.suggest_categorical("activation", ["relu", "tanh"])
        value = 1 - lr + depth / 100 + (act == "relu") * 0.01
        if len(directions) == 1:  # Optuna takes intermediate values of one objective only
            for step in (1, 2, 4):
                trial.report(value * step / 4, step)
        if trial.number == 3:
            raise optuna.TrialPruned()
        if trial.number == 4:
            raise RuntimeError("boom")
        return value if len(directions) == 1 else (value, depth * 2.0)

    study.optimize(objective, n_trials=6, catch=(RuntimeError,))
    return study


def test_optuna_import_states_params_values_and_idempotence(wh_memory, tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _optuna_study(storage)
    running = study.ask()  # a trial left RUNNING: skipped
    assert running.number == 6

    result = import_optuna(wh_memory, storage, "s1", dataset="iris", model="mlp")
    assert (result.imported, result.already_present, result.skipped_unfinished) == (6, 0, 1)
    runs = wh_memory.sql("SELECT * FROM runs").set_index("run_id")
    assert runs.loc["optuna:s1:0", "status"] == "finished"
    assert runs.loc["optuna:s1:3", "status"] == "pruned"
    assert pd.isna(runs.loc["optuna:s1:3", "error"])  # no error: the status says it
    assert runs.loc["optuna:s1:4", "status"] == "failed"
    trial0 = study.trials[0]
    assert runs.loc["optuna:s1:0", "duration_s"] == pytest.approx(
        trial0.duration.total_seconds(), abs=1e-3
    )
    params = wh_memory.sql(
        "SELECT name, value_num, value_text FROM run_params WHERE run_id = 'optuna:s1:0'"
    ).set_index("name")
    assert params.loc["learning_rate", "value_num"] == pytest.approx(trial0.params["learning_rate"])
    assert params.loc["max_depth", "value_num"] == trial0.params["max_depth"]
    assert params.loc["activation", "value_text"] == trial0.params["activation"]
    values = wh_memory.sql("SELECT run_id, value FROM run_metrics WHERE name = 'value'")
    assert len(values) == 4  # COMPLETE trials only
    assert dict(zip(values.run_id, values.value, strict=True))["optuna:s1:0"] == pytest.approx(
        trial0.value
    )
    direction = wh_memory.sql("SELECT direction FROM metrics WHERE name = 'value'")
    assert direction["direction"][0] == "maximize"

    study.tell(running, 0.5)
    again = import_optuna(wh_memory, storage, "s1", dataset="iris", model="mlp")
    assert (again.imported, again.already_present, again.skipped_unfinished) == (1, 6, 0)


def test_optuna_intermediate_values_become_curves_and_pruned_trials_stay_out_of_training(
    wh_memory, tmp_path: Path
):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = _optuna_study(storage)
    import_optuna(wh_memory, storage, "s1", dataset="iris", model="mlp", metric="score")
    curves = wh_memory.curves()
    assert set(curves.metric) == {"score"}  # the objective's metric name
    assert curves.elapsed_s.isna().all()  # Optuna keeps no time per step
    for trial in study.trials:  # completed, pruned and failed trials all reported
        got = curves[curves.run_id == f"optuna:s1:{trial.number}"]
        assert dict(zip(got.step, got.value, strict=True)) == pytest.approx(
            trial.intermediate_values
        )
    pruned = wh_memory.curves(status="pruned")
    assert set(pruned.run_id) == {"optuna:s1:3"} and list(pruned.step) == [1, 2, 4]
    matrix = wh_memory.training_matrix("score")
    assert "optuna:s1:3" not in set(matrix.run_id) and len(matrix) == 4  # COMPLETE only
    assert wh_memory.check().ok.all()


def test_a_second_storages_study_of_the_same_name_is_not_taken_as_present(
    wh_memory, tmp_path: Path
):
    first, second = (f"sqlite:///{tmp_path / f'{n}.db'}" for n in ("a", "b"))
    _optuna_study(first)
    _optuna_study(second)  # also named s1, with its own trials
    assert import_optuna(wh_memory, first, "s1", dataset="iris", model="mlp").imported == 6
    for dataset in ("wine", "iris"):  # another dataset, or the same one: other trials
        with pytest.raises(ValidationError, match="under another name"):
            import_optuna(wh_memory, second, "s1", dataset=dataset, model="mlp")
    assert len(wh_memory.sql("SELECT * FROM runs")) == 6  # the refusal wrote nothing
    result = import_optuna(wh_memory, second, "s1", dataset="wine", model="mlp", name="s1-b")
    assert result.imported == 6
    again = import_optuna(wh_memory, first, "s1", dataset="iris", model="mlp")
    assert (again.imported, again.already_present) == (0, 6)
    with pytest.raises(ValidationError, match="without ':'"):
        import_optuna(wh_memory, first, "s1", dataset="iris", model="mlp", name="a:b")


def test_optuna_multi_objective_and_direction_conflict(wh_memory, tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _optuna_study(storage, "mo", directions=("maximize", "minimize"))
    result = import_optuna(wh_memory, storage, "mo", dataset="d", model="m")
    assert result.imported == 6
    dirs = wh_memory.sql("SELECT name, direction FROM metrics WHERE name LIKE 'value_%'")
    assert dict(zip(dirs.name, dirs.direction, strict=True)) == {
        "value_0": "maximize",
        "value_1": "minimize",
    }
    _optuna_study(storage, "mini", directions=("minimize",))
    with pytest.raises(ValidationError, match="metric 'value_0' is recorded as maximize"):
        import_optuna(wh_memory, storage, "mini", dataset="d", model="m", metric="value_0")
    assert wh_memory.sql("SELECT count(*) AS n FROM runs WHERE source = 'optuna:mini'")["n"][0] == 0


def test_missing_sqlite_files_are_refused_not_created(wh_memory, tmp_path: Path):
    missing = tmp_path / "nope.db"
    with pytest.raises(NotFoundError, match=r"Optuna storage .* does not exist"):
        import_optuna(wh_memory, f"sqlite:///{missing}", "s", dataset="d", model="m")
    with pytest.raises(NotFoundError, match=r"MLflow tracking store .* does not exist"):
        import_mlflow(wh_memory, f"sqlite:///{missing}")
    assert not missing.exists()


def test_optuna_unknown_study(wh_memory, tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _optuna_study(storage)
    with pytest.raises(NotFoundError, match=r"no Optuna study named 'zz'.*known: s1"):
        import_optuna(wh_memory, storage, "zz", dataset="d", model="m")


def _digest(location: Path) -> str:
    """A hash of a file, or of every file (path and bytes) and folder under a folder."""
    import hashlib

    h = hashlib.sha256()
    paths = sorted(location.rglob("*")) if location.is_dir() else [location]
    for p in paths:
        h.update(str(p.relative_to(location.parent)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_an_import_leaves_its_store_byte_identical(wh_memory, mlflow_store):
    location, _ = mlflow_store
    before = _digest(Path(location))
    assert import_mlflow(wh_memory, location).imported == 3
    assert _digest(Path(location)) == before


def test_an_mlflow_store_of_an_older_schema_is_imported_and_not_upgraded(wh_memory, tmp_path):
    # MLflow upgrades an older SQLite store in place when it opens it (the user's older
    # MLflow then refuses it): the import reads a copy instead
    import sqlite3
    import subprocess
    import sys

    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    ALEMBIC_HEAD = ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()
    db = tmp_path / "mlflow.db"

    def revision() -> str:
        with contextlib.closing(sqlite3.connect(db)) as con:
            return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]

    # written by another process (MLflow caches its stores per URI within one), then taken
    # back eight schema revisions by MLflow's own migrations: an older MLflow's store
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; from tests.io.test_importers import _mlflow_store; "
        "from alembic import command; from mlflow.store.db.utils import _get_alembic_config; "
        "_mlflow_store(sys.argv[1]); command.downgrade(_get_alembic_config(sys.argv[1]), '-8')"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], check=True, env=env, cwd=root)
    older = revision()
    assert older != ALEMBIC_HEAD
    before = _digest(db)
    result = import_mlflow(wh_memory, f"sqlite:///{db}")
    assert result.imported == 3 and result.source == f"sqlite:///{db}"
    assert _digest(db) == before and revision() == older
    assert not list(tmp_path.glob("mlflow.db-*"))  # no journal or WAL left beside it


def test_an_optuna_import_leaves_its_storage_byte_identical(wh_memory, tmp_path: Path):
    db = tmp_path / "optuna.db"
    _optuna_study(f"sqlite:///{db}")
    before = _digest(db)
    result = import_optuna(wh_memory, f"sqlite:///{db}", "s1", dataset="iris", model="mlp")
    assert result.imported == 6 and _digest(db) == before
    with pytest.raises(NotFoundError, match=r"no Optuna study named 'nope'.*known: s1"):
        import_optuna(wh_memory, f"sqlite:///{db}", "nope", dataset="iris", model="mlp")
    assert _digest(db) == before

"""Ingest: log_run / log_runs / meta-features, and bad input that must write nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from warehouse.errors import ValidationError


def _counts(wh) -> tuple[int, ...]:
    row = wh.sql(
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM run_params), "
        "(SELECT count(*) FROM run_metrics), (SELECT count(*) FROM datasets), "
        "(SELECT count(*) FROM run_architecture)"
    ).iloc[0]
    return tuple(int(v) for v in row)


def test_log_run_roundtrip(wh_memory):
    run_id = wh_memory.log_run(
        "iris",
        "mlp",
        {"lr": 0.01, "act": "relu", "early": True, "cap": None},
        {"accuracy": 0.93},
        duration_s=2.0,
        cpu_s=3.5,
        peak_mem_mb=120.0,
        seed=7,
        arch={"n_layers": 2, "width": 64},
        split="test",
    )
    p = wh_memory.sql(
        "SELECT name, value_num, value_text FROM run_params WHERE run_id = ? ORDER BY name",
        [run_id],
    )
    got = [
        [n, None if pd.isna(v) else v, None if pd.isna(t) else t]
        for n, v, t in p.itertuples(index=False)
    ]
    assert got == [
        ["act", None, "relu"],
        ["cap", None, None],
        ["early", 1.0, None],
        ["lr", 0.01, None],
    ]
    m = wh_memory.sql("SELECT name, split, value FROM run_metrics WHERE run_id = ?", [run_id])
    assert m.values.tolist() == [["accuracy", "test", 0.93]]
    r = wh_memory.sql("SELECT * FROM runs WHERE run_id = ?", [run_id]).iloc[0]
    assert (r.dataset, r.model, r.status, r.seed, r.cpu_s) == ("iris", "mlp", "finished", 7, 3.5)
    a = wh_memory.sql("SELECT count(*) AS n FROM run_architecture").n[0]
    assert a == 2
    assert wh_memory.sql("SELECT source FROM datasets").source[0] == "ingest"


def test_log_runs_counts_and_seq(wh_memory, tiny_history):
    assert wh_memory.log_runs(tiny_history) == 7
    seq = wh_memory.sql("SELECT run_id, seq FROM runs ORDER BY seq")
    assert list(seq.run_id) == [f"r{i}" for i in range(1, 8)]
    assert list(seq.seq) == list(range(1, 8))
    wh_memory.log_run("d1", "rf", {}, {"accuracy": 0.1}, run_id="r8")
    assert int(wh_memory.sql("SELECT seq FROM runs WHERE run_id = 'r8'").seq[0]) == 8


def test_generated_run_ids_are_unique(wh_memory, tiny_history):
    n = wh_memory.log_runs(tiny_history.drop(columns="run_id"))
    ids = wh_memory.sql("SELECT DISTINCT run_id FROM runs")
    assert n == 7 and len(ids) == 7


def test_mlflow_text_params_are_typed(wh_memory):
    df = pd.DataFrame(
        {
            "dataset": ["a", "a", "a"],
            "model": ["rf"] * 3,
            "status": ["FINISHED", "KILLED", "RUNNING"],
            "params.max_depth": ["5", "None", "10"],
            "params.bootstrap": ["True", "False", "true"],
            "params.max_features": ["sqrt", "0.5", ""],
            "metrics.accuracy": [0.5, 0.6, 0.7],
            "tags.mlflow.runName": ["x", "y", "z"],
            "experiment_id": ["1", "1", "1"],
        }
    )
    wh_memory.log_runs(df)
    p = wh_memory.sql("SELECT name, value_num, value_text FROM run_params ORDER BY name, value_num")
    rows = {
        (n, None if pd.isna(v) else v, t if isinstance(t, str) else None)
        for n, v, t in p.itertuples(index=False)
    }
    assert ("max_depth", 5.0, None) in rows and ("max_depth", None, None) in rows
    assert ("bootstrap", 0.0, None) in rows and ("bootstrap", 1.0, None) in rows
    assert ("max_features", None, "sqrt") in rows and ("max_features", 0.5, None) in rows
    assert sorted(wh_memory.sql("SELECT status FROM runs").status) == [
        "failed",
        "finished",
        "running",
    ]


def test_csv_and_parquet_paths(wh_memory, tiny_history, tmp_path):
    csv = tmp_path / "runs.csv"
    tiny_history.to_csv(csv, index=False)
    assert wh_memory.log_runs(csv) == 7
    pq = tmp_path / "runs.parquet"
    tiny_history.assign(run_id=tiny_history.run_id + "p").to_parquet(pq)
    assert wh_memory.log_runs(str(pq)) == 7
    assert (
        wh_memory.log_runs(
            pa.Table.from_pandas(
                tiny_history.assign(run_id=["a"] * 7).assign(run_id=[f"a{i}" for i in range(7)])
            )
        )
        == 7
    )
    assert _counts(wh_memory)[0] == 21


def test_new_metric_gets_direction(wh_memory):
    wh_memory.log_run("d", "m", {}, {"val_loss": 0.1, "my_score": 3.0})
    d = dict(
        wh_memory.sql(
            "SELECT name, direction FROM metrics WHERE name IN ('val_loss', 'my_score')"
        ).values.tolist()
    )
    assert d == {"val_loss": "minimize", "my_score": "maximize"}


def test_meta_features_upsert(wh_memory, tiny_meta_features):
    assert wh_memory.log_dataset_meta_features(tiny_meta_features) == 3
    wh_memory.log_dataset_meta_features(pd.DataFrame({"dataset": ["d1"], "n_rows": [151.0]}))
    assert wh_memory.meta_features().loc["d1", "n_rows"] == 151.0


# ------------------------------------------------------------------ bad input writes nothing
def _bad(df_edit):
    def make(tiny):
        df = tiny.copy()
        return df_edit(df)

    return make


BAD_FRAMES = {
    "unknown prefix": (lambda d: d.assign(**{"param.x": 1}), "param.x"),
    "missing dataset": (lambda d: d.drop(columns="dataset"), "dataset"),
    "missing model": (lambda d: d.drop(columns="model"), "model"),
    "non-numeric metric": (
        lambda d: d.assign(**{"metrics.accuracy": ["0.9", "x", "0.8", "0.7", "0.7", None, "0.9"]}),
        "row 2, column 'metrics.accuracy'",
    ),
    "duplicate run_id": (
        lambda d: d.assign(run_id=["r1", "r2", "r3", "r1", "r5", "r6", "r7"]),
        "rows 1 and 4",
    ),
    "empty dataset": (
        lambda d: d.assign(dataset=["d1", "", "d1", "d2", "d2", "d2", "d1"]),
        "row 2, column 'dataset'",
    ),
    "bad status": (lambda d: d.assign(status=["finished"] * 6 + ["exploded"]), "row 7"),
    "negative duration": (lambda d: d.assign(duration_s=[1, 1, 1, -1, 1, 1, 1]), "row 4"),
    "inf metric": (
        lambda d: d.assign(**{"metrics.log_loss": [0.1, 0.2, np.inf, 1, 1, 1, 1]}),
        "row 3, column 'metrics.log_loss'",
    ),
    "bad timestamp": (lambda d: d.assign(started_at=["2024-01-01"] * 6 + ["yesterday"]), "row 7"),
    "unknown split": (lambda d: d.assign(split=["valid"] * 5 + ["tst", "valid"]), "row 6"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frames_write_nothing(wh_memory, tiny_history, case):
    wh_memory.log_run("d0", "rf", {"a": 1}, {"accuracy": 0.5}, run_id="keep")
    before = _counts(wh_memory)
    edit, needle = BAD_FRAMES[case]
    with pytest.raises(ValidationError) as info:
        wh_memory.log_runs(edit(tiny_history))
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert _counts(wh_memory) == before


def test_nan_metric_in_arrow_refused(wh_memory, tiny_history):
    table = pa.table(
        {"dataset": ["a", "a"], "model": ["m", "m"], "metrics.acc": pa.array([0.5, float("nan")])}
    )
    with pytest.raises(ValidationError, match=r"row 2, column 'metrics.acc'.*not finite"):
        wh_memory.log_runs(table)
    assert _counts(wh_memory)[0] == 0


def test_nan_text_in_csv_refused(wh_memory, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("dataset,model,metrics.acc\na,m,0.5\na,m,nan\n")
    with pytest.raises(ValidationError, match="row 2"):
        wh_memory.log_runs(path)
    assert _counts(wh_memory)[0] == 0


def test_run_id_already_present(wh_memory, tiny_history):
    wh_memory.log_runs(tiny_history)
    before = _counts(wh_memory)
    again = tiny_history.assign(run_id=["n1", "n2", "r3", "n4", "n5", "n6", "n7"])
    with pytest.raises(ValidationError, match=r"row 3.*'r3' is already in the warehouse"):
        wh_memory.log_runs(again)
    assert _counts(wh_memory) == before


@pytest.mark.parametrize(
    "content,needle",
    [("", "empty"), ("dataset,model\n", "no rows"), ("\x00\x01garbage", "unknown format")],
)
def test_bad_files(wh_memory, tmp_path, content, needle):
    name = "x.bin" if "garbage" in content else "x.csv"
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValidationError, match=needle):
        wh_memory.log_runs(path)


def test_missing_file(wh_memory, tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        wh_memory.log_runs(tmp_path / "nope.csv")


def test_unreadable_parquet(wh_memory, tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(ValidationError, match="cannot read"):
        wh_memory.log_runs(path)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"metrics": {"acc": float("nan")}}, "not finite"),
        ({"metrics": {"acc": "high"}}, "not a number"),
        ({"params": {"x": [1, 2]}}, "unsupported type"),
        ({"metrics": {"acc": 1.0}, "bogus": 1}, "unknown field 'bogus'"),
        ({"metrics": {"acc": 1.0}, "status": "done"}, "unknown status"),
        ({"metrics": {"acc": 1.0}, "duration_s": -2}, "negative"),
        ({"metrics": {"acc": 1.0}, "split": "tst"}, "unknown split 'tst'"),
    ],
)
def test_log_run_bad_input(wh_memory, kwargs, needle):
    kwargs = {"params": {}, **kwargs}
    with pytest.raises(ValidationError, match=needle):
        wh_memory.log_run("d", "m", **kwargs)
    assert _counts(wh_memory) == (0, 0, 0, 0, 0)


def test_log_run_duplicate_id(wh_memory):
    wh_memory.log_run("d", "m", {"a": 1}, {"acc": 0.5}, run_id="x")
    with pytest.raises(ValidationError, match="already"):
        wh_memory.log_run("d", "m", {"a": 2}, {"acc": 0.6}, run_id="x")
    assert _counts(wh_memory) == (1, 1, 1, 1, 0)


def test_bad_meta_features_write_nothing(wh_memory):
    with pytest.raises(ValidationError, match="row 2, column 'x'"):
        wh_memory.log_dataset_meta_features(pd.DataFrame({"dataset": ["a", "b"], "x": ["1", "q"]}))
    with pytest.raises(ValidationError, match="appears twice"):
        wh_memory.log_dataset_meta_features(pd.DataFrame({"dataset": ["a", "a"], "x": [1, 2]}))
    assert wh_memory.meta_features().empty
    assert _counts(wh_memory)[3] == 0


def test_long_rows_carry_their_runs_seq(wh_memory, tiny_history):
    wh_memory.log_runs(tiny_history)
    wh_memory.log_run("d1", "rf", {"max_depth": 3}, {"accuracy": 0.7}, arch={"n_layers": 2})
    for table in ("run_params", "run_metrics", "run_architecture"):
        bad = wh_memory.sql(
            f"SELECT count(*) AS n FROM {table} AS t JOIN runs AS r USING (run_id) "
            "WHERE r.seq <> t.seq"
        ).n[0]
        assert bad == 0, table
    assert wh_memory.sql("SELECT count(*) AS n FROM run_architecture").n[0] == 1
    report = wh_memory.check().set_index("audit")
    assert report.loc["run_seq_mismatch", "ok"]
    with wh_memory._transaction() as con:  # corrupt one row behind the API's back
        con.execute("UPDATE run_metrics SET seq = seq + 100 WHERE run_id = 'r1'")
    report = wh_memory.check().set_index("audit")
    assert not report.loc["run_seq_mismatch", "ok"]
    assert report.loc["run_seq_mismatch", "failing_rows"] >= 1


def test_log_run_duplicate_id_is_one_line_and_writes_nothing(wh_memory):
    wh_memory.log_run("d1", "rf", {"a": 1}, {"accuracy": 0.5}, run_id="dup")
    with pytest.raises(ValidationError, match=r"run_id 'dup' is already in the warehouse"):
        wh_memory.log_run("d1", "rf", {"a": 2}, {"accuracy": 0.6}, run_id="dup")
    n = wh_memory.sql("SELECT (SELECT count(*) FROM run_params) + (SELECT count(*) FROM runs) AS n")
    assert int(n.n[0]) == 2


def test_read_frame_json_layouts(tmp_path):
    import json

    import pandas as pd

    from warehouse.frames import read_frame

    want = {"lr": [0.1, 0.2], "depth": [3, 4]}
    layouts = {
        "records.json": [{"lr": 0.1, "depth": 3}, {"lr": 0.2, "depth": 4}],
        "columns.json": want,
        "pandas.json": json.loads(pd.DataFrame(want).to_json()),
    }
    for name, obj in layouts.items():
        (tmp_path / name).write_text(json.dumps(obj))
        assert read_frame(tmp_path / name).to_dict("list") == want, name
    (tmp_path / "one.json").write_text('{"lr": 0.1, "depth": 3}')
    assert read_frame(tmp_path / "one.json").to_dict("list") == {"lr": [0.1], "depth": [3]}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValidationError, match="must hold a JSON object"):
        read_frame(tmp_path / "bad.json")
    (tmp_path / "ragged.csv").write_text("lr,depth\n0.1,3,9\n")
    with pytest.raises(ValidationError, match="cannot read"):
        read_frame(tmp_path / "ragged.csv")


def test_delete_runs_is_all_or_nothing_and_unlinks_recommendations(wh_memory):
    from warehouse.errors import NotFoundError

    for i, acc in enumerate((0.7, 0.9, 0.8)):
        wh_memory.log_run("d", "rf", {"depth": i}, {"accuracy": acc}, run_id=f"r{i}")
    with wh_memory._transaction() as con:
        con.execute(
            "INSERT INTO recommendations (rec_id, dataset, model, config, run_id) "
            "VALUES ('c1', 'd', 'rf', '{}', 'r1')"
        )
    with pytest.raises(NotFoundError, match="'nope'"):
        wh_memory.delete_runs(["r1", "nope"])
    assert len(wh_memory.sql("SELECT * FROM runs")) == 3  # refused: nothing deleted
    with pytest.raises(ValidationError, match="say which runs"):
        wh_memory.delete_runs()
    assert wh_memory.delete_runs(["r1"], dry_run=True) == ["r1"]
    assert wh_memory.delete_runs(["r1"]) == ["r1"]
    best = wh_memory.sql("SELECT run_id, n_runs FROM incumbents WHERE metric = 'accuracy'")
    assert best.to_dict("records") == [{"run_id": "r2", "n_runs": 2}]
    assert wh_memory.sql("SELECT run_id FROM recommendations")["run_id"].isna().all()
    assert wh_memory.check()["ok"].all()
    wh_memory.log_run("d", "rf", {"depth": 9}, {"accuracy": 0.95}, run_id="r9")  # and after
    assert wh_memory.check()["ok"].all()

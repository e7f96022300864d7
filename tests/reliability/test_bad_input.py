"""Bad input campaign: every malformed input gets a one-line error naming the problem, and the
row counts of every table prove nothing was written.

Each case is ``(id, act, error class, regex the message must match)``. ``act(ctx)`` gets a
:class:`Ctx` holding a file warehouse seeded with a registered dataset (``iris``) and a small
run history, and a scratch folder. Unicode names are not bad input: they must round-trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tiny_history_frame, tiny_meta_features_frame
from tests.reliability._tally import TALLY
from warehouse import Warehouse
from warehouse.errors import MetaoptError, NotFoundError, SchemaVersionError, ValidationError


@dataclass
class Ctx:
    wh: Warehouse
    tmp: Path

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def parquet(self, name: str, df: pd.DataFrame) -> Path:
        path = self.tmp / name
        df.to_parquet(path)
        return path


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    return X.assign(target=y).iloc[::5].reset_index(drop=True)  # 30 rows


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A warehouse file built once; each case works on its own copy."""
    root = tmp_path_factory.mktemp("bad")
    path = root / "seed.duckdb"
    with Warehouse(path) as wh:
        wh.log_runs(tiny_history_frame())
        wh.log_dataset_meta_features(tiny_meta_features_frame())
        wh.register_dataset("iris", _iris(), target="target", task="classification")
        wh._con.execute("CHECKPOINT")
    return path


@pytest.fixture
def ctx(seeded, tmp_path):
    import shutil

    path = tmp_path / "wh.duckdb"
    shutil.copy(seeded, path)
    with Warehouse(path) as wh:
        yield Ctx(wh, tmp_path)


def counts(wh: Warehouse) -> dict[str, int]:
    tables = wh._read_df(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'"
    )["table_name"]
    q = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM \"{t}\"" for t in tables)
    df = wh._read_df(q)
    return dict(zip(df.t, df.n.astype(int), strict=True))


def runs(**cols: Any) -> pd.DataFrame:
    base: dict[str, Any] = {"dataset": ["d1", "d2"], "model": ["rf", "rf"]}
    base.update(cols)
    return pd.DataFrame(base)


def _wide(n: int, bad: str) -> pd.DataFrame:
    """A 3-row table with ``n`` metric columns whose last cell (row 3, the last column) is
    ``bad``, as a CSV would give it (every column text)."""
    cols: dict[str, Any] = {"dataset": ["d1", "d2", "d3"], "model": ["rf"] * 3}
    for j in range(n):
        cols[f"metrics.m{j}"] = ["0.5", "0.25", bad if j == n - 1 else "0.75"]
    return pd.DataFrame(cols)


# ---------------------------------------------------------------------------- the cases
def _space(spec: dict) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> Any:
        from metaopt_bayes.space import SearchSpace

        return SearchSpace.from_dict(spec)

    return act


def _space_file(text: str) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> Any:
        from metaopt_bayes.space import SearchSpace

        return SearchSpace.from_file(c.file("space.yaml", text))

    return act


RF_OK = {
    "n_estimators": 20,
    "max_depth": 3,
    "max_features": 0.5,
    "min_samples_leaf": 1,
    "bootstrap": True,
}


def _sweep_configs(configs: list[dict]) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> Any:
        from metaopt_bayes.sweeps import sweep

        full = [{**RF_OK, **cfg} for cfg in configs]
        return sweep(c.wh, "iris", "random_forest", 1, configs=full, progress=False, cv=2)

    return act


def _model_file(attrs: dict | None, raw: bytes | None = None) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> Any:
        from metaopt_bayes.model import MetaLearner

        path = c.tmp / "model.nc"
        if raw is not None:
            path.write_bytes(raw)
        else:
            import xarray as xr

            xr.Dataset({"B": ("draw", np.zeros(3))}, attrs=attrs or {}).to_netcdf(path)
        return MetaLearner.load(path)

    return act


def _optimize(**kw: Any) -> Callable[[Ctx], Any]:
    def act(c: Ctx) -> Any:
        from metaopt_bayes.search import optimize

        args = {"budget": 1, "objective": lambda cfg: {"score": 1.0}}
        args.update(kw)
        return optimize(c.wh, args.pop("dataset", "d1"), args.pop("model", "toy"), **args)

    return act


NAN, INF = float("nan"), float("inf")
HUGE = "x" * 2_000_000

CASES: list[tuple[str, Callable[[Ctx], Any], type[MetaoptError], str]] = [
    # ---- malformed CSV / Parquet files
    ("csv-empty-file", lambda c: c.wh.log_runs(c.file("e.csv", "")), ValidationError, "empty"),
    (
        "csv-header-only",
        lambda c: c.wh.log_runs(c.file("h.csv", "dataset,model,metrics.accuracy\n")),
        ValidationError,
        "no rows",
    ),
    (
        "csv-ragged-rows",
        lambda c: c.wh.log_runs(
            c.file("r.csv", "dataset,model,metrics.accuracy\nd1,rf,0.5\nd1,rf,0.5,9,9\n")
        ),
        ValidationError,
        r"r\.csv",
    ),
    (
        "csv-binary-garbage",
        lambda c: c.wh.log_runs(c.file("g.csv", bytes(range(256)) * 4)),
        ValidationError,
        r"g\.csv",
    ),
    (
        "csv-missing-dataset-column",
        lambda c: c.wh.log_runs(c.file("m.csv", "model,metrics.accuracy\nrf,0.5\n")),
        ValidationError,
        "'dataset'",
    ),
    (
        "csv-duplicate-columns",
        lambda c: c.wh.log_runs(
            c.file("dup.csv", "dataset,model,metrics.acc,metrics.acc\nd1,rf,0.5,0.6\n")
        ),
        ValidationError,
        "metrics.acc",
    ),
    (
        "csv-metric-not-a-number",
        lambda c: c.wh.log_runs(
            c.file("t.csv", "dataset,model,metrics.accuracy\nd1,rf,0.5\nd2,rf,high\n")
        ),
        ValidationError,
        "metrics.accuracy",
    ),
    (
        "parquet-truncated",
        lambda c: c.wh.log_runs(
            c.file(
                "trunc.parquet",
                c.parquet("full.parquet", runs(**{"metrics.accuracy": [0.1, 0.2]})).read_bytes()[
                    :-40
                ],
            )
        ),
        ValidationError,
        r"trunc\.parquet",
    ),
    (
        "parquet-not-parquet",
        lambda c: c.wh.log_runs(c.file("fake.parquet", "dataset,model\nd1,rf\n")),
        ValidationError,
        r"fake\.parquet",
    ),
    (
        "file-missing",
        lambda c: c.wh.log_runs(c.tmp / "nope.csv"),
        ValidationError,
        "does not exist",
    ),
    (
        "file-unknown-extension",
        lambda c: c.wh.log_runs(c.file("runs.xlsx", "x")),
        ValidationError,
        r"runs\.xlsx",
    ),
    # ---- wrong types
    (
        "metric-text-in-frame",
        lambda c: c.wh.log_runs(runs(**{"metrics.accuracy": [0.5, "bad"]})),
        ValidationError,
        "metrics.accuracy",
    ),
    (
        "metric-is-list",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": [0.5]}),
        ValidationError,
        "accuracy",
    ),
    (
        "params-not-a-dict",
        lambda c: c.wh.log_run("d1", "rf", ["depth", 3], {"accuracy": 0.5}),
        ValidationError,
        "dict",
    ),
    (
        "duration-negative",
        lambda c: c.wh.log_runs(runs(**{"metrics.accuracy": [0.5, 0.6], "duration_s": [1, -2]})),
        ValidationError,
        "duration_s",
    ),
    (
        "duration-text",
        lambda c: c.wh.log_runs(
            runs(**{"metrics.accuracy": [0.5, 0.6], "duration_s": ["1s", "2s"]})
        ),
        ValidationError,
        "duration_s",
    ),
    (
        "status-unknown",
        lambda c: c.wh.log_runs(
            runs(**{"metrics.accuracy": [0.5, 0.6], "status": ["finished", "exploded"]})
        ),
        ValidationError,
        "status",
    ),
    (
        "started-at-not-a-date",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": 0.5}, started_at="yesterday-ish"),
        ValidationError,
        "started_at",
    ),
    (
        "seed-not-integer",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": 0.5}, seed="abc"),
        ValidationError,
        "seed",
    ),
    (
        "dataframe-int-column-names",
        lambda c: c.wh.log_runs(pd.DataFrame({0: ["d1"], 1: ["rf"]})),
        ValidationError,
        "column",
    ),
    (
        "not-a-table",
        lambda c: c.wh.log_runs(42),
        ValidationError,
        "int",
    ),
    # ---- NaN / inf
    (
        "metric-inf-in-frame",
        lambda c: c.wh.log_runs(runs(**{"metrics.accuracy": [0.5, INF]})),
        ValidationError,
        "metrics.accuracy",
    ),
    (
        "metric-minus-inf-log-run",
        lambda c: c.wh.log_run("d1", "rf", {}, {"log_loss": -INF}),
        ValidationError,
        "log_loss",
    ),
    (
        "metric-nan-log-run",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": NAN}),
        ValidationError,
        "accuracy",
    ),
    (
        "param-inf-in-frame",
        lambda c: c.wh.log_runs(runs(**{"metrics.accuracy": [0.5, 0.6], "params.lr": [0.1, INF]})),
        ValidationError,
        "params.lr",
    ),
    (
        "meta-feature-inf",
        lambda c: c.wh.log_dataset_meta_features(pd.DataFrame({"dataset": ["d1"], "n": [INF]})),
        ValidationError,
        "'n'|n\\b",
    ),
    # ---- huge and empty strings
    (
        "dataset-empty-string",
        lambda c: c.wh.log_runs(pd.DataFrame({"dataset": ["d1", ""], "model": ["rf", "rf"]})),
        ValidationError,
        "dataset",
    ),
    (
        "model-empty-log-run",
        lambda c: c.wh.log_run("d1", "", {}, {"accuracy": 0.5}),
        ValidationError,
        "model",
    ),
    (
        "metric-name-empty",
        lambda c: c.wh.log_runs(runs(**{"metrics.": [0.5, 0.6]})),
        ValidationError,
        "empty",
    ),
    (
        "param-name-empty-log-run",
        lambda c: c.wh.log_run("d1", "rf", {"": 1}, {"accuracy": 0.5}),
        ValidationError,
        "name",
    ),
    (
        "run-id-empty",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": 0.5}, run_id=""),
        ValidationError,
        "run_id",
    ),
    # ---- duplicated ids
    (
        "run-id-duplicated-in-batch",
        lambda c: c.wh.log_runs(runs(run_id=["x1", "x1"], **{"metrics.accuracy": [0.5, 0.6]})),
        ValidationError,
        "x1",
    ),
    (
        "run-id-already-logged",
        lambda c: c.wh.log_runs(runs(run_id=["new", "r1"], **{"metrics.accuracy": [0.5, 0.6]})),
        ValidationError,
        "r1",
    ),
    (
        "run-id-already-logged-log-run",
        lambda c: c.wh.log_run("d1", "rf", {}, {"accuracy": 0.5}, run_id="r2"),
        ValidationError,
        "r2",
    ),
    (
        "dataset-registered-twice",
        lambda c: c.wh.register_dataset("iris", _iris().iloc[:-1], target="target"),
        ValidationError,
        "iris",
    ),
    # ---- unknown datasets / models / views
    (
        "sweep-unknown-dataset",
        lambda c: __import__("metaopt_bayes.sweeps", fromlist=["sweep"]).sweep(
            c.wh, "no_such_ds", "random_forest", 1, progress=False
        ),
        NotFoundError,
        "no_such_ds",
    ),
    (
        "train-unknown-dataset",
        lambda c: __import__("metaopt_bayes.trainer", fromlist=["x"]).train_and_evaluate(
            c.wh, "ghost", "random_forest", {}
        ),
        NotFoundError,
        "ghost",
    ),
    (
        "train-unknown-model",
        lambda c: __import__("metaopt_bayes.trainer", fromlist=["x"]).train_and_evaluate(
            c.wh, "iris", "quantum_forest", {}
        ),
        NotFoundError,
        "quantum_forest",
    ),
    ("view-unknown", lambda c: c.wh.view("no_view"), NotFoundError, "no_view"),
    (
        "view-unknown-filter",
        lambda c: c.wh.view("run_features", colour="red"),
        ValidationError,
        "colour",
    ),
    # ---- invalid search spaces
    (
        "space-low-above-high",
        _space({"x": {"type": "float", "low": 1.0, "high": 0.0}}),
        ValidationError,
        "'x'|x:",
    ),
    (
        "space-log-nonpositive",
        _space({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}),
        ValidationError,
        "lr",
    ),
    (
        "space-empty-choices",
        _space({"c": {"type": "categorical", "choices": []}}),
        ValidationError,
        "'c'|c:",
    ),
    (
        "space-duplicate-choice",
        _space({"c": {"type": "categorical", "choices": ["a", "a"]}}),
        ValidationError,
        "'a'",
    ),
    (
        "space-unknown-key",
        _space({"x": {"type": "float", "low": 0, "high": 1, "colour": "red"}}),
        ValidationError,
        "colour",
    ),
    (
        "space-nan-bound",
        _space({"x": {"type": "float", "low": NAN, "high": 1}}),
        ValidationError,
        "'x'|x",
    ),
    ("space-not-a-mapping", _space(["x", "y"]), ValidationError, "mapping"),  # type: ignore[arg-type]
    (
        "space-file-bad-yaml",
        _space_file("x: [0, 1\n  y: {"),
        ValidationError,
        r"space\.yaml",
    ),
    # ---- invalid configs for a model
    (
        "config-missing-parameter",
        lambda c: __import__("metaopt_bayes.sweeps", fromlist=["x"]).sweep(
            c.wh, "iris", "random_forest", 1, configs=[{"max_depth": 3}], progress=False
        ),
        ValidationError,
        "n_estimators",
    ),
    (
        "config-out-of-space",
        _sweep_configs([{"n_estimators": -5}]),
        ValidationError,
        "n_estimators",
    ),
    (
        "config-unknown-choice",
        _sweep_configs([{"bootstrap": "coin_flip"}]),
        ValidationError,
        "coin_flip",
    ),
    (
        "config-unknown-parameter",
        _sweep_configs([{"criterion": "gini"}]),
        ValidationError,
        "criterion",
    ),
    (
        "config-wrong-type",
        _sweep_configs([{"max_depth": "deep"}]),
        ValidationError,
        "max_depth",
    ),
    (
        "config-not-a-mapping",
        lambda c: __import__("metaopt_bayes.trainer", fromlist=["x"]).train_and_evaluate(
            c.wh, "iris", "random_forest", ["max_depth", 3]
        ),
        ValidationError,
        "mapping",
    ),
    (
        "optimize-zero-budget",
        _optimize(budget=0, candidates=pd.DataFrame({"x": [0.1]})),
        ValidationError,
        "budget",
    ),
    (
        "optimize-jobs-zero",
        _optimize(jobs=0, candidates=pd.DataFrame({"x": [0.1]})),
        ValidationError,
        "jobs",
    ),
    # ---- a metric missing from every run
    (
        "fit-metric-missing-everywhere",
        lambda c: (
            __import__("metaopt_bayes.model", fromlist=["x"])
            .MetaLearner("f1_weighted_never_logged", method="map")
            .fit(c.wh)
        ),
        ValidationError,
        "f1_weighted_never_logged",
    ),
    (
        "training-matrix-datasets-as-string",
        lambda c: c.wh.training_matrix("accuracy", datasets="d1"),
        ValidationError,
        "datasets",
    ),
    # ---- a meta-model file from another version / not a model
    (
        "model-file-newer-format",
        _model_file({"metaopt_format": 99, "metaopt_version": "9.9.9", "config": "{}"}),
        ValidationError,
        "format 99",
    ),
    (
        "model-file-no-attributes",
        _model_file({}),
        ValidationError,
        "not a metaopt model",
    ),
    (
        "model-file-garbage",
        _model_file(None, raw=b"\x89HDF\r\n\x1a\n" + b"\x00" * 64),
        ValidationError,
        "model file",
    ),
    (
        "model-file-tampered-config",
        _model_file(
            {
                "metaopt_format": 1,
                "metaopt_version": "0.1.0",
                "config": json.dumps(
                    {"metric": "accuracy", "model": None, "direction": "maximize", "method": "map"}
                ),
                "config_hash": "deadbeef",
            }
        ),
        ValidationError,
        "hash",
    ),
    ("model-file-missing", lambda c: _model_file(None, raw=None)(c), ValidationError, "model"),
    # ---- a warehouse file from elsewhere
    (
        "warehouse-newer-schema",
        lambda c: _newer_schema(c),
        SchemaVersionError,
        "newer metaopt",
    ),
    (
        "warehouse-foreign-duckdb",
        lambda c: _foreign(c),
        SchemaVersionError,
        "not a metaopt warehouse",
    ),
    # ---- metric ranges (warehouse.metric_ranges), in every path a run comes in by
    (
        "metric-accuracy-above-one",
        lambda c: c.wh.log_runs(runs(**{"metrics.accuracy": [0.5, 1.7]})),
        ValidationError,
        r"row 2, column 'metrics\.accuracy': 1\.7 is outside the range of metric 'accuracy'",
    ),
    (
        "metric-f1-negative-csv",
        lambda c: c.wh.log_runs(c.file("f1.csv", "dataset,model,metrics.f1\nd1,rf,-0.2\n")),
        ValidationError,
        r"'metrics\.f1': -0\.2 is outside .*\[0, 1\]",
    ),
    (
        "metric-val-auc-text-above-one",
        lambda c: c.wh.log_runs(runs(**{"metrics.val_roc_auc": ["0.5", "1.01"]})),
        ValidationError,
        r"1\.01 is outside the range of metric 'val_roc_auc'",
    ),
    (
        "metric-rmse-negative",
        lambda c: c.wh.log_runs(runs(**{"metrics.rmse": [0.1, -3.0]})),
        ValidationError,
        r"-3\.0 is outside .* >= 0",
    ),
    (
        "metric-log-run-precision",
        lambda c: c.wh.log_run("d1", "rf", {}, {"precision": 1.2}),
        ValidationError,
        r"metric 'precision': 1\.2 is outside its range \[0, 1\]",
    ),
    (
        "metric-range-bad-bounds",
        lambda c: c.wh.set_metric_range("accuracy", 1, 0),
        ValidationError,
        "above upper",
    ),
    # ---- wide files and encodings
    (
        "wide-file-bad-cell-in-the-last-of-3000-columns",
        lambda c: c.wh.log_runs(_wide(3000, bad="x")),
        ValidationError,
        r"row 3, column 'metrics\.m2999': 'x' is not a number",
    ),
    (
        "wide-file-accuracy-out-of-range-after-3000-columns",
        lambda c: c.wh.log_runs(
            _wide(3000, bad="0.75").assign(**{"metrics.accuracy": ["0.5", "0.6", "1.5"]})
        ),
        ValidationError,
        r"row 3, column 'metrics\.accuracy': 1\.5 is outside",
    ),
    (
        "csv-utf16-with-bom",
        lambda c: c.wh.log_runs(
            c.file("u16.csv", "dataset,model,metrics.accuracy\nd1,rf,0.5\n".encode("utf-16"))
        ),
        ValidationError,
        r"u16\.csv",
    ),
    (
        "csv-cp1252-header",
        lambda c: c.wh.log_runs(
            c.file("cp.csv", "dataset,model,metrics.précision\nd1,rf,0.5\n".encode("cp1252"))
        ),
        ValidationError,
        r"cp\.csv'.*not UTF-8",
    ),
    (
        "csv-nul-bytes-in-header",
        lambda c: c.wh.log_runs(c.file("nul.csv", b"dataset,model,metrics.a\x00b\nd1,rf,0.5\n")),
        ValidationError,
        "NUL",
    ),
    (
        "warehouse-not-duckdb",
        lambda c: Warehouse(c.file("junk.duckdb", b"this is not a database" * 100)),
        SchemaVersionError,
        r"junk\.duckdb",
    ),
]


def _newer_schema(c: Ctx) -> Any:
    import duckdb

    path = c.tmp / "newer.duckdb"
    with Warehouse(path):
        pass
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO metaopt_schema (version, name) VALUES (999, 'from_the_future')")
    con.close()
    return Warehouse(path)


def _foreign(c: Ctx) -> Any:
    import duckdb

    path = c.tmp / "foreign.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE invoices AS SELECT 1 AS id")
    con.close()
    return Warehouse(path)


def test_at_least_sixty_cases():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("act", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_and_writes_nothing(ctx, act, error, pattern):
    before = counts(ctx.wh)
    TALLY["bad inputs tried"] += 1
    with pytest.raises(error) as info:
        act(ctx)
    message = str(info.value)
    assert message and "\n" not in message, message
    assert len(message) < 600, message[:200]
    assert re.search(pattern, message), message
    assert counts(ctx.wh) == before
    TALLY["bad inputs refused with nothing written"] += 1


# ---------------------------------------------------------------------------- unicode must work
UNICODE = ["données_été", "数据集", "набор", "🌲forest", "a'b\"c", "tab\tname", "ﬁ ligature"]


@pytest.mark.parametrize("name", UNICODE)
def test_unicode_names_round_trip(ctx, name):
    run_id = ctx.wh.log_run(name, f"model_{name}", {f"p_{name}": name}, {f"m_{name}": 0.5})
    row = ctx.wh.view("run_features", run_id=run_id).iloc[0]
    assert row.dataset == name and row.model == f"model_{name}"
    assert row.params_text == {f"p_{name}": name}
    assert row.metrics == {f"m_{name}": 0.5}
    got = ctx.wh.sql("SELECT dataset FROM runs WHERE run_id = ?", [run_id]).dataset[0]
    assert got == name
    frame = pd.DataFrame({"dataset": [name], "model": ["m"], f"metrics.{name}": [1.0]})
    assert ctx.wh.log_runs(frame) == 1
    tm = ctx.wh.training_matrix(name)
    assert tm.dataset.tolist() == [name]
    TALLY["unicode names round-tripped"] += 1


def test_huge_strings_are_data_and_round_trip(ctx):
    """Huge names and values are stored exactly (DuckDB VARCHAR has no practical limit)."""
    long = "é" * 100_000
    name = "d" * 1_000_000
    run_id = ctx.wh.log_run(name, "rf", {"note": long}, {"accuracy": 0.5})
    row = ctx.wh.view("run_features", run_id=run_id).iloc[0]
    assert row.params_text == {"note": long} and row.dataset == name
    TALLY["huge strings round-tripped"] += 1


def test_out_of_range_metric_is_refused_and_one_stored_earlier_is_flagged_by_check(ctx):
    """An accuracy of 1.7 is refused at ingest (the range table of
    :mod:`warehouse.metric_ranges`, kept in the warehouse's ``metrics`` table); a value stored
    before its range was set is reported by the ``metric_out_of_range`` audit of ``check``."""
    with pytest.raises(ValidationError, match=r"row 2, column 'metrics.accuracy': 1.7 is outside"):
        ctx.wh.log_runs(runs(**{"metrics.accuracy": [0.5, 1.7]}))
    ctx.wh.set_metric_range("accuracy", 0, 100)  # a history logged in percent
    ctx.wh.log_runs(runs(**{"metrics.accuracy": [50.0, 99.5]}))
    assert ctx.wh.check().ok.all()
    ctx.wh.set_metric_range("accuracy", 0, 1)  # stored values now outside: check says so
    report = ctx.wh.check().set_index("audit")
    assert report.loc["metric_out_of_range", "failing_rows"] == 2
    assert report.drop(index="metric_out_of_range").ok.all()

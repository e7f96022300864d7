"""``Warehouse.training_matrix()`` rebuilds the ``training_matrix`` view's join by hand (for
speed); here both are read for the same filters and must give the same rows and values.

Missing values compare equal: a parameter a run did not set (or logged as unset) is NaN/None
in the Python matrix and absent from the view's maps. The one difference in shape is pinned
by :func:`test_a_parameter_unset_in_every_row_is_an_all_missing_column`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from warehouse import Warehouse

BASE = ["run_id", "dataset", "model", "value", "duration_s", "seq"]
PARAMS = {  # per model: how the parameters of run k are drawn
    "rf": lambda k: {
        "max_depth": [3, 5, None, 8][k % 4],  # None: logged as unset
        "criterion": ["gini", "entropy"][k % 2],
        "bootstrap": [True, False][k % 2],  # stored as 1.0 / 0.0
    },
    "svm": lambda k: {
        "C": 10.0 ** (k % 3 - 1),
        "gamma": ["scale", 0.01, "auto"][k % 3],  # text in some runs, a number in others
        "kernel": None,  # unset in every svm run
    },
    "mlp": lambda k: {"lr": 1e-3 * (k + 1)} if k % 3 else {},  # some runs have no parameters
}
ARCH = {"mlp": lambda k: {"layers": 1 + k % 3, "activation": ["relu", "tanh"][k % 2]}}


def _seed(wh: Warehouse) -> None:
    """3 datasets x 3 models x 5 runs; accuracy and log_loss on valid, accuracy on test for
    some; failed and running runs (some with metrics); both ingest paths (log_run and
    log_runs); the names need quoting (a dot, a quote)."""
    rows = []
    for i, (dataset, model, k) in enumerate(
        itertools.product(["d1", "d2", "d'3"], ["rf", "svm", "mlp"], range(5))
    ):
        status = "failed" if k == 3 else "running" if (i % 11 == 0) else "finished"
        metrics = {"accuracy": 0.5 + 0.01 * i, "log_loss": 1.0 / (i + 1)}
        if status == "failed" and i % 2:
            metrics = {}
        params = PARAMS[model](k)
        arch = ARCH.get(model, lambda k: {})(k)
        if i % 2:  # log_run: per-run path
            duration = 0.1 * i if i % 5 else None
            wh.log_run(
                dataset,
                model,
                params,
                metrics,
                run_id=f"r{i}",
                status=status,
                arch=arch,
                duration_s=duration,
            )
            if k == 4:
                test = {"accuracy": 0.4}
                wh.log_run(dataset, model, params, test, run_id=f"t{i}", split="test", arch=arch)
        else:  # log_runs: bulk path (MLflow layout)
            row = {"run_id": f"r{i}", "dataset": dataset, "model": model, "status": status}
            row["duration_s"] = 0.1 * i if i % 5 else np.nan
            row.update({f"params.{n}": ("None" if v is None else v) for n, v in params.items()})
            row.update({f"arch.{n}": v for n, v in arch.items()})
            row.update({f"metrics.{n}": v for n, v in metrics.items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    for col in frame.columns:  # mixed columns as text, as MLflow logs them
        if col.startswith(("params.", "arch.")) and pd.api.types.is_object_dtype(frame[col]):
            frame[col] = [None if _missing(v) else str(v) for v in frame[col]]
    wh.log_runs(frame)
    wh.log_run("d1", "rf", {"a.b": 1.5, "it's": "x"}, {"accuracy": 0.99}, run_id="odd")


@pytest.fixture(scope="module")
def wh():
    with Warehouse(":memory:") as w:
        _seed(w)
        yield w


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _from_view(wh: Warehouse, metric: str, split: str, **kw: Any) -> pd.DataFrame:
    """The view's rows for the filters, with its MAP columns as {name: value} per row."""
    filters: dict[str, Any] = {"metric": metric, "split": split}
    if kw.get("model") is not None:
        filters["model"] = kw["model"]
    if kw.get("datasets") is not None:
        filters["dataset"] = list(kw["datasets"])
    got = wh.view("training_matrix", **filters)
    if kw.get("exclude"):
        got = got[~got["dataset"].isin(kw["exclude"])]
    got = got.reset_index(drop=True)
    for kind in ("params", "arch"):
        got[kind] = [
            {**(num if isinstance(num, dict) else {}), **(txt if isinstance(txt, dict) else {})}
            for num, txt in zip(got[f"{kind}_num"], got[f"{kind}_text"], strict=True)
        ]
    return got


CASES = [
    {"metric": "accuracy"},
    {"metric": "log_loss"},
    {"metric": "accuracy", "split": "test"},
    {"metric": "accuracy", "model": "rf"},
    {"metric": "accuracy", "model": "svm", "datasets": ["d1", "d'3"]},
    {"metric": "log_loss", "model": "mlp", "exclude": ["d2"]},
    {"metric": "accuracy", "datasets": ["d2"], "exclude": ["d2"]},
    {"metric": "accuracy", "datasets": []},
    {"metric": "f1"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_python_matrix_equals_the_view(wh, case):
    case = dict(case)
    metric, split = case.pop("metric"), case.pop("split", "valid")
    py = wh.training_matrix(metric, split=split, **case)
    view = _from_view(wh, metric, split, **case)
    assert len(py) == len(view)
    if view.empty:
        return
    assert list(py.columns[: len(BASE)]) == BASE
    for col in ("run_id", "dataset", "model", "seq"):
        assert py[col].tolist() == view[col].tolist(), col
    np.testing.assert_array_equal(py["value"].to_numpy(float), view["value"].to_numpy(float))
    np.testing.assert_array_equal(
        py["duration_s"].to_numpy(float), view["duration_s"].to_numpy(float)
    )
    for kind in ("params", "arch"):
        columns = [c for c in py.columns if c.startswith(f"{kind}.")]
        names = {c[len(kind) + 1 :] for c in columns}
        for i, (_, row) in enumerate(py.iterrows()):
            expected = view[kind][i]
            assert set(expected) <= names, (kind, i, expected)
            for name in names:
                mine, theirs = row[f"{kind}.{name}"], expected.get(name)
                assert _missing(mine) == _missing(theirs), (kind, name, i, mine, theirs)
                if not _missing(mine):
                    assert type(mine) is type(theirs) and mine == theirs, (kind, name, i)


def test_the_cases_cover_what_they_claim(wh):
    every = wh.training_matrix("accuracy")
    assert {"d1", "d2", "d'3"} == set(every.dataset) and len(set(every.model)) == 3
    assert {type(v) for v in every["params.gamma"].dropna()} == {float, str}
    assert set(every["params.bootstrap"].dropna()) == {0.0, 1.0}
    assert {"arch.layers", "arch.activation", "params.a.b", "params.it's"} <= set(every.columns)
    assert wh.count_runs(status="failed") and wh.count_runs(status="running")
    failed_with_metrics = wh.view("run_features", status="failed")["metrics"].notna().any()
    assert failed_with_metrics  # … and they stay out of both matrices
    assert len(wh.training_matrix("accuracy", split="test")) > 0


def test_a_parameter_unset_in_every_row_is_an_all_missing_column(wh):
    """The view's maps drop unset values, so a parameter logged as unset in every selected run
    (svm's ``kernel``) has no key in any row of the view, while the Python matrix has a
    ``params.kernel`` column holding only missing values. Same values, one more column."""
    py = wh.training_matrix("accuracy", model="svm")
    view = _from_view(wh, "accuracy", "valid", model="svm")
    in_view = set().union(*view["params"])
    assert "kernel" not in in_view
    assert "params.kernel" in py.columns and py["params.kernel"].isna().all()
    extra = {c[len("params.") :] for c in py.columns if c.startswith("params.")} - in_view
    assert extra == {"kernel"}

"""The HTML report: its tables are right, the page is self-contained and renders in Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.report import LEVELS, collect, nearest_datasets, render_html
from warehouse.errors import NotFoundError


def _history(n_datasets: int = 5, n_runs: int = 16, seed: int = 0):
    """Accuracy with an interior optimum in log10(lr) that moves with meta-feature `size`."""
    rng = np.random.default_rng(seed)
    rows, meta = [], []
    for d in range(n_datasets):
        size = float(rng.uniform(0, 1))
        meta.append({"dataset": f"ds{d}", "size": 10 ** (2 + 3 * size), "n_features": 5.0 + d})
        lr = 10 ** rng.uniform(-4, 0, n_runs)
        depth = rng.integers(1, 10, n_runs).astype(float)
        kind = rng.choice(["a", "b"], n_runs)
        logit = 1 - 0.5 * (np.log10(lr) + 3 - 2 * size) ** 2 + 0.05 * depth + 0.2 * (kind == "b")
        acc = 1 / (1 + np.exp(-(logit + 0.05 * rng.normal(size=n_runs))))
        for i in range(n_runs):
            rows.append(
                {
                    "dataset": f"ds{d}",
                    "model": "gbm",
                    "params.lr": lr[i],
                    "params.depth": depth[i],
                    "params.kind": kind[i],
                    "metrics.accuracy": acc[i],
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(meta)


@pytest.fixture(scope="module")
def report_wh(tmp_path_factory):
    from warehouse import Warehouse

    path = tmp_path_factory.mktemp("report") / "wh.duckdb"
    runs, meta = _history()
    with Warehouse(path) as wh:
        wh.log_runs(runs)
        wh.log_dataset_meta_features(meta)
    return path


@pytest.fixture(scope="module")
def report_data(report_wh):
    from warehouse import Warehouse

    with Warehouse(report_wh, read_only=True) as wh:
        data = collect(wh, dataset="ds2", metric="accuracy", method="map", interactions=False)
        yield data, render_html(data)


def test_nearest_datasets_standardizes_and_skips_missing():
    meta = pd.DataFrame(
        {"a": [0.0, 1.0, 10.0, np.nan], "b": [0.0, 0.0, 0.0, 5.0], "c": [1.0, 2.0, 3.0, 1.0]},
        index=["t", "near", "far", "other"],
    )
    out = nearest_datasets(meta, "t", k=3).set_index("dataset")
    z = (meta - meta.mean()) / meta.std(ddof=0)  # population z-scores, NaN skipped
    for name in ("near", "far", "other"):
        d = (z.loc[name] - z.loc["t"]).dropna()
        assert out.loc[name, "distance"] == pytest.approx(np.sqrt(np.mean(d**2)))
    assert out.index.tolist() == ["near", "other", "far"]  # sorted by distance
    assert out["meta_features_compared"].tolist() == [3, 2, 3]  # 'other' lacks a
    with pytest.raises(NotFoundError, match="'zz' has no meta-features"):
        nearest_datasets(meta, "zz")


def test_report_tables(report_data):
    data, _ = report_data
    assert (data.dataset, data.model, data.direction) == ("ds2", "gbm", "maximize")
    assert "excluded" in data.fit_note
    held = data.heldout
    assert len(held) == 16 and held["run_id"].is_unique
    assert set(held["fold"]) == set(range(5))
    assert np.all(held["lower"] <= held["mean"]) and np.all(held["mean"] <= held["upper"])
    calib = data.calibration
    assert calib["nominal"].tolist() == list(LEVELS)
    # nested intervals: coverage can only grow with the nominal level
    assert np.all(np.diff(calib["empirical"]) >= 0)
    assert np.all(np.diff(data.trace["best"]) >= 0)
    assert data.trace["best"].iloc[-1] == pytest.approx(held["observed"].max())
    assert set(data.partial_dependence) == {"lr", "depth", "kind"}
    kind = data.partial_dependence["kind"].set_index("value")["mean"]
    assert sorted(kind.index) == ["a", "b"]
    assert kind["b"] > kind["a"]  # the simulated effect of kind=b is positive
    assert data.neighbours is not None and "ds2" not in set(data.neighbours["dataset"])
    assert len(data.neighbours) == 4


def test_report_html_is_self_contained(report_data):
    _, page = report_data
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 5
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(report_data, tmp_path: Path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium/Chrome on PATH (apt-get install chromium to run this check)")
    _, page = report_data
    probe = (
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "document.body.setAttribute('data-decoded',"
        "i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length);});</script>"
    )
    html = tmp_path / "report.html"
    html.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'data-decoded="5/5"' in out.stdout, out.stderr[-500:]
    assert "Calibration" in out.stdout


def test_report_cli_writes_file_and_unknown_dataset_errors(report_wh, tmp_path: Path):
    from metaopt_bayes.cli import main

    out = tmp_path / "r.html"
    args = ["--db", str(report_wh), "report", "--dataset", "ds1", "--method", "map", "-o"]
    res = CliRunner().invoke(main, [*args, str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    res = CliRunner().invoke(
        main,
        ["--db", str(report_wh), "report", "--dataset", "nope", "--method", "map", "-o", str(out)],
    )
    assert res.exit_code == 1
    assert res.output.strip() == (
        "Error: dataset 'nope' has no finished runs with metric 'accuracy'"
    )


def test_partial_dependence_of_a_row_counting_parameter_is_in_counts(tmp_path):
    """`min_samples_leaf` of gradient boosting is encoded per training row: the report's grid
    must still be counts on the target dataset, from 1 to about its size."""
    from warehouse import Warehouse

    runs, meta = _history()
    rng = np.random.default_rng(1)
    runs = runs.assign(
        model="hist_gradient_boosting",
        **{"params.min_samples_leaf": np.round(10 ** rng.uniform(0, 2, len(runs)))},
    ).drop(columns=["params.kind"])
    meta = meta.assign(n_instances=[150, 400, 1000, 3000, 80])
    with Warehouse(tmp_path / "wh.duckdb") as wh:
        wh.log_runs(runs)
        wh.log_dataset_meta_features(meta)
        data = collect(wh, dataset="ds2", metric="accuracy", method="map", interactions=False)
    grid = data.partial_dependence["min_samples_leaf"]["value"].to_numpy()
    assert grid.min() >= 1 and grid.max() <= 1000 * 2.5 and len(grid) > 5
    assert np.isfinite(data.partial_dependence["min_samples_leaf"]["mean"]).all()


def test_report_plots_learning_curves_of_finished_and_pruned_runs(tmp_path):
    from warehouse import Warehouse

    runs, meta = _history(n_datasets=3, n_runs=10)
    path = tmp_path / "wh.duckdb"
    with Warehouse(path) as wh:
        wh.log_runs(runs)
        wh.log_dataset_meta_features(meta)
        params = {"lr": 0.01, "depth": 3.0, "kind": "a"}
        up = [{"metric": "accuracy", "step": s, "value": 0.5 + 0.04 * s} for s in range(1, 11)]
        wh.log_run("ds1", "gbm", params, {"accuracy": 0.9}, curve=up)
        low = [{"metric": "accuracy", "step": s, "value": 0.3 + 0.01 * s} for s in range(1, 4)]
        wh.log_run("ds1", "gbm", params | {"lr": 0.5}, {"accuracy": 0.33},
                   status="pruned", curve=low)  # fmt: skip
    with Warehouse(path, read_only=True) as wh:
        data = collect(wh, dataset="ds1", metric="accuracy", method="map", interactions=False)
        other = collect(wh, dataset="ds0", metric="accuracy", method="map", interactions=False)
    assert data.curves is not None
    assert sorted(data.curves.drop_duplicates("run_id")["status"]) == ["finished", "pruned"]
    assert len(data.curves) == 13
    page = render_html(data)
    assert "Learning curves" in page and "alt='learning curves'" in page
    # a dataset without curves has no such section
    assert other.curves is None and "Learning curves" not in render_html(other)

"""End to end (slow): sweeps over real pmlb and bundled datasets, every feature group in SQL."""

from __future__ import annotations

import pytest

from metaopt_bayes.sweeps import sweep

PMLB = ["balance_scale", "monk1", "saheart"]
BUNDLED = ["wine", "breast_cancer"]


@pytest.mark.slow
def test_sweeps_over_pmlb_and_bundled_datasets(mem_wh, pmlb_dir):
    for name in PMLB:
        mem_wh.register_dataset(None, str(pmlb_dir / f"{name}.tsv.gz"), "target")
    for name in BUNDLED:
        mem_wh.register_dataset(None, f"sklearn:{name}", "target")
    for ds in PMLB + BUNDLED:
        sweep(mem_wh, ds, "mlp", 2, jobs=2, progress=False, cv=3, timeout_s=120)
        sweep(mem_wh, ds, "hist_gradient_boosting", 2, progress=False, cv=3)
    groups = mem_wh.sql(
        "SELECT dataset, count(DISTINCT method) AS g FROM dataset_meta_features GROUP BY 1"
    )
    assert len(groups) == 5 and (groups["g"] == 4).all()
    runs = mem_wh.sql(
        "SELECT dataset, model, status, duration_s, cpu_s, peak_mem_mb, meta_features, "
        "params_num, arch_num, arch_text, metrics FROM run_features"
    )
    assert len(runs) == 20 and (runs["status"] == "finished").all()
    assert runs[["duration_s", "cpu_s", "peak_mem_mb"]].notna().all().all()
    for row in runs.itertuples():
        assert "landmark_1nn" in dict(row.meta_features)
        assert "accuracy" in dict(row.metrics) and "log_loss" in dict(row.metrics)
        if row.model == "mlp":
            assert {"n_layers", "width"} <= set(dict(row.arch_num))
            assert dict(row.arch_text)["activation"] in {"relu", "tanh", "logistic"}

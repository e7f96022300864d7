"""Posterior summaries and diagnostic plots of a fitted MetaLearner (for `metaopt diagnose`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from warehouse.protocol import WarehouseLike


def posterior_summary(ml: Any) -> pd.DataFrame:
    """Mean, sd and 5%/95% quantiles of the population parameters (standardized scale)."""
    dr = ml._draws
    rows = []

    def add(name: str, x: np.ndarray) -> None:
        q05, q95 = np.quantile(x, [0.05, 0.95])
        rows.append({"param": name, "mean": x.mean(), "sd": x.std(), "q05": q05, "q95": q95})

    add("log_sigma_mu", dr["log_sigma_mu"])
    add("log_sigma_sd", dr["log_sigma_sd"])
    for j, name in enumerate(ml.encoder.names):
        add(f"B0[{name}]", dr["B"][:, j, 0])
        add(f"tau[{name}]", dr["tau"][:, j])
    return pd.DataFrame(rows)


def calibration(
    ml: Any, warehouse: WarehouseLike, max_datasets: int = 20, seed: int = 0
) -> pd.DataFrame:
    """Empirical coverage of central intervals on held-out runs of training datasets: each
    dataset's runs are split in half, the model is updated on one half and scored on the
    other (nominal level vs. fraction of held-out values inside)."""
    from metaopt_bayes.model import _training_matrix

    rng = np.random.default_rng(seed)
    levels = np.linspace(0.1, 0.9, 9)
    hits = np.zeros(len(levels))
    total = 0
    for ds in ml.datasets[:max_datasets]:
        runs = _training_matrix(warehouse, ml.metric, ml.model, [ds], None)
        if len(runs) < 4:
            continue
        perm = rng.permutation(len(runs))
        half = len(runs) // 2
        obs, test = runs.iloc[perm[:half]], runs.iloc[perm[half:]]
        y = ml._target(test)
        for i, lv in enumerate(levels):
            p = ml.predict(ds, test, warehouse=warehouse, runs=obs, interval=float(lv))
            hits[i] += np.sum((y >= p["lower"].to_numpy()) & (y <= p["upper"].to_numpy()))
        total += len(test)
    cov = hits / total if total else np.full(len(levels), np.nan)
    return pd.DataFrame({"nominal": levels, "coverage": cov})


def diagnose(ml: Any, warehouse: WarehouseLike, out_dir: str | Path | None = None):
    """Summary table plus trace and calibration PNGs; returns (summary, written paths)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = posterior_summary(ml)
    out = Path(out_dir) if out_dir else Path.cwd()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"meta_model_{ml.model_id or 'local'}"
    files = []
    dr = ml._draws
    series = {"log_sigma_mu": dr["log_sigma_mu"], "log_sigma_sd": dr["log_sigma_sd"]}
    for j, name in enumerate(ml.encoder.names[:4]):
        series[f"tau[{name}]"] = dr["tau"][:, j]
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 1.6 * len(series)), sharex=True)
    for ax, (name, x) in zip(np.atleast_1d(axes), series.items(), strict=True):
        ax.plot(x, lw=0.6)
        ax.set_ylabel(name, fontsize=7)
    fig.suptitle(f"{ml.metric}: posterior draws ({ml.method})")
    fig.tight_layout()
    path = out / f"{stem}_trace.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    files.append(path)
    if warehouse is not None:
        cal = calibration(ml, warehouse)
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.plot(cal["nominal"], cal["coverage"], "o-")
        ax.set_xlabel("nominal interval level")
        ax.set_ylabel("empirical coverage (held-out runs)")
        ax.set_title(f"{ml.metric} calibration")
        fig.tight_layout()
        path = out / f"{stem}_calibration.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return summary, files

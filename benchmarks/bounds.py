"""Runs at the metric's bound: a censored (Tobit) update against the value at its threshold.

For every dataset of a suite with runs at accuracy 1.0, a MAP learner fitted on the suite's
other datasets predicts the dataset's runs after 5 and 20 of them (three random orders), in
three ways:

* ``threshold`` — a run at 1.0 is the exact value ``logit(1 − ε)``, ``ε`` half the finest
  spacing of the dataset's scores (0.6.2's update);
* ``censored`` — the same run as the censored observation ``z ≥ logit(1 − ε)``: an EP site in
  the few-shot update (:mod:`metaopt_bayes.censoring`), its expected value beyond the bound
  for the discrepancy and the task GP;
* ``censored, threshold downstream`` — the EP site in the update, the threshold value for
  the discrepancy and the task GP.

Scores: squared error of the runs *off* the bound on the transformed scale (a run at the
bound is only "at least there"), its mean bias, and the 90% interval's coverage on the
metric's scale (all runs, the runs at the bound, the others). Every variant shows a run
beyond the dataset's resolution at the bound (``TargetTransform.band``).

    PYTHONPATH=. python benchmarks/bounds.py --suite extra_trees
    PYTHONPATH=. python benchmarks/bounds.py --suite openml100_rf
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import load_openml_rf, load_pmlb_suite, shared_data_dir

from metaopt_bayes import censoring
from metaopt_bayes import model as model_module
from metaopt_bayes.features import TargetTransform
from metaopt_bayes.model import MetaLearner


def _threshold_downstream(original):
    def sites(fit, latent, y, v, side, sweeps=None):
        y_site, v_site, post, _ = original(fit, latent, y, v, side, sweeps)
        return y_site, v_site, post, np.array(y, dtype=float)

    return sites


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="extra_trees", help="a PMLB family or openml100_rf")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.suite == "openml100_rf":
        root = shared_data_dir()
        if root is None:
            sys.exit("shared data not found: set METAOPT_SHARED_DATA")
        runs, meta = load_openml_rf(root)
        metric = "predictive_accuracy"
    else:
        runs, meta = load_pmlb_suite(args.suite, "all")
        metric = "accuracy"
    share = (runs["value"] >= 1).groupby(runs["dataset"]).mean()
    bound = sorted(share[share > 0].index)
    print(f"{args.suite}: {len(bound)} datasets with runs at 1.0 (share of their runs):")
    print(", ".join(f"{d} {share[d]:.2f}" for d in bound))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = MetaLearner(metric, method="map", seed=0).fit_frame(
            runs[~runs["dataset"].isin(bound)], meta
        )
    yard = TargetTransform(ml.transform.kind, resolution=True)
    original, kept = model_module.censored_sites, censoring.SWEEPS
    variants = {
        "threshold": (0, original),
        "censored": (censoring.SWEEPS or 4, original),
        "censored, threshold downstream": (censoring.SWEEPS or 4, _threshold_downstream(original)),
    }
    rows = []
    for name, (sweeps, sites) in variants.items():
        censoring.SWEEPS, model_module.censored_sites = sweeps, sites
        for d in bound:
            task = runs[runs["dataset"] == d].reset_index(drop=True)
            g = yard._g(task["value"].to_numpy(), task["dataset"].to_numpy())
            for rep in range(args.reps):
                perm = np.random.default_rng(rep + 1).permutation(len(task))
                test = task.iloc[perm[20:]].reset_index(drop=True)
                y, raw = g[perm[20:]], test["value"].to_numpy()
                at = raw >= 1
                for k in (5, 20):
                    obs = task.iloc[perm[:k]].reset_index(drop=True)
                    ml._memo[1].clear()
                    W, M, _ = ml.predictive_components(d, test, meta=meta, runs=obs)
                    m = ml.transform.center + ml.transform.scale * (W * M).sum(1)
                    p = ml.predict(d, test, meta=meta, runs=obs)
                    inside = (raw >= p["lower"].to_numpy()) & (raw <= p["upper"].to_numpy())
                    rows.append(
                        {
                            "variant": name,
                            "dataset": d,
                            "k": k,
                            "sq. error off bound": np.mean((y - m)[~at] ** 2),
                            "bias off bound": np.mean((m - y)[~at]),
                            "cov90": inside.mean(),
                            "cov90 at bound": inside[at].mean() if at.any() else np.nan,
                            "cov90 off bound": inside[~at].mean(),
                        }
                    )
    censoring.SWEEPS, model_module.censored_sites = kept, original
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c not in ("variant", "dataset", "k")]
    per_ds = df.groupby(["k", "variant", "dataset"])[cols].mean()
    mean = per_ds.groupby(["k", "variant"]).mean()
    se = per_ds.groupby(["k", "variant"]).std(ddof=1) / np.sqrt(len(bound))
    table = mean.round(3).astype(str) + " ± " + se.round(3).astype(str)
    pd.set_option("display.width", 200)
    print("\nmean over datasets ± s.e. across datasets")
    print(table.to_string())
    print("\nsquared error off bound, per dataset")
    print(per_ds["sq. error off bound"].unstack(["k", "variant"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

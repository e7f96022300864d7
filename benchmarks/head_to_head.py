"""Real training, end to end: metaopt ``optimize`` vs Optuna TPE vs random search on PMLB.

Protocol (identical for the three methods):

1. The classification datasets of ``../shared/data/pmlb`` (sorted by name, each capped to
   ``--max-rows`` rows by a stratified subsample, seed 0) are split in two halves by
   alternating position: *history* datasets (even positions) and *target* datasets (odd
   positions; the ``--targets`` smallest with at least ``--min-rows`` rows are used).
2. History: runs of each family on every dataset of the history half, swept here with
   :func:`metaopt_bayes.sweeps.sweep` (``--history-configs`` Sobol configs per dataset and
   family — a different scramble for each dataset — same CV) and cached as
   ``benchmarks/results/head_to_head_history.parquet`` (MLflow layout) so later runs reuse
   it; ``--history PATH`` loads another such file. Every dataset (history and target) is
   registered, so targets have meta-features (metaopt's zero-shot start) but **no runs**.
3. For each target × family, the same objective for everyone: ``trainer.evaluate`` —
   ``--cv``-fold stratified cross-validated accuracy with the same folds and model seed —
   over the family's default search space (``zoo.get_family(f).default_space``):
   * metaopt: ``optimize(..., objective=…, space=…, retrain=False)`` on a fresh copy of the
     history warehouse (no method sees another target's trials); its first trial is the
     family's scikit-learn default (``default_first``), as for any user;
   * Optuna TPE (``TPESampler(seed)``) and random search (``RandomSampler(seed)``), the space
     mapped to ``suggest_float/int/categorical`` with the same bounds and log scales.
4. Reported: the best CV accuracy after 5, 10 and ``--budget`` trials (mean over targets;
   with several ``--seed`` runs each target is first averaged over seeds), wins/ties/losses
   of metaopt against each baseline per target at each budget (a tie is a difference within
   ``--tie``; a loss "beyond noise" exceeds the CV accuracy's binomial standard error
   sqrt(p(1-p)/n) on the target's n rows), and wall time per method. Per-trial values go to
   a CSV.

Usage (from the repository root; heavy CPU — about 30 min per family and seed on 2 cores):
    PYTHONPATH=. python benchmarks/head_to_head.py --history-only   # sweep + cache history
    PYTHONPATH=. python benchmarks/head_to_head.py --families mlp --seed 1 --out mlp1.csv
    PYTHONPATH=. python benchmarks/head_to_head.py --summarize mlp0.csv mlp1.csv hgb0.csv
    PYTHONPATH=. python benchmarks/head_to_head.py --families mlp --methods metaopt --out m.csv
    PYTHONPATH=. python benchmarks/head_to_head.py --quick    # 3 targets, budget 8, hgb only
The meta-learner is fitted with MAP by default (``--fit-method nuts``: ~1 min per fit here, and
``optimize`` refits every 10 trials).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
HISTORY = RESULTS / "head_to_head_history.parquet"
METRIC = "accuracy"
METHODS = ("metaopt", "optuna_tpe", "random")


def _data_dir() -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _data import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "pmlb" / "index.csv").exists():
        raise SystemExit("shared data folder with pmlb/ not found (set METAOPT_SHARED_DATA)")
    return root / "pmlb"


def load_pmlb(pmlb: Path, name: str, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """One PMLB dataset, capped to ``max_rows`` rows by a stratified subsample."""
    df = pd.read_csv(pmlb / "datasets" / f"{name}.tsv.gz", sep="\t")
    if len(df) > max_rows:
        from sklearn.model_selection import train_test_split

        y = df["target"]
        strat = y if y.value_counts().min() >= 2 else None
        df, _ = train_test_split(df, train_size=max_rows, random_state=seed, stratify=strat)
    return df.reset_index(drop=True)


def split_datasets(pmlb: Path, n_targets: int, min_rows: int = 100) -> tuple[list[str], list[str]]:
    """(history, targets): alternate positions in name order; targets = the smallest ones
    with at least ``min_rows`` rows (tinier ones make CV accuracy mostly noise)."""
    index = pd.read_csv(pmlb / "index.csv")
    cls = index[index["task"] == "classification"].sort_values("dataset").reset_index(drop=True)
    history = cls.iloc[0::2]["dataset"].tolist()
    odd = cls.iloc[1::2]
    odd = odd[odd["n_rows"] >= min_rows].sort_values(["n_rows", "dataset"])
    return history, odd["dataset"].head(n_targets).tolist()


def target_rows(pmlb: Path, targets: list[str], max_rows: int) -> dict[str, int]:
    """Rows each target is evaluated on (capped like :func:`load_pmlb`)."""
    index = pd.read_csv(pmlb / "index.csv").set_index("dataset")
    return {t: int(min(index.loc[t, "n_rows"], max_rows)) for t in targets}


def optuna_config(trial: Any, space: Any) -> dict[str, Any]:
    """Suggest a config from a metaopt SearchSpace with Optuna's API (same bounds, scales)."""
    config: dict[str, Any] = {}
    for p in space.params:
        if p.condition and not all(config.get(k) in v for k, v in p.condition.items()):
            config[p.name] = None
        elif p.kind == "float":
            config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            config[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        elif p.kind == "categorical":
            config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        else:
            config[p.name] = p.value
    return space.validate(config)


def best_after(values: list[float], ks: list[int]) -> dict[int, float]:
    """Best value among the first k trials (failed trials count as -inf)."""
    arr = np.array([v if v is not None and np.isfinite(v) else -np.inf for v in values])
    return {k: float(np.max(arr[:k])) if len(arr) else float("nan") for k in ks}


def run_optuna(objective, space, budget: int, seed: int, sampler: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samp = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=samp)

    def obj(trial):
        return objective(optuna_config(trial, space))[METRIC]

    study.optimize(obj, n_trials=budget, catch=(Exception,))
    return [t.value if t.value is not None else float("nan") for t in study.trials]


def run_metaopt(base: Path, work: Path, target, family, objective, space, args) -> list[float]:
    from metaopt_bayes.search import optimize
    from warehouse import Warehouse

    path = work / f"{target}-{family}.duckdb"
    shutil.copy(base, path)
    with Warehouse(path) as wh:
        res = optimize(
            wh,
            target,
            family,
            args.budget,
            space=space,
            objective=objective,
            retrain=False,
            seed=args.seed,
            fit_method=args.fit_method,
            metric=METRIC,
            direction="maximize",
        )
    path.unlink(missing_ok=True)
    trials = res.trials.sort_values("number")
    return [float(v) for v in trials["value"]]


def build_history(
    base: Path, pmlb: Path, history: list[str], targets: list[str], families: list[str], args
) -> str:
    """Register every dataset, then load (or sweep and cache) the history half's runs."""
    from metaopt_bayes.sweeps import sweep
    from warehouse import Warehouse

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from families import export_history

    source = Path(args.history) if args.history else HISTORY
    h = None
    if source.exists():
        h = pd.read_parquet(source)
        h = h[h["dataset"].isin(history) & h["model"].isin(families)].dropna(axis=1, how="all")
        missing = set(history) - set(h["dataset"])
        if missing:
            raise SystemExit(
                f"{source} lacks {len(missing)} history datasets (e.g. {sorted(missing)[0]});"
                " delete it to sweep again"
            )
    with Warehouse(base) as wh:
        for name in history + targets:
            wh.register_dataset(
                name,
                load_pmlb(pmlb, name, args.max_rows),
                target="target",
                task="classification",
                source="pmlb",
            )
        if h is not None:
            wh.log_runs(h)
            return f"{len(h)} runs from {source.name} on {len(history)} datasets"
        n = 0
        for i, name in enumerate(history, 1):
            for fam in families:
                n += len(
                    sweep(
                        wh,
                        name,
                        fam,
                        args.history_configs,
                        cv=args.cv,
                        seed=args.seed,
                        progress=False,
                    )
                )
            print(f"  history {i}/{len(history)} {name}: {n} runs so far", flush=True)
        if not args.quick:
            export_history(wh, source, source.with_name(source.stem + "_meta.parquet"))
        return f"{n} runs swept here ({args.history_configs} per dataset x family)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 targets, budget 8, one family")
    parser.add_argument("--targets", type=int, default=None, help="number of target datasets")
    parser.add_argument("--budget", type=int, default=None, help="trials per method")
    parser.add_argument("--families", nargs="+", default=None)
    parser.add_argument("--history", default=None, help="history parquet (MLflow layout)")
    parser.add_argument("--history-configs", type=int, default=None)
    parser.add_argument(
        "--history-datasets",
        type=int,
        default=None,
        help="cap on history datasets (smallest first)",
    )
    parser.add_argument(
        "--history-only", action="store_true", help="sweep and cache the history, then stop"
    )
    parser.add_argument("--max-rows", type=int, default=1000)
    parser.add_argument("--min-rows", type=int, default=100, help="smallest target dataset")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        help="methods to run (e.g. re-run metaopt alone after a change; --summarize the CSVs)",
    )
    parser.add_argument("--fit-method", default=None, help="meta-learner method for optimize")
    parser.add_argument("--tie", type=float, default=0.005, help="|difference| counted a tie")
    parser.add_argument("--out", default=None, help="per-trial CSV (default benchmarks/results)")
    parser.add_argument(
        "--summarize",
        nargs="+",
        default=None,
        metavar="CSV",
        help="only print the tables of earlier runs' CSVs (e.g. one per family, run apart)",
    )
    args = parser.parse_args()
    if args.summarize:
        res = pd.concat([pd.read_csv(f) for f in args.summarize], ignore_index=True)
        ks = sorted(int(c.split("@")[1]) for c in res.columns if c.startswith("best@"))
        rows = target_rows(_data_dir(), sorted(set(res["dataset"])), args.max_rows)
        print(summarize(res, ks, args.tie, rows))
        return
    args.targets = args.targets or (3 if args.quick else 10)
    args.budget = args.budget or (8 if args.quick else 20)
    families = args.families or (
        ["hist_gradient_boosting"] if args.quick else ["hist_gradient_boosting", "mlp"]
    )
    args.history_configs = args.history_configs or (4 if args.quick else 12)
    args.fit_method = args.fit_method or "map"
    hist_cap = args.history_datasets or (6 if args.quick else None)
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)

    from metaopt_bayes.trainer import evaluate
    from metaopt_bayes.zoo import get_family

    pmlb = _data_dir()
    history, targets = split_datasets(pmlb, args.targets, args.min_rows)
    if hist_cap:
        index = pd.read_csv(pmlb / "index.csv").set_index("dataset")
        history = sorted(history, key=lambda d: (index.loc[d, "n_rows"], d))[:hist_cap]
    ks = sorted({k for k in (5, 10, args.budget) if k <= args.budget})
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="metaopt-h2h-") as tmp:
        work = Path(tmp)
        base = work / "history.duckdb"
        t0 = time.perf_counter()
        desc = build_history(base, pmlb, history, targets, families, args)
        print(f"history: {desc}; built in {time.perf_counter() - t0:.0f} s")
        if args.history_only:
            return
        print(f"targets: {', '.join(targets)}")
        for target in targets:
            data = load_pmlb(pmlb, target, args.max_rows)
            X, y = data.drop(columns=["target"]), data["target"].to_numpy()
            for fam in families:
                space = get_family(fam).default_space("classification")

                def objective(config, X=X, y=y, fam=fam):
                    return evaluate(X, y, "classification", fam, config, cv=args.cv, seed=args.seed)

                for method in args.methods:
                    t1 = time.perf_counter()
                    if method == "metaopt":
                        values = run_metaopt(base, work, target, fam, objective, space, args)
                    else:
                        sampler = "tpe" if method == "optuna_tpe" else "random"
                        values = run_optuna(objective, space, args.budget, args.seed, sampler)
                    wall = time.perf_counter() - t1
                    best = best_after(values, ks)
                    records.append(
                        {
                            "dataset": target,
                            "family": fam,
                            "method": method,
                            "seed": args.seed,
                            "wall_s": wall,
                            **{f"best@{k}": best[k] for k in ks},
                            "values": ";".join(f"{v:.6g}" for v in values),
                        }
                    )
                    print(
                        f"  {target:<28} {fam:<24} {method:<11} best@{args.budget}="
                        f"{best[args.budget]:.4f}  {wall:6.1f} s",
                        flush=True,
                    )

    res = pd.DataFrame(records)
    out = (
        Path(args.out)
        if args.out
        else RESULTS / ("head_to_head_quick.csv" if args.quick else "head_to_head.csv")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(out, index=False)
    print()
    print(summarize(res, ks, args.tie, target_rows(pmlb, targets, args.max_rows)))
    print(f"per-trial values: {out}")


def _markdown(df: pd.DataFrame, floatfmt: str) -> str:
    """A GitHub markdown table (floats through ``floatfmt``; no tabulate dependency)."""

    def cell(v: Any) -> str:
        return floatfmt.format(v) if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def summarize(res: pd.DataFrame, ks: list[int], tie: float, n_rows: dict[str, int]) -> str:
    """Markdown: mean best CV accuracy per budget and wall time per family x method; then
    per budget, metaopt's wins/ties/losses against each baseline, where a difference within
    ``tie`` is a tie and a loss beyond the dataset's noise (one binomial standard error of a
    CV accuracy over its ``n_rows`` rows, sqrt(p(1-p)/n)) is counted apart."""
    res = res.assign(seed=res["seed"] if "seed" in res.columns else 0)
    seeds = sorted(res["seed"].unique())
    walls = res.groupby(["family", "method"], sort=False)["wall_s"].sum()
    # several seeds: each target's best-so-far is averaged over them first
    cols = [f"best@{k}" for k in ks]
    res = res.groupby(["family", "dataset", "method"], sort=False, as_index=False)[cols].mean()
    out = [
        f"seeds: {', '.join(map(str, seeds))} (per target, best CV accuracy averaged over seeds)"
    ]
    rows = []
    for (fam, method), g in res.groupby(["family", "method"], sort=False):
        row = {"family": fam, "method": method, "targets": len(g)}
        row.update({f"mean best@{k}": g[f"best@{k}"].mean() for k in ks})
        row["wall s (sum)"] = float(walls[(fam, method)])
        rows.append(row)
    out.append(_markdown(pd.DataFrame(rows), "{:.4f}"))
    lines = []
    for k in ks:
        wide = res.pivot_table(index=["family", "dataset"], columns="method", values=f"best@{k}")
        for base in ("optuna_tpe", "random"):
            if base not in wide.columns or "metaopt" not in wide.columns:
                continue  # a run of some methods only (--methods)
            for fam, g in wide.groupby(level="family"):
                d = g["metaopt"] - g[base]
                p = g[["metaopt", base]].max(axis=1).clip(0, 1)
                n = np.array([n_rows[ds] for ds in g.index.get_level_values("dataset")])
                se = np.sqrt(p * (1 - p) / n)
                lines.append(
                    {
                        "budget": k,
                        "family": fam,
                        "vs": base,
                        "wins": int((d > tie).sum()),
                        "ties": int((d.abs() <= tie).sum()),
                        "losses": int((d < -tie).sum()),
                        "losses beyond noise": int((d < -np.maximum(se, tie)).sum()),
                        "worst diff": float(d.min()),
                        "mean diff": float(d.mean()),
                    }
                )
    out.append(
        f"metaopt vs baseline per target dataset (tie: |diff| <= {tie}; noise: one binomial "
        "standard error of the CV accuracy)"
    )
    out.append(_markdown(pd.DataFrame(lines), "{:+.4f}"))
    return "\n\n".join(out)


if __name__ == "__main__":
    main()

"""Cross-family benchmark: sweep every zoo family on PMLB, then evaluate family selection.

Two sub-commands:

``sweep``
    A reproducible cross-family history. Every zoo family that supports classification
    (hist_gradient_boosting, random_forest, logistic_regression, svc, knn, mlp) is trained on
    the classification datasets of ``../shared/data/pmlb`` (smallest first), each capped to
    ``--max-rows`` rows by a stratified subsample (seed 0). Per family: the centre of its
    default space plus ``--configs`` scrambled-Sobol configs (seed 0 — the *same* configs on
    every dataset, a tabrepo-style lookup table), 3-fold stratified CV, a ``--timeout`` per
    run (a timed-out config is a failed run). Runs go into a DuckDB warehouse
    (``benchmarks/out/families.duckdb``); resumable: a dataset × family whose runs are all
    logged is skipped, a partial one continues where it stopped. After each dataset the
    history is exported as ``benchmarks/results/families_history.parquet`` (MLflow layout:
    ``Warehouse.log_runs`` ingests it back) and ``families_meta.parquet`` (wide
    meta-features, one row per dataset).

``evaluate``
    Leave-datasets-out on that history (see :func:`evaluate`).

Usage::

    PYTHONPATH=. python benchmarks/families.py sweep [--quick] [--budget-min 60]
    PYTHONPATH=. python benchmarks/families.py evaluate [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "out"
HISTORY = OUT / "families_history.parquet"
META = OUT / "families_meta.parquet"
METRIC = "accuracy"


from benchmarks._data import shared_data_dir  # noqa: E402

DATA = shared_data_dir() or ROOT.parent / "shared" / "data"


# --------------------------------------------------------------------------------------------
# sweep
# --------------------------------------------------------------------------------------------
def classification_families() -> list[str]:
    from metaopt_bayes.zoo import FAMILIES

    return [n for n, f in FAMILIES.items() if f.supports("classification")]


def family_configs(family: str, n: int) -> list[dict[str, Any]]:
    """The centre of ``family``'s default space, then ``n`` Sobol configs (seed 0)."""
    from metaopt_bayes.zoo import get_family

    sp = get_family(family).default_space("classification")
    recs = [sp.defaults(), *sp.sample(n, seed=0).to_dict("records")]
    out = []
    for r in recs:
        clean = {k: v for k, v in r.items() if not (v is None or (isinstance(v, float) and v != v))}
        out.append(sp.validate(clean))
    return out


def _subsample(df: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """A stratified subsample of at most ``max_rows`` rows (classes kept in proportion)."""
    if len(df) <= max_rows:
        return df
    from sklearn.model_selection import train_test_split

    y = df["target"]
    strat = y if y.value_counts().min() >= 2 else None
    keep, _ = train_test_split(df, train_size=max_rows, stratify=strat, random_state=seed)
    return keep.sort_index()


def export_history(wh: Any, history: Path = HISTORY, meta: Path = META) -> int:
    """Write the warehouse's runs in MLflow layout and its meta-features; returns n runs."""
    runs = wh._read_df(
        "SELECT run_id, dataset, model, status, duration_s, cpu_s, peak_mem_mb, seed, error "
        "FROM runs ORDER BY seq"
    )
    if runs.empty:
        return 0
    wide = runs.set_index("run_id")
    for table, prefix in (("run_params", "params."), ("run_architecture", "arch.")):
        long = wh._read_df(f"SELECT run_id, name, value_num, value_text FROM {table}")
        num = long.dropna(subset=["value_num"]).pivot(
            index="run_id", columns="name", values="value_num"
        )
        txt = long.dropna(subset=["value_text"]).pivot(
            index="run_id", columns="name", values="value_text"
        )
        for name in sorted(set(long["name"])):
            if name in txt.columns:  # a name holds text or numbers, never both (ingest rule)
                wide[prefix + name] = txt[name].reindex(wide.index).astype(object)
            else:
                wide[prefix + name] = num[name].reindex(wide.index).astype(float)
    mets = wh._read_df("SELECT run_id, name, value FROM run_metrics WHERE split = 'valid'")
    mw = mets.pivot(index="run_id", columns="name", values="value").add_prefix("metrics.")
    wide = wide.join(mw)
    wide = wide.reset_index()
    history.parent.mkdir(parents=True, exist_ok=True)
    wide.to_parquet(history, index=False)
    wh.meta_features().reset_index().to_parquet(meta, index=False)
    return len(wide)


def sweep_cmd(args: argparse.Namespace) -> int:
    from metaopt_bayes.sweeps import sweep
    from warehouse import Warehouse

    index = pd.read_csv(DATA / "pmlb" / "index.csv")
    index = index[index["task"] == "classification"].sort_values(["n_rows", "dataset"])
    if args.datasets:
        index = index[index["dataset"].isin(args.datasets.split(","))]
    if args.max_datasets:
        index = index.head(args.max_datasets)
    families = args.families.split(",") if args.families else classification_families()
    configs = {f: family_configs(f, args.configs) for f in families}
    WORK.mkdir(parents=True, exist_ok=True)
    db = Path(args.db) if args.db else WORK / "families.duckdb"
    deadline = time.monotonic() + 60.0 * args.budget_min
    log = open(WORK / "families_sweep.log", "a", buffering=1)  # noqa: SIM115

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")

    with Warehouse(str(db)) as wh:
        have = set(wh._read_df("SELECT name FROM datasets")["name"])
        for _, row in index.iterrows():
            name = str(row["dataset"])
            if time.monotonic() > deadline:
                say("time budget reached; stopping (re-run to resume)")
                break
            if name not in have:
                df = pd.read_csv(DATA / "pmlb" / "datasets" / f"{name}.tsv.gz", sep="\t")
                df = _subsample(df, args.max_rows)
                t0 = time.perf_counter()
                wh.register_dataset(name, df, target="target", task="classification")
                say(f"registered {name} ({len(df)} rows) in {time.perf_counter() - t0:.1f}s")
            done = wh._read_df(
                "SELECT model, count(*) AS n FROM runs WHERE dataset = ? GROUP BY model", [name]
            )
            done_n = dict(zip(done["model"], done["n"], strict=True))
            for fam in families:
                todo = configs[fam][int(done_n.get(fam, 0)) :]
                if not todo:
                    continue
                t0 = time.perf_counter()
                ids = sweep(
                    wh,
                    name,
                    fam,
                    len(todo),
                    configs=todo,
                    cv=3,
                    seed=int(done_n.get(fam, 0)),
                    timeout_s=args.timeout,
                    progress=False,
                )
                st = wh._read_df(
                    "SELECT count(*) FILTER (WHERE status = 'failed') AS failed, "
                    "max(v.value) AS best FROM runs r LEFT JOIN run_metrics v "
                    "ON v.run_id = r.run_id AND v.name = 'accuracy' "
                    "WHERE r.dataset = ? AND r.model = ?",
                    [name, fam],
                ).iloc[0]
                say(
                    f"{name} {fam}: {len(ids)} runs in {time.perf_counter() - t0:.1f}s "
                    f"({int(st['failed'])} failed, best accuracy {st['best']:.4f})"
                )
            n = export_history(wh, args.history, args.meta)
            say(f"exported {n} runs")
    log.close()
    return 0


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------
BUDGETS = (5, 10, 20)
TOL = 0.01  # "within 1% accuracy" of the truly best family


def load_history(history: Path = HISTORY, meta: Path = META, min_runs: int = 3):
    """(runs, meta, datasets): finished runs with accuracy in training-matrix layout, the
    meta-features, and the datasets on which every family has at least ``min_runs`` runs."""
    h = pd.read_parquet(history)
    h = h[(h["status"] == "finished") & h["metrics." + METRIC].notna()].copy()
    params = [c for c in h.columns if c.startswith("params.")]
    runs = h[["run_id", "dataset", "model", "duration_s", *params]].copy()
    runs["value"] = h["metrics." + METRIC].astype(float)
    runs["seq"] = np.arange(len(runs))
    runs = runs.reset_index(drop=True)
    m = pd.read_parquet(meta).set_index("dataset")
    fams = sorted(runs["model"].unique())
    counts = runs.groupby(["dataset", "model"]).size().unstack(fill_value=0)
    ok = counts[(counts.reindex(columns=fams, fill_value=0) >= min_runs).all(axis=1)].index
    return runs, m, sorted(ok), fams


def pool_of(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The dataset's evaluated configs as candidates: model, parameter columns, _idx, _value."""
    sub = runs[runs["dataset"] == dataset].reset_index(drop=True)
    pool = sub[["model", *[c for c in sub.columns if c.startswith("params.")]]].copy()
    pool.columns = [c.removeprefix("params.") for c in pool.columns]
    pool["_idx"] = np.arange(len(pool))
    pool["_value"] = sub["value"].to_numpy()
    return pool, sub


def family_best(sub: pd.DataFrame) -> pd.Series:
    return sub.groupby("model")["value"].max()


def _meta_distance(meta: pd.DataFrame, target: str, others: list[str]) -> pd.Series:
    """Standardized L1 distance on the meta-features both have (auto-sklearn 1.0 style)."""
    m = meta.reindex([target, *others]).apply(pd.to_numeric, errors="coerce")
    m = m.loc[:, m.notna().all(axis=0)]
    z = (m - m.mean()) / m.std(ddof=0).replace(0, 1)
    return (z.loc[others] - z.loc[target]).abs().sum(axis=1).sort_values()


def _fit_fold(runs, meta, train, families, args, share: bool):
    from metaopt_bayes.families import FamilyLearner

    t0 = time.perf_counter()
    fl = FamilyLearner(
        METRIC,
        families,
        direction="maximize",
        method=args.fit_method,
        share=share,
        cost=False,
        prior_meta=args.prior_meta,
    )
    fl.fit_frame(runs[runs["dataset"].isin(train)].reset_index(drop=True), meta)
    return fl, time.perf_counter() - t0


def _selection_rows(fl, runs, meta, test, train, fams, seeds, n_obs=3):
    """Algorithm selection on each test dataset: zero-shot and after ``n_obs`` random runs."""
    rows = []
    tr_best = runs[runs["dataset"].isin(train)].groupby(["dataset", "model"])["value"].max()
    tr_best = tr_best.unstack()
    avg_family = tr_best.mean().idxmax()
    for d in test:
        pool, sub = pool_of(runs, d)
        fb = family_best(sub)
        best = fb.max()

        def ok(fam: str, fb=fb, best=best) -> tuple[float, float]:
            return float(fb[fam] >= best - TOL), float(best - fb[fam])

        empty = sub.iloc[:0]
        cands = pool.drop(columns=["_value"])
        zs = fl.rank_families(d, cands, meta=meta, runs=empty, share=False)
        near = _meta_distance(meta, d, list(tr_best.index)).index[:5]
        nn_family = tr_best.loc[near].mean().idxmax()
        for name, fam in (
            ("metaopt zero-shot", zs.loc[0, "model"]),
            ("best family on average", avg_family),
            ("nearest datasets (5-NN)", nn_family),
        ):
            hit, loss = ok(fam)
            rows.append({"dataset": d, "setting": "zero-shot", "method": name, "seed": 0,
                         "hit": hit, "loss": loss})  # fmt: skip
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            seen = sub.iloc[np.sort(rng.choice(len(sub), size=n_obs, replace=False))]
            picks = {
                "metaopt after 3 runs": fl.rank_families(
                    d, cands, meta=meta, runs=seen, share=False
                ).loc[0, "model"],
                "metaopt after 3 runs + sharing": fl.rank_families(
                    d, cands, meta=meta, runs=seen, share=True
                ).loc[0, "model"],
                "family of the best of the 3 runs": seen.loc[seen["value"].idxmax(), "model"],
                "best family on average": avg_family,
                "nearest datasets (5-NN)": nn_family,
            }
            for name, fam in picks.items():
                hit, loss = ok(fam)
                rows.append({"dataset": d, "setting": f"after {n_obs} runs", "method": name,
                             "seed": seed, "hit": hit, "loss": loss})  # fmt: skip
    return rows


def _search_metaopt(fl, pool, sub, meta, d, budget, share):
    order: list[int] = []
    cands = pool.drop(columns=["_value"])
    for _ in range(budget):
        seen = sub.iloc[order]
        rec = fl.recommend(None, d, cands, n=1, runs=seen, meta=meta, share=share)
        order.append(int(rec.loc[0, "_idx"]))
    return order


def _restore(row: Any, space) -> dict[str, Any]:
    """A pool row (numbers as stored: booleans 0/1, ints as floats) as a valid config."""
    cfg: dict[str, Any] = {}
    for p in space.params:
        v = row.get(p.name) if hasattr(row, "get") else None
        if p.kind == "fixed" or not _present(v):
            continue
        v = _plain(v)
        if p.kind == "categorical":
            for c in p.choices:
                same = str(c) == str(v)
                if isinstance(c, bool) and isinstance(v, int | float) and not isinstance(v, str):
                    same = float(c) == float(v)
                if same:
                    v = c
                    break
        elif p.kind == "int":
            v = round(float(v))
        cfg[p.name] = v
    return space.validate(cfg)


def _unit(pool: pd.DataFrame, fam: str, space) -> tuple[np.ndarray, np.ndarray]:
    rows = pool[pool["model"] == fam]
    cfgs = pd.DataFrame([_restore(r, space) for r in rows.to_dict("records")])
    return space.to_unit(cfgs), rows["_idx"].to_numpy()


def _search_tpe(pool, budget, seed, joint):
    """Optuna TPE over the conditional joint space, each proposal snapped to the nearest
    untried evaluated config of the proposed family (unit-cube Euclidean); the asked trial
    is failed and the snapped config is told with its value."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    fams = [f for f in joint.families if (pool["model"] == f).any()]
    units = {f: _unit(pool, f, joint.spaces[f]) for f in fams}
    values = pool["_value"].to_numpy()

    def dist(p):
        if p.kind == "categorical":
            return CategoricalDistribution([str(c) for c in p.choices])
        if p.kind == "int":
            return IntDistribution(int(p.low), int(p.high), log=bool(p.log))
        return FloatDistribution(float(p.low), float(p.high), log=bool(p.log))

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
    )
    taken: list[int] = []
    model_dist = CategoricalDistribution(fams)
    for _ in range(budget):
        trial = study.ask()
        fam = trial.suggest_categorical("model", fams)
        sp = joint.spaces[fam]
        prop: dict[str, Any] = {}
        for p in sp._order:
            if p.kind == "fixed" or not sp._active(p, prop):
                prop[p.name] = p.value if p.kind == "fixed" and sp._active(p, prop) else None
                continue
            key = f"{fam}:{p.name}"
            d = dist(p)
            if isinstance(d, CategoricalDistribution):
                v = trial.suggest_categorical(key, d.choices)
                v = next(c for c in p.choices if str(c) == v)
            elif isinstance(d, IntDistribution):
                v = trial.suggest_int(key, d.low, d.high, log=d.log)
            else:
                v = trial.suggest_float(key, d.low, d.high, log=d.log)
            prop[p.name] = v
        study.tell(trial, state=TrialState.FAIL)
        u, idx = units[fam]
        free = ~np.isin(idx, taken)
        if not free.any():  # the family's pool is exhausted: nearest untried of any family
            rest = pool.loc[~pool["_idx"].isin(taken), "_idx"].to_numpy()
            j = int(rest[0])
        else:
            q = sp.to_unit(sp.validate({k: v for k, v in prop.items() if v is not None}))[0]
            dd = ((u - q) ** 2).sum(axis=1)
            dd[~free] = np.inf
            j = int(idx[int(np.argmin(dd))])
        taken.append(j)
        row = pool.loc[pool["_idx"] == j].iloc[0]
        tf = str(row["model"])
        tsp = joint.spaces[tf]
        params: dict[str, Any] = {"model": tf}
        dists: dict[str, Any] = {"model": model_dist}
        cfg = _restore(row.to_dict(), tsp)
        for p in tsp.params:
            v = cfg.get(p.name)
            if p.kind == "fixed" or v is None:
                continue
            d = dist(p)
            key = f"{tf}:{p.name}"
            if isinstance(d, CategoricalDistribution):
                v = str(v)
            elif isinstance(d, IntDistribution):
                v = int(np.clip(round(float(v)), d.low, d.high))
            else:
                v = float(np.clip(float(v), d.low, d.high))
            params[key], dists[key] = v, d
        study.add_trial(create_trial(params=params, distributions=dists, value=float(values[j])))
    return taken


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _present(v: Any) -> bool:
    return not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)))


def _regret_rows(method, d, seed, order, sub):
    vals = sub["value"].to_numpy()
    best, worst = vals.max(), vals.min()
    rows = []
    for b in BUDGETS:
        found = vals[order[:b]].max()
        norm = (best - found) / (best - worst) if best > worst else 0.0
        rows.append({"dataset": d, "method": method, "seed": seed, "budget": b,
                     "regret": best - found, "norm_regret": norm})  # fmt: skip
    return rows


def evaluate_cmd(args: argparse.Namespace) -> int:
    import warnings

    from metaopt_bayes.families import JointSpace

    warnings.filterwarnings("ignore")
    runs, meta, datasets, fams = load_history(args.history, args.meta)
    if args.families:
        fams = [f for f in fams if f in args.families.split(",")]
        runs = runs[runs["model"].isin(fams)]
    if args.max_datasets:
        datasets = datasets[: args.max_datasets]
    runs = runs[runs["dataset"].isin(datasets)].reset_index(drop=True)
    # the sweep's space is the zoo default: snap TPE in that space, ints restored
    joint = JointSpace.from_families(fams, "classification")
    for c in runs.columns:
        if c.startswith("params."):
            name = c.removeprefix("params.")
            kinds = {sp[name].kind for sp in joint.spaces.values() if name in sp.names}
            if kinds == {"int"}:
                runs[c] = runs[c].astype("Int64").astype(object).where(runs[c].notna(), None)
    print(f"{len(datasets)} datasets x {len(fams)} families, {len(runs)} runs", flush=True)
    rng = np.random.default_rng(0)
    perm = list(rng.permutation(datasets))
    folds = [perm[k :: args.folds] for k in range(args.folds)]
    sel_rows: list[dict] = []
    reg_rows: list[dict] = []
    fit_s: list[float] = []
    rho: list[float] = []
    t_all = time.perf_counter()
    for k, test in enumerate(folds):
        train = [d for d in datasets if d not in test]
        fl, s = _fit_fold(runs, meta, train, fams, args, share=True)
        fit_s.append(s)
        rho.append(fl.rho)
        print(f"fold {k}: fit {s:.0f}s, rho={fl.rho:.2f}; {len(test)} test datasets", flush=True)
        sel_rows += _selection_rows(fl, runs, meta, test, train, fams, args.seeds)
        for d in test:
            pool, sub = pool_of(runs, d)
            budget = min(max(BUDGETS), len(pool))
            if "metaopt" in args.methods:
                order = _search_metaopt(fl, pool, sub, meta, d, budget, share=False)
                for seed in range(args.seeds):  # deterministic given the fold's fit
                    reg_rows += _regret_rows("metaopt (joint EI)", d, seed, order, sub)
            if "metaopt-share" in args.methods:
                order = _search_metaopt(fl, pool, sub, meta, d, budget, share=True)
                for seed in range(args.seeds):
                    reg_rows += _regret_rows("metaopt + sharing", d, seed, order, sub)
            for seed in range(args.seeds):
                if "random" in args.methods:
                    order = list(np.random.default_rng(seed).permutation(len(pool))[:budget])
                    reg_rows += _regret_rows("random (joint)", d, seed, order, sub)
                if "tpe" in args.methods:
                    order = _search_tpe(pool, budget, seed, joint)
                    reg_rows += _regret_rows("Optuna TPE (conditional)", d, seed, order, sub)
            print(f"  {d}: done ({time.perf_counter() - t_all:.0f}s)", flush=True)
    sel = pd.DataFrame(sel_rows)
    reg = pd.DataFrame(reg_rows)
    tag = "_quick" if args.quick else ""
    sel.to_csv(OUT / f"families_selection{tag}.csv", index=False)
    reg.to_csv(OUT / f"families_regret{tag}.csv", index=False)
    md = report(sel, reg, len(datasets), fams, args, fit_s, rho)
    (OUT / f"families{tag}.md").write_text(md)
    print(md)
    return 0


def report(sel, reg, n_datasets, fams, args, fit_s, rho) -> str:
    """Markdown tables: selection hit rate / loss, regret by budget with seed spread."""
    lines = [
        "# Search across model families (benchmarks/families.py evaluate)",
        "",
        f"Cross-family history: {n_datasets} PMLB classification datasets x {len(fams)} "
        f"families ({', '.join(fams)}), 3-fold CV accuracy; {args.folds}-fold "
        f"leave-datasets-out; meta-learner `{args.fit_method}` (prior_meta={args.prior_meta}); "
        f"{args.seeds} seeds. Fit per fold (all families): "
        f"{np.mean(fit_s):.0f} s; sharing coefficient rho per fold: "
        f"{', '.join(f'{r:.2f}' for r in rho)}.",
        "",
        "## (a) Algorithm selection: is the chosen family within 1% accuracy of the best?",
        "",
        "| setting | method | hit rate (within 1%) | mean accuracy loss (points) |",
        "|---|---|---|---|",
    ]
    g = sel.groupby(["setting", "method"], sort=False)
    for (setting, method), df in g:
        per_seed = df.groupby("seed")["hit"].mean()
        spread = f" ± {per_seed.std(ddof=0):.3f}" if len(per_seed) > 1 else ""
        lines.append(
            f"| {setting} | {method} | {df['hit'].mean():.3f}{spread} | "
            f"{100 * df['loss'].mean():.2f} |"
        )
    lines += [
        "",
        "## (b) Search regret in the joint space (mean over datasets; ± sd over seeds)",
        "",
        "Regret = best accuracy in the dataset's pool − best found (points); normalized = "
        "regret / (best − worst). Tabular: every method picks among the held-out dataset's "
        "evaluated configs.",
        "",
        "| method | "
        + " | ".join(f"regret@{b}" for b in BUDGETS)
        + " | "
        + " | ".join(f"norm@{b}" for b in BUDGETS)
        + " |",
        "|---|" + "---|" * (2 * len(BUDGETS)),
    ]
    for method, df in reg.groupby("method", sort=False):
        cells = []
        for col, scale in (("regret", 100.0), ("norm_regret", 1.0)):
            for b in BUDGETS:
                per_seed = df[df["budget"] == b].groupby("seed")[col].mean() * scale
                cells.append(f"{per_seed.mean():.3f} ± {per_seed.std(ddof=0):.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep", help="build the cross-family history")
    sw.add_argument("--configs", type=int, default=10, help="Sobol configs per family")
    sw.add_argument("--max-rows", type=int, default=1500)
    sw.add_argument("--timeout", type=float, default=20.0, help="seconds per run")
    sw.add_argument("--budget-min", type=float, default=60.0, help="wall-clock budget")
    sw.add_argument("--datasets", default="", help="comma-separated subset")
    sw.add_argument("--max-datasets", type=int, default=0)
    sw.add_argument("--families", default="")
    sw.add_argument("--db", default="")
    sw.add_argument("--quick", action="store_true", help="2 datasets, 2 configs per family")
    ev = sub.add_parser("evaluate", help="leave-datasets-out selection and search regret")
    ev.add_argument("--folds", type=int, default=5)
    ev.add_argument("--seeds", type=int, default=5)
    ev.add_argument("--fit-method", default="map")
    ev.add_argument("--prior-meta", type=float, default=0.1)
    ev.add_argument("--methods", default="metaopt,metaopt-share,random,tpe")
    ev.add_argument("--max-datasets", type=int, default=0)
    ev.add_argument("--families", default="", help="comma-separated subset (default: all)")
    ev.add_argument("--quick", action="store_true", help="8 datasets, 2 folds, 2 seeds")
    args = ap.parse_args(argv)
    if args.cmd == "evaluate":
        args.history, args.meta = HISTORY, META
        args.methods = args.methods.split(",")
        if args.quick:
            args.max_datasets, args.folds, args.seeds = 8, 2, 2
        return evaluate_cmd(args)
    if args.cmd == "sweep":
        if args.quick:
            args.configs, args.max_datasets, args.max_rows = 2, 2, 300
            args.db = args.db or str(WORK / "families_quick.duckdb")
        args.history, args.meta = HISTORY, META
        if args.quick:
            args.history = WORK / "families_quick_history.parquet"
            args.meta = WORK / "families_quick_meta.parquet"
        return sweep_cmd(args)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

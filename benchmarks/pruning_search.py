"""Pruning on held-out datasets: metaopt's curve pruner against metaopt without pruning and
Optuna's TPE with the Hyperband and median pruners, at equal total training steps.

Data: the learning-curve suites of ``benchmarks/data`` (``make_curve_suites.py``): per model
family ONE pool of configurations trained on every PMLB classification dataset, with the
validation accuracy recorded at every step (``mlp``: epochs, ``hist_gradient_boosting``:
boosting iterations). The history is the ``dev`` datasets of ``pmlb_splits.csv`` (their final
accuracies fit metaopt's MetaLearner, their curves its CurveModel); every method searches
each ``holdout`` dataset's pool, which no design decision looked at.

A trial trains step by step by reading its real curve; a pruner may stop it there. Methods:

- ``metaopt``          — ``recommend`` (log-EI) one trial at a time, every trial trained to
                         the end (the 0.4.0 search).
- ``metaopt-prune``    — the same proposer with the product's pruner
                         (:class:`metaopt_bayes.pruning.CurvePruner`): a trial stops when the
                         curve model gives it less than ``--threshold`` probability of beating
                         the dataset's best finished run. Pruned trials are logged as the
                         product logs them (status ``pruned``, their partial curve).
- ``tpe``              — Optuna TPE, no pruning.
- ``tpe-hyperband``    — TPE + ``HyperbandPruner(min_resource=1, max_resource=<steps>,
                         reduction_factor=3)``.
- ``tpe-median``       — TPE + ``MedianPruner(n_startup_trials=5, n_warmup_steps=<10% of
                         the steps>)``.

Optuna's proposals are snapped to the nearest untried pool config (as in ``search.py``): the
asked trial is told FAIL, the snapped config enqueued and asked again, so the pruner sees a
live trial with the pool config's real curve (``trial.report`` / ``should_prune``).

Scored: normalized regret ``(best − found) / (best − worst)`` of the best FINISHED trial's
final accuracy (a pruned trial is not credited), against total training steps spent, in
multiples of one full training (``--equivalents``); and the training seconds spent (the
curves' ``elapsed_s``). Targets (issue #28): metaopt-prune reaches metaopt's regret at ≤ 1/3 of
its steps; at equal steps it has lower regret than TPE + Hyperband and TPE + median.

Usage::

    PYTHONPATH=. python benchmarks/pruning_search.py --family mlp
    PYTHONPATH=. python benchmarks/pruning_search.py --family hist_gradient_boosting --split dev

Writes ``benchmarks/results/pruning_search_<family>_<split>.{csv,md,png}`` and prints the tables.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search as S  # noqa: E402  (benchmarks/search.py: suites, snapping, scoring)

DATA = ROOT / "benchmarks" / "data"
OUT = ROOT / "benchmarks" / "results"
METRIC = "accuracy"
EQUIVALENTS = (1, 2, 3, 5, 7, 10, 15, 20)  # total steps in multiples of one full training


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
@dataclass
class CurveSuite:
    suite: S.Suite
    steps: np.ndarray  # the family's steps, the same for every run
    values: dict[str, np.ndarray]  # run_id → validation accuracy at each step
    elapsed: dict[str, np.ndarray]  # run_id → cumulative training seconds at each step
    curves: pd.DataFrame  # long: run_id, dataset, step, value (accuracy)


def load_curve_suite(family: str) -> CurveSuite:
    """All datasets of a curve family (the split is chosen by the caller)."""
    suite = S.load_pmlb(family, "all", path=DATA / f"pmlb_curves_{family}_runs.parquet")
    long = pd.read_parquet(DATA / f"pmlb_curves_{family}.parquet")
    long = long[long["metric"] == METRIC].sort_values(["run_id", "step"])
    steps = np.sort(long["step"].unique())
    values, elapsed = {}, {}
    for rid, g in long.groupby("run_id", sort=False):
        if len(g) != len(steps):
            raise SystemExit(f"run {rid} has {len(g)} of {len(steps)} steps")
        values[rid] = g["value"].to_numpy(float)
        elapsed[rid] = g["elapsed_s"].to_numpy(float)
    runs = pd.read_parquet(DATA / f"pmlb_curves_{family}_runs.parquet", columns=["run_id"])
    by_run = dict(zip(runs["run_id"], suite.runs["task"], strict=True))
    curves = long[["run_id", "step", "value"]].copy()
    curves.insert(1, "dataset", curves["run_id"].map(by_run))
    return CurveSuite(suite, steps, values, elapsed, curves)


def split_tasks(split: str) -> list[str]:
    groups = pd.read_csv(DATA / "pmlb_splits.csv")
    return sorted(groups.loc[groups["split"] == split, "dataset"].astype(str))


# --------------------------------------------------------------------------------------------
# One search: a trajectory of (steps spent, seconds spent, best finished value)
# --------------------------------------------------------------------------------------------
@dataclass
class Target:
    cs: CurveSuite
    name: str
    pool: pd.DataFrame  # the dataset's runs: params, value, run_id
    X: np.ndarray
    state: dict
    max_steps: int  # the total-step budget of a search

    @property
    def task(self) -> S.Task:
        return S.Task(self.cs.suite, self.name, self.pool, self.X, [], self.state)


@dataclass
class Trajectory:
    steps: list[int]  # cumulative steps when each trial ended
    seconds: list[float]  # cumulative training seconds when each trial ended
    best: list[float]  # best finished final value after each trial (nan before any)
    pruned: int = 0
    trials: int = 0
    overhead_s: float = 0.0  # the method's own time (proposals, pruning decisions, logging)


class _Ledger:
    """Counts what a search spends and the best finished value it has."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.total_steps, self.total_s = 0, 0.0
        self.best = math.nan
        self.traj = Trajectory([], [], [])

    @property
    def exhausted(self) -> bool:
        return self.total_steps >= self.t.max_steps

    def spend(self, idx: int, k: int, finished: bool) -> None:
        """Trial ``idx`` trained ``k`` steps; if ``finished``, its final value counts."""
        rid = self.t.pool.at[idx, "run_id"]
        self.total_steps += k
        self.total_s += float(self.t.cs.elapsed[rid][k - 1])
        if finished:
            v = float(self.t.pool.at[idx, "value"])
            self.best = v if math.isnan(self.best) else max(self.best, v)
        else:
            self.traj.pruned += 1
        self.traj.trials += 1
        self.traj.steps.append(self.total_steps)
        self.traj.seconds.append(self.total_s)
        self.traj.best.append(self.best)


def _key(config: dict) -> tuple:
    return tuple(f"{v:.12g}" if isinstance(v, float) else str(v) for v in config.values())


def _metaopt(target: Target, seed: int, prune: bool, threshold: float) -> Trajectory:
    """The product's ask/tell search (:class:`metaopt_bayes.ask_tell.Search`) over the pool,
    the history's learner passed in; with ``prune`` the history's CurvePruner, which the search
    binds to the dataset's incumbent and finished curves before each trial."""
    from metaopt_bayes.ask_tell import Search
    from warehouse.errors import CandidatesExhaustedError

    st = target.state["metaopt"]
    cs, suite = target.cs, target.cs.suite
    wh, learner = st["wh"], st["learners"][None]
    alias = f"{target.name}__{'prune' if prune else 'full'}__{seed}"
    if target.name in suite.meta.index:
        row = suite.meta.loc[[target.name]].reset_index(drop=True)
        row.insert(0, "dataset", alias)
        wh.log_dataset_meta_features(row)
    names = [p.name for p in suite.params]
    cands = target.pool[names].copy()
    index = {_key(row): i for i, row in enumerate(cands.to_dict("records"))}
    ledger = _Ledger(target)
    K = len(cs.steps)
    t0 = time.perf_counter()
    search = Search(
        wh,
        alias,
        suite.model,
        candidates=cands,
        metric=METRIC,
        direction="maximize",
        learner=learner,
        seed=seed,
        prune=st["pruner"] if prune else False,
        budget_steps=int(cs.steps[-1]),
        # no refits: a refit learns from every dataset in the shared warehouse, i.e. from the
        # searches run before this one — the same dataset under another method's alias
        # included — and replaces the shared learner for the searches after it (as
        # benchmarks/search.py, the history's learner stays the one fitted on it)
        refit_every=0,
    )
    with search:
        while not ledger.exhausted:
            try:
                trial = search.ask()
            except CandidatesExhaustedError:  # every pool config ran (finished or pruned)
                break
            if trial is None:
                break
            idx = index[_key({n: trial.config[n] for n in names})]
            rid = target.pool.at[idx, "run_id"]
            vals, secs = cs.values[rid], cs.elapsed[rid]
            k, finished = K, True
            for j in range(1, K + 1):
                trial.report(int(cs.steps[j - 1]), float(vals[j - 1]), float(secs[j - 1]))
                if j < K and trial.should_prune():
                    k, finished = j, False
                    break
            ledger.spend(idx, k, finished)
            if finished:
                search.tell(trial, {METRIC: float(vals[-1]), "duration_s": float(secs[-1])})
            else:
                search.tell(trial, pruned=True)
    ledger.traj.overhead_s = time.perf_counter() - t0
    return ledger.traj


def run_metaopt(target: Target, seed: int, threshold: float) -> Trajectory:
    return _metaopt(target, seed, False, threshold)


def run_metaopt_prune(target: Target, seed: int, threshold: float) -> Trajectory:
    return _metaopt(target, seed, True, threshold)


def _optuna(target: Target, seed: int, pruner) -> Trajectory:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cs, suite = target.cs, target.cs.suite
    dists = S.optuna_distributions(suite)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner or optuna.pruners.NopPruner(),
    )
    ledger = _Ledger(target)
    taken = np.zeros(len(target.pool), bool)
    K = len(cs.steps)
    t0 = time.perf_counter()
    while not ledger.exhausted and not taken.all():
        asked = study.ask(dists)
        idx = S._snap(target.task, pd.DataFrame([asked.params]), taken)
        study.tell(asked, state=TrialState.FAIL)
        taken[idx] = True
        study.enqueue_trial(S.snapped_params(target.task, idx))
        trial = study.ask(dists)
        rid = target.pool.at[idx, "run_id"]
        k, finished = K, True
        for j in range(1, K + 1):
            trial.report(float(cs.values[rid][j - 1]), j)
            if j < K and trial.should_prune():
                k, finished = j, False
                break
        if finished:
            study.tell(trial, float(cs.values[rid][-1]))
        else:
            study.tell(trial, state=TrialState.PRUNED)
        ledger.spend(idx, k, finished)
    ledger.traj.overhead_s = time.perf_counter() - t0
    return ledger.traj


def run_tpe(target: Target, seed: int, threshold: float) -> Trajectory:
    return _optuna(target, seed, None)


def run_tpe_hyperband(target: Target, seed: int, threshold: float) -> Trajectory:
    import optuna

    K = len(target.cs.steps)
    return _optuna(target, seed, optuna.pruners.HyperbandPruner(min_resource=1, max_resource=K))


def run_tpe_median(target: Target, seed: int, threshold: float) -> Trajectory:
    import optuna

    K = len(target.cs.steps)
    warm = max(1, round(0.1 * K))
    return _optuna(
        target, seed, optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warm)
    )


METHODS: dict[str, Callable[[Target, int, float], Trajectory]] = {
    "metaopt": run_metaopt,
    "metaopt-prune": run_metaopt_prune,
    "tpe": run_tpe,
    "tpe-hyperband": run_tpe_hyperband,
    "tpe-median": run_tpe_median,
}


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
def regret_at(traj: Trajectory, values: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Normalized regret of the best finished trial once ``budgets`` steps are spent (1 before
    any trial finishes)."""
    top, low = values.max(), values.min()
    span = top - low if top > low else 1.0
    out = np.ones(len(budgets))
    steps = np.asarray(traj.steps)
    best = np.asarray(traj.best, float)
    for i, b in enumerate(budgets):
        k = np.searchsorted(steps, b, side="right")
        if k > 0 and not math.isnan(best[k - 1]):
            out[i] = (top - best[k - 1]) / span
    return out


def seconds_at(traj: Trajectory, budgets: np.ndarray) -> np.ndarray:
    steps, secs = np.asarray(traj.steps), np.asarray(traj.seconds)
    out = np.zeros(len(budgets))
    for i, b in enumerate(budgets):
        k = np.searchsorted(steps, b, side="right")
        out[i] = secs[k - 1] if k > 0 else 0.0
    return out


def fit_history(cs: CurveSuite, history: list[str], fit_method: str, threshold: float) -> dict:
    """The meta-learner (finals of the history's runs) and the pruner (their curves)."""
    from metaopt_bayes.curves import CurveModel
    from metaopt_bayes.pruning import CurvePruner

    state = S._fit_fold(cs.suite, history, fit_method)
    t0 = time.perf_counter()
    train = cs.curves[cs.curves["dataset"].isin(history)]
    model = CurveModel(METRIC, maximize=True).fit(train[["run_id", "dataset", "step", "value"]])
    state["curve_fit_s"] = time.perf_counter() - t0
    state["pruner"] = CurvePruner(model, threshold=threshold, budget=int(cs.steps[-1]))
    return state


def summarize(df: pd.DataFrame, equivalents) -> pd.DataFrame:
    rows = []
    for e in equivalents:
        col = f"e{e}"
        for m, sub in df.groupby("method"):
            rows.append(
                {
                    "method": m,
                    "equivalents": e,
                    "regret": sub[col].mean(),
                    "se": sub[col].std(ddof=1) / math.sqrt(len(sub)),
                    "seconds": sub[f"s{e}"].mean(),
                }
            )
    return pd.DataFrame(rows)


def table(s: pd.DataFrame) -> str:
    reg = s.pivot(index="method", columns="equivalents", values="regret")
    se = s.pivot(index="method", columns="equivalents", values="se")
    head = "| method | " + " | ".join(f"{e}×" for e in reg.columns) + " |"
    lines = [head, "|---|" + "---|" * len(reg.columns)]
    for m in reg.index:
        cells = [f"{reg.at[m, e]:.3f} ± {se.at[m, e]:.3f}" for e in reg.columns]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(df: pd.DataFrame, ours: str, cols: list[str]) -> str:
    """Each method's regret minus ``ours`` per (task, seed) at the same steps: mean ± s.e."""
    lines = [
        f"| method − {ours} | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for m in sorted(set(df["method"]) - {ours}):
        cells = []
        for c in cols:
            w = df.pivot_table(index=["task", "seed"], columns="method", values=c)
            d = (w[m] - w[ours]).dropna()
            se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
            cells.append(f"{d.mean():+.3f} ± {se:.3f} ({(d < 0).sum()}/{(d > 0).sum()})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def third_of_steps(df: pd.DataFrame, K: int, equivalents) -> str:
    """metaopt-prune after a third of the steps against metaopt after all of them."""
    lines = [
        "| metaopt's steps | metaopt regret | metaopt-prune regret at 1/3 of them | "
        "difference (prune − full) ± s.e. | tasks prune worse / better |",
        "|---|---|---|---|---|",
    ]
    full = df[df["method"] == "metaopt"].set_index(["task", "seed"])
    pr = df[df["method"] == "metaopt-prune"].set_index(["task", "seed"])
    for e in equivalents:
        if e < 3:
            continue
        d = pr[f"third{e}"] - full[f"e{e}"]
        se = d.std(ddof=1) / math.sqrt(len(d))
        lines.append(
            f"| {e}× ({e * K} steps) | {full[f'e{e}'].mean():.3f} | "
            f"{pr[f'third{e}'].mean():.3f} | {d.mean():+.3f} ± {se:.3f} | "
            f"{(d > 0).sum()} / {(d < 0).sum()} |"
        )
    return "\n".join(lines)


def plot(df: pd.DataFrame, family: str, split: str, equivalents, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, sub in df.groupby("method"):
        y = [sub[f"e{e}"].mean() for e in equivalents]
        ax.plot(equivalents, y, marker="o", label=m, lw=2 if m.startswith("metaopt") else 1.2)
    ax.set_xlabel("total training steps (× one full training)")
    ax.set_ylabel("mean normalized regret")
    ax.set_yscale("log")
    ax.set_title(f"pruning, {family}, {split} datasets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="mlp", choices=["mlp", "hist_gradient_boosting"])
    ap.add_argument(
        "--split",
        default="holdout",
        choices=["dev", "holdout"],
        help="the datasets searched; the history is always the dev datasets (with --split dev "
        "each searched dataset is left out of the history)",
    )
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=3, help="searches per dataset and method")
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--max-equivalents", type=int, default=max(EQUIVALENTS))
    ap.add_argument("--max-tasks", type=int, default=0)
    ap.add_argument("--fit-method", default="map")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    cs = load_curve_suite(args.family)
    K = len(cs.steps)
    equivalents = [e for e in EQUIVALENTS if e <= args.max_equivalents]
    dev = split_tasks("dev")
    targets = split_tasks(args.split)
    if args.max_tasks:
        targets = targets[: args.max_tasks]
    folds = (
        [(dev, targets)]
        if args.split == "holdout"
        else [
            ([t for t in dev if t not in fold], fold) for fold in (targets[k::5] for k in range(5))
        ]
    )
    budgets = np.array([e * K for e in equivalents])
    thirds = np.array([e * K / 3 for e in equivalents])
    rows = []
    for history, searched in folds:
        state = {}
        if any(m.startswith("metaopt") for m in methods):
            t0 = time.perf_counter()
            state["metaopt"] = fit_history(cs, history, args.fit_method, args.threshold)
            print(f"history fit {time.perf_counter() - t0:.1f}s", flush=True)
        for name in searched:
            pool = cs.suite.pool(name)
            target = Target(
                cs, name, pool, S.encode(cs.suite, pool), state, args.max_equivalents * K
            )
            values = pool["value"].to_numpy(float)
            for seed in range(args.seeds):
                for m in methods:
                    traj = METHODS[m](target, seed, args.threshold)
                    row = {
                        "task": name,
                        "seed": seed,
                        "method": m,
                        "trials": traj.trials,
                        "pruned": traj.pruned,
                        "overhead_s": traj.overhead_s,
                    }
                    for e, r, s_, th in zip(
                        equivalents,
                        regret_at(traj, values, budgets),
                        seconds_at(traj, budgets),
                        regret_at(traj, values, thirds),
                        strict=True,
                    ):
                        row[f"e{e}"], row[f"s{e}"], row[f"third{e}"] = r, s_, th
                    rows.append(row)
                print(
                    f"{name} seed {seed}: "
                    + " ".join(
                        f"{r['method']}={r[f'e{equivalents[-1]}']:.3f}/{r['pruned']}p"
                        for r in rows[-len(methods) :]
                    ),
                    flush=True,
                )
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"pruning_search_{args.family}_{args.split}"
    df.to_csv(out / f"{stem}.csv", index=False)
    s = summarize(df, equivalents)
    cols = [f"e{e}" for e in equivalents]
    sec = s.pivot(index="method", columns="equivalents", values="seconds")
    text = [
        f"## {args.family}, {args.split} datasets ({df.task.nunique()}), {args.seeds} seeds, "
        f"{K} steps per full training — mean normalized regret ± s.e. at total steps",
        table(s),
        "",
        "### paired against metaopt-prune (regret difference; tasks better / worse)",
        paired(df, "metaopt-prune", cols) if "metaopt-prune" in methods else "",
        "",
        "### metaopt-prune at a third of metaopt's steps",
        third_of_steps(df, K, equivalents) if {"metaopt", "metaopt-prune"} <= set(methods) else "",
        "",
        "### training seconds spent at those steps (mean over searches)",
        "| method | " + " | ".join(f"{e}×" for e in sec.columns) + " |",
        "|---|" + "---|" * len(sec.columns),
        *[
            f"| {m} | " + " | ".join(f"{sec.at[m, e]:.1f}" for e in sec.columns) + " |"
            for m in sec.index
        ],
        "",
        "trials run / pruned per search (mean), method overhead seconds per search: "
        + ", ".join(
            f"{m} {g.trials.mean():.1f}/{g.pruned.mean():.1f}, {g.overhead_s.mean():.1f}s"
            for m, g in df.groupby("method")
        ),
    ]
    report = "\n".join(text)
    print(report)
    (out / f"{stem}.md").write_text(report + "\n")
    plot(df, args.family, args.split, equivalents, out / f"{stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

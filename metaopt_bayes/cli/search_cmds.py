"""Search commands: recommend, optimize, demo."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click
from click.core import ParameterSource

from metaopt_bayes.batch import RANDOM_EVERY, WARM_START
from metaopt_bayes.cli._common import (
    candidates_option,
    config_text,
    cv_option,
    dataset_option,
    emit,
    flag_used,
    learner_option,
    main,
    method_option,
    model_option,
    open_warehouse,
    output_option,
    renamed_option,
    require_dataset,
    space_option,
    trials_option,
    wait_option,
)
from warehouse.protocol import WarehouseLike

ACQ_CHOICE = click.Choice(["ei", "cost-ei", "ucb", "ts", "pi"])
acquisition_option = click.option(
    "--acquisition",
    "-a",
    type=ACQ_CHOICE,
    default="ei",
    show_default=True,
    help="ei: expected improvement; pi: probability of improvement; ucb: upper confidence "
    "bound; ts: Thompson sampling; cost-ei: EI per predicted training second.",
)


def random_every_option(f: Any) -> Any:
    return click.option(
        "--random-every",
        type=click.IntRange(min=0),
        default=RANDOM_EVERY,
        show_default=True,
        help="After N trials on the dataset without improving on its best run, pick a random "
        "candidate instead of the acquisition's (and every N trials while the best stays "
        "put; 0 = never), so a confidently wrong learner cannot keep the search from a "
        "region for long.",
    )(f)


def warm_start_option(f: Any) -> Any:
    return click.option(
        "--warm-start",
        type=click.IntRange(min=0),
        default=WARM_START,
        show_default=True,
        help="With ei, the dataset's first N trials are the history's portfolio: each the "
        "candidate that best covers the training datasets under the learner's surfaces of "
        "them (0 = the best predicted mean first, then ei).",
    )(f)


def _space_or_default(wh: WarehouseLike, dataset: str, model: str, space: str | None) -> Any:
    from metaopt_bayes.space import SearchSpace
    from metaopt_bayes.zoo import get_family

    if space is not None:
        return SearchSpace.from_file(space)
    task = wh.dataset_task(dataset) or "classification"
    return get_family(model).default_space(task)


def _default_metric(wh: WarehouseLike, dataset: str) -> str:
    return "rmse" if wh.dataset_task(dataset) == "regression" else "accuracy"


def load_objective(spec: str) -> Any:
    """The function ``package.module:function`` names (the working directory is importable,
    as for ``python -m``); one-line errors for a malformed name, a module that does not
    import and a missing or uncallable function."""
    import importlib
    import os
    import sys

    from warehouse.errors import ValidationError, one_line

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ValidationError(f"--objective must look like package.module:function, not {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValidationError(
            f"--objective: cannot import {module_name!r}: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    fn: Any = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ValidationError(f"--objective: module {module_name!r} has no {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValidationError(f"--objective: {spec!r} is a {type(fn).__name__}, not a function")
    return fn


def _learner(
    wh: WarehouseLike,
    metric: str,
    model: str,
    ref: str | None,
    method: str | None,
    dataset: str,
    refit: bool = False,
) -> Any:
    """The fit ``ref`` names (a recorded id or a learner file), else the newest recorded fit
    with these settings whose datasets other than ``dataset`` are unchanged, else a fit now
    (recorded): :func:`metaopt_bayes.reuse.learner_for`."""
    from metaopt_bayes.reuse import learner_for

    return learner_for(wh, metric, model, dataset=dataset, method=method, refit=refit, learner=ref)


def _cost_learner(
    wh: WarehouseLike,
    metric: str,
    model: str,
    method: str | None,
    dataset: str,
    refit: bool = False,
) -> Any:
    from metaopt_bayes.reuse import learner_for

    return learner_for(wh, metric, model, dataset=dataset, method=method, cost=True, refit=refit)


def _family_learner(
    wh: WarehouseLike,
    dataset: str,
    metric: str,
    families: list[str] | None,
    method: str | None,
    fmt: str,
    refit: bool = False,
) -> Any:
    """A FamilyLearner for the families with history on ``metric`` (or the named ones): for
    each family a learner of the metric and one of training seconds, recorded fits reused when
    their data are unchanged (:func:`_learner`), and each one named on stderr (no
    cross-family sharing: benchmarks/families.py measured no gain)."""
    from metaopt_bayes.families import FamilyLearner, resolve_families
    from warehouse.errors import ValidationError

    task = wh.dataset_task(dataset) or "classification"
    wanted = resolve_families(families, task)
    runs = wh.training_matrix(metric)
    have = set(runs["model"].astype(str)) if len(runs) else set()
    fams = [f for f in wanted if f in have]
    if not fams:
        raise ValidationError(
            f"no runs of {', '.join(wanted)} with metric {metric!r} to learn from; "
            "log some first (metaopt sweep)"
        )
    learners: dict[str, Any] = {}
    costs: dict[str, Any] = {}
    notes: list[str] = []
    with _FitProgress(len(fams), fmt == "table") as bar:
        for fam in fams:
            bar.step(fam)
            learners[fam] = _learner(wh, metric, fam, None, method, dataset, refit)
            notes.append(learners[fam].reuse_note)
            with contextlib.suppress(ValidationError):
                costs[fam] = _cost_learner(wh, metric, fam, method, dataset, refit)
                notes.append(costs[fam].reuse_note)
    fl = FamilyLearner.from_learners(learners, costs)  # no sharing: measured no gain
    fl.warehouse = wh
    fl.reuse_notes = notes
    return fl


class _FitProgress:
    """A rich progress bar over the families being fitted (silent when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.p = total, enabled, None

    def __enter__(self) -> _FitProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.p = Progress(
                TextColumn("[bold]learners"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[fam]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self.p.__enter__()
            self.task = self.p.add_task("fit", total=self.total, fam="")
        return self

    def step(self, fam: str) -> None:
        if self.p is not None:
            done = self.p.tasks[0].completed
            self.p.update(self.task, completed=done + (1 if self.p.tasks[0].fields["fam"] else 0))
            self.p.update(self.task, fam=fam)

    def __exit__(self, *exc: Any) -> None:
        if self.p is not None:
            self.p.update(self.task, completed=self.total)
            self.p.__exit__(*exc)


def _record_ranking(wh: WarehouseLike, fl: Any, dataset: str, ranking: Any) -> None:
    """Store each family's predicted best config as a recommendation ('family-rank')."""
    import contextlib
    import json as _json

    import pandas as pd

    from metaopt_bayes.families import record_family_recommendations

    rows = pd.DataFrame(
        [
            {
                "model": r["model"],
                **_json.loads(r["config"]),
                **{k: r[k] for k in ("mean", "sd", "rank")},
                "acquisition": float("nan"),
            }
            for r in ranking.to_dict("records")
        ]
    )
    with contextlib.suppress(Exception):
        record_family_recommendations(wh, fl, dataset, rows, "family-rank")


@main.command("recommend")
@dataset_option("The dataset to recommend for.", required=True)
@model_option(
    "A model family (repeat for several; omit to rank every family with history).",
    multiple=True,
)
@space_option
@candidates_option
@click.option(
    "--n",
    "n",
    type=int,
    default=5,
    show_default=True,
    help="How many configurations to recommend (nothing is trained: that is --trials of "
    "sweep and optimize).",
)
@acquisition_option
@click.option("--metric", default=None, help="Metric (default: accuracy, or rmse for regression).")
@learner_option(
    "A saved meta-model (learner) for one --model: its id or its file (default: the newest "
    "recorded fit, else a fit now)."
)
@method_option(
    "Fit method of the learner; given, only a recorded fit of it is reused (default: any "
    "recorded fit whose data are unchanged, else a NUTS fit)."
)
@click.option(
    "--refit",
    is_flag=True,
    help="Fit the learner afresh (default: reuse the recorded fit when the runs on other "
    "datasets are unchanged).",
)
@click.option("--include-run", is_flag=True, help="Also rank configs already run on the dataset.")
@click.option("--seed", type=int, default=0, show_default=True)
@random_every_option
@warm_start_option
@output_option
@click.pass_context
def recommend_cmd(
    ctx: click.Context,
    dataset: str,
    model: tuple[str, ...],
    space: str | None,
    candidates: str | None,
    n: int,
    acquisition: str,
    metric: str | None,
    learner: str | None,
    method: str | None,
    refit: bool,
    include_run: bool,
    seed: int,
    random_every: int,
    warm_start: int,
    fmt: str,
) -> None:
    """Rank configurations (one --model) or model families (none or several) for a dataset.

    With one --model the output has the configuration, its predicted metric (mean, sd) and
    `acquisition`, the score it was picked by: log EI (ei), log PI (pi), the bound (ucb), the
    probability of being the best (ts) or log EI per second (cost-ei). With --n above 1 each
    pick is scored after the earlier ones are assumed run (Kriging believer), so the scores
    need not fall with the rank; the rank is the order of picking.

    Without --model, or with several, every family is scored with its own learner and
    the families are ranked by the predicted metric of their best configuration, with a 90%
    interval and the predicted training time.

    A recorded learner is reused while the runs on datasets other than --dataset are
    unchanged (the dataset's own runs enter at prediction time); a line on stderr says which
    one answered, or why one was fitted.

    \b
    Example:
      metaopt recommend --dataset wine --model svc --n 5
      metaopt recommend -d wine -m svc --candidates pool.csv --acquisition ucb --format json
      metaopt recommend -d wine -m hist_gradient_boosting --space hgb.yaml -a cost-ei
      metaopt recommend --dataset wine --method map
      metaopt recommend -d wine -m svc -m knn -m mlp --format json
    """
    from metaopt_bayes.search import recommend
    from warehouse.errors import ValidationError

    if space is not None and candidates is not None:
        raise ValidationError("give --space or --candidates, not both")
    if ctx.get_parameter_source("method") == ParameterSource.DEFAULT and not refit:
        method = None  # any recorded fit with unchanged data; NUTS when one must be fitted
    if len(model) != 1:
        if space is not None:
            raise ValidationError("--space needs exactly one --model")
        if learner is not None:
            raise ValidationError("--learner names one model family's learner; give one --model")
        with open_warehouse(ctx, must_exist=True) as wh:
            require_dataset(wh, dataset)
            metric = metric or _default_metric(wh, dataset)
            fl = _family_learner(wh, dataset, metric, list(model) or None, method, fmt, refit)
            out = fl.rank_families(
                dataset,
                candidates if candidates is not None else None,
                warehouse=wh,
                seed=seed,
            )
            _record_ranking(wh, fl, dataset, out)
        emit(
            out,
            fmt,
            title=(
                f"model families on {dataset}: predicted best {metric} ({fl.direction}), "
                f"90% interval, predicted seconds"
            ),
        )
        for note in fl.reuse_notes:  # which learners answered, after the answer
            click.echo(note, err=True)
        return
    model = model[0]
    with open_warehouse(ctx, must_exist=True) as wh:
        require_dataset(wh, dataset)
        metric = metric or _default_metric(wh, dataset)
        lrn = _learner(wh, metric, model, learner, method, dataset, refit)
        source = (
            candidates if candidates is not None else _space_or_default(wh, dataset, model, space)
        )
        cost = (
            _cost_learner(wh, metric, model, method, dataset, refit)
            if acquisition == "cost-ei"
            else None
        )
        out = recommend(
            lrn,
            wh,
            dataset,
            source,
            n=n,
            acquisition=acquisition,
            include_run=include_run,
            cost_learner=cost,
            seed=seed,
            record=True,
            random_every=random_every,
            warm_start=warm_start,
        )
    score = {"ei": "log EI", "pi": "log PI", "cost-ei": "log EI per second"}.get(acquisition)
    by = f"{acquisition} (acquisition = {score})" if score else acquisition
    emit(out, fmt, title=f"{model} on {dataset}: {metric} ({lrn.direction}), by {by}")
    for note in (lrn.reuse_note, getattr(cost, "reuse_note", None)):  # after the answer
        if note:
            click.echo(note, err=True)


class _LiveTable:
    """A rich live table of the last trials: trial, config, metric, best so far, predicted ± sd."""

    def __init__(
        self,
        metric: str | None,
        maximize: bool,
        budget: int,
        enabled: bool,
        direction_of: Any = None,
    ) -> None:
        # metric None: a user objective's first result names it (then direction_of(metric))
        self.metric, self.maximize, self.budget, self.enabled = metric, maximize, budget, enabled
        self.direction_of = direction_of
        self.rows: list[dict[str, Any]] = []
        self.best: float | None = None
        self.live = None

    def __enter__(self) -> _LiveTable:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            if exc[0] is not None:  # the error message starts on its own line
                self.live.console.print()

    def add(self, t: dict[str, Any]) -> None:
        if self.metric is None and t.get("metric") and self.direction_of is not None:
            self.metric = str(t["metric"])
            self.maximize = self.direction_of(self.metric) == "maximize"
        v = t.get("value")
        if (
            v is not None
            and t.get("status") == "finished"
            and (self.best is None or (v > self.best if self.maximize else v < self.best))
        ):
            self.best = v
        self.rows.append({**t, "best": self.best})
        if self.live is not None:
            self.live.update(self._render())

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        done = self.rows[-1]["number"] if self.rows else 0
        metric = self.metric or "the objective's metric"
        tab = Table(title=escape(f"optimizing {metric} — trial {done}/{self.budget}"))
        joint = any(r.get("model") for r in self.rows)
        cols = ("trial", *(("family",) if joint else ()), "config", self.metric or "value")
        for col in (*cols, "best so far", "predicted ± sd", "s"):
            tab.add_column(escape(col), overflow="fold")
        for r in self.rows[-15:]:
            pm, ps = r.get("predicted_mean"), r.get("predicted_sd")
            tab.add_row(
                str(r["number"]),
                *((escape(str(r.get("model") or "")),) if joint else ()),
                escape(config_text(r["config"])),
                _value_text(r),
                f"{r['best']:.4f}" if r.get("best") is not None else "",
                f"{pm:.4f} ± {ps:.4f}" if pm is not None and ps is not None else "(initial)",
                f"{r['duration_s']:.1f}" if r.get("duration_s") is not None else "",
            )
        return tab


def _value_text(r: dict[str, Any]) -> str:
    """A live-table row's value: ``failed``, a pruned trial's last value and step, the value."""
    v, status = r.get("value"), r.get("status")
    if status == "failed":
        return "failed"
    if status == "pruned":
        at = f" @ step {r['steps']}" if r.get("steps") is not None else ""
        return f"pruned{at} ({v:.4f})" if v is not None else f"pruned{at}"
    return f"{v:.4f}" if v is not None else ""


def _run_optimize(
    wh: WarehouseLike,
    dataset: str,
    model: str | list[str] | None,
    budget: int,
    *,
    space: Any,
    candidates: Any,
    acquisition: str,
    executor: str | None,
    jobs: int,
    metric: str | None,
    method: str,
    refit_every: int,
    seed: int,
    cv: int,
    retrain: bool,
    live: bool,
    learner: Any = None,
    default_first: bool = True,
    reuse: bool = True,
    objective: Any = None,
    random_every: int = RANDOM_EVERY,
    warm_start: int = WARM_START,
    prune: bool = False,
    prune_threshold: float = 0.05,
    budget_steps: int | None = None,
) -> Any:
    from metaopt_bayes.search import optimize

    if objective is not None:  # the model's one metric in the warehouse, or the first result's
        from metaopt_bayes.optimize_model import objective_metric

        metric = objective_metric(wh, str(model), metric)
    else:
        metric = metric or (learner.metric if learner is not None else _default_metric(wh, dataset))
    direction = (
        learner.direction
        if learner is not None
        else (wh.metric_direction(metric) if metric is not None else None)
    )
    maximize = direction == "maximize"
    if isinstance(model, str):
        from metaopt_bayes.trials import existing_trials

        n_before = len(existing_trials(wh, dataset, [model]))
        if n_before:
            flag = flag_used("trials", "--trials")
            spent = (
                f"; the budget is spent, so nothing new runs (raise {flag} for more)"
                if n_before >= budget
                else f"; {budget - n_before} more to run"
            )
            click.echo(
                f"resuming: {n_before} of {flag} {budget} trials of {model} on {dataset} "
                f"are in the warehouse{spent}",
                err=True,
            )
    with _LiveTable(metric, maximize, budget, live, wh.metric_direction) as table:
        return optimize(
            wh,
            dataset,
            model,
            budget,
            space=space,
            candidates=candidates,
            objective=objective,
            acquisition=acquisition,
            executor=executor,
            jobs=jobs,
            metric=metric,
            learner=learner,
            fit_method=method,
            refit_every=refit_every,
            seed=seed,
            cv=cv,
            retrain=retrain,
            callback=table.add,
            default_first=default_first,
            release=isinstance(model, str),  # `metaopt sql` can read the trials meanwhile
            reuse=reuse,
            random_every=random_every,
            warm_start=warm_start,
            prune=prune,
            prune_threshold=prune_threshold,
            budget_steps=budget_steps,
        )


@main.command("optimize")
@dataset_option("A registered dataset.", required=True)
@model_option(
    "A model family (repeat for several; omit to search every family of the zoo).",
    multiple=True,
)
@trials_option(
    30,
    "Trials to train in all, failed ones included. Re-running resumes up to this many from "
    "the earlier optimize trials of this dataset and model in the warehouse (not sweep or "
    "imported runs, which the learner uses as history), whatever --metric, --space or --cv "
    "they ran with.",
    old=("--budget", "-b"),
)
@space_option
@candidates_option
@acquisition_option
@click.option("--cost-aware", is_flag=True, help="Same as --acquisition cost-ei.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Trials in flight.")
@click.option("--executor", default=None, help="dask://HOST:PORT to run trials on a cluster.")
@click.option("--metric", default=None, help="Metric (default: accuracy, or rmse for regression).")
@method_option("Meta-model (learner) fit method.")
@learner_option(
    "A recorded meta-model (learner) for one --model: its id or its file (default: the newest "
    "recorded fit whose other datasets' runs are unchanged, else a fit now)."
)
@click.option(
    "--refit",
    is_flag=True,
    help="Fit the learner afresh before the first trial (default: reuse a recorded fit of "
    "the unchanged other datasets).",
)
@click.option(
    "--refit-every",
    type=int,
    default=10,
    show_default=True,
    help="Full refit every N trials when other datasets gained runs (0 = never); the "
    "target's trials act through the few-shot update.",
)
@cv_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the search.")
@click.option("--no-retrain", is_flag=True, help="Skip retraining the winner on the test split.")
@click.option(
    "--no-default",
    is_flag=True,
    help="Do not open with the model's scikit-learn default (tried first on a dataset with no "
    "runs of the model).",
)
@click.option(
    "--objective",
    default=None,
    metavar="MODULE:FUNCTION",
    help="Your own training function, config dict -> metrics dict (docs/objectives.md), "
    "instead of the built-in trainer; needs one --model (any name) and --space or "
    "--candidates. The working directory is importable.",
)
@random_every_option
@warm_start_option
@click.option(
    "--prune",
    is_flag=True,
    help="Stop trials whose learning curve gives them little chance of beating the best "
    "(a curve model learnt from the warehouse's curves of the model; docs/pruning.md). The "
    "zoo reports steps for mlp (epochs) and hist_gradient_boosting (10 iterations), also "
    "in a search across families; an --objective reports through its second argument.",
)
@click.option(
    "--prune-threshold",
    type=float,
    default=0.05,
    show_default=True,
    help="With --prune: stop a trial once P(it beats the best) falls below this.",
)
@click.option(
    "--budget-steps",
    type=int,
    default=None,
    help="With --prune: the steps of a full trial (default: a zoo config's max_iter, else "
    "the largest step of the model's finished curves).",
)
@click.option("--quiet", "-q", is_flag=True, help="No live table.")
@wait_option
@output_option
@click.pass_context
def optimize_cmd(
    ctx: click.Context,
    dataset: str,
    model: tuple[str, ...],
    trials: int,
    space: str | None,
    candidates: str | None,
    acquisition: str,
    cost_aware: bool,
    jobs: int,
    executor: str | None,
    metric: str | None,
    method: str,
    learner: str | None,
    refit: bool,
    refit_every: int,
    cv: int,
    seed: int,
    no_retrain: bool,
    no_default: bool,
    objective: str | None,
    random_every: int,
    warm_start: int,
    prune: bool,
    prune_threshold: float,
    budget_steps: int | None,
    quiet: bool,
    wait: float,
    fmt: str,
) -> None:
    """Recommend, train, log and learn in a loop; then retrain and test the winner.

    Trials cross-validate on a training split (the test split stays unseen until the winner
    is tested once); the best value and the winner are this search's own trials. Sweep and
    imported runs are the learner's history, scored on other rows, so they are not
    compared with them. Without --model (or with several) the search spans the model
    families and their own spaces together; the live table shows each trial's family.
    Several optimize processes on one dataset and model share --trials: each trial is
    claimed in the warehouse, no config runs twice.

    \b
    Example:
      metaopt optimize --dataset wine --model svc --trials 30
      metaopt optimize --dataset wine --trials 30 --method map
      metaopt optimize -d wine -m svc -m random_forest -m mlp --trials 20
      metaopt optimize -d wine -m hist_gradient_boosting -t 40 --jobs 2 --cost-aware
      metaopt optimize -d wine -m svc --executor dask://127.0.0.1:8786 --jobs 4
      metaopt optimize -d churn -m my_xgb --objective train:objective --space xgb.yaml -t 20
      metaopt optimize -d wine -m mlp --trials 30 --prune

    With --objective, your function trains each config and returns its metrics (plus, if it
    likes, duration_s, cpu_s, peak_mem_mb and arch.NAME keys); the dataset is a name for
    your data (registering it gives the learner its meta-features) and nothing is retrained
    at the end.
    """
    from metaopt_bayes.pruning import check_budget, check_threshold
    from warehouse.errors import ValidationError

    if space is not None and candidates is not None:
        raise ValidationError("give --space or --candidates, not both")
    check_threshold(prune_threshold)
    check_budget(budget_steps, "--budget-steps")
    if len(model) != 1 and (space is not None or candidates is not None):
        raise ValidationError("--space and --candidates need exactly one --model")
    if learner is not None and len(model) != 1:
        raise ValidationError("--learner names one model family's learner; give one --model")
    fn = None
    if objective is not None:
        if len(model) != 1:
            raise ValidationError("--objective needs exactly one --model (a name for your model)")
        if space is None and candidates is None:
            raise ValidationError("--objective needs --space (or --candidates) to search")
        fn = load_objective(objective)
    families = model[0] if len(model) == 1 else (list(model) or None)
    acq_name = "cost-ei" if cost_aware else acquisition
    with open_warehouse(ctx, must_exist=fn is None, busy_timeout=wait) as wh:
        chosen = None
        if learner is not None:
            from metaopt_bayes.reuse import load_recorded

            chosen = load_recorded(wh, learner, metric, model[0])
            click.echo(chosen.reuse_note, err=True)
        res = _run_optimize(
            wh,
            dataset,
            families,
            trials,
            space=space,
            candidates=candidates,
            acquisition=acq_name,
            executor=executor,
            jobs=jobs,
            metric=metric,
            method=method,
            refit_every=refit_every,
            seed=seed,
            cv=cv,
            retrain=not no_retrain,
            live=not quiet and fmt == "table",
            default_first=not no_default,
            learner=chosen,
            reuse=not refit,
            objective=fn,
            random_every=random_every,
            warm_start=warm_start,
            prune=prune,
            prune_threshold=prune_threshold,
            budget_steps=budget_steps,
        )
    note = getattr(res.learner, "reuse_note", None)
    if note and chosen is None:  # the learner the last trials were proposed with
        click.echo(note, err=True)
    if res.interrupted:
        click.secho(
            f"interrupted: {len(res.trials)} trials are logged; run the same command again "
            "to resume",
            fg="yellow",
            err=True,
        )
    what = model[0] if len(model) == 1 else ", ".join(model) or "all model families"
    emit(_summary(res), fmt, title=f"optimize: {what} on {dataset}")
    if res.interrupted:
        ctx.exit(130)  # the shell's convention for Ctrl-C
    if res.best_value is None and len(res.trials):
        raise click.ClickException(
            f"every one of the {len(res.trials)} trials failed; their errors are in `metaopt "
            f"runs --dataset {dataset}`"
        )


def _summary(res: Any) -> dict[str, Any]:
    return {
        "dataset": res.dataset,
        "model": res.model,
        "metric": res.metric,
        "trials": len(res.trials),
        "new_trials": res.n_new,
        "pruned_trials": int((res.trials["status"] == "pruned").sum()) if len(res.trials) else 0,
        "best_value": res.best_value,
        "best_config": res.best_config,
        "test_metrics": {k: round(v, 5) for k, v in res.test_metrics.items()},
        "model_path": str(res.model_path) if res.model_path else None,
    }


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------
DEMO_HISTORY = ("iris", "wine", "digits")
DEMO_TARGET = "breast_cancer"
DEMO_MODEL = "svc"


@main.command("demo")
@model_option("Model family.", default=DEMO_MODEL, show_default=True)
@renamed_option(
    "--sweep-trials",
    "n_sweep",
    old=("--sweep",),
    type=int,
    default=12,
    show_default=True,
    help="Trials to sweep on each history dataset.",
)
@trials_option(12, "Trials to optimize on the held-out dataset.", old=("--budget", "-b"))
@method_option("Meta-model (learner) fit method.")
@click.option("--jobs", "-j", type=int, default=2, show_default=True, help="Parallel trials.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sweeps and search.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or live table.")
@output_option
@click.pass_context
def demo_cmd(
    ctx: click.Context,
    model: str,
    n_sweep: int,
    trials: int,
    method: str,
    jobs: int,
    seed: int,
    quiet: bool,
    fmt: str,
) -> None:
    """The whole loop on scikit-learn's bundled datasets, in a few minutes.

    Registers iris, wine and digits, sweeps a few configs of the model on each, fits the
    meta-model (learner), then optimizes breast_cancer (held out: it has no history), retrains the
    winner and compares it with the model's default configuration on a held-out test split.
    Re-running it reuses what the warehouse already holds.

    \b
    Example:
      metaopt --db demo.duckdb demo
      metaopt demo --model random_forest --trials 15 --format json
    """
    from metaopt_bayes.model import MetaLearner
    from metaopt_bayes.sweeps import sweep
    from metaopt_bayes.zoo import get_family
    from warehouse.errors import ValidationError

    # everything the demo could refuse is refused before it registers or trains anything
    family = get_family(model)
    if not family.supports("classification"):
        raise ValidationError(f"model {model!r} does not support classification")
    sweep_flag = flag_used("n_sweep", "--sweep-trials")
    for flag, value in (
        (sweep_flag, n_sweep),
        (flag_used("trials", "--trials"), trials),
        ("--jobs", jobs),
    ):
        if value < 1:
            raise ValidationError(f"{flag} must be a positive integer, not {value}")
    t_start = time.perf_counter()
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    with open_warehouse(ctx) as wh:
        have = set(wh.dataset_names())
        for name in (*DEMO_HISTORY, DEMO_TARGET):
            if name not in have:
                wh.register_dataset(name, f"sklearn:{name}", "target")
        say(f"[1/4] history: {n_sweep} configs of {model} on {', '.join(DEMO_HISTORY)}")
        for name in DEMO_HISTORY:
            n_have = wh.count_runs(dataset=name, model=model)
            if n_have < n_sweep:
                sweep(
                    wh,
                    name,
                    model,
                    n_sweep - n_have,
                    jobs=jobs,
                    seed=seed,
                    progress=not quiet,
                    cv=3,
                )
        say(f"[2/4] fitting the meta-model (learner, {method}) on {len(DEMO_HISTORY)} datasets")
        t0 = time.perf_counter()
        lrn = MetaLearner("accuracy", model=model, direction="maximize", method=method)
        lrn.fit(wh, exclude=[DEMO_TARGET])
        fit_s = time.perf_counter() - t0
        say(f"      fitted in {fit_s:.1f}s")
        say(f"[3/4] optimizing {DEMO_TARGET} (held out, zero-shot start), {trials} trials")
        res = _run_optimize(
            wh,
            DEMO_TARGET,
            model,
            trials,
            space=None,
            candidates=None,
            acquisition="ei",
            executor=None,
            jobs=jobs,
            metric="accuracy",
            method=method,
            refit_every=0,
            seed=seed,
            cv=3,
            retrain=True,
            live=not quiet and fmt == "table",
            learner=lrn,
        )
        say("[4/4] default configuration on the same train/test split")
        default = _default_vs_found(wh, res, model, seed)
    default["seconds"] = round(time.perf_counter() - t_start, 1)
    emit(
        _readable_settings(default["table"]) if fmt == "table" else default["table"],
        fmt,
        title=(
            f"{model} on {DEMO_TARGET}: default vs metaopt ({len(res.trials)} trials, "
            f"{default['seconds']}s)"
        ),
    )
    if fmt == "table":
        click.echo(_verdict(default["table"]))
    if res.model_path and fmt == "table":
        click.echo(
            f"winner saved to {res.model_path} (a joblib pickle: load it with "
            "metaopt_bayes.load_winner, which checks its .sha256 first)"
        )


def _readable_settings(table: Any) -> Any:
    """The demo table with its JSON settings as ``name=value`` text (4 significant digits) and
    without empty columns (no log loss for a model without probabilities), so that it reads in
    a terminal; ``--format json``/``csv`` keep the JSON and every column."""
    out = table.dropna(axis=1, how="all").copy()
    out["settings"] = [
        config_text(json.loads(s), width=10_000) or "(none set)" for s in out["settings"]
    ]
    return out


def _verdict(table: Any) -> str:
    """One line on the demo's table (row 0 the default, row 1 metaopt's winner)."""
    d, w = table.iloc[0], table.iloc[1]
    gain = 100.0 * (float(w["cv_accuracy"]) - float(d["cv_accuracy"]))
    test = f"test accuracy {w['test_accuracy']:.3f} vs {d['test_accuracy']:.3f}"
    if gain > 1e-9:
        return f"metaopt's winner beats the default by {gain:.1f} CV accuracy points ({test})"
    if gain > -1e-9:
        return (
            "no trial beat scikit-learn's default in cross-validation (optimize tries it "
            f"first); {test}"
        )
    return f"the default is {-gain:.1f} CV accuracy points better than every trial ({test})"


def _default_vs_found(wh: WarehouseLike, res: Any, model: str, seed: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from metaopt_bayes import trainer
    from metaopt_bayes.trials import fit_and_test, train_test_indices

    X, y, task = trainer.load_dataset(wh, res.dataset)
    y = np.asarray(y)
    tr, te = train_test_indices(y, task, 0.25, seed)
    _, default_metrics, _ = fit_and_test(X, y, task, model, {}, tr, te, seed)
    default_cv = trainer.evaluate(
        X.iloc[tr].reset_index(drop=True), y[tr], task, model, {}, cv=3, seed=seed
    )
    rows = [
        {
            "config": "default (scikit-learn)",
            "settings": "{}",
            "cv_accuracy": default_cv.get("accuracy"),
            "test_accuracy": default_metrics.get("accuracy"),
            "test_log_loss": default_metrics.get("log_loss"),
        },
        {
            "config": "metaopt winner",
            "settings": json.dumps(
                {k: v for k, v in (res.best_config or {}).items() if v is not None}, default=str
            ),
            "cv_accuracy": res.best_value,
            "test_accuracy": res.test_metrics.get("accuracy"),
            "test_log_loss": res.test_metrics.get("log_loss"),
        },
    ]
    return {"table": pd.DataFrame(rows)}

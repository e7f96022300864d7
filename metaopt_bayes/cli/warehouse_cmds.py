"""Warehouse commands: init, ingest, sql, views, runs, check, example."""

from __future__ import annotations

import click

from metaopt_bayes.cli._common import (
    dataset_option,
    emit,
    main,
    model_option,
    open_reader,
    open_warehouse,
    output_option,
)
from warehouse import sources
from warehouse.protocol import WarehouseLike
from warehouse.sqlfiles import DIALECTS


@main.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the warehouse file (or migrate an existing one) and print its schema version.

    \b
    Example:
      metaopt --db runs.duckdb init
    """
    with open_warehouse(ctx) as wh:
        click.echo(f"warehouse {wh.path} ready (schema version {wh.schema_version})")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--curves",
    "curves",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also load learning-curve points from this CSV/Parquet file (run_id, metric, step, "
    "value[, elapsed_s], or MLflow's run_id, key, value, step, timestamp), in the same "
    "transaction; without FILE, points of runs already in the warehouse.",
)
@click.pass_context
def ingest(ctx: click.Context, file: str | None, curves: str | None) -> None:
    """Load runs from a CSV or Parquet file in the MLflow layout, all or nothing.

    Columns: dataset, model, params.<name>, metrics.<name>, optional arch.<name>, run_id,
    status (finished, failed, running or pruned), started_at, duration_s, cpu_s, peak_mem_mb,
    source. Loading a file again adds only the rows it did not have before: without a run_id
    column a row is named by its content (so an edited row is a new run). Without a source
    column the runs' source is ingest:<the file's absolute path>, printed at the end
    (`metaopt runs delete --source …` takes the file's runs out again). --curves loads
    the runs' learning curves with them (their rows name runs by run_id: the file's own or
    runs already logged); a point is stored once, so loading the same curves again is
    refused.

    \b
    Example:
      metaopt ingest runs.csv
      metaopt ingest runs.csv --curves curves.parquet
      metaopt ingest --curves more_steps.csv
    """
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from warehouse.ingest import file_source, ingest_file

    if file is None and curves is None:
        raise click.UsageError("give a FILE of runs, --curves FILE, or both")
    with (
        open_warehouse(ctx) as wh,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            transient=True,
            disable=None,
        ) as progress,
    ):
        progress.add_task(escape(f"ingesting {file or curves}"), total=None)
        if file is None:
            points = wh.log_curves(curves)
            click.echo(f"ingested {points} curve points from {curves}")
            return
        before = _known_names(wh)
        count = "SELECT count(*) AS n FROM run_curves"
        stored = int(wh.sql(count).n[0]) if curves is not None else 0
        n, present = ingest_file(wh, file, curves=curves)
        points = int(wh.sql(count).n[0]) - stored if curves is not None else 0
        after = _known_names(wh)
    again = f"; {present} already in the warehouse, skipped" if present else ""
    click.echo(f"ingested {n} runs from {file} (source {file_source(file)}{again})")
    if curves is not None:
        click.echo(f"ingested {points} curve points from {curves}")
    new = {kind: after[kind] - before[kind] for kind in after}
    for kind, added in new.items():  # a typo in a name shows up here, not months later
        if added:
            shown = ", ".join(sorted(map(str, added))[:10]) + (" …" if len(added) > 10 else "")
            click.echo(f"new {kind}{'s' if len(added) > 1 else ''}: {shown}", err=True)


def _known_names(wh: WarehouseLike) -> dict[str, set[str]]:
    """Dataset names (registered or with runs) and model families with runs."""
    return {"dataset": set(wh.dataset_names()), "model": set(wh.model_names())}


@main.command("sql")
@click.argument("query")
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default=None,
    help="Print the query transpiled to this SQL dialect instead of running it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop the query after this many seconds (default $METAOPT_QUERY_TIMEOUT, else 300; "
    "0 = no limit).",
)
@output_option
@click.pass_context
def sql_cmd(
    ctx: click.Context, query: str, dialect: str | None, timeout: float | None, fmt: str
) -> None:
    """Run one read-only SQL query (SELECT/WITH/UNION/VALUES/DESCRIBE/SUMMARIZE).

    Ctrl-C stops a running query; --timeout bounds it.

    \b
    Example:
      metaopt sql "SELECT model, count(*) AS n FROM runs GROUP BY model"
      metaopt sql --timeout 10 "SELECT count(*) FROM run_features"
      metaopt sql --dialect spark "SELECT * FROM incumbents"
    """
    if dialect:
        from warehouse.sqlfiles import transpile

        click.echo(transpile(query, dialect))
        return
    try:
        with open_reader(ctx) as wh:
            emit(wh.sql(query, timeout=timeout), fmt)
    except KeyboardInterrupt:  # the query was interrupted and the file let go: one line
        click.secho("Error: query interrupted (Ctrl-C)", fg="red", err=True)
        ctx.exit(130)


@main.command()
@click.argument("name", required=False)
@click.option("--sql", "show_sql", is_flag=True, help="Print the view definitions instead.")
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default=None,
    help="With --sql: transpile the definitions to this dialect.",
)
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to show of NAME.")
@output_option
@click.pass_context
def views(
    ctx: click.Context, name: str | None, show_sql: bool, dialect: str | None, limit: int, fmt: str
) -> None:
    """List the SQL views, show one view's rows, or print their SQL (optionally transpiled).

    \b
    Example:
      metaopt views
      metaopt views incumbents --format csv
      metaopt views --sql --dialect trino incumbents
    """
    from warehouse import sqlfiles

    if show_sql or dialect:
        names = [name] if name else sqlfiles.view_names()
        for view_name in names:
            text = sqlfiles.view_sql(view_name)
            click.echo(sqlfiles.transpile(text, dialect) if dialect else text.rstrip() + ";")
            click.echo()
        return
    if name is None:
        from warehouse.query import list_views

        emit(list_views(), fmt)
        return
    with open_reader(ctx) as wh:
        df = wh.view(name)
        emit(df.head(limit) if limit >= 0 else df, fmt, title=name)


@main.group(invoke_without_command=True)
@dataset_option("Only runs on this dataset.", default=None)
@model_option("Only runs of this model family.", default=None)
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs.")
@click.option(
    "--curves",
    "show_curves",
    is_flag=True,
    help="Print the learning-curve points of these runs instead (run_id, dataset, model, "
    "status, metric, step, elapsed_s, value).",
)
@output_option
@click.pass_context
def runs(
    ctx: click.Context,
    dataset: str | None,
    model: str | None,
    limit: int,
    show_curves: bool,
    fmt: str,
) -> None:
    """Show the most recently logged runs, newest first (`runs delete` removes runs).

    --curves prints the curve points of the same runs, oldest run first.

    \b
    Example:
      metaopt runs --dataset iris --limit 5
      metaopt runs --dataset iris --limit 3 --curves --format csv
      metaopt runs delete --source ingest:/data/runs.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    with open_reader(ctx) as wh:
        chosen = wh.runs(dataset=dataset, model=model, limit=limit)
        if show_curves:
            emit(wh.curves(run_ids=chosen["run_id"].tolist()), fmt)
        else:
            emit(chosen, fmt)


@runs.command("delete")
@click.argument("run_ids", nargs=-1)
@dataset_option("Runs on this dataset.", default=None)
@model_option("Runs of this model family.", default=None)
@click.option(
    "--source",
    default=None,
    help="Runs from this source (e.g. metaopt:sweep, metaopt:optimize, ingest:/data/runs.csv).",
)
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@click.pass_context
def runs_delete(
    ctx: click.Context,
    run_ids: tuple[str, ...],
    dataset: str | None,
    model: str | None,
    source: str | None,
    yes: bool,
) -> None:
    """Delete runs, with their parameters and metrics: by id, or every run matching all of
    --dataset, --model and --source. Says how many and asks first; all or nothing.

    \b
    Example:
      metaopt runs delete 3f2a9c1e2b4d
      metaopt runs delete --source ingest:/data/runs.csv --yes   # what one file brought
    """
    if source in sources.OLD_SPELLINGS:  # a script written before the sources were renamed
        click.echo(f"source {source!r} is now {sources.OLD_SPELLINGS[source]!r}", err=True)
        source = sources.OLD_SPELLINGS[source]
    kw = {"dataset": dataset, "model": model, "source": source}
    ids = list(run_ids) or None
    with open_warehouse(ctx, must_exist=True) as wh:
        doomed = wh.delete_runs(ids, dry_run=True, **kw)
        if not doomed:
            click.echo("no run matches; nothing deleted")
            return
        if not yes:
            click.confirm(f"delete {len(doomed)} run(s)?", abort=True, err=True)
        gone = wh.delete_runs(ids, **kw)
    click.echo(f"deleted {len(gone)} run(s)")


@main.command()
@output_option
@click.pass_context
def check(ctx: click.Context, fmt: str) -> None:
    """Run the data audits (queries that must return zero rows); exit 1 if any fails.

    \b
    Example:
      metaopt check
    """
    with open_reader(ctx) as wh:
        report = wh.check()
    emit(report[["audit", "failing_rows", "ok", "example"]], fmt)
    failed = report.loc[~report["ok"]]
    for row in failed.itertuples():
        click.echo(f"{row.failing_rows} failing row(s) in {row.description}", err=True)
    if len(failed):
        raise click.ClickException(f"audits failed: {', '.join(failed['audit'])}")


# ---------------------------------------------------------------------------- example history
#: The example grid: model family → (scikit-learn estimator path, parameter grid).
EXAMPLE_GRID: dict[str, tuple[str, list[dict[str, object]]]] = {
    "decision_tree": (
        "sklearn.tree.DecisionTreeClassifier",
        [{"max_depth": d, "criterion": c} for d in (1, 2, 3, 5, 8) for c in ("gini", "entropy")],
    ),
    "knn": (
        "sklearn.neighbors.KNeighborsClassifier",
        [{"n_neighbors": k, "weights": w} for k in (1, 3, 7, 15) for w in ("uniform", "distance")],
    ),
    "logistic_regression": (
        "sklearn.linear_model.LogisticRegression",
        [{"C": c, "max_iter": 1000} for c in (0.01, 0.1, 1.0, 10.0)],
    ),
}
EXAMPLE_DATASETS = ("iris", "wine", "breast_cancer")


def example_history(progress=None) -> object:  # -> pandas.DataFrame
    """Train the example grid on scikit-learn's bundled datasets with 3-fold CV and return the
    runs in the MLflow layout (accuracy and balanced accuracy, wall and CPU time measured)."""
    import importlib
    import time
    import warnings

    import numpy as np
    import pandas as pd
    import sklearn.datasets
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    total = len(EXAMPLE_DATASETS) * sum(len(g) for _, g in EXAMPLE_GRID.values())
    task = progress.add_task("training example runs", total=total) if progress else None
    for name in EXAMPLE_DATASETS:
        X, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
        cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        for family, (path, grid) in EXAMPLE_GRID.items():
            module, _, cls = path.rpartition(".")
            estimator_cls = getattr(importlib.import_module(module), cls)
            for i, params in enumerate(grid):
                estimator = estimator_cls(**params)
                if family != "decision_tree":  # distance/gradient based: standardize first
                    estimator = make_pipeline(StandardScaler(), estimator)
                wall, cpu = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scores = cross_validate(
                        estimator,
                        X,
                        y,
                        cv=cv,
                        scoring=("accuracy", "balanced_accuracy"),
                    )
                row = {
                    "run_id": f"ex-{name}-{family}-{i}",
                    "dataset": name,
                    "model": family,
                    "duration_s": time.perf_counter() - wall,
                    "cpu_s": time.process_time() - cpu,
                    "seed": 0,
                    "source": sources.EXAMPLE,
                    "metrics.accuracy": float(np.mean(scores["test_accuracy"])),
                    "metrics.balanced_accuracy": float(np.mean(scores["test_balanced_accuracy"])),
                }
                row.update({f"params.{k}": v for k, v in params.items()})
                rows.append(row)
                if progress:
                    progress.advance(task)
    return pd.DataFrame(rows)


@main.command()
@output_option
@click.pass_context
def example(ctx: click.Context, fmt: str) -> None:
    """Load a small real example history (3 sklearn datasets x 3 model families) and show it.

    Registers iris, wine and breast_cancer with their meta-features, trains 66 small
    configurations with 3-fold cross-validation, logs them, and prints the leaderboard.
    Running it again reuses what is already there.

    \b
    Example:
      metaopt example
      metaopt sql "SELECT * FROM incumbents WHERE metric = 'accuracy'"
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with open_warehouse(ctx) as wh:
        for name in EXAMPLE_DATASETS:
            try:
                wh.register_dataset(name, f"sklearn:{name}", target="target")
            except ImportError:  # the datasets module is not installed: runs still load
                break
        have = wh.count_runs(source=sources.EXAMPLE)
        if int(have) == 0:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
            ) as progress:
                history = example_history(progress)
            n = wh.log_runs(history)
            click.echo(f"logged {n} example runs into {wh.path}", err=True)
        else:
            click.echo(f"example history already in {wh.path} ({int(have)} runs)", err=True)
        board = wh.view("leaderboard", metric="accuracy")
        emit(
            board[["dataset", "rank", "model", "value", "run_id", "n_runs"]],
            fmt,
            title="leaderboard (accuracy)",
        )

"""Warehouse commands: init, ingest, sql, views, runs, check, example."""

from __future__ import annotations

import click

from metaopt_bayes.cli._common import emit, main, open_warehouse, output_option

_DIALECTS = (
    "duckdb",
    "spark",
    "databricks",
    "postgres",
    "trino",
    "presto",
    "bigquery",
    "snowflake",
    "sqlite",
    "mysql",
    "clickhouse",
)


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
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def ingest(ctx: click.Context, file: str) -> None:
    """Load runs from a CSV or Parquet file in the MLflow layout, all or nothing.

    Columns: dataset, model, params.<name>, metrics.<name>, optional arch.<name>, run_id,
    status, started_at, duration_s, cpu_s, peak_mem_mb.

    \b
    Example:
      metaopt ingest runs.csv
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
        progress.add_task(f"ingesting {file}", total=None)
        n = wh.log_runs(file)
    click.echo(f"ingested {n} runs from {file}")


@main.command("sql")
@click.argument("query")
@click.option(
    "--dialect",
    type=click.Choice(_DIALECTS),
    default=None,
    help="Print the query transpiled to this SQL dialect instead of running it.",
)
@output_option
@click.pass_context
def sql_cmd(ctx: click.Context, query: str, dialect: str | None, fmt: str) -> None:
    """Run one read-only SQL query (SELECT/WITH/UNION/VALUES/DESCRIBE) on the warehouse.

    \b
    Example:
      metaopt sql "SELECT model, count(*) AS n FROM runs GROUP BY model"
      metaopt sql --dialect spark "SELECT * FROM incumbents"
    """
    if dialect:
        from warehouse.sqlfiles import transpile

        click.echo(transpile(query, dialect))
        return
    with open_warehouse(ctx, read_only=_exists(ctx)) as wh:
        emit(wh.sql(query), fmt)


@main.command()
@click.argument("name", required=False)
@click.option("--sql", "show_sql", is_flag=True, help="Print the view definitions instead.")
@click.option(
    "--dialect",
    type=click.Choice(_DIALECTS),
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
    with open_warehouse(ctx, read_only=_exists(ctx)) as wh:
        df = wh.view(name)
        emit(df.head(limit) if limit >= 0 else df, fmt, title=name)


@main.command()
@click.option("--dataset", default=None, help="Only runs on this dataset.")
@click.option("--model", default=None, help="Only runs of this model family.")
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs.")
@output_option
@click.pass_context
def runs(ctx: click.Context, dataset: str | None, model: str | None, limit: int, fmt: str) -> None:
    """Show the most recently logged runs, newest first.

    \b
    Example:
      metaopt runs --dataset iris --limit 5
    """
    with open_warehouse(ctx, read_only=_exists(ctx)) as wh:
        emit(wh.runs(dataset=dataset, model=model, limit=limit), fmt)


@main.command()
@output_option
@click.pass_context
def check(ctx: click.Context, fmt: str) -> None:
    """Run the data audits (queries that must return zero rows); exit 1 if any fails.

    \b
    Example:
      metaopt check
    """
    with open_warehouse(ctx, read_only=_exists(ctx)) as wh:
        report = wh.check()
    emit(report[["audit", "failing_rows", "ok"]], fmt)
    if not report["ok"].all():
        bad = ", ".join(report.loc[~report["ok"], "audit"])
        raise click.ClickException(f"audits failed: {bad}")


def _exists(ctx: click.Context) -> bool:
    """Read-only when the file already exists (so several readers can share it)."""
    from warehouse.store import MEMORY, resolve_path

    path = resolve_path(ctx.obj.get("db"))
    if path == MEMORY:
        return False
    from pathlib import Path

    return Path(path).exists()

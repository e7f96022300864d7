"""Import/export commands: import mlflow, import optuna, export, report."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import click

from metaopt_bayes.cli._common import (
    dataset_option,
    emit,
    learner_option,
    main,
    method_option,
    model_option,
    open_reader,
    open_warehouse,
    output_option,
)
from warehouse.sqlfiles import DIALECTS


@contextmanager
def _spinner(description: str) -> Any:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        disable=None,
    ) as progress:
        progress.add_task(description, total=None)
        yield progress


@main.group("import")
def import_group() -> None:
    """Import run history from MLflow or Optuna (idempotent: re-importing adds nothing,
    so runs imported under a wrong --dataset or --model stay under those names).

    \b
    Example:
      metaopt import mlflow --tracking-uri sqlite:///mlflow.db
      metaopt import optuna --storage sqlite:///optuna.db --study s1 --dataset iris --model mlp
    """


@import_group.command("mlflow")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store: a local mlruns folder, a SQLite .db file or a tracking URI "
    "(default: $MLFLOW_TRACKING_URI, else MLflow's default).",
)
@click.option(
    "--experiment",
    "experiments",
    multiple=True,
    help="Experiment name to import (repeatable; default: all active experiments).",
)
@dataset_option("Dataset name for every run (overrides tags).", default=None)
@model_option("Model family for every run (overrides tags).", default=None)
@click.option(
    "--dataset-tag",
    default="dataset",
    show_default=True,
    help="Tag (or parameter) holding the dataset name; fallback: the experiment name.",
)
@click.option(
    "--model-tag",
    default="model",
    show_default=True,
    help="Tag (or parameter) holding the model family.",
)
@click.option(
    "--tag",
    "include_tags",
    multiple=True,
    help="Also store this run tag as parameter tag.<name> (repeatable).",
)
@output_option
@click.pass_context
def import_mlflow_cmd(
    ctx: click.Context,
    tracking_uri: str | None,
    experiments: tuple[str, ...],
    dataset: str | None,
    model: str | None,
    dataset_tag: str,
    model_tag: str,
    include_tags: tuple[str, ...],
    fmt: str,
) -> None:
    """Import runs, params, metrics and durations from an MLflow tracking store.

    \b
    Example:
      metaopt import mlflow --tracking-uri ./mlruns --experiment iris-sweep
      metaopt import mlflow --tracking-uri mlflow.db --model-tag mlflow.runName
    """
    from warehouse.importers import import_mlflow

    with open_warehouse(ctx) as wh, _spinner("importing MLflow runs"):
        result = import_mlflow(
            wh,
            tracking_uri,
            experiments=list(experiments) or None,
            dataset=dataset,
            model=model,
            dataset_tag=dataset_tag,
            model_tag=model_tag,
            include_tags=include_tags,
        )
    emit(result.as_dict(), fmt)


@import_group.command("optuna")
@click.option("--storage", required=True, help="Optuna storage URL, e.g. sqlite:///optuna.db.")
@click.option("--study", required=True, help="Study name.")
@dataset_option("Dataset the study tuned on.", required=True)
@model_option("Model family the study tuned.", required=True)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Metric name for the objective (repeat for multi-objective; default value / "
    "value_0, value_1, …). Its direction is the study's.",
)
@click.option(
    "--as",
    "name",
    default=None,
    help="Name the runs optuna:NAME:<trial> (default: the study's name); for a study whose "
    "name another storage's study already used.",
)
@output_option
@click.pass_context
def import_optuna_cmd(
    ctx: click.Context,
    storage: str,
    study: str,
    dataset: str,
    model: str,
    metrics: tuple[str, ...],
    name: str | None,
    fmt: str,
) -> None:
    """Import the trials of an Optuna study (parameters, values, durations, states).

    \b
    Example:
      metaopt import optuna --storage sqlite:///optuna.db --study s1 \\
          --dataset iris --model mlp --metric accuracy
    """
    from warehouse.importers import import_optuna

    metric: str | list[str] | None = None
    if len(metrics) == 1:
        metric = metrics[0]
    elif metrics:
        metric = list(metrics)
    with open_warehouse(ctx) as wh, _spinner("importing Optuna trials"):
        result = import_optuna(
            wh, storage, study, dataset=dataset, model=model, metric=metric, name=name
        )
    emit(result.as_dict(), fmt)


@main.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    default="spark",
    show_default=True,
    help="SQL dialect for the exported views (views/<name>.sql).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace DIRECTORY if it holds an earlier metaopt export (never any other folder).",
)
@output_option
@click.pass_context
def export_cmd(ctx: click.Context, directory: str, dialect: str, overwrite: bool, fmt: str) -> None:
    """Write runs, params, metrics, datasets and meta-features as Parquet plus the views' SQL.

    Tables are partitioned by dataset (Hive layout: runs/dataset=<name>/…), readable by
    Spark, Trino, DuckDB or pandas.

    \b
    Example:
      metaopt export ./metaopt-export --dialect trino
    """
    import pandas as pd

    from warehouse.export import export_warehouse

    with open_reader(ctx) as wh, _spinner(f"exporting to {directory}"):
        counts = export_warehouse(wh, directory, dialect=dialect, overwrite=overwrite)
    emit(pd.DataFrame({"table": list(counts), "rows": list(counts.values())}), fmt)


@main.command("report")
@dataset_option("Target dataset (default: the one with most runs).", default=None)
@model_option("Model family (default: the one with most runs).", default=None)
@click.option("--metric", default="accuracy", show_default=True, help="Metric to model.")
@method_option("Meta-model (learner) inference (map is fast but over-confident on few runs).")
@click.option("--draws", type=int, default=None, help="Posterior draws per chain (nuts).")
@learner_option(
    "A recorded meta-model (learner): its id or its file (default: the newest recorded fit of "
    "the other datasets with these settings while they are unchanged, else a fit now)."
)
@click.option("--refit", is_flag=True, help="Fit the learner afresh instead of reusing one.")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="HTML file to write.",
)
@click.pass_context
def report_cmd(
    ctx: click.Context,
    dataset: str | None,
    model: str | None,
    metric: str,
    method: str,
    draws: int | None,
    learner: str | None,
    refit: bool,
    folds: int,
    output: str,
) -> None:
    """Write one self-contained HTML report: calibration, trace, parameter effects, neighbours.

    \b
    Example:
      metaopt report --dataset iris --model mlp -o iris.html
      metaopt report --method map -o quick.html
    """
    from metaopt_bayes.report import collect, write_html

    config = {} if draws is None else {"draws": draws, "tune": draws}
    # read-only, so readers share the file: a recorded learner of unchanged data is reused,
    # one fitted here serves this report only
    with open_reader(ctx) as wh, _spinner("fitting and plotting"):
        data = collect(
            wh,
            dataset=dataset,
            model=model,
            metric=metric,
            method=method,
            folds=folds,
            learner=learner,
            refit=refit,
            **config,
        )
        path = write_html(data, output)
    if data.learner_note:
        click.echo(data.learner_note, err=True)
    click.echo(f"wrote {path}")

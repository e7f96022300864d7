"""Meta-model (learner) commands: fit, predict, learners, diagnose."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from metaopt_bayes.cli._common import (
    dataset_option,
    describe_model,
    emit,
    find_learner,
    learner_option,
    main,
    method_option,
    model_option,
    open_warehouse,
    output_option,
    require_dataset,
)
from warehouse.errors import NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike

_MODEL_COLUMNS = (
    "model_id, created_at, metric, model_family, method, status, n_runs, n_datasets, "
    "max_rhat, min_ess, n_divergences, fit_s, compile_s, path"
)


def _models_dir(ctx: click.Context) -> Path:
    db = ctx.obj.get("db") or os.environ.get("METAOPT_DB") or "metaopt.duckdb"
    base = Path.cwd() if db == ":memory:" else Path(db).resolve().parent
    return base / "metaopt_models"


def _predict_learner(
    wh: WarehouseLike,
    learner: str | None,
    metric: str | None,
    model: str | None,
    dataset: str,
    method: str | None,
    refit: bool,
) -> Any:
    """The fit ``learner`` names (id or file), else the newest recorded fit for ``metric`` (and
    ``model``) of ``method`` (None: any settings) whose datasets other than ``dataset`` are
    unchanged, else a fit now (NUTS unless ``method``), recorded
    (:func:`metaopt_bayes.reuse.learner_for`)."""
    from metaopt_bayes.reuse import learner_for

    if not learner and not metric:
        raise ValidationError("give --learner, or --metric to use the newest learner for it")
    return learner_for(
        wh,
        str(metric or ""),
        model,
        dataset=dataset,
        method=method if method or not refit else "nuts",
        refit=refit,
        learner=learner,
    )


def _load_model(wh: WarehouseLike, learner: str | None, metric: str | None, model: str | None):
    """A saved meta-model (learner) by id or file, else the newest one for ``metric`` (and
    ``model``)."""
    from metaopt_bayes.model import MetaLearner

    if learner:
        path, row = find_learner(wh, learner)
    else:
        if not metric:
            raise ValidationError("give --learner, or --metric to use the newest learner for it")
        rows = wh.meta_models(metric, model_family=model or None, saved_only=True).head(1)
        if rows.empty:
            raise NotFoundError(f"no fitted meta-model for metric {metric!r}; run `metaopt fit`")
        row = next(rows.itertuples(index=False))
        path = row.path
    ml = MetaLearner.load(path, warehouse=wh, metric=metric, model=model)
    if row is not None:
        ml.model_id = str(row.model_id)
    if not learner:  # the newest fit was chosen: the command says which, after its answer
        ml.cli_note = describe_model(row)
    return ml


@main.command("fit")
@click.option("--metric", required=True, help="Metric to model (e.g. accuracy, duration_s).")
@model_option("Model family (required if the warehouse holds several).", default=None)
@method_option("Inference method.")
@click.option(
    "--direction",
    type=click.Choice(["maximize", "minimize"]),
    default=None,
    help="Metric direction (default: inferred from its name).",
)
@click.option("--draws", type=int, default=None, help="Posterior draws per chain.")
@click.option("--tune", type=int, default=None, help="Tuning steps per chain (NUTS).")
@dataset_option(
    "Learn only from this dataset (repeat for several).", multiple=True, name="datasets"
)
@click.option("--exclude", multiple=True, help="Datasets to leave out.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to save the learner file (default: metaopt_models/ beside the warehouse).",
)
@output_option
@click.pass_context
def fit_cmd(
    ctx: click.Context,
    metric: str,
    model: str | None,
    method: str,
    direction: str | None,
    draws: int | None,
    tune: int | None,
    datasets: tuple[str, ...],
    exclude: tuple[str, ...],
    out: str | None,
    fmt: str,
) -> None:
    """Fit a meta-model (learner) on the warehouse, save it and record it.

    The learner is hierarchical: one model of the metric over every dataset's runs of the
    model family, sharing strength between datasets. `metaopt learners` lists the fits.

    \b
    Example:
      metaopt fit --model random_forest --metric accuracy --method map
      metaopt fit -m svc --metric accuracy --exclude wine
    """
    from rich.console import Console

    from metaopt_bayes.model import MetaLearner

    config: dict[str, Any] = {}
    if draws is not None:
        config["draws"] = draws
    if tune is not None:
        config["tune"] = tune
    if out is not None and Path(out).suffix.lower() != ".nc":
        raise ValidationError(f"--out {out!r}: a model file ends in .nc (netCDF)")
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = str(_models_dir(ctx) / f"{metric}-{model or 'all'}-{method}-{stamp}.nc")
    config["path"] = out
    ml = MetaLearner(metric, model=model, direction=direction, method=method, **config)
    with (
        open_warehouse(ctx, must_exist=True) as wh,
        Console(stderr=True).status(f"Fitting {metric} ({method}) …", spinner="dots"),
    ):
        ml.fit(wh, datasets=list(datasets) or None, exclude=list(exclude) or None)
    d = ml.diagnostics
    emit(
        {
            "model_id": ml.model_id,
            "metric": ml.metric,
            "model": ml.model,
            "method": method,
            "status": d.get("status"),
            "n_runs": d.get("n_runs"),
            "n_datasets": d.get("n_datasets"),
            "max_rhat": d.get("max_rhat"),
            "min_ess": d.get("min_ess"),
            "n_divergences": d.get("n_divergences"),
            "fit_s": d.get("fit_s"),
            "path": out,
        },
        fmt,
    )


@main.command("predict")
@dataset_option(
    "Dataset to predict on: registered, with runs or with meta-features (zero-shot).",
    required=True,
)
@click.option("--config", "config_json", default=None, help="One config as a JSON object.")
@click.option(
    "--configs",
    "configs_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Configs as CSV, Parquet or JSON (one column per parameter).",
)
@learner_option(
    "A saved meta-model (learner): its id (or a unique prefix) or its file "
    "(default: the newest for --metric).",
    old=("--model-id",),
)
@click.option("--metric", default=None, help="Use the newest learner for this metric.")
@model_option("Model family (with --metric).", default=None)
@method_option(
    "Fit method of the learner; given, only a recorded fit of it is reused (default: any "
    "recorded fit whose data are unchanged, else a NUTS fit)."
)
@click.option(
    "--refit", is_flag=True, help="Fit a learner afresh instead of reusing a recorded one."
)
@output_option
@click.pass_context
def predict_cmd(
    ctx: click.Context,
    dataset: str,
    config_json: str | None,
    configs_file: str | None,
    learner: str | None,
    metric: str | None,
    model: str | None,
    method: str,
    refit: bool,
    fmt: str,
) -> None:
    """Predict mean, sd and a 90% interval of the metric for configs on a dataset.

    The prediction is a recorded meta-model's (learner's): the one --learner names, else the
    newest fit for --metric (and --model) while the runs on other datasets are unchanged
    (the dataset's own runs enter at prediction time), else a fit made now and recorded. A
    line on stderr says which.

    \b
    Example:
      metaopt predict --metric accuracy --dataset iris --config '{"max_depth": 5}'
      metaopt predict --learner 3f2a9c1e -d iris --configs configs.csv --format csv
    """
    import pandas as pd

    if (config_json is None) == (configs_file is None):
        raise ValidationError("give exactly one of --config JSON or --configs FILE")
    if config_json is not None:
        try:
            obj = json.loads(config_json)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--config is not valid JSON ({exc.msg})") from None
        rows = obj if isinstance(obj, list) else [obj]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise ValidationError(
                "--config must be a JSON object of parameters, e.g. '{\"max_depth\": 5}'"
            )
        configs = pd.DataFrame(rows)
    else:
        from metaopt_bayes.search import load_candidates

        configs = load_candidates(configs_file)
    with open_warehouse(ctx, must_exist=True) as wh:  # a fit made now is recorded
        require_dataset(wh, dataset)
        given = ctx.get_parameter_source("method") != ParameterSource.DEFAULT
        ml = _predict_learner(wh, learner, metric, model, dataset, method if given else None, refit)
        ml.encoder.check(configs)
        pred = ml.predict(dataset, configs, warehouse=wh)
    emit(pd.concat([configs.reset_index(drop=True), pred], axis=1), fmt)
    click.echo(ml.reuse_note, err=True)


@main.command("learners")
@click.option("--metric", default=None, help="Only learners of this metric.")
@output_option
@click.pass_context
def learners_cmd(ctx: click.Context, metric: str | None, fmt: str) -> None:
    """List the fitted meta-models (learners) with their diagnostics.

    A learner predicts one metric for the configurations of a model family (the model_family
    column: what --model names in other commands) on any dataset. Its id, or a unique prefix
    of it, is what --learner and `metaopt diagnose` take (`metaopt models` is an old name of
    this command).

    \b
    Example:
      metaopt learners --metric accuracy --format json
    """
    with open_warehouse(ctx, read_only=True) as wh:
        df = wh.meta_models(metric or None)[[c.strip() for c in _MODEL_COLUMNS.split(",")]]
    if fmt == "table" and len(df):  # a unique prefix is enough for `diagnose` and `predict`
        df["model_id"] = df["model_id"].astype(str).str[:12]
    emit(df, fmt, title="meta-models (learners)")


# the command's old name, still accepted and hidden from `metaopt --help`
main.add_command(copy.copy(learners_cmd), "models")
main.commands["models"].hidden = True


@main.command("diagnose")
@click.argument("learner", metavar="LEARNER")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the PNG plots (default: beside the model file).",
)
@output_option
@click.pass_context
def diagnose_cmd(ctx: click.Context, learner: str, out_dir: str | None, fmt: str) -> None:
    """Posterior summary of a meta-model (learner), with trace and calibration plots as PNG.

    LEARNER is its id (or a unique prefix, as `metaopt learners` shows it) or its file.

    \b
    Example:
      metaopt diagnose 3f2a9c1e --out-dir plots/
    """
    from metaopt_bayes.diagnostics import diagnose

    with open_warehouse(ctx, read_only=True) as wh:
        ml = _load_model(wh, learner, None, None)
        summary, files = diagnose(ml, wh, out_dir)
    emit(summary, fmt, title=f"meta-model (learner) {learner}")
    for f in files:
        click.echo(f"wrote {f}", err=True)

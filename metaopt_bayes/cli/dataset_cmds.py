"""Dataset and training commands: datasets, datasets add, datasets show, zoo, sweep."""

from __future__ import annotations

from typing import Any

import click

from metaopt_bayes.cli._common import (
    config_text,
    cv_option,
    dataset_option,
    emit,
    flag_used,
    main,
    model_option,
    open_reader,
    open_warehouse,
    output_option,
    space_option,
    trials_option,
    wait_option,
)

TASK_CHOICE = click.Choice(["classification", "regression"])


@main.group("datasets", invoke_without_command=True)
@output_option
@click.pass_context
def datasets(ctx: click.Context, fmt: str) -> None:
    """List registered datasets with their key meta-features.

    \b
    Example:
      metaopt datasets
      metaopt datasets add sklearn:iris
      metaopt datasets show iris
    """
    if ctx.invoked_subcommand is not None:
        return
    from warehouse.datasets import list_datasets

    with open_reader(ctx) as wh:
        emit(list_datasets(wh), fmt, title="datasets")


@datasets.command("add")
@click.argument("source")
@click.option("--target", default=None, help="Target column (default for sklearn: 'target').")
@click.option("--name", default=None, help="Dataset name (default: file stem / sklearn name).")
@click.option("--task", type=TASK_CHOICE, default=None, help="Override the inferred task.")
@output_option
@click.pass_context
def datasets_add(
    ctx: click.Context,
    source: str,
    target: str | None,
    name: str | None,
    task: str | None,
    fmt: str,
) -> None:
    """Register a dataset (CSV/TSV(.gz)/Parquet file or sklearn:NAME) and its meta-features.

    \b
    Example:
      metaopt datasets add sklearn:iris
      metaopt datasets add data/heart.tsv.gz --target target --name heart
      metaopt datasets add runs.parquet --target y --task regression
    """
    from warehouse.errors import ValidationError

    if target is None:
        if not source.startswith("sklearn:"):
            raise ValidationError("--target is required for a data file")
        target = "target"
    with open_warehouse(ctx) as wh:
        info = wh.register_dataset(name, source, target, task=task)
    info = {k: v for k, v in info.items() if k != "content_hash"}
    if not info.get("created", True):
        click.echo(f"dataset {info['name']!r} is already registered with identical data", err=True)
    emit(info, fmt, title="registered")


@datasets.command("show")
@click.argument("name")
@output_option
@click.pass_context
def datasets_show(ctx: click.Context, name: str, fmt: str) -> None:
    """Show every meta-feature of one dataset, with its group and compute time.

    \b
    Example:
      metaopt datasets show iris --format csv
    """
    from warehouse.datasets import meta_feature_table

    with open_reader(ctx) as wh:
        emit(meta_feature_table(wh, name), fmt, title=name)


@main.command("zoo")
@click.argument("model", required=False)
@click.option(
    "--task",
    type=TASK_CHOICE,
    default=None,
    help="Task of the space to show (default: classification, or the family's only task).",
)
@click.option(
    "--yaml",
    "as_yaml",
    is_flag=True,
    help="Print the space as a YAML file to edit and pass to --space (sweep, recommend, optimize).",
)
@output_option
def zoo(model: str | None, task: str | None, as_yaml: bool, fmt: str) -> None:
    """List the built-in model families, or show one family's default search space.

    \b
    Example:
      metaopt zoo
      metaopt zoo svc --task regression --format json
      metaopt zoo svc --yaml > svc.yaml      # edit, then: metaopt sweep ... --space svc.yaml
    """
    import pandas as pd

    from metaopt_bayes.zoo import FAMILIES, get_family

    if model is None:
        rows = [
            {
                "model": f.name,
                "tasks": ", ".join(f.tasks),
                "kind": f.kind,
                "description": f.description,
            }
            for f in FAMILIES.values()
        ]
        emit(pd.DataFrame(rows), fmt, title="model zoo")
        return
    family = get_family(model)
    if task is None:
        task = "classification" if family.supports("classification") else family.tasks[0]
    space = family.default_space(task)
    if as_yaml:
        import yaml

        click.echo(f"# {model} ({task}): metaopt's default search space; docs/spaces.md")
        text = yaml.safe_dump(space.to_dict(), sort_keys=False, default_flow_style=None)
        click.echo(text, nl=False)
        return
    rows = []
    for name, spec in space.to_dict()["params"].items():
        rows.append({"param": name, **{k: _cell(v) for k, v in spec.items()}})
    emit(pd.DataFrame(rows), fmt, title=f"{model} ({task})")


def _cell(v: Any) -> Any:
    if isinstance(v, dict | list):
        import json

        return json.dumps(v)
    return v


@main.command("sweep")
@dataset_option("A registered dataset.", required=True)
@model_option("A model family (see `metaopt zoo`).", required=True)
@trials_option(20, "Configurations to train (trials).", old=("--n",))
@space_option
@click.option(
    "--jobs", "-j", type=int, default=1, show_default=True, help="Parallel worker processes."
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the Sobol design (scrambled per dataset) and of the models.",
)
@cv_option
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Seconds per configuration before it is killed and logged as failed.",
)
@click.option(
    "--include-run",
    is_flag=True,
    help="Also train configs that already have a finished run (repeat measurements).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@wait_option
@output_option
@click.pass_context
def sweep_cmd(
    ctx: click.Context,
    dataset: str,
    model: str,
    trials: int,
    space: str | None,
    jobs: int,
    seed: int,
    cv: int,
    timeout_s: float | None,
    include_run: bool,
    quiet: bool,
    wait: float,
    fmt: str,
) -> None:
    """Train --trials sampled configurations of a model on a dataset and log every run.

    Configs that already have a finished run are skipped, so running the same sweep again
    adds --trials new points of the design; a sweep of N stopped after k runs and started
    again with --trials N-k (its message says so) trains the configs it had not finished.
    Two sweeps of one design in two processes on one warehouse split it: each config once.

    \b
    Example:
      metaopt datasets add sklearn:wine
      metaopt sweep --dataset wine --model mlp --trials 50 --jobs 2 --seed 1
      metaopt sweep -d wine -m svc -t 20 --space svc.yaml --timeout 30
    """
    import pandas as pd

    from metaopt_bayes.sweeps import sweep
    from warehouse.errors import ValidationError

    n = trials
    flag = flag_used("trials", "--trials")
    if n < 1:
        raise ValidationError(f"{flag} must be at least 1, not {n}")
    rows: list[dict[str, Any]] = []

    def collect(run_id: str, result: dict[str, Any]) -> None:
        m = result.get("metrics") or {}
        key = "accuracy" if "accuracy" in m else "rmse" if "rmse" in m else None
        rows.append(
            {
                "run_id": run_id,
                "config": config_text(result.get("config") or {}),
                "status": result.get("status"),
                "metric": key,
                "value": m.get(key) if key else None,
                "duration_s": result.get("duration_s"),
                "error": result.get("error"),
            }
        )

    with open_warehouse(ctx, must_exist=True, busy_timeout=wait) as wh:
        try:
            sweep(
                wh,
                dataset,
                model,
                n,
                space=space,
                jobs=jobs,
                seed=seed,
                progress=not quiet,
                cv=cv,
                timeout_s=timeout_s,
                on_result=collect,
                include_run=include_run,
                release=True,  # other processes can read the runs logged so far
            )
        except KeyboardInterrupt:
            click.secho(
                f"interrupted: {len(rows)} of {n} runs are logged; run it again with "
                f"{flag} {n - len(rows)} to train the rest of this design",
                fg="yellow",
                err=True,
            )
            ctx.exit(130)
    if len(rows) < n:
        click.secho(
            f"only {len(rows)} new configs: the space has no more that {model} has not "
            f"finished on {dataset} (--include-run trains finished ones again)",
            fg="yellow",
            err=True,
        )
    emit(
        pd.DataFrame(
            rows,
            columns=["run_id", "config", "status", "metric", "value", "duration_s", "error"],
        ),
        fmt,
        title=f"sweep: {model} on {dataset}",
    )
    if rows and all(r["status"] != "finished" for r in rows):
        raise click.ClickException(
            f"every one of the {len(rows)} runs failed (see the error column)"
        )

"""Shared CLI machinery: the root group, `--db`, `--debug`, one output option, one error style."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from warehouse.errors import MetaoptError, one_line
from warehouse.protocol import WarehouseLike

FORMATS = ("table", "csv", "json")


class _Group(click.Group):
    """Root group: turns any MetaoptError (and, without --debug, any error) into one red line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # `metaopt views --sql | head`: the reader has gone, as with cat
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            message = one_line(exc)
            if not isinstance(exc, MetaoptError):
                message = f"{type(exc).__name__}: {message}"
            click.secho(f"Error: {message}", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="METAOPT_DB",
    help="Warehouse file (default: $METAOPT_DB, else ./metaopt.duckdb).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="metaopt")
@click.pass_context
def main(ctx: click.Context, db: str | None, debug: bool) -> None:
    """metaopt: a SQL warehouse of training runs and a Bayesian meta-model (learner) that
    says what to train next.

    \b
    Example:
      metaopt demo
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["debug"] = debug
    if not debug:
        import warnings

        # PyTensor's C backend is not what samples here (nutpie and numba are)
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        # a warning is one line, as errors are: no file name or source line
        warnings.formatwarning = lambda message, category, *_a, **_k: (
            f"{category.__name__}: {message}\n"
        )


def open_warehouse(
    ctx: click.Context,
    read_only: bool = False,
    must_exist: bool = False,
    busy_timeout: float | None = None,
):  # -> warehouse.Warehouse
    """Open the warehouse named by ``--db`` (imported lazily to keep start-up fast).

    ``must_exist``: for commands that work on what the warehouse holds (fit, sweep,
    recommend, optimize), a path that does not exist is a mistyped ``--db``, not a request
    for a new empty file. ``busy_timeout``: seconds to wait for a file another process holds
    (default ``$METAOPT_BUSY_TIMEOUT`` or 3)."""
    from pathlib import Path

    from warehouse import Warehouse
    from warehouse.errors import NotFoundError
    from warehouse.store import MEMORY, resolve_path

    path = resolve_path(ctx.obj.get("db"))
    if must_exist and path != MEMORY and not Path(path).exists():
        raise NotFoundError(
            f"warehouse {path!r} does not exist (start one with `metaopt datasets add`, "
            "`metaopt ingest` or `metaopt init`)"
        )
    return Warehouse(ctx.obj.get("db"), read_only=read_only, busy_timeout=busy_timeout)


#: Seconds `sweep` and `optimize` wait for a warehouse another process holds.
DEFAULT_WAIT_S = 60.0


def wait_option(f: Any) -> Any:
    """``--wait SECONDS``: how long a searching command waits for the file (shared searches
    on one warehouse take turns at it) before one ``busy`` line."""
    return click.option(
        "--wait",
        "wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_WAIT_S,
        show_default=True,
        help="Seconds to wait for a warehouse another process holds before giving up "
        "(0: at once). Several sweep/optimize processes may share one warehouse.",
    )(f)


def require_dataset(wh: WarehouseLike, dataset: str) -> None:
    """A dataset name typed on the command line must be one the warehouse knows (registered,
    with runs or with meta-features): a typo would otherwise get a zero-shot answer for a
    dataset with no meta-features. (The Python API allows any name: zero-shot.)"""
    from warehouse.errors import NotFoundError

    if not wh.has_dataset(str(dataset)):
        raise NotFoundError(
            f"dataset {dataset!r} is not in the warehouse; register it (`metaopt datasets "
            "add`) so its meta-features are known"
        )


def open_reader(ctx: click.Context):  # -> warehouse.Warehouse
    """Open ``--db`` for a command that only reads: read-only, so several readers share the
    file, and a path that does not exist is an error rather than a new empty warehouse (a
    mistyped ``--db`` would otherwise answer every query with no rows)."""
    from warehouse.store import MEMORY, resolve_path

    return open_warehouse(ctx, read_only=resolve_path(ctx.obj.get("db")) != MEMORY)


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The one shared output option: ``--format table|csv|json``."""

    @click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


cv_option = click.option(
    "--cv",
    type=int,
    default=5,
    show_default=True,
    help="Cross-validation folds (1 = a 25% holdout).",
)
space_option = click.option(
    "--space",
    type=click.Path(dir_okay=False),
    default=None,
    help="Search space YAML/JSON (default: the model's built-in space).",
)
#: MetaLearner inference methods (the same tuple as ``metaopt_bayes.model.METHODS``, repeated
#: here so the CLI does not import the model at start-up; a test keeps the two equal)
FIT_METHODS = ("nuts", "pathfinder", "advi", "map")


def method_option(help: str = "Meta-model (learner) inference method.") -> Callable[..., Any]:
    """The one shared ``--method nuts|pathfinder|advi|map`` option (default nuts)."""
    return click.option(
        "--method",
        type=click.Choice(FIT_METHODS),
        default="nuts",
        show_default=True,
        help=help,
    )


def dataset_option(help: str, **attrs: Any) -> Callable[..., Any]:
    """The one ``--dataset/-d`` option (``attrs``: required, multiple, default, a parameter
    name as ``name=``)."""
    return click.option("--dataset", "-d", attrs.pop("name", "dataset"), help=help, **attrs)


def model_option(help: str, **attrs: Any) -> Callable[..., Any]:
    """The one ``--model/-m`` option: a model family (svc, mlp, …; `metaopt zoo` lists them),
    never a meta-model, which ``--learner`` names."""
    return click.option("--model", "-m", attrs.pop("name", "model"), help=help, **attrs)


def renamed_option(*decls: str, old: tuple[str, ...], **attrs: Any) -> Callable[..., Any]:
    """An option that still answers to its old spelling(s) ``old``, hidden from ``--help``.

    The old spelling is a second, hidden option folded into this one's parameter before the
    command runs (giving both is a usage error); :func:`flag_used` says which one was typed,
    so that a message names the flag the user wrote."""
    name = click.Option(decls).name
    assert name is not None
    new = next(d for d in decls if d.startswith("--"))
    alias = f"{name}_old_spelling"

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(*decls, **attrs)
        @click.option(*old, alias, type=attrs.get("type"), default=None, hidden=True)
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(alias)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
                    raise click.UsageError(f"give {new} or {old[0]}, not both")
                kwargs[name] = value
                ctx.meta[f"metaopt.flag.{name}"] = old[0]
            return func(*args, **kwargs)

        return wrapper

    return decorate


def flag_used(name: str, new: str) -> str:
    """The spelling of a :func:`renamed_option` the user typed: ``new``, or its old name."""
    return click.get_current_context().meta.get(f"metaopt.flag.{name}", new)


def trials_option(default: int, help: str, old: tuple[str, ...]) -> Callable[..., Any]:
    """The one word for how many trials to train: ``--trials/-t`` (``old``: the spelling a
    command used before, still accepted)."""
    return renamed_option(
        "--trials", "-t", "trials", old=old, type=int, default=default, show_default=True, help=help
    )


def learner_option(help: str, old: tuple[str, ...] = ()) -> Callable[..., Any]:
    """The one option naming a saved meta-model (learner): ``--learner ID|FILE`` (see
    :func:`find_learner`); ``old``: the spelling a command used before, still accepted."""
    attrs: dict[str, Any] = {"metavar": "ID|FILE", "default": None, "help": help}
    if old:
        return renamed_option("--learner", "learner", old=old, **attrs)
    return click.option("--learner", "learner", **attrs)


def find_learner(wh: WarehouseLike, ref: str) -> tuple[str, Any]:
    """The file of a saved meta-model (learner) named by ``ref``, and its ``meta_models`` row
    (with MODEL_BRIEF) when it was named by id: ``ref`` is a learner file (a path, or a name
    ending in .nc), else its id or a unique prefix of it as `metaopt learners` shows it."""
    from metaopt_bayes.reuse import recorded_row
    from warehouse.errors import NotFoundError

    row = recorded_row(wh, str(ref))
    if row is None:
        return ref, None
    if row.path is None or (isinstance(row.path, float) and row.path != row.path):
        raise NotFoundError(f"meta-model {row.model_id} has no saved file")
    return str(row.path), row


candidates_option = click.option(
    "--candidates",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV/Parquet pool of configs (columns = parameter names) instead of a space.",
)


# the columns of ``meta_models`` that :func:`describe_model` names
MODEL_BRIEF = "model_id, method, n_runs, n_datasets, created_at"


def describe_model(row: Any) -> str:
    """One line naming the saved meta-model a command uses (a row with MODEL_BRIEF)."""
    when = str(row.created_at)[:16]
    return (
        f"using meta-model {str(row.model_id)[:12]} ({row.method}, {row.n_runs} runs on "
        f"{row.n_datasets} datasets, fitted {when})"
    )


def config_text(cfg: dict[str, Any], width: int = 60) -> str:
    """A config as ``name=value`` pairs (unset ones left out), cut to ``width``."""
    parts = []
    for k, v in cfg.items():
        if v is None:
            continue
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


#: rows a table shows at most (csv and json print every row)
TABLE_ROWS = 1000


def emit(data: Any, fmt: str, title: str | None = None) -> None:
    """Print a DataFrame (or list of dicts / dict) as a rich table, CSV or JSON."""
    import pandas as pd

    if isinstance(data, dict):
        data = pd.DataFrame([data])
    elif isinstance(data, list):
        data = pd.DataFrame(data)
    df: pd.DataFrame = data
    if fmt == "json":
        click.echo(df.to_json(orient="records", date_format="iso", default_handler=str))
    elif fmt == "csv":  # nested values (a config, metrics, a list) as JSON, not Python reprs
        df.map(_nested_json).to_csv(sys.stdout, index=False)
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        # cells are text, not rich markup: "B0[intercept]" or "[red]" print as they are
        table = Table(title=escape(title) if title else None, show_lines=False)
        for col in df.columns:
            table.add_column(escape(str(col)), overflow="fold")
        for row in df.head(TABLE_ROWS).itertuples(index=False):
            table.add_row(*(escape(_fmt_cell(v)) for v in row))
        Console().print(table)
        if df.empty:
            click.echo("(no rows)")
        elif len(df) > TABLE_ROWS:  # a table of a million rows takes minutes to draw
            click.echo(
                f"… {len(df) - TABLE_ROWS:,} more rows not shown ({len(df):,} in all): "
                "--format csv or json prints every row",
                err=True,
            )


def _as_list(value: Any) -> Any:
    """A SQL LIST column's cell (a numpy array) as a list; anything else as it is."""
    return value.tolist() if getattr(value, "ndim", 0) > 0 else value


def _nested_json(value: Any) -> Any:
    value = _as_list(value)
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def _fmt_cell(value: Any) -> str:
    value = _as_list(value)
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)

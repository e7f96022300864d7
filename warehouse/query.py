"""Reading the warehouse: safe user SQL, named views, the training matrix, audits.

Safe SQL has two independent locks (see :func:`check_query` and :mod:`warehouse.store`):

1. **An allowlist on sqlglot's AST.** Exactly one statement whose root is SELECT (WITH …
   SELECT), a set operation (UNION/INTERSECT/EXCEPT), VALUES, DESCRIBE or SUMMARIZE. Every
   table it reads must be a table or view of this warehouse, an ``information_schema`` view,
   or a CTE of the query *visible where it is read* (a CTE named like a file in one subquery
   does not cover a reference elsewhere); the only table functions allowed are
   ``range``/``generate_series``/``unnest`` and the read-only catalog functions; scalar
   functions that reach outside the database, run SQL, mutate state or stall the engine
   (``getenv``, ``query``, ``read_*``, ``glob``, ``nextval``, ``sleep_ms`` …) are refused,
   quoted or not; ``SELECT … INTO`` is refused. Anything sqlglot cannot parse is refused.
   DuckDB's own parser must then agree that the text is exactly one SELECT statement, so a
   tokenizer disagreement between sqlglot and DuckDB (comments, string escapes) cannot smuggle
   a second statement past the allowlist.
2. **The engine.** The query runs inside ``BEGIN TRANSACTION READ ONLY`` (or on a read-only
   connection) of a database opened with external access disabled and its configuration
   locked: even a query that slipped past the allowlist could not write or touch a file.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from warehouse import sqlfiles
from warehouse.errors import NotFoundError, UnsafeQueryError, ValidationError, one_line
from warehouse.frames import arrow_to_pandas
from warehouse.sqlfiles import quote_ident

if TYPE_CHECKING:
    import pandas as pd

    from warehouse.store import Store

#: Table functions a query may use in FROM (all compute in memory, none reads a file).
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "duckdb_tables",
        "duckdb_views",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_types",
    }
)
#: Scalar functions refused anywhere in a query: they read outside the database or run SQL.
REFUSED_FUNCTIONS = frozenset(
    {
        "getenv",
        "query",
        "query_table",
        "glob",
        "read_text",
        "read_blob",
        "read_csv",
        "read_csv_auto",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_ndjson",
        "read_ndjson_auto",
        "read_ndjson_objects",
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "sniff_csv",
        "current_setting",
        "duckdb_settings",
        "duckdb_extensions",
        "duckdb_secrets",
        "which_secret",
        "load_extension",
        "install_extension",
        "duckdb_databases",
        "duckdb_temporary_files",
        "pragma_database_size",
        "sqlite_scan",
        "postgres_scan",
        "iceberg_scan",
        "delta_scan",
        "read_xlsx",
        "read_xml",
        # state changes and stalls (found by tests/reliability/test_sql_fuzz.py)
        "nextval",
        "setval",
        "write_log",
        "sleep_ms",
        "pg_sleep",
        # functions that take SQL text: they would run or expose a statement the checker never saw
        "json_execute_serialized_sql",
        "json_serialize_sql",
        "json_serialize_plan",
        "json_deserialize_sql",
        "checkpoint",
        "force_checkpoint",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "enable_profiling",
        "disable_profiling",
    }
)
_REFUSED_PREFIXES = (
    "read_",
    "parquet_",
    "pragma_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "http",
)
#: functions that take SQL text (run it, or parse and plan it): the checker never sees it
_SQL_TEXT_PREFIXES = ("json_serialize", "json_deserialize", "json_execute")
_ALLOWED_SCHEMAS = ("", "main", "information_schema")
#: The views of DuckDB's ``information_schema`` (a name outside this set is refused: DuckDB
#: would otherwise try it as a file path).
INFORMATION_SCHEMA_VIEWS = frozenset(
    {
        "character_sets",
        "columns",
        "constraint_column_usage",
        "key_column_usage",
        "referential_constraints",
        "schemata",
        "table_constraints",
        "tables",
        "views",
    }
)
#: DuckDB statement kinds a user query may have (DESCRIBE/SUMMARIZE/VALUES parse as SELECT).
_DUCKDB_READ_KINDS = frozenset({"SELECT"})


def _function_name(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        # node.name drops identifier quotes: "getenv"(…) calls getenv
        return (node.name or str(node.this)).lower()
    return (node.sql_name() if hasattr(node, "sql_name") else type(node).__name__).lower()


def check_query(query: str, catalog: set[str] | frozenset[str]) -> Any:
    """Parse ``query`` and refuse it unless it is one read-only statement over ``catalog``.

    Returns the sqlglot tree; raises :class:`UnsafeQueryError` with the reason otherwise,
    whatever the query's nesting depth (a parser or tree walk that recurses too deep is a
    refusal, not a crash).
    """
    if isinstance(query, str) and _bracket_depth(query) > MAX_BRACKET_DEPTH:
        raise UnsafeQueryError(
            f"refused: the query nests too deeply to check (more than {MAX_BRACKET_DEPTH} "
            "levels of brackets or CASE)"
        )
    try:
        return _check_query(query, catalog)
    except RecursionError:
        raise UnsafeQueryError("refused: the query nests too deeply to check") from None


#: Brackets (``(``, ``[``, ``{``) and CASE … END nested deeper than this are refused before
#: parsing: sqlglot parses by recursion, so the depth it reaches before a RecursionError
#: depends on Python's recursion limit, which libraries raise (PyTensor), and a raised limit
#: lets a deep query overflow the C stack. DuckDB itself stops at 1,000 expression levels.
MAX_BRACKET_DEPTH = 250
_TOKENS = re.compile(
    r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|--[^\n]*|/\*.*?(?:\*/|$)|[(\[{]|[)\]}]|\bcase\b|\bend\b",
    re.IGNORECASE | re.DOTALL,
)


def _bracket_depth(query: str) -> int:
    """The deepest nesting of brackets and CASE … END outside literals and comments."""
    depth = deepest = 0
    for match in _TOKENS.finditer(query):
        token = match.group(0)
        first = token[0]
        if first in "([{" or token.lower() == "case":
            depth += 1
            deepest = max(deepest, depth)
        elif first in ")]}" or token.lower() == "end":
            depth -= 1
    return deepest


def _check_query(query: str, catalog: set[str] | frozenset[str]) -> Any:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    if not isinstance(query, str) or not query.strip():
        raise UnsafeQueryError("empty query")
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "falling back to Command" warnings: we refuse those
    try:
        statements = [s for s in sqlglot.parse(query, read="duckdb") if s is not None]
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise UnsafeQueryError(f"refused: the query could not be parsed ({first})") from None
    finally:
        logger.setLevel(level)
    if len(statements) != 1:
        raise UnsafeQueryError(f"refused: exactly one statement allowed, got {len(statements)}")
    tree = statements[0]
    allowed_roots = (exp.Select, exp.SetOperation, exp.Values, exp.Describe, exp.Summarize)
    if not isinstance(tree, allowed_roots):
        kind = (
            tree.key.upper() if isinstance(tree, exp.Command) is False else str(tree.this).upper()
        )
        raise UnsafeQueryError(
            f"refused: only SELECT, WITH, UNION, VALUES, DESCRIBE and SUMMARIZE are allowed, "
            f"not {kind}"
        )
    known = {name.lower() for name in catalog}
    for node in tree.walk():
        if isinstance(node, exp.Describe | exp.Summarize) and not isinstance(
            node.this, exp.Table | exp.Query | exp.Subquery
        ):  # SUMMARIZE 'x.csv' scans a file, at the top or nested in FROM (…)
            raise UnsafeQueryError(
                f"refused: {node.key.upper()} of {node.this.sql(dialect='duckdb')!r} (files "
                "and paths cannot be read; name a table or view)"
            )
        if isinstance(node, exp.Select) and node.args.get("into"):
            raise UnsafeQueryError("refused: SELECT … INTO writes a table")
        if isinstance(
            node,
            exp.Command
            | exp.DDL
            | exp.DML
            | exp.Pragma
            | exp.Set
            | exp.Use
            | exp.Transaction
            | exp.Attach
            | exp.Detach
            | exp.Copy
            | exp.Install,
        ):
            raise UnsafeQueryError(f"refused: {node.key.upper()} is not allowed in a query")
        if isinstance(node, exp.Lambda | exp.Comprehension):
            _check_lambda_depth(node)
        if isinstance(node, exp.Table):
            _check_table(node, known | _visible_ctes(node))
        elif isinstance(node, exp.Func):
            name = _function_name(node)
            if name.startswith(_SQL_TEXT_PREFIXES) or name in ("query", "query_table"):
                raise UnsafeQueryError(
                    f"refused: function {name}() takes SQL text, which is not checked"
                )
            if name in REFUSED_FUNCTIONS or name.startswith(_REFUSED_PREFIXES):
                raise UnsafeQueryError(f"refused: function {name}() reaches outside the warehouse")
    _check_duckdb_parse(query)
    return tree


#: Lambdas / list comprehensions nested deeper than this are refused: DuckDB 2.0 binds a
#: nested lambda in time and memory exponential in its depth (15 levels: 1 s; 20: over 20 s;
#: 25: out of memory after taking 20 GB — before execution starts, where no time limit or
#: Ctrl-C reaches). Found by the nesting fuzzer (tests/reliability/test_sql_fuzz.py).
MAX_LAMBDA_DEPTH = 8


def _check_lambda_depth(node: Any) -> None:
    from sqlglot import exp

    depth, parent = 1, node.parent
    while parent is not None:
        if isinstance(parent, exp.Lambda | exp.Comprehension):
            depth += 1
        parent = parent.parent
    if depth > MAX_LAMBDA_DEPTH:
        raise UnsafeQueryError(
            f"refused: lambdas or list comprehensions nest {depth} deep (at most "
            f"{MAX_LAMBDA_DEPTH}: DuckDB binds nested lambdas in exponential time and memory)"
        )


def _visible_ctes(node: Any) -> set[str]:
    """Names of the CTEs in scope at ``node``: every CTE of an enclosing WITH, except that
    inside a CTE body only the CTEs before it (and itself, when RECURSIVE) are visible —
    DuckDB's own scoping, so a CTE cannot vouch for a file-like name read outside it."""
    from sqlglot import exp

    names: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            position = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
            recursive = bool(parent.args.get("recursive"))
            for i, cte in enumerate(ctes):
                if i < position or (i == position and recursive):
                    names.add(cte.alias_or_name.lower())
        else:
            with_ = parent.args.get("with_") or parent.args.get("with")
            if isinstance(with_, exp.With) and with_ is not child:
                names.update(cte.alias_or_name.lower() for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


_PARSER: Any = None


def _check_duckdb_parse(query: str) -> None:
    """Refuse unless DuckDB's own parser sees exactly one SELECT statement (parse only)."""
    import duckdb

    global _PARSER
    if _PARSER is None:
        _PARSER = duckdb.connect(
            ":memory:", config={"enable_external_access": False, "lock_configuration": True}
        )
    try:
        statements = _PARSER.extract_statements(query)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise UnsafeQueryError(f"refused: DuckDB could not parse the query ({first})") from None
    if len(statements) != 1:
        raise UnsafeQueryError(
            f"refused: DuckDB reads {len(statements)} statements here; exactly one is allowed"
        )
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind not in _DUCKDB_READ_KINDS:
        raise UnsafeQueryError(f"refused: DuckDB reads this as a {kind} statement, not a SELECT")


def _check_table(node: Any, known: set[str]) -> None:
    from sqlglot import exp

    source = node.this
    if isinstance(source, exp.Func):
        name = _function_name(source)
        if name not in ALLOWED_TABLE_FUNCTIONS:
            raise UnsafeQueryError(
                f"refused: table function {name}() is not allowed (only "
                f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})"
            )
        return
    if not isinstance(source, exp.Identifier):
        raise UnsafeQueryError(f"refused: unsupported table source {node.sql(dialect='duckdb')!r}")
    if node.catalog:
        raise UnsafeQueryError(f"refused: other databases are not readable ({node.catalog!r})")
    schema = node.db.lower()
    if schema not in _ALLOWED_SCHEMAS:
        raise UnsafeQueryError(f"refused: unknown schema {node.db!r}")
    if schema == "information_schema":
        if source.name.lower() not in INFORMATION_SCHEMA_VIEWS:
            raise UnsafeQueryError(f"refused: information_schema has no view {source.name!r}")
        return
    if source.name.lower() not in known:
        raise UnsafeQueryError(
            f"refused: {source.name!r} is not a table or view of this warehouse "
            "(files and paths cannot be read)"
        )


@functools.lru_cache(maxsize=256)
def _check_once(query: str, catalog: frozenset[str]) -> None:
    """:func:`check_query`, remembered per (query text, catalog): a dashboard or a loop that
    sends the same statement again skips sqlglot's parse (~1 ms of a ~2 ms small query). Only
    accepted queries are remembered (a refusal raises, and ``lru_cache`` keeps no exception);
    the verdict depends on nothing but these two arguments."""
    check_query(query, catalog)


def catalog(wh: Store, cached: bool = False) -> frozenset[str]:
    """Names of the tables and views a user query may read (main schema).

    ``cached=True`` may answer from the last lookup (two catalog scans cost ~1.5 ms, a
    sizeable share of a small query): a name that has since been dropped only makes the
    engine report a missing table, and a caller that misses a name looks again fresh.
    """
    if cached and wh._catalog is not None:
        return wh._catalog
    cur = wh._read_cursor()
    rows = cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal "
        "AND schema_name = 'main'"
    ).fetchall()
    wh._catalog = frozenset(r[0] for r in rows)
    return wh._catalog


def safe_sql(
    wh: Store,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> pd.DataFrame:
    """Run one user query under both locks and return a DataFrame.

    It is stopped after ``timeout`` seconds (None: the warehouse's ``query_timeout``; 0: no
    limit) with :class:`~warehouse.errors.QueryTimeoutError`, and by Ctrl-C
    (``KeyboardInterrupt``)."""
    import duckdb

    from warehouse.store import resolve_query_timeout

    limit = wh.query_timeout if timeout is None else resolve_query_timeout(timeout)
    try:
        _check_once(query, catalog(wh, cached=True))
    except UnsafeQueryError:
        _check_once(query, catalog(wh))  # a table or view created since the cached lookup
    import pyarrow as pa

    try:  # through Arrow: 2.3x faster than DuckDB's .df() on run_features (MAP columns)
        table = wh._read_arrow(query, params, limit=limit)
        return arrow_to_pandas(table, like_duckdb=True)
    except duckdb.Error as exc:
        text = one_line(exc)
        if isinstance(exc, duckdb.PermissionException | duckdb.TransactionException):
            raise UnsafeQueryError(f"refused by the engine: {text}") from None
        raise ValidationError(f"query failed: {text}") from None
    except (pa.ArrowException, RecursionError) as exc:  # e.g. a result type nested too deep
        raise ValidationError(f"query result cannot be returned: {one_line(exc)}") from None


# ---------------------------------------------------------------------------- views
def list_views() -> pd.DataFrame:
    """Name and header comment of each view in ``sql/views``."""
    import pandas as pd

    rows = []
    for name in sqlfiles.view_names():
        header = sqlfiles.header_comment(sqlfiles.view_sql(name))
        rows.append({"view": name, "description": " ".join(header.split())})
    return pd.DataFrame(rows)


def where_equal(filters: Mapping[str, Any], columns: Sequence[str]) -> tuple[str, list[Any]]:
    """`` WHERE …`` (or ``""``) testing each filter for equality with bound parameters: a
    list/tuple/set means IN (an empty one matches nothing), None means IS NULL. Filter
    names must be among ``columns`` (case-insensitive); they are quoted, never formatted."""
    clauses, args = [], []
    lower = {c.lower(): c for c in columns}
    for key, value in filters.items():
        if key.lower() not in lower:
            raise ValidationError(f"unknown filter column {key!r}; columns: {', '.join(columns)}")
        ident = quote_ident(lower[key.lower()])
        if value is None:
            clauses.append(f"{ident} IS NULL")
        elif isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            if not values:
                clauses.append("FALSE")
                continue
            clauses.append(f"{ident} IN ({', '.join('?' for _ in values)})")
            args += values
        else:
            clauses.append(f"{ident} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _view_columns(wh: Store, name: str) -> list[str]:
    cached = wh._view_columns.get(name)
    if cached is None:
        cached = wh._view_columns[name] = list(
            wh._read_df(f"SELECT * FROM {quote_ident(name)} LIMIT 0").columns
        )
    return cached


def view(wh: Store, name: str, **filters: Any) -> pd.DataFrame:
    """Read view ``name`` with equality filters (a list/tuple/set means IN, None IS NULL)."""
    if name not in sqlfiles.view_names():
        raise NotFoundError(
            f"no view named {name!r}; known views: {', '.join(sqlfiles.view_names())}"
        )
    where, args = where_equal(filters, _view_columns(wh, name))
    ident = quote_ident(name)
    order = {
        "run_features": " ORDER BY seq",
        "training_matrix": " ORDER BY seq, metric, split",
        "dataset_features": " ORDER BY dataset",
        "incumbents": " ORDER BY dataset, model, metric, split",
        "leaderboard": " ORDER BY dataset, metric, split, rank, model",
        "curve_points": " ORDER BY seq, metric, step",
        "curve_summary": " ORDER BY seq, metric",
    }.get(name, "")
    return wh._read_df(
        f"SELECT * FROM {ident}{where}{order}",
        args or None,
        via_arrow=True,
        limit=wh.query_timeout,
    )


def recent_runs(
    wh: Store, dataset: str | None = None, model: str | None = None, limit: int | None = 20
) -> pd.DataFrame:
    """Newest runs first: run fields plus the valid-split metrics as a map."""
    filters = {k: v for k, v in (("dataset", dataset), ("model", model)) if v is not None}
    where, args = where_equal(filters, ["dataset", "model"])
    tail = ""
    if limit is not None:
        if int(limit) < 0:
            raise ValidationError(f"limit must be >= 0, not {limit}")
        tail = f" LIMIT {int(limit)}"
    return wh._read_df(
        "SELECT run_id, dataset, model, status, source, duration_s, params_num, params_text, "
        "metrics "
        f"FROM run_features{where} ORDER BY seq DESC{tail}",
        args or None,
        via_arrow=True,
    )


# ---------------------------------------------------------------------------- learner inputs
def training_matrix(
    wh: Store,
    metric: str,
    model: str | None = None,
    datasets: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    split: str = "valid",
) -> pd.DataFrame:
    """One row per finished run that reported ``metric`` on ``split``, ordered by ``seq``.

    Columns: ``run_id, dataset, model, value, duration_s, seq`` then ``params.<name>``
    (float for numeric parameters, object holding str for text ones; a parameter with both
    kinds across runs is object with floats and strs) and ``arch.<name>`` likewise; NaN/None
    where a run did not set it. The rows are those of the ``training_matrix`` view (read from
    its tables, same join and filter); the typed parameter/architecture rows of those runs are
    read long and pivoted here, so new names never need a view change.

    Speed (DuckDB 2.0, 333k runs, 2 busy cores): ~1 s for every run of one metric; the rows
    and their long parameter rows are matched on the BIGINT ``seq``.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(datasets, str) or isinstance(exclude, str):
        raise ValidationError("datasets/exclude must be lists of dataset names, not a string")
    clauses, args = ["r.status = 'finished'", "x.name = ?", "x.split = ?"], [metric, split]
    if model is not None:
        clauses.append("r.model = ?")
        args.append(model)
    # Literal placeholders, not a list parameter: `IN (SELECT unnest(?))` defeated the
    # filter pushdown into the view (7x slower, measured).
    if datasets is not None:
        ds = [str(d) for d in datasets]
        clauses.append(f"r.dataset IN ({', '.join('?' for _ in ds)})" if ds else "FALSE")
        args += ds
    if exclude:
        ex = [str(d) for d in exclude]
        clauses.append(f"r.dataset NOT IN ({', '.join('?' for _ in ex)})")
        args += ex
    import pyarrow.compute as pc

    # The rows of the training_matrix view, read from its tables: the view's LATERAL map
    # columns are not pruned by DuckDB even when unselected (6x slower on 333k runs).
    rows = "FROM run_metrics AS x JOIN runs AS r ON r.seq = x.seq WHERE " + " AND ".join(clauses)
    base = arrow_to_pandas(
        wh._read_arrow(
            "SELECT r.run_id, r.dataset, r.model, x.value, r.duration_s, r.seq "
            f"{rows} ORDER BY r.seq",
            args,
        )
    )
    if base.empty:
        return base
    # The typed long rows of exactly those runs: the same filter as a semi-join on the BIGINT
    # seq (no id list round-trips through Python). seq is unique per run and base is sorted by
    # it, so a long row's position in base is a binary search; pivoting is array indexing.
    long = wh._read_arrow(
        f"WITH sel AS (SELECT x.seq {rows}) "
        "SELECT 'params.' || p.name AS col, p.seq, p.value_num AS num, p.value_text AS txt "
        "FROM run_params AS p WHERE p.seq IN (SELECT seq FROM sel) "
        "UNION ALL SELECT 'arch.' || a.name, a.seq, a.value_num, a.value_text "
        "FROM run_architecture AS a WHERE a.seq IN (SELECT seq FROM sel)",
        args,
    )
    if long.num_rows == 0:
        return base
    encoded = pc.dictionary_encode(long["col"]).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    pos = np.searchsorted(
        base["seq"].to_numpy(dtype=np.int64), long["seq"].to_numpy().astype(np.int64)
    )
    num = long["num"].to_numpy().astype(float)  # nulls arrive as NaN
    is_text = pc.is_valid(long["txt"]).to_numpy(zero_copy_only=False)
    txt = long["txt"]
    columns: dict[str, Any] = {}
    for k, col_name in enumerate(names):
        mask = codes == k
        has_text = is_text[mask]
        if not has_text.any():
            out = np.full(len(base), np.nan)
            out[pos[mask]] = num[mask]
        else:
            out = np.full(len(base), None, dtype=object)
            n = num[mask]
            t = np.asarray(txt.filter(pa.array(mask)).to_pylist(), dtype=object)
            values = np.where(has_text, t, n.astype(object))
            values[(~has_text) & np.isnan(n)] = None
            out[pos[mask]] = values
        columns[str(col_name)] = out
    ordered = sorted(c for c in columns if c.startswith("params.")) + sorted(
        c for c in columns if c.startswith("arch.")
    )
    extra = pd.DataFrame({c: columns[c] for c in ordered}, index=base.index)
    return pd.concat([base, extra], axis=1)


def meta_features(wh: Store, datasets: Sequence[str] | None = None) -> pd.DataFrame:
    """Wide meta-features: index ``dataset`` (every dataset asked for, or every registered
    one), one float column per meta-feature name, NaN where a dataset lacks it."""
    import pandas as pd

    if isinstance(datasets, str):
        raise ValidationError("datasets must be a list of dataset names, not a string")
    if datasets is None:
        names = list(wh._read_df("SELECT name FROM datasets ORDER BY name")["name"])
    else:
        names = list(dict.fromkeys(datasets))
    long = wh._read_df(
        "SELECT dataset, name, value FROM dataset_meta_features "
        "WHERE dataset IN (SELECT unnest(?::VARCHAR[]))",
        [names],
    )
    if long.empty:
        wide = pd.DataFrame(index=pd.Index(names, name="dataset", dtype=object))
    else:
        wide = long.pivot(index="dataset", columns="name", values="value")
        wide = wide.reindex(index=pd.Index(names, dtype=object), columns=sorted(wide.columns))
    wide.index.name = "dataset"
    wide.columns.name = None
    return wide.astype(float)


# ---------------------------------------------------------------------------- audits
def run_audits(wh: Store, examples: int = 3) -> pd.DataFrame:
    """Run each ``sql/audits/*.sql`` query; an audit passes when it returns zero rows.

    Then two integrity checks: ``integrity_views`` (every named view binds and runs) and
    ``integrity_tables`` (every table is read in full, which makes DuckDB verify the checksum
    of each block it stores). One row per check: ``audit, failing_rows, ok, description,
    example`` (up to ``examples`` failing rows, as text, for a failing check).
    """
    import pandas as pd

    rows = []
    for name, text in sorted(sqlfiles.audits().items()):
        body = text.strip().rstrip(";")
        found = int(wh._read_df(f"SELECT count(*) AS n FROM ({body}) AS audit")["n"].iloc[0])
        example = ""
        if found:
            sample = wh._read_df(f"SELECT * FROM ({body}) AS audit LIMIT {int(examples)}")
            example = "; ".join(
                ", ".join(f"{k}={v}" for k, v in rec.items()) for rec in sample.to_dict("records")
            )
        rows.append(
            {
                "audit": name,
                "failing_rows": found,
                "ok": found == 0,
                "description": " ".join(sqlfiles.header_comment(text).split()),
                "example": example,
            }
        )
    rows += _integrity(wh)
    return pd.DataFrame(rows)


def _integrity(wh: Store) -> list[dict[str, Any]]:
    """Views bind and every table reads back in full (DuckDB checks block checksums)."""
    import duckdb

    broken_views = []
    for name in sqlfiles.view_names():
        try:
            wh._read_df(f"SELECT * FROM {quote_ident(name)} LIMIT 1")
        except duckdb.Error as exc:
            broken_views.append(f"{name}: {str(exc).strip().splitlines()[0]}")
    tables = wh._read_df(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'"
    )["table_name"]
    unreadable = []
    for name in sorted(tables):
        try:  # hash every column of every row: all blocks are read and verified
            wh._read_df(f"SELECT count(hash(COLUMNS(*))) FROM {quote_ident(name)}")
        except duckdb.Error as exc:
            unreadable.append(f"{name}: {str(exc).strip().splitlines()[0]}")
    return [
        {
            "audit": "integrity_views",
            "failing_rows": len(broken_views),
            "ok": not broken_views,
            "description": "integrity_views: every named view binds and runs.",
            "example": "; ".join(broken_views[:3]),
        },
        {
            "audit": "integrity_tables",
            "failing_rows": len(unreadable),
            "ok": not unreadable,
            "description": "integrity_tables: every table reads back in full (block checksums "
            "verified).",
            "example": "; ".join(unreadable[:3]),
        },
    ]

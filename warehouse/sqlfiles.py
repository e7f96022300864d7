"""The SQL that ships with metaopt: migrations, views and audits, one object per file.

Files live in ``<repo>/sql`` in a source checkout (and an editable install) and in
``warehouse/_sql`` inside a wheel (hatch ``force-include``). :func:`sql_dir` finds whichever
exists; nothing else in the package hard-codes a path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from warehouse.errors import NotFoundError, ValidationError, one_line

_MIGRATION_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")


@functools.cache
def sql_dir() -> Path:
    """The folder holding ``schema/``, ``views/`` and ``audits/``.

    Order: ``$METAOPT_SQL_DIR`` (for tests), the wheel's ``warehouse/_sql``, the source
    checkout's ``<repo>/sql``.
    """
    override = os.environ.get("METAOPT_SQL_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here / "_sql", here.parent / "sql"]
    for candidate in candidates:
        if (candidate / "schema").is_dir():
            return candidate
    raise NotFoundError(
        "metaopt's SQL files were not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall the package"
    )


@dataclass(frozen=True)
class Migration:
    """One numbered schema migration ``sql/schema/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """All migrations, ordered by version; refuses gaps and duplicate numbers."""
    found: list[Migration] = []
    for path in sorted((sql_dir() / "schema").glob("*.sql")):
        match = _MIGRATION_RE.match(path.name)
        if not match:
            raise ValidationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValidationError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def _named(folder: str) -> dict[str, str]:
    return {p.stem: p.read_text("utf-8") for p in sorted((sql_dir() / folder).glob("*.sql"))}


def view_names() -> list[str]:
    """Names of the views in ``sql/views`` (file name = view name)."""
    return sorted(_named("views"))


def view_sql(name: str) -> str:
    """The ``CREATE OR REPLACE VIEW`` text of one view, with its header comment."""
    views = _named("views")
    if name not in views:
        raise NotFoundError(f"no view named {name!r}; known views: {', '.join(sorted(views))}")
    return views[name]


def audits() -> dict[str, str]:
    """Audit queries by name (``sql/audits/<name>.sql``): each must return zero rows."""
    return _named("audits")


def views_fingerprint() -> str:
    """A hash of every view's text: the warehouse re-creates its views when it changes."""
    digest = hashlib.sha256()
    for name, text in sorted(_named("views").items()):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def header_comment(text: str) -> str:
    """The leading ``--`` comment block of a SQL file, without the dashes."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return "\n".join(lines).strip()


def view_select(name: str) -> str:
    """The body of a view: the SELECT after ``CREATE ... VIEW name AS``."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(view_sql(name), read="duckdb")
    if not isinstance(tree, exp.Create):
        raise ValidationError(f"sql/views/{name}.sql does not hold a CREATE VIEW")
    return tree.expression.sql(dialect="duckdb", pretty=True)


def quote_ident(name: str) -> str:
    """A quoted DuckDB identifier: in double quotes, a double quote in it doubled — what
    sqlglot's generator writes (a test compares the two on hostile names), 70x faster (a
    10,000-column file quotes 30,000 names)."""
    if not isinstance(name, str):
        raise ValidationError(f"identifier {name!r} must be a string")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A DuckDB string literal, built with sqlglot."""
    from sqlglot import exp

    return exp.Literal.string(text).sql(dialect="duckdb")


DIALECTS = (
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


def transpile(sql: str, dialect: str, pretty: bool = True) -> str:
    """Translate DuckDB SQL to another engine's dialect with sqlglot (statements joined by
    ``;``). Raises :class:`ValidationError` for an unknown dialect or unparsable SQL."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    if dialect not in DIALECTS:
        raise ValidationError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    try:
        out = sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=pretty)
    except SqlglotError as exc:
        first = one_line(exc)
        raise ValidationError(f"could not transpile to {dialect}: {first}") from None
    return ";\n".join(out) + ";"

"""Errors raised by metaopt. Every user-facing failure is a :class:`MetaoptError` whose message
is one line naming the problem; the CLI prints it as ``Error: …`` and exits 1."""

from __future__ import annotations


class MetaoptError(Exception):
    """Base class of every error metaopt raises on purpose."""


class ValidationError(MetaoptError, ValueError):
    """Input that metaopt refuses (bad column, bad value, bad space, bad config)."""


class CandidatesExhaustedError(ValidationError):
    """Every candidate was already run (or is pending) on the dataset."""


class UnsafeQueryError(MetaoptError):
    """A SQL query refused by the read-only allowlist."""


class QueryTimeoutError(MetaoptError):
    """A query ran longer than its time limit (``query_timeout``) and was stopped."""


class WarehouseBusyError(MetaoptError):
    """Another process holds the warehouse file for writing."""


class ReadOnlyWarehouseError(MetaoptError):
    """A write was attempted on a warehouse opened with ``read_only=True``."""


class SchemaVersionError(MetaoptError):
    """The warehouse file was written by a newer metaopt, or is not a metaopt warehouse."""


class NotFoundError(MetaoptError, KeyError):
    """A named dataset, run, view or meta-model does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type name when it has none), for
    wrapping a library's multi-line error into a metaopt one-liner (cut to ``limit``)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]

"""The metaopt warehouse: an embedded DuckDB store of training runs, featurized by SQL views."""

from __future__ import annotations

from warehouse.errors import (
    MetaoptError,
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyWarehouseError,
    SchemaVersionError,
    UnsafeQueryError,
    ValidationError,
    WarehouseBusyError,
)

__all__ = [
    "MetaoptError",
    "NotFoundError",
    "QueryTimeoutError",
    "ReadOnlyWarehouseError",
    "SchemaVersionError",
    "UnsafeQueryError",
    "ValidationError",
    "Warehouse",
    "WarehouseBusyError",
]


def __getattr__(name: str):  # lazy: `import warehouse` stays cheap until a store is opened
    if name == "Warehouse":
        from warehouse.api import Warehouse

        return Warehouse
    raise AttributeError(name)

"""Warehouse satisfies WarehouseLike, member by member; the protocol stays light to import."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Warehouse
from warehouse.protocol import WarehouseLike

#: A generator method under @contextmanager is annotated with what it yields from.
_SAME_RETURN = {"AbstractContextManager[None]": "Iterator[None]"}


def _members() -> list[str]:
    return sorted(
        name
        for name in {*vars(WarehouseLike), *WarehouseLike.__annotations__}
        if not name.startswith("_")
    )


def _plain(annotation: object) -> str:
    return "".join(str(annotation).split())


@pytest.mark.parametrize("name", [n for n in _members() if n != "path"])
def test_each_member_has_the_protocol_signature(name):
    declared = inspect.getattr_static(WarehouseLike, name)
    actual = inspect.getattr_static(Warehouse, name, None)
    assert actual is not None, f"Warehouse has no {name}"
    if isinstance(declared, property):
        assert isinstance(actual, property), name
        declared, actual = declared.fget, actual.fget
    want, have = inspect.signature(declared), inspect.signature(actual)
    got = dict(have.parameters)
    for pname, param in want.parameters.items():
        assert pname in got, f"{name}: no parameter {pname}"
        impl = got.pop(pname)
        assert impl.kind == param.kind, f"{name}({pname}): {impl.kind} vs {param.kind}"
        assert impl.default == param.default, f"{name}({pname}): default {impl.default!r}"
        assert _plain(impl.annotation) == _plain(param.annotation), f"{name}({pname})"
    assert all(p.default is not p.empty for p in got.values()), f"{name}: extra required"
    ret = _plain(want.return_annotation)
    assert _plain(have.return_annotation) in (ret, _SAME_RETURN.get(ret)), name


def test_an_open_warehouse_is_warehouse_like(wh_memory):
    assert isinstance(wh_memory, WarehouseLike)
    assert isinstance(wh_memory.path, str)
    assert not isinstance(object(), WarehouseLike)


def test_the_protocol_imports_neither_duckdb_nor_pandas():
    code = "import sys, warehouse.protocol; print('duckdb' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_public_member_metaopt_bayes_uses_is_in_the_protocol():
    """``warehouse.<x>`` / ``wh.<x>`` in metaopt_bayes, where ``x`` is a public member of
    Warehouse: the protocol must declare it (what it reads beyond the protocol is private)."""
    import metaopt_bayes

    public = {n for n in dir(Warehouse) if not n.startswith("_")} | {"path", "read_only"}
    used: set[str] = set()
    for path in Path(metaopt_bayes.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("warehouse", "wh")
                and node.attr in public
            ):
                used.add(node.attr)
    assert used, "no warehouse use found in metaopt_bayes: the scan is broken"
    assert sorted(used - set(_members())) == []

"""The layering of docs/architecture.md holds: import-linter's contracts in pyproject.toml.

import-linter reads every import (those inside functions too), so a lazy import cannot hide an
upward import or a circle; and every module must sit in a layer, so a new one cannot slip past.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"

pytestmark = pytest.mark.skipif(
    not (PYPROJECT.exists() and (ROOT / "metaopt_bayes").is_dir()),
    reason="needs the source checkout (pyproject.toml beside the packages)",
)


def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text("utf-8"))["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


@pytest.mark.parametrize("package", ["metaopt_bayes", "warehouse"])
def test_every_module_sits_in_a_layer(package):
    layered: set[str] = set()
    for contract in _contracts():
        for layer in contract.get("layers", []):
            layered.update(name.strip() for name in layer.split("|"))
    modules = {
        f"{package}.{m.name}"
        for m in pkgutil.iter_modules([str(ROOT / package)])
        if m.name not in ("__main__",)
    }
    assert sorted(modules - layered) == []

"""The ``metaopt`` command line: a thin click layer over the Python API.

Each command module registers its commands on :data:`main`; every command calls one API
function and formats its result with :func:`metaopt_bayes.cli._common.emit`.
"""

from __future__ import annotations

from metaopt_bayes.cli._common import main

# Command modules register themselves on `main` when imported.
from metaopt_bayes.cli import warehouse_cmds  # noqa: F401  isort: skip
from metaopt_bayes.cli import dataset_cmds  # noqa: F401  isort: skip
from metaopt_bayes.cli import search_cmds  # noqa: F401  isort: skip
from metaopt_bayes.cli import model_cmds  # noqa: F401  isort: skip
from metaopt_bayes.cli import io_cmds  # noqa: F401  isort: skip

__all__ = ["main"]

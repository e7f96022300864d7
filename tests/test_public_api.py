"""The public surface promised in the README and the issues: importable by name, lazily."""

from __future__ import annotations

import inspect
import subprocess
import sys

import metaopt_bayes


def test_public_names_resolve_to_the_real_objects() -> None:
    from metaopt_bayes.model import MetaLearner
    from metaopt_bayes.search import optimize, recommend
    from metaopt_bayes.space import SearchSpace
    from metaopt_bayes.trainer import train_and_evaluate

    assert metaopt_bayes.MetaLearner is MetaLearner
    assert metaopt_bayes.optimize is optimize
    assert metaopt_bayes.recommend is recommend
    assert metaopt_bayes.SearchSpace is SearchSpace
    assert metaopt_bayes.train_and_evaluate is train_and_evaluate


def test_optimize_signature_matches_the_contract() -> None:
    params = list(inspect.signature(metaopt_bayes.optimize).parameters)
    assert params[:9] == [
        "warehouse",
        "dataset",
        "model",
        "budget",
        "space",
        "candidates",
        "objective",
        "acquisition",
        "executor",
    ]


def test_importing_the_package_does_not_import_pymc() -> None:
    code = "import sys, metaopt_bayes, warehouse; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_method_choices_match_the_learner_and_refuse_unknown_methods() -> None:
    from click.testing import CliRunner

    from metaopt_bayes.cli import main
    from metaopt_bayes.cli._common import FIT_METHODS
    from metaopt_bayes.inference import METHODS

    assert FIT_METHODS == METHODS
    commands = (["fit", "--metric", "accuracy"], ["optimize", "-d", "x", "--budget", "1"], ["demo"])
    for cmd in commands:
        res = CliRunner().invoke(main, [*cmd, "--method", "mcmc"])
        assert res.exit_code == 2 and "'mcmc' is not one of" in res.output, (cmd, res.output)


def test_no_module_shadows_a_public_name() -> None:
    """Importing a submodule sets it as an attribute of the package, which would hide a lazily
    exported function of the same name (``from metaopt_bayes import sweep`` gave the module)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(metaopt_bayes.__path__):
        if info.name != "__main__":
            importlib.import_module(f"metaopt_bayes.{info.name}")
    for name in metaopt_bayes.__all__:
        if name != "__version__":
            assert not inspect.ismodule(getattr(metaopt_bayes, name)), name

"""metaopt's Bayesian side: featurize → meta-learner → acquisition → search.

The public API is re-exported here lazily, so ``import metaopt_bayes`` stays cheap (no PyMC,
no scikit-learn) until one of these names is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.7.0"

_EXPORTS = {
    "MetaLearner": "metaopt_bayes.model",
    "MetaoptSampler": "metaopt_bayes.optuna_sampler",  # needs the optuna extra
    "MetaoptPruner": "metaopt_bayes.optuna_pruner",  # needs the optuna extra
    "CurvePruner": "metaopt_bayes.pruning",
    "TrialPruned": "metaopt_bayes.pruning",
    "learner_for": "metaopt_bayes.reuse",
    "load_winner": "metaopt_bayes.trials",
    "optimize": "metaopt_bayes.search",
    "Search": "metaopt_bayes.ask_tell",
    "Trial": "metaopt_bayes.ask_tell",
    "recommend": "metaopt_bayes.search",
    "OptimizeResult": "metaopt_bayes.search",
    "SearchSpace": "metaopt_bayes.space",
    "train_and_evaluate": "metaopt_bayes.trainer",
    "sweep": "metaopt_bayes.sweeps",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metaopt_bayes' has no attribute {name!r}")

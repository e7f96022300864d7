"""metaopt's Bayesian side: featurize → meta-learner → acquisition → search."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["MetaLearner", "__version__"]


def __getattr__(name: str):  # lazy: `import metaopt_bayes` must not import pymc
    if name == "MetaLearner":
        from metaopt_bayes.model import MetaLearner

        return MetaLearner
    raise AttributeError(name)

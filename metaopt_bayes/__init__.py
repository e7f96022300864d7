"""metaopt's Bayesian side: featurize → meta-learner → acquisition → search."""

from __future__ import annotations

__version__ = "0.1.0"

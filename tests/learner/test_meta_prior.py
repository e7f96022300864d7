"""The empirical-Bayes prior scale of the meta-features' effects (``prior_meta="auto"``)."""

from __future__ import annotations

import numpy as np
import pytest

from metaopt_bayes import MetaLearner
from metaopt_bayes.empirical_bayes import META_PRIOR_FALLBACK, META_PRIOR_GRID, meta_prior_scale
from warehouse.errors import ValidationError


def _levels(effect: float, seed: int = 0, D: int = 40, q: int = 6, runs: int = 30):
    """Standardized runs of D datasets whose level is ``effect`` × the first meta-feature plus
    noise; the other meta-features are noise."""
    rng = np.random.default_rng(seed)
    Z = np.hstack([np.ones((D, 1)), rng.standard_normal((D, q))])
    level = effect * Z[:, 1] + 0.3 * rng.standard_normal(D)
    codes = np.repeat(np.arange(D), runs)
    y = level[codes] + 0.2 * rng.standard_normal(D * runs)
    return (y - y.mean()) / y.std(), codes, Z


def test_informative_meta_features_get_a_wide_prior():
    # one of six meta-features moves the level by one sd: s ≈ 1/√6 ≈ 0.4
    picks = [meta_prior_scale(*_levels(effect=1.0, seed=s)) for s in range(5)]
    assert min(picks) >= 0.3


def test_uninformative_meta_features_get_the_tightest_prior():
    # chance correlations with 40 datasets gain a little evidence, less than the margin
    picks = [meta_prior_scale(*_levels(effect=0.0, seed=s)) for s in range(10)]
    assert picks == [META_PRIOR_GRID[0]] * 10


def test_no_meta_features_or_few_datasets_fall_back():
    y, codes, Z = _levels(effect=1.0)
    assert meta_prior_scale(y, codes, Z[:, :1]) == META_PRIOR_FALLBACK
    y, codes, Z = _levels(effect=1.0, D=8)
    assert meta_prior_scale(y, codes, Z) == META_PRIOR_FALLBACK


@pytest.mark.parametrize("bad", [0, -0.1, "wide", True])
def test_prior_meta_must_be_auto_or_positive(bad):
    with pytest.raises(ValidationError, match="prior_meta"):
        MetaLearner("accuracy", prior_meta=bad)


def test_the_scale_used_is_in_the_fit_diagnostics(fitted_map, synth):
    # seven training datasets: too few to estimate, so the fallback
    assert fitted_map.diagnostics["prior_meta"] == META_PRIOR_FALLBACK
    runs, meta, _ = synth
    fixed = MetaLearner("accuracy", method="map", interactions=False, prior_meta=0.2)
    assert fixed.fit_frame(runs, meta).diagnostics["prior_meta"] == 0.2

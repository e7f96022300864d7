"""A small stand-in learner for fast search tests (the real MetaLearner is tested elsewhere
and in the slow integration tests); it answers like MetaLearner.predict/predict_draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


class FakeLearner:
    """Posterior of f(x) = −(x − 0.3)² + 0.1·[c == 'b']: mean exact, sd shrinking near the
    dataset's observed (or fantasized) configs — enough structure for acquisition tests."""

    metric = "score"
    model = "toy"
    direction = "maximize"
    model_id = None
    is_fitted = True
    param_names = ("x", "c")

    def __init__(self, maximize: bool = True):
        self.direction = "maximize" if maximize else "minimize"
        self.fits = 0
        self.excluded: list = []  # the exclude= of each fit

    def fit(self, warehouse, datasets=None, exclude=None):
        self.fits += 1
        self.excluded.append(exclude)
        return self

    @staticmethod
    def truth(x, c):
        x = np.asarray(x, float)
        return -((x - 0.3) ** 2) + 0.1 * (np.asarray(c).astype(str) == "b")

    def _col(self, df, name):
        for k in (name, f"params.{name}"):
            if k in df.columns:
                return df[k].to_numpy()
        raise KeyError(name)

    def predict(
        self, dataset, configs, warehouse=None, runs=None, extra_runs=None, predictive=True, **_
    ):
        if runs is None and warehouse is not None:
            runs = warehouse.training_matrix(self.metric, model=self.model, datasets=[dataset])
        obs = [f for f in (runs, extra_runs) if f is not None and len(f)]
        x = self._col(configs, "x").astype(float)
        c = self._col(configs, "c")
        mean = self.truth(x, c)
        if self.direction == "minimize":
            mean = -mean
        sd = np.full(len(x), 0.2)
        for f in obs:
            ox = self._col(f, "x").astype(float)
            d = np.abs(x[:, None] - ox[None, :]).min(axis=1)
            sd = np.minimum(sd, 0.01 + d)
        if predictive:
            sd = np.sqrt(sd**2 + 0.01**2)
        return pd.DataFrame(
            {"mean": mean, "sd": sd, "lower": mean - 2 * sd, "upper": mean + 2 * sd}
        )

    def predict_draws(
        self, dataset, configs, warehouse=None, runs=None, extra_runs=None, seed=0, **_
    ):
        p = self.predict(dataset, configs, warehouse, runs, extra_runs, predictive=False)
        rng = np.random.default_rng(seed)
        return p["mean"].to_numpy() + p["sd"].to_numpy() * rng.standard_normal((200, len(p)))


class FakeCost:
    """Predicted seconds: 10 for c == 'a', 1 for c == 'b'."""

    metric = "duration_s"
    model = "toy"
    direction = "minimize"

    def predict(self, dataset, configs, warehouse=None, **_):
        c = configs["c"].astype(str).to_numpy()
        sec = np.where(c == "a", 10.0, 1.0)
        return pd.DataFrame({"mean": sec, "sd": 0.1 * sec})


@pytest.fixture
def fake_learner():
    return FakeLearner()


@pytest.fixture
def wh():
    from warehouse import Warehouse

    w = Warehouse(":memory:")
    yield w
    w.close()


@pytest.fixture
def pool():
    xs = np.round(np.linspace(0, 1, 21), 4)
    return pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * len(xs) + ["b"] * len(xs)})

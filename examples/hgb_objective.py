"""Optimize a model metaopt does not ship, trained by your own function (docs/objectives.md).

The model is scikit-learn's HistGradientBoostingClassifier on breast_cancer (bundled with
scikit-learn, no download); ``objective`` is what ``metaopt optimize --objective`` calls:

    python examples/hgb_objective.py my.duckdb          # the Python API, below
    cd examples && metaopt --db my.duckdb optimize -d breast_cancer -m my_hgb \\
        --objective hgb_objective:objective --space hgb_space.yaml --metric val_accuracy -t 8
"""

from __future__ import annotations

import sys
import time
from typing import Any

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score
from threadpoolctl import threadpool_limits

from metaopt_bayes import optimize
from warehouse import Warehouse

SPACE = {  # the same space as hgb_space.yaml
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 4, "high": 64, "log": True},
    "l2_regularization": {"type": "float", "low": 1e-6, "high": 10.0, "log": True},
}


def objective(config: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; return its metrics, its cost and its architecture."""
    X, y = load_breast_cancer(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0, **config)
    with threadpool_limits(1):  # one thread per trial; run trials side by side with jobs=
        scores = cross_val_score(model, X, y, cv=3)
        t0 = time.perf_counter()
        model.fit(X, y)  # the cost worth predicting: one fit on all rows, not the CV
    return {
        "val_accuracy": scores.mean(),  # the metric searched (metric="val_accuracy")
        "val_accuracy_sd": scores.std(),  # any other metric is logged too
        "duration_s": time.perf_counter() - t0,  # instead of the call's wall time
        "arch.n_trees": model.n_iter_,  # an architecture descriptor
    }


def main(path: str = "metaopt.duckdb", budget: int = 8) -> None:
    with Warehouse(path) as wh:
        result = optimize(
            wh,
            "breast_cancer",
            "my_hgb",
            budget,  # in total: run it again with more to continue
            space=SPACE,
            objective=objective,
            metric="val_accuracy",
            fit_method="map",
        )
    print(result.best_value, result.best_config)


if __name__ == "__main__":
    main(*sys.argv[1:2])

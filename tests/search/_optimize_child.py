"""Child process for the kill -9 resume test: a slow optimize on a file warehouse."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metaopt_bayes.search import optimize
from tests.search.conftest import FakeLearner
from warehouse import Warehouse


def main(db: str, marker: str, budget: int) -> None:
    xs = np.round(np.linspace(0, 1, 41), 4)
    pool = pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * 41 + ["b"] * 41})

    def objective(cfg):
        time.sleep(0.15)
        with Path(marker).open("a") as fh:
            fh.write(f"{cfg['x']},{cfg['c']}\n")
        return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}

    with Warehouse(db) as wh:
        optimize(
            wh,
            "d1",
            "toy",
            budget,
            candidates=pool,
            objective=objective,
            learner=FakeLearner(),
            refit_every=0,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

"""Worker process of the two-worker MetaoptSampler test: one Optuna worker on a shared RDB
study and a shared file warehouse."""

from __future__ import annotations

import sys

import optuna

from metaopt_bayes.optuna_sampler import MetaoptSampler
from tests.search.test_optuna_sampler import SPACE, objective


def main(db: str, storage: str, n_trials: int, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = MetaoptSampler(
        db, "target", "toy", "score", search_space=SPACE, fit_method="map", seed=seed
    )
    study = optuna.load_study(study_name="shared", storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=n_trials)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

"""The ``source`` of a run: one spelling, ``<origin>:<detail>``.

Runs metaopt trains itself are ``metaopt:<what trained them>``; runs loaded from elsewhere
are named by where they came from (``ingest:<absolute path>``, ``mlflow:<experiment>``,
``optuna:<study>``). ``metaopt runs delete --source …`` takes a source as written here.
Constants only: the warehouse, the trainers and the docs share them.
"""

#: a run of ``metaopt sweep`` / :func:`metaopt_bayes.sweeps.sweep`
SWEEP = "metaopt:sweep"
#: a trial of ``metaopt optimize`` / :func:`metaopt_bayes.search.optimize` (what a re-run resumes)
OPTIMIZE = "metaopt:optimize"
#: the winner of an optimize, retrained on the training split and tested once (``split='test'``)
FINAL = "metaopt:final"
#: a run of ``metaopt example``
EXAMPLE = "metaopt:example"
#: a run of :func:`metaopt_bayes.trainer.train_and_evaluate` (one config, trained and logged)
TRAIN = "metaopt:train"

#: prefixes of the sources of loaded runs (the detail follows the colon)
INGEST = "ingest:"
MLFLOW = "mlflow:"
OPTUNA = "optuna:"

#: spellings written before schema version 3 → today's; sql/schema/0003_run_sources.sql
#: rewrote them in place, and ``runs delete --source`` still accepts them
OLD_SPELLINGS = {
    "metaopt.sweep": SWEEP,
    "metaopt-optimize": OPTIMIZE,
    "metaopt-final": FINAL,
    "metaopt example": EXAMPLE,
    "metaopt": TRAIN,
}

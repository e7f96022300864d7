"""Ask and tell: a search for training loops the user drives (Optuna's ``ask``/``tell``).

:class:`Search` is :func:`metaopt_bayes.search.optimize` turned inside out: ``ask`` proposes
the next config with the same single-family proposer
(:class:`metaopt_bayes.optimize_model.ModelProposer`: recommendations under the meta-learner,
in-flight trials fantasized, an initial design while there is nothing to learn from), and
``tell`` logs the result as a trial (source ``metaopt:optimize``) and lets the proposer learn
from it. Trials live in the warehouse only once told, so a new ``Search`` on the same
warehouse, dataset and model — in another process, or after a crash — continues from them,
and ``optimize`` on the same (dataset, model) counts them too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from metaopt_bayes.batch import acquisition_key
from metaopt_bayes.candidates import load_candidates
from metaopt_bayes.optimize_model import ModelProposer, _resolve_space, objective_metric
from metaopt_bayes.trials import (
    TRIAL_SOURCE,
    Proposal,
    SearchSettings,
    existing_trials,
    log_objective_run,
    objective_result,
    trial_table,
)
from warehouse.errors import ValidationError, one_line
from warehouse.protocol import WarehouseLike


@dataclass
class Trial:
    """One asked config: ``config`` to train, ``run_id`` the run it becomes when told,
    ``number`` its place among the trials of (dataset, model) as this process sees them."""

    number: int
    run_id: str
    config: dict[str, Any]
    proposal: Proposal = field(repr=False)
    asked_at: float = field(default_factory=time.perf_counter, repr=False)


class Search:
    """Ask for configs, train them your way, tell the results.

    >>> s = Search(wh, "churn", "my_xgb", space="xgb.yaml")   # doctest: +SKIP
    >>> trial = s.ask(); s.tell(trial, {"val_auc": train(**trial.config)})  # doctest: +SKIP

    ``tell`` takes what an objective returns (a number, or a dict of metrics with the optional
    ``duration_s``, ``cpu_s``, ``peak_mem_mb`` and ``arch.NAME`` keys: docs/objectives.md);
    without ``duration_s`` the time from ask to tell is logged. ``tell(trial, error=...)``
    logs a failed trial. The metric is chosen as ``optimize`` chooses it (``metric=``, else
    the model's one metric in the warehouse, else the first told result's). The options mean
    what they mean for :func:`metaopt_bayes.search.optimize`.
    """

    def __init__(
        self,
        warehouse: WarehouseLike,
        dataset: str,
        model: str,
        space: Any = None,
        candidates: Any = None,
        *,
        metric: str | None = None,
        direction: str | None = None,
        learner: Any = None,
        acquisition: str = "ei",
        fit_method: str = "nuts",
        refit_every: int = 10,
        n_init: int = 3,
        n_candidates: int = 512,
        seed: int = 0,
    ) -> None:
        self.warehouse, self.dataset, self.model = warehouse, str(dataset), str(model)
        space = _resolve_space(space)
        pool = load_candidates(candidates) if candidates is not None else None
        if space is None and pool is None:
            raise ValidationError("Search needs space= or candidates= to search")
        if learner is not None:
            metric, direction = learner.metric, learner.direction
        self.metric = objective_metric(warehouse, self.model, metric)
        self._direction = direction
        if direction is None and self.metric is not None:
            direction = warehouse.metric_direction(self.metric)
        self.direction = direction
        settings = SearchSettings(
            acquisition=acquisition, refit_every=refit_every, fit_method=fit_method,
            n_candidates=n_candidates, seed=seed,
        )  # fmt: skip
        own = {"space": space.to_dict()} if space is not None else {}

        def make_learner(metric: str, direction: str, exclude: list[str] | None) -> Any:
            if learner is not None:
                return learner.fit(warehouse, exclude=exclude)
            from metaopt_bayes.reuse import learner_for

            return learner_for(
                warehouse, metric, self.model, dataset=self.dataset, exclude=exclude,
                direction=direction, method=fit_method, **own,
            )  # fmt: skip

        self.n_resumed = len(existing_trials(warehouse, self.dataset, [self.model]))
        self._proposer = ModelProposer(
            warehouse, self.dataset, self.model, self.metric, direction == "maximize", space,
            pool, acquisition_key(acquisition), make_learner, learner, None, settings,
            self.n_resumed, n_init, 1, None,
        )  # fmt: skip
        self._pending: dict[str, Trial] = {}
        self._asked = 0

    def ask(self) -> Trial:
        """The next config to train (configs asked and not yet told are fantasized, so
        asking several times gives several distinct configs)."""
        pending = [t.proposal for t in self._pending.values()]
        proposal = self._proposer.propose(pending)
        self._asked += 1
        number = self.n_resumed + self._asked
        trial = Trial(number, uuid.uuid4().hex, dict(proposal.params), proposal)
        self._pending[trial.run_id] = trial
        return trial

    def tell(self, trial: Trial, result: Any = None, *, error: str | None = None) -> str:
        """Log ``trial``'s ``result`` (or, with ``error``, its failure) as a run; returns its
        run id. A result that breaks the objective contract is a one-line error and logs
        nothing (the trial stays asked: tell it again)."""
        if not isinstance(trial, Trial) or trial.run_id not in self._pending:
            raise ValidationError(
                f"{getattr(trial, 'run_id', trial)!r} is not a trial asked by this search "
                "and not yet told"
            )
        elapsed = time.perf_counter() - trial.asked_at
        out: dict[str, Any]
        if error is not None:
            text = one_line(Exception(str(error))) if str(error).strip() else "failed"
            out = {"status": "failed", "metrics": {}, "error": text, "arch": {}}
        else:
            out = {"status": "finished", "error": None, **objective_result(result, self.metric)}
            name = self.metric or next(iter(out["metrics"]))
            value = out["metrics"][name]
            if value != value or value in (float("inf"), float("-inf")):
                out["status"], out["error"] = "failed", f"told no finite {name!r}"
            out["metrics"] = {
                k: v for k, v in out["metrics"].items() if v == v and abs(v) != float("inf")
            }
            if self.metric is None:  # the model's first result names the metric
                self.metric = name
                self.direction = self._direction or self.warehouse.metric_direction(name)
                self._proposer.set_metric(name, self.direction == "maximize")
        out.setdefault("duration_s", elapsed)
        run_id = log_objective_run(
            self.warehouse, self.dataset, self.model, trial.proposal.params, out,
            seed=trial.proposal.seed, source=TRIAL_SOURCE, run_id=trial.run_id,
        )  # fmt: skip
        del self._pending[trial.run_id]
        self._proposer.observe(trial.proposal, run_id, out)
        self._proposer.after_batch(1)
        return run_id

    def trials(self) -> pd.DataFrame:
        """Every told trial of (dataset, model) in the warehouse, any process's, oldest first
        (the columns of ``OptimizeResult.trials``)."""
        if self.metric is None:
            return pd.DataFrame(columns=["number", "run_id", "status", "value", "best"])
        maximize = self.direction == "maximize"
        return trial_table(self.warehouse, self.dataset, [self.model], self.metric, maximize, False)

    def best(self) -> Mapping[str, Any] | None:
        """The best finished trial so far (``run_id``, ``value``, parameters), or None."""
        from metaopt_bayes.trials import best_trial

        row = best_trial(self.trials(), self.direction == "maximize")
        return None if row is None else row.to_dict()


__all__ = ["Search", "Trial"]

"""Ask and tell: a search for training loops the user drives (Optuna's ``ask``/``tell``).

:class:`Search` is :func:`metaopt_bayes.search.optimize` turned inside out: ``ask`` proposes
the next config with the same single-family proposer
(:class:`metaopt_bayes.optimize_model.ModelProposer`: recommendations under the meta-learner,
in-flight trials fantasized, an initial design while there is nothing to learn from), and
``tell`` logs the result as a trial (source ``metaopt:optimize``) and lets the proposer learn
from it. A new ``Search`` on the same warehouse, dataset and model — in another process, or
after a crash — continues from the told trials, and ``optimize`` on the same (dataset, model)
counts them too.

Several processes share the search as ``optimize`` processes do (:mod:`metaopt_bayes.claims`):
``ask`` claims its config in the warehouse's ``trial_claims`` before handing it out (a config
another process is training, or has trained, is replaced by another proposal), other
processes' untold trials are fantasized as pending, ``budget=`` is shared by every process
(``ask`` returns None once it is used up), and ``tell`` logs the run under the claim's
``run_id`` and ends the claim.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from metaopt_bayes.batch import acquisition_key
from metaopt_bayes.candidates import load_candidates
from metaopt_bayes.claims import TrialClaims
from metaopt_bayes.curve_pruning import search_pruning
from metaopt_bayes.optimize_model import ModelProposer, _resolve_space, objective_metric
from metaopt_bayes.pruning import DEFAULT_THRESHOLD, TrialHandle, check_budget, check_threshold
from metaopt_bayes.trials import (
    MAX_REFUSED,
    TRIAL_SOURCE,
    Proposal,
    SearchSettings,
    existing_trials,
    log_objective_run,
    objective_result,
    others_pending,
    trial_table,
)
from warehouse.errors import ValidationError, one_line
from warehouse.protocol import WarehouseLike


@dataclass
class Trial:
    """One asked config: ``config`` to train, ``run_id`` the run it becomes when told,
    ``number`` its place among all trials of (dataset, model), every process's, when it was
    asked (told trials plus trials asked and not yet told, this one included).

    ``report(step, value, elapsed_s=None)`` records the metric after a step of training (the
    curve logged with the run, finished or pruned); ``should_prune()`` says whether the
    search's pruner would stop the trial now (False without ``prune=``, and before any
    report); stop it with ``Search.tell(trial, pruned=True)``."""

    number: int
    run_id: str
    config: dict[str, Any]
    proposal: Proposal = field(repr=False)
    claim_id: str = field(default="", repr=False)
    asked_at: float = field(default_factory=time.perf_counter, repr=False)
    handle: TrialHandle = field(default_factory=TrialHandle, repr=False)

    def report(self, step: int, value: float, elapsed_s: float | None = None) -> None:
        """The metric after ``step`` (whole numbers ≥ 0, increasing); ``elapsed_s``: seconds
        since the trial was asked (measured when not given)."""
        self.handle.report(step, value, elapsed_s)

    def should_prune(self) -> bool:
        """Whether the search's pruner would stop this trial after its last report."""
        return self.handle.should_prune()


class Search:
    """Ask for configs, train them your way, tell the results.

    >>> s = Search(wh, "churn", "my_xgb", space="xgb.yaml", budget=50)   # doctest: +SKIP
    >>> while (trial := s.ask()) is not None:                             # doctest: +SKIP
    ...     s.tell(trial, {"val_auc": train(**trial.config)})

    ``tell`` takes what an objective returns (a number, or a dict of metrics with the optional
    ``duration_s``, ``cpu_s``, ``peak_mem_mb`` and ``arch.NAME`` keys: docs/objectives.md);
    without ``duration_s`` the time from ask to tell is logged. ``tell(trial, error=...)``
    logs a failed trial. The metric is chosen as ``optimize`` chooses it (``metric=``, else
    the model's one metric in the warehouse, else the first told result's). The options mean
    what they mean for :func:`metaopt_bayes.search.optimize`.

    Several processes (or several ``Search`` objects) on one warehouse, dataset and model share
    the search: ``ask`` claims each config first, so no config is handed out twice, and
    ``budget`` (None: no limit) counts every process's told and untold trials — ``ask``
    returns None once it is used up, after waiting for other processes' untold trials while
    they hold the rest of it (one that fails frees its slot). ``release=True`` lets go of the
    warehouse file between calls, so that other processes can ask and tell while this one
    trains (the warehouse cannot be used outside the search's calls then; a file warehouse
    only). An untold trial is kept alive by a heartbeat every ``heartbeat_s`` seconds (a
    background thread while the file is let go of; each call of the search, and
    :meth:`heartbeat`, beats too); one without a heartbeat for ``stale_after`` seconds, or
    whose process on this host is gone, is failed by the next process that asks and its
    config and slot are free again. :meth:`close` gives up the untold trials.

    ``prune``, ``prune_threshold``, ``budget_steps``: as for ``optimize`` (docs/pruning.md).
    Each asked trial's pruner is bound to the incumbent and the dataset's finished curves
    as of its ask; ``trial.report(step, value)`` and ``trial.should_prune()`` use it, and
    ``tell(trial, pruned=True)`` logs the trial as pruned.
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
        budget: int | None = None,
        release: bool = False,
        acquisition: str = "ei",
        fit_method: str = "nuts",
        refit_every: int = 10,
        n_init: int = 3,
        n_candidates: int = 512,
        seed: int = 0,
        heartbeat_s: float | None = None,
        stale_after: float | None = None,
        prune: Any = False,
        prune_threshold: float = DEFAULT_THRESHOLD,
        budget_steps: int | None = None,
    ) -> None:
        self.warehouse, self.dataset, self.model = warehouse, str(dataset), str(model)
        check_threshold(prune_threshold)
        check_budget(budget_steps)
        if budget is not None and (not isinstance(budget, int) or budget < 1 or budget is True):
            raise ValidationError(f"budget must be a positive integer or None, not {budget!r}")
        self.budget = budget
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

        self.claims = TrialClaims(
            warehouse, self.dataset, [self.model], TRIAL_SOURCE, budget=budget,
            heartbeat_s=heartbeat_s, stale_after=stale_after,
        )  # fmt: skip
        self.n_resumed = len(existing_trials(warehouse, self.dataset, [self.model]))
        self._proposer = ModelProposer(
            warehouse, self.dataset, self.model, self.metric, direction == "maximize", space,
            pool, acquisition_key(acquisition), make_learner, learner, None, settings,
            self.n_resumed, n_init, 1, None,
        )  # fmt: skip
        self._pruning = search_pruning(
            warehouse, self.dataset, self.model, self.metric, direction == "maximize", prune,
            prune_threshold, budget_steps,
        )  # fmt: skip
        self._proposer.use_pruning(self._pruning)
        self._pending: dict[str, Trial] = {}
        self.release = bool(release) and hasattr(warehouse, "release")
        self._let_go = False  # the file is let go of between calls (release=True)
        self._beating: contextlib.ExitStack | None = None  # heartbeats while trials are untold
        self._let_go_now()

    # ---- the warehouse file between calls --------------------------------------------------
    def _let_go_now(self) -> None:
        if self.release and not self._let_go:
            self._let_go = bool(self.warehouse.release())  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The warehouse open for one call of the search (let go of again after it)."""
        if self._let_go:
            self.warehouse.reopen()  # type: ignore[attr-defined]
            self._let_go = False
        try:
            yield
        finally:
            self._let_go_now()

    def _claim_ids(self) -> list[str]:
        return [t.claim_id for t in list(self._pending.values()) if t.claim_id]

    def heartbeat(self) -> None:
        """Tell other processes that this one is still training its untold trials (ask and
        tell beat too, and with ``release=True`` a background thread beats every
        ``heartbeat_s``: call this in a long loop that holds the warehouse meanwhile)."""
        ids = self._claim_ids()
        if ids:
            self.warehouse.heartbeat(ids)

    # ---- ask and tell ----------------------------------------------------------------------
    def ask(self) -> Trial | None:
        """The next config to train, claimed for this process; None once ``budget`` is used
        up by every process's trials. Configs asked and not yet told — here or in another
        process — are fantasized, so asking several times gives several distinct configs."""
        with self._held():
            refused = 0
            while True:
                self.heartbeat()
                pending = [t.proposal for t in self._pending.values()]
                proposal = self._proposer.propose(pending + others_pending(self.claims))
                got = self.claims.claim(self.model, proposal.params, proposal.seed)
                if got["status"] == "claimed":
                    break
                if got["status"] == "full":
                    if not got["others_running"]:
                        return None
                    # the rest of the budget is other processes' untold trials: if one of
                    # them fails its slot is this process's to use
                    with self.warehouse.released():
                        time.sleep(min(1.0, float(self.claims.heartbeat_s or 1.0)))
                    continue
                if (refused := refused + 1) >= MAX_REFUSED:
                    raise ValidationError(
                        f"{refused} proposals in a row were configs other processes train or "
                        f"trained; the space of {self.model!r} may be used up"
                    )
            proposal.claim_id, proposal.run_id = got["claim_id"], got["run_id"]
            pruner = None
            if self._pruning is not None:  # the incumbent and context as of this ask
                pruner = self._pruning.for_trial(self.warehouse, proposal.params)
            trial = Trial(
                int(got["used"]), str(got["run_id"]), dict(proposal.params), proposal,
                str(got["claim_id"]), handle=TrialHandle(pruner, self.metric),
            )  # fmt: skip
            self._pending[trial.run_id] = trial
            if self.release and self._beating is None:
                self._beating = contextlib.ExitStack()
                self._beating.enter_context(self.claims.beating(self._claim_ids))
            return trial

    def tell(
        self,
        trial: Trial,
        result: Any = None,
        *,
        error: str | None = None,
        pruned: bool = False,
    ) -> str:
        """Log ``trial``'s ``result`` (or, with ``error``, its failure; with ``pruned=True``,
        its stop by the pruner) as a run under its claim's run id, and end the claim; returns
        the run id. A told failure is a failed run: it counts against ``budget`` (as a failed
        ``optimize`` trial does) and its config may be asked again. A pruned trial is logged
        with status ``'pruned'``, the curve it reported and its last reported value as its
        metric (it needs one ``trial.report`` first, and takes no result); its config is not
        asked again. The curve a finished trial reported is logged with it. A result that
        breaks the objective contract is a one-line error and logs nothing (the trial stays
        asked: tell it again)."""
        if not isinstance(trial, Trial) or trial.run_id not in self._pending:
            raise ValidationError(
                f"{getattr(trial, 'run_id', trial)!r} is not a trial asked by this search "
                "and not yet told"
            )
        elapsed = time.perf_counter() - trial.asked_at
        out: dict[str, Any]
        if pruned:
            out = self._pruned_result(trial, result, error)
        elif error is not None:
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
                with self._held():
                    self.direction = self._direction or self.warehouse.metric_direction(name)
                self._proposer.set_metric(name, self.direction == "maximize")
            if trial.handle.steps:
                out["curve"] = trial.handle.curve(name)
        out.setdefault("duration_s", elapsed)
        with self._held():
            run_id = log_objective_run(
                self.warehouse, self.dataset, self.model, trial.proposal.params, out,
                seed=trial.proposal.seed, source=TRIAL_SOURCE, run_id=trial.run_id,
            )  # fmt: skip
            del self._pending[trial.run_id]
            self.claims.finish(trial.claim_id, error=out.get("error"))
            self.heartbeat()
            if not self._pending:
                self._stop_beating()
            self._proposer.observe(trial.proposal, run_id, out)
            self._proposer.after_batch(1)
        return run_id

    def _pruned_result(self, trial: Trial, result: Any, error: str | None) -> dict[str, Any]:
        """What ``tell(trial, pruned=True)`` logs (one-line errors for what cannot be)."""
        if result is not None or error is not None:
            raise ValidationError(
                "tell(trial, pruned=True) takes no result or error: the trial's last reported "
                "value is its metric"
            )
        handle = trial.handle
        if not handle.steps:
            raise ValidationError(
                f"trial {trial.number} reported no step: call trial.report(step, value) before "
                "telling it pruned (or tell its error)"
            )
        if self.metric is None:
            raise ValidationError(
                "a pruned trial needs the metric named: pass metric= to Search (the model has no "
                "runs to take it from)"
            )
        return {
            "status": "pruned",
            "error": None,
            "metrics": {self.metric: float(handle.values[-1])},
            "arch": {},
            "curve": handle.curve(self.metric),
        }

    def close(self) -> None:
        """Give up the trials asked and not told: their claims fail, so their configs and
        budget slots are free for other processes (a process that ends without telling them
        frees them too, once it is gone or silent for ``stale_after``)."""
        with self._held():
            for trial in list(self._pending.values()):
                with contextlib.suppress(ValidationError):
                    self.claims.finish(trial.claim_id, error="asked and never told")
            self._pending.clear()
            self._stop_beating()

    def _stop_beating(self) -> None:
        if self._beating is not None:
            self._beating.close()
            self._beating = None

    def __enter__(self) -> Search:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trials(self) -> pd.DataFrame:
        """Every told trial of (dataset, model) in the warehouse, any process's, oldest first
        (the columns of ``OptimizeResult.trials``)."""
        if self.metric is None:
            return pd.DataFrame(columns=["number", "run_id", "status", "value", "best"])
        maximize = self.direction == "maximize"
        with self._held():
            return trial_table(
                self.warehouse, self.dataset, [self.model], self.metric, maximize, False
            )

    def best(self) -> Mapping[str, Any] | None:
        """The best finished trial so far (``run_id``, ``value``, parameters), or None."""
        from metaopt_bayes.trials import best_trial

        row = best_trial(self.trials(), self.direction == "maximize")
        return None if row is None else row.to_dict()


__all__ = ["Search", "Trial"]

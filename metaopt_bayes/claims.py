"""Trial claims for searches shared by several processes: the Bayesian side's handle on the
warehouse's ``trial_claims`` (:mod:`warehouse.claims`).

:class:`TrialClaims` is one search's view: which dataset, model families and run source it
counts, its budget, how often its owner heartbeats and when another owner's silent claim is
given up. :func:`metaopt_bayes.trials.run_trials` claims every proposal through it before
training (so ``optimize``, the joint optimizer and sweeps share budgets and never train a
config twice), and an ask/tell worker can do the same: ``ask`` = :meth:`TrialClaims.claim`
(log the run under the returned ``run_id``), ``tell`` = log the run, then
:meth:`TrialClaims.finish`; :meth:`TrialClaims.beating` keeps the claims alive meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metaopt_bayes.space import config_key
from warehouse.errors import ValidationError
from warehouse.owners import owner_id
from warehouse.protocol import WarehouseLike

#: Seconds between heartbeats of a running trial (``$METAOPT_HEARTBEAT_S``).
DEFAULT_HEARTBEAT_S = 10.0
#: Seconds without a heartbeat after which another process's trial is failed and its slot
#: retried (``$METAOPT_STALE_AFTER_S``). Generous: while one process holds the file (a long
#: refit of the learner), the others cannot write their heartbeats.
DEFAULT_STALE_AFTER_S = 300.0


def _seconds(value: float | None, env: str, default: float) -> float:
    if value is None:
        text = os.environ.get(env)
        try:
            value = float(text) if text else default
        except ValueError:
            raise ValidationError(f"{env} must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise ValidationError(f"{env.removeprefix('METAOPT_').lower()} must be > 0, not {value!r}")
    return float(value)


def claim_key(config: Mapping[str, Any], seed: int | None = None) -> str:
    """A config's canonical text (values compared as :func:`config_key` does, so a config
    as proposed and as read back match); with ``seed`` when the seed makes another trial."""
    pairs = sorted(config_key(config), key=lambda kv: kv[0])
    body: dict[str, Any] = {"config": [[k, v] for k, v in pairs]}
    if seed is not None:
        body["seed"] = int(seed)
    return json.dumps(body, default=str, separators=(",", ":"))


@dataclass
class TrialClaims:
    """One search's claims: runs and claims of ``models`` on ``dataset`` from ``source``
    share ``budget`` (None: no total, e.g. a sweep of given configs); ``with_seed``: the
    model seed is part of what makes a trial (sweeps); ``refuse_complete=False``: only
    configs running now are refused (a sweep told to repeat configs); ``retry_taken``: a
    refused proposal is replaced by another (a search) rather than skipped (a design)."""

    warehouse: WarehouseLike
    dataset: str
    models: list[str]
    source: str
    budget: int | None = None
    heartbeat_s: float | None = None
    stale_after: float | None = None
    with_seed: bool = False
    refuse_complete: bool = True
    retry_taken: bool = True
    owner: str = field(default_factory=owner_id)

    def __post_init__(self) -> None:
        self.heartbeat_s = _seconds(self.heartbeat_s, "METAOPT_HEARTBEAT_S", DEFAULT_HEARTBEAT_S)
        self.stale_after = _seconds(
            self.stale_after, "METAOPT_STALE_AFTER_S", DEFAULT_STALE_AFTER_S
        )
        self.models = [str(m) for m in self.models]

    def claim(
        self,
        model: str,
        params: Mapping[str, Any],
        seed: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> dict:
        """Claim the trial of ``model`` with ``params`` (see
        :meth:`warehouse.Warehouse.claim_trial`): ``status`` ``"claimed"`` (log the run under
        ``run_id``), ``"full"`` or ``"taken"``. ``config``: what other processes see as
        pending (default ``params``; a joint search's has a ``model`` key)."""
        key = claim_key(params, seed if self.with_seed else None)
        shown = dict(params if config is None else config)
        return self.warehouse.claim_trial(
            self.dataset, str(model), key, shown, source=self.source,
            models=self.models, budget=self.budget, stale_after=self.stale_after,
            owner=self.owner, refuse_complete=self.refuse_complete,
        )  # fmt: skip

    def finish(self, claim_id: str, error: str | None = None) -> str:
        """``"complete"`` once the claim's run is logged, else ``"fail"`` (its slot freed)."""
        return self.warehouse.finish_claim(claim_id, error=error)

    def others_running(self) -> list[dict[str, Any]]:
        """Trials other processes are training now (``model``, ``config``, …)."""
        return self.warehouse.running_claims(
            self.dataset, self.models, self.source, exclude_owner=self.owner
        )

    def beat(self, claim_ids: Sequence[str]) -> None:
        """Refresh the heartbeat now (from the thread that uses the warehouse)."""
        if claim_ids:
            self.warehouse.heartbeat(list(claim_ids))

    @contextlib.contextmanager
    def beating(self, claim_ids: Callable[[], Sequence[str]]) -> Iterator[None]:
        """A daemon thread that heartbeats ``claim_ids()`` every ``heartbeat_s`` while the
        warehouse is released (the owner beats itself while it holds the file: nobody else
        can read it then)."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.heartbeat_s):
                with contextlib.suppress(Exception):  # a missed beat is retried
                    ids = list(claim_ids())
                    if ids:
                        self.warehouse.heartbeat(ids, released_only=True)

        thread = threading.Thread(target=run, name="metaopt-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "DEFAULT_STALE_AFTER_S",
    "TrialClaims",
    "claim_key",
]

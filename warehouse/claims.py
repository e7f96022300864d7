"""Trial claims: how several search processes share one warehouse (the ``trial_claims`` table).

A search process (``optimize``, a sweep, an ask/tell worker) *claims* each trial before it
trains it: :func:`claim_trial` runs in one write transaction that

1. marks complete the running claims whose run is logged (a process killed between logging
   its run and marking its claim), and fails the running claims whose owner has not
   heartbeaten for ``stale_after`` seconds (as Optuna's ``fail_stale_trials``): their slots
   are free again;
   A claim of a process of this host that is gone (killed) fails at once.
2. counts the search's logged runs (``dataset``, ``models``, ``source``) plus its claims
   still running against ``budget`` (``"full"`` when none is left);
3. refuses a ``config_key`` running now or whose run finished (``"taken"``; a failed
   run's config may be tried again, as a resumed search or sweep does);
4. inserts the claim with the ``run_id`` its run will be logged under.

DuckDB lets one process hold the file at a time, so steps 1–4 see every other process's
claims and no two processes can claim the same slot or config. The owner keeps its claims
alive with :func:`heartbeat` (also while the warehouse is released, see the function) and
ends each with :func:`finish_claim` after logging the run (``complete``) or giving up
(``fail``). Claims are a record, not a lock: a run logged without a claim is still counted.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from warehouse.errors import ValidationError, one_line
from warehouse.owners import owner_gone, owner_id
from warehouse.store import _CONFIG, MEMORY, Store

#: The states of a claim (the CHECK constraint of sql/schema/0005_trial_claims.sql).
STATES = ("running", "complete", "fail")


def _models(models: str | Sequence[str]) -> list[str]:
    out = [models] if isinstance(models, str) else [str(m) for m in models]
    if not out:
        raise ValidationError("claim_trial: models must name at least one model")
    return out


def _settle(con: Any, now: float, stale_after: float | None) -> int:
    """Running claims whose run is logged become complete; those of a process of this host
    that is gone, or without a heartbeat for ``stale_after`` seconds, fail. Returns the
    number failed."""
    con.execute(
        "UPDATE trial_claims SET state = 'complete', finished_at = ? "
        "WHERE state = 'running' AND run_id IN (SELECT run_id FROM runs)",
        [now],
    )
    gone = [
        claim_id
        for claim_id, owner in con.execute(
            "SELECT claim_id, owner FROM trial_claims WHERE state = 'running'"
        ).fetchall()
        if owner_gone(owner)
    ]
    if gone:
        con.execute(
            "UPDATE trial_claims SET state = 'fail', finished_at = ?, "
            "error = 'its process ' || owner || ' is gone: its trial is free again' "
            "WHERE claim_id IN (SELECT unnest(?))",
            [now, gone],
        )
    if stale_after is None:
        return len(gone)
    rows = con.execute(
        "UPDATE trial_claims SET state = 'fail', finished_at = ?, "
        "error = 'no heartbeat for ' || CAST(round(? - heartbeat_at) AS BIGINT) || ' s from ' "
        "|| owner || ' (stale after ' || ? || ' s): its trial is free again' "
        "WHERE state = 'running' AND heartbeat_at < ? RETURNING claim_id",
        [now, now, f"{stale_after:g}", now - stale_after],
    ).fetchall()
    return len(gone) + len(rows)


def claim_trial(
    wh: Store,
    dataset: str,
    model: str,
    config_key: str,
    config: Mapping[str, Any] | None = None,
    *,
    source: str,
    models: str | Sequence[str] | None = None,
    budget: int | None = None,
    stale_after: float | None = None,
    owner: str | None = None,
    refuse_complete: bool = True,
) -> dict[str, Any]:
    """Claim one trial of ``model`` on ``dataset`` for ``config`` (``config_key``: its
    canonical text; the caller decides what makes two configs the same), all in one
    transaction (see the module docstring). ``models``: the search's families (default
    ``[model]``), whose runs and claims share ``budget`` (None: no limit). ``stale_after``:
    seconds without a heartbeat after which another owner's running claim fails (None:
    never). A config is refused while running and once its run finished (a failed run's may
    be tried again); ``refuse_complete=False`` refuses only configs running now (a sweep asked
    to repeat configs). Returns ``status`` (``"claimed"``, ``"full"`` or ``"taken"``),
    ``claim_id`` and ``run_id`` (when claimed), ``used`` (runs + running claims counted
    against the budget, this one included when claimed), ``others_running`` (running claims
    of other owners in the search) and ``failed_stale`` (claims this call failed)."""
    if not isinstance(config_key, str) or not config_key:
        raise ValidationError("claim_trial: config_key must be a non-empty string")
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise ValidationError(f"claim_trial: budget must be an integer >= 0, not {budget!r}")
    if stale_after is not None and not stale_after > 0:
        raise ValidationError(f"claim_trial: stale_after must be > 0 seconds, not {stale_after!r}")
    scope = _models(models if models is not None else model)
    owner = owner or owner_id()
    now = time.time()
    out: dict[str, Any] = {"claim_id": None, "run_id": None}
    with wh._transaction() as con:
        out["failed_stale"] = _settle(con, now, stale_after)
        runs = con.execute(
            "SELECT count(*) FROM runs WHERE dataset = ? AND model IN (SELECT unnest(?)) "
            "AND source = ?",
            [dataset, scope, source],
        ).fetchall()[0][0]
        mine, others = con.execute(
            "SELECT count(*) FILTER (WHERE owner = ?), count(*) FILTER (WHERE owner <> ?) "
            "FROM trial_claims WHERE state = 'running' AND dataset = ? "
            "AND model IN (SELECT unnest(?)) AND source = ?",
            [owner, owner, dataset, scope, source],
        ).fetchall()[0]
        out["used"], out["others_running"] = int(runs + mine + others), int(others)
        if budget is not None and out["used"] >= budget:
            out["status"] = "full"
            return out
        taken = con.execute(
            "SELECT count(*) FROM trial_claims WHERE dataset = ? AND model = ? AND source = ? "
            "AND config_key = ? AND (state = 'running' OR (? AND state = 'complete' AND run_id "
            "IN (SELECT run_id FROM runs WHERE status = 'finished')))",
            [dataset, model, source, config_key, bool(refuse_complete)],
        ).fetchall()[0][0]
        if taken:
            out["status"] = "taken"
            return out
        claim_id, run_id = uuid.uuid4().hex, uuid.uuid4().hex
        con.execute(
            "INSERT INTO trial_claims (claim_id, dataset, model, source, config_key, config, "
            "state, owner, run_id, claimed_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            [
                claim_id, dataset, model, source, config_key,
                json.dumps(dict(config or {}), default=str, sort_keys=True),
                owner, run_id, now, now,
            ],
        )  # fmt: skip
    out.update(status="claimed", claim_id=claim_id, run_id=run_id, used=out["used"] + 1)
    return out


def finish_claim(wh: Store, claim_id: str, error: str | None = None) -> str:
    """End a claim: ``complete`` when its run is logged, else ``fail`` (with ``error``).
    A claim failed as stale meanwhile whose owner did log its run becomes complete: the run
    is there. Returns the state."""
    with wh._transaction() as con:
        rows = con.execute(
            "UPDATE trial_claims SET state = CASE WHEN run_id IN (SELECT run_id FROM runs) "
            "THEN 'complete' ELSE 'fail' END, finished_at = ?, "
            "error = CASE WHEN run_id IN (SELECT run_id FROM runs) THEN NULL "
            "ELSE coalesce(?, error) END "
            "WHERE claim_id = ? RETURNING state",
            [time.time(), error, claim_id],
        ).fetchall()
    if not rows:
        raise ValidationError(f"no trial claim {claim_id!r}")
    return str(rows[0][0])


_HEARTBEAT_SQL = (
    "UPDATE trial_claims SET heartbeat_at = ? "
    "WHERE state = 'running' AND claim_id IN (SELECT unnest(?))"
)


def heartbeat(wh: Store, claim_ids: Sequence[str], released_only: bool = False) -> bool:
    """Refresh the heartbeat of the running ``claim_ids``. On an open warehouse this is one
    small transaction (from the thread that uses the warehouse; ``released_only=True`` skips
    it, for a background thread). On a warehouse let go of (:meth:`Store.released`, while
    trials train) it opens the file briefly on its own connection — safe from another
    thread, since the warehouse cannot be reopened meanwhile — and gives up at once if another
    process holds the file (the next beat tries again). Returns whether it was written."""
    ids = [str(c) for c in claim_ids]
    if not ids or wh.read_only:
        return False
    with wh._life:
        if wh._con is not None:
            if released_only:
                return False
            with wh._transaction() as con:
                con.execute(_HEARTBEAT_SQL, [time.time(), ids])
            return True
        if wh.path == MEMORY:
            return False
        try:
            con = duckdb.connect(wh.path, config=dict(_CONFIG))
        except duckdb.Error:
            return False  # another process holds the file: try at the next beat
        try:
            con.execute(_HEARTBEAT_SQL, [time.time(), ids])
            return True
        except duckdb.Error:
            return False
        finally:
            with contextlib.suppress(duckdb.Error):
                con.close()


def running_claims(
    wh: Store,
    dataset: str,
    models: str | Sequence[str],
    source: str,
    exclude_owner: str | None = None,
) -> list[dict[str, Any]]:
    """The running claims of a search (oldest first), except those of ``exclude_owner``:
    ``claim_id``, ``model``, ``config`` (a dict), ``owner``, ``run_id``, ``heartbeat_at``."""
    rows = wh._read_df(
        "SELECT claim_id, model, config, owner, run_id, heartbeat_at FROM trial_claims "
        "WHERE state = 'running' AND dataset = ? AND model IN (SELECT unnest(?)) "
        "AND source = ? AND owner IS DISTINCT FROM ? ORDER BY claimed_at",
        [dataset, _models(models), source, exclude_owner],
    )
    out = rows.to_dict("records")
    for row in out:
        try:
            row["config"] = json.loads(row["config"]) if row["config"] else {}
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"trial claim {row['claim_id']}: {one_line(exc)}") from None
    return out


__all__ = ["STATES", "claim_trial", "finish_claim", "heartbeat", "running_claims"]

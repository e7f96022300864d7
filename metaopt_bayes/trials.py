"""The trial loop: propose → train (through an executor) → log → learn, and its results.

One loop serves every search: :func:`run_trials` asks a :class:`Proposer` what to train
next (the single-family optimizer, the joint optimizer across families, a sweep's fixed
design), hands each config to a :class:`Runner` (the built-in trainer or a user objective)
on a ``concurrent.futures`` executor — inline, local worker processes, or a Dask cluster —
logs every result as it arrives (only this driving process writes to the warehouse), and
lets the proposer learn between batches. Ctrl-C stops it cleanly; the runs logged so far
stay, so a search called again resumes (Optuna's one ``_optimize`` loop with samplers
plugged in is the model).

Also here: what an optimize call returns (:class:`OptimizeResult`, its trial table) and the
winner retrained on the whole training split and tested once on the held-out split.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import io
import math
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from metaopt_bayes.batch import RANDOM_EVERY, WARM_START, check_warm_start, random_steps
from metaopt_bayes.candidates import PARAM_PREFIX
from metaopt_bayes.claims import TrialClaims
from metaopt_bayes.pruning import (
    DEFAULT_THRESHOLD,
    TrialHandle,
    TrialPruned,
    check_budget,
    check_pruner,
    check_threshold,
    last_point,
)
from metaopt_bayes.space import config_key, plain
from metaopt_bayes.trainer import _PRELOAD, log_trial, make_payload, released_while, run_trial
from warehouse import sources
from warehouse.errors import NotFoundError, ValidationError, one_line
from warehouse.owners import owner_gone, owner_id
from warehouse.protocol import WarehouseLike

TRIAL_SOURCE = sources.OPTIMIZE
FINAL_SOURCE = sources.FINAL
SWEEP_SOURCE = sources.SWEEP


# --------------------------------------------------------------------------------------------
# proposals, runners, executors
# --------------------------------------------------------------------------------------------
@dataclass
class Proposal:
    """One config to train: ``config`` as the proposer sees it (a joint search's has a
    ``model`` key), ``model`` its family, ``params`` what is trained, the model ``seed``, and
    what the learner predicted for it (``mean``, ``sd``, the recommendation frame ``rec``)."""

    config: dict[str, Any]
    model: str
    params: dict[str, Any]
    seed: int
    mean: float | None = None
    sd: float | None = None
    rec: pd.DataFrame | None = None
    index: int | None = None  # a sweep's place in its design
    claim_id: str | None = None  # its trial claim, when several processes share the search
    run_id: str | None = None  # the run_id it is logged under (chosen when claimed)
    number: int | None = None  # its place among the search's logged trials
    pruner: Any = None  # the pruner bound for this trial (incumbent, context), when pruning


class Proposer(Protocol):
    """What to train next, and what to learn from each result."""

    def propose(self, pending: Sequence[Proposal]) -> Proposal: ...

    def observe(self, proposal: Proposal, run_id: str, result: Mapping[str, Any]) -> None: ...

    def after_batch(self, remaining: int) -> None: ...


class Runner(Protocol):
    """How a proposal is trained (a picklable call) and logged. ``pruning``: None, or what
    binds a pruner to each trial (:class:`metaopt_bayes.curve_pruning.SearchPruning`)."""

    worker_data: tuple[Any, ...] | None
    pruning: Any

    def call(self, proposal: Proposal, shipped: bool) -> tuple[Callable[..., Any], tuple]: ...

    def log(
        self, warehouse: WarehouseLike, proposal: Proposal, result: Mapping[str, Any]
    ) -> str: ...


# Per-worker copy of the training data, set once by the pool initializer, so that each trial
# ships only its config to the worker.
_WORKER_DATA: dict[str, Any] = {}


def _end_with_parent(parent: str) -> None:
    """Make this worker end when the process that started the pool dies, even by SIGKILL
    (which runs no cleanup): on Linux the kernel kills it when its parent (the fork server)
    exits (``PR_SET_PDEATHSIG``), and everywhere a daemon thread checks every half second
    that ``parent`` (:func:`warehouse.owners.owner_id` of the driver) still runs."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1

    def watch() -> None:
        while not owner_gone(parent):
            time.sleep(0.5)
        os._exit(1)  # the driver is gone: nobody will log this worker's result

    threading.Thread(target=watch, name="metaopt-parent-watch", daemon=True).start()


def _init_worker(parent: str, *data: Any) -> None:
    _end_with_parent(parent)
    if data:
        _WORKER_DATA["X"], _WORKER_DATA["y"] = data


def _run_with_worker_data(payload: dict[str, Any]) -> dict[str, Any]:
    return run_trial({**payload, "X": _WORKER_DATA["X"], "y": _WORKER_DATA["y"]})


@dataclass
class TrainerRunner:
    """The built-in trainer: cross-validated metrics of a zoo family on ``(X, y)``."""

    dataset: str
    X: pd.DataFrame
    y: np.ndarray
    task: str
    cv: int | float | None
    timeout_s: float | None
    source: str
    metric: str | None = None  # the metric a stepwise fit reports (when pruning)
    pruning: Any = None

    @property
    def worker_data(self) -> tuple[Any, ...]:
        return (self.X, self.y)

    def call(self, proposal: Proposal, shipped: bool) -> tuple[Callable[..., Any], tuple]:
        payload = make_payload(
            self.X, self.y, self.task, proposal.model, proposal.params, self.cv,
            proposal.seed, self.timeout_s, pruner=proposal.pruner,
            metric=self.metric if proposal.pruner is not None else None,
        )  # fmt: skip
        if shipped:  # the worker holds X and y already
            return _run_with_worker_data, (
                {k: v for k, v in payload.items() if k not in ("X", "y")},
            )
        return run_trial, (payload,)

    def log(self, warehouse: WarehouseLike, proposal: Proposal, result: Mapping[str, Any]) -> str:
        return log_trial(
            warehouse, self.dataset, proposal.model, proposal.params, result,
            seed=proposal.seed, source=self.source, run_id=proposal.run_id,
        )  # fmt: skip


@dataclass
class ObjectiveRunner:
    """A user objective ``config -> {metric: value, ...}`` (or a bare number), or
    ``(config, trial) -> ...`` with a :class:`~metaopt_bayes.pruning.TrialHandle`; what it may
    return is :func:`objective_result`'s contract. ``metric`` None: not known yet (a model
    with no runs), the first result names it."""

    dataset: str
    objective: Callable[..., Any]
    metric: str | None
    source: str = TRIAL_SOURCE
    worker_data: tuple[Any, ...] | None = None
    pruning: Any = None

    def call(self, proposal: Proposal, shipped: bool) -> tuple[Callable[..., Any], tuple]:
        return call_objective, (self.objective, self.metric, proposal.params, proposal.pruner)

    def log(self, warehouse: WarehouseLike, proposal: Proposal, result: Mapping[str, Any]) -> str:
        if result.get("bad_return"):  # the objective broke its contract: stop, log nothing
            raise ValidationError(str(result["bad_return"]))
        return log_objective_run(
            warehouse, self.dataset, proposal.model, proposal.params, result,
            seed=proposal.seed, source=self.source, run_id=proposal.run_id,
        )  # fmt: skip


def log_objective_run(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    params: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    seed: int | None,
    source: str,
    run_id: str | None = None,
) -> str:
    """Log one result of a user objective (as :func:`call_objective` returns it) as a run:
    its metrics, its cost (``duration_s``, ``cpu_s``, ``peak_mem_mb``), architecture and the
    curve it reported (``curve``; a pruned trial's is partial)."""
    meta = {k: result[k] for k in ("status", "error", *COST_KEYS) if result.get(k) is not None}
    if result.get("arch"):
        meta["arch"] = dict(result["arch"])
    if result.get("curve"):
        meta["curve"] = list(result["curve"])
    if run_id is not None:
        meta["run_id"] = run_id
    return warehouse.log_run(
        dataset,
        model,
        {k: plain(v) for k, v in params.items()},
        result.get("metrics") or {},
        seed=seed,
        source=source,
        **meta,
    )


@dataclass
class OptimizeResult:
    """What :func:`optimize` did. ``trials``: one row per optimize trial on (dataset, model),
    resumed ones included (``number``, ``run_id``, ``status``, ``value``, ``best``,
    ``predicted_mean``, ``predicted_sd``, ``duration_s``, config columns; ``steps`` when
    trials logged curves). ``n_pruned``: the new trials the pruner stopped."""

    dataset: str
    model: str
    metric: str
    direction: str
    trials: pd.DataFrame
    best_config: dict[str, Any] | None
    best_value: float | None
    best_run_id: str | None
    n_resumed: int = 0
    n_new: int = 0
    interrupted: bool = False
    n_pruned: int = 0  # new trials stopped by the pruner
    test_metrics: dict[str, float] = field(default_factory=dict)
    final_run_id: str | None = None
    model_path: Path | None = None
    learner: Any = None


class _InlineExecutor(cf.Executor):
    """Runs each call at submit time in this process (jobs=1, no pool to start)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut


def make_executor(
    executor: Any, jobs: int, worker_data: tuple[Any, ...] | None = None
) -> tuple[cf.Executor, Callable[[bool], None], bool]:
    """An Executor, its shutdown (``shutdown(wait)``) and whether its workers hold
    ``worker_data`` (then trials ship only their config). ``None`` → inline (``jobs=1``) or
    a local process pool (fork server with the trainer's imports preloaded),
    ``"dask://HOST:PORT"`` → ``dask.distributed.Client(...).get_executor()``, an Executor
    instance → itself (the caller shuts it down)."""
    if isinstance(executor, cf.Executor):
        return executor, lambda wait: None, False
    if isinstance(executor, str):
        if not executor.startswith("dask://"):
            raise ValidationError(f"executor must look like dask://HOST:PORT, not {executor!r}")
        try:
            from dask.distributed import Client
        except ImportError:
            raise ValidationError("--executor dask://… needs dask[distributed] installed") from None
        try:
            client = Client("tcp://" + executor[len("dask://") :], timeout=10)
        except (OSError, TimeoutError) as exc:
            why = one_line(exc)
            raise ValidationError(f"cannot reach the Dask scheduler at {executor}: {why}") from None
        return client.get_executor(), lambda wait: client.close(), False
    if executor is not None:
        raise ValidationError(f"unsupported executor {executor!r}")
    if jobs <= 1:
        return _InlineExecutor(), lambda wait: None, False
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    # workers end with this process, even when it is killed with SIGKILL (no orphans)
    initargs = (owner_id(), *(worker_data or ()))
    pool = cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=initargs
    )
    shipped = worker_data is not None
    return pool, lambda wait: pool.shutdown(wait=wait, cancel_futures=True), shipped


#: the keys of an objective's return that are the run's cost, not metrics
COST_KEYS = ("duration_s", "cpu_s", "peak_mem_mb")
#: an objective's return key ``arch.NAME`` is the architecture descriptor NAME
ARCH_PREFIX = "arch."


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (numpy and 0-d tensors included), else
    None; text and booleans are not numbers here."""
    if isinstance(value, str | bytes | bool | np.bool_) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def objective_result(res: Any, metric: str | None) -> dict[str, Any]:
    """Read what a user objective returned, by its contract:

    - a bare number: the value of ``metric`` (which must then be known);
    - a mapping of ``name -> number``: metrics, except the reserved keys ``duration_s``,
      ``cpu_s``, ``peak_mem_mb`` (the run's cost: finite numbers ≥ 0, used instead of what
      was measured around the call) and ``arch.NAME`` (architecture descriptors: a number,
      a string or a boolean). It must hold ``metric`` when ``metric`` is known, and exactly
      one metric when it is not (the first result of a model with no runs names it).

    Returns ``{"metrics": {...}, "arch": {...}, <cost keys given>}``; a non-finite metric is
    kept as such (the caller fails the trial). Anything else raises a one-line
    :class:`~warehouse.errors.ValidationError` naming the key.
    """
    if not isinstance(res, Mapping):
        value = _number(res)
        if value is None:
            raise ValidationError(
                f"the objective returned {type(res).__name__} {_short(res)}; it must return a "
                "number or a dict of metric names to numbers"
            )
        if metric is None:
            raise ValidationError(
                "the objective returned a bare number but no metric is named and the warehouse "
                "has no runs of this model to take one from: pass metric=NAME (--metric) or "
                "return {NAME: value}"
            )
        return {"metrics": {metric: value}, "arch": {}}
    out: dict[str, Any] = {"metrics": {}, "arch": {}}
    for key, val in res.items():
        name = str(key)
        if name in COST_KEYS:
            num = _number(val)
            if num is None or not math.isfinite(num) or num < 0:
                raise ValidationError(
                    f"the objective returned {name}={_short(val)}; it must be a finite number ≥ 0"
                )
            out[name] = num
        elif name.startswith(ARCH_PREFIX):
            desc = name[len(ARCH_PREFIX) :]
            if not desc:
                raise ValidationError(f"the objective returned key {name!r}: name it arch.NAME")
            if isinstance(val, str | bool | np.bool_):
                out["arch"][desc] = val if isinstance(val, str) else bool(val)
            elif (num := _number(val)) is not None and math.isfinite(num):
                out["arch"][desc] = num
            else:
                raise ValidationError(
                    f"the objective returned {name}={_short(val)}; an architecture descriptor "
                    "must be a finite number, a string or a boolean"
                )
        else:
            num = _number(val)
            if num is None:
                raise ValidationError(
                    f"the objective returned {name!r}: {_short(val)}; a metric must be a number "
                    f"(reserved keys: {', '.join(COST_KEYS)}, arch.NAME)"
                )
            out["metrics"][name] = num
    names = list(out["metrics"])
    if metric is None and len(names) != 1:
        raise ValidationError(
            f"the objective returned {len(names)} metrics ({', '.join(names) or 'none'}) and no "
            "metric is named: pass metric=NAME (--metric) to say which one to optimize"
        )
    if metric is not None and metric not in out["metrics"]:
        raise ValidationError(
            f"the objective returned no {metric!r} (its metrics: {', '.join(names) or 'none'}); "
            "return it, or name another metric"
        )
    return out


def _short(value: Any) -> str:
    text = repr(value).splitlines()[0] if repr(value) else ""
    return text if len(text) <= 60 else text[:57] + "..."


def takes_trial(objective: Callable[..., Any]) -> bool:
    """Whether ``objective`` accepts a second positional argument (the trial handle)."""
    import inspect

    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):  # a builtin or extension callable: one argument
        return False
    try:
        sig.bind(None, None)
    except TypeError:
        return False
    return True


def call_objective(
    objective: Callable[..., Any], metric: str | None, config: dict, pruner: Any = None
) -> dict:
    """Run a user objective on ``config`` and read its return (:func:`objective_result`):
    ``duration_s`` is its wall time and ``cpu_s`` the CPU time of this process during the
    call, unless the objective returned its own. A raising objective, or a non-finite value
    of the metric, gives a failed trial, not a crash; a return that breaks the contract
    gives ``bad_return`` (its one-line message), which stops the search.

    An objective that takes a second argument gets a
    :class:`~metaopt_bayes.pruning.TrialHandle` on ``pruner`` (its ``report`` / ``should_prune``);
    the curve it reports comes back as ``curve``. Raising
    :class:`~metaopt_bayes.pruning.TrialPruned` ends the trial as ``pruned``, its metric the
    last reported value (pruned before any report, or before the metric is named: failed)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"status": "finished", "metrics": {}, "error": None}
    trial = TrialHandle(pruner, metric) if takes_trial(objective) else None
    try:
        res = objective(dict(config)) if trial is None else objective(dict(config), trial)
    except TrialPruned:
        out["status"] = "pruned"
        res = None
    except Exception as exc:
        out["status"], out["error"] = "failed", f"{type(exc).__name__}: {one_line(exc)}"
        res = None
    measured = {"duration_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    if out["status"] == "pruned":
        if trial is None or trial.last_value is None:
            out["status"], out["error"] = "failed", "TrialPruned raised before any trial.report"
        elif metric is None:
            out["status"] = "failed"
            out["error"] = "pruned before the metric was named: pass metric= (--metric)"
        else:
            out["metrics"] = {metric: trial.last_value}
            out["metric"] = metric
    if out["status"] == "finished":
        try:
            out.update(objective_result(res, metric))
        except ValidationError as exc:
            return {**out, "status": "failed", "bad_return": str(exc)}
        name = metric if metric is not None else next(iter(out["metrics"]))
        out["metric"] = name  # what a first result of a model with no runs names
        if not math.isfinite(out["metrics"][name]):
            out["status"], out["error"] = "failed", f"objective returned no finite {name!r}"
        out["metrics"] = {k: v for k, v in out["metrics"].items() if math.isfinite(v)}
    if trial is not None and trial.steps:
        name = out.get("metric") or metric
        if name is not None:
            out["curve"] = trial.curve(name)
    for key, value in measured.items():
        out.setdefault(key, value)
    return out


@dataclass
class LoopOutcome:
    """What :func:`run_trials` did: trials logged, the errors of the failed ones, whether
    Ctrl-C stopped it, and proposals refused as claimed by other processes."""

    n_done: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    n_taken: int = 0  # proposals refused because another process had claimed them
    n_pruned: int = 0  # trials stopped by the pruner (neither finished nor failed)


def _failed(exc: BaseException) -> dict[str, Any]:
    """A crashed trial as a failed run, its error on one line."""
    error = f"{type(exc).__name__}: {one_line(exc)}"
    return {"status": "failed", "metrics": {}, "error": error}


def others_pending(claims: TrialClaims) -> list[Proposal]:
    """Trials other processes are training now, as proposals in flight (fantasized by the
    proposer like this process's own)."""
    out = []
    for c in claims.others_running():
        cfg = dict(c["config"])
        params = {k: v for k, v in cfg.items() if k != "model"}
        out.append(Proposal(cfg, str(c["model"]), params, 0, claim_id=str(c["claim_id"])))
    return out


#: Proposals in a row refused as claimed elsewhere before a process stops proposing.
MAX_REFUSED = 25


def run_trials(
    warehouse: WarehouseLike,
    proposer: Proposer,
    runner: Runner,
    n: int,
    *,
    jobs: int = 1,
    executor: Any = None,
    max_in_flight: int | None = None,
    release: bool = False,
    on_logged: Callable[[Proposal, str, Mapping[str, Any]], None] | None = None,
    warn: bool = True,
    claims: TrialClaims | None = None,
) -> LoopOutcome:
    """Train ``n`` proposals, at most ``max_in_flight`` (default ``jobs``) at a time, logging
    each result as it arrives. The proposer sees the proposals in flight (to fantasize them),
    each logged result (``observe``) and, after each batch, how many are still to propose
    (``after_batch``: where it refits). ``release``: let go of the warehouse file while
    trials train (:meth:`warehouse.Warehouse.released`), so other processes can read the runs
    logged so far. A failed or crashed trial is a failed run, not an error; Ctrl-C ends the
    loop with ``interrupted`` set. Warns when every trial failed (unless not ``warn``).

    ``claims``: the search is shared with other processes (:class:`TrialClaims`). Each
    proposal is claimed before it trains and logged under its claim's run_id; other
    processes' running trials are passed to the proposer as pending; a config claimed
    elsewhere is proposed again (``retry_taken``) or skipped (a sweep's design); when the
    shared budget is used up the loop stops — after waiting, with the file released, for
    other processes' running trials (one that fails frees its slot for this process). Claims
    are heartbeaten while they train and ended when logged (or failed on the way out)."""
    out = LoopOutcome()
    if n <= 0:
        return out
    ex, shutdown, shipped = make_executor(executor, jobs, runner.worker_data)
    inline = isinstance(ex, _InlineExecutor)  # a trial runs in submit itself
    cap = max(1, max_in_flight or jobs)
    in_flight: dict[cf.Future, Proposal] = {}
    claimed: dict[str, Proposal] = {}  # this process's live claims
    remaining = int(n)
    full = waiting = False  # the shared budget is used (others' trials may still fail)
    refused = 0
    beating = claims.beating(lambda: list(claimed)) if claims else contextlib.nullcontext()
    try:
        with beating:
            while True:
                while remaining > 0 and len(in_flight) < cap and not full:
                    pending = list(in_flight.values())
                    if claims is not None:
                        pending += others_pending(claims)
                    proposal = proposer.propose(pending)
                    if claims is not None:
                        got = claims.claim(
                            proposal.model, proposal.params, proposal.seed, proposal.config
                        )
                        if got["status"] == "full":
                            full, waiting = True, got["others_running"] > 0
                            break
                        if got["status"] == "taken":
                            out.n_taken += 1
                            if not claims.retry_taken:
                                remaining -= 1  # a design point another process trains
                            elif (refused := refused + 1) >= MAX_REFUSED:
                                full, waiting = True, False
                                warnings.warn(
                                    f"stopping: {refused} proposals in a row were claimed "
                                    "by other processes",
                                    stacklevel=3,
                                )
                            continue
                        refused = 0
                        proposal.claim_id, proposal.run_id = got["claim_id"], got["run_id"]
                        claimed[str(proposal.claim_id)] = proposal
                        claims.beat(list(claimed))
                    pruning = getattr(runner, "pruning", None)
                    if pruning is not None:  # the incumbent and context as of now
                        proposal.pruner = pruning.for_trial(
                            warehouse, proposal.params, proposal.model
                        )
                    fn, args = runner.call(proposal, shipped)
                    with released_while(warehouse, release and inline):
                        fut = ex.submit(fn, *args)
                    in_flight[fut] = proposal
                    remaining -= 1
                if not in_flight:
                    if claims is not None and full and waiting and remaining > 0:
                        # the budget is held by other processes' running trials: if one of
                        # them dies its slot is this process's to retry
                        with released_while(warehouse, True):
                            time.sleep(min(1.0, float(claims.heartbeat_s or 1.0)))
                        full = False
                        continue
                    break
                if claims is not None:
                    claims.beat(list(claimed))
                with released_while(warehouse, release and not all(f.done() for f in in_flight)):
                    done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    proposal = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # the worker crashed: still a failed run
                        result = _failed(exc)
                    run_id = runner.log(warehouse, proposal, result)
                    if claims is not None and proposal.claim_id is not None:
                        claims.finish(proposal.claim_id)
                        claimed.pop(proposal.claim_id, None)
                        proposal.number = warehouse.count_runs(
                            dataset=claims.dataset, model=claims.models, source=claims.source
                        )
                    out.n_done += 1
                    if result.get("status") == "pruned":
                        out.n_pruned += 1
                    elif result.get("status") != "finished":
                        out.errors.append(str(result.get("error") or "failed"))
                    proposer.observe(proposal, run_id, result)
                    if on_logged is not None:
                        on_logged(proposal, run_id, result)
                if full and waiting:
                    full = False  # look again: other trials may have failed meanwhile
                proposer.after_batch(remaining)
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        for fut in in_flight:
            fut.cancel()
        shutdown(not out.interrupted)
        if claims is not None:
            for claim_id in list(claimed):  # not logged: the slot is free for others
                with contextlib.suppress(Exception):
                    claims.finish(claim_id, error="interrupted before its run was logged")
    if warn:
        warn_if_all_failed(out, stacklevel=4)
    return out


def warn_if_all_failed(out: LoopOutcome, stacklevel: int = 3) -> None:
    """Warn when every trial of a loop failed (an objective that always raises, a setting
    the trainer refuses), with the first error."""
    if out.n_done and len(out.errors) == out.n_done:
        warnings.warn(
            f"every one of the {out.n_done} new trials failed; the first: {out.errors[0]}",
            stacklevel=stacklevel,
        )


def fit_without_target(
    fit: Callable[[list[str] | None], Any], dataset: str, others: int
) -> tuple[Any, int | None]:
    """``fit(exclude)`` with the target ``dataset`` left out when ``others`` (runs on other
    datasets) > 0, else — or when that fails — with it. Returns the fitted object (None when
    nothing could be fitted) and ``others`` if the target was left out, else None."""
    for exclude in ([dataset], None) if others else (None,):
        try:
            return fit(exclude), (others if exclude else None)
        except (ValidationError, np.linalg.LinAlgError):
            continue  # nothing (or too little) to learn from this way
    return None, None


def other_runs(warehouse: WarehouseLike, dataset: str, models: str | list[str]) -> int:
    """Finished runs of ``models`` on datasets other than ``dataset``: what a meta-learner
    fitted without the target learns from (``optimize`` refits only when this changes)."""
    return warehouse.count_runs(model=models, exclude=[dataset], status="finished")


class LearningProposer:
    """The part of a proposer that learns: the learner is fitted on the *other* datasets (the
    target's trials act through the closed-form few-shot update, see :func:`fit_without_target`)
    once ``n_init`` trials exist or at once when there is history, and refitted every
    ``refit_every`` logged trials — only when the other datasets gained runs meanwhile (the
    target is left out, so the same data would give the same fit). Subclasses implement
    ``propose`` and may extend ``observe`` and ``on_refit``."""

    def __init__(
        self,
        fit: Callable[[list[str] | None], Any],
        others: Callable[[], int],
        dataset: str,
        learner: Any,
        n_resumed: int,
        n_init: int,
        refit_every: int,
        remaining: int,
    ) -> None:
        self._fit, self._others, self.dataset = fit, others, dataset
        self.n_resumed, self.n_init, self.refit_every = n_resumed, n_init, refit_every
        self.step = n_resumed  # proposals made, resumed trials included
        self.n_done = self.since_refit = 0
        self.fitted_on: int | None = None  # other datasets' runs seen by the last fit
        fitted = learner is not None and getattr(learner, "is_fitted", True)
        self.learner: Any = learner if fitted else None
        if remaining and self.learner is None:
            self.learner = self.fit_learner()

    def fit_learner(self) -> Any:
        """A fit without the target (with it when nothing else exists); None: nothing to
        learn from yet, the initial design goes on."""
        fitted, self.fitted_on = fit_without_target(self._fit, self.dataset, self._others())
        return fitted

    def refit(self) -> Any:
        if self.learner is not None and self.fitted_on == self._others():
            return self.learner
        return self.fit_learner() or self.learner

    def on_refit(self) -> None:
        """Called after each scheduled refit."""

    def record(self, rec: pd.DataFrame, run_id: str) -> None:
        """Store the recommendation a trial came from with its run (subclasses)."""

    def observe(self, proposal: Proposal, run_id: str, result: Mapping[str, Any]) -> None:
        self.n_done += 1
        self.since_refit += 1
        if proposal.rec is not None and self.learner is not None:
            # the run is logged; its recommendation row is a record, not worth failing for
            with contextlib.suppress(Exception):
                self.record(proposal.rec, run_id)

    def after_batch(self, remaining: int) -> None:
        if remaining and self.learner is None and self.n_resumed + self.n_done >= self.n_init:
            self.learner = self.fit_learner()
            self.since_refit = 0
        elif remaining and self.refit_every and self.since_refit >= self.refit_every:
            self.learner = self.refit()  # a full refit, few-shot updates in between
            self.on_refit()
            self.since_refit = 0


@dataclass(frozen=True)
class SearchSettings:
    """How an optimize call runs its trials: the options every proposer shares (see
    :func:`metaopt_bayes.search.optimize` for each one's meaning)."""

    acquisition: str = "ei"
    executor: Any = None
    jobs: int = 1
    refit_every: int = 10
    n_init: int | None = None
    fit_method: str = "nuts"
    cv: int | float | None = 5
    seed: int = 0
    test_size: float = 0.25
    retrain: bool = True
    n_candidates: int = 512
    timeout_s: float | None = None
    artifacts_dir: str | Path | None = None
    callback: Callable[[dict[str, Any]], None] | None = None
    release: bool = False
    reuse: bool = True
    random_every: int = RANDOM_EVERY
    warm_start: int = WARM_START
    heartbeat_s: float | None = None
    stale_after: float | None = None
    prune: Any = False
    prune_threshold: float = DEFAULT_THRESHOLD
    budget_steps: int | None = None

    def claims(
        self, warehouse: WarehouseLike, dataset: str, models: Sequence[str], budget: int
    ) -> TrialClaims:
        """The search's trial claims: the runs and running claims of ``models`` on
        ``dataset`` share ``budget`` with every other process optimizing them."""
        return TrialClaims(
            warehouse, dataset, [str(m) for m in models], TRIAL_SOURCE, budget=int(budget),
            heartbeat_s=self.heartbeat_s, stale_after=self.stale_after,
        )  # fmt: skip

    def check(self, budget: Any) -> None:
        """One-line errors for a budget or a worker count that cannot work."""
        if not isinstance(budget, int | np.integer) or budget < 1:
            raise ValidationError(f"budget must be a positive integer, not {budget!r}")
        if not isinstance(self.jobs, int | np.integer) or self.jobs < 1:
            raise ValidationError(f"jobs must be a positive integer, not {self.jobs!r}")
        random_steps(self.random_every, None, 0, 0)  # a whole number ≥ 0, or a one-line error
        check_warm_start(self.warm_start)
        check_threshold(self.prune_threshold)
        check_budget(self.budget_steps)
        if self.prune not in (None, False, True):
            check_pruner(self.prune)

    def reporter(
        self, n_resumed: int, proposer: LearningProposer, metric: str | None, joint: bool
    ) -> Callable[[Proposal, str, Mapping[str, Any]], None]:
        """The loop's ``on_logged`` hook: one event per logged trial for ``callback``
        (``number``, ``run_id``, [``model``,] ``status``, ``config``, ``metric``, ``value``,
        ``predicted_mean``, ``predicted_sd``, ``duration_s``, ``error``, ``steps``: the last
        step reported, None without a curve). A pruned trial's ``value`` is its last reported
        one (status ``'pruned'``), not a final value. ``metric`` None: the one the result
        names (a user objective's first result on a model with no runs)."""

        def report(p: Proposal, run_id: str, result: Mapping[str, Any]) -> None:
            if self.callback is None:
                return
            name = metric if metric is not None else result.get("metric")
            number = p.number if p.number is not None else n_resumed + proposer.n_done
            event: dict[str, Any] = {"number": number, "run_id": run_id}
            if joint:
                event["model"] = p.model
            event.update(
                status=result.get("status"),
                config=p.params,
                metric=name,
                value=(result.get("metrics") or {}).get(name) if name else None,
                predicted_mean=p.mean,
                predicted_sd=p.sd,
                duration_s=result.get("duration_s"),
                error=result.get("error"),
                steps=last_point(result.get("curve"))[0],
            )
            self.callback(event)

        return report


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
def existing_trials(warehouse: WarehouseLike, dataset: str, models: Sequence[str]) -> pd.DataFrame:
    """The optimize trials already in the warehouse for ``dataset`` and ``models``, oldest
    first (``run_id``, ``model``, ``status``, ``seq``)."""
    return warehouse.trials(dataset, model=[str(m) for m in models], source=TRIAL_SOURCE)


def trial_table(
    warehouse: WarehouseLike,
    dataset: str,
    models: Sequence[str],
    metric: str,
    maximize: bool,
    joint: bool,
) -> pd.DataFrame:
    """Optimize trials with their metric and config, oldest first, with the running best
    (``number``, ``run_id``, [``model``,] ``status``, ``value``, parameters, ``best``; and
    ``steps``, the last step each trial reported, when any trial logged a curve). A pruned
    trial's ``value`` is its last reported value; ``best`` is the best finished value so far
    (a failed or pruned trial's row carries the best before it)."""
    ids = existing_trials(warehouse, dataset, models)
    if not joint:
        ids = ids.drop(columns=["model"])
    if ids.empty and not joint:
        return pd.DataFrame(columns=["number", "run_id", "status", "value", "best"])
    try:
        tm = warehouse.training_matrix(
            metric, model=None if joint else models[0], datasets=[dataset]
        )
    except NotFoundError:
        tm = pd.DataFrame(columns=["run_id", "value"])
    keep = ["run_id", "value"] + [c for c in tm.columns if str(c).startswith(PARAM_PREFIX)]
    tm = tm[tm["run_id"].isin(ids["run_id"])][keep] if len(tm) else pd.DataFrame(columns=keep)
    df = ids.merge(tm, on="run_id", how="left").drop(columns=["seq"])
    df = df.rename(
        columns=lambda c: c[len(PARAM_PREFIX) :] if str(c).startswith(PARAM_PREFIX) else c
    )
    df.insert(0, "number", np.arange(1, len(df) + 1))
    df = _with_pruned_configs(warehouse, df, dataset)
    df = _with_curves(warehouse, df, dataset, metric)
    v = pd.to_numeric(df["value"], errors="coerce").where(df["status"] == "finished")
    df["best"] = ((v if maximize else -v).cummax() * (1 if maximize else -1)).ffill()
    return df


def _with_pruned_configs(warehouse: WarehouseLike, df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The trial table with the parameters of its pruned trials (the training matrix holds
    finished runs only)."""
    pruned = df["status"] == "pruned"
    if not pruned.any():
        return df
    runs = warehouse.view(
        "run_features", dataset=dataset, status="pruned", run_id=list(df.loc[pruned, "run_id"])
    )
    out = df.copy()
    where = {str(r): i for i, r in zip(out.index, out["run_id"], strict=True)}
    for rid, num, text in zip(runs["run_id"], runs["params_num"], runs["params_text"], strict=True):
        for name, value in {**dict(num or {}), **dict(text or {})}.items():
            if name not in out.columns:
                out[name] = np.nan
            if isinstance(value, str) and out[name].dtype != object:
                out[name] = out[name].astype(object)
            out.at[where[str(rid)], name] = value
    return out


def _with_curves(
    warehouse: WarehouseLike, df: pd.DataFrame, dataset: str, metric: str
) -> pd.DataFrame:
    """The trial table with ``steps`` (each trial's last reported step) and a pruned trial's
    ``value`` (its last reported one), when any trial logged a curve of ``metric``."""
    curves_of = getattr(warehouse, "curves", None)  # a warehouse older than curves: none
    if curves_of is None or not len(df):
        return df
    cur = curves_of(dataset=dataset, metric=metric, run_ids=[str(r) for r in df["run_id"]])
    if cur is None or not len(cur):
        return df
    last = cur.sort_values(["run_id", "step"]).groupby("run_id").tail(1).set_index("run_id")
    steps = df["run_id"].map(last["step"])
    pruned = df["status"] == "pruned"
    out = df.copy()
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    out.loc[pruned, "value"] = df.loc[pruned, "run_id"].map(last["value"]).astype(float)
    out.insert(list(out.columns).index("value") + 1, "steps", steps.astype("Int64"))
    return out


def best_trial(trials: pd.DataFrame, maximize: bool) -> pd.Series | None:
    """The row of the best finished trial, or None (a pruned trial's partial value never
    counts)."""
    if not len(trials):
        return None
    vals = pd.to_numeric(trials["value"], errors="coerce")
    if "status" in trials.columns:
        vals = vals.where(trials["status"] == "finished")
    fin = vals[vals.notna()]
    if fin.empty:
        return None
    return trials.loc[fin.idxmax() if maximize else fin.idxmin()]


# --------------------------------------------------------------------------------------------
# the winner, retrained
# --------------------------------------------------------------------------------------------
def train_test_indices(
    y: np.ndarray, task: str, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and held-out test split (stratified for classification when
    every class has two rows). Deterministic in ``seed`` so a resumed run uses the same split."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    strat = None
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        strat = y if counts.min() >= 2 else None
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(te)


def fit_and_test(
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    model: str,
    config: Mapping[str, Any],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    seed: int = 0,
) -> tuple[Any, dict[str, float], float]:
    """Fit ``model(config)`` (with the zoo's preprocessing) on the training rows, evaluate it
    once on the test rows. Returns ``(fitted pipeline, test metrics, fit seconds)``."""
    from sklearn.base import clone

    from metaopt_bayes import trainer
    from metaopt_bayes.zoo import get_family, make_pipeline

    family = get_family(model)
    numeric, categorical = trainer.split_columns(X)
    pipe = clone(
        make_pipeline(family.make_estimator(dict(config), task, seed), numeric, categorical)
    )
    Xtr, Xte, ytr, yte = X.iloc[train_idx], X.iloc[test_idx], y[train_idx], y[test_idx]
    t0 = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(Xtr, ytr)
        fit_s = time.perf_counter() - t0
        pred = pipe.predict(Xte)
        if task != "classification":
            return pipe, trainer.regression_metrics(yte.astype(float), pred), fit_s
        classes = np.unique(y)
        yc, pc = np.searchsorted(classes, yte), np.searchsorted(classes, pred)
        proba = None
        if hasattr(pipe, "predict_proba"):
            try:
                p = pipe.predict_proba(Xte)
                proba = np.zeros((len(Xte), len(classes)))
                proba[:, np.searchsorted(classes, pipe.classes_)] = p
            except AttributeError:
                proba = None
    return pipe, trainer.classification_metrics(yc, pc, proba, None, len(classes)), fit_s


@dataclass
class Holdout:
    """The built-in trainer's data with its train / held-out test split (``seed`` draws it)."""

    X: pd.DataFrame
    y: np.ndarray
    task: str
    train: np.ndarray
    test: np.ndarray

    @classmethod
    def split(cls, X: pd.DataFrame, y: Any, task: str, test_size: float, seed: int) -> Holdout:
        y = np.asarray(y)
        tr, te = train_test_indices(y, task, test_size, seed)
        return cls(X, y, task, tr, te)

    def training(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The training split, as trials see it."""
        return self.X.iloc[self.train].reset_index(drop=True), self.y[self.train]


def settle_winner(
    warehouse: WarehouseLike,
    result: OptimizeResult,
    data: Holdout,
    seed: int,
    artifacts_dir: str | Path | None,
) -> None:
    """Retrain the best config on the whole training split and test it once — unless the
    call ran nothing new and finds the winner it retrained before (same config and seed, its
    estimator still saved), which it keeps."""
    if result.interrupted or result.best_config is None:
        return
    if result.n_new or not reuse_final(warehouse, result, seed, artifacts_dir):
        retrain_winner(
            warehouse, result, data.X, data.y, data.task, data.train, data.test, seed,
            artifacts_dir,
        )  # fmt: skip


def retrain_winner(
    warehouse: WarehouseLike,
    result: OptimizeResult,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    tr_idx: np.ndarray,
    te_idx: np.ndarray,
    seed: int,
    artifacts_dir: str | Path | None,
) -> None:
    """Refit the best config on the whole training split, test it once, save and log it."""
    cfg = {k: v for k, v in result.best_config.items() if v is not None}
    est, metrics, fit_s = fit_and_test(X, y, task, result.model, cfg, tr_idx, te_idx, seed)
    result.test_metrics = metrics
    run_id = warehouse.log_run(
        result.dataset,
        result.model,
        {k: plain(v) for k, v in result.best_config.items()},
        metrics,
        split="test",
        source=FINAL_SOURCE,
        seed=seed,
        duration_s=fit_s,
    )
    result.final_run_id = run_id
    path = _artifact_path(warehouse, result, run_id, artifacts_dir)
    if path is not None:
        save_winner(est, path)
        result.model_path = path


def save_winner(est: Any, path: Path) -> None:
    """Save a fitted estimator as a joblib pickle at ``path`` and its SHA-256 beside it
    (``<file>.sha256``, in ``sha256sum`` format) for :func:`load_winner` to check."""
    import joblib

    buf = io.BytesIO()
    joblib.dump(est, buf)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    _hash_path(path).write_text(f"{digest}  {path.name}\n", encoding="utf-8")


def _hash_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_winner(path: str | Path) -> Any:
    """The retrained winner ``optimize`` saved at ``path`` — after checking the file against the
    SHA-256 written beside it (``<file>.sha256``). The file is a joblib pickle: loading one can
    run any code, so only load files you (or metaopt on your machine) wrote. The check catches
    a file replaced or damaged since it was written; it cannot protect against someone able to
    rewrite both files. A missing or different hash is a one-line error, and nothing is
    unpickled."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"no saved model at {str(path)!r}")
    side = _hash_path(path)
    if not side.is_file():
        raise ValidationError(
            f"{path.name} has no {side.name} beside it: refusing to unpickle an unchecked file"
        )
    expected = side.read_text(encoding="utf-8").split()[:1]
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected != [actual]:
        raise ValidationError(
            f"{path.name} does not match its {side.name} (changed since it was saved): "
            "refusing to unpickle it"
        )
    return joblib.load(path)


def _artifact_path(
    warehouse: WarehouseLike, result: OptimizeResult, run_id: str, artifacts_dir: str | Path | None
) -> Path | None:
    """Where the retrained winner of ``run_id`` is saved: ``artifacts_dir``, else
    ``metaopt_models/`` beside the warehouse file (None for an in-memory warehouse)."""
    folder = Path(artifacts_dir) if artifacts_dir is not None else None
    wh_path = getattr(warehouse, "path", None)
    if folder is None and wh_path not in (None, ":memory:"):
        folder = Path(str(wh_path)).resolve().parent / "metaopt_models"
    if folder is None:
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in result.dataset)
    return folder / f"{safe}-{result.model}-{run_id}.joblib"


def reuse_final(
    warehouse: WarehouseLike, result: OptimizeResult, seed: int, artifacts_dir: str | Path | None
) -> bool:
    """Fill ``result`` from the newest retrained winner of (dataset, model) and ``seed`` (the
    seed draws the test split) when it has the best config and its saved estimator is still
    there; False otherwise. ``test_size`` is not recorded with the winner: after changing it
    with nothing new to run, the earlier winner's test score is reported until its saved
    estimator is removed."""
    final = warehouse.latest_run(
        result.dataset, result.model, source=FINAL_SOURCE, seed=int(seed), split="test"
    )
    if final is None:
        return False
    run_id = str(final["run_id"])
    if config_key(final["params"]) != config_key(result.best_config):
        return False  # the best trial changed since that retraining
    path = _artifact_path(warehouse, result, run_id, artifacts_dir)
    if path is not None and not path.exists():
        return False
    result.test_metrics = {k: float(v) for k, v in final["metrics"].items()}
    result.final_run_id, result.model_path = run_id, path
    return True


__all__ = [
    "ARCH_PREFIX",
    "COST_KEYS",
    "Holdout",
    "LearningProposer",
    "LoopOutcome",
    "ObjectiveRunner",
    "OptimizeResult",
    "Proposal",
    "Proposer",
    "Runner",
    "SearchSettings",
    "TrainerRunner",
    "best_trial",
    "call_objective",
    "existing_trials",
    "fit_and_test",
    "fit_without_target",
    "log_objective_run",
    "make_executor",
    "objective_result",
    "other_runs",
    "run_trials",
    "settle_winner",
    "trial_table",
    "warn_if_all_failed",
]

"""Sweeps: many training experiments over a search space, logged as runs.

:func:`sweep` samples ``n`` configurations from a space (scrambled Sobol, see
:meth:`metaopt_bayes.space.SearchSpace.sample`), evaluates them — side by side in local
worker processes (``jobs``) or on any ``concurrent.futures.Executor`` you pass, e.g. a Dask
cluster's ``Client.get_executor()`` — and logs each result as it arrives. Workers only
compute; the driving process is the only one that writes to the warehouse. A failing or
timed-out configuration becomes a ``failed`` run with its error and the sweep goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.claims import TrialClaims
from metaopt_bayes.space import SearchSpace, config_key, is_missing
from metaopt_bayes.trainer import check_setup, load_dataset
from metaopt_bayes.trials import SWEEP_SOURCE, Proposal, TrainerRunner, run_trials
from warehouse.errors import ValidationError
from warehouse.protocol import WarehouseLike


class DesignProposer:
    """A sweep's proposals: its configs in design order, nothing learned."""

    def __init__(self, model: str, configs: list[dict[str, Any]], seeds: list[int]) -> None:
        self.model, self.configs, self.seeds = model, configs, seeds
        self.next = 0

    def propose(self, pending: Sequence[Proposal]) -> Proposal:
        i, self.next = self.next, self.next + 1
        cfg = self.configs[i]
        return Proposal(cfg, self.model, cfg, self.seeds[i], index=i)

    def observe(self, proposal: Proposal, run_id: str, result: Mapping[str, Any]) -> None:
        pass

    def after_batch(self, remaining: int) -> None:
        pass


def _resolve_space(space: SearchSpace | dict | str | None, family: Any, task: str) -> SearchSpace:
    if space is None:
        return family.default_space(task)
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_file(space)


def design_seed(seed: int, dataset: str) -> int:
    """The Sobol scramble seed of a sweep: stable across runs and platforms (CRC-32 of the
    dataset name, not Python's salted ``hash``), different for each dataset."""
    return (int(seed) * 1_000_003 + zlib.crc32(str(dataset).encode())) % 2**32


def finished_configs(warehouse: WarehouseLike, dataset: str, model: str) -> set[frozenset]:
    """The configs (:func:`config_key`) that have a finished run of ``model`` on ``dataset``,
    whatever space they were drawn from: a parameter a later space leaves out makes another
    config."""
    return {config_key(cfg) for cfg in warehouse.finished_configs(dataset, model) if cfg}


def _complete(space: SearchSpace, record: Mapping[str, Any]) -> dict[str, Any]:
    """A drawn or given row as a valid config: a missing value is left out (inactive, or
    fixed and filled in), except for a categorical with a null choice, where None is the
    choice and must stay named to be chosen."""
    nullable = {
        p.name
        for p in space.params
        if p.kind == "categorical" and any(is_missing(c) for c in p.choices or ())
    }
    return space.validate(
        {
            k: None if is_missing(v) else v
            for k, v in record.items()
            if not is_missing(v) or k in nullable
        }
    )


def new_design_points(
    space: SearchSpace, n: int, seed: int, done: set[frozenset]
) -> list[tuple[int, dict[str, Any]]]:
    """The first ``n`` distinct configs of the scrambled Sobol sequence (seed ``seed``) that
    are not in ``done`` (:func:`config_key`), each with its index in the sequence; fewer
    when the space has no more."""
    if n <= 0:
        return []
    m = n + len(done)
    limit = 16 * m + 256  # a small discrete space runs out of new configs: stop looking
    while True:
        picked: list[tuple[int, dict[str, Any]]] = []
        seen = set(done)
        for i, rec in enumerate(space.sample(m, seed=seed).to_dict("records")):
            cfg = _complete(space, rec)
            key = config_key(cfg)
            if key not in seen:
                seen.add(key)
                picked.append((i, cfg))
                if len(picked) >= n:
                    return picked
        if m >= limit:
            return picked
        m = min(2 * m, limit)


def sweep(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    n: int,
    space: SearchSpace | dict | str | None = None,
    jobs: int = 1,
    seed: int = 0,
    progress: bool = True,
    cv: int | float | None = 5,
    timeout_s: float | None = None,
    executor: cf.Executor | None = None,
    configs: pd.DataFrame | Iterable[dict[str, Any]] | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
    include_run: bool = False,
    release: bool = False,
) -> list[str]:
    """Train ``n`` configurations of ``model`` on ``dataset`` and log every run.

    ``space``: a SearchSpace, a dict, a YAML/JSON path, or None for the model's default.
    ``configs``: explicit configurations instead of sampling (each validated by the space).
    ``jobs``: local worker processes (ignored when ``executor`` is given). ``timeout_s``:
    per-config limit; the fit runs in a child process that is killed at the deadline.
    ``on_result(run_id, result)`` is called as each run is logged (``result``: the trainer's
    status, metrics, duration_s, error, and the ``config``).
    Returns the run_ids in the order the configurations were drawn. ``release``: let go of
    the warehouse file while trials run (:meth:`warehouse.Warehouse.released`), so other
    processes can read what is logged so far; the CLI does.

    Sampled configurations skip those that already have a finished run of ``model`` on
    ``dataset`` (unless ``include_run``): a second sweep with the same seed continues the
    design with ``n`` new points instead of repeating the first ones, and a sweep stopped
    after k of its n runs and started again with ``n - k`` trains exactly the configs it had
    not finished (failed runs are tried again). Fewer than ``n`` come back when the space has
    fewer new configurations (a small discrete space). Configs are compared on every
    parameter they set, so one a later space leaves out makes a different config.

    The sampled configurations are a scrambled Sobol set whose scramble depends on ``seed``
    *and* ``dataset`` (:func:`design_seed`): the same sweep is reproducible, and sweeps of
    several datasets cover the space with different points. A meta-learner needs that: a
    history whose datasets all share the same 12 configs cannot identify the 21 terms of a
    5-parameter quadratic basis, and a target's new configs then move population effects
    that no history run pinned down.
    """
    from metaopt_bayes.zoo import get_family

    family = get_family(model)
    if not isinstance(n, int | np.integer) or n < 0:
        raise ValidationError(f"n must be a non-negative integer, not {n!r}")
    if not isinstance(jobs, int | np.integer) or jobs < 1:
        raise ValidationError(f"jobs must be a positive integer, not {jobs!r}")
    X, y, task = load_dataset(warehouse, dataset)
    if not family.supports(task):
        raise ValidationError(f"model {model!r} does not support {task} (dataset {dataset!r})")
    sp = _resolve_space(space, family, task)
    if configs is not None:
        records = configs.to_dict("records") if isinstance(configs, pd.DataFrame) else configs
        cfgs = [_complete(sp, c) for c in records]
        seeds = [seed + i for i in range(len(cfgs))]
    else:
        done = set() if include_run else finished_configs(warehouse, dataset, model)
        picked = new_design_points(sp, int(n), design_seed(seed, dataset), done)
        cfgs = [cfg for _, cfg in picked]
        # a config's model seed follows its place in the design, so a continued sweep
        # gives each new config the seed it would have had in one long sweep
        seeds = [seed + i for i, _ in picked]
    if not cfgs:
        return []
    check_setup(family, cfgs, y, task, cv)  # what would fail every trial fails here, once
    run_ids: list[str | None] = [None] * len(cfgs)
    runner = TrainerRunner(dataset, X, y, task, cv, timeout_s, SWEEP_SOURCE)
    inline = executor is None and jobs == 1

    with _Progress(progress, len(cfgs), f"{model} on {dataset}") as bar:

        def logged(p: Proposal, run_id: str, result: Mapping[str, Any]) -> None:
            run_ids[p.index] = run_id
            if on_result is not None:
                on_result(run_id, {**result, "config": p.config})
            bar.advance(result)

        # another sweep of the same design in another process trains its share of the
        # configs: a config (with its seed) claimed or logged there is skipped here
        claims = TrialClaims(
            warehouse, dataset, [model], SWEEP_SOURCE, with_seed=True,
            refuse_complete=not include_run, retry_taken=False,
        )  # fmt: skip
        done = run_trials(
            warehouse, DesignProposer(model, cfgs, seeds), runner, len(cfgs), jobs=int(jobs),
            executor=executor, max_in_flight=None if inline else len(cfgs), release=release,
            on_logged=logged, claims=claims,
        )  # fmt: skip
    if done.interrupted:
        raise KeyboardInterrupt
    return [r for r in run_ids if r is not None]


class _Progress:
    """A rich progress bar counting finished and failed trials (silent when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self.failed = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
                console=Console(stderr=True),
            )
            self._p.__enter__()
            from rich.markup import escape

            self._task = self._p.add_task(escape(self.label), total=self.total, failed=0)
        return self

    def advance(self, result: dict[str, Any]) -> None:
        if result.get("status") != "finished":
            self.failed += 1
        if self.enabled:
            self._p.update(self._task, advance=1, failed=self.failed)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self._p.__exit__(*exc)

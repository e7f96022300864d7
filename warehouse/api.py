"""The Warehouse facade: every public method, each delegating to the module that does it.

:class:`Warehouse` is the :class:`~warehouse.store.Store` core (connection, lock,
migrations, transactions, reads) plus the methods the Bayesian side and the CLI call. The
modules below it (:mod:`~warehouse.ingest`, :mod:`~warehouse.query`,
:mod:`~warehouse.records`, :mod:`~warehouse.datasets`) take a ``Store`` and never import this
module, so the imports point one way only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from warehouse import claims, ingest, lookups, query, records
from warehouse import curves as _curves
from warehouse.store import Store

if TYPE_CHECKING:
    import pandas as pd


class Warehouse(Store):
    """An embedded DuckDB warehouse of training runs.

    ``Warehouse(path=None, read_only=False, busy_timeout=None, query_timeout=None)``:
    ``path`` ``None`` means ``$METAOPT_DB``, else ``./metaopt.duckdb``; ``":memory:"`` is an
    in-memory warehouse. ``busy_timeout`` (default 3 s, ``$METAOPT_BUSY_TIMEOUT``) bounds the
    wait for a file another process holds; ``query_timeout`` (default 300 s,
    ``$METAOPT_QUERY_TIMEOUT``; 0 = none) bounds :meth:`sql` and :meth:`view`.
    Opening applies pending schema migrations (refusing a file written by a newer metaopt)
    and (re)creates the views. Use it as a context manager or call :meth:`close`.
    """

    # ------------------------------------------------------------------ writing
    def log_run(
        self,
        dataset: str,
        model: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        *,
        curve: Any = None,
        **meta: Any,
    ) -> str:
        """Log one run; returns its ``run_id``. ``status`` may be ``'pruned'`` (a trial a
        pruner stopped early); ``curve`` is its learning curve, a list of dicts (or a
        DataFrame) with ``metric, step, value`` and optionally ``elapsed_s``, written in the
        same transaction. See :func:`warehouse.ingest.log_run`."""
        return ingest.log_run(
            self, dataset, model, params or {}, metrics or {}, curve=curve, **meta
        )

    def log_runs(self, data: Any, curves: Any = None) -> int:
        """Bulk-log runs in the MLflow layout, all or nothing; returns the number of runs.
        ``curves``: learning-curve points of these runs (or of runs already logged), long
        ``run_id, metric, step, value[, elapsed_s]`` or MLflow's ``run_id, key, value, step,
        timestamp``, in the same transaction. See :func:`warehouse.ingest.log_runs`."""
        return ingest.log_runs(self, data, curves=curves)

    def log_curves(self, data: Any) -> int:
        """Log learning-curve points of runs already in the warehouse (a DataFrame, Arrow
        table, CSV/Parquet path or list of dicts in either layout of :meth:`log_runs`), all
        or nothing; returns the number of points. See :mod:`warehouse.curves`."""
        return _curves.log_curves(self, data)

    def delete_runs(
        self,
        run_ids: Sequence[str] | None = None,
        dataset: str | None = None,
        model: str | None = None,
        source: str | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete runs by id and/or filters, all or nothing; returns the deleted ids. See
        :func:`warehouse.ingest.delete_runs`."""
        return ingest.delete_runs(
            self, run_ids, dataset=dataset, model=model, source=source, dry_run=dry_run
        )

    def set_metric_range(
        self, metric: str, lower: float | None = None, upper: float | None = None
    ) -> None:
        """Set the range of ``metric`` (None: an open end); values outside it are refused at
        ingest and reported by :meth:`check`. See :func:`warehouse.ingest.set_metric_range`
        and the table of known metrics in :mod:`warehouse.metric_ranges`."""
        ingest.set_metric_range(self, metric, lower, upper)

    def log_dataset_meta_features(self, data: Any, method: str = "user") -> int:
        """Log a wide table ``dataset`` + one numeric column per meta-feature; returns the
        number of values written. See :func:`warehouse.ingest.log_dataset_meta_features`."""
        return ingest.log_dataset_meta_features(self, data, method=method)

    def register_dataset(
        self,
        name: str,
        data: Any,
        target: str,
        task: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Register a dataset and compute its meta-features (see warehouse.datasets)."""
        from warehouse.datasets import register_dataset  # numpy/pandas: only when needed

        return register_dataset(self, name, data, target, task=task, source=source)

    def record_meta_model(self, **row: Any) -> str:
        """Store one fitted meta-model's row; returns its ``model_id``."""
        return records.record_meta_model(self, **row)

    def record_recommendations(self, df: pd.DataFrame) -> list[str]:
        """Store recommendations (one row each); returns their ``rec_id`` values."""
        return records.record_recommendations(self, df)

    # ------------------------------------------------------------------ trial claims
    def claim_trial(
        self,
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
        """Claim one trial for a search shared by several processes, in one transaction:
        ``status`` ``"claimed"`` (with ``claim_id`` and the ``run_id`` to log it under),
        ``"full"`` (the budget is used) or ``"taken"`` (the config is claimed or done). See
        :func:`warehouse.claims.claim_trial`."""
        return claims.claim_trial(
            self, dataset, model, config_key, config, source=source, models=models,
            budget=budget, stale_after=stale_after, owner=owner, refuse_complete=refuse_complete,
        )  # fmt: skip

    def finish_claim(self, claim_id: str, error: str | None = None) -> str:
        """End a trial claim: ``"complete"`` when its run is logged, else ``"fail"``."""
        return claims.finish_claim(self, claim_id, error=error)

    def heartbeat(self, claim_ids: Sequence[str], released_only: bool = False) -> bool:
        """Keep running trial claims alive, also while the file is released (see
        :func:`warehouse.claims.heartbeat`)."""
        return claims.heartbeat(self, claim_ids, released_only=released_only)

    def running_claims(
        self,
        dataset: str,
        models: str | Sequence[str],
        source: str,
        exclude_owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Running trial claims of a search (other owners' only, with ``exclude_owner``)."""
        return claims.running_claims(self, dataset, models, source, exclude_owner=exclude_owner)

    # ------------------------------------------------------------------ reading
    def catalog(self, cached: bool = False) -> frozenset[str]:
        """Names of the tables and views a user query may read (see
        :func:`warehouse.query.catalog`)."""
        return query.catalog(self, cached=cached)

    def has_dataset(self, name: str) -> bool:
        """Whether ``name`` is a registered dataset, has runs (imported histories) or has
        meta-features."""
        return lookups.has_dataset(self, name)

    def metric_direction(self, metric: str) -> str:
        """``'maximize'`` or ``'minimize'``: the direction registered for ``metric`` (by ingest
        or an import), else the one its name suggests (loss, error, time, … are minimized)."""
        return lookups.metric_direction(self, metric)

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """Run one safe, read-only query (see :mod:`warehouse.query`), stopped after
        ``timeout`` seconds (default: ``query_timeout``; 0 = no limit) with
        :class:`~warehouse.errors.QueryTimeoutError` or by Ctrl-C."""
        from warehouse import query as q  # the parameter is named like the module

        return q.safe_sql(self, query, params, timeout=timeout)

    def view(self, name: str, **filters: Any) -> pd.DataFrame:
        """Read a named view; filters are equality tests on its columns (a list means IN)."""
        return query.view(self, name, **filters)

    def views(self) -> pd.DataFrame:
        """The named views with their header comments."""
        return query.list_views()

    def runs(
        self, dataset: str | None = None, model: str | None = None, limit: int | None = 20
    ) -> pd.DataFrame:
        """The most recently logged runs (newest first), optionally filtered."""
        return query.recent_runs(self, dataset=dataset, model=model, limit=limit)

    def training_matrix(
        self,
        metric: str,
        model: str | None = None,
        datasets: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        split: str = "valid",
    ) -> pd.DataFrame:
        """One row per finished run having ``metric`` (see
        :func:`warehouse.query.training_matrix`)."""
        return query.training_matrix(
            self, metric, model=model, datasets=datasets, exclude=exclude, split=split
        )

    def curves(
        self,
        dataset: str | Sequence[str] | None = None,
        model: str | Sequence[str] | None = None,
        metric: str | Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Learning-curve points: columns ``run_id, dataset, model, status, metric, step,
        elapsed_s, value`` (``elapsed_s`` NaN when unknown), ordered by run (logging order),
        metric and step; each filter given must match (a name or a list). See
        :func:`warehouse.curves.read`."""
        return _curves.read(
            self, dataset=dataset, model=model, metric=metric, run_ids=run_ids, status=status
        )

    def meta_features(self, datasets: Sequence[str] | None = None) -> pd.DataFrame:
        """Wide meta-features: index ``dataset``, one float column per meta-feature name."""
        return query.meta_features(self, datasets=datasets)

    # ------------------------------------------------------------------ datasets
    def dataset_names(self) -> list[str]:
        """Every dataset name the warehouse knows (registered, created by ingest, or with
        runs), sorted."""
        return lookups.dataset_names(self)

    def dataset_task(self, name: str) -> str | None:
        """``'classification'`` or ``'regression'`` as registered; None for an unknown
        dataset or one known only by name (see :func:`warehouse.datasets.dataset_task`)."""
        from warehouse import datasets  # numpy/pandas: only when needed

        return datasets.dataset_task(self, name)

    def dataset_info(self, name: str) -> dict[str, Any]:
        """The ``datasets`` row of ``name`` (task, target, n_rows, n_features, n_classes, …)
        plus ``n_meta_features``; :class:`~warehouse.errors.NotFoundError` when unknown."""
        from warehouse import datasets

        return datasets.dataset_info(self, name)

    def dataset_frame(self, name: str) -> tuple[pd.DataFrame, str, str]:
        """The stored table of a registered dataset: ``(frame, target, task)`` (see
        :func:`warehouse.datasets.load_dataset_frame`)."""
        from warehouse import datasets

        return datasets.load_dataset_frame(self, name)

    # ------------------------------------------------------------------ runs
    def model_names(self) -> list[str]:
        """The model families that have runs, sorted."""
        return lookups.model_names(self)

    def count_runs(
        self,
        dataset: str | None = None,
        model: str | Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        status: str | None = None,
        source: str | None = None,
    ) -> int:
        """The number of runs matching every filter given (``model``: a name or a list);
        ``exclude`` leaves those datasets out (see :func:`warehouse.lookups.count_runs`)."""
        return lookups.count_runs(
            self, dataset=dataset, model=model, exclude=exclude, status=status, source=source
        )

    def trials(
        self,
        dataset: str,
        model: str | Sequence[str] | None = None,
        source: str | None = None,
    ) -> pd.DataFrame:
        """The runs on ``dataset`` (of ``model``, a name or a list; from ``source``), oldest
        first: columns ``run_id, model, status, seq``."""
        return lookups.trials(self, dataset, model=model, source=source)

    def finished_configs(self, dataset: str, model: str) -> list[dict[str, Any]]:
        """The configuration of each finished run of ``model`` on ``dataset``, oldest first,
        values as stored (see :func:`warehouse.lookups.finished_configs`)."""
        return lookups.finished_configs(self, dataset, model)

    def latest_run(
        self,
        dataset: str,
        model: str,
        source: str | None = None,
        seed: int | None = None,
        split: str = "test",
    ) -> dict[str, Any] | None:
        """The newest finished run of ``model`` on ``dataset`` (from ``source``, with
        ``seed``) with its ``params`` and its ``metrics`` on ``split``; None if there is none
        (see :func:`warehouse.lookups.latest_run`)."""
        return lookups.latest_run(self, dataset, model, source=source, seed=seed, split=split)

    def metric_counts(self, model: str | None = None) -> dict[str, int]:
        """``{metric: number of values logged}`` (by the runs of ``model`` when given), the
        most logged first."""
        return lookups.metric_counts(self, model=model)

    def meta_models(
        self,
        metric: str | None = None,
        model_family: str | None = None,
        id_prefix: str | None = None,
        saved_only: bool = False,
        settings_hash: str | None = None,
    ) -> pd.DataFrame:
        """Recorded meta-model fits, newest first, every ``meta_models`` column (see
        :func:`warehouse.records.meta_models`)."""
        return records.meta_models(
            self,
            metric=metric,
            model_family=model_family,
            id_prefix=id_prefix,
            saved_only=saved_only,
            settings_hash=settings_hash,
        )

    # ------------------------------------------------------------------ audits
    def check(self) -> pd.DataFrame:
        """Run every audit in ``sql/audits``; one row per audit with its failing-row count."""
        return query.run_audits(self)

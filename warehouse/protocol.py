"""What the Bayesian side (metaopt_bayes) may ask of a warehouse, as a typed protocol.

:class:`warehouse.api.Warehouse` satisfies it (tests/warehouse/test_protocol.py checks each
member's signature); a test double or another backend only needs these members. The module
imports neither duckdb nor pandas at runtime, so code can be typed against it for free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd


@runtime_checkable
class WarehouseLike(Protocol):
    """The members of a warehouse that metaopt_bayes uses (see :class:`warehouse.Warehouse`
    for what each does)."""

    #: The database file, or ``":memory:"``.
    path: str

    @property
    def schema_version(self) -> int: ...

    def released(self, patience: float | None = None) -> AbstractContextManager[None]: ...

    # ---------------------------------------------------------------- writing
    def log_run(
        self,
        dataset: str,
        model: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        *,
        curve: Any = None,
        **meta: Any,
    ) -> str: ...

    def log_runs(self, data: Any, curves: Any = None) -> int: ...

    def log_curves(self, data: Any) -> int: ...

    def delete_runs(
        self,
        run_ids: Sequence[str] | None = None,
        dataset: str | None = None,
        model: str | None = None,
        source: str | None = None,
        dry_run: bool = False,
    ) -> list[str]: ...

    def register_dataset(
        self,
        name: str,
        data: Any,
        target: str,
        task: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]: ...

    def record_meta_model(self, **row: Any) -> str: ...

    def record_recommendations(self, df: pd.DataFrame) -> list[str]: ...

    # ---------------------------------------------------------------- trial claims
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
    ) -> dict[str, Any]: ...

    def finish_claim(self, claim_id: str, error: str | None = None) -> str: ...

    def heartbeat(self, claim_ids: Sequence[str], released_only: bool = False) -> bool: ...

    def running_claims(
        self,
        dataset: str,
        models: str | Sequence[str],
        source: str,
        exclude_owner: str | None = None,
    ) -> list[dict[str, Any]]: ...

    # ---------------------------------------------------------------- reading
    def has_dataset(self, name: str) -> bool: ...

    def metric_direction(self, metric: str) -> str: ...

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> pd.DataFrame: ...

    def view(self, name: str, **filters: Any) -> pd.DataFrame: ...

    def runs(
        self, dataset: str | None = None, model: str | None = None, limit: int | None = 20
    ) -> pd.DataFrame: ...

    def training_matrix(
        self,
        metric: str,
        model: str | None = None,
        datasets: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        split: str = "valid",
    ) -> pd.DataFrame: ...

    def curves(
        self,
        dataset: str | Sequence[str] | None = None,
        model: str | Sequence[str] | None = None,
        metric: str | Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
    ) -> pd.DataFrame: ...

    def meta_features(self, datasets: Sequence[str] | None = None) -> pd.DataFrame: ...

    def dataset_names(self) -> list[str]: ...

    def dataset_task(self, name: str) -> str | None: ...

    def dataset_info(self, name: str) -> dict[str, Any]: ...

    def dataset_frame(self, name: str) -> tuple[pd.DataFrame, str, str]: ...

    def model_names(self) -> list[str]: ...

    def count_runs(
        self,
        dataset: str | None = None,
        model: str | Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        status: str | None = None,
        source: str | None = None,
    ) -> int: ...

    def trials(
        self,
        dataset: str,
        model: str | Sequence[str] | None = None,
        source: str | None = None,
    ) -> pd.DataFrame: ...

    def finished_configs(self, dataset: str, model: str) -> list[dict[str, Any]]: ...

    def latest_run(
        self,
        dataset: str,
        model: str,
        source: str | None = None,
        seed: int | None = None,
        split: str = "test",
    ) -> dict[str, Any] | None: ...

    def metric_counts(self, model: str | None = None) -> dict[str, int]: ...

    def meta_models(
        self,
        metric: str | None = None,
        model_family: str | None = None,
        id_prefix: str | None = None,
        saved_only: bool = False,
        settings_hash: str | None = None,
    ) -> pd.DataFrame: ...

    # ---------------------------------------------------------------- audits
    def check(self) -> pd.DataFrame: ...

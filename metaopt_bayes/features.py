"""Training matrix → design matrix for the meta-learner.

Three pure, serialisable pieces (no warehouse, no PyMC):

* :func:`infer_param_specs` — the kind (``numeric``, ``int``, ``bool``, ``categorical``) and
  scale (log when a positive range spans two or more orders of magnitude) of each
  ``params.<name>`` column, inferred from the data unless a search space overrides it.
* :class:`FeatureEncoder` — encodes a configuration table to a basis ``φ(x)``: an intercept,
  the linear terms (numeric mapped to ``c ∈ [-1, 1]``, booleans ``±1``, categoricals in
  treatment coding, a 0/1 indicator per parameter that can be unset), centred squares
  ``c² − 1/3`` of the numeric terms (so the fitted surface can have interior optima), and
  pairwise interactions ``c_i c_j`` of the numeric/boolean terms.
* :class:`MetaFeatureScaler` — dataset meta-features → ``z_d = [1, standardized features,
  missing-pattern indicators]``. A missing value is imputed with 0 (the training mean after
  standardizing) and flagged by an indicator shared by all features that go missing together,
  so datasets without meta-features are kept, not dropped.

Everything round-trips through ``to_dict`` / ``from_dict`` (JSON-safe) for ``MetaLearner.save``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from warehouse.errors import ValidationError

PARAM_PREFIX = "params."
KINDS = ("numeric", "int", "bool", "categorical")
_NONE_STRINGS = {"", "none", "null", "nan", "na"}
_TRUE_STRINGS = {"true", "yes"}
_FALSE_STRINGS = {"false", "no"}
#: encoded numeric values are clipped to this band so the quadratic terms do not explode
#: when a candidate lies far outside the range seen in training.
_CLIP = 1.25
#: what predict/recommend add to configs: allowed (and ignored) when configs are read back
PREDICTION_COLUMNS = (
    "mean",
    "sd",
    "lower",
    "upper",
    "acquisition",
    "rank",
    "random",
    "predicted_s",
)


@dataclass
class ParamSpec:
    """How one hyperparameter is encoded.

    ``low``/``high`` are on the encoded scale (``log10`` of the value when ``log``).
    ``per_row``: the parameter counts training rows (e.g. ``min_samples_leaf``) and is encoded
    as ``log10(value / rows)``, rows being the dataset's size (its ``n_instances``).
    """

    name: str
    kind: str
    log: bool = False
    low: float = 0.0
    high: float = 1.0
    levels: list[str] = field(default_factory=list)
    nullable: bool = False
    per_row: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# raw value cleaning


def _as_object_column(values: pd.Series) -> pd.Series:
    """Normalise a raw column: ``None``-like strings → None, 'True'/'False' → bool."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    ):  # fast path: plain numbers, NaN = unset
        arr = values.to_numpy(dtype=float, na_value=np.nan)
        out = arr.astype(object)
        out[np.isnan(arr)] = None
        return pd.Series(out, index=values.index)

    def clean(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, str):
            s = v.strip()
            low = s.lower()
            if low in _NONE_STRINGS:
                return None
            if low in _TRUE_STRINGS:
                return True
            if low in _FALSE_STRINGS:
                return False
            try:
                return float(s)
            except ValueError:
                return s
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | float | np.integer | np.floating):
            return float(v)
        return str(v)

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [clean(u) for u in uniques]
    table[-1] = None  # code -1: missing
    return pd.Series(table[codes], index=values.index)


def _numeric_values(col: pd.Series) -> np.ndarray:
    """Float array with NaN for unset; booleans → 0/1; raises on text."""
    vals = col.to_numpy(dtype=object)
    for v in pd.unique(vals):
        if isinstance(v, str):
            raise ValueError(v)
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)


def param_columns(df: pd.DataFrame) -> list[str]:
    """Parameter names (without the ``params.`` prefix) of a training-matrix frame."""
    return [c[len(PARAM_PREFIX) :] for c in df.columns if c.startswith(PARAM_PREFIX)]


# --------------------------------------------------------------------------------------------
# kind inference


def _spec_from_space(name: str, entry: Any) -> ParamSpec:
    """A ParamSpec from one search-space entry (mapping or object with the same fields)."""

    def get(key: str, default: Any = None) -> Any:
        if isinstance(entry, dict):
            return entry.get(key, default)
        return getattr(entry, key, default)

    kind = str(get("kind", None) or get("type", None) or "numeric").lower()
    kind = {
        "float": "numeric",
        "real": "numeric",
        "integer": "int",
        "boolean": "bool",
        "categorical": "categorical",
        "choice": "categorical",
        "cat": "categorical",
    }.get(kind, kind)
    if kind not in KINDS:
        raise ValidationError(f"search space parameter {name!r}: unknown kind {kind!r}")
    log = bool(get("log", False))
    if kind == "categorical":
        choices = list(get("choices", None) or get("levels", None) or [])
        if choices and all(isinstance(c, bool | np.bool_) for c in choices):
            return ParamSpec(name, "bool", low=0.0, high=1.0, nullable=True)  # as logged: 0/1
        # levels as the runs' values are read back (100 → 100.0 → "100.0"), or none would match
        cleaned = _as_object_column(pd.Series(choices, dtype=object))
        return ParamSpec(name, kind, levels=[_level(c) for c in cleaned], nullable=True)
    if kind == "bool":
        return ParamSpec(name, kind, low=0.0, high=1.0, nullable=True)
    low, high = get("low", None), get("high", None)
    if low is None or high is None:
        raise ValidationError(f"search space parameter {name!r}: needs low and high")
    low, high = float(low), float(high)
    if log:
        if low <= 0:
            raise ValidationError(f"search space parameter {name!r}: log scale needs low > 0")
        low, high = math.log10(low), math.log10(high)
    return ParamSpec(name, kind, log=log, low=low, high=high, nullable=True)


def _space_entries(space: Any) -> dict[str, Any]:
    """Normalise a search space (mapping, ``.to_dict()``, or ``.params`` list) to a mapping."""
    if space is None:
        return {}
    if hasattr(space, "to_dict"):
        space = space.to_dict()
    if isinstance(space, dict):
        if "params" in space and isinstance(space["params"], list | dict):
            space = space["params"]
        if isinstance(space, dict):
            return dict(space)
    if hasattr(space, "params"):
        space = space.params
    if isinstance(space, list):
        return {(e["name"] if isinstance(e, dict) else e.name): e for e in space}
    raise ValidationError(f"search space of type {type(space).__name__} is not understood")


def _level(v: Any) -> str:
    return "None" if v is None else str(v)


def infer_param_specs(
    runs: pd.DataFrame,
    space: Any = None,
    log_span: float = 100.0,
    per_row: Any = (),
    rows: np.ndarray | None = None,
) -> list[ParamSpec]:
    """Infer one :class:`ParamSpec` per varying ``params.<name>`` column.

    Rules (data-driven, overridden per parameter by ``space``): text → categorical; only 0/1
    → bool; all integral → int; otherwise numeric. A numeric/int parameter is on log scale
    when all its values are positive and ``max/min ≥ log_span``. Parameters that never vary
    (one value, never unset) carry no information and are dropped. A positive numeric
    parameter named in ``per_row`` is encoded relative to its dataset's rows (``rows``, one per
    run; see :class:`ParamSpec`), its range taken from the runs, whatever the space says.
    """
    overrides = _space_entries(space)
    per_row = set(per_row) if rows is not None else set()
    specs: list[ParamSpec] = []
    for name in param_columns(runs):
        if name in per_row:
            spec = _per_row_spec(name, runs[PARAM_PREFIX + name], np.asarray(rows, float))
            if spec is not None:
                specs.append(spec)
                continue
        if name in overrides:
            entry = overrides[name]
            kind = entry.get("type") if isinstance(entry, dict) else getattr(entry, "kind", None)
            if kind != "fixed":  # a fixed parameter carries no information
                specs.append(_spec_from_space(name, entry))
            continue
        col = _as_object_column(runs[PARAM_PREFIX + name])
        nullable = bool(col.isna().any())
        present = col.dropna()
        if present.empty:
            continue
        try:
            values = _numeric_values(present)
        except ValueError:
            levels = sorted(
                {_level(v) for v in col}, key=lambda s: (-int((col.map(_level) == s).sum()), s)
            )
            if len(levels) > 1:
                specs.append(ParamSpec(name, "categorical", levels=levels, nullable=False))
            continue
        uniq = np.unique(values)
        if len(uniq) == 1 and not nullable:
            continue
        if set(uniq.tolist()) <= {0.0, 1.0} and (
            len(uniq) == 2 or all(isinstance(v, bool) for v in present)
        ):
            specs.append(ParamSpec(name, "bool", low=0.0, high=1.0, nullable=nullable))
            continue
        kind = "int" if np.all(np.equal(np.mod(values, 1.0), 0.0)) else "numeric"
        lo, hi = float(values.min()), float(values.max())
        log = lo > 0 and hi / lo >= log_span
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            hi = lo + 1.0
        specs.append(ParamSpec(name, kind, log=log, low=lo, high=hi, nullable=nullable))
    return specs


def _per_row_spec(name: str, col: pd.Series, rows: np.ndarray) -> ParamSpec | None:
    """The spec of a row-counting parameter, or None when it cannot be one (text values,
    non-positive values, or a run whose dataset size is unknown)."""
    try:
        values = _numeric_values(_as_object_column(col))
    except ValueError:
        return None
    present = ~np.isnan(values)
    if not present.any() or np.any(values[present] <= 0):
        return None
    if not np.all(np.isfinite(rows[present]) & (rows[present] > 0)):
        return None
    rel = np.log10(values[present]) - np.log10(rows[present])
    lo, hi = float(rel.min()), float(rel.max())
    kind = "int" if np.all(np.equal(np.mod(values[present], 1.0), 0.0)) else "numeric"
    return ParamSpec(
        name, kind, log=True, low=lo, high=max(hi, lo + 1.0), nullable=True, per_row=True
    )


# --------------------------------------------------------------------------------------------
# encoder


class FeatureEncoder:
    """Encode configurations to the basis ``φ(x)`` the meta-learner regresses on.

    ``φ(x) = [1, ℓ(x), q(x), r(x)]`` with linear terms ``ℓ`` (numeric ``c = 2u − 1`` where
    ``u`` is the value's position in ``[low, high]`` on its (log) scale, booleans ``±1``,
    categoricals treatment-coded against their most frequent level, 0/1 indicators for unset
    nullable parameters), squares ``q_j = c_j² − 1/3`` of numeric terms (zero mean under a
    uniform ``c``) and pairwise products ``r_ij`` of numeric/boolean terms. Unset numeric values
    are encoded ``c = 0`` with their indicator set, so the indicator's coefficient is the effect
    of "unset" relative to the middle of the range.

    ``ties``: groups of non-constant 0/1 columns (unset indicators, categorical levels) that
    were identical on every training run, e.g. the indicators of parameters that are only
    ever unset together. The data identify only their summed effect, so each group is one
    column ``mean(a, b, …)``: 1 where every member is 1, ``k/m`` where ``k`` of its ``m``
    members are. That is the equal split a symmetric prior would give, without the direction
    the likelihood cannot see (along which NUTS chains wander without converging).
    """

    def __init__(
        self,
        specs: list[ParamSpec],
        quadratic: bool = True,
        interactions: bool = True,
        ties: list[list[str]] | None = None,
        other_params: list[str] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.quadratic = bool(quadratic)
        self.interactions = bool(interactions)
        self.ties = [list(g) for g in ties or [] if len(g) > 1]
        #: parameters of the training runs (or the space) that are not in the basis because
        #: they never varied, e.g. a fixed ``max_iter``; None for files older than the record
        self.other_params = None if other_params is None else sorted(set(other_params))
        self._build_names()

    # ---- construction -------------------------------------------------------------------
    def _build_names(self) -> None:
        lin: list[str] = []
        self._smooth: list[str] = []  # names of numeric/int/bool linear terms
        self._numeric: list[str] = []
        for s in self.specs:
            if s.kind == "categorical":
                lin += [f"{s.name}[{lv}]" for lv in s.levels[1:]]
                continue
            lin.append(s.name)
            self._smooth.append(s.name)
            if s.kind in ("numeric", "int"):
                self._numeric.append(s.name)
            if s.nullable:
                lin.append(f"{s.name}[unset]")
        for group in self.ties:
            missing = [g for g in group if g not in lin or g in self._smooth]
            if missing:
                raise ValidationError(f"tied basis column {missing[0]!r} is not a 0/1 column")
            first = lin.index(group[0])
            lin = [n for n in lin if n not in group]
            lin.insert(first, _tie_name(group))
        names = ["intercept", *lin]
        if self.quadratic:
            names += [f"{n}^2" for n in self._numeric]
        if self.interactions:
            names += [f"{a}*{b}" for a, b in combinations(self._smooth, 2)]
        self.names = names
        self._linear = lin

    @classmethod
    def fit(
        cls,
        runs: pd.DataFrame,
        space: Any = None,
        quadratic: bool = True,
        interactions: bool = True,
        per_row: Any = (),
        rows: np.ndarray | None = None,
    ) -> FeatureEncoder:
        """Infer the parameter specs from a training matrix and build the encoder
        (``per_row``/``rows``: see :func:`infer_param_specs`)."""
        specs = infer_param_specs(runs, space, per_row=per_row, rows=rows)
        names = {s.name for s in specs}
        other = (set(param_columns(runs)) | set(_space_entries(space))) - names
        enc = cls(specs, quadratic=quadratic, interactions=interactions)
        lin = enc._linear_columns(runs, rows)
        patterns: dict[bytes, list[str]] = {}
        for name in enc._linear:
            if name not in enc._smooth and np.ptp(lin[name]) > 0:  # constants: not ties
                patterns.setdefault(lin[name].tobytes(), []).append(name)
        ties = [g for g in patterns.values() if len(g) > 1]
        return cls(specs, quadratic, interactions, ties=ties, other_params=sorted(other))

    @property
    def uses_rows(self) -> bool:
        """Whether encoding needs the dataset's rows (a parameter is encoded per row)."""
        return any(s.per_row for s in self.specs)

    @property
    def param_names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def n_features(self) -> int:
        return len(self.names)

    def linear_terms(self, Phi: np.ndarray) -> np.ndarray:
        """The linear block ``ℓ(x)`` of a basis matrix (the configs' coordinates: numeric in
        ``[-1, 1]``, booleans ``±1``, categoricals 0/1)."""
        return Phi[:, 1 : 1 + len(self._linear)]

    def check(self, configs: pd.DataFrame, values: bool = True) -> None:
        """Refuse what a user cannot have meant: a column that is not a parameter the encoder
        knows (``params.<name>`` or ``<name>``; columns starting with ``_`` are carried along)
        and, with ``values``, a categorical level or boolean the training runs never had.
        (Numeric values outside the training range are allowed: they are extrapolated.)"""
        known = set(self.param_names)
        if self.other_params is not None:  # (files older than the record: names unchecked)
            allowed = known | set(self.other_params) | set(PREDICTION_COLUMNS)
            for c in map(str, configs.columns):
                if not c.startswith("_") and c.removeprefix(PARAM_PREFIX) not in allowed:
                    raise ValidationError(
                        f"unknown parameter {c!r}; the meta-learner knows "
                        f"{', '.join(sorted(known)) or 'none'} (prefix a column with _ to "
                        "pass it through)"
                    )
        if not values:
            return
        for s in self.specs:
            col = self._column(configs, s.name)
            if s.kind == "categorical":
                bad = (col.notna() & ~col.map(_level).isin(s.levels)).to_numpy()
                what = "one of " + ", ".join(lv for lv in s.levels if lv != "None")
            elif s.kind == "bool":  # True/False, or 0/1 as the warehouse stores them
                bad = np.array([v is not None and v not in (0.0, 1.0) for v in col])
                what = "true or false"
            else:
                continue
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(
                    f"config row {i}: {s.name}={col.iloc[i]!r} is not a value the meta-learner "
                    f"was fitted on ({what})"
                )

    # ---- encoding ----------------------------------------------------------------------
    def _column(self, configs: pd.DataFrame, name: str) -> pd.Series:
        """The parameter's values: ``params.<name>`` when the frame has it (runs read from
        the warehouse, whose bare ``model``/``dataset``/``value`` columns are not
        parameters), else ``<name>`` (configs typed or drawn)."""
        for key in (PARAM_PREFIX + name, name):
            if key in configs.columns:
                return _as_object_column(configs[key])
        return pd.Series([None] * len(configs), index=configs.index, dtype=object)

    def transform(self, configs: pd.DataFrame, rows: Any = None) -> np.ndarray:
        """Basis matrix ``Φ`` of shape (n, p) for configs keyed by parameter name.

        Columns may be named ``<name>`` or ``params.<name>``; a missing column means unset.
        ``rows``: the dataset's size (a number, or one per config), needed only when a
        parameter is encoded per row. Raises :class:`ValidationError` naming the row and
        parameter of a value that cannot be encoded (text for a numeric parameter, a
        non-positive value on a log scale) or the missing dataset size.
        """
        n = len(configs)
        lin = self._linear_columns(configs, rows)
        for group in self.ties:
            lin[_tie_name(group)] = np.mean([lin[g] for g in group], axis=0)
        cols = [np.ones(n)] + [lin[k] for k in self._linear]
        if self.quadratic:
            cols += [lin[k] ** 2 - 1.0 / 3.0 for k in self._numeric]
        if self.interactions:
            cols += [lin[a] * lin[b] for a, b in combinations(self._smooth, 2)]
        return np.column_stack(cols) if cols else np.ones((n, 1))

    def _linear_columns(self, configs: pd.DataFrame, rows: Any) -> dict[str, np.ndarray]:
        """Every untied linear term of ``configs`` by name (see :meth:`transform`)."""
        n = len(configs)
        log_rows = None
        if self.uses_rows:
            r = np.broadcast_to(np.asarray(np.nan if rows is None else rows, float), (n,))
            if not np.all(np.isfinite(r) & (r > 0)):
                name = next(s.name for s in self.specs if s.per_row)
                raise ValidationError(
                    f"parameter {name!r} is encoded relative to the dataset's rows, but the "
                    "dataset's size is unknown (register the dataset to compute n_instances)"
                )
            log_rows = np.log10(r)
        lin: dict[str, np.ndarray] = {}
        for s in self.specs:
            col = self._column(configs, s.name)
            if s.kind == "categorical":
                labels = col.map(_level).to_numpy(dtype=object)
                for lv in s.levels[1:]:
                    lin[f"{s.name}[{lv}]"] = (labels == lv).astype(float)
                continue
            try:
                raw = _numeric_values(col)
            except ValueError as exc:
                bad = int(np.flatnonzero([isinstance(v, str) for v in col])[0])
                raise ValidationError(
                    f"config row {bad}: parameter {s.name!r} is {s.kind} but got text {exc}"
                ) from None
            unset = np.isnan(raw)
            if s.kind == "bool":
                c = np.where(unset, 0.0, np.where(raw > 0.5, 1.0, -1.0))
            else:
                v = raw.copy()
                if s.log:
                    bad = (~unset) & (v <= 0)
                    if bad.any():
                        i = int(np.flatnonzero(bad)[0])
                        raise ValidationError(
                            f"config row {i}: parameter {s.name!r} is on a log scale but "
                            f"got {v[i]!r}"
                        )
                    with np.errstate(divide="ignore", invalid="ignore"):
                        v = np.log10(v)
                    if s.per_row:
                        v = v - log_rows
                c = 2.0 * (v - s.low) / (s.high - s.low) - 1.0
                c = np.where(unset, 0.0, np.clip(c, -_CLIP, _CLIP))
            lin[s.name] = c
            if s.nullable:
                lin[f"{s.name}[unset]"] = unset.astype(float)
        return lin

    # ---- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "specs": [s.to_dict() for s in self.specs],
            "quadratic": self.quadratic,
            "interactions": self.interactions,
            "ties": self.ties,
            "other_params": self.other_params,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        return cls(
            [ParamSpec(**s) for s in d["specs"]],
            quadratic=d.get("quadratic", True),
            interactions=d.get("interactions", True),
            ties=d.get("ties"),
            other_params=d.get("other_params"),
        )


def _tie_name(group: list[str]) -> str:
    return f"mean({', '.join(group)})"


# --------------------------------------------------------------------------------------------
# meta-features


class MetaFeatureScaler:
    """Standardize dataset meta-features into ``z_d`` for the population regression.

    For each meta-feature with at least two distinct finite training values: heavy-tailed
    non-negative features (``(max+1)/(median+1) > 10``, e.g. instance counts) are mapped by
    ``log1p``; then ``z = (x − mean)/sd`` over training datasets, clipped to ``[−clip, clip]``
    for unseen datasets. Missing values become 0 and set an indicator; features that go
    missing on exactly the same training datasets share one indicator (no collinear copies).
    ``z_d = [1, z_1..z_m, ind_1..ind_g]``.
    """

    def __init__(
        self,
        columns: list[str],
        log: list[bool],
        mean: list[float],
        sd: list[float],
        groups: list[list[str]],
        clip: float = 3.0,
    ) -> None:
        self.columns = list(columns)
        self.log = list(log)
        self.mean = list(mean)
        self.sd = list(sd)
        self.groups = [list(g) for g in groups]
        self.clip = float(clip)

    @property
    def names(self) -> list[str]:
        return ["intercept", *self.columns, *[f"missing[{g[0]}…]" for g in self.groups]]

    @property
    def n_features(self) -> int:
        return 1 + len(self.columns) + len(self.groups)

    @classmethod
    def fit(
        cls, meta: pd.DataFrame | None, datasets: list[str], max_features: int | None = None
    ) -> MetaFeatureScaler:
        """Fit on the meta-features of the training ``datasets`` (rows of ``meta`` by index)."""
        if meta is None or meta.empty:
            return cls([], [], [], [], [])
        m = meta.reindex([str(d) for d in datasets])
        m.index = m.index.astype(str)
        cols, logs, means, sds = [], [], [], []
        for c in m.columns:
            x = np.array(pd.to_numeric(m[c], errors="coerce"), dtype=float)
            x[~np.isfinite(x)] = np.nan
            fin = x[np.isfinite(x)]
            if len(np.unique(fin)) < 2:
                continue
            use_log = bool(fin.min() >= 0 and (fin.max() + 1) / (np.median(fin) + 1) > 10)
            if use_log:
                fin = np.log1p(fin)
            sd = float(fin.std())
            if sd <= 0:
                continue
            cols.append(str(c))
            logs.append(use_log)
            means.append(float(fin.mean()))
            sds.append(sd)
        if max_features is not None:
            cols, logs, means, sds = (
                cols[:max_features],
                logs[:max_features],
                means[:max_features],
                sds[:max_features],
            )
        patterns: dict[tuple[bool, ...], list[str]] = {}
        for c in cols:
            miss = tuple(bool(v) for v in m[c].isna().to_numpy())
            if any(miss):
                patterns.setdefault(miss, []).append(c)
        return cls(cols, logs, means, sds, list(patterns.values()))

    def transform(self, meta: pd.DataFrame | None, datasets: list[str]) -> np.ndarray:
        """``Z`` of shape (len(datasets), n_features); unknown datasets are all-missing."""
        ds = [str(d) for d in datasets]
        Z = np.zeros((len(ds), self.n_features))
        Z[:, 0] = 1.0
        if meta is None or meta.empty:
            m = pd.DataFrame(index=ds)
        else:
            m = meta.copy()
            m.index = m.index.astype(str)
            m = m.reindex(ds)
        missing: dict[str, np.ndarray] = {}
        for j, c in enumerate(self.columns):
            if c in m.columns:
                x = np.array(pd.to_numeric(m[c], errors="coerce"), dtype=float)
            else:
                x = np.full(len(ds), np.nan)
            x[~np.isfinite(x)] = np.nan
            if self.log[j]:
                x = np.log1p(np.clip(x, 0, None))
            z = (x - self.mean[j]) / self.sd[j]
            miss = np.isnan(z)
            missing[c] = miss
            Z[:, 1 + j] = np.where(miss, 0.0, np.clip(z, -self.clip, self.clip))
        for g, group in enumerate(self.groups):
            Z[:, 1 + len(self.columns) + g] = np.any(
                np.column_stack([missing[c] for c in group]), axis=1
            ).astype(float)
        return Z

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "log": self.log,
            "mean": self.mean,
            "sd": self.sd,
            "groups": self.groups,
            "clip": self.clip,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetaFeatureScaler:
        return cls(d["columns"], d["log"], d["mean"], d["sd"], d["groups"], d.get("clip", 3.0))


# --------------------------------------------------------------------------------------------
# target transform


@dataclass
class TargetTransform:
    """Monotone map of the metric to the modelling scale, then standardization.

    ``kind``: ``logit`` for metrics inside [0, 1], ``log`` for positive metrics (times,
    losses), ``identity`` otherwise. ``t(y) = (g(y) − center)/scale``; predictions are mapped
    back by ``g⁻¹(center + scale·t)``.

    The logit of a metric *at* its bound (accuracy 1.0) is infinite, so such values are moved
    inside by the dataset's resolution (``resolution=True``, every fit since format 5): half
    the finest spacing between the dataset's distinct values, within ``[eps, eps_max]``. On a
    dataset of 556 rows (grain 1/556) a perfect score then sits half an error above the best
    imperfect one — the empirical logit's continuity correction — instead of ~3 logits above
    it at a fixed ``1 − 10⁻⁴``, where one perfect run looked like a gross outlier. Interior
    values are only clipped to ``[eps, 1 − eps]``. Older files keep the fixed clip.
    """

    kind: str
    center: float = 0.0
    scale: float = 1.0
    eps: float = 1e-4
    eps_max: float = 0.01
    resolution: bool = False

    @classmethod
    def fit(
        cls,
        y: np.ndarray,
        metric: str = "",
        kind: str | None = None,
        groups: np.ndarray | None = None,
    ) -> TargetTransform:
        """``groups``: each value's dataset (the resolution is a dataset's own)."""
        y = np.asarray(y, dtype=float)
        if kind is None:
            if metric in ("duration_s", "cpu_s") or metric.startswith("time"):
                kind = "log" if np.all(y > 0) else "identity"
            elif np.all((y >= 0) & (y <= 1)):
                kind = "logit"
            elif np.all(y > 0):
                kind = "log"
            else:
                kind = "identity"
        t = cls(kind, resolution=True)
        g = t._g(y, groups)
        t.center = float(np.mean(g))
        t.scale = float(np.std(g)) or 1.0
        return t

    def bound_eps(self, y: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Per value, how far inside (0, 1) a value at a bound is moved: half the finest
        spacing of its group's distinct values (all one group without ``groups``), within
        ``[eps, eps_max]``; ``eps`` for a group with a single distinct value."""
        y = np.asarray(y, dtype=float)
        if not self.resolution or len(y) == 0:
            return np.full(len(y), self.eps)
        codes = np.zeros(len(y), dtype=np.int64)
        if groups is not None:
            codes = pd.factorize(np.asarray(groups))[0]
        out = np.empty(len(y))
        for c in np.unique(codes):
            sel = codes == c
            gaps = np.diff(np.unique(np.round(y[sel], 9)))
            grain = gaps.min() if len(gaps) else 2 * self.eps
            out[sel] = min(max(grain / 2, self.eps), self.eps_max)
        return out

    def censored(self, y: np.ndarray) -> np.ndarray:
        """Per value, +1 when it sits at the metric's upper bound (accuracy 1.0: the latent
        value is at least where :meth:`forward` puts it), −1 at a lower bound (0 under a logit
        or log scale: at most there), else 0 — see :mod:`metaopt_bayes.censoring`."""
        y = np.asarray(y, dtype=float)
        if self.kind == "logit":
            return np.where(y >= 1, 1, np.where(y <= 0, -1, 0))
        if self.kind == "log":
            return np.where(y <= 0, -1, 0)
        return np.zeros(len(y), dtype=int)

    def resolution_of(self, y: np.ndarray, rows: float = float("nan")) -> float:
        """One dataset's ``ε``: half the finest spacing of its scores ``y``
        (:meth:`bound_eps`); when they show no spacing (no runs, or one value) half of one
        row of the dataset (``rows``: a score over at most that many rows moves in steps of
        at least ``1/rows``), within ``[eps, eps_max]``; ``eps`` when neither is known, and
        always for a transform fitted before resolutions (``resolution=False``)."""
        if not self.resolution:
            return self.eps
        y = np.asarray(y, dtype=float)
        y = y[np.isfinite(y)]
        if len(np.unique(np.round(y, 9))) > 1:
            return float(self.bound_eps(y)[0])
        if np.isfinite(rows) and rows > 0:
            return min(max(0.5 / rows, self.eps), self.eps_max)
        return self.eps

    def band(self, eps: float) -> tuple[float, float]:
        """The modelling-scale interval outside which a dataset's runs show at the bound:
        ``(t(ε), t(1 − ε))`` under a logit scale (``ε``: :meth:`resolution_of`), unbounded
        otherwise."""
        if self.kind != "logit":
            return -np.inf, np.inf
        e = float(eps)
        lo, hi = np.log(e) - np.log1p(-e), np.log1p(-e) - np.log(e)
        return (lo - self.center) / self.scale, (hi - self.center) / self.scale

    def observe(self, t: np.ndarray, band: tuple[float, float] = (-np.inf, np.inf)) -> np.ndarray:
        """Modelling scale → the metric a run would show: :meth:`inverse`, with values beyond
        the ``band`` (:meth:`band`) at the bound itself (an accuracy beyond the dataset's
        resolution is reported as 1.0)."""
        t = np.asarray(t, dtype=float)
        out = self.inverse(t)
        if self.kind == "logit":
            out = np.where(t >= band[1], 1.0, np.where(t <= band[0], 0.0, out))
        return out

    def _g(
        self, y: np.ndarray, groups: np.ndarray | None = None, eps: float | None = None
    ) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if self.kind == "logit":
            e = self.bound_eps(y, groups) if eps is None else np.full(len(y), float(eps))
            y = np.where(y >= 1, 1 - e, np.where(y <= 0, e, np.clip(y, self.eps, 1 - self.eps)))
            return np.log(y) - np.log1p(-y)
        if self.kind == "log":
            return np.log(np.where(y > 0, y, self._zero_floor(y, groups)))
        return y

    def _zero_floor(self, y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        """Per value, what a 0 stands for on the log scale: half the smallest positive value
        of its group (a loss of 0 on a dataset whose other runs were positive), else 1e-12;
        a log model is fitted on positive values, so a 0 meets it only in new runs."""
        codes = pd.factorize(np.asarray(groups))[0] if groups is not None else np.zeros(len(y))
        out = np.full(len(y), 1e-12)
        for c in np.unique(codes):
            sel = codes == c
            pos = y[sel][y[sel] > 0]
            if len(pos):
                out[sel] = pos.min() / 2
        return out

    def forward(
        self, y: np.ndarray, groups: np.ndarray | None = None, eps: float | None = None
    ) -> np.ndarray:
        """Metric → standardized modelling scale (``groups``: each value's dataset; all one
        dataset without it; ``eps``: the one dataset's resolution, instead of the values'
        own spacing)."""
        return (self._g(y, groups, eps) - self.center) / self.scale

    def inverse(self, t: np.ndarray) -> np.ndarray:
        """Standardized modelling scale → metric."""
        g = self.center + self.scale * np.asarray(t, dtype=float)
        if self.kind == "logit":
            return 1.0 / (1.0 + np.exp(-g))
        if self.kind == "log":
            return np.exp(g)
        return g

    def check(self, y: np.ndarray, what: str) -> None:
        """Refuse values the transform cannot take (one line naming the first bad row)."""
        y = np.asarray(y, dtype=float)
        bad = ~np.isfinite(y)
        if self.kind == "log":
            bad |= y < 0
        elif self.kind == "logit":
            bad |= (y < 0) | (y > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"{what} row {i}: value {float(y[i])!r} is outside the {self.kind} scale of "
                "this model (fitted on values that suggested it); fit with transform='identity'"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetTransform:
        return cls(**d)

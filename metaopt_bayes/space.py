"""Search spaces: parse, validate, encode to and from the unit cube, sample (scrambled Sobol).

A space is a set of named parameters, each one of

* ``float`` — ``low``..``high``, optionally ``log`` scale;
* ``int`` — ``low``..``high`` inclusive, optionally ``log`` scale;
* ``categorical`` — one of ``choices`` (strings, numbers, booleans or null);
* ``fixed`` — always ``value``;

and any of them may carry a ``condition``: a mapping ``{parent: allowed value(s)}`` under
which it is active (e.g. ``degree`` only when ``kernel`` is ``poly``). Inactive parameters are
``None`` in configs and NaN/None in DataFrames.

YAML/JSON form (a bare scalar or list is shorthand for ``fixed`` / ``categorical``)::

    params:
      C:      {type: float, low: 1.0e-3, high: 1.0e3, log: true}
      kernel: {type: categorical, choices: [rbf, poly]}
      degree: {type: int, low: 2, high: 5, condition: {kernel: poly}}
      max_iter: 1000

Unit-cube encoding (one dimension per non-fixed parameter, :attr:`SearchSpace.unit_names`):

* float: ``u = (x - low) / (high - low)``, or ``(log x - log low) / (log high - log low)``;
* int: the integers are ``high - low + 1`` equal cells of [0, 1] (on the log axis for
  ``log``), ``x`` encodes to its cell's centre and ``u`` decodes to the cell containing it;
* categorical: choice ``i`` of ``k`` is the cell ``[i/k, (i+1)/k)``, encoded at its centre;
* an inactive parameter encodes to 0.5 and decodes to None (its activity is decided by the
  decoded parents, so ``from_unit(to_unit(df))`` reproduces ``df``).

Sampling draws a scrambled Sobol sequence (Owen scrambling; Sobol 1967, Owen 1998) in the
unit cube with :mod:`scipy.stats.qmc` and decodes it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from warehouse.errors import ValidationError, one_line

KINDS = ("float", "int", "categorical", "fixed")


def is_missing(value: Any) -> bool:
    """None or NaN: a parameter that is not set."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain(value: Any) -> Any:
    """A value as plain Python: numpy scalars unwrapped, NaN as None (for JSON and logging)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def value_key(value: Any) -> Any:
    """A hashable, comparison-safe form of one parameter value, the same for a value as
    typed and as read back from the warehouse (``True`` and ``1.0``, ``100`` and ``"100"``,
    NaN and None), so a config can be matched against the runs already logged."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return None if math.isnan(f) else float(f"{f:.10g}")
    s = str(value)
    if s in ("True", "False"):
        return float(s == "True")
    try:  # numbers stored as text compare as numbers
        return float(f"{float(s):.10g}")
    except ValueError:
        return s


def config_key(config: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    """A config as a comparable set of (name, :func:`value_key`) pairs over the parameters
    it sets: the same for a config as drawn and as read back from the warehouse."""
    return frozenset((str(k), value_key(v)) for k, v in config.items() if not is_missing(v))


def _same(a: Any, b: Any) -> bool:
    """Equality of choice values where True/1 and False/0 stay distinct and NaN == None."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Param:
    """One parameter of a :class:`SearchSpace`."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    value: Any = None
    condition: dict[str, tuple[Any, ...]] | None = field(default=None)

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"parameter name must be a non-empty string, not {self.name!r}")
        if self.kind not in KINDS:
            raise ValidationError(
                f"{where}: type must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        if self.kind in ("float", "int"):
            for bound in ("low", "high"):
                v = getattr(self, bound)
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise ValidationError(f"{where}: {bound} must be a finite number, not {v!r}")
            if self.kind == "int" and (int(self.low) != self.low or int(self.high) != self.high):
                raise ValidationError(f"{where}: int bounds must be integers")
            if self.low > self.high:
                raise ValidationError(f"{where}: low {self.low} is greater than high {self.high}")
            if self.log and self.low <= 0:
                raise ValidationError(f"{where}: log scale needs low > 0, got {self.low}")
        elif self.log:
            raise ValidationError(f"{where}: log applies only to float and int parameters")
        if self.kind == "categorical":
            if not self.choices:
                raise ValidationError(f"{where}: categorical needs a non-empty list of choices")
            for i, c in enumerate(self.choices):
                if any(_same(c, d) for d in self.choices[:i]):
                    raise ValidationError(f"{where}: choice {c!r} is listed twice")
        elif self.choices is not None:
            raise ValidationError(f"{where}: choices apply only to categorical parameters")

    # -- encoding -------------------------------------------------------------------
    def _axis(self, x: float) -> float:
        return math.log(x) if self.log else float(x)

    def encode(self, x: Any) -> float:
        """Unit-cube coordinate of an (active, valid) value."""
        if self.kind == "float":
            lo, hi = self._axis(self.low), self._axis(self.high)
            return 0.5 if hi == lo else (self._axis(x) - lo) / (hi - lo)
        if self.kind == "int":
            if self.log:
                return self._log_int_centre(int(x))
            k = int(self.high) - int(self.low) + 1
            return (int(x) - int(self.low) + 0.5) / k
        idx = next(i for i, c in enumerate(self.choices or ()) if _same(c, x))
        return (idx + 0.5) / len(self.choices or ())

    def _log_int_bounds(self) -> tuple[float, float]:
        # cells [log(v - 0.5), log(v + 0.5)) for integers v, on a log axis starting at
        # log(low - 0.5) (low >= 1 so low - 0.5 > 0)
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def _log_int_centre(self, v: int) -> float:
        lo, hi = self._log_int_bounds()
        mid = 0.5 * (math.log(v - 0.5) + math.log(v + 0.5))
        return (mid - lo) / (hi - lo)

    def decode(self, u: float) -> Any:
        """Value at unit-cube coordinate ``u`` (clipped to [0, 1])."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "fixed":
            return self.value
        if self.kind == "float":
            lo, hi = self._axis(self.low), self._axis(self.high)
            x = lo + u * (hi - lo)
            x = math.exp(x) if self.log else x
            return float(min(max(x, self.low), self.high))
        if self.kind == "int":
            if self.log:
                lo, hi = self._log_int_bounds()
                v = math.floor(math.exp(lo + u * (hi - lo)) + 0.5)
            else:
                k = int(self.high) - int(self.low) + 1
                v = int(self.low) + math.floor(u * k)
            return int(min(max(v, int(self.low)), int(self.high)))
        k = len(self.choices or ())
        return (self.choices or ())[min(math.floor(u * k), k - 1)]

    def restore(self, value: Any) -> Any:
        """``value`` as the warehouse gives it back — a boolean as 1.0/0.0, any choice as its
        number or text — in this parameter's own type where that is unambiguous; else as is
        (so :meth:`check` still refuses what does not fit)."""
        if isinstance(value, np.generic):
            value = value.item()
        if self.kind == "fixed":
            options = [self.value]
        elif self.kind == "categorical":
            options = list(self.choices or ())
        else:
            return value
        if is_missing(value) or any(_same(o, value) for o in options):
            return value
        if isinstance(value, int | float):
            hits = [o for o in options if isinstance(o, bool) and float(o) == value]
        else:
            hits = [o for o in options if str(o) == str(value)]
        return hits[0] if len(hits) == 1 else value

    def check(self, value: Any) -> Any:
        """``value`` normalised to this parameter's type, or a ValidationError naming it."""
        where = f"parameter {self.name!r}"
        if self.kind == "fixed":
            if not _same(value, self.value):
                raise ValidationError(f"{where} is fixed to {self.value!r}, got {value!r}")
            return self.value
        if self.kind == "categorical":
            for c in self.choices or ():
                if _same(c, value):
                    return c
            raise ValidationError(f"{where}: {value!r} is not one of {list(self.choices or ())}")
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValidationError(f"{where}: {value!r} is not finite")
        if self.kind == "int":
            if int(value) != value:
                raise ValidationError(f"{where}: expected an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not self.low <= value <= self.high:
            raise ValidationError(f"{where}: {value!r} is outside [{self.low}, {self.high}]")
        return value

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        if self.kind in ("float", "int"):
            d.update(low=self.low, high=self.high)
            if self.log:
                d["log"] = True
        if self.kind == "categorical":
            d["choices"] = list(self.choices or ())
        if self.kind == "fixed":
            d["value"] = self.value
        if self.condition:
            d["condition"] = {
                k: (list(v) if len(v) > 1 else v[0]) for k, v in self.condition.items()
            }
        return d


def _param_from_spec(name: str, spec: Any) -> Param:
    if not isinstance(spec, Mapping):
        if isinstance(spec, list | tuple):
            return Param(name, "categorical", choices=tuple(spec))
        return Param(name, "fixed", value=spec)
    unknown = set(spec) - {"type", "kind", "low", "high", "log", "choices", "value", "condition"}
    if unknown:
        raise ValidationError(f"parameter {name!r}: unknown key(s) {sorted(unknown)}")
    kind = spec.get("type", spec.get("kind"))
    if kind is None:
        if "choices" in spec:
            kind = "categorical"
        elif "value" in spec:
            kind = "fixed"
        elif isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int):
            kind = "int"
        else:
            kind = "float"
    kind = {"integer": "int", "real": "float", "cat": "categorical", "const": "fixed"}.get(
        kind, kind
    )
    cond = spec.get("condition")
    if cond is not None:
        if not isinstance(cond, Mapping) or not cond:
            raise ValidationError(
                f"parameter {name!r}: condition must be a mapping {{parent: value(s)}}"
            )
        cond = {str(k): tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in cond.items()}
    choices = spec.get("choices")
    low, high = spec.get("low"), spec.get("high")
    return Param(
        name=name,
        kind=kind,
        low=_number(name, "low", low) if low is not None else None,
        high=_number(name, "high", high) if high is not None else None,
        log=_flag(name, "log", spec.get("log", False)),
        choices=tuple(choices) if isinstance(choices, list | tuple) else choices,
        value=spec.get("value"),
        condition=cond,
    )


def _flag(name: str, key: str, value: Any) -> bool:
    """A true/false setting; JSON/YAML text such as ``"false"`` means false, not true."""
    if isinstance(value, bool | int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", "none", "null"):
        return False
    raise ValidationError(f"parameter {name!r}: {key} must be true or false, not {value!r}")


def _number(name: str, key: str, value: Any) -> Any:
    if isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise ValidationError(f"parameter {name!r}: {key} {value!r} is not a number") from None
    return value


class SearchSpace:
    """An ordered set of :class:`Param`; see the module docstring for the format."""

    def __init__(self, params: list[Param] | tuple[Param, ...]) -> None:
        self.params: list[Param] = list(params)
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValidationError(f"parameter {sorted(dup)[0]!r} is defined twice")
        by_name = {p.name: p for p in self.params}
        for p in self.params:
            for parent, allowed in (p.condition or {}).items():
                if parent not in by_name:
                    raise ValidationError(
                        f"parameter {p.name!r}: condition names unknown parameter {parent!r}"
                    )
                if parent == p.name:
                    raise ValidationError(f"parameter {p.name!r}: condition on itself")
                par = by_name[parent]
                for v in allowed:
                    try:
                        par.check(v)
                    except ValidationError:
                        raise ValidationError(
                            f"parameter {p.name!r}: condition value {v!r} is not a possible "
                            f"value of {parent!r}"
                        ) from None
        self._order = self._topological(by_name)
        self._by_name = by_name

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        """From ``{"params": {name: spec}}`` or directly ``{name: spec}``."""
        if not isinstance(d, Mapping):
            raise ValidationError("a search space must be a mapping of parameter name → spec")
        body = d.get("params", d) if "params" in d else d
        if not isinstance(body, Mapping):
            raise ValidationError("'params' of a search space must be a mapping")
        return cls([_param_from_spec(str(k), v) for k, v in body.items()])

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read a YAML (``.yaml``/``.yml``) or JSON file."""
        p = Path(path)
        if not p.is_file():
            raise ValidationError(f"search space file {str(p)!r} does not exist")
        text = p.read_text()
        try:
            if p.suffix.lower() == ".json":
                d = json.loads(text)
            else:
                import yaml

                d = yaml.safe_load(text)
        except Exception as exc:  # any parse error becomes one line
            first = one_line(exc)
            raise ValidationError(f"cannot parse search space {p.name}: {first}") from None
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return {"params": {p.name: p.to_dict() for p in self.params}}

    def _topological(self, by_name: dict[str, Param]) -> list[Param]:
        order: list[Param] = []
        state: dict[str, int] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise ValidationError(f"conditions form a cycle: {' -> '.join((*path, name))}")
            state[name] = 1
            for parent in by_name[name].condition or {}:
                visit(parent, (*path, name))
            state[name] = 2
            order.append(by_name[name])

        for p in self.params:
            visit(p.name, ())
        return order

    # -- introspection ----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every parameter name, in definition order."""
        return [p.name for p in self.params]

    @property
    def unit_names(self) -> list[str]:
        """Names of the unit-cube dimensions (the non-fixed parameters)."""
        return [p.name for p in self.params if p.kind != "fixed"]

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.names)})"

    def _active(self, p: Param, config: Mapping[str, Any]) -> bool:
        for parent, allowed in (p.condition or {}).items():
            v = config.get(parent)
            if is_missing(v) and not any(is_missing(a) for a in allowed):
                return False
            if not any(_same(v, a) for a in allowed):
                return False
        return True

    # -- configs ----------------------------------------------------------------------
    def restore(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A config read back from the warehouse (which keeps a boolean as 1.0/0.0 and an
        integer as a float) with this space's types where unambiguous; names it does not know
        are kept, for :meth:`validate` to refuse."""
        return {
            k: self._by_name[k].restore(v) if k in self._by_name else v for k, v in config.items()
        }

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``config`` and return it complete: fixed values filled, inactive → None.

        Raises ValidationError naming the parameter: unknown name, missing active value,
        wrong type, out of range, or a value set for a parameter whose condition is false.
        """
        if not isinstance(config, Mapping):
            raise ValidationError(f"a config must be a mapping, not {type(config).__name__}")
        unknown = [k for k in config if k not in self._by_name]
        if unknown:
            raise ValidationError(f"unknown parameter {unknown[0]!r} (space has {self.names})")
        out: dict[str, Any] = {}
        for p in self._order:
            given = config.get(p.name)
            if not self._active(p, out):
                if not is_missing(given):
                    raise ValidationError(
                        f"parameter {p.name!r} is set to {given!r} but inactive "
                        f"(condition {p.to_dict()['condition']})"
                    )
                out[p.name] = None
                continue
            if p.kind == "fixed" and p.name not in config:
                out[p.name] = p.value
                continue
            if is_missing(given) and not (
                p.kind == "categorical"
                and p.name in config
                and any(is_missing(c) for c in p.choices or ())
            ):
                if p.kind == "fixed" and is_missing(p.value):
                    out[p.name] = p.value
                    continue
                raise ValidationError(f"parameter {p.name!r} is missing")
            out[p.name] = p.check(given)
        return {n: out[n] for n in self.names}

    def defaults(self) -> dict[str, Any]:
        """The config at the centre of the unit cube."""
        return self.from_unit(np.full((1, len(self.unit_names)), 0.5)).iloc[0].to_dict()

    # -- unit cube --------------------------------------------------------------------
    def from_unit(self, u: np.ndarray) -> pd.DataFrame:
        """Decode rows of unit-cube points (columns = :attr:`unit_names`) into configs."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        dims = self.unit_names
        if u.shape[1] != len(dims):
            raise ValidationError(f"expected {len(dims)} unit-cube columns, got {u.shape[1]}")
        col = {n: i for i, n in enumerate(dims)}
        records = []
        for row in u:
            cfg: dict[str, Any] = {}
            for p in self._order:
                if not self._active(p, cfg):
                    cfg[p.name] = None
                else:
                    cfg[p.name] = p.value if p.kind == "fixed" else p.decode(row[col[p.name]])
            records.append({n: cfg[n] for n in self.names})
        return self._frame(records)

    def to_unit(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Encode configs (rows of ``df``) as unit-cube points; inactive parameters → 0.5."""
        if isinstance(df, Mapping):
            df = pd.DataFrame([dict(df)])
        out = np.full((len(df), len(self.unit_names)), 0.5)
        records = df.to_dict(orient="records")
        for i, rec in enumerate(records):
            rec = {k: (None if is_missing(v) else v) for k, v in rec.items() if k in self._by_name}
            cfg = self.validate(rec)
            for j, name in enumerate(self.unit_names):
                v = cfg[name]
                if v is not None or (
                    self._by_name[name].kind == "categorical" and self._active(self[name], cfg)
                ):
                    out[i, j] = self._by_name[name].encode(v)
        return out

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        df = pd.DataFrame.from_records(records, columns=self.names)
        for p in self.params:
            if p.kind == "float":
                df[p.name] = pd.to_numeric(df[p.name], errors="coerce").astype(float)
            elif p.kind == "int":
                col = df[p.name]
                df[p.name] = (
                    col.astype("int64")
                    if col.notna().all()
                    else pd.Series(
                        [None if is_missing(v) else int(v) for v in col],
                        index=df.index,
                        dtype=object,
                    )
                )
            else:
                df[p.name] = df[p.name].astype(object)
        return df

    # -- generation -------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` configs from a scrambled Sobol sequence in the unit cube, decoded."""
        if n < 0:
            raise ValidationError(f"n must be >= 0, got {n}")
        d = len(self.unit_names)
        if d == 0:
            return self.from_unit(np.zeros((n, 0)))
        from scipy.stats import qmc

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # balance warning for n not a power of two
            u = qmc.Sobol(d, scramble=True, seed=seed).random(n) if n else np.zeros((0, d))
        return self.from_unit(u)

    def neighbors(
        self, config: Mapping[str, Any], n: int, scale: float = 0.1, seed: int = 0
    ) -> pd.DataFrame:
        """``n`` configs near ``config``: Gaussian steps of SD ``scale`` in the unit cube.

        Numeric coordinates move by ``N(0, scale²)`` (clipped to [0, 1]); each categorical
        parameter switches to a uniformly drawn other choice with probability ``scale``.
        """
        base = self.to_unit(self.validate(config))[0]
        rng = np.random.default_rng(seed)
        u = np.clip(base + rng.normal(0.0, scale, size=(n, base.size)), 0.0, 1.0)
        for j, name in enumerate(self.unit_names):
            p = self._by_name[name]
            if p.kind == "categorical":
                k = len(p.choices or ())
                u[:, j] = base[j]
                flip = rng.random(n) < scale
                if k > 1 and flip.any():
                    cur = min(int(base[j] * k), k - 1)
                    other = rng.integers(0, k - 1, size=int(flip.sum()))
                    other = other + (other >= cur)
                    u[flip, j] = (other + 0.5) / k
        return self.from_unit(u)

"""Tables in and out: DataFrames, Arrow tables and CSV/TSV/Parquet/JSON files.

:func:`to_arrow` is how every bulk input reaches DuckDB (``log_runs``, meta-features);
:func:`read_frame` reads the small files a user hands to the search (configs, candidates);
:func:`arrow_to_pandas` is how results come back. Nothing here touches a warehouse.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.errors import ValidationError, one_line

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def to_arrow(data: Any, what: str = "log_runs") -> pa.Table:
    """A pyarrow Table from a DataFrame, an Arrow table, or a CSV/TSV/Parquet path."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pd.DataFrame):
        table = _from_pandas(data)
    elif isinstance(data, str | Path):
        table = _read_file(Path(data))
        try:
            table.column_names  # noqa: B018 (decodes the header: a file may not be UTF-8)
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"cannot read {str(data)!r}: its header is not UTF-8 text "
                f"(byte {exc.start}: {exc.reason})"
            ) from None
    else:
        raise ValidationError(
            f"{what} expects a pandas DataFrame, a pyarrow Table or a CSV/Parquet path, "
            f"not {type(data).__name__}"
        )
    names = table.column_names
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)  # names.count: quadratic
    if dupes:
        raise ValidationError(f"column {dupes[0]!r} appears more than once")
    if table.num_rows == 0:
        raise ValidationError(f"{what}: the input has no rows")
    return table


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    df = df.reset_index(drop=True)
    fixed = {}
    for col in df.columns:
        if not isinstance(col, str):
            raise ValidationError(f"column {col!r}: column names must be strings")
        series = df[col]
        if series.dtype == object and col.startswith(("params.", "arch.")):
            # Mixed Python objects (0.5 and 'sqrt' in one column): keep values as text and
            # let per-value typing recover the numbers.
            fixed[col] = series.map(lambda v: None if _is_missing(v) else str(v)).astype(object)
    if fixed:
        df = df.assign(**fixed)
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        OverflowError,  # a Python int beyond 64 bits
    ) as exc:
        for col in df.columns:  # find the culprit column for a one-line message
            try:
                pa.Table.from_pandas(df[[col]], preserve_index=False)
            except Exception:
                raise ValidationError(
                    f"column {col!r}: values cannot be stored ({one_line(exc)})"
                ) from None
        raise ValidationError(f"the DataFrame cannot be converted: {one_line(exc)}") from None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA-safe enough for scalars
    except (TypeError, ValueError):
        return False


def _read_file(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.is_symlink():  # read (and name) the file the link points at
        link, path = path, path.resolve()
        where = f"{str(link)!r} (a link to {str(path)!r})"
    else:
        where = repr(str(path))
    if not path.exists():
        raise ValidationError(f"file {where} does not exist")
    if path.is_dir():
        raise ValidationError(f"{str(path)!r} is a folder, not a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise ValidationError(f"file {str(path)!r} is empty")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            return pq.read_table(path)
        if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
            delimiter = "\t" if ".tsv" in suffixes else ","

            def read(block_size: int | None = None) -> pa.Table:
                return pacsv.read_csv(
                    path,
                    read_options=pacsv.ReadOptions(block_size=block_size) if block_size else None,
                    parse_options=pacsv.ParseOptions(delimiter=delimiter),
                    convert_options=pacsv.ConvertOptions(
                        # NaN/inf text stays a float so it can be refused; empty means missing.
                        null_values=["", "NULL", "null", "NA", "N/A"],
                        strings_can_be_null=True,
                    ),
                )

            try:
                return read()
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc):
                    raise
                # a row longer than pyarrow's 1 MiB block: read in one block (+ slack for a
                # .gz file, whose size on disk is smaller than its text)
                size = path.stat().st_size * (8 if suffixes[-1] == ".gz" else 1)
                return read(min(size + (1 << 20), (1 << 31) - 1))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read {where}: {_without_content(exc)}") from None
    raise ValidationError(
        f"file {str(path)!r}: unknown format (use .csv, .tsv, .csv.gz or .parquet)"
    )


def _without_content(exc: BaseException) -> str:
    """A reader's error without the file's text: pyarrow ends a CSV parse error with the
    offending row (``Expected 3 columns, got 2: <the row>``), which would echo a file's
    content — say the first line of a file a link pointed at — into a message."""
    import re

    text = one_line(exc, limit=300)
    if text.startswith("CSV parse error"):
        found = re.match(r"CSV parse error: Expected \d+ columns?, got \d+", text)
        return found.group(0) if found else "CSV parse error"
    return text


def read_frame(path: str | Path, what: str = "file") -> pd.DataFrame:
    """A small table from a CSV/TSV, Parquet or JSON file (one object, a list of objects, or
    an object of columns as pandas writes it), with the same one-line refusals as ingest
    (missing, empty, ragged or unreadable file)."""
    import pandas as pd

    path = Path(path).expanduser()
    if path.suffix.lower() != ".json":
        frame = _read_file(path).to_pandas()
    else:
        if not path.is_file():
            raise ValidationError(f"{what} {str(path)!r} does not exist")
        try:
            obj = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot read {str(path)!r}: {one_line(exc)}") from None
        if isinstance(obj, dict) and obj and all(isinstance(v, list | dict) for v in obj.values()):
            try:  # columns: {"lr": [..], ...} or pandas' to_json() {"lr": {"0": ..}, ...}
                frame = pd.DataFrame(obj)
            except ValueError as exc:
                raise ValidationError(f"cannot read {str(path)!r}: {one_line(exc)}") from None
        else:
            rows = [obj] if isinstance(obj, dict) else obj
            if not isinstance(rows, list) or not all(isinstance(o, dict) for o in rows):
                raise ValidationError(
                    f"{what} {str(path)!r} must hold a JSON object, a list of objects or "
                    "an object of columns"
                )
            frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValidationError(f"{what} {str(path)!r} has no rows")
    return frame


def arrow_to_pandas(table: Any, like_duckdb: bool = False) -> pd.DataFrame:
    """Arrow → pandas with dicts for MAP columns and nullable integers for integer columns.

    ``like_duckdb=True`` gives top-level columns the dtypes DuckDB's own ``.df()`` gives
    (``Warehouse.sql`` read through ``.df()`` before it read through Arrow, 2.3x faster on
    run_features): DECIMAL/HUGEINT as float64, DATE as datetime64, INTERVAL as timedelta64,
    BOOLEAN with NULLs as pandas ``boolean``."""
    import pandas as pd
    import pyarrow as pa

    if like_duckdb:
        return _like_duckdb(table)

    ints = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
    }
    nullable = {f.name for f in table.schema if f.type in ints and table[f.name].null_count}
    df = table.to_pandas(maps_as_pydicts="strict")
    for name in nullable:
        df[name] = pd.array(table[name].to_pylist(), dtype=ints[table.schema.field(name).type])
    return df


def _like_duckdb(table: Any) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    later: dict[str, Any] = {}
    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_decimal(t):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.float64()))
        elif pa.types.is_date(t):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.timestamp("us")))
        elif pa.types.is_interval(t):  # DuckDB's .df(): a month is 30 days
            values = [
                None
                if v is None
                else pd.Timedelta(days=30 * v.months + v.days) + pd.Timedelta(v.nanoseconds, "ns")
                for v in table.column(i).to_pylist()
            ]
            later[field.name] = pd.array(values, dtype="timedelta64[us]")
        elif pa.types.is_boolean(t) and table.column(i).null_count:
            later[field.name] = pd.array(table.column(i).to_pylist(), dtype="boolean")
    df = arrow_to_pandas(table)
    for name, values in later.items():
        df[name] = values
    return df

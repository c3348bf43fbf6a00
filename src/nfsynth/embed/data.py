"""Reading user-flow shards for the embed stage, whole or in bounded batches.

Every row read here carries two keys that name it across the embed outputs: ``shard`` (int32,
position of its file in the list of shard paths) and ``row`` (int64, row number inside that
file). Score files of different detectors are joined on (``shard``, ``row``).

``iter_batches(paths, columns, batch_rows, order)`` yields pandas DataFrames of at most
``batch_rows`` rows, never holding more than one batch plus one Parquet record batch:

- ``order="day"``: the days in ascending order (``day`` column, ``YYYY-MM-DD``); within a day,
  shard by shard in file order (user, ts). Each file is streamed once per day.
- ``order="file"``: shard by shard, in file order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

KEY_COLUMNS = ("shard", "row")
READ_BATCH = 65536


def schema_names(paths: Sequence[str | Path]) -> list[str]:
    """Column names of the first shard (every shard has the same schema)."""
    return list(pq.read_schema(str(paths[0])).names)


def _with_keys(table: pa.Table | pa.RecordBatch, shard: int, start: int) -> pd.DataFrame:
    df = table.to_pandas()
    df["shard"] = np.int32(shard)
    df["row"] = np.arange(start, start + len(df), dtype=np.int64)
    return df


def read_flows(paths: Sequence[str | Path], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All rows of the shards (selected columns) plus ``shard`` and ``row``."""
    parts = []
    for k, path in enumerate(paths):
        names = schema_names([path])
        cols = [c for c in columns if c in names] if columns is not None else None
        parts.append(_with_keys(pq.read_table(str(path), columns=cols), k, 0))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def read_windows(paths: Sequence[str | Path], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The windows of every shard, one table (grouped by user, sorted by ``win``).

    ``columns``: window features to keep beside ``user``, ``win``, ``win_start`` (default all).
    ``user`` is categorical, so the table costs a few bytes per window and feature.
    """
    frames = []
    for p in paths:
        names = schema_names([p])
        keep = None
        if columns is not None:
            keep = [c for c in ("user", "win", "win_start", *columns) if c in names]
        frames.append(pq.read_table(str(p), columns=keep).to_pandas(strings_to_categorical=True))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["user", "win", "win_start"])
    out = pd.concat(frames, ignore_index=True)
    out["user"] = out["user"].astype(str).astype("category")
    return out.sort_values(["user", "win"], kind="mergesort", ignore_index=True)


def list_days(paths: Sequence[str | Path]) -> list[str]:
    """Distinct ``day`` values of the shards, ascending (streams the ``day`` column)."""
    days: set[str] = set()
    for path in paths:
        for batch in pq.ParquetFile(str(path)).iter_batches(READ_BATCH, columns=["day"]):
            days.update(str(d) for d in pd.unique(batch.column(0).to_pandas().astype(str)))
    return sorted(days)


def _file_parts(
    paths: Sequence[str | Path], columns: Sequence[str], day: str | None
) -> Iterator[pd.DataFrame]:
    for k, path in enumerate(paths):
        pf = pq.ParquetFile(str(path))
        cols = [c for c in columns if c in pf.schema_arrow.names]
        if day is not None and "day" not in cols:
            cols.append("day")
        start = 0
        for batch in pf.iter_batches(READ_BATCH, columns=cols):
            n = batch.num_rows
            if day is not None:  # filter in Arrow: only the day's rows become pandas
                keep = np.flatnonzero(
                    pc.equal(pc.cast(batch.column("day"), pa.string()), day).to_numpy(
                        zero_copy_only=False
                    )
                )
                if len(keep):
                    df = _with_keys(batch.take(pa.array(keep)), k, 0)
                    df["row"] = start + keep
                    yield df
            elif n:
                yield _with_keys(batch, k, start)
            start += n
        pa.default_memory_pool().release_unused()


def iter_batches(
    paths: Sequence[str | Path], columns: Sequence[str], batch_rows: int, order: str = "day"
) -> Iterator[pd.DataFrame]:
    """Batches of at most ``batch_rows`` rows (module docstring), with ``shard`` and ``row``."""
    if order not in ("day", "file"):
        raise ValueError(f"order must be 'day' or 'file', got {order!r}")
    groups: list[str | None] = list_days(paths) if order == "day" else [None]
    for day in groups:
        pending: list[pd.DataFrame] = []
        n_pending = 0
        for part in _file_parts(paths, columns, day):
            pending.append(part)
            n_pending += len(part)
            while n_pending >= batch_rows:
                merged = pd.concat(pending, ignore_index=True)
                yield merged.iloc[:batch_rows].reset_index(drop=True)
                rest = merged.iloc[batch_rows:]
                pending, n_pending = ([rest] if len(rest) else []), len(rest)
        if n_pending:
            yield pd.concat(pending, ignore_index=True)

"""Reading user-flow shards for the embed stage, whole or in bounded batches.

Every row read here carries two keys that name it across the embed outputs: ``shard`` (int32,
position of its file in the list of shard paths) and ``row`` (int64, row number inside that
file). Score files of different detectors are joined on (``shard``, ``row``).

``iter_batches(paths, columns, batch_rows, order)`` yields pandas DataFrames of at most
``batch_rows`` rows, never holding more than one batch plus one Parquet record batch of at most
``min(batch_rows, READ_BATCH)`` rows (read through a ``STREAM_BUFFER`` buffered stream):

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
#: Read buffer per column (bytes) of the streaming readers: with a buffered stream Parquet reads
#: a row group's pages as it decodes them instead of whole column chunks, so the memory of a
#: read is bounded by the record batch, not by the writer's row group size.
STREAM_BUFFER = 1 << 16


def schema_names(paths: Sequence[str | Path]) -> list[str]:
    """Column names of the first shard (every shard has the same schema)."""
    return list(pq.read_schema(str(paths[0])).names)


def _with_keys(table: pa.Table | pa.RecordBatch, shard: int, start: int) -> pd.DataFrame:
    """``table`` as pandas with ``shard`` (int32) and ``row`` (``start`` + position, int64)."""
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


def _window_columns(path: str | Path, columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    names = schema_names([path])
    return [c for c in ("user", "win", "win_start", *columns) if c in names]


def _windows_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["user", "win", "win_start"])
    out = pd.concat(frames, ignore_index=True)
    out["user"] = out["user"].astype(str).astype("category")
    return out.sort_values(["user", "win"], kind="mergesort", ignore_index=True)


def read_windows(paths: Sequence[str | Path], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The windows of every shard, one table (grouped by user, sorted by ``win``).

    ``columns``: window features to keep beside ``user``, ``win``, ``win_start`` (default all).
    ``user`` is categorical, so the table costs a few bytes per window and feature.
    """
    frames = [
        pq.read_table(str(p), columns=_window_columns(p, columns)).to_pandas(
            strings_to_categorical=True
        )
        for p in paths
    ]
    return _windows_frame(frames)


def read_windows_range(
    paths: Sequence[str | Path], lo: int, hi: int, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of ``read_windows`` with ``lo <= win <= hi`` (same columns and order).

    Streams each shard in record batches of ``READ_BATCH`` rows and filters them in Arrow, so
    it holds one record batch plus the kept rows: (users x (hi - lo + 1)) windows, whatever the
    length of the dataset. A contiguous range of every user's consecutive grid, so a context
    summary over it equals the one over the whole table for flows with windows in
    ``[lo + C, hi]`` (``encoding.context_summary``).
    """
    frames = []
    for p in paths:
        pf = pq.ParquetFile(str(p), buffer_size=STREAM_BUFFER, pre_buffer=False)
        for batch in pf.iter_batches(READ_BATCH, columns=_window_columns(p, columns)):
            win = batch.column("win")
            mask = pc.and_(pc.greater_equal(win, int(lo)), pc.less_equal(win, int(hi)))
            kept = batch.filter(mask)
            if kept.num_rows:
                frames.append(kept.to_pandas(strings_to_categorical=True))
        del pf
    pa.default_memory_pool().release_unused()
    return _windows_frame(frames)


def list_days(paths: Sequence[str | Path]) -> list[str]:
    """Distinct ``day`` values of the shards, ascending (streams the ``day`` column)."""
    days: set[str] = set()
    for path in paths:
        for batch in pq.ParquetFile(str(path), buffer_size=STREAM_BUFFER).iter_batches(
            READ_BATCH, columns=["day"]
        ):
            days.update(str(d) for d in pd.unique(batch.column(0).to_pandas().astype(str)))
    return sorted(days)


def _file_parts(
    paths: Sequence[str | Path], columns: Sequence[str], day: str | None, read_rows: int
) -> Iterator[pa.RecordBatch]:
    """Record batches (Arrow, ``shard`` and ``row`` appended) of the shards, ``day`` only."""
    for k, path in enumerate(paths):
        pf = pq.ParquetFile(str(path), buffer_size=STREAM_BUFFER, pre_buffer=False)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        if day is not None and "day" not in cols:
            cols.append("day")
        start = 0
        for batch in pf.iter_batches(read_rows, columns=cols, use_threads=False):
            n = batch.num_rows
            rows = np.arange(start, start + n, dtype=np.int64)
            if day is not None:  # filter in Arrow: only the day's rows are kept
                mask = pc.equal(pc.cast(batch.column("day"), pa.string()), day)
                keep = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
                batch, rows = batch.take(pa.array(keep)), rows[keep]
            if len(rows):
                batch = batch.append_column("shard", pa.array(np.full(len(rows), k, np.int32)))
                yield batch.append_column("row", pa.array(rows))
            start += n
        del pf
        pa.default_memory_pool().release_unused()


def iter_batches(
    paths: Sequence[str | Path], columns: Sequence[str], batch_rows: int, order: str = "day"
) -> Iterator[pd.DataFrame]:
    """Batches of at most ``batch_rows`` rows (module docstring), with ``shard`` and ``row``.

    The rows are gathered in Arrow and become pandas once per batch (one conversion, no
    concatenation of small frames), which keeps the heap from fragmenting over the days.
    """
    if order not in ("day", "file"):
        raise ValueError(f"order must be 'day' or 'file', got {order!r}")
    groups: list[str | None] = list_days(paths) if order == "day" else [None]
    for day in groups:
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        for part in _file_parts(paths, columns, day, min(READ_BATCH, batch_rows)):
            pending.append(part)
            n_pending += part.num_rows
            while n_pending >= batch_rows:
                merged = pa.Table.from_batches(pending)
                pending = []  # drop the references before converting
                yield merged.slice(0, batch_rows).to_pandas()
                rest = merged.slice(batch_rows).combine_chunks()
                del merged
                pending, n_pending = rest.to_batches(), rest.num_rows
                pa.default_memory_pool().release_unused()  # hand freed pages back to the OS
        if n_pending:
            yield pa.Table.from_batches(pending).to_pandas()

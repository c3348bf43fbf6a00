"""Per-user flow tables with derived features (architecture.md, "User tables").

``build_user_flows`` (rule ``user_flows``) streams the canonical dataset batch by batch, keeps
the flows of one shard's users (``src`` or ``dst`` among them, matched on the dictionary of each
batch), emits each as an ``out`` row for its source user and an ``in`` row for its destination
user, sorts by (``user``, ``ts``) and adds the derived columns with ``derive_features``.
Memory: one batch plus the shard's own flows, up to ``max_rows``; a larger shard is cut into
groups of users (in name order), spilled to disk by one scan and derived group by group, so a
job's memory stays flat when the days (and so each user's flows) grow.

``derive_features`` is the one place derived columns are computed, for real flows and for a
model's synthetic sample alike (a sample has the canonical columns plus ``user`` and
``direction``). It adds, per row:

- ``peer`` (the other end), ``peer_kind`` (``internal``/``external``),
- ``hour`` (int8, 0..23 UTC), ``dow`` (int8, 0 = Monday), ``day`` (``YYYY-MM-DD``),
- ``dt`` (float64 s since the user's previous flow; 0 for the first),
- ``log_bytes``, ``log_packets``, ``log_duration``, ``log_rev_bytes``, ``log_rev_packets``
  (log1p; rev NaN where null), ``bpp`` (bytes / packets, 0 where packets = 0),
- ``prev_log_bytes``, ``prev_log_packets``, ``prev_dt``, ``prev_proto``, ``prev_dport`` (the
  user's previous flow; the first flow takes its own values),
- ``roll{W}_{packets,bytes}_{mean,std}`` (``rolling.py``),
- ``split`` when a split is given (``train``/``val``/``test``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from nfsynth.features.rolling import add_rolling
from nfsynth.features.select import as_filter, read_hosts, scan_batches
from nfsynth.io.dataset import open_flows

log = logging.getLogger(__name__)

DEFAULT_ROLLING = (1.0, 10.0, 60.0)
DERIVED_COLUMNS = [
    "direction", "peer", "peer_kind", "hour", "dow", "day", "dt",
    "log_bytes", "log_packets", "log_rev_bytes", "log_rev_packets", "log_duration", "bpp",
    "prev_log_bytes", "prev_log_packets", "prev_dt", "prev_proto", "prev_dport",
]  # fmt: skip
STRING_COLUMNS = ("user", "direction", "peer", "peer_kind", "day", "split")


def _as_str(col: pd.Series) -> pd.Series:
    """Plain string (object) values of a categorical or string column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.astype(str)
    return col.astype(object)


def _codes(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """(int64 codes, object array of values) of a column; categoricals without a copy."""
    if not isinstance(col, pd.Series):
        col = pd.Series(col, copy=False)
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(np.int64), np.asarray(col.cat.categories, dtype=object)
    codes, uniques = pd.factorize(col.astype(object), sort=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _peer(src: Any, dst: Any, is_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values) of the peer: ``dst`` of out rows, ``src`` of in rows."""
    s_codes, s_vals = _codes(pd.Series(src))
    d_codes, d_vals = _codes(pd.Series(dst))
    values = pd.Index(s_vals).append(pd.Index(d_vals)).unique()
    s_map = values.get_indexer(s_vals)
    d_map = values.get_indexer(d_vals)
    codes = np.where(is_out, d_map[d_codes], s_map[s_codes])
    return codes, np.asarray(values, dtype=object)


def split_labels(
    df: pd.DataFrame, split: dict[str, Any] | None, days: np.ndarray | None = None
) -> np.ndarray:
    """``train``/``val``/``test`` of each row from ``split.json`` (by ``day`` or by ``user``).

    Rows whose day or host is in no list get ``""``.
    """
    if not split:
        return np.full(len(df), "", dtype=object)
    where = {x: name for name in ("train", "val", "test") for x in split.get(name, [])}
    key = df["day"] if split.get("mode") == "days" else df["user"]
    return key.map(where).fillna("").to_numpy(dtype=object)


def derive_features(
    df: pd.DataFrame,
    *,
    internal: Iterable[str] | Callable | None = None,
    rolling_seconds: Sequence[float] | None = DEFAULT_ROLLING,
    split: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Derived user-flow columns (module docstring) of flows with ``user`` and ``direction``.

    ``df``: canonical columns plus ``user`` and ``direction`` (``out``/``in``), e.g. a model's
    sample. ``internal``: the dataset's ``internal`` patterns or an ``is_internal(values)``
    predicate (None: keep ``peer_kind`` when present, else every peer internal).
    ``rolling_seconds``: look-backs of the rolling statistics (None or empty: none).
    ``split``: the ``split.json`` dict, to add the ``split`` column.

    Returns a new DataFrame sorted by (``user``, ``ts``) (stable), index reset. String columns
    (``user``, ``direction``, ``peer``, ``peer_kind``, ``day``, ``split``) are plain strings.
    """
    if len(df) == 0:
        return _empty_like(df, rolling_seconds, split is not None)
    u_codes, u_vals = _codes(df["user"])
    rank = np.empty(len(u_vals), dtype=np.int64)
    rank[np.argsort(u_vals.astype(str), kind="stable")] = np.arange(len(u_vals))
    u_sorted = rank[u_codes]
    ts = df["ts"].to_numpy(np.float64)
    by_ts = np.argsort(ts, kind="stable")  # two stable passes = lexsort((ts, user)), faster
    order = by_ts[np.argsort(u_sorted[by_ts], kind="stable")]
    ts = ts[order]
    # One dict of columns, built once into a DataFrame (no per-column block copies).
    cols: dict[str, Any] = {name: _take(df[name], order) for name in df.columns}
    user_codes = u_codes[order]
    cols["user"] = u_vals[user_codes]
    d_codes, d_vals = _codes(df["direction"])
    cols["direction"] = d_vals.astype(str).astype(object)[d_codes[order]]
    is_out = cols["direction"] == "out"
    if "peer" in df.columns:
        peer_codes, peer_vals = _codes(cols["peer"])
    else:
        peer_codes, peer_vals = _peer(cols["src"], cols["dst"], is_out)
    cols["peer"] = peer_vals[peer_codes]
    if internal is not None or "peer_kind" not in df.columns:
        kind = np.asarray(as_filter(internal)(peer_vals), dtype=bool)
        labels = np.array(["external", "internal"], dtype=object)
        cols["peer_kind"] = labels[kind.astype(np.int64)][peer_codes]
    day_num = np.floor(ts / 86400.0).astype(np.int64)
    cols["hour"] = np.floor((ts - day_num * 86400.0) / 3600.0).clip(0, 23).astype(np.int8)
    cols["dow"] = ((day_num + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday
    day_codes, day_uniques = pd.factorize(day_num, sort=False)
    day_text = np.asarray(day_uniques.astype("datetime64[D]").astype(str), dtype=object)
    cols["day"] = day_text[day_codes]
    new_user = np.r_[True, user_codes[1:] != user_codes[:-1]]
    prev = np.r_[0, np.arange(len(ts) - 1)]
    prev[new_user] = np.flatnonzero(new_user)
    dt = ts - ts[prev]
    cols["dt"] = dt
    for field in ("bytes", "packets", "rev_bytes", "rev_packets", "duration"):
        if field in cols:
            vals = pd.to_numeric(cols[field], errors="coerce")
            vals = np.asarray(pd.Series(vals).to_numpy(np.float64, na_value=np.nan))
        else:
            vals = np.full(len(ts), np.nan)
        cols[f"log_{field}"] = np.log1p(vals)
    packets = np.asarray(cols["packets"], dtype=np.float64)
    bytes_ = np.asarray(cols["bytes"], dtype=np.float64)
    cols["bpp"] = np.divide(bytes_, packets, out=np.zeros(len(ts)), where=packets > 0)
    cols["prev_log_bytes"] = cols["log_bytes"][prev]
    cols["prev_log_packets"] = cols["log_packets"][prev]
    cols["prev_dt"] = dt[prev]
    cols["prev_proto"] = np.asarray(cols["proto"])[prev]
    cols["prev_dport"] = _take(pd.Series(cols["dport"]), prev)
    out = pd.DataFrame(cols, copy=False)
    if rolling_seconds:
        add_rolling(out, rolling_seconds)
    if split is not None:
        out["split"] = split_labels(out, split)
    return out


def _take(col: pd.Series | pd.Categorical, idx: np.ndarray) -> np.ndarray | pd.Categorical:
    """Rows ``idx`` of a column; categoricals stay categorical (codes taken, not strings)."""
    if isinstance(col, pd.Series):
        col = col.array
    if isinstance(col, pd.Categorical):
        return pd.Categorical.from_codes(col.codes[idx], dtype=col.dtype)
    return (
        np.asarray(col)[idx] if not isinstance(col, pd.api.extensions.ExtensionArray) else col[idx]
    )


def _empty_like(df: pd.DataFrame, rolling_seconds, with_split: bool) -> pd.DataFrame:
    """A zero-row result with every derived column (so downstream code sees the columns)."""
    from nfsynth.features.rolling import roll_columns

    out = df.copy()
    for col in [*DERIVED_COLUMNS, *roll_columns(rolling_seconds or [])]:
        if col not in out.columns:
            out[col] = pd.Series(dtype=object if col in STRING_COLUMNS else np.float64)
    if with_split:
        out["split"] = pd.Series(dtype=object)
    return out


def _shard_rows(batch: pa.RecordBatch, users: pa.Array) -> list[pa.Table]:
    """The batch's flows of ``users`` as ``out`` rows and ``in`` rows (arrow tables)."""
    tables = []
    src, dst = batch.column("src"), batch.column("dst")
    src_s = src.dictionary.cast(pa.string()) if pa.types.is_dictionary(src.type) else None
    dst_s = dst.dictionary.cast(pa.string()) if pa.types.is_dictionary(dst.type) else None

    def member(col: pa.Array, dict_str: pa.Array | None) -> np.ndarray:
        if dict_str is None:
            return pc.is_in(col.cast(pa.string()), users).to_numpy(zero_copy_only=False)
        hit = pc.is_in(dict_str, users).to_numpy(zero_copy_only=False)
        return hit[col.indices.to_numpy(zero_copy_only=False)]

    m_src = member(src, src_s)
    m_dst = member(dst, dst_s)
    if not (m_src.any() or m_dst.any()):
        return tables
    if src_s is not None and dst_s is not None:  # self loops compared on dictionary codes
        d_in_s = pc.fill_null(pc.index_in(dst_s, src_s), -1).to_numpy(zero_copy_only=False)
        d_idx = dst.indices.to_numpy(zero_copy_only=False)
        same = d_in_s[d_idx] == src.indices.to_numpy(zero_copy_only=False)
    else:
        same = pc.equal(src.cast(pa.string()), dst.cast(pa.string())).to_numpy(zero_copy_only=False)
    m_in = m_dst & ~same
    table = pa.Table.from_batches([batch])
    for mask, user_col, peer_col, direction in (
        (m_src, src, dst, "out"),
        (m_in, dst, src, "in"),
    ):
        if not mask.any():
            continue
        sel = pa.array(mask)
        part = table.filter(sel)
        n = part.num_rows
        part = part.append_column("user", _as_dict(user_col.filter(sel)))
        codes = pa.array(np.zeros(n, dtype=np.int32))
        part = part.append_column(
            "direction", pa.DictionaryArray.from_arrays(codes, pa.array([direction]))
        )
        part = part.append_column("peer", _as_dict(peer_col.filter(sel)))
        tables.append(part)
    return tables


def _as_dict(arr: pa.Array) -> pa.Array:
    """A string column as dictionary<int32, string> (kept as is when it already is one)."""
    if pa.types.is_dictionary(arr.type):
        return arr
    return pc.dictionary_encode(arr.cast(pa.string()))


def _flow_columns(dataset: ds.Dataset) -> list[str]:
    """The dataset's columns but the ``day`` partition (recomputed from ``ts``)."""
    return [c for c in dataset.schema.names if c != "day"]


def _empty_user_flows(dataset: ds.Dataset) -> pd.DataFrame:
    """A zero-row raw user-flow frame with the dataset's columns plus user/direction/peer."""
    schema = dataset.schema
    frame = pa.schema([schema.field(c) for c in _flow_columns(dataset)]).empty_table().to_pandas()
    for c in ("user", "direction", "peer"):
        frame[c] = pd.Series(dtype=object)
    return frame


def read_user_flows(
    flows: ds.Dataset | str | Path, users: Sequence[str], batch_size: int = 1 << 18
) -> pd.DataFrame:
    """Raw flows of ``users`` (both directions, ``user``/``direction``/``peer`` added), unsorted.

    Streams the dataset one batch at a time (memory: one batch plus the kept rows); the ``day``
    partition column is dropped (recomputed from ``ts``).
    """
    dataset = flows if isinstance(flows, ds.Dataset) else open_flows(flows)
    columns = _flow_columns(dataset)
    wanted = pa.array(list(users), type=pa.string())
    parts: list[pa.Table] = []
    n_in = 0
    for batch in scan_batches(dataset, columns, batch_size):
        n_in += batch.num_rows
        parts.extend(_shard_rows(batch, wanted))
    if not parts:
        return _empty_user_flows(dataset)
    table = pa.concat_tables(parts, promote_options="permissive")
    log.info("read %d flows, kept %d user rows", n_in, table.num_rows)
    return table.to_pandas()


def user_groups(users: Sequence[str], rows: Sequence[int], max_rows: int) -> list[list[str]]:
    """``users`` in name order, cut into consecutive groups of at most ``max_rows`` rows.

    ``rows``: each user's expected user-flow rows (``hosts.parquet``'s ``n_flows``). A user with
    more than ``max_rows`` rows forms a group alone. Concatenating the groups' tables, each
    sorted by (user, ts), gives the shard's table sorted by (user, ts).
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    count = dict(zip(users, (int(n) for n in rows), strict=True))
    groups: list[list[str]] = []
    current: list[str] = []
    total = 0
    for user in sorted(count):
        if current and total + count[user] > max_rows:
            groups.append(current)
            current, total = [], 0
        current.append(user)
        total += count[user]
    if current:
        groups.append(current)
    return groups


def spill_user_flows(
    flows: ds.Dataset | str | Path,
    groups: Sequence[Sequence[str]],
    directory: str | Path,
    batch_size: int = 1 << 18,
) -> list[Path | None]:
    """One scan of the dataset, each group's raw user flows appended to its own Arrow IPC stream.

    Returns one path per group (None for a group without rows); memory holds one batch. Read a
    group back with ``pa.ipc.open_stream(path).read_all()`` (the same rows, in the same order,
    as ``read_user_flows`` of that group).
    """
    dataset = flows if isinstance(flows, ds.Dataset) else open_flows(flows)
    columns = _flow_columns(dataset)
    wanted = [pa.array(list(g), type=pa.string()) for g in groups]
    paths = [Path(directory) / f"group-{k:04d}.arrows" for k in range(len(groups))]
    writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * len(groups)
    schemas: list[pa.Schema | None] = [None] * len(groups)
    n_in = n_kept = 0
    try:
        for batch in scan_batches(dataset, columns, batch_size):
            n_in += batch.num_rows
            for k, users in enumerate(wanted):
                for part in _shard_rows(batch, users):
                    if writers[k] is None:
                        schemas[k] = part.schema
                        writers[k] = pa.ipc.new_stream(paths[k], part.schema)
                    writers[k].write_table(part.cast(schemas[k]))
                    n_kept += part.num_rows
    finally:
        for writer in writers:
            if writer is not None:
                writer.close()
    log.info("read %d flows, spilled %d user rows into %d groups", n_in, n_kept, len(groups))
    return [p if w is not None else None for p, w in zip(paths, writers, strict=True)]


def build_user_flows(
    flows_dir: str | Path,
    hosts_path: str | Path,
    split: dict[str, Any],
    shard: int,
    out_path: str | Path,
    rolling_seconds: Sequence[float] = DEFAULT_ROLLING,
    max_rows: int = 1_000_000,
) -> dict[str, Any]:
    """Rule ``user_flows``: the user table of shard ``shard``, written to ``out_path``.

    ``hosts_path``: ``hosts.parquet`` (its metadata gives the ``internal`` patterns, its
    ``n_flows`` each user's rows); ``split``: the ``split.json`` dict. ``max_rows``: user rows
    held in memory at once. A shard within it is read in one scan and derived at once; a larger
    one is cut into groups of users (``user_groups``), spilled by one scan into a temporary
    directory beside ``out_path`` (``spill_user_flows``), then derived and appended group by
    group, so memory is bounded by ``max_rows`` (and the largest user) whatever the days.

    Returns ``{"users", "rows", "groups", "seconds"}``; the table is the file.
    """
    t0 = time.perf_counter()
    hosts, meta = read_hosts(hosts_path)
    mine = hosts.loc[hosts["shard"] == int(shard)]
    users = mine["user"].tolist()
    groups = user_groups(users, mine["n_flows"].tolist(), max_rows) or [[]]
    internal = meta.get("internal", [])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def derived(raw: pd.DataFrame) -> pa.Table:
        table = derive_features(
            raw, internal=internal, rolling_seconds=rolling_seconds, split=split
        )
        return user_flows_table(table)

    n_rows = 0
    if len(groups) == 1:
        table = derived(read_user_flows(flows_dir, users))
        pq.write_table(table, out_path, row_group_size=ROW_GROUP_ROWS)
        n_rows = table.num_rows
    else:
        dataset = open_flows(flows_dir)
        with tempfile.TemporaryDirectory(prefix=f".{out_path.name}.", dir=out_path.parent) as tmp:
            spills = spill_user_flows(dataset, groups, tmp)
            writer: pq.ParquetWriter | None = None
            try:
                for spill in spills:
                    if spill is None:
                        continue
                    raw = pa.ipc.open_stream(spill).read_all().to_pandas()
                    table = derived(raw)
                    del raw
                    if writer is None:
                        writer = pq.ParquetWriter(out_path, table.schema)
                    writer.write_table(table.cast(writer.schema), row_group_size=ROW_GROUP_ROWS)
                    n_rows += table.num_rows
                    del table
                if writer is None:  # no group had a row
                    table = derived(_empty_user_flows(dataset))
                    pq.write_table(table, out_path)
            finally:
                if writer is not None:
                    writer.close()
    seconds = time.perf_counter() - t0
    log.info(
        "shard %s: %d users in %d group(s) of <= %d rows, %d user-flow rows, %.2f s",
        shard,
        len(users),
        len(groups),
        max_rows,
        n_rows,
        seconds,
    )
    return {"users": len(users), "rows": n_rows, "groups": len(groups), "seconds": seconds}


ROW_GROUP_ROWS = 1 << 16


def user_flows_table(df: pd.DataFrame) -> pa.Table:
    """A user-flow frame as the arrow table written: string columns as ``string``."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for name in STRING_COLUMNS:
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.string()))
    return table


def write_user_flows(df: pd.DataFrame, path: str | Path) -> None:
    """Write a user-flow table; string columns as ``string``, categoricals as dictionaries."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(user_flows_table(df), path, row_group_size=ROW_GROUP_ROWS)

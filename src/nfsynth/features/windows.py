"""Per-user aggregation windows on the dataset's global grid, and each flow's context.

Window ``win = floor(ts / seconds)``. Every user gets every window from the dataset's first
window to its last (empty ones as zeros), so all users share one grid. Columns
(architecture.md): ``user, win (int64), win_start (float64 s), n_flows, bytes, packets,
n_peers, n_dports, n_tcp, n_udp, n_icmp, n_other, n_out, n_in`` (int64). ``bytes`` and
``packets`` sum the flows' ``bytes``/``packets`` columns (sent by the flow's source).

Computation: one integer cell index ``user_code * n_windows + (win - first_win)`` per flow, then
``np.bincount`` for sums and counts and a hash ``pd.unique`` of (cell, peer) and (cell, dport)
pairs for the distinct counts. ``windows_from_file`` streams a user-flow Parquet file in
batches cut at user boundaries, so memory holds one batch plus the output grid.

``context(flows, windows, C)`` gives each flow the rows ``win-C .. win-1`` of its user (oldest
first), zeros outside the grid: shape ``(n_flows, C, len(WINDOW_FEATURES))``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

WINDOW_FEATURES = [
    "n_flows", "bytes", "packets", "n_peers", "n_dports",
    "n_tcp", "n_udp", "n_icmp", "n_other", "n_out", "n_in",
]  # fmt: skip
WINDOW_COLUMNS = ["user", "win", "win_start", *WINDOW_FEATURES]
NEEDED_COLUMNS = ["user", "ts", "bytes", "packets", "peer", "dport", "proto", "direction"]
_PROTO_CLASS = np.full(256, 3, dtype=np.int64)
_PROTO_CLASS[[6, 17, 1]] = [0, 1, 2]  # tcp, udp, icmp; the rest "other"


def window_index(ts: np.ndarray, seconds: float) -> np.ndarray:
    """``floor(ts / seconds)`` as int64 (shape of ``ts``)."""
    return np.floor(np.asarray(ts, dtype=np.float64) / float(seconds)).astype(np.int64)


def grid(first_ts: float, last_ts: float, seconds: float) -> tuple[int, int]:
    """(first_win, last_win) of the global grid covering ``[first_ts, last_ts]``."""
    return int(math.floor(first_ts / seconds)), int(math.floor(last_ts / seconds))


def window_seconds(windows: pd.DataFrame, default: float = 300.0) -> float:
    """Window length of a windows table (``win_start / win``), ``default`` if it cannot tell."""
    nz = windows.loc[windows["win"] != 0, ["win", "win_start"]].head(1)
    if nz.empty:
        return float(default)
    return float(nz["win_start"].iloc[0] / nz["win"].iloc[0])


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a column (categorical codes directly, else a hash factorisation)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(np.int64)
    return pd.factorize(values, sort=False)[0].astype(np.int64)


def _positions(values: pd.Series, names: Sequence[str]) -> np.ndarray:
    """Position of each value in ``names`` (-1 when absent), via categories when categorical."""
    index = pd.Index(list(names), dtype=object)
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = np.r_[index.get_indexer(values.cat.categories.astype(object)), -1]
        return lookup[values.cat.codes.to_numpy(np.int64)]  # code -1 (null) -> -1
    return index.get_indexer(values.astype(object)).astype(np.int64)


def _distinct_per_cell(cell: np.ndarray, other: pd.Series, n_cells: int) -> np.ndarray:
    """Number of distinct values of ``other`` in each cell (int64, shape (n_cells,))."""
    codes = _codes(other)
    width = int(codes.max()) + 2 if len(codes) else 1
    pairs = pd.unique(cell * width + codes + 1)
    return np.bincount(pairs // width, minlength=n_cells).astype(np.int64)


def aggregate(
    flows: pd.DataFrame,
    users: Sequence[str],
    first_win: int,
    last_win: int,
    seconds: float,
) -> pd.DataFrame:
    """Windows of ``users`` from user flows (columns ``NEEDED_COLUMNS``; any row order).

    Returns ``len(users) * (last_win - first_win + 1)`` rows, ordered by the order of
    ``users`` then ``win``. Flows of other users, or outside the grid, are dropped with a
    warning.
    """
    users = list(users)
    n_win = int(last_win) - int(first_win) + 1
    if n_win <= 0:
        raise ValueError(f"window grid is empty: first_win={first_win} > last_win={last_win}")
    n_cells = len(users) * n_win
    ucode = _positions(flows["user"], users)
    w = window_index(flows["ts"].to_numpy(), seconds) - int(first_win)
    ok = (ucode >= 0) & (w >= 0) & (w < n_win)
    if not ok.all():
        log.warning("windows: %d flows outside the users or the grid dropped", int((~ok).sum()))
        flows, ucode, w = flows[ok], ucode[ok], w[ok]
    cell = ucode * n_win + w
    out: dict[str, Any] = {}
    out["n_flows"] = np.bincount(cell, minlength=n_cells)
    for field in ("bytes", "packets"):
        weights = flows[field].to_numpy(np.float64)
        out[field] = np.rint(np.bincount(cell, weights=weights, minlength=n_cells))
    out["n_peers"] = _distinct_per_cell(cell, flows["peer"], n_cells)
    out["n_dports"] = _distinct_per_cell(cell, flows["dport"], n_cells)
    pcls = _PROTO_CLASS[flows["proto"].to_numpy().astype(np.int64) & 255]
    per_proto = np.bincount(cell * 4 + pcls, minlength=4 * n_cells).reshape(n_cells, 4)
    for k, name in enumerate(("n_tcp", "n_udp", "n_icmp", "n_other")):
        out[name] = per_proto[:, k]
    is_out = _positions(flows["direction"], ["out"]) == 0
    out["n_out"] = np.bincount(cell, weights=is_out, minlength=n_cells)
    out["n_in"] = out["n_flows"] - out["n_out"]
    win = np.tile(np.arange(int(first_win), int(last_win) + 1, dtype=np.int64), len(users))
    frame = pd.DataFrame(
        {
            "user": np.repeat(np.asarray(users, dtype=object), n_win),
            "win": win,
            "win_start": win.astype(np.float64) * float(seconds),
        }
    )
    for name in WINDOW_FEATURES:
        frame[name] = np.asarray(out[name]).astype(np.int64)
    return frame


def windows_from_file(
    path: str | Path,
    users: Sequence[str] | None,
    first_win: int,
    last_win: int,
    seconds: float,
    batch_size: int = 1 << 20,
) -> pd.DataFrame:
    """Windows of a user-flow Parquet file sorted by user (one shard), streamed in batches.

    ``users``: the shard's users (all get rows, even with no flows); None: the users found.
    """
    pf = pq.ParquetFile(path, read_dictionary=["user", "peer", "dport", "direction"])
    frames: list[pd.DataFrame] = []
    seen: list[str] = []
    carry: pa.Table | None = None
    for batch in pf.iter_batches(batch_size=batch_size, columns=NEEDED_COLUMNS):
        table = pa.Table.from_batches([batch])
        if carry is not None and carry.num_rows:
            table = pa.concat_tables([carry, table]).unify_dictionaries()
        user = table.column("user").combine_chunks()
        codes = user.indices.to_numpy(zero_copy_only=False)
        last = codes[-1] if len(codes) else -1
        diff = codes != last
        cut = len(codes) - int(diff[::-1].argmax()) if diff.any() else 0
        done, carry = table.slice(0, cut), table.slice(cut)
        if done.num_rows:
            chunk = done.to_pandas()
            names = [str(u) for u in pd.unique(chunk["user"].astype(object))]
            frames.append(aggregate(chunk, names, first_win, last_win, seconds))
            seen.extend(names)
    if carry is not None and carry.num_rows:
        chunk = carry.to_pandas()
        names = [str(u) for u in pd.unique(chunk["user"].astype(object))]
        frames.append(aggregate(chunk, names, first_win, last_win, seconds))
        seen.extend(names)
    if len(seen) != len(set(seen)):
        raise ValueError(f"{path}: rows are not grouped by user (a user appears twice)")
    if users is None:
        users = sorted(seen)
    missing = [u for u in users if u not in set(seen)]
    if missing:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in NEEDED_COLUMNS})
        frames.append(aggregate(empty, missing, first_win, last_win, seconds))
    if not frames:
        return aggregate(pd.DataFrame(columns=NEEDED_COLUMNS), [], first_win, last_win, seconds)
    result = pd.concat(frames, ignore_index=True)
    order = pd.Index(list(users)).get_indexer(result["user"])
    result = result[order >= 0]
    return result.iloc[np.lexsort((result["win"].to_numpy(), order[order >= 0]))].reset_index(
        drop=True
    )


def build_windows(
    flows_path: str | Path,
    out_path: str | Path,
    meta_path: str | Path | None,
    first_ts: float,
    last_ts: float,
    seconds: int = 300,
    context_windows: int = 36,
    users: Sequence[str] | None = None,
    shard: int | None = None,
) -> pd.DataFrame:
    """Rule ``windows``: windows of one shard's user flows, plus ``meta-{k}.json``.

    The meta JSON holds ``window_seconds``, ``context``, ``first_win``, ``last_win``,
    ``n_windows``, ``first_ts``, ``last_ts``, ``features``, ``shard``, ``n_users``, ``n_flows``.
    """
    t0 = time.perf_counter()
    first_win, last_win = grid(first_ts, last_ts, seconds)
    frame = windows_from_file(flows_path, users, first_win, last_win, seconds)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "user", table.column("user").cast(pa.string()))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    n_users = int(frame["user"].nunique())
    n_flows = int(frame["n_flows"].sum())
    meta = {
        "window_seconds": int(seconds),
        "context": int(context_windows),
        "first_win": first_win,
        "last_win": last_win,
        "n_windows": last_win - first_win + 1,
        "first_ts": float(first_ts),
        "last_ts": float(last_ts),
        "features": WINDOW_FEATURES,
        "shard": shard,
        "n_users": n_users,
        "n_flows": n_flows,
    }
    if meta_path is not None:
        with open(meta_path, "w") as handle:
            json.dump(meta, handle, indent=1)
    log.info(
        "windows: %d users x %d windows = %d rows from %d flows, %.2f s",
        n_users,
        meta["n_windows"],
        len(frame),
        n_flows,
        time.perf_counter() - t0,
    )
    return frame


def context(
    flows: pd.DataFrame,
    windows: pd.DataFrame,
    C: int = 36,
    features: Sequence[str] = WINDOW_FEATURES,
    seconds: float | None = None,
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """The previous ``C`` windows of each flow: shape ``(len(flows), C, len(features))``.

    ``context[i, k]`` is the window ``win_i - C + k`` of flow ``i``'s user (so ``k = C-1`` is
    the window just before the flow's own); windows outside the user's grid are zeros.
    ``flows`` needs ``user`` and ``ts`` (or ``win``); ``windows`` the table of this module.
    ``seconds``: window length (default: the spacing of ``win_start``, else 300). Memory:
    ``len(flows) * C * len(features) * itemsize`` bytes; pass a slice of flows for batches.
    """
    n, n_feat = len(flows), len(features)
    if n == 0:
        return np.zeros((0, C, n_feat), dtype=dtype)
    if "win" in flows.columns:
        fwin = flows["win"].to_numpy(np.int64)
    else:
        fwin = window_index(flows["ts"].to_numpy(), seconds or window_seconds(windows))
    wuser = windows["user"].astype(object).to_numpy()
    wwin = windows["win"].to_numpy(np.int64)
    # Windows are grouped by user with consecutive win: each user's block is (start row,
    # first win, last win).
    new = np.r_[True, wuser[1:] != wuser[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(wuser)]
    block_users = pd.Index(wuser[starts])
    if not block_users.is_unique:
        raise ValueError("context: windows must be grouped by user (a user appears twice)")
    if np.any(np.diff(wwin)[~new[1:]] != 1):
        raise ValueError("context: each user's windows must be consecutive and sorted by win")
    b = block_users.get_indexer(flows["user"].astype(object))
    known = b >= 0
    bb = np.where(known, b, 0)
    first, last, row0 = wwin[starts][bb], wwin[ends - 1][bb], starts[bb]
    lags = np.arange(-C, 0, dtype=np.int64)
    target = fwin[:, None] + lags[None, :]  # (n, C)
    valid = known[:, None] & (target >= first[:, None]) & (target <= last[:, None])
    rows = np.where(valid, row0[:, None] + target - first[:, None], len(wuser))
    table = np.zeros((len(wuser) + 1, n_feat), dtype=dtype)
    table[:-1] = windows[list(features)].to_numpy(dtype=dtype)
    return table[rows]

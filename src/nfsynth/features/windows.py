"""Per-user aggregation windows on the dataset's global grid, and each flow's context.

Window ``win = floor(ts / seconds)``. Every user gets every window from the dataset's first
window to its last (empty ones as zeros), so all users share one grid. Columns
(architecture.md): ``user, win (int64), win_start (float64 s), n_flows, bytes, packets,
n_peers, n_dports, n_tcp, n_udp, n_icmp, n_other, n_out, n_in`` (int64). ``bytes`` and
``packets`` sum the flows' ``bytes``/``packets`` columns (sent by the flow's source).

Computation: one integer cell index ``user_code * n_windows + (win - first_win)`` per flow, then
``np.bincount`` for sums and counts and a hash ``pd.unique`` of (cell, peer) and (cell, dport)
pairs for the distinct counts. ``windows_from_file`` streams a user-flow Parquet file as arrow
batches (dictionary codes, no pandas) cut at (user, window) cell boundaries, so memory holds one
batch plus the output grid.

``context(flows, windows, C)`` gives each flow the rows ``win-C .. win-1`` of its user (oldest
first), zeros outside the grid: shape ``(n_flows, C, len(WINDOW_FEATURES))``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nfsynth.features.select import dictionary_codes

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


def user_grid(
    ts: np.ndarray, user: np.ndarray, n_users: int, seconds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's window grid from the window of its first flow to that of its last.

    ``ts`` (n,) seconds, ``user`` (n,) int codes in ``[0, n_users)``. Returns ``(first,
    length, pos)``: each user's first window index and window count, int64 (n_users,), and
    each flow's position in the users' grids concatenated in code order, int64 (n,). A user
    without flows gets length 0."""
    win = window_index(ts, seconds)
    user = np.asarray(user, dtype=np.int64)
    first = np.full(n_users, np.iinfo(np.int64).max)
    last = np.full(n_users, np.iinfo(np.int64).min)
    np.minimum.at(first, user, win)
    np.maximum.at(last, user, win)
    length = np.maximum(last - first + 1, 0)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]])
    return first, length, offset[user] + (win - first[user])


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


def _distinct_per_cell(cell: np.ndarray, codes: np.ndarray, n_cells: int) -> np.ndarray:
    """Number of distinct ``codes`` (int64, -1 = null counts as a value) in each cell."""
    width = int(codes.max()) + 2 if len(codes) else 1
    pairs = pd.unique(cell * width + codes + 1)
    return np.bincount(pairs // width, minlength=n_cells).astype(np.int64)


def cell_features(
    cell: np.ndarray,
    n_cells: int,
    bytes_: np.ndarray,
    packets: np.ndarray,
    peer: np.ndarray,
    dport: np.ndarray,
    proto: np.ndarray,
    is_out: np.ndarray,
) -> np.ndarray:
    """The window features of flows already mapped to cells: int64 ``(n_cells, 11)``.

    ``cell`` (int64, shape (n,)): each flow's cell in ``0..n_cells-1``; ``bytes_``/``packets``
    numbers; ``peer``/``dport`` int64 codes (-1 = null); ``proto`` IP protocol numbers;
    ``is_out`` bool. Columns in the order of ``WINDOW_FEATURES``.
    """
    out = np.empty((n_cells, len(WINDOW_FEATURES)), dtype=np.int64)
    n_flows = np.bincount(cell, minlength=n_cells)
    out[:, 0] = n_flows
    out[:, 1] = np.rint(np.bincount(cell, weights=bytes_, minlength=n_cells))
    out[:, 2] = np.rint(np.bincount(cell, weights=packets, minlength=n_cells))
    out[:, 3] = _distinct_per_cell(cell, peer, n_cells)
    out[:, 4] = _distinct_per_cell(cell, dport, n_cells)
    pcls = _PROTO_CLASS[np.asarray(proto).astype(np.int64) & 255]
    out[:, 5:9] = np.bincount(cell * 4 + pcls, minlength=4 * n_cells).reshape(n_cells, 4)
    n_out = np.bincount(cell, weights=is_out, minlength=n_cells).astype(np.int64)
    out[:, 9] = n_out
    out[:, 10] = n_flows - n_out
    return out


def grid_frame(
    users: Sequence[str], first_win: int, last_win: int, seconds: float, values: np.ndarray
) -> pd.DataFrame:
    """The windows table: ``values`` int64 ``(len(users) * n_windows, 11)`` in user-major order.

    ``values`` in Fortran order (the transpose of a feature-major array) becomes the frame's
    block without a copy.
    """
    n_win = int(last_win) - int(first_win) + 1
    win = np.tile(np.arange(int(first_win), int(last_win) + 1, dtype=np.int64), len(users))
    frame = pd.DataFrame(values, columns=list(WINDOW_FEATURES), copy=False)
    frame.insert(0, "user", np.repeat(np.asarray(list(users), dtype=object), n_win))
    frame.insert(1, "win", win)
    frame.insert(2, "win_start", win.astype(np.float64) * float(seconds))
    return frame


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
    values = cell_features(
        ucode * n_win + w,
        n_cells,
        flows["bytes"].to_numpy(np.float64),
        flows["packets"].to_numpy(np.float64),
        _codes(flows["peer"]),
        _codes(flows["dport"]),
        flows["proto"].to_numpy(),
        _positions(flows["direction"], ["out"]) == 0,
    )
    return grid_frame(users, first_win, last_win, seconds, values)


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 numpy (nulls as 0)."""
    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col, 0)
    return col.to_numpy().astype(np.float64, copy=False)


def _row_group_batches(
    pf: pq.ParquetFile, columns: list[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """The file's rows as record batches of at most ``batch_size`` rows, one row group read at
    a time (``iter_batches`` read ahead several row groups: memory grew with the file)."""
    for i in range(pf.num_row_groups):
        yield from pf.read_row_group(i, columns=columns).to_batches(max_chunksize=batch_size)


def windows_from_file(
    path: str | Path,
    users: Sequence[str] | None,
    first_win: int,
    last_win: int,
    seconds: float,
    batch_size: int = 1 << 16,
) -> pd.DataFrame:
    """Windows of a user-flow Parquet file sorted by (user, ts) (one shard), streamed.

    ``users``: the shard's users, the output order (all get rows, even with no flows); None: the
    users found, sorted. Reads one row group at a time, in batches of at most ``batch_size``
    rows, as arrow (dictionary codes, no pandas), cuts each batch after its last complete (user,
    window) cell and carries the rest into the next batch, and accumulates into the output grid:
    memory is one row group plus the grid (users x windows x 11 int64). A file whose cells are
    not contiguous (rows not grouped by user and time) is refused.
    """
    dict_cols = ["user", "peer", "dport", "direction"]
    pf = pq.ParquetFile(path, read_dictionary=dict_cols, pre_buffer=False)
    if users is None:
        found = pq.read_table(path, columns=["user"]).column("user").unique()
        users = sorted(str(u) for u in found.to_pylist() if u is not None)
    users = list(users)
    n_win = int(last_win) - int(first_win) + 1
    if n_win <= 0:
        raise ValueError(f"window grid is empty: first_win={first_win} > last_win={last_win}")
    n_cells = len(users) * n_win
    values = np.zeros((len(WINDOW_FEATURES), n_cells), dtype=np.int64)  # feature-major
    done = np.zeros(n_cells, dtype=bool)
    user_index = pd.Index(users, dtype=object)
    carry: pa.Table | None = None
    dropped = 0
    batches = _row_group_batches(pf, NEEDED_COLUMNS, batch_size)
    for batch in itertools.chain(batches, [None]):  # None: flush the carried rows
        last = batch is None
        if last:
            table = carry
        else:
            table = pa.Table.from_batches([batch])
            if carry is not None and carry.num_rows:
                table = pa.concat_tables([carry, table]).unify_dictionaries()
        if table is None or table.num_rows == 0:
            continue
        u_idx, u_dict = dictionary_codes(table.column("user"))
        lookup = np.r_[user_index.get_indexer(u_dict.to_pylist()), -1]
        ucode = lookup[u_idx]  # null user (-1) -> lookup[-1] = -1
        w = window_index(table.column("ts").to_numpy(), seconds) - int(first_win)
        ok = (ucode >= 0) & (w >= 0) & (w < n_win)
        cell = np.where(ok, ucode * n_win + np.clip(w, 0, n_win - 1), -1)
        # cut after the last complete cell (its rows may go on in the next batch)
        change = np.flatnonzero(cell[1:] != cell[:-1]) + 1
        cut = table.num_rows if last or not len(change) else int(change[-1])
        if not last and not len(change):  # one cell fills the batch: keep reading
            carry = table
            continue
        carry = table.slice(cut)
        part, cell, ok = table.slice(0, cut), cell[:cut], ok[:cut]
        if not ok.all():
            dropped += int((~ok).sum())
            sel = np.flatnonzero(ok)
            part, cell = part.take(sel), cell[sel]
        if len(cell) == 0:
            continue
        new = np.r_[True, cell[1:] != cell[:-1]]
        local = cell[new]  # the part's cells in row order; pos: each row's run
        pos = np.cumsum(new) - 1
        if not (np.all(local[1:] > local[:-1]) or len(np.unique(local)) == len(local)) or (
            done[local].any()
        ):
            raise ValueError(
                f"{path}: rows are not grouped by user and time (a (user, window) cell "
                "appears twice); the user-flow table must be sorted by (user, ts)"
            )
        done[local] = True
        d_idx, d_dict = dictionary_codes(part.column("direction"))
        is_out = np.r_[np.asarray(d_dict.to_pylist(), dtype=object) == "out", False][d_idx]
        values[:, local] = cell_features(
            pos,
            len(local),
            _numbers(part, "bytes"),
            _numbers(part, "packets"),
            dictionary_codes(part.column("peer"))[0],
            dictionary_codes(part.column("dport"))[0],
            part.column("proto").to_numpy(zero_copy_only=False),
            is_out,
        ).T
    if dropped:
        log.warning("windows: %d flows outside the users or the grid dropped", dropped)
    return grid_frame(users, first_win, last_win, seconds, values.T)


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
    table = pa.table(
        {
            "user": pa.array(frame["user"].to_numpy(), type=pa.string()),
            **{c: frame[c].to_numpy() for c in WINDOW_COLUMNS[1:]},
        }
    )
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

"""User selection: which internal hosts become users, their roles, shards and the split.

A *user* is an internal host (``datasets.<name>.internal``: CIDR blocks and/or shell-style name
patterns; empty means every host is internal) among the ``top_n`` by flow count (as source or
destination) with at least ``min_flows`` flows, plus the hosts of ``include``.

Flow counting streams the Parquet dataset batch by batch (memory: one batch plus one row per
distinct internal host). Per batch it works on the dictionary codes of ``src``/``dst`` with
``np.bincount``, so no Python code runs per flow.

Role (``schema.ROLES``) from a host's flows with external peers: ``both`` (sends to and
receives from external peers), ``out_external`` (only sends), ``in_external`` (only receives),
``internal`` (no external peer at all).

A flow whose source and destination are the same host counts once, as ``out``.

Outputs (architecture.md, "User tables"): ``hosts.parquet`` (one row per user; its schema
metadata key ``nfsynth`` holds JSON with ``internal``, ``first_ts``, ``last_ts``, ``days``) and
``split.json``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from nfsynth.io.dataset import open_flows, read_manifest
from nfsynth.schema import ROLES

log = logging.getLogger(__name__)

HOST_COUNT_COLUMNS = ["n_flows", "n_out", "n_in", "n_ext_out", "n_ext_in", "n_int"]
HOSTS_SCHEMA = pa.schema(
    [
        pa.field("user", pa.string()),
        pa.field("role", pa.string()),
        *[pa.field(c, pa.int64()) for c in HOST_COUNT_COLUMNS],
        pa.field("split", pa.string()),
        pa.field("shard", pa.int32()),
    ]
)
META_KEY = b"nfsynth"
_DAY_RE = re.compile(r"day=(\d{4}-\d{2}-\d{2})")
#: A day partition holding less than this share of the flows is spill-over, not a day of
#: the dataset (``split_days``).
MIN_DAY_SHARE = 0.01
_IPV4_RE = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


class InternalFilter:
    """Predicate "is this host internal?" from CIDR blocks and shell-style name patterns.

    ``InternalFilter(["42.219.0.0/16", "Comp*"])(values) -> np.ndarray[bool]`` of
    ``len(values)``. IPv4 addresses are matched vectorised (integer range tests); other
    addresses (IPv6) one distinct value at a time. An empty pattern list makes every host
    internal.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = [str(p) for p in patterns]
        self.v4: list[tuple[int, int]] = []
        self.v6: list[ipaddress.IPv6Network] = []
        names: list[str] = []
        for pattern in self.patterns:
            try:
                net = ipaddress.ip_network(pattern, strict=False)
            except ValueError:
                names.append(pattern)
                continue
            if isinstance(net, ipaddress.IPv4Network):
                self.v4.append((int(net.network_address), int(net.broadcast_address)))
            else:
                self.v6.append(net)
        self.name_regex = "|".join(_glob_to_regex(p) for p in names) if names else None
        self._cache: dict[str, bool] = {}

    @property
    def everything(self) -> bool:
        """True when no pattern is given (every host internal)."""
        return not self.patterns

    def __call__(self, values: Sequence[str] | np.ndarray | pa.Array | pd.Series) -> np.ndarray:
        """Boolean mask, one entry per value (null values are never internal)."""
        arr = values if isinstance(values, pa.Array) else pa.array(np.asarray(values, dtype=object))
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string())
        if self.everything:
            return np.ones(len(arr), dtype=bool)
        if len(arr) <= 4096:  # dictionaries: remember answers across batches
            texts = arr.to_numpy(zero_copy_only=False)
            known = pd.Series(texts, dtype=object).map(self._cache).to_numpy(dtype=object)
            todo = pd.isna(known)
            if todo.any():
                fresh = self._match(arr.filter(pa.array(todo)))
                self._cache.update(zip(texts[todo], fresh.tolist(), strict=True))
                known[todo] = fresh
            return known.astype(bool)
        return self._match(arr)

    def _match(self, arr: pa.Array) -> np.ndarray:
        out = np.zeros(len(arr), dtype=bool)
        if self.name_regex is not None:
            hit = pc.match_substring_regex(arr, self.name_regex)
            out |= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
        if self.v4 or self.v6:
            is_v4 = pc.fill_null(pc.match_substring_regex(arr, _IPV4_RE), False)
            v4_mask = is_v4.to_numpy(zero_copy_only=False)
            if self.v4 and v4_mask.any():
                parts = pc.split_pattern(arr.filter(is_v4), ".")
                octets = pc.list_flatten(parts).cast(pa.int64()).to_numpy().reshape(-1, 4)
                addr = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8)
                addr |= octets[:, 3]
                hit = np.zeros(len(addr), dtype=bool)
                for lo, hi in self.v4:
                    hit |= (addr >= lo) & (addr <= hi)
                out[np.flatnonzero(v4_mask)[hit]] = True
            if self.v6:
                others = np.flatnonzero(~v4_mask & ~out)
                texts = arr.take(pa.array(others)).to_pylist() if len(others) else []
                out[others] = [_in_v6(t, self.v6) for t in texts]
        return out


def _glob_to_regex(pattern: str) -> str:
    """A shell pattern (``*``, ``?``, ``[...]``, ``[!...]``) as an anchored RE2 regex."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and (j := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : j]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "^(?s:" + "".join(out) + ")$"


def _in_v6(text: str | None, nets: list[ipaddress.IPv6Network]) -> bool:
    if text is None:
        return False
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(addr in net for net in nets)


def as_filter(internal: InternalFilter | Iterable[str] | Callable | None) -> Callable:
    """An ``is_internal(values) -> bool array`` from a filter, a pattern list or a callable."""
    if internal is None:
        return InternalFilter([])
    if isinstance(internal, InternalFilter) or callable(internal):
        return internal
    return InternalFilter(internal)


def dictionary_codes(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(int64 codes, -1 for null; dictionary) of a string or dictionary column, dictionary-
    encoding it if needed (chunks combined, so their dictionaries are unified)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    idx = col.indices
    if idx.null_count:
        idx = pc.fill_null(idx, -1)
    return idx.to_numpy(zero_copy_only=False).astype(np.int64), col.dictionary


class _DictionaryMemo:
    """What ``_batch_counts`` derives from a batch's src/dst dictionaries, kept while the next
    batches carry equal dictionaries (the batches of one Parquet file share the file's
    dictionary: without it every batch matched and hashed every host name of the file again,
    and time and peak memory grew with the number of hosts)."""

    def __init__(self) -> None:
        self.dicts: tuple[pa.Array, pa.Array] | None = None
        self.derived: tuple[np.ndarray, ...] = ()

    def get(self, s_dict: pa.Array, d_dict: pa.Array, is_internal: Callable) -> tuple:
        """(s_internal, d_internal, s_names, d_names, d_in_s) of these dictionaries."""
        if self.dicts is not None and all(
            len(a) == len(b) and a.equals(b)
            for a, b in zip(self.dicts, (s_dict, d_dict), strict=True)
        ):
            return self.derived
        s_names = s_dict.cast(pa.string()).to_numpy(zero_copy_only=False)
        d_names = d_dict.cast(pa.string()).to_numpy(zero_copy_only=False)
        d_in_s = pc.fill_null(pc.index_in(d_dict.cast(pa.string()), s_dict.cast(pa.string())), -1)
        self.dicts = (s_dict, d_dict)
        self.derived = (
            is_internal(s_dict),
            is_internal(d_dict),
            s_names,
            d_names,
            d_in_s.to_numpy(zero_copy_only=False),
        )
        return self.derived


def _batch_counts(
    batch: pa.RecordBatch, is_internal: Callable, memo: _DictionaryMemo | None = None
) -> pd.DataFrame:
    """Per-host counts of one batch, internal hosts only (columns HOST_COUNT_COLUMNS but n_flows)."""
    s_idx, s_dict = dictionary_codes(batch.column("src"))
    d_idx, d_dict = dictionary_codes(batch.column("dst"))
    memo = memo if memo is not None else _DictionaryMemo()
    s_int_d, d_int_d, s_names, d_names, d_in_s = memo.get(s_dict, d_dict, is_internal)
    s_int, d_int = s_int_d[s_idx], d_int_d[d_idx]
    self_loop = d_in_s[d_idx] == s_idx
    ns, nd = len(s_dict), len(d_dict)
    out = pd.DataFrame(
        {
            "user": s_names,
            "n_out": np.bincount(s_idx, minlength=ns),
            "n_ext_out": np.bincount(s_idx, weights=~d_int, minlength=ns).astype(np.int64),
            "n_int": np.bincount(s_idx, weights=d_int, minlength=ns).astype(np.int64),
        }
    )[s_int_d]
    inc = ~self_loop
    d_in = pd.DataFrame(
        {
            "user": d_names,
            "n_in": np.bincount(d_idx, weights=inc, minlength=nd).astype(np.int64),
            "n_ext_in": np.bincount(d_idx, weights=inc & ~s_int, minlength=nd).astype(np.int64),
            "n_int": np.bincount(d_idx, weights=inc & s_int, minlength=nd).astype(np.int64),
        }
    )[d_int_d]
    both = pd.concat([out, d_in], ignore_index=True).fillna(0)
    return both.groupby("user", sort=False).sum()


def count_hosts(
    flows: ds.Dataset | str | Path,
    internal: Iterable[str] | Callable | None = (),
    batch_size: int = 1 << 18,
) -> pd.DataFrame:
    """Flow counts of every internal host, streamed over the dataset.

    Memory: one row group (``scan_batches``) plus the counts of the hosts seen.

    Returns a DataFrame indexed by nothing, columns ``user`` and ``HOST_COUNT_COLUMNS`` (int64),
    sorted by ``n_flows`` descending then ``user``. ``n_flows = n_out + n_in``.
    """
    t0 = time.perf_counter()
    dataset = flows if isinstance(flows, ds.Dataset) else open_flows(flows)
    is_internal = as_filter(internal)
    total: pd.DataFrame | None = None
    pending: list[pd.DataFrame] = []
    memo = _DictionaryMemo()
    n_rows = 0
    for batch in scan_batches(dataset, ["src", "dst"], batch_size):
        if batch.num_rows == 0:
            continue
        n_rows += batch.num_rows
        pending.append(_batch_counts(batch, is_internal, memo))
        if len(pending) >= 16:
            total = _merge([total, *pending])
            pending = []
    total = _merge([total, *pending])
    cols = ["n_out", "n_in", "n_ext_out", "n_ext_in", "n_int"]
    total = total.reindex(columns=cols, fill_value=0).astype(np.int64)
    total.insert(0, "n_flows", total["n_out"] + total["n_in"])
    total = total[total["n_flows"] > 0]
    total = total.rename_axis("user").reset_index()
    total = total.sort_values(["n_flows", "user"], ascending=[False, True], kind="stable")
    log.info(
        "counted %d flows: %d internal hosts in %.2f s",
        n_rows,
        len(total),
        time.perf_counter() - t0,
    )
    return total.reset_index(drop=True)


def scan_batches(
    dataset: ds.Dataset, columns: Sequence[str], batch_size: int = 1 << 18
) -> Iterator[pa.RecordBatch]:
    """The dataset's ``columns``, file by file and row group by row group, read synchronously.

    Memory: one row group. (pyarrow's dataset scanner went on decoding ahead of a slow consumer
    even with ``batch_readahead=1``, 50-80 MB of arrow memory in ``bench_features.py``: the
    peak of host counting grew with the size of the day files.) Batches have at most
    ``batch_size`` rows and the dataset's types for ``columns``; a column missing from a file is
    null there.
    """
    fields = [dataset.schema.field(c) for c in columns]
    target = pa.schema(fields)
    for fragment in dataset.get_fragments():
        pf = pq.ParquetFile(fragment.path, pre_buffer=False)
        present = [c for c in columns if c in pf.schema_arrow.names]
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i, columns=present)
            for field in fields:
                if field.name not in present:
                    table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
            table = table.select(list(columns)).cast(target)
            yield from table.to_batches(max_chunksize=batch_size)


def _merge(parts: list[pd.DataFrame | None]) -> pd.DataFrame:
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return pd.DataFrame(columns=["n_out", "n_in", "n_ext_out", "n_ext_in", "n_int"])
    return pd.concat(parts).fillna(0).groupby(level=0, sort=False).sum()


def assign_roles(counts: pd.DataFrame) -> pd.Series:
    """Role of each host from ``n_ext_out`` and ``n_ext_in`` (see module docstring)."""
    ext_out = counts["n_ext_out"].to_numpy() > 0
    ext_in = counts["n_ext_in"].to_numpy() > 0
    role = np.select(
        [ext_out & ext_in, ext_out, ext_in], [ROLES[0], ROLES[1], ROLES[2]], default=ROLES[3]
    )
    return pd.Series(role, index=counts.index, name="role")


def select_hosts(
    counts: pd.DataFrame, top_n: int, min_flows: int, include: Iterable[str] = ()
) -> pd.DataFrame:
    """The users: top ``top_n`` hosts with ``n_flows >= min_flows``, plus ``include``.

    ``counts`` as from ``count_hosts`` (internal hosts only). Hosts of ``include`` that are
    absent (or not internal) are logged and skipped. Returns rows of ``counts`` plus ``role``,
    ordered by ``n_flows`` descending then ``user`` (that order is the rank used for shards).
    """
    ranked = counts.sort_values(["n_flows", "user"], ascending=[False, True], kind="stable")
    top = ranked[ranked["n_flows"] >= min_flows].head(top_n)
    include = list(dict.fromkeys(include))
    missing = sorted(set(include) - set(counts["user"]))
    if missing:
        log.warning("include: %d hosts absent or not internal, skipped: %s", len(missing), missing)
    chosen = ranked[ranked["user"].isin(set(top["user"]) | set(include))].copy()
    chosen["role"] = assign_roles(chosen)
    return chosen.reset_index(drop=True)


def assign_shards(n_users: int, shards: int) -> np.ndarray:
    """Shard of each user by rank: ``rank % shards`` (int32, shape ``(n_users,)``)."""
    return (np.arange(n_users) % max(1, int(shards))).astype(np.int32)


def _stable_key(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def _cut(n: int, train: float, val: float) -> tuple[int, int]:
    """Numbers of train and val items out of ``n`` (each non-empty part kept when n >= 3)."""
    n_train = int(round(train * n))
    n_val = int(round(val * n))
    if n >= 3:
        n_train = min(max(1, n_train), n - 2)
        n_val = min(max(1, n_val), n - n_train - 1)
    else:
        n_train = min(max(1, n_train), n)
        n_val = min(n_val, n - n_train)
    return n_train, n_val


def make_split(
    days: Sequence[str],
    users: Sequence[str],
    mode: str = "auto",
    train: float = 0.6,
    val: float = 0.2,
) -> dict[str, Any]:
    """The train/val/test split.

    ``days`` mode (``auto`` with >= 3 days): whole days in time order, the first
    ``round(train * n)`` for training, the next ``round(val * n)`` for validation, the rest for
    test. ``hosts`` mode: hosts ordered by a hash of their name (deterministic, independent of
    the flow counts) and cut by the same fractions. Returns
    ``{"mode", "train", "val", "test"}`` with days (``YYYY-MM-DD``) or host names.
    """
    days = sorted(set(days))
    if mode == "auto":
        mode = "days" if len(days) >= 3 else "hosts"
    if mode not in ("days", "hosts"):
        raise ValueError(f"users.split.mode: {mode!r} is not one of auto, days, hosts")
    if train + val > 1:
        raise ValueError(f"users.split: train + val = {train + val} exceeds 1")
    items = days if mode == "days" else sorted(users, key=lambda u: (_stable_key(u), u))
    if not items:
        raise ValueError(f"split by {mode}: nothing to split (no {mode})")
    n_train, n_val = _cut(len(items), train, val)
    return {
        "mode": mode,
        "train": list(items[:n_train]),
        "val": list(items[n_train : n_train + n_val]),
        "test": list(items[n_train + n_val :]),
    }


def day_flow_counts(flows_dir: str | Path) -> dict[str, int]:
    """Rows of each ``day=`` partition (``YYYY-MM-DD`` -> flows), sorted by day, from the
    Parquet footers (no data read)."""
    counts: dict[str, int] = {}
    for f in Path(flows_dir).glob("day=*/*.parquet"):
        if m := _DAY_RE.search(str(f)):
            counts[m.group(1)] = counts.get(m.group(1), 0) + pq.ParquetFile(f).metadata.num_rows
    return dict(sorted(counts.items()))


def split_days(
    counts: dict[str, int], min_share: float = MIN_DAY_SHARE
) -> tuple[list[str], dict[str, int]]:
    """``(days, spill-over)`` of ``day_flow_counts``: the days holding at least ``min_share``
    of the flows, sorted, and the others with their flows. A day below the share holds the
    spill-over of a neighbouring day (a capture of flows that end on 2016-04-11 holds 14 of
    650,294 that start in its last minutes before midnight), which must not count as a day
    of the split (3 days split by day) nor start the sampling (``sampling.start: auto``)."""
    total = sum(counts.values())
    days = [day for day, n in counts.items() if total == 0 or n >= min_share * total]
    return days, {day: n for day, n in counts.items() if day not in days}


def time_range(flows_dir: str | Path) -> tuple[float, float]:
    """(first_ts, last_ts) in epoch seconds: from ``manifest.json`` or, when absent, the data."""
    try:
        manifest = read_manifest(flows_dir)
    except FileNotFoundError:
        manifest = {}
    if manifest.get("first_ts") is not None and manifest.get("last_ts") is not None:
        return float(manifest["first_ts"]), float(manifest["last_ts"])
    lo, hi = np.inf, -np.inf
    for batch in open_flows(flows_dir).to_batches(columns=["ts"]):
        if batch.num_rows:
            mm = pc.min_max(batch.column("ts"))
            lo, hi = min(lo, mm["min"].as_py()), max(hi, mm["max"].as_py())
    if not np.isfinite(lo):
        raise ValueError(f"{flows_dir}: the flow table has no rows")
    return float(lo), float(hi)


def select_users(
    flows_dir: str | Path,
    hosts_path: str | Path,
    split_path: str | Path,
    *,
    internal: Iterable[str] = (),
    top_n: int = 24,
    min_flows: int = 200,
    include: Iterable[str] = (),
    shards: int = 2,
    split: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Rule ``select_users``: count, select, assign roles, shards and split; write both files.

    Returns the hosts table as written (columns of ``HOSTS_SCHEMA``).
    """
    t0 = time.perf_counter()
    split = split or {}
    internal = list(internal)
    counts = count_hosts(flows_dir, internal)
    hosts = select_hosts(counts, top_n, min_flows, include)
    if hosts.empty:
        raise ValueError(
            f"{flows_dir}: no internal host with >= {min_flows} flows "
            f"(internal={internal}, {len(counts)} internal hosts seen)"
        )
    hosts["shard"] = assign_shards(len(hosts), shards)
    days, spill = split_days(day_flow_counts(flows_dir))
    if spill:
        log.info(
            "day(s) %s hold %d flow(s) in all, under %.0f%% of the flows each: spill-over of "
            "the neighbouring days, counted as no day of a split by day nor of the sampling "
            "start (the flows stay in their hosts' tables)",
            ", ".join(f"{d} ({n})" for d, n in spill.items()),
            sum(spill.values()),
            100 * MIN_DAY_SHARE,
        )
    sp = make_split(
        days,
        hosts["user"].tolist(),
        split.get("mode", "auto"),
        float(split.get("train", 0.6)),
        float(split.get("val", 0.2)),
    )
    if sp["mode"] == "hosts":
        where = {u: name for name in ("train", "val", "test") for u in sp[name]}
        hosts["split"] = hosts["user"].map(where)
    else:
        hosts["split"] = "all"
    first_ts, last_ts = time_range(flows_dir)
    meta = {"internal": internal, "first_ts": first_ts, "last_ts": last_ts, "days": days}
    write_hosts(hosts, hosts_path, meta)
    Path(split_path).parent.mkdir(parents=True, exist_ok=True)
    with open(split_path, "w") as handle:
        json.dump(sp, handle, indent=1)
    log.info(
        "selected %d users of %d internal hosts (%s); split by %s: %s; %.2f s",
        len(hosts),
        len(counts),
        hosts["role"].value_counts().to_dict(),
        sp["mode"],
        {k: len(sp[k]) for k in ("train", "val", "test")},
        time.perf_counter() - t0,
    )
    return hosts


def write_hosts(hosts: pd.DataFrame, path: str | Path, meta: dict[str, Any]) -> None:
    """Write ``hosts.parquet`` with ``meta`` as JSON under the schema metadata key ``nfsynth``."""
    table = pa.Table.from_pandas(
        hosts[HOSTS_SCHEMA.names], schema=HOSTS_SCHEMA, preserve_index=False
    )
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def read_hosts(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``hosts.parquet`` as a DataFrame, and its metadata dict (``internal``, ``first_ts``, ...)."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})

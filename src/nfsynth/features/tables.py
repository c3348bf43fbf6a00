"""``UserTables``: the user tables a model trains on, loaded into pandas.

Usage::

    users = UserTables.load("results/sim/users")
    users.flows            # every shard's user flows, sorted by (user, ts)
    users.windows          # 5-minute windows, sorted by (user, win)
    users.hosts            # one row per user: role, counts, split, shard
    users.split            # the split.json dict: {"mode", "train", "val", "test"}
    users.meta             # internal patterns, first_ts/last_ts, days, window_seconds, context,
                           # first_win, last_win, n_windows, rolling_seconds
    users.subset("train")  # the training flows (by day or by host, per the split mode)
    users.context(users.subset("train"))   # (n, C, n_window_features) float32

In memory (tests, a model's sample): ``UserTables.from_frames(flows, ...)`` derives what is
missing (windows from the flows, hosts from counts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nfsynth.features import windows as win_mod
from nfsynth.features.select import assign_roles, read_hosts

SPLITS = ("train", "val", "test")


@dataclass
class UserTables:
    """User flows, windows, hosts, split and metadata of one dataset (see module docstring)."""

    flows: pd.DataFrame
    windows: pd.DataFrame
    hosts: pd.DataFrame
    split: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, users_dir: str | Path) -> UserTables:
        """Read ``hosts.parquet``, ``split.json``, ``flows/shard-*.parquet``,
        ``windows/shard-*.parquet`` (and ``windows/meta-*.json``) under ``users_dir``."""
        root = Path(users_dir)
        hosts, meta = read_hosts(root / "hosts.parquet")
        with open(root / "split.json") as handle:
            split = json.load(handle)
        flow_files = sorted((root / "flows").glob("shard-*.parquet"), key=_shard_number)
        win_files = sorted((root / "windows").glob("shard-*.parquet"), key=_shard_number)
        if not flow_files:
            raise FileNotFoundError(f"{root / 'flows'}: no shard-*.parquet files")
        flows = _read_parquets(flow_files)
        flows = _sort(flows, ["user", "ts"])
        windows = _read_parquets(win_files)
        if len(windows):
            windows = _sort(windows, ["user", "win"])
        for meta_file in sorted((root / "windows").glob("meta-*.json")):
            with open(meta_file) as handle:
                wmeta = json.load(handle)
            for key in ("window_seconds", "context", "first_win", "last_win", "n_windows"):
                meta.setdefault(key, wmeta.get(key))
            meta.setdefault("window_features", wmeta.get("features"))
        meta.setdefault("rolling_seconds", _rolling_from_columns(flows.columns))
        return cls(flows=flows, windows=windows, hosts=hosts, split=split, meta=meta)

    @classmethod
    def from_frames(
        cls,
        flows: pd.DataFrame,
        windows: pd.DataFrame | None = None,
        hosts: pd.DataFrame | None = None,
        split: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        *,
        window_seconds: int = 300,
        context_windows: int = 36,
    ) -> UserTables:
        """Tables from in-memory frames; ``flows`` as ``derive_features`` returns them.

        Missing ``windows`` are aggregated on the grid spanning the flows; missing ``hosts``
        are counted from the flows (role from ``peer_kind``); missing ``split`` puts
        everything in train (``{"mode": "hosts", "train": users, ...}``).
        """
        flows = _sort(flows, ["user", "ts"])
        users = sorted(pd.unique(flows["user"].astype(object)))
        meta = dict(meta or {})
        meta.setdefault("window_seconds", window_seconds)
        meta.setdefault("context", context_windows)
        seconds = meta["window_seconds"]
        if windows is None:
            if len(flows):
                first_win, last_win = win_mod.grid(flows["ts"].min(), flows["ts"].max(), seconds)
            else:
                first_win = last_win = 0
            windows = win_mod.aggregate(flows, users, first_win, last_win, seconds)
        else:
            windows = _sort(windows, ["user", "win"])
        if len(windows):
            meta.setdefault("first_win", int(windows["win"].min()))
            meta.setdefault("last_win", int(windows["win"].max()))
            meta.setdefault("n_windows", meta["last_win"] - meta["first_win"] + 1)
        meta.setdefault("window_features", list(win_mod.WINDOW_FEATURES))
        meta.setdefault("rolling_seconds", _rolling_from_columns(flows.columns))
        if split is None:
            split = {"mode": "hosts", "train": users, "val": [], "test": []}
        if hosts is None:
            hosts = hosts_from_flows(flows, split)
        return cls(flows=flows, windows=windows, hosts=hosts, split=split, meta=meta)

    @property
    def users(self) -> list[str]:
        """User names in the order of ``hosts``."""
        return self.hosts["user"].tolist()

    def subset(self, split_name: str) -> pd.DataFrame:
        """Flows of one split (``train``/``val``/``test``), sorted by (user, ts)."""
        if split_name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split_name!r}")
        if "split" in self.flows.columns:
            mask = self.flows["split"] == split_name
        else:
            key = "day" if self.split.get("mode") == "days" else "user"
            mask = self.flows[key].isin(set(self.split.get(split_name, [])))
        return self.flows[mask.to_numpy()]

    def context(
        self,
        flows: pd.DataFrame | None = None,
        C: int | None = None,
        features: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Window context of ``flows`` (default all flows): ``(n, C, n_features)`` float32.

        ``C`` defaults to ``meta["context"]`` (36). See ``features.windows.context``.
        """
        return win_mod.context(
            self.flows if flows is None else flows,
            self.windows,
            int(C or self.meta.get("context", 36)),
            features=list(features or win_mod.WINDOW_FEATURES),
            seconds=self.meta.get("window_seconds"),
        )


def hosts_from_flows(flows: pd.DataFrame, split: dict[str, Any] | None = None) -> pd.DataFrame:
    """A ``hosts`` table counted from user flows (``direction``, ``peer_kind``)."""
    user = flows["user"].astype(object)
    out = (flows["direction"].astype(object) == "out").to_numpy()
    ext = (flows["peer_kind"].astype(object) == "external").to_numpy()
    g = (
        pd.DataFrame(
            {
                "user": user,
                "n_flows": 1,
                "n_out": out,
                "n_in": ~out,
                "n_ext_out": out & ext,
                "n_ext_in": ~out & ext,
                "n_int": ~ext,
            }
        )
        .groupby("user", sort=True)
        .sum()
        .astype(np.int64)
        .reset_index()
    )
    g = g.sort_values(["n_flows", "user"], ascending=[False, True], kind="stable")
    g = g.reset_index(drop=True)
    g["role"] = assign_roles(g)
    split = split or {}
    if split.get("mode") == "hosts":
        where = {u: s for s in SPLITS for u in split.get(s, [])}
        g["split"] = g["user"].map(where).fillna("")
    else:
        g["split"] = "all"
    g["shard"] = np.zeros(len(g), dtype=np.int32)
    return g


def _shard_number(path: Path) -> int:
    return int(path.stem.split("-")[-1])


def _read_parquets(files: Sequence[Path]) -> pd.DataFrame:
    """Parquet files concatenated in Arrow (dictionaries unified into one categorical)."""
    if not files:
        return pd.DataFrame()
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def _sort(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    users = df[keys[0]].astype(object).to_numpy()
    order = np.lexsort((df[keys[1]].to_numpy(), pd.factorize(users, sort=True)[0]))
    if np.array_equal(order, np.arange(len(df))):
        return df.reset_index(drop=True)
    return df.iloc[order].reset_index(drop=True)


def _rolling_from_columns(columns: Sequence[str]) -> list[float]:
    found = []
    for c in columns:
        if c.startswith("roll") and c.endswith("_packets_mean"):
            found.append(float(c[4 : -len("_packets_mean")]))
    return sorted(found)

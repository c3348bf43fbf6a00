"""Toy user-flow tables with a known answer for the embed tests.

``toy_flows(seed, n_per_user_day, anomalies)``: 6 workstation users ``Comp0..Comp5`` over 3 days
(1970-01-01..03, LANL-style relative time), each flow to one of a few internal servers or
external peers on a handful of service ports, with log-normal sizes. ``anomalies`` planted
flows per day get a huge byte count, a rare port, UDP and a never-seen peer: ``is_anomaly``
marks them. Days split 1/1/1 into train/val/test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nfsynth.features.tables import UserTables
from nfsynth.features.userflows import derive_features

SPLIT = {"mode": "days", "train": ["1970-01-01"], "val": ["1970-01-02"], "test": ["1970-01-03"]}


def toy_canonical(seed: int = 0, n_per_user_day: int = 400, anomalies: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = [f"Comp{i}" for i in range(6)]
    peers = np.array(["ActiveDirectory", "Mail", "DNS1", "IP101", "IP102", "IP103", "IP104"])
    ports = np.array(["443", "80", "53", "445", "389"])
    proto_of_port = {"443": 6, "80": 6, "53": 17, "445": 6, "389": 6}
    parts = []
    for day in range(3):
        for u in users:
            n = n_per_user_day
            ts = day * 86400.0 + np.sort(rng.uniform(8 * 3600, 18 * 3600, n)).round()
            dport = ports[rng.integers(0, len(ports), n)]
            pk = rng.integers(2, 30, n)
            parts.append(
                pd.DataFrame(
                    {
                        "ts": ts,
                        "duration": rng.integers(0, 20, n).astype(float),
                        "src": u,
                        "dst": peers[rng.integers(0, len(peers), n)],
                        "proto": np.array([proto_of_port[p] for p in dport], np.uint8),
                        "sport": [f"Port{x:05d}" for x in rng.integers(0, 99999, n)],
                        "dport": dport,
                        "packets": pk,
                        "bytes": (pk * rng.lognormal(5.0, 0.3, n)).astype(np.int64),
                        "rev_packets": pk,
                        "rev_bytes": (pk * rng.lognormal(6.0, 0.3, n)).astype(np.int64),
                        "is_anomaly": False,
                    }
                )
            )
        k = anomalies
        parts.append(
            pd.DataFrame(
                {
                    "ts": day * 86400.0 + rng.uniform(8 * 3600, 18 * 3600, k).round(),
                    "duration": 3000.0,
                    "src": np.array(users)[rng.integers(0, len(users), k)],
                    "dst": [f"IP9{x:03d}" for x in rng.integers(0, 999, k)],
                    "proto": np.uint8(17),
                    "sport": "Port00001",
                    "dport": "31337",
                    "packets": 50000,
                    "bytes": 90_000_000,
                    "rev_packets": 0,
                    "rev_bytes": 0,
                    "is_anomaly": True,
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    df["user"] = df["src"]
    df["direction"] = "out"
    return df


def toy_tables(seed: int = 0, n_per_user_day: int = 400, anomalies: int = 10) -> UserTables:
    flows = derive_features(
        toy_canonical(seed, n_per_user_day, anomalies),
        internal=["Comp*", "ActiveDirectory", "Mail", "DNS*"],
        split=SPLIT,
    )
    return UserTables.from_frames(flows, split=SPLIT)


def write_shards(users: UserTables, root: Path, shards: int = 2) -> tuple[list[str], list[str]]:
    """Write the tables as ``flows/shard-k.parquet`` and ``windows/shard-k.parquet``."""
    names = sorted(users.flows["user"].unique())
    flow_paths, win_paths = [], []
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "windows").mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        mine = names[k::shards]
        f = users.flows[users.flows["user"].isin(mine)]
        w = users.windows[users.windows["user"].isin(mine)]
        fp, wp = root / "flows" / f"shard-{k}.parquet", root / "windows" / f"shard-{k}.parquet"
        pq.write_table(pa.Table.from_pandas(f, preserve_index=False), fp)
        pq.write_table(pa.Table.from_pandas(w, preserve_index=False), wp)
        flow_paths.append(str(fp))
        win_paths.append(str(wp))
    return flow_paths, win_paths


@pytest.fixture(scope="session")
def toy() -> UserTables:
    return toy_tables()


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> tuple[list[str], list[str]]:
    """A smaller toy (150 flows per user and day, 6 anomalies a day) written as 2 shards."""
    return write_shards(toy_tables(n_per_user_day=150, anomalies=6), tmp_path_factory.mktemp("u"))

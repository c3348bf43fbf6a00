"""Fixtures of user tables for the model tests: user-flow frames with planted structure.

``make_user_flows`` writes user-flow rows in the documented shape (docs/architecture.md, "User
tables"): a daily rhythm (flows 10x more frequent 08:00-18:00 UTC than at night) and a
previous-flow dependence of bytes (a two-state Markov chain, stay probability ``stay``, small
vs large transfers). Whole days are split train / val / test.

``sim_tables`` (session scoped, ~4 s): users of a small simulated LANL-2017 dataset built by the
real pipeline (simulate, ingest, select users, user flows); the contract test fits on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nfsynth.features.select import select_users
from nfsynth.features.tables import UserTables
from nfsynth.features.userflows import build_user_flows
from nfsynth.io.ingest import ingest
from nfsynth.simulate import simulate_lanl2017

DAY = 86400.0
START_DAY = 4 * DAY  # 1970-01-05, a Monday


def make_user_flows(
    n_users: int = 6,
    days: int = 5,
    seed: int = 0,
    day_rate: float = 60.0,
    night_rate: float = 6.0,
    stay: float = 0.9,
) -> pd.DataFrame:
    """User-flow rows of ``n_users`` hosts over ``days`` days (rates in flows per hour)."""
    rng = np.random.default_rng(seed)
    frames = []
    hours = np.arange(days * 24)
    rate = np.where((hours % 24 >= 8) & (hours % 24 < 18), day_rate, night_rate)
    for u in range(n_users):
        counts = rng.poisson(rate)
        ts = np.floor(
            START_DAY + np.repeat(hours, counts) * 3600.0 + rng.uniform(0, 3600, counts.sum())
        )
        ts = np.sort(ts)
        n = len(ts)
        state = np.zeros(n, dtype=int)
        flips = rng.random(n) > stay
        state = np.cumsum(flips) % 2
        log_bytes = np.where(state == 1, 9.0, 5.0) + rng.normal(0, 0.3, n)
        nbytes = np.maximum(np.rint(np.expm1(log_bytes)), 1).astype(np.int64)
        packets = np.maximum(np.rint(nbytes / rng.uniform(60, 1400, n)), 1).astype(np.int64)
        proto = rng.choice([6, 17, 1], size=n, p=[0.7, 0.25, 0.05])
        dport = rng.choice(["443", "80", "53", "445", "22"], size=n, p=[0.4, 0.2, 0.2, 0.1, 0.1])
        sport = np.array([f"Port{p}" for p in rng.integers(1024, 1200, n)])
        direction = rng.choice(["out", "in"], size=n, p=[0.6, 0.4])
        peers = [f"Comp{i:03d}" for i in range(10)] + [f"EXT{i}" for i in range(20)]
        peer = rng.choice(peers, size=n)
        peer_kind = np.where(pd.Series(peer).str.startswith("Comp"), "internal", "external")
        duration = np.floor(rng.exponential(5.0, n))
        rev_packets = np.maximum(packets + rng.integers(-1, 3, n), 0)
        rev_bytes = np.rint(nbytes * rng.uniform(0.2, 2.0, n)).astype(np.int64)
        user = f"Comp9{u:02d}"
        dt = np.diff(ts, prepend=ts[0])
        day_index = ((ts - START_DAY) // DAY).astype(int)
        split = np.where(
            day_index < days - 2, "train", np.where(day_index == days - 2, "val", "test")
        )
        frames.append(
            pd.DataFrame(
                {
                    "user": user,
                    "ts": ts,
                    "duration": duration,
                    "src": np.where(direction == "out", user, peer),
                    "dst": np.where(direction == "out", peer, user),
                    "proto": proto.astype(np.uint8),
                    "sport": sport,
                    "dport": dport,
                    "packets": packets,
                    "bytes": nbytes,
                    "rev_packets": rev_packets,
                    "rev_bytes": rev_bytes,
                    "direction": direction,
                    "peer": peer,
                    "peer_kind": peer_kind,
                    "hour": ((ts // 3600) % 24).astype(np.int8),
                    "dow": (((ts // DAY) + 3) % 7).astype(np.int8),
                    "day": pd.to_datetime(ts, unit="s").strftime("%Y-%m-%d"),
                    "dt": dt,
                    "split": split,
                }
            )
        )
    flows = pd.concat(frames, ignore_index=True).sort_values(["user", "ts"], kind="mergesort")
    return flows.reset_index(drop=True)


def frame_tables(flows: pd.DataFrame) -> UserTables:
    """``UserTables`` of planted flows, split by whole days as the ``split`` column says."""
    split = {"mode": "days"}
    for name in ("train", "val", "test"):
        split[name] = sorted(flows.loc[flows["split"] == name, "day"].unique())
    return UserTables.from_frames(flows, split=split)


@pytest.fixture(scope="session")
def planted_tables() -> UserTables:
    """Six hosts over five days with a daily rhythm and previous-flow dependence."""
    return frame_tables(make_user_flows())


SIM_INTERNAL = [
    "Comp*",
    "ActiveDirectory",
    "EnterpriseAppServer",
    "DNS*",
    "VPN*",
    "VScanner*",
    "Mail",
]


@pytest.fixture(scope="session")
def sim_users_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Simulator users on disk: three simulated LANL-2017 days (8 workstations, 3 servers),
    ingested, the top 6 internal hosts selected, split by days (train / val / test = day 1 /
    2 / 3); ``hosts.parquet``, ``split.json`` and ``flows/shard-0.parquet`` (no windows)."""
    root = tmp_path_factory.mktemp("simusers")
    info = simulate_lanl2017(
        root / "raw", days=3, workstations=8, servers=3, external_hosts=40,
        flows_per_workstation_day=300, scans=0, truncate=False, seed=3,
    )  # fmt: skip
    ingest(info["files"], root / "flows", fmt="lanl2017")
    users = root / "users"
    select_users(
        root / "flows", users / "hosts.parquet", users / "split.json",
        internal=SIM_INTERNAL, top_n=6, min_flows=50, shards=1,
    )  # fmt: skip
    split = json.loads((users / "split.json").read_text())
    build_user_flows(
        root / "flows", users / "hosts.parquet", split, 0, users / "flows/shard-0.parquet"
    )
    return users


@pytest.fixture(scope="session")
def sim_tables(sim_users_dir: Path) -> UserTables:
    """``UserTables.load`` of the simulator users (windows built in memory)."""
    loaded = UserTables.load(sim_users_dir)
    return UserTables.from_frames(
        loaded.flows, hosts=loaded.hosts, split=loaded.split, meta=loaded.meta
    )

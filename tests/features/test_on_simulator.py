"""The feature stage on the built-in simulator: planted roles, counts that add up, planted ACF."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nfsynth.features.select import read_hosts, select_users, time_range
from nfsynth.features.tables import UserTables
from nfsynth.features.temporal import temporal_analysis
from nfsynth.features.userflows import build_user_flows
from nfsynth.features.windows import build_windows

simulate = pytest.importorskip("nfsynth.simulate")
ingest_mod = pytest.importorskip("nfsynth.io.ingest")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    summary = simulate.simulate_lanl2017(
        root / "raw", days=3, workstations=10, servers=6, external_hosts=50,
        flows_per_workstation_day=400, scans=0, truncate=False, seed=3,
    )  # fmt: skip
    truth = json.loads((root / "raw" / "truth.json").read_text())
    ingest_mod.ingest(summary["files"], root / "flows", fmt="lanl2017")
    users = root / "users"
    select_users(root / "flows", users / "hosts.parquet", users / "split.json",
                 internal=truth["internal_patterns"], top_n=1000, min_flows=1, shards=2)  # fmt: skip
    split = json.loads((users / "split.json").read_text())
    hosts, _ = read_hosts(users / "hosts.parquet")
    first_ts, last_ts = time_range(root / "flows")
    for k in (0, 1):
        build_user_flows(root / "flows", users / "hosts.parquet", split, k,
                         users / f"flows/shard-{k}.parquet")  # fmt: skip
        build_windows(users / f"flows/shard-{k}.parquet", users / f"windows/shard-{k}.parquet",
                      users / f"windows/meta-{k}.json", first_ts, last_ts, 300, 36,
                      users=hosts.loc[hosts["shard"] == k, "user"].tolist(), shard=k)  # fmt: skip
    return truth, UserTables.load(users)


def test_planted_roles_are_found(sim):
    truth, ut = sim
    planted = {h["name"]: h["role"] for h in truth["hosts"] if h["kind"] == "workstation"}
    anomalous = {a.get("src") for a in truth["anomalies"]} | {
        a.get("host") for a in truth["anomalies"]
    }
    found = ut.hosts.set_index("user")["role"]
    checked = [u for u in planted if u in found.index and u not in anomalous]
    assert len(checked) >= 6
    assert {u: found[u] for u in checked} == {u: planted[u] for u in checked}


def test_window_counts_sum_to_flow_counts(sim):
    _, ut = sim
    per_user = ut.windows.groupby("user")["n_flows"].sum()
    assert per_user.to_dict() == ut.hosts.set_index("user")["n_flows"].to_dict()
    assert per_user.to_dict() == ut.flows.groupby("user").size().to_dict()
    assert ut.windows.groupby("user").size().nunique() == 1  # one global grid


def test_planted_dependence_shows_in_the_acf(sim):
    _, ut = sim
    result = temporal_analysis(ut, 20)
    busiest = ut.hosts.loc[ut.hosts["n_flows"].idxmax(), "user"]
    assert result["acf"]["n_flows"]["per_user"][busiest][0] > result["band"]
    assert result["acf"]["n_flows"]["pooled"][0] > result["band"]
    assert np.isfinite(result["dt_hour"]["spearman_rho"])

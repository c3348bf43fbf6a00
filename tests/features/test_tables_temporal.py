"""UserTables round trip and subsets; ACF, look-back and dt-versus-hour analysis."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from nfsynth.features.select import read_hosts, select_users, time_range
from nfsynth.features.tables import UserTables
from nfsynth.features.temporal import acf, lookback, temporal_analysis, write_temporal
from nfsynth.features.userflows import build_user_flows, derive_features
from nfsynth.features.windows import build_windows
from tests.features.flowdata import canonical_table, write_flows


@pytest.fixture
def users_dir(tmp_path):
    """Four days of two workstations; Comp1 busy at 09-17 h, Comp2 evenly."""
    rng = np.random.default_rng(5)
    rows = []
    for day in range(4):
        base = day * 86400.0
        for t in np.sort(rng.uniform(9 * 3600, 17 * 3600, 150)):
            rows.append((base + t, "Comp1", "IP1", 6, "443", 5, 500))
        for t in np.sort(rng.uniform(0, 86400, 60)):
            rows.append((base + t, "IP2", "Comp2", 17, "53", 1, 80))
    flows = write_flows(canonical_table(rows), tmp_path)
    root = tmp_path / "users"
    select_users(flows, root / "hosts.parquet", root / "split.json", internal=["Comp*"],
                 min_flows=10, shards=2)  # fmt: skip
    split = json.loads((root / "split.json").read_text())
    hosts, _ = read_hosts(root / "hosts.parquet")
    first_ts, last_ts = time_range(flows)
    for k in (0, 1):
        build_user_flows(flows, root / "hosts.parquet", split, k, root / f"flows/shard-{k}.parquet")
        build_windows(root / f"flows/shard-{k}.parquet", root / f"windows/shard-{k}.parquet",
                      root / f"windows/meta-{k}.json", first_ts, last_ts, 300, 36,
                      users=hosts.loc[hosts["shard"] == k, "user"].tolist(), shard=k)  # fmt: skip
    return root


def test_load_round_trip_and_day_subsets(users_dir):
    ut = UserTables.load(users_dir)
    assert ut.users == ["Comp1", "Comp2"]
    assert len(ut.flows) == 4 * 210 and ut.windows["n_flows"].sum() == len(ut.flows)
    assert ut.split["mode"] == "days" and ut.meta["window_seconds"] == 300
    assert ut.meta["internal"] == ["Comp*"] and ut.meta["rolling_seconds"] == [1.0, 10.0, 60.0]
    assert len(ut.windows) == 2 * ut.meta["n_windows"]
    train, val, test = (ut.subset(s) for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == len(ut.flows)
    days = [set(x["day"]) for x in (train, val, test)]
    assert days[0] == set(ut.split["train"]) and days[2] == set(ut.split["test"])
    assert days[0].isdisjoint(days[1]) and days[1].isdisjoint(days[2])
    assert train["ts"].max() < val["ts"].min() < test["ts"].min()
    assert ut.context(test.head(5)).shape == (5, 36, 11)
    with pytest.raises(ValueError):
        ut.subset("everything")


def test_from_frames_builds_windows_and_hosts():
    df = pd.DataFrame(
        {"user": ["a", "a", "b"], "direction": ["out", "in", "out"], "ts": [0.0, 400.0, 10.0],
         "src": ["a", "IPx", "b"], "dst": ["IPx", "a", "c"], "proto": [6, 6, 17],
         "dport": ["1", "2", "3"], "packets": [1, 1, 1], "bytes": [1, 1, 1], "duration": 0.0}
    )  # fmt: skip
    ut = UserTables.from_frames(derive_features(df, internal=["a", "b", "c"]))
    assert ut.windows["n_flows"].tolist() == [1, 1, 1, 0]
    assert ut.hosts.set_index("user")["role"].to_dict() == {"a": "both", "b": "internal"}
    assert len(ut.subset("train")) == 3 and ut.subset("test").empty


def test_acf_matches_direct_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    z = x - x.mean()
    direct = [np.dot(z[:-k], z[k:]) / np.dot(z, z) for k in range(1, 11)]
    np.testing.assert_allclose(acf(x, 10), direct, rtol=1e-10)
    assert np.isnan(acf(np.ones(50), 3)).all()
    short = acf(np.arange(4.0), 6)
    assert np.isfinite(short[:3]).all() and np.isnan(short[3:]).all()


def test_acf_of_planted_ar1_and_lookback():
    rng = np.random.default_rng(2)
    e = rng.normal(size=(50, 2000))
    x = signal.lfilter([1.0], [1.0, -0.5], e, axis=1)  # AR(1), phi = 0.5
    r = acf(x[0], 30)
    assert abs(r[0] - 0.5) < 0.06 and abs(r[1] - 0.25) < 0.08
    pooled = np.mean([acf(row, 30) for row in x], axis=0)
    band = 1.96 / np.sqrt(x.shape[1])  # 0.0438: 0.5**4 = 0.0625 is outside, 0.5**5 inside
    assert lookback(pooled, band) == (4, False)
    assert lookback(np.full(5, 0.5), 0.1) == (5, True)
    assert lookback(np.zeros(5), 0.1) == (0, False)


def test_temporal_json(users_dir, tmp_path):
    result = write_temporal(users_dir, tmp_path / "temporal.json", max_lag=20)
    back = json.loads((tmp_path / "temporal.json").read_text())
    assert back == result
    assert back["roles"] == {"both": 0, "out_external": 1, "in_external": 1, "internal": 0}
    assert back["lags"] == list(range(1, 21)) and len(back["acf"]["bytes"]["pooled"]) == 20
    assert set(back["acf"]["n_flows"]["per_user"]) == {"Comp1", "Comp2"}
    assert back["band"] == pytest.approx(1.96 / np.sqrt(back["n_windows"]))
    # Comp1 is busy in office hours only: its 5-minute counts are strongly autocorrelated
    per_user = back["acf"]["n_flows"]["per_user"]
    assert per_user["Comp1"][0] > 0.3 > abs(per_user["Comp2"][0])
    assert back["lookback"] >= 1
    dh = back["dt_hour"]
    assert sum(dh["count"]) == 4 * 210 - 2 and dh["spearman_rho"] is not None
    assert len(dh["quantiles"]["q50"]) == 24 and dh["ylim"][0] == 0.0
    ut = UserTables.load(users_dir)
    assert temporal_analysis(ut, 20)["acf"] == back["acf"]

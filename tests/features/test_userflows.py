"""Per-user flow tables: directions, peers, dt and prev values, rolling statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from nfsynth.features.rolling import rolling_stats
from nfsynth.features.select import select_users
from nfsynth.features.userflows import build_user_flows, derive_features, user_groups
from tests.features.flowdata import ROLE_INTERNAL, ROLE_ROWS, canonical_table, write_flows


def _users(tmp_path, role_flows, shards=1):
    select_users(
        role_flows, tmp_path / "u/hosts.parquet", tmp_path / "u/split.json",
        internal=ROLE_INTERNAL, min_flows=1, shards=shards, split={"mode": "hosts"},
    )  # fmt: skip
    import json

    return json.loads((tmp_path / "u/split.json").read_text())


def test_user_table_directions_peers_dt_prev(tmp_path, role_flows):
    split = _users(tmp_path, role_flows)
    stats = build_user_flows(
        role_flows, tmp_path / "u/hosts.parquet", split, 0, tmp_path / "s.parquet"
    )
    out = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert stats["rows"] == 14 and stats["groups"] == 1
    # each flow between two selected users stands twice; others once
    assert len(out) == 14
    a = out[out["user"] == "10.0.0.1"]
    assert a["ts"].tolist() == [100.0, 110.0, 120.0, 190.0]
    assert a["direction"].tolist() == ["out", "in", "out", "in"]
    assert a["peer"].tolist() == ["8.8.8.8", "8.8.8.8", "10.0.0.4", "10.0.0.4"]
    assert a["peer_kind"].tolist() == ["external", "external", "internal", "internal"]
    assert a["dt"].tolist() == [0.0, 10.0, 10.0, 70.0]
    assert a["prev_dt"].tolist() == [0.0, 0.0, 10.0, 10.0]
    assert a["prev_proto"].tolist() == [17, 17, 17, 6]
    assert [str(x) for x in a["prev_dport"]] == ["53", "53", "Port5", "445"]
    np.testing.assert_allclose(a["prev_log_bytes"], np.log1p([60, 60, 120, 300]))
    np.testing.assert_allclose(a["log_packets"], np.log1p([1, 1, 3, 5]))
    # rev_bytes is null on odd rows of the input: NaN there
    assert np.isnan(a["log_rev_bytes"].to_numpy()[[1, 3]]).all()
    assert a["bpp"].tolist() == [60.0, 120.0, 100.0, 100.0]
    assert (a["hour"] == 0).all() and (a["dow"] == 3).all() and (a["day"] == "1970-01-01").all()
    assert (out["split"].isin(["train", "val", "test"])).all()
    # the user of each split is in that split's list
    for name in ("train", "val", "test"):
        assert set(out.loc[out["split"] == name, "user"]) == set(split[name])
    # sorted by (user, ts); written with plain string columns and the extra label column
    assert out.equals(out.sort_values(["user", "ts"], kind="stable").reset_index(drop=True))
    back = pq.read_table(tmp_path / "s.parquet")
    assert str(back.schema.field("user").type) == "string" and "label" in back.column_names


def test_shards_partition_the_users(tmp_path, role_flows):
    split = _users(tmp_path, role_flows, shards=2)
    for k in (0, 1):
        build_user_flows(role_flows, tmp_path / "u/hosts.parquet", split, k, tmp_path / f"{k}.pq")
    parts = [pq.read_table(tmp_path / f"{k}.pq").to_pandas() for k in (0, 1)]
    assert set(parts[0]["user"]).isdisjoint(set(parts[1]["user"]))
    assert len(parts[0]) + len(parts[1]) == 14


def test_hour_dow_day_from_epoch():
    # 2024-01-01 is a Monday; 13:30 UTC
    ts = pd.Timestamp("2024-01-01T13:30:00Z").timestamp()
    df = pd.DataFrame(
        {"user": ["u", "u"], "direction": ["out", "out"], "ts": [ts, ts + 86400 * 6],
         "src": ["u", "u"], "dst": ["p", "p"], "proto": [6, 6], "dport": ["80", "80"],
         "packets": [0, 2], "bytes": [0, 10], "duration": [0.0, 1.0]}
    )  # fmt: skip
    out = derive_features(df, internal=[])
    assert out["hour"].tolist() == [13, 13]
    assert out["dow"].tolist() == [0, 6]
    assert out["day"].tolist() == ["2024-01-01", "2024-01-07"]
    assert out["bpp"].tolist() == [0.0, 5.0]
    assert np.isnan(out["log_rev_bytes"]).all()


def test_derive_features_on_a_sample_shaped_frame():
    sample = canonical_table(ROLE_ROWS, label=False).drop_columns(["day"]).to_pandas()
    sample["user"] = np.where(np.arange(len(sample)) % 2, "synth-1", "synth-0")
    sample["direction"] = pd.Categorical(np.where(np.arange(len(sample)) % 3, "out", "in"))
    out = derive_features(sample.iloc[::-1], internal=ROLE_INTERNAL, rolling_seconds=[10])
    assert len(out) == len(sample)
    assert set(out["peer_kind"]) <= {"internal", "external"}
    is_out = out["direction"] == "out"
    assert (out.loc[is_out, "peer"] == out.loc[is_out, "dst"].astype(str)).all()
    assert (out.loc[~is_out, "peer"] == out.loc[~is_out, "src"].astype(str)).all()
    assert "roll10_bytes_std" in out.columns and "roll1_bytes_std" not in out.columns
    for _, g in out.groupby("user"):
        assert np.all(np.diff(g["ts"]) >= 0)
        assert g["dt"].iloc[0] == 0 and np.allclose(g["dt"].iloc[1:], np.diff(g["ts"]))


def test_rolling_matches_brute_force():
    rng = np.random.default_rng(3)
    n = 400
    user = np.sort(rng.integers(0, 5, n))
    ts = np.concatenate([np.sort(rng.uniform(0, 120, (user == u).sum())) for u in range(5)])
    ts[10] = ts[11] = ts[9]  # ties
    ts = np.concatenate([np.sort(ts[user == u]) for u in range(5)])
    ts = np.round(ts, 1)  # many exact boundary hits
    pk = rng.integers(1, 50, n)  # integers: the exact int64 path
    by = pk * rng.integers(40, 1500, n) + 1e9  # large floats: the longdouble path
    got = rolling_stats(user, ts, {"packets": pk, "bytes": by}, [1, 10, 60])
    for i in range(n):
        for w in (1, 10, 60):
            j = np.flatnonzero((user == user[i]) & (ts > ts[i] - w) & (np.arange(n) <= i))
            for name, x in (("packets", pk), ("bytes", by)):
                assert np.isclose(got[f"roll{w}_{name}_mean"][i], x[j].mean(), rtol=1e-12)
                assert np.isclose(got[f"roll{w}_{name}_std"][i], x[j].std(), rtol=1e-6, atol=1e-3)


def test_self_loop_flow_counts_once(tmp_path):
    rows = [(1.0, "Comp1", "Comp1", 6, "1", 1, 1), (2.0, "Comp1", "IPx", 6, "1", 1, 1)]
    flows = write_flows(canonical_table(rows), tmp_path)
    select_users(flows, tmp_path / "h.parquet", tmp_path / "s.json", internal=["Comp*"],
                 min_flows=1, shards=1)  # fmt: skip
    build_user_flows(flows, tmp_path / "h.parquet", {}, 0, tmp_path / "o.parquet")
    out = pq.read_table(tmp_path / "o.parquet").to_pandas()
    assert out["direction"].tolist() == ["out", "out"]


def test_user_groups_cut_the_name_order_by_rows():
    groups = user_groups(["c", "a", "d", "b"], [5, 3, 1, 9], max_rows=8)
    # name order a(3) b(9) c(5) d(1): b alone exceeds the budget and stands alone
    assert groups == [["a"], ["b"], ["c", "d"]]
    assert user_groups(["a", "b"], [1, 1], max_rows=10) == [["a", "b"]]


def test_grouped_shard_equals_the_one_pass_table(tmp_path, role_flows):
    """A shard built group by group through the spill is the same table, row for row."""
    split = _users(tmp_path, role_flows)
    hosts = tmp_path / "u/hosts.parquet"
    whole = build_user_flows(role_flows, hosts, split, 0, tmp_path / "one.parquet")
    cut = build_user_flows(role_flows, hosts, split, 0, tmp_path / "cut.parquet", max_rows=1)
    assert whole["groups"] == 1 and cut["groups"] == whole["users"] > 1
    one = pq.read_table(tmp_path / "one.parquet").to_pandas()
    grouped = pq.read_table(tmp_path / "cut.parquet").to_pandas()
    pd.testing.assert_frame_equal(one, grouped)
    assert len(grouped) == cut["rows"] == 14
    # no spill left beside the output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

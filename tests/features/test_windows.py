"""5-minute windows: exact counts with empty windows, streaming, and the context."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nfsynth.features.userflows import derive_features, write_user_flows
from nfsynth.features.windows import (
    WINDOW_FEATURES,
    aggregate,
    build_windows,
    context,
    windows_from_file,
)

# user a: two flows in window 1 (300..599), none in 2, one in 3; user b: one flow in window 4.
FLOWS = pd.DataFrame(
    {
        "user": ["a", "a", "a", "b"],
        "ts": [310.0, 599.9, 900.0, 1250.0],
        "bytes": [100, 50, 7, 1],
        "packets": [2, 1, 1, 1],
        "peer": ["x", "x", "y", "x"],
        "dport": ["80", "443", "80", "53"],
        "proto": np.array([6, 17, 1], dtype=np.uint8).tolist() + [47],
        "direction": ["out", "in", "out", "in"],
    }
)


def test_exact_counts_with_empty_windows():
    w = aggregate(FLOWS, ["a", "b"], first_win=1, last_win=4, seconds=300)
    assert len(w) == 8
    assert w["win"].tolist() == [1, 2, 3, 4] * 2
    assert w["win_start"].tolist() == [300.0, 600.0, 900.0, 1200.0] * 2
    a = w[w["user"] == "a"].set_index("win")
    assert a["n_flows"].tolist() == [2, 0, 1, 0]
    assert a["bytes"].tolist() == [150, 0, 7, 0]
    assert a["packets"].tolist() == [3, 0, 1, 0]
    assert a["n_peers"].tolist() == [1, 0, 1, 0]
    assert a["n_dports"].tolist() == [2, 0, 1, 0]
    assert a["n_tcp"].tolist() == [1, 0, 0, 0] and a["n_udp"].tolist() == [1, 0, 0, 0]
    assert a["n_icmp"].tolist() == [0, 0, 1, 0] and a["n_other"].sum() == 0
    assert a["n_out"].tolist() == [1, 0, 1, 0] and a["n_in"].tolist() == [1, 0, 0, 0]
    b = w[w["user"] == "b"]
    assert b["n_flows"].tolist() == [0, 0, 0, 1] and b["n_other"].tolist() == [0, 0, 0, 1]
    assert all(w[c].dtype == np.int64 for c in WINDOW_FEATURES)


def _random_flows(n=3000, users=7, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": rng.choice([f"u{i}" for i in range(users)], n),
            "direction": rng.choice(["out", "in"], n),
            "ts": rng.uniform(1000, 1000 + 86400, n),
            "src": "s", "dst": rng.choice([f"p{i}" for i in range(20)], n),
            "proto": rng.choice([6, 17, 1, 50], n).astype(np.uint8),
            "dport": rng.choice(["80", "443", "53", "22"], n),
            "packets": rng.integers(1, 9, n), "bytes": rng.integers(40, 9000, n),
            "duration": 1.0, "sport": "1",
        }
    )  # fmt: skip
    return derive_features(df, internal=[], rolling_seconds=None)


def test_streamed_windows_equal_in_memory_and_counts_add_up(tmp_path):
    flows = _random_flows()
    write_user_flows(flows, tmp_path / "f.parquet")
    users = sorted(flows["user"].unique()) + ["idle"]
    first, last = 1000 // 300, (1000 + 86400) // 300
    whole = aggregate(flows, users, first, last, 300)
    for batch_size in (1, 7, 101, 1 << 20):  # cells cut across batches are carried whole
        streamed = windows_from_file(tmp_path / "f.parquet", users, first, last, 300, batch_size)
        pd.testing.assert_frame_equal(whole, streamed)
    assert whole["n_flows"].sum() == len(flows)
    per_user = whole.groupby("user")["n_flows"].sum()
    assert per_user.drop("idle").to_dict() == flows.groupby("user").size().to_dict()
    assert whole.loc[whole["user"] == "idle", WINDOW_FEATURES].to_numpy().sum() == 0
    # brute force distinct peers of one cell
    cell = flows[(flows["user"] == "u3") & (flows["ts"] // 300 == first + 5)]
    row = whole[(whole["user"] == "u3") & (whole["win"] == first + 5)].iloc[0]
    assert row["n_peers"] == cell["peer"].nunique() and row["n_dports"] == cell["dport"].nunique()
    assert (whole["n_tcp"] + whole["n_udp"] + whole["n_icmp"] + whole["n_other"]).equals(
        whole["n_flows"]
    )


def test_build_windows_writes_meta(tmp_path):
    flows = _random_flows(200, 2)
    write_user_flows(flows, tmp_path / "f.parquet")
    w = build_windows(tmp_path / "f.parquet", tmp_path / "w.parquet", tmp_path / "m.json",
                      900.0, 90000.0, 300, 36, shard=0)  # fmt: skip
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["first_win"] == 3 and meta["last_win"] == 300 and meta["n_windows"] == 298
    assert meta["n_flows"] == 200 and len(w) == 2 * 298


def test_context_shape_and_contents():
    w = aggregate(FLOWS, ["a", "b"], 1, 4, 300)
    ctx = context(FLOWS, w, C=3, features=["n_flows", "bytes"], seconds=300)
    assert ctx.shape == (4, 3, 2) and ctx.dtype == np.float32
    # flow 0 of a is in window 1 (the first): windows -2, -1, 0 are before the grid -> zeros
    assert ctx[0].tolist() == [[0, 0], [0, 0], [0, 0]]
    # flow 2 of a is in window 3: windows 0 (zeros), 1, 2
    assert ctx[2].tolist() == [[0, 0], [2, 150], [0, 0]]
    # flow of b in window 4: windows 1, 2, 3 of b, all empty
    assert ctx[3].tolist() == [[0, 0], [0, 0], [0, 0]]
    full = context(FLOWS, w, C=36)
    assert full.shape == (4, 36, len(WINDOW_FEATURES))
    assert full[2, -2].tolist() == w.iloc[0][WINDOW_FEATURES].astype(float).tolist()


def test_context_rejects_unsorted_windows():
    w = aggregate(FLOWS, ["a", "b"], 1, 4, 300)
    with pytest.raises(ValueError, match="consecutive"):
        context(FLOWS, w.iloc[[1, 0, 2, 3, 4, 5, 6, 7]], C=2, seconds=300)


def test_streamed_windows_refuse_rows_not_grouped_by_user(tmp_path):
    flows = _random_flows(400, 3)
    shuffled = flows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    write_user_flows(shuffled, tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"f\.parquet: rows are not grouped by user and time"):
        windows_from_file(tmp_path / "f.parquet", None, 3, 300, 300, batch_size=50)


def test_streamed_windows_drop_flows_of_other_users_with_a_count(tmp_path, caplog):
    flows = _random_flows(300, 3)
    write_user_flows(flows, tmp_path / "f.parquet")
    keep = ["u0", "u2"]
    first, last = 1000 // 300, (1000 + 86400) // 300
    with caplog.at_level("WARNING"):
        w = windows_from_file(tmp_path / "f.parquet", keep, first, last, 300, batch_size=13)
    n_other = int((flows["user"] == "u1").sum())
    assert f"{n_other} flows outside the users or the grid dropped" in caplog.text
    assert w["n_flows"].sum() == len(flows) - n_other
    pd.testing.assert_frame_equal(w, aggregate(flows, keep, first, last, 300))

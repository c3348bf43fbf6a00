"""User selection: internal filter, counts, roles, include list, shards and the split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nfsynth.features.select import (
    InternalFilter,
    assign_shards,
    count_hosts,
    make_split,
    read_hosts,
    scan_batches,
    select_hosts,
    select_users,
    time_range,
)
from tests.features.flowdata import ROLE_INTERNAL, canonical_table, write_flows


def test_cidr_and_name_filters():
    f = InternalFilter(["42.219.0.0/16", "Comp*", "DNS?", "2001:db8::/32"])
    values = ["42.219.1.2", "42.220.0.1", "Comp123", "comp1", "DNS1", "DNS12", "2001:db8::1",
              "2001:dead::1", "ActiveDirectory", "42.219.255.255"]  # fmt: skip
    assert f(values).tolist() == [True, False, True, False, True, False, True, False, False, True]


def test_empty_filter_means_everything_internal():
    assert InternalFilter([])(["x", "1.2.3.4"]).tolist() == [True, True]


def test_counts_and_roles_of_four_hand_made_hosts(role_flows):
    counts = count_hosts(role_flows, ROLE_INTERNAL).set_index("user")
    # 10.0.0.1: out to 8.8.8.8 and 10.0.0.4, in from 8.8.8.8 and 10.0.0.4
    assert counts.loc["10.0.0.1"].to_dict() == {
        "n_flows": 4, "n_out": 2, "n_in": 2, "n_ext_out": 1, "n_ext_in": 1, "n_int": 2
    }  # fmt: skip
    assert counts.loc["SrvA", "n_in"] == 4 and counts.loc["SrvA", "n_ext_in"] == 2
    assert set(counts.index) == {"10.0.0.1", "10.0.0.2", "SrvA", "10.0.0.4"}
    hosts = select_hosts(counts.reset_index(), top_n=10, min_flows=1).set_index("user")
    assert hosts["role"].to_dict() == {
        "10.0.0.1": "both",
        "10.0.0.2": "out_external",
        "SrvA": "in_external",
        "10.0.0.4": "internal",
    }


def test_top_n_min_flows_and_include(role_flows):
    counts = count_hosts(role_flows, ROLE_INTERNAL)
    top = select_hosts(counts, top_n=1, min_flows=1)
    # ties (4 flows each) are broken by name: "10.0.0.1" < "SrvA"
    assert top["user"].tolist() == ["10.0.0.1"]
    assert select_hosts(counts, top_n=10, min_flows=4)["user"].tolist() == ["10.0.0.1", "SrvA"]
    inc = select_hosts(counts, top_n=1, min_flows=4, include=["10.0.0.4", "absent"])
    assert inc["user"].tolist() == ["10.0.0.1", "10.0.0.4"]


def test_name_filter_limits_users(role_flows):
    counts = count_hosts(role_flows, ["Srv*"])
    assert counts["user"].tolist() == ["SrvA"]
    # with only SrvA internal, every other host is an external peer
    assert counts.iloc[0]["n_ext_in"] == 4


def test_shards_by_rank():
    assert assign_shards(5, 2).tolist() == [0, 1, 0, 1, 0]
    assert assign_shards(3, 1).tolist() == [0, 0, 0]


def test_day_split_is_chronological_and_disjoint():
    days = [f"2024-01-0{d}" for d in (5, 1, 3, 2, 4)]
    sp = make_split(days, ["a"], "auto", 0.6, 0.2)
    assert sp == {
        "mode": "days",
        "train": ["2024-01-01", "2024-01-02", "2024-01-03"],
        "val": ["2024-01-04"],
        "test": ["2024-01-05"],
    }


def test_host_split_is_disjoint_complete_and_deterministic():
    users = [f"h{i}" for i in range(20)]
    sp = make_split(["2024-01-01"], users, "auto", 0.6, 0.2)
    assert sp["mode"] == "hosts"
    parts = [set(sp[k]) for k in ("train", "val", "test")]
    assert [len(p) for p in parts] == [12, 4, 4]
    assert set.union(*parts) == set(users) and sum(map(len, parts)) == 20
    assert make_split(["2024-01-01"], users[::-1], "hosts", 0.6, 0.2) == sp
    assert make_split(["d1", "d2", "d3"], users, "hosts")["mode"] == "hosts"


def test_small_splits_keep_every_part():
    sp = make_split(["a", "b", "c"], [], "days", 0.9, 0.05)
    assert (sp["train"], sp["val"], sp["test"]) == (["a"], ["b"], ["c"])
    with pytest.raises(ValueError, match="exceeds 1"):
        make_split(["a"], ["u"], "hosts", 0.8, 0.5)


def test_select_users_writes_hosts_and_split(tmp_path):
    rows = []
    for d in range(4):  # 4 days: split by days
        base = d * 86400.0
        rows += [(base + 10 * i, "Comp1", "IP9", 6, "443", 2, 100) for i in range(5)]
        rows += [(base + 7 + 10 * i, "IP9", "Comp2", 17, "53", 1, 50) for i in range(3)]
    flows = write_flows(canonical_table(rows), tmp_path)
    hosts = select_users(
        flows, tmp_path / "u/hosts.parquet", tmp_path / "u/split.json", internal=["Comp*"],
        top_n=5, min_flows=1, shards=2,
    )  # fmt: skip
    back, meta = read_hosts(tmp_path / "u/hosts.parquet")
    assert back["user"].tolist() == ["Comp1", "Comp2"]
    assert back["n_flows"].tolist() == [20, 12]
    assert back["role"].tolist() == ["out_external", "in_external"]
    assert back["shard"].tolist() == [0, 1] and back["split"].tolist() == ["all", "all"]
    assert meta["internal"] == ["Comp*"] and meta["days"][0] == "1970-01-01"
    assert meta["first_ts"] == 0.0 and meta["last_ts"] == 3 * 86400.0 + 40
    split = json.loads((tmp_path / "u/split.json").read_text())
    assert split["mode"] == "days" and len(split["train"]) == 2 and split["test"] == ["1970-01-04"]
    assert len(hosts) == 2


def test_time_range_prefers_manifest(tmp_path):
    flows = write_flows(canonical_table([(5.0, "a", "b", 6, "1", 1, 1)]), tmp_path)
    assert time_range(flows) == (5.0, 5.0)
    (flows / "manifest.json").write_text(json.dumps({"first_ts": 1.0, "last_ts": 9.0}))
    assert time_range(flows) == (1.0, 9.0)


def test_counting_streams_in_batches_with_same_answer(tmp_path):
    rng = np.random.default_rng(0)
    names = np.array([f"Comp{i}" for i in range(30)] + [f"IP{i}" for i in range(10)])
    src, dst = rng.choice(names, 2000), rng.choice(names, 2000)
    # a flow a minute: two day files, each with its own dictionaries (the per-file memo of
    # dictionary-derived values must not leak across files)
    rows = [(60.0 * i, s, d, 6, "80", 1, 1) for i, (s, d) in enumerate(zip(src, dst, strict=True))]
    flows = write_flows(canonical_table(rows), tmp_path)
    assert len(list(flows.glob("day=*/*.parquet"))) == 2
    whole = count_hosts(flows, ["Comp*"])
    small = count_hosts(flows, ["Comp*"], batch_size=97)
    assert whole.equals(small)
    # brute force: out counts and in counts (self loops count once, as out)
    for user in ["Comp0", "Comp7"]:
        row = whole.set_index("user").loc[user]
        assert row["n_out"] == np.sum(src == user)
        assert row["n_in"] == np.sum((dst == user) & (src != user))
        assert row["n_ext_out"] == np.sum((src == user) & np.char.startswith(dst.astype(str), "IP"))


def test_scan_batches_reads_every_row_in_order_with_the_dataset_types(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nfsynth.io.dataset import open_flows

    rows = [(3600.0 * i, f"Comp{i % 3}", "IP1", 6, "80", 1, 1) for i in range(60)]
    flows = write_flows(canonical_table(rows), tmp_path)
    # a third day written without the optional reverse counts
    extra = canonical_table([(3 * 86400.0, "Comp9", "IP2", 17, "53", 2, 5)])
    extra = extra.drop_columns(
        [c for c in ("rev_bytes", "rev_packets", "day") if c in extra.column_names]
    )
    (flows / "day=1970-01-04").mkdir()
    pq.write_table(extra, flows / "day=1970-01-04" / "part-0.parquet")
    dataset = open_flows(flows)
    columns = ["ts", "src", "rev_bytes"]
    batches = list(scan_batches(dataset, columns, batch_size=7))
    assert all(b.num_rows <= 7 for b in batches)
    got = pa.Table.from_batches(batches)
    assert got.schema == pa.schema([dataset.schema.field(c) for c in columns])
    assert got.column("ts").to_pylist() == [r[0] for r in rows] + [3 * 86400.0]
    assert got.column("rev_bytes").to_pylist()[-1] is None


def test_a_day_of_spill_over_flows_is_no_day_of_the_split_or_the_sampling(tmp_path, caplog):
    """Two days of flows and 3 that start in the last minute before the first (long flows a
    capture of flow ends holds): the spill-over day is logged and left out of the days, so
    the split stays by host (3 days would split by day, training on the 3 flows) and
    ``sampling.start: auto`` starts at the first whole day, not at the spill-over's."""
    import logging

    from nfsynth.models.pipeline import sample_start

    day = 86400.0
    rows = [(day - 50 + 10 * i, "Comp1", "IP9", 47, "0", 90, 9000) for i in range(3)]
    for d in (1, 2):  # 1970-01-02 and 1970-01-03
        rows += [
            (d * day + 60 * i, f"Comp{1 + i % 4}", "IP9", 6, "443", 2, 100) for i in range(400)
        ]
    flows = write_flows(canonical_table(rows), tmp_path)
    with caplog.at_level(logging.INFO, logger="nfsynth.features.select"):
        select_users(
            flows, tmp_path / "u/hosts.parquet", tmp_path / "u/split.json", internal=["Comp*"],
            top_n=5, min_flows=1, shards=1,
        )  # fmt: skip
    _, meta = read_hosts(tmp_path / "u/hosts.parquet")
    assert meta["days"] == ["1970-01-02", "1970-01-03"]
    split = json.loads((tmp_path / "u/split.json").read_text())
    assert split["mode"] == "hosts"
    assert "1970-01-01 (3) hold 3 flow(s)" in caplog.text
    assert sample_start("auto", split, tmp_path / "u/hosts.parquet") == day
    assert meta["first_ts"] == day - 50  # the flows themselves are all kept

"""The simulator's files and the structure planted in them (docs/simulator.md)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nfsynth.schema import ROLES
from nfsynth.simulate import simulate_lanl2017

INTERNAL = re.compile(
    r"^(Comp\d{6}|ActiveDirectory|EnterpriseAppServer|DNS\d+|VPN\d+|VScanner\d+|Mail)$"
)
DEVICE = re.compile(
    r"^(Comp\d{6}|ActiveDirectory|EnterpriseAppServer|DNS\d+|VPN\d+|VScanner\d+|Mail|IP\d{6})$"
)
PORT = re.compile(r"^(\d{1,5}|Port\d{5})$")


def _is_internal(names: pd.Series) -> np.ndarray:
    return names.str.match(INTERNAL.pattern).to_numpy()


def computed_roles(flows: pd.DataFrame) -> dict[str, str]:
    """Role of every internal host from its flows with external peers (as user selection does)."""
    si, di = _is_internal(flows.src), _is_internal(flows.dst)
    out_ext, in_ext = set(flows.src[si & ~di]), set(flows.dst[di & ~si])
    hosts = set(flows.src[si]) | set(flows.dst[di])
    return {
        h: "both"
        if h in out_ext and h in in_ext
        else "out_external"
        if h in out_ext
        else "in_external"
        if h in in_ext
        else "internal"
        for h in hosts
    }


def five_minute_acf1(ts: np.ndarray, n_windows: int, deseasonalise: bool = False) -> float:
    counts = np.bincount((ts // 300).astype(np.int64), minlength=n_windows).astype(float)
    if deseasonalise:  # remove each hour-of-day's mean: what is left is the bursts
        hour = (np.arange(n_windows) * 300 % 86400) // 3600
        counts -= pd.Series(counts).groupby(hour).transform("mean").to_numpy()
    c = counts - counts.mean()
    return float((c[1:] * c[:-1]).sum() / (c * c).sum())


def without_scans(flows: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The flows minus those of the labelled scanner-target pairs during their scans."""
    drop = np.zeros(len(flows), dtype=bool)
    for scan in labels.itertuples():
        drop |= (
            (flows.src == scan.src)
            & (flows.dst == scan.dst)
            & flows.ts.between(scan.start, scan.end)
        ).to_numpy()
    return flows[~drop]


def test_same_seed_same_bytes_other_seed_other_bytes(sim, small, tmp_path):
    # Setup / Run
    again = simulate_lanl2017(tmp_path / "again", **small)
    other = simulate_lanl2017(tmp_path / "other", **{**small, "seed": small["seed"] + 1})
    # Assert
    for name in ["netflow_day-01.bz2", "netflow_day-02.bz2", "labels.csv", "truth.json"]:
        first = (sim["dir"] / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == first, name
        assert (tmp_path / "other" / name).read_bytes() != first, name
    assert again["rows_per_day"] == sim["summary"]["rows_per_day"]
    assert other["rows_per_day"] != sim["summary"]["rows_per_day"]


def test_summary_and_files(sim, small):
    s = sim["summary"]
    assert [p.rsplit("/", 1)[-1] for p in s["files"]] == [
        "netflow_day-01.bz2",
        "netflow_day-02.bz2",
    ]
    assert s["labels"] == small["scans"] and s["anomalies"] == small["days"]
    assert s["rows_per_day"] == [d["rows"] for d in sim["truth"]["day_files"]]
    per_ws = sum(s["rows_per_day"]) / small["days"] / small["workstations"]
    assert (
        0.7 * small["flows_per_workstation_day"] < per_ws < 3 * small["flows_per_workstation_day"]
    )
    labels = pd.read_csv(sim["dir"] / "labels.csv")
    assert list(labels.columns) == [
        "scan_id",
        "src",
        "dst",
        "start",
        "end",
        "kind",
        "speed",
        "n_flows",
    ]


def test_lanl_line_format(sim, day_reader):
    text, _ = day_reader(sim["dir"] / "netflow_day-02.bz2")
    lines = text.split(b"\n")[:-1]  # complete lines only
    fields = [line.decode("ascii").split(",") for line in lines[:3000]]
    assert {len(f) for f in fields} == {11}
    assert all(DEVICE.match(f[2]) and DEVICE.match(f[3]) for f in fields)
    assert all(PORT.match(f[5]) and PORT.match(f[6]) for f in fields)
    assert all(f[i].isdigit() for f in fields for i in (0, 1, 4, 7, 8, 9, 10))
    assert any(f[5].startswith("Port") for f in fields) and any(f[6] == "443" for f in fields)


def test_times_are_integers_inside_their_day_and_sorted(sim):
    flows = sim["flows"]
    for day, frame in flows.groupby("day"):
        ts = frame.ts.to_numpy()
        assert ts.dtype.kind == "i"
        assert ts.min() >= (day - 1) * 86400 and ts.max() < day * 86400
        assert (np.diff(ts) >= 0).all()


def test_truncated_inside_last_block(sim, day_reader):
    for info in sim["truth"]["day_files"]:
        text, eof = day_reader(sim["dir"] / info["file"])
        assert not eof  # cut short: the stream never ends
        assert len(text) == info["recoverable_bytes"] > 0.9 * info["text_bytes"]
        assert not text.endswith(b"\n")  # the last recovered line is partial
        assert text.count(b"\n") == info["recoverable_rows"] < info["rows"]
        assert info["cut_bytes"] > 0 and info["compresslevel"] == 9 and info["blocks"] >= 2


def test_no_truncation_when_off(tmp_path, small, day_reader):
    summary = simulate_lanl2017(tmp_path, **{**small, "days": 1, "truncate": False})
    text, eof = day_reader(tmp_path / "netflow_day-01.bz2")
    assert eof and text.endswith(b"\n")
    assert text.count(b"\n") == summary["rows_per_day"][0] == summary["recoverable_rows_per_day"][0]


def test_roles_from_flows_match_truth(sim):
    roles = computed_roles(sim["flows"])
    truth = {h["name"]: h["role"] for h in sim["truth"]["hosts"] if h["kind"] != "external"}
    assert roles == truth
    assert {h["role"] for h in sim["truth"]["hosts"] if h["kind"] == "external"} == {None}


def test_every_role_among_the_busiest(sim):
    flows = sim["flows"]
    counts = pd.concat([flows.src, flows.dst]).value_counts()
    internal = counts[counts.index.str.match(INTERNAL.pattern)]
    roles = computed_roles(flows)
    top = [roles[h] for h in internal.index[:12]]
    assert all(top.count(role) >= 2 for role in ROLES), top


def test_bytes_per_packet_within_32_1500(sim):
    f = sim["flows"]
    assert (f.packets >= 1).all()
    bpp = f.bytes / f.packets
    assert bpp.between(32, 1500).all()
    rev = f.rev_packets > 0
    assert (f.rev_bytes[rev] / f.rev_packets[rev]).between(32, 1500).all()
    assert (f.rev_bytes[~rev] == 0).all()


def test_heavy_tails_and_correlations(sim):
    f = sim["flows"]
    q50, q99 = f.packets.quantile([0.5, 0.99])
    assert q99 > 30 * q50  # heavy tail
    assert np.corrcoef(np.log1p(f.packets), np.log1p(f.rev_packets))[0, 1] > 0.5
    assert np.corrcoef(np.log1p(f.packets + f.rev_packets), np.log1p(f.duration))[0, 1] > 0.4


def test_hour_rhythm_changes_rate_bytes_and_ports(sim):
    f = without_scans(sim["flows"], pd.read_csv(sim["dir"] / "labels.csv"))
    ws = f[f.src.str.startswith("Comp")]
    hour = (ws.ts % 86400) // 3600
    per_hour = np.bincount(hour, minlength=24)
    work = np.isin(np.arange(24), [9, 10, 11, 14, 15, 16])
    night = np.isin(np.arange(24), [0, 1, 2, 3, 4, 5])
    assert per_hour[work].mean() > 5 * per_hour[night].mean()
    w, n = ws[hour.between(9, 16)], ws[hour.between(0, 5)]
    assert w.bytes.median() > 1.5 * n.bytes.median()
    top = ["443", "80", "53", "445", "88", "389", "137", "0"]
    pw = w.dport.where(w.dport.isin(top), "other").value_counts(normalize=True)
    pn = n.dport.where(n.dport.isin(top), "other").value_counts(normalize=True)
    assert 0.5 * pw.sub(pn, fill_value=0).abs().sum() > 0.1  # total variation of the port mix


def test_busy_host_five_minute_counts_autocorrelated(sim, small):
    f = sim["flows"]
    labels = pd.read_csv(sim["dir"] / "labels.csv")
    busy = f.src[f.src.str.startswith("Comp")].value_counts().index
    busiest = [h for h in busy if h not in set(labels.src) | set(labels.dst)][0]  # no scan spike
    ts = f.ts[(f.src == busiest) | (f.dst == busiest)].to_numpy()
    n = small["days"] * 288
    band = 1.96 / np.sqrt(n)
    assert five_minute_acf1(ts, n) > band
    assert five_minute_acf1(ts, n, deseasonalise=True) > band  # bursts, not only the rhythm


def test_protocol_consistent_with_port(sim):
    f = sim["flows"]
    assert not ((f.proto == 17) & f.dport.isin(["80", "443", "445", "139", "22", "3389"])).any()
    icmp = f.proto == 1
    assert icmp.any() and ((f.sport[icmp] == "0") & (f.dport[icmp] == "0")).all()
    assert not ((f.proto != 1) & (f.dport == "0")).any()
    assert set(f.proto) <= {1, 6, 17}
    assert (f.proto[f.dport == "53"].isin([6, 17])).all()


def test_scans_present_at_labelled_times(sim, small):
    f = sim["flows"]
    labels = pd.read_csv(sim["dir"] / "labels.csv")
    assert len(labels) == small["scans"] and set(labels.kind) == {"well_known", "wide"}
    assert set(labels.speed) == {"slow", "fast"} and (labels.start.diff().dropna() >= 0).all()
    for scan in labels.itertuples():
        m = f[(f.src == scan.src) & (f.dst == scan.dst) & f.ts.between(scan.start, scan.end)]
        syn = m[
            (m.proto == 6)
            & (m.packets <= 2)
            & (m.bytes / m.packets).between(40, 60)
            & (m.duration == 0)
        ]
        assert len(syn) >= scan.n_flows
        assert syn.dport.nunique() >= 0.9 * scan.n_flows
        assert (syn.rev_packets == 0).mean() > 0.3
        assert m.ts.min() == scan.start
        if scan.kind == "well_known":
            assert syn.dport.str.isdigit().all()
        else:
            assert syn.dport.str.startswith("Port").mean() > 0.8


def test_exfiltration_anomalies_stand_out(sim, small):
    f = sim["flows"]
    anomalies = sim["truth"]["anomalies"]
    assert len(anomalies) == small["days"]
    for a in anomalies:
        row = f[(f.ts == a["time"]) & (f.src == a["src"]) & (f.dst == a["dst"])]
        assert len(row) == 1 and row.bytes.iloc[0] == a["bytes"]
        assert 1 <= (a["time"] % 86400) / 3600 < 4
        others = f[(f.src == a["src"]) & (f.dst != a["dst"])]
        assert a["bytes"] > 10 * others.bytes.max()
    assert not (f.dst == anomalies[0]["dst"]).sum() > len(anomalies)  # nobody else talks to it


@pytest.mark.parametrize("bad", [{"days": 0}, {"workstations": 1}, {"scans": -1}])
def test_bad_arguments_are_named(tmp_path, bad, small):
    with pytest.raises(ValueError, match=next(iter(bad))):
        simulate_lanl2017(tmp_path, **{**small, **bad})

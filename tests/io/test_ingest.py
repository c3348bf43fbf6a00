import bz2
import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest

from nfsynth.io.dataset import open_flows, read_manifest
from nfsynth.io.detect import detect_format
from nfsynth.io.errors import IngestError, RejectRatioError
from nfsynth.io.ingest import ingest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared beside the checkout
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared samples not present")
UGR_HEADER = "te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,lable\n"


def _counts_add_up(entry):
    parts = ("header_lines", "rows_written", "rejected", "duplicates", "truncated_lines")
    assert entry["lines_read"] == sum(entry[k] for k in parts)


def test_cut_lanl_archive_recovers_exactly_the_complete_blocks(cut_archive, tmp_path):
    path, truth = cut_archive
    m = ingest([path], tmp_path / "out", fmt="lanl2017", chunk_bytes=200_000)
    e = m["inputs"][0]
    complete = truth.count(b"\n")
    partial = 0 if truth.endswith(b"\n") else 1
    assert (e["lines_read"], e["rows_written"], e["truncated_lines"]) == (
        complete + partial, complete, partial,
    )  # fmt: skip
    assert e["truncated"] and e["compression"] == "bz2" and e["rejected"] == 0
    assert e["bytes_lost_to_truncation"] > 3000 and e["blocks_recovered"] >= 10
    _counts_add_up(e)
    table = open_flows(tmp_path / "out").to_table()
    expected = pa_csv.read_csv(
        pa.py_buffer(truth[: truth.rfind(b"\n") + 1]),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
    )
    assert table.num_rows == complete
    assert pc.sum(table["bytes"]).as_py() == pc.sum(expected["f9"]).as_py()
    assert pc.sum(table["rev_packets"]).as_py() == pc.sum(expected["f8"]).as_py()
    assert sorted(table["day"].unique().to_pylist()) == ["1970-01-02"]
    assert m["rows_by_day"] == {"1970-01-02": complete}


LANL_BAD = (
    b"100,1,C1,C2,6,P1,80,1,2,3,4\n"  # 1 good
    b"100,1,C1,C2,6,P1,80,1,2,3\n"  # 2 field_count
    b"100,1,C1,C2,6,P1,80,x,2,3,4\n"  # 3 non_numeric SrcPackets
    b"100,1,C1,C2,6,P1,80,1,2,3,-5\n"  # 4 negative_count DstBytes
    b"100,1,C1,C2,300,P1,80,1,2,3,4\n"  # 5 unknown_protocol
    b"abc,1,C1,C2,6,P1,80,1,2,3,4\n"  # 6 bad_timestamp
    b"\n"  # 7 field_count (empty line)
    b"100,-1,C1,C2,6,P1,80,1,2,3,4\n"  # 8 negative_count Duration
    b"200,1,C1,C2,17,P1,53,1,2,3,4\n"  # 9 good
)
LANL_BAD_EXPECTED = [
    (2, "*", "field_count"),
    (3, "SrcPackets", "non_numeric"),
    (4, "DstBytes", "negative_count"),
    (5, "Protocol", "unknown_protocol"),
    (6, "Time", "bad_timestamp"),
    (7, "*", "field_count"),
    (8, "Duration", "negative_count"),
]


@pytest.mark.parametrize("chunk_bytes", [60, 1 << 20])
def test_every_reject_kind_with_its_line_number(tmp_path, chunk_bytes):
    src = tmp_path / "bad.txt"
    src.write_bytes(LANL_BAD)
    m = ingest(
        [src], tmp_path / "out", fmt="lanl2017", max_reject_ratio=1.0, chunk_bytes=chunk_bytes
    )
    e = m["inputs"][0]
    assert (e["lines_read"], e["rows_written"], e["rejected"]) == (9, 2, 7)
    assert e["rejects_by_reason"] == {
        "field_count": 2, "non_numeric": 1, "negative_count": 2, "unknown_protocol": 1,
        "bad_timestamp": 1,
    }  # fmt: skip
    _counts_add_up(e)
    rejects = pa_csv.read_csv(tmp_path / "out" / "rejects.csv").to_pylist()
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == LANL_BAD_EXPECTED
    assert rejects[1]["raw"] == "100,1,C1,C2,6,P1,80,x,2,3,4" and rejects[1]["file"] == str(src)
    assert open_flows(tmp_path / "out").to_table()["ts"].to_pylist() == [100.0, 200.0]


def test_reject_ratio_failure_names_the_file_and_first_bad_lines(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes(LANL_BAD)
    with pytest.raises(RejectRatioError) as info:
        ingest([src], tmp_path / "out", fmt="lanl2017", max_reject_ratio=0.5)
    msg = str(info.value)
    assert msg.startswith(str(src)) and "7 of 9 lines rejected" in msg
    assert "line 2 field *: field_count" in msg and "line 3 field SrcPackets: non_numeric" in msg


def test_a_last_line_without_newline_is_kept_in_plain_text(tmp_path):
    src = tmp_path / "x.txt"
    src.write_bytes(b"1,0,C1,N1,C2,N2,6,1,60\n2,0,C1,N1,C2,N2,17,2,70")
    e = ingest([src], tmp_path / "out", fmt="lanl2015")["inputs"][0]
    assert (e["lines_read"], e["rows_written"], e["truncated_lines"]) == (2, 2, 0)


def test_non_bz2_data_named_bz2_is_a_clear_error(tmp_path):
    src = tmp_path / "netflow_day-03.bz2"
    src.write_bytes(b"1,0,C1,N1,C2,N2,6,1,60\n" * 10)
    with pytest.raises(IngestError, match="netflow_day-03.bz2: named .bz2 but is not a bz2"):
        ingest([src], tmp_path / "out", fmt="lanl2017")
    src.write_bytes(b"BZh9" + bytes(range(256)) * 4)
    with pytest.raises(IngestError, match="netflow_day-03.bz2"):
        ingest([src], tmp_path / "out", fmt="lanl2017")


def _ugr_line(i, proto="TCP", te="2016-04-11 00:01:{:02d}"):
    return f"{te.format(i)},0.5,42.219.1.{i},8.8.8.8,{1000 + i},443,{proto},.AP.S.,0,0,{i},{60 * i},background\n"


def test_ugr16_header_headerless_and_cross_file_duplicates(tmp_path):
    a = tmp_path / "day_1_a.csv"
    b = tmp_path / "b.csv"
    a.write_text(UGR_HEADER + "".join(_ugr_line(i) for i in range(1, 5)))
    # b: no header; lines 1-2 repeat a's flows 3-4, line 3 an unknown protocol,
    # line 4 a bad time, line 5 new
    b.write_text(
        _ugr_line(3) + _ugr_line(4) + _ugr_line(7, proto="FOO")
        + _ugr_line(8, te="2016-04-11 25:61:{:02d}") + _ugr_line(9)
    )  # fmt: skip
    m = ingest([a, b], tmp_path / "out", fmt="ugr16", max_reject_ratio=1.0)
    ea, eb = m["inputs"]
    assert (ea["header_lines"], ea["rows_written"], ea["duplicates"]) == (1, 4, 0)
    assert (eb["header_lines"], eb["rows_written"], eb["duplicates"], eb["rejected"]) == (
        0,
        1,
        2,
        2,
    )
    assert eb["rejects_by_reason"]["unknown_protocol"] == 1
    assert eb["rejects_by_reason"]["bad_timestamp"] == 1
    _counts_add_up(ea)
    _counts_add_up(eb)
    assert m["totals"]["duplicates"] == 2
    t = open_flows(tmp_path / "out").to_table().sort_by("ts")
    assert t.num_rows == 5
    assert t["ts"][0].as_py() == 1460332861.0 - 0.5  # te - td, UTC
    assert t["proto"].to_pylist() == [6] * 5
    assert {"flags", "fwd", "tos", "label"} <= set(t.column_names)
    assert t["label"][0].as_py() == "background"


def test_nfdump_csv_with_summary_block(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text(
        "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das\n"
        "2024-01-02 10:00:00,2024-01-02 10:00:01,1.000,10.0.0.1,10.0.0.2,5000,53,UDP,......,0,0,1,70,1,120,0,0,0,0\n"
        "2024-01-02 10:00:02.500,2024-01-02 10:00:03,0.500,10.0.0.2,1.1.1.1,6000,443,TCP,.AP.SF,0,0,9,900,7,5000,1,2,0,0\n"
        "\nSummary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n2,6090,18,0,0,0\n"
    )
    m = ingest([src], tmp_path / "out", fmt="auto")
    e = m["inputs"][0]
    assert e["format"] == "nfdump_csv"
    assert (e["lines_read"], e["header_lines"], e["trailer_lines"], e["rows_written"]) == (
        7,
        5,
        4,
        2,
    )
    t = open_flows(tmp_path / "out").to_table().sort_by("ts")
    assert t["ts"].to_pylist() == [1704189600.0, 1704189602.5]
    assert t["rev_bytes"].to_pylist() == [120, 5000] and t["proto"].to_pylist() == [17, 6]
    assert {"flags", "tos", "in", "out", "sas"} <= set(
        t.column_names
    ) and "te" not in t.column_names


def test_gzip_input_and_cut_gzip(tmp_path):
    text = b"".join(f"{i},0,C{i},N1,C2,N2,6,1,60\n".encode() for i in range(5000))
    full = gzip.compress(text)
    (tmp_path / "f.gz").write_bytes(full)
    e = ingest([tmp_path / "f.gz"], tmp_path / "o1", fmt="auto")["inputs"][0]
    assert (e["format"], e["compression"], e["rows_written"], e["truncated"]) == (
        "lanl2015",
        "gz",
        5000,
        False,
    )
    (tmp_path / "cut.gz").write_bytes(full[: len(full) // 2])
    e = ingest([tmp_path / "cut.gz"], tmp_path / "o2", fmt="lanl2015")["inputs"][0]
    assert e["truncated"] and e["truncated_lines"] <= 1 and 0 < e["rows_written"] < 5000
    _counts_add_up(e)


def test_old_partitions_are_cleared_and_manifest_written(tmp_path):
    out = tmp_path / "out"
    (out / "day=1999-01-01").mkdir(parents=True)
    (out / "day=1999-01-01" / "part-00000.parquet").write_bytes(b"stale")
    src = tmp_path / "x.txt"
    src.write_bytes(b"86400,0,C1,N1,C2,N2,6,1,60\n")
    ingest([src], out, fmt="lanl2015")
    assert [p.name for p in out.glob("day=*")] == ["day=1970-01-02"]
    assert read_manifest(out)["totals"]["rows_written"] == 1
    assert json.loads((out / "manifest.json").read_text())["inputs"][0]["format"] == "lanl2015"


def test_detect_format_from_first_lines():
    assert detect_format(["ts,te,td,sa,da,sp,dp,pr"]) == "nfdump_csv"
    assert detect_format([UGR_HEADER]) == "ugr16"
    assert detect_format([_ugr_line(1)]) == "ugr16"
    assert detect_format(["172800,0,Comp1,Comp2,6,Port1,80,0,5,0,784"]) == "lanl2017"
    assert detect_format(["1,0,C1065,389,C3799,N10451,6,10,5323"]) == "lanl2015"
    assert detect_format(["hello world"]) is None


def test_mixed_formats_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text("1,0,C1065,389,C3799,N10451,6,10,5323\n")
    (tmp_path / "b.csv").write_text(UGR_HEADER + _ugr_line(1))
    with pytest.raises(IngestError, match="different columns"):
        ingest([tmp_path / "a.txt", tmp_path / "b.csv"], tmp_path / "out")


@needs_shared
def test_real_samples(tmp_path):
    m = ingest([SHARED / "lanl2015" / "flows_first4000.txt"], tmp_path / "a")
    e = m["inputs"][0]
    assert (e["format"], e["rows_written"], e["rejected"]) == ("lanl2015", 4000, 0)
    m = ingest([SHARED / "lanl2017" / "netflow_lines.txt"], tmp_path / "b")
    e = m["inputs"][0]
    assert (e["format"], e["rows_written"], e["rejected"]) == ("lanl2017", 9, 0)
    t = open_flows(tmp_path / "b").to_table()
    assert t["rev_bytes"].null_count == 0 and "Comp348305" in t["src"].to_pylist()
    ugr = sorted((SHARED / "ugr16-2016-04-11").glob("*.csv"))[:2]
    lines = [len(p.read_text().splitlines()) for p in ugr]
    m = ingest(ugr, tmp_path / "c")
    assert [e["format"] for e in m["inputs"]] == ["ugr16", "ugr16"]
    assert [e["rows_written"] + e["duplicates"] for e in m["inputs"]] == [n - 1 for n in lines]
    assert m["totals"]["rejected"] == 0
    t = open_flows(tmp_path / "c").to_table()
    assert set(pc.unique(t["proto"]).to_pylist()) <= {1, 4, 6, 17, 47, 50, 58}


LANL2015_SAMPLE = Path(__file__).resolve().parents[2] / "data/lanl2015-sample/flows_first4000.txt"


def test_shipped_lanl2015_sample_reads_whole(tmp_path):
    """The real LANL 2015 lines shipped in data/ (config/lanl2015.yaml): all 4,000 rows."""
    e = ingest([LANL2015_SAMPLE.parent], tmp_path / "o")["inputs"][0]
    assert (e["format"], e["rows_written"], e["rejected"]) == ("lanl2015", 4000, 0)
    t = open_flows(tmp_path / "o").to_table()
    assert t.num_rows == 4000 and pc.max(t["ts"]).as_py() == 149


def test_bz2_copy_of_a_real_sample(tmp_path):
    src = tmp_path / "flows.txt.bz2"
    src.write_bytes(bz2.compress(LANL2015_SAMPLE.read_bytes()))
    e = ingest([src], tmp_path / "o")["inputs"][0]
    assert (e["compression"], e["rows_written"], e["truncated"]) == ("bz2", 4000, False)
    shutil.rmtree(tmp_path / "o")


@pytest.mark.parametrize(("cpus", "threaded"), [(2, False), (3, False), (4, True), (16, True)])
def test_parsing_is_threaded_only_where_cores_are_left_beside_decompression(
    monkeypatch, cpus, threaded
):
    import nfsynth.io.ingest as ingest_module

    monkeypatch.setattr(ingest_module.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert ingest_module.parse_threads(2) is threaded
    assert ingest_module.parse_threads(0) is (cpus >= 2)  # plain text: nothing decompressing


@pytest.mark.parametrize(("suffix", "threaded"), [("", True), (".gz", False), (".bz2", False)])
def test_each_input_is_parsed_with_threads_by_what_decompresses_it(
    monkeypatch, tmp_path, suffix, threaded
):
    """On two CPUs: plain text parses threaded; gzip (one thread inflating) and bz2 (lbzip2
    with two) parse on one thread."""
    import nfsynth.io.ingest as ingest_module
    import nfsynth.io.readers as readers_module

    monkeypatch.setattr(ingest_module.os, "sched_getaffinity", lambda _pid: {0, 1})
    seen = []
    parse = readers_module.parse_chunk

    def spy(*args, **kwargs):
        seen.append(args[4] if len(args) > 4 else kwargs.get("threads", True))
        return parse(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "parse_chunk", spy)
    text = b"".join(b"%d,1,C1,C2,6,P1,80,1,1,60,60\n" % i for i in range(100))
    opener = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress}[suffix]
    path = tmp_path / f"netflow{suffix}"
    path.write_bytes(opener(text))
    ingest([path], tmp_path / "out", fmt="lanl2017", threads=2)
    assert seen and all(flag is threaded for flag in seen)


def test_ingest_does_not_import_pandas():
    """pandas costs 0.4 s of start-up; only the cross-file duplicate check needs it."""
    import subprocess
    import sys

    code = "import sys, nfsynth.io.ingest, nfsynth.cli; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_partitions_keep_statistics_of_the_numeric_columns_only(cut_archive, tmp_path):
    import pyarrow.parquet as pq

    path, _ = cut_archive
    ingest([path], tmp_path / "out", fmt="lanl2017")
    part = next((tmp_path / "out").glob("day=*/part-*.parquet"))
    row_group = pq.ParquetFile(part).metadata.row_group(0)
    stats = {
        row_group.column(i).path_in_schema: row_group.column(i).is_stats_set
        for i in range(row_group.num_columns)
    }
    assert stats["ts"] and stats["bytes"] and stats["duration"]
    assert not stats["src"] and not stats["dport"]
    ts = row_group.column(0).statistics
    values = pq.read_table(part, columns=["ts"])["ts"]
    assert (ts.min, ts.max) == (pc.min(values).as_py(), pc.max(values).as_py())

"""Hand-made canonical flow tables for the feature tests (helpers, imported by the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from nfsynth.schema import CANONICAL_SCHEMA


def canonical_table(rows: list[tuple], label: bool = True) -> pa.Table:
    """Rows ``(ts, src, dst, proto, dport, packets, bytes)`` as a canonical table.

    duration = 1.0, sport = "Port1", rev_packets = packets + 1, rev_bytes = null on odd rows,
    plus ``day`` (for partitioning) and an extra ``label`` column (0).
    """
    ts, src, dst, proto, dport, packets, byts = (list(c) for c in zip(*rows, strict=True))
    n = len(rows)
    rev_bytes = [None if i % 2 else 10 * b for i, b in enumerate(byts)]
    cols = {
        "ts": pa.array(ts, pa.float64()),
        "duration": pa.array([1.0] * n, pa.float64()),
        "src": pa.array(src).dictionary_encode(),
        "dst": pa.array(dst).dictionary_encode(),
        "proto": pa.array(proto, pa.uint8()),
        "sport": pa.array(["Port1"] * n).dictionary_encode(),
        "dport": pa.array(dport).dictionary_encode(),
        "packets": pa.array(packets, pa.int64()),
        "bytes": pa.array(byts, pa.int64()),
        "rev_packets": pa.array([p + 1 for p in packets], pa.int64()),
        "rev_bytes": pa.array(rev_bytes, pa.int64()),
    }
    table = pa.table(cols, schema=CANONICAL_SCHEMA)
    if label:
        table = table.append_column("label", pa.array(np.zeros(n, dtype=np.int8)))
    days = np.asarray(np.floor(np.asarray(ts) / 86400).astype("datetime64[D]"), str)
    return table.append_column("day", pa.array(days))


def write_flows(table: pa.Table, root: Path) -> Path:
    """Write ``table`` as a hive ``day=`` partitioned dataset under ``root/flows``."""
    out = root / "flows"
    ds.write_dataset(
        table,
        out,
        format="parquet",
        partitioning=["day"],
        partitioning_flavor="hive",
        existing_data_behavior="overwrite_or_ignore",
    )
    return out


# Four hand-made hosts (internal patterns ["10.0.0.0/8", "Srv*"]):
#   10.0.0.1  sends to and receives from external peers  -> both
#   10.0.0.2  only sends to external peers               -> out_external
#   SrvA      only receives from external peers          -> in_external
#   10.0.0.4  talks to internal peers only               -> internal
ROLE_ROWS = [
    (100.0, "10.0.0.1", "8.8.8.8", 17, "53", 1, 60),
    (110.0, "8.8.8.8", "10.0.0.1", 17, "Port5", 1, 120),
    (120.0, "10.0.0.1", "10.0.0.4", 6, "445", 3, 300),
    (130.0, "10.0.0.2", "1.2.3.4", 6, "443", 10, 1000),
    (140.0, "10.0.0.2", "1.2.3.4", 6, "443", 12, 1200),
    (150.0, "10.0.0.2", "SrvA", 6, "80", 2, 200),
    (160.0, "5.6.7.8", "SrvA", 6, "80", 4, 400),
    (170.0, "9.9.9.9", "SrvA", 6, "80", 4, 400),
    (180.0, "10.0.0.4", "SrvA", 1, "0", 1, 84),
    (190.0, "10.0.0.4", "10.0.0.1", 6, "22", 5, 500),
]
ROLE_INTERNAL = ["10.0.0.0/8", "Srv*"]

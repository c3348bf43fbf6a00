"""Reading the canonical Parquet dataset that ingest writes (``DIR/day=YYYY-MM-DD/*.parquet``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds


def open_flows(flows_dir: str | Path) -> ds.Dataset:
    """Open an ingested flow table as a pyarrow dataset with its ``day`` partition column.

    Only the ``day=*/`` partitions are read, so ``manifest.json`` and ``rejects.csv`` beside
    them are never mistaken for data.
    """
    root = Path(flows_dir)
    files = sorted(str(p) for p in root.glob("day=*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no Parquet partitions (day=YYYY-MM-DD/*.parquet) found")
    return ds.dataset(
        files,
        format="parquet",
        partitioning=ds.partitioning(flavor="hive"),
        partition_base_dir=str(root),
    )


def read_manifest(flows_dir: str | Path) -> dict[str, Any]:
    """The ingest manifest (``manifest.json``) of an ingested flow table."""
    with open(Path(flows_dir) / "manifest.json") as handle:
        return json.load(handle)

"""Snakemake script of rule `ingest`: raw files (or the simulator's day files) to the canonical
day-partitioned Parquet table, manifest.json and rejects.csv."""

import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
)

from nfsynth.io.ingest import ingest  # noqa: E402

params = snakemake.params.ingest
fmt = params["format"]
inputs = [Path(p) for p in snakemake.input.raw]
if fmt == "simulate":  # input is results/{dataset}/raw/labels.csv: ingest its day files
    inputs = sorted(inputs[0].parent.glob("netflow_day-*.bz2"))
    fmt = "lanl2017"
ingest(
    inputs,
    Path(snakemake.output.manifest).parent,
    fmt=fmt,
    chunk_bytes=params["chunk_bytes"],
    max_reject_ratio=params["max_reject_ratio"],
    threads=params.get("decompress_threads", snakemake.threads),
)

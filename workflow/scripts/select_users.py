"""Rule select_users: hosts.parquet and split.json from the canonical flow table."""

import logging
import sys
from pathlib import Path

from nfsynth.features.select import select_users

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

params = snakemake.params.select
select_users(
    Path(snakemake.input.manifest).parent,
    snakemake.output.hosts,
    snakemake.output.split,
    internal=params["internal"],
    top_n=params["top_n"],
    min_flows=params["min_flows"],
    include=params["include"],
    shards=params["shards"],
    split=params["split"],
)

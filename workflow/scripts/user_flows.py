"""Rule user_flows: the user-flow table of one shard."""

import json
import logging
import sys
from pathlib import Path

from nfsynth.features.userflows import build_user_flows

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

with open(snakemake.input.split) as handle:
    split = json.load(handle)
build_user_flows(
    Path(snakemake.input.manifest).parent,
    snakemake.input.hosts,
    split,
    int(snakemake.wildcards.shard),
    snakemake.output.flows,
    rolling_seconds=snakemake.params.rolling_seconds,
    max_rows=snakemake.params.max_rows,
)

"""Rule windows: 5-minute windows of one shard on the dataset's global grid."""

import logging
import sys
from pathlib import Path

from nfsynth.features.select import read_hosts, time_range
from nfsynth.features.windows import build_windows

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

shard = int(snakemake.wildcards.shard)
hosts, _ = read_hosts(snakemake.input.hosts)
first_ts, last_ts = time_range(Path(snakemake.input.manifest).parent)
build_windows(
    snakemake.input.flows,
    snakemake.output.windows,
    snakemake.output.meta,
    first_ts,
    last_ts,
    seconds=snakemake.params.windows["seconds"],
    context_windows=snakemake.params.windows["context"],
    users=hosts.loc[hosts["shard"] == shard, "user"].tolist(),
    shard=shard,
)

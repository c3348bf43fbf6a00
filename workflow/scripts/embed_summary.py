"""Rule anomaly_summary: results/metrics/anomaly.csv over every dataset."""

import logging
import sys

from nfsynth.embed.evaluate import aggregate

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

table = aggregate(list(snakemake.input.tables), snakemake.output.anomaly)
logging.info("anomaly summary: %d rows from %d datasets", len(table), len(snakemake.input.tables))

"""Rule `summarize`: mean and std over seeds of every metric -> results/metrics/summary.csv."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
)

from nfsynth.metrics.summary import write_summary  # noqa: E402

table = write_summary(snakemake.input.metrics, snakemake.input.references, snakemake.output.summary)
logging.info(
    "%d files -> %d rows in %s",
    len(snakemake.input.metrics) + len(snakemake.input.references),
    len(table),
    snakemake.output.summary,
)

"""Rule sample: synthetic flows of a trained model, written as Parquet (schema.SAMPLE_SCHEMA)."""

import logging
import sys

from nfsynth.models.pipeline import sample_model

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

sample_model(
    snakemake.input.model,
    snakemake.input.split,
    dict(snakemake.params.sampling),
    int(snakemake.wildcards.seed),
    snakemake.output.sample,
    hosts_path=snakemake.input.hosts,
    threads=snakemake.threads,
)

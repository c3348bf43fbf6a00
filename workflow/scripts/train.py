"""Rule train: fit one model (config slice `models.<name>`) on the training split and save it."""

import logging
import sys
from pathlib import Path

from nfsynth.models.pipeline import train_model

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

train_model(
    Path(snakemake.input.hosts).parent,
    snakemake.input.space,
    dict(snakemake.params.hp),
    int(snakemake.wildcards.seed),
    snakemake.output.model,
    threads=snakemake.threads,
)

"""Rule temporal: ACF, look-back and dt-versus-hour analysis as JSON."""

import logging
import sys
from pathlib import Path

from nfsynth.features.temporal import write_temporal

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

write_temporal(
    Path(snakemake.input.hosts).parent,
    snakemake.output.temporal,
    max_lag=snakemake.params.temporal["max_lag"],
)

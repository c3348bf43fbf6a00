"""Rule evalspace: per-field bins fitted on the training split of the user tables."""

import logging
import sys
from pathlib import Path

from nfsynth.models.pipeline import fit_evalspace

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

fit_evalspace(
    Path(snakemake.input.hosts).parent,
    snakemake.output.space,
    top_k=snakemake.params.top_k,
    n_bins=snakemake.params.n_bins,
)

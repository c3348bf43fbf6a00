"""Rule `reference`: score the real validation split against the real test split."""

import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
)

from nfsynth.metrics.evaluate import reference_files  # noqa: E402

reference_files(
    users_dir=Path(snakemake.input.hosts).parent,
    space_path=snakemake.input.space,
    out_path=snakemake.output.metrics,
    cfg=dict(snakemake.params.evaluation),
    internal=list(snakemake.params.internal),
    ceiling_path=snakemake.input.ceiling,
    dataset=snakemake.wildcards.dataset,
    model="real",
)

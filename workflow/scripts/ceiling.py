"""Rule `ceiling`: the dataset's train-on-real utility figures, read by every evaluation."""

import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
)

from nfsynth.metrics.evaluate import ceiling_files  # noqa: E402

ceiling_files(
    users_dir=Path(snakemake.input.hosts).parent,
    space_path=snakemake.input.space,
    out_path=snakemake.output.metrics,
    cfg=dict(snakemake.params.evaluation),
    dataset=snakemake.wildcards.dataset,
)

"""Rule `simulate`: the built-in LANL-2017-format simulator into results/{dataset}/raw/.

Writes the day files, truth.json and (last) labels.csv, the rule's output, into one folder.
"""

import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # tracebacks and logging go to the rule's log
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
)

from nfsynth.simulate import simulate_lanl2017  # noqa: E402

out_dir = Path(snakemake.output.labels).parent
summary = simulate_lanl2017(out_dir, **dict(snakemake.params.sim))
logging.info(
    "simulate %s: %d files, rows per day %s, %d scans, %.2f s",
    snakemake.wildcards.dataset,
    len(summary["files"]),
    summary["rows_per_day"],
    summary["labels"],
    summary["seconds"],
)

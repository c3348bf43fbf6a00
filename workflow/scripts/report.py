"""Rule report: assemble results/report.html."""

import logging
import sys
from pathlib import Path

from nfsynth.report.build import DatasetInputs, build_report
from nfsynth.report.embed import embed_sections

logging.basicConfig(
    filename=snakemake.log[0],
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)
sys.stderr = open(snakemake.log[0], "a")

datasets = [
    DatasetInputs(
        name=name,
        flows_dir=Path(snakemake.input[f"manifest_{name}"]).parent,
        users_dir=Path(snakemake.input[f"hosts_{name}"]).parent,
        temporal=Path(snakemake.input[f"temporal_{name}"]),
        space=Path(snakemake.input[f"space_{name}"]),
        internal=snakemake.params.internal[name],
        samples={m: Path(snakemake.input[f"sample_{name}_{m}"]) for m in snakemake.params.models},
    )
    for name in snakemake.params.datasets
]
build_report(
    snakemake.output.report,
    datasets,
    snakemake.input.summary,
    title=snakemake.params.report["title"],
    max_plot_rows=snakemake.params.report["max_plot_rows"],
    extra_sections=embed_sections(snakemake.input.anomaly, snakemake.input.embed),
    surrogate_nll=frozenset(snakemake.params.surrogate_nll),
)

"""Rule embed_evaluate: anomaly scores against known answers, embedding usefulness, t-SNE maps."""

import logging
import sys
from pathlib import Path

from nfsynth.embed.evaluate import run_evaluate

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)

inp = snakemake.input
labels = inp.labels if "labels" in inp.keys() else None
run_evaluate(
    snakemake.wildcards.dataset,
    list(inp.flows),
    list(inp.windows),
    inp.hosts,
    inp.ae_scores,
    inp.ae_encoder,
    inp.vae_scores,
    inp.cnn_scores,
    dict(snakemake.output),
    labels_path=labels,
    # truth.json sits beside labels.csv (written by the same simulate job).
    truth_path=str(Path(labels).parent / "truth.json") if labels else None,
    tsne_points=int(snakemake.params.tsne_points),
    seed=int(snakemake.params.seed),
)

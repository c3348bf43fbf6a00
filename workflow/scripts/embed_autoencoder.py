"""Rule embed_autoencoder: autoencoder grid, flow embeddings, reconstruction and IsolationForest scores."""

import logging
import sys

import torch

from nfsynth.embed.autoencoder import resolve_device, run_autoencoder

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
torch.set_num_threads(snakemake.threads)

run_autoencoder(
    list(snakemake.input.flows),
    list(snakemake.input.windows),
    dict(snakemake.output),
    dict(snakemake.params.autoencoder),
    context=int(snakemake.params.context),
    seed=int(snakemake.params.seed),
    device=str(resolve_device(snakemake.params.device)),
)

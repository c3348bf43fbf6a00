"""Rule scan_cnn_train: train the port-scan CNN on images made with the simulator's code."""

import logging
import sys

import torch

from nfsynth.embed.autoencoder import resolve_device
from nfsynth.embed.scan_cnn import run_train

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
torch.set_num_threads(snakemake.threads)

run_train(
    snakemake.output.model,
    snakemake.output.report,
    dict(snakemake.params.scan_cnn),
    seed=int(snakemake.params.seed),
    device=str(resolve_device(snakemake.params.device)),
)

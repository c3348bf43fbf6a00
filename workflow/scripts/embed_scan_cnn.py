"""Rule embed_scan_cnn: score each user's (host, slot) connection images with the scan CNN."""

import logging
import sys

import pandas as pd
import torch

from nfsynth.embed.autoencoder import resolve_device
from nfsynth.embed.data import read_flows
from nfsynth.embed.scan_cnn import FLOW_COLUMNS, score_dataset

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
torch.set_num_threads(snakemake.threads)

labels = pd.read_csv(snakemake.input.labels) if "labels" in snakemake.input.keys() else None
score_dataset(
    read_flows(list(snakemake.input.flows), FLOW_COLUMNS),
    snakemake.input.model,
    snakemake.input.report,
    snakemake.output.scores,
    labels=labels,
    device=str(resolve_device(snakemake.params.device)),
)

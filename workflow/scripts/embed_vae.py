"""Rule embed_vae: the sequential VAE over day batches, latent densities and latent drift."""

import logging
import sys
from pathlib import Path

import torch

from nfsynth.embed.autoencoder import resolve_device
from nfsynth.embed.vae import run_vae

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
)
torch.set_num_threads(snakemake.threads)

out = snakemake.output
run_vae(
    list(snakemake.input.flows),
    list(snakemake.input.windows),
    out.scores,
    out.drift,
    out.model,
    dict(snakemake.params.vae),
    context=int(snakemake.params.context),
    seed=int(snakemake.params.seed),
    device=str(resolve_device(snakemake.params.device)),
    # Not an output, so a killed job's checkpoint survives and the next run resumes from it.
    resume_path=Path(out.model).parent.parent / "vae-resume.pt",
)

"""The autoencoder job: grid curves, per-flow scores keyed to the user flows, and an encoder
fitted on the training split only."""

import json

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from nfsynth.embed.autoencoder import run_autoencoder


def test_autoencoder_job_uses_training_statistics_and_scores_every_flow(toy_shards, tmp_path):
    torch.set_num_threads(1)
    flow_paths, win_paths = toy_shards
    out = {k: str(tmp_path / k) for k in ("curves", "model", "encoder", "scores")}
    params = {"grid": [{"depth": "shallow", "latent": 4}, {"depth": "deep", "latent": 4}],
              "epochs": 3, "batch_size": 256, "lr": 0.005, "top_k": 64}  # fmt: skip

    curves = run_autoencoder(flow_paths, win_paths, out, params, seed=0)

    flows = pd.concat([pd.read_parquet(p) for p in flow_paths], ignore_index=True)
    train = flows[flows["split"] == "train"]
    enc = json.loads(open(out["encoder"]).read())
    # Vocabularies hold training values only (the planted peers of other days are unseen).
    held_out_peers = set(flows.loc[flows["split"] != "train", "peer"]) - set(train["peer"])
    assert held_out_peers and not held_out_peers & set(enc["vocab"]["peer"])
    k = enc["num_fields"].index("log_bytes")
    assert np.isclose(enc["mean"][k], train["log_bytes"].mean())
    # Curves per grid entry, one value per epoch; the best has the lowest final val loss.
    assert [r["name"] for r in curves["runs"]] == ["shallow-z4", "deep-z4"]
    assert all(len(r["val_loss"]) == 3 for r in curves["runs"])
    assert curves["best"] == min(curves["runs"], key=lambda r: r["val_loss"][-1])["name"]
    # Every flow scored once; planted anomalies reconstruct worst.
    scores = pd.read_parquet(out["scores"])
    assert len(scores) == len(flows) and not scores.duplicated(["shard", "row"]).any()
    assert {"e0", "e3", "p0", "p3", "iforest", "ae_recon"} <= set(scores.columns)
    y = flows["is_anomaly"].to_numpy()
    assert roc_auc_score(y, scores["ae_recon"]) > 0.9

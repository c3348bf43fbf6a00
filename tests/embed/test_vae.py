"""The sequential VAE: resuming from a checkpoint equals an uninterrupted run; its latent density
ranks planted anomalies above normal flows."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from nfsynth.embed.encoding import EncodedFlows, FlowEncoder
from nfsynth.embed.vae import SequentialVAE, run_vae, train_sequential


def _batches(n_batches: int, seed: int = 0) -> tuple[FlowEncoder, list[EncodedFlows]]:
    rng = np.random.default_rng(seed)
    enc = FlowEncoder.from_dict(
        {"top_k": 8, "context": 0, "cat_fields": ["a", "b"],
         "vocab": {"a": list("xyz"), "b": list("pq")}, "num_fields": ["u", "v", "w"],
         "mean": [0, 0, 0], "std": [1, 1, 1], "use_context": False}
    )  # fmt: skip
    batches = [
        EncodedFlows(
            np.c_[rng.integers(0, 4, 300), rng.integers(0, 3, 300)].astype(np.int64),
            rng.normal(size=(300, 3)).astype(np.float32),
        )
        for _ in range(n_batches)
    ]
    return enc, batches


def _stop_after(batches, k):
    for i, b in enumerate(batches):
        if i == k:
            raise KeyboardInterrupt("job killed")
        yield b


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    enc, batches = _batches(5)
    settings = {"latent": 2, "epochs_per_batch": 2, "minibatch": 64, "seed": 3}

    full = train_sequential(SequentialVAE(**settings).setup(enc), batches)

    ckpt = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):  # killed while batch 3 was coming
        train_sequential(SequentialVAE(**settings).setup(enc), _stop_after(batches, 3), ckpt)
    resumed, _ = SequentialVAE.load_checkpoint(ckpt)
    assert resumed.position_ == 3
    train_sequential(resumed, batches, ckpt)

    assert resumed.position_ == full.position_ == 5
    a, b = full.net_.state_dict(), resumed.net_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.losses_ == pytest.approx(full.losses_)
    # A different seed gives different weights (the comparison above can fail).
    other = train_sequential(SequentialVAE(**{**settings, "seed": 4}).setup(enc), batches)
    assert not torch.equal(other.net_.encoder[0].weight, full.net_.encoder[0].weight)


def test_vae_density_ranks_planted_anomalies_high(toy_shards, tmp_path):
    torch.set_num_threads(1)
    flow_paths, win_paths = toy_shards
    params = {"latent": 2, "batch_rows": 600, "epochs_per_batch": 3, "kde_bandwidth": "scott",
              "gmm_components": 6, "ref_points": 2000}  # fmt: skip
    out = {k: tmp_path / f"{k}" for k in ("scores", "drift", "model")}

    report = run_vae(flow_paths, win_paths, out["scores"], out["drift"], out["model"], params,
                     seed=1, resume_path=tmp_path / "resume.pt")  # fmt: skip

    scores = pd.read_parquet(out["scores"])
    truth = pd.concat(
        [pd.read_parquet(p, columns=["is_anomaly"]).assign(shard=k, row=lambda d: np.arange(len(d)))
         for k, p in enumerate(flow_paths)]
    )  # fmt: skip
    m = scores.merge(truth, on=["shard", "row"], validate="1:1")
    assert len(m) == len(truth)
    assert roc_auc_score(m["is_anomaly"], m["vae_kde"]) > 0.8
    assert roc_auc_score(m["is_anomaly"], m["vae_gmm"]) > 0.8
    # Day order, batches bounded, drift of consecutive batches recorded; resume file removed.
    drift = json.loads(out["drift"].read_text())
    assert [b["day"] for b in drift["batches"]] == sorted(b["day"] for b in drift["batches"])
    assert max(b["n"] for b in drift["batches"]) <= 600
    assert drift["batches"][0]["jsd_prev"] is None and drift["batches"][1]["jsd_prev"] >= 0
    assert report["n_flows"] == len(truth) and not (tmp_path / "resume.pt").exists()


def test_window_slices_give_the_whole_tables_context(toy_shards):
    from nfsynth.embed.data import iter_batches, read_windows
    from nfsynth.embed.encoding import CONTEXT_FEATURES, context_summary
    from nfsynth.embed.vae import WindowSlices

    flow_paths, win_paths = toy_shards
    whole = read_windows(win_paths, CONTEXT_FEATURES)
    slices = WindowSlices(win_paths, CONTEXT_FEATURES, context=36)
    n_batches = 0
    for df in iter_batches(flow_paths, ["user", "ts", "day"], 500, "day"):
        part = slices.get(df)
        assert len(part) < len(whole)  # a slice, not the whole table
        want = context_summary(df, whole, 36)
        pd.testing.assert_frame_equal(context_summary(df, part, 36), want)
        assert want.to_numpy().any()  # the context is not all zeros
        n_batches += 1
    assert slices.reads_ < n_batches  # batches of one day share a read

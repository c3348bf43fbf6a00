"""Flow autoencoders: a small grid of shallow/deep nets and latent sizes, compared on validation.

``train_grid(train, val, cardinalities, n_num, grid, ...)`` trains one ``FlowAutoencoder`` per
grid entry (``{"depth": "shallow"|"deep", "latent": int}``) on the encoded training flows
(``encoding.EncodedFlows``; vocabularies and standardisation fitted on the training split only)
and records, per epoch, the mean training loss and the mean validation loss per flow. The entry
with the lowest final validation loss is the "best" net, whose codes are the flow embeddings
and whose per-flow reconstruction loss is the anomaly score ``ae_recon``.

Curves JSON (``results/{dataset}/embed/autoencoder/curves.json``)::

    {"n_train": int, "n_val": int, "n_num": int, "cardinalities": [int],
     "best": "deep-z8",
     "runs": [{"name": "deep-z8", "depth": "deep", "latent": 8, "n_params": int,
               "epochs": [1, 2, ...], "train_loss": [float], "val_loss": [float],
               "seconds": float}]}

Losses are per flow, summed over fields: half squared error of standardised numerics plus the
cross-entropy (nats) of each categorical.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import IsolationForest

from nfsynth.embed.data import read_flows, read_windows, schema_names
from nfsynth.embed.encoding import (
    CAT_FIELDS,
    CONTEXT_FEATURES,
    EncodedFlows,
    FlowEncoder,
    read_columns,
)
from nfsynth.embed.nets import FlowAutoencoder

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda`` as asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _tensors(enc: EncodedFlows, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(enc.cat).to(device), torch.from_numpy(enc.num).to(device)


@torch.no_grad()
def per_flow_loss(
    model: FlowAutoencoder, enc: EncodedFlows, batch_size: int = 4096, device: str = "cpu"
) -> np.ndarray:
    """Reconstruction loss of each flow (the code is the mean): float64, shape (n,)."""
    model.eval()
    dev = torch.device(device)
    out = np.empty(len(enc), dtype=np.float64)
    for i in range(0, len(enc), batch_size):
        cat, num = _tensors(enc.take(np.arange(i, min(i + batch_size, len(enc)))), dev)
        mu, _ = model.encode(cat, num)
        out[i : i + len(cat)] = model.recon_loss(cat, num, mu).double().cpu().numpy()
    return out


@torch.no_grad()
def embed(
    model: FlowAutoencoder, enc: EncodedFlows, batch_size: int = 4096, device: str = "cpu"
) -> np.ndarray:
    """Latent code (the mean) of each flow: float32, shape (n, latent)."""
    model.eval()
    dev = torch.device(device)
    out = np.empty((len(enc), model.latent), dtype=np.float32)
    for i in range(0, len(enc), batch_size):
        cat, num = _tensors(enc.take(np.arange(i, min(i + batch_size, len(enc)))), dev)
        out[i : i + len(cat)] = model.encode(cat, num)[0].float().cpu().numpy()
    return out


def fit_epochs(
    model: FlowAutoencoder,
    train: EncodedFlows,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    val: EncodedFlows | None = None,
    device: str = "cpu",
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place with Adam; returns ``{"train_loss": [...], "val_loss": [...]}``.

    Shuffling and VAE noise are seeded from ``seed``; the same inputs and seed give the same
    weights.
    """
    dev = torch.device(device)
    model.to(dev)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    cat_all, num_all = _tensors(train, dev)
    curve: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    for _ in range(int(epochs)):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train))).to(dev)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = model.loss(cat_all[idx], num_all[idx], generator=gen).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        curve["train_loss"].append(total / max(len(order), 1))
        if val is not None and len(val):
            curve["val_loss"].append(float(per_flow_loss(model, val, device=device).mean()))
    return curve


def train_grid(
    train: EncodedFlows,
    val: EncodedFlows,
    cardinalities: Sequence[int],
    n_num: int,
    grid: Sequence[dict[str, Any]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, FlowAutoencoder]]:
    """Train every grid entry; returns (curves dict as in the module docstring, nets by name)."""
    runs, nets = [], {}
    for spec in grid:
        depth, latent = str(spec["depth"]), int(spec["latent"])
        name = f"{depth}-z{latent}"
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        net = FlowAutoencoder(list(cardinalities), n_num, latent=latent, depth=depth)
        curve = fit_epochs(
            net, train, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, val=val,
            device=device,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        runs.append(
            {
                "name": name,
                "depth": depth,
                "latent": latent,
                "n_params": int(sum(p.numel() for p in net.parameters())),
                "epochs": list(range(1, int(epochs) + 1)),
                **curve,
                "seconds": round(seconds, 3),
            }
        )
        nets[name] = net
        log.info(
            "autoencoder %s: %d train / %d val flows, final val loss %.4f, %.1f s",
            name, len(train), len(val), curve["val_loss"][-1] if curve["val_loss"] else np.nan,
            seconds,
        )  # fmt: skip
    scored = [r for r in runs if r["val_loss"]]
    best = min(scored, key=lambda r: r["val_loss"][-1])["name"] if scored else runs[-1]["name"]
    curves = {
        "n_train": len(train),
        "n_val": len(val),
        "n_num": int(n_num),
        "cardinalities": [int(c) for c in cardinalities],
        "best": best,
        "runs": runs,
    }
    return curves, nets


# -- the job ---------------------------------------------------------------------------
SCORE_ID_COLUMNS = ["shard", "row", "user", "ts", "split"]


def _subsample(mask: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Sorted indices of up to ``n_max`` rows where ``mask`` (deterministic by ``seed``)."""
    idx = np.flatnonzero(mask)
    if len(idx) > n_max:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n_max, replace=False))
    return idx


def run_autoencoder(
    flow_paths: Sequence[str],
    window_paths: Sequence[str],
    out: dict[str, str],
    params: dict[str, Any],
    *,
    context: int = 36,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Rule ``embed_autoencoder``: the grid, the best net's scores and embeddings, the
    proto-blind net for the usefulness test, and the IsolationForest baseline.

    ``out``: paths ``curves`` (JSON, module docstring), ``model`` (best net's state_dict),
    ``encoder`` (JSON), ``scores`` (Parquet: ``shard, row, user, ts, split``, ``ae_recon``
    (reconstruction loss per flow, the anomaly score), ``iforest`` (IsolationForest anomaly
    score, higher = more anomalous), ``e0..e{k-1}`` (best net's code), ``p0..p{k-1}`` (code of
    the same architecture trained without the ``proto`` field)).
    ``params``: the ``embed.autoencoder`` slice (``grid``, ``epochs``, ``batch_size``, ``lr``,
    ``max_train_flows``, ``max_val_flows``, ``top_k``).
    """
    t0 = time.perf_counter()
    columns = read_columns(schema_names(flow_paths))
    flows = read_flows(flow_paths, columns)
    windows = read_windows(window_paths, CONTEXT_FEATURES)
    split = flows["split"].astype(str).to_numpy()
    top_k = int(params.get("top_k", 256))
    tr = _subsample(split == "train", int(params.get("max_train_flows", 20000)), seed)
    va = _subsample(split == "val", int(params.get("max_val_flows", 5000)), seed + 1)
    if len(tr) == 0:
        raise ValueError(f"autoencoder: no training flows in {list(flow_paths)}")
    if len(va) == 0:  # a dataset without a validation split: hold out part of train
        tr, va = tr[: int(len(tr) * 0.8)], tr[int(len(tr) * 0.8) :]
    encoder = FlowEncoder(top_k=top_k, context=context).fit(flows.iloc[tr], windows)
    enc = encoder.transform(flows, windows)
    log.info("autoencoder: %d flows encoded (%d categorical, %d numeric fields), %.1f s",
             len(flows), len(encoder.cardinalities), encoder.n_num, time.perf_counter() - t0)  # fmt: skip
    kw = {"epochs": int(params["epochs"]), "batch_size": int(params["batch_size"]),
          "lr": float(params["lr"]), "seed": seed, "device": device}  # fmt: skip
    curves, nets = train_grid(
        enc.take(tr), enc.take(va), encoder.cardinalities, encoder.n_num, params["grid"], **kw
    )
    best = nets[curves["best"]]
    scores = flows[SCORE_ID_COLUMNS].copy()
    scores["ae_recon"] = per_flow_loss(best, enc, device=device)
    z = embed(best, enc, device=device)
    for j in range(z.shape[1]):
        scores[f"e{j}"] = z[:, j]

    # The same architecture without the flow's own protocol: embeddings for the usefulness
    # test (predicting the protocol from an embedding that saw it would be a leak).
    blind_fields = [f for f in CAT_FIELDS if f != "proto"]
    blind_enc = FlowEncoder(top_k=top_k, context=context, cat_fields=blind_fields)
    blind_enc.fit(flows.iloc[tr], windows)
    benc = blind_enc.transform(flows, windows)
    spec = next(g for g in params["grid"] if f"{g['depth']}-z{int(g['latent'])}" == curves["best"])
    torch.manual_seed(seed)
    blind = FlowAutoencoder(blind_enc.cardinalities, blind_enc.n_num, int(spec["latent"]),
                            str(spec["depth"]))  # fmt: skip
    fit_epochs(blind, benc.take(tr), **kw)
    zb = embed(blind, benc, device=device)
    for j in range(zb.shape[1]):
        scores[f"p{j}"] = zb[:, j]

    # Baseline: IsolationForest on the same inputs (numeric features, vocabulary ranks).
    feats = np.hstack([enc.num, enc.cat.astype(np.float32)])
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(feats[tr])
    scores["iforest"] = -forest.score_samples(feats)
    curves["seconds"] = round(time.perf_counter() - t0, 3)
    curves["n_flows"] = len(flows)
    pd.DataFrame(scores).to_parquet(out["scores"], index=False)
    torch.save(best.cpu().state_dict(), out["model"])
    with open(out["encoder"], "w") as handle:
        json.dump(encoder.to_dict(), handle)
    with open(out["curves"], "w") as handle:
        json.dump(curves, handle, indent=1)
    log.info("autoencoder: best %s, %d flows scored, %.1f s", curves["best"], len(flows),
             curves["seconds"])  # fmt: skip
    return curves

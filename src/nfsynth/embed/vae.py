"""A VAE trained sequentially over batches of flows, with latent densities and latent drift.

The training data never sits in memory at once: ``data.iter_batches`` streams the user-flow
shards day by day in batches of at most ``batch_rows`` rows, and ``WindowSlices`` reads only
the window rows a batch's context needs (its day plus ``C`` windows), so peak memory is flat in
the number of days (``bench/bench_vae.py``). The VAE's weights are the memory
of what it has seen; each batch trains it for ``epochs_per_batch`` passes over the batch's
training-split rows (``SequentialVAE.partial_fit``).

Determinism and resumption: the shuffling and the reparameterisation noise of batch ``i`` are
seeded by ``(seed, i)``, so the run is a pure function of the batches and the seed. After every
batch a checkpoint (``state_dict`` of the net and the Adam optimizer, the position = batches
consumed, the per-batch losses, the fitted feature encoder and a fingerprint of the settings) is
written atomically; ``torch.load(..., weights_only=True)`` reads it back. A run that finds a
checkpoint with the same fingerprint skips the batches already consumed and continues: it ends
with the same weights as an uninterrupted run.

``run_vae`` (rule ``embed_vae``):

1. fit the ``FlowEncoder`` on the first ``batch_rows`` training rows of the stream (the
   vocabularies and scaling statistics are training-split only);
2. pass 1: train on every batch in order (checkpoint after each);
3. pass 2: project every batch with the final net to 2-D (the code means), record each batch's
   latent mean/std and its drift from the previous batch (``density.drift``), keep a
   deterministic random reservoir of ``ref_points`` training codes, and spill the codes to the
   scores file;
4. fit the KDE and the Bayesian GMM on the reservoir and score every flow.

Outputs:

- ``scores.parquet``: ``shard, row, user, ts, day, split, z0, z1, vae_kde, vae_gmm`` (scores are
  negative log-densities of the flow's code, nats; high = anomalous).
- ``drift.json``: ``{"latent": 2, "order": "day", "batch_rows": int, "n_batches": int,
  "n_flows": int, "seconds": float, "grid": {"lo", "hi", "bins"}, "density": {...},
  "batches": [{"index", "day", "n", "n_train", "train_loss", "mean": [z0, z1], "std": [..],
  "jsd_prev", "wasserstein_prev": [..], "mean_shift_prev"}]}`` (the first batch's ``*_prev``
  are null; ``train_loss`` is the mean per-flow loss of the batch's last epoch, null when the
  batch had no training rows).
- ``model.pt``: the final checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from nfsynth.embed.autoencoder import embed, fit_epochs
from nfsynth.embed.data import iter_batches, read_windows_range, schema_names
from nfsynth.embed.density import LatentDensity, drift
from nfsynth.embed.encoding import CONTEXT_FEATURES, EncodedFlows, FlowEncoder, read_columns
from nfsynth.embed.nets import FlowAutoencoder
from nfsynth.features.windows import window_index, window_seconds

log = logging.getLogger(__name__)

ID_COLUMNS = ["shard", "row", "user", "ts", "day", "split"]
GRID = {"lo": -4.0, "hi": 4.0, "bins": 24}


class SequentialVAE:
    """A ``FlowAutoencoder(variational=True)`` trained batch by batch (module docstring)."""

    def __init__(
        self,
        latent: int = 2,
        depth: str = "deep",
        epochs_per_batch: int = 2,
        minibatch: int = 512,
        lr: float = 0.002,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.latent = int(latent)
        self.depth = depth
        self.epochs_per_batch = int(epochs_per_batch)
        self.minibatch = int(minibatch)
        self.lr = float(lr)
        self.seed = int(seed)
        self.device = device

    def settings(self) -> dict[str, Any]:
        return {
            "latent": self.latent,
            "depth": self.depth,
            "epochs_per_batch": self.epochs_per_batch,
            "minibatch": self.minibatch,
            "lr": self.lr,
            "seed": self.seed,
        }

    def setup(self, encoder: FlowEncoder) -> SequentialVAE:
        """Build a fresh net and optimizer for the encoder's inputs; position 0."""
        self.encoder_ = encoder
        torch.manual_seed(self.seed)
        self.net_ = FlowAutoencoder(
            encoder.cardinalities, encoder.n_num, self.latent, self.depth, variational=True
        ).to(self.device)
        self.opt_ = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        self.position_ = 0
        self.losses_: list[float | None] = []
        return self

    def partial_fit(self, enc: EncodedFlows) -> float | None:
        """Train on one batch (its training rows); returns its last-epoch mean loss or None."""
        seed = self.seed * 1_000_003 + self.position_
        loss = None
        if len(enc):
            curve = fit_epochs(
                self.net_, enc, epochs=self.epochs_per_batch, batch_size=self.minibatch,
                lr=self.lr, seed=seed, device=self.device, optimizer=self.opt_,
            )  # fmt: skip
            loss = curve["train_loss"][-1]
        self.position_ += 1
        self.losses_.append(loss)
        return loss

    def transform(self, enc: EncodedFlows) -> np.ndarray:
        """2-D (``latent``-D) code means, float32 (n, latent)."""
        return embed(self.net_, enc, device=self.device)

    # -- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self, path: str | Path, fingerprint: str = "") -> None:
        """Write net, optimizer, position, losses, encoder and settings; atomic replace."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.net_.state_dict(),
            "optimizer": self.opt_.state_dict(),
            "position": self.position_,
            "losses": [float("nan") if v is None else float(v) for v in self.losses_],
            "encoder": json.dumps(self.encoder_.to_dict()),
            "settings": json.dumps(self.settings()),
            "fingerprint": fingerprint,
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    @classmethod
    def load_checkpoint(cls, path: str | Path, device: str = "cpu") -> tuple[SequentialVAE, str]:
        """A VAE restored from ``path`` (``weights_only=True``) and its fingerprint."""
        state = torch.load(str(path), map_location=device, weights_only=True)
        vae = cls(**json.loads(state["settings"]), device=device)
        vae.setup(FlowEncoder.from_dict(json.loads(state["encoder"])))
        vae.net_.load_state_dict(state["model"])
        vae.opt_.load_state_dict(state["optimizer"])
        vae.position_ = int(state["position"])
        vae.losses_ = [None if np.isnan(v) else float(v) for v in state["losses"]]
        return vae, str(state.get("fingerprint", ""))


def train_sequential(
    vae: SequentialVAE,
    batches: Iterable[EncodedFlows],
    checkpoint: str | Path | None = None,
    fingerprint: str = "",
) -> SequentialVAE:
    """Feed ``batches`` (already encoded training rows) to ``vae``, skipping the first
    ``vae.position_`` (consumed before a resume); checkpoint after each batch."""
    for i, enc in enumerate(batches):
        if i < vae.position_:
            continue
        vae.partial_fit(enc)
        if checkpoint is not None:
            vae.save_checkpoint(checkpoint, fingerprint)
    return vae


class WindowSlices:
    """The window rows a batch of flows needs for its context, read per batch, not whole.

    A flow in window ``w`` reads its user's windows ``w-C .. w-1``, so a batch needs only the
    rows with ``min(w) - C <= win <= max(w)`` (``data.read_windows_range``). On a miss the read
    reaches at least one day (``day_s``) plus ``C`` windows past its start, so the batches of
    one day share one read; memory is (users x (day + C)) windows, flat in the number of days
    (with ``order="day"``). ``get(flows)`` returns a table whose context summary equals the
    whole table's for those flows.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        columns: Sequence[str],
        context: int,
        day_s: float = 86400.0,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.columns = list(columns)
        self.context = int(context)
        self.seconds, self.first_win = _probe_grid(self.paths)
        self.day_windows = int(np.ceil(day_s / self.seconds))
        self.lo_, self.hi_ = 0, -1
        self.table_: pd.DataFrame | None = None
        self.reads_ = 0

    def get(self, flows: pd.DataFrame) -> pd.DataFrame:
        """Windows rows covering ``flows``' contexts (grouped by user, sorted by ``win``)."""
        w = window_index(flows["ts"].to_numpy(np.float64), self.seconds)
        if not len(w):  # no flows: any slice will do
            w = np.array([self.lo_ + self.context if self.table_ is not None else self.first_win])
        lo, hi = int(w.min()) - self.context, int(w.max())
        if self.table_ is None or lo < self.lo_ or hi > self.hi_:
            self.table_ = None  # drop the old slice before reading the next
            self.lo_, self.hi_ = lo, max(hi, lo + self.context + self.day_windows)
            self.table_ = read_windows_range(self.paths, self.lo_, self.hi_, self.columns)
            self.reads_ += 1
            if not len(self.table_):
                raise ValueError(
                    f"vae: no windows with win in [{self.lo_}, {self.hi_}] in {self.paths} "
                    "for flows of that time range (windows and flows do not match)"
                )
        return self.table_


def _probe_grid(paths: Sequence[str]) -> tuple[float, int]:
    """Window length (s, ``win_start / win``) and first ``win``, from the shards' first rows."""
    for p in paths:
        for batch in pq.ParquetFile(p).iter_batches(2, columns=["win", "win_start"]):
            df = batch.to_pandas()
            if (df["win"] != 0).any():
                return window_seconds(df), int(df["win"].iloc[0])
            break
    raise ValueError(f"vae: cannot tell the window length from {list(paths)} (no rows, or win 0)")


def _reservoir_keys(seed: int, index: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, index]).random(n)


def _fingerprint(paths: Sequence[str | Path], params: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def run_vae(
    flow_paths: Sequence[str | Path],
    window_paths: Sequence[str | Path],
    out_scores: str | Path,
    out_drift: str | Path,
    out_model: str | Path,
    params: dict[str, Any],
    *,
    context: int = 36,
    seed: int = 0,
    device: str = "cpu",
    resume_path: str | Path | None = None,
) -> dict[str, Any]:
    """The ``embed_vae`` job (module docstring). ``params``: the ``embed.vae`` config slice
    (``latent``, ``batch_rows``, ``epochs_per_batch``, ``kde_bandwidth``, ``gmm_components``,
    and optional ``minibatch``, ``lr``, ``ref_points``, ``top_k``, ``order``)."""
    t0 = time.perf_counter()
    batch_rows = int(params["batch_rows"])
    order = params.get("order", "day")
    columns = sorted(set(read_columns(schema_names(flow_paths))) | {"day", "split"})
    windows = WindowSlices(window_paths, CONTEXT_FEATURES, context)
    batches = lambda: iter_batches(flow_paths, columns, batch_rows, order)  # noqa: E731

    def train_rows(df: pd.DataFrame) -> pd.DataFrame:
        return df[df["split"].astype(str).to_numpy() == "train"]

    vae = SequentialVAE(
        latent=int(params["latent"]),
        depth=params.get("depth", "deep"),
        epochs_per_batch=int(params["epochs_per_batch"]),
        minibatch=int(params.get("minibatch", 512)),
        lr=float(params.get("lr", 0.002)),
        seed=seed,
        device=device,
    )
    fp = _fingerprint(flow_paths, {**params, "context": context, "seed": seed})
    if resume_path is not None and Path(resume_path).exists():
        restored, old_fp = SequentialVAE.load_checkpoint(resume_path, device)
        if old_fp == fp:
            vae = restored
            log.info("vae: resuming from %s at batch %d", resume_path, vae.position_)
    if not hasattr(vae, "net_"):
        first = None
        for df in batches():
            tr = train_rows(df)
            first = tr if first is None else pd.concat([first, tr], ignore_index=True)
            if len(first) >= batch_rows:
                break
        if first is None or not len(first):
            raise ValueError(f"vae: no training rows in {list(map(str, flow_paths))}")
        encoder = FlowEncoder(top_k=int(params.get("top_k", 256)), context=context)
        first = first.iloc[:batch_rows]
        vae.setup(encoder.fit(first, windows.get(first)))
        del first
    enc = vae.encoder_

    # Pass 1: sequential training.
    encoded = (enc.transform(tr, windows.get(tr)) for tr in map(train_rows, batches()))
    train_sequential(vae, encoded, resume_path, fp)
    t1 = time.perf_counter()
    log.info("vae: trained on %d batches in %.1f s", vae.position_, t1 - t0)

    # Pass 2: codes of every flow, drift, reservoir of training codes.
    ref_points = int(params.get("ref_points", 4000))
    ref_z = np.zeros((0, vae.latent))
    ref_key = np.zeros(0)
    stats: list[dict[str, Any]] = []
    prev = None
    tmp_codes = Path(str(out_scores) + ".codes.tmp")
    writer = None
    n_flows = 0
    for i, df in enumerate(batches()):
        z = vae.transform(enc.transform(df, windows.get(df)))
        is_train = df["split"].astype(str).to_numpy() == "train"
        keys = _reservoir_keys(seed, i, len(df))[is_train]
        ref_z = np.vstack([ref_z, z[is_train]])
        ref_key = np.r_[ref_key, keys]
        keep = np.argsort(ref_key, kind="stable")[:ref_points]
        ref_z, ref_key = ref_z[keep], ref_key[keep]
        entry: dict[str, Any] = {
            "index": i,
            "day": str(df["day"].iloc[0]),
            "n": len(df),
            "n_train": int(is_train.sum()),
            "train_loss": vae.losses_[i] if i < len(vae.losses_) else None,
            "mean": z.mean(axis=0).tolist(),
            "std": z.std(axis=0).tolist(),
            "jsd_prev": None,
            "wasserstein_prev": None,
            "mean_shift_prev": None,
        }
        if prev is not None:
            d = drift(prev, z, GRID["lo"], GRID["hi"], GRID["bins"])
            entry.update(jsd_prev=d["jsd"], wasserstein_prev=d["wasserstein"])
            entry["mean_shift_prev"] = d["mean_shift"]
        stats.append(entry)
        prev = z
        ids = df[ID_COLUMNS].copy()
        for j in range(vae.latent):
            ids[f"z{j}"] = z[:, j]
        table = pa.Table.from_pandas(_id_types(ids), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(tmp_codes), table.schema)
        writer.write_table(table)
        n_flows += len(df)
    if writer is None:
        raise ValueError("vae: no flows to score")
    writer.close()

    # Densities on the reservoir; score every flow in bounded chunks.
    density = LatentDensity(params.get("kde_bandwidth", "scott"), params["gmm_components"], seed)
    density.fit(ref_z)
    zcols = [f"z{j}" for j in range(vae.latent)]
    writer = None
    for batch in pq.ParquetFile(str(tmp_codes)).iter_batches(batch_rows):
        df = batch.to_pandas()
        s = density.score(df[zcols].to_numpy(np.float64))
        df["vae_kde"], df["vae_gmm"] = s["kde"], s["gmm"]
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(str(out_scores), table.schema)
        writer.write_table(table)
    writer.close()
    tmp_codes.unlink()

    vae.save_checkpoint(out_model, fp)
    if resume_path is not None and Path(resume_path).exists():
        Path(resume_path).unlink()
    report = {
        "latent": vae.latent,
        "order": order,
        "batch_rows": batch_rows,
        "n_batches": len(stats),
        "n_flows": n_flows,
        "n_ref": len(ref_z),
        "seconds": round(time.perf_counter() - t0, 3),
        "grid": GRID,
        "density": density.summary(),
        "batches": stats,
    }
    with open(out_drift, "w") as handle:
        json.dump(report, handle, indent=1)
    log.info(
        "vae: %d flows in %d batches scored, %d reference codes, %.1f s",
        n_flows, len(stats), len(ref_z), report["seconds"],
    )  # fmt: skip
    return report


def _id_types(df: pd.DataFrame) -> pd.DataFrame:
    for c in ("user", "day", "split"):
        df[c] = df[c].astype(str)
    df["shard"] = df["shard"].astype(np.int32)
    df["row"] = df["row"].astype(np.int64)
    df["ts"] = df["ts"].astype(np.float64)
    return df

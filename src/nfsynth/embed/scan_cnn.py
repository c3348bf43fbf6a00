"""Port-scan detection: connection-activity images per host and time slot, and a small CNN.

Image of a host (the flows it *sends*) in slot ``s = floor(ts / slot_seconds)``: a float32
array of shape ``(3, time_bins, port_bins)``; the time axis cuts the slot into ``time_bins``
equal bins, the port axis bins the destination port:

- a numeric port ``p`` goes to bin ``round((P/2 - 1) * log1p(p) / log1p(65535))`` (the first
  half, log-spaced: well-known ports get fine bins);
- an anonymised port (``Port02726``, ``N10451``: no number) to ``P/2 + crc32(label) % (P/2)``
  (the second half: distinct labels spread over the bins).

Channel 0 is log1p(flows) per cell, channel 1 log1p(distinct destinations) per cell, channel 2
log1p(flows to the slot's most contacted destination) per cell (a scan probes one target on many
ports; a busy normal host reaches its top server on one or two).

Training data (``simulated_images``) comes from the simulator's own code
(``nfsynth.simulate.scans``): slots of normal workstation activity (``generate_normal_activity``,
busy and quiet hosts, day and night) and the same with a scan overlaid
(``generate_scan``: well-known and wide port ranges, slow and fast), positive when at least
``min_scan_flows`` scan flows fall in the slot. ``ScanCNN`` is two 3x3 convolutions and a
linear head on global max and mean pooling; ``train_scan_cnn`` holds out a share of the images
and reports accuracy, ROC AUC and AP on them.

Outputs (rule ``scan_cnn_train``, ``results/embed/scan_cnn/``): ``model.pt`` (state_dict),
``train.json``: ``{"settings": {...}, "n_train", "n_heldout", "epochs": [..],
"train_loss": [..], "heldout_loss": [..], "heldout": {"accuracy", "auroc", "ap", "n_pos",
"n_neg"}, "by_kind": {"well_known/slow": {"recall", "n"}, ...}, "seconds"}``.
Rule ``embed_scan_cnn`` (``results/{dataset}/embed/scan_cnn/scores.parquet``): one row per
(host, slot) with at least one sent flow: ``user, slot, slot_start, n_flows, n_scan_flows,
label`` (1 scan, 0 normal, -1 ambiguous: 1..min_scan_flows-1 scan flows) and ``score`` (the
CNN's probability of a scan).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from nfsynth.simulate.scans import (
    SCAN_KINDS,
    SCAN_SPEEDS,
    generate_normal_activity,
    generate_scan,
)

log = logging.getLogger(__name__)

N_CHANNELS = 3
#: User-flow columns ``score_dataset`` reads.
FLOW_COLUMNS = ["user", "direction", "src", "dst", "ts", "dport", "label"]
SLOTS_PER_CALL = 12  # slots cut from one generated stretch of normal activity


# -- images -------------------------------------------------------------------------
def port_bins(ports: pd.Series, n_bins: int) -> np.ndarray:
    """Port bin of each value (module docstring); int64, shape (n,). Works per distinct value."""
    codes, uniques = pd.factorize(ports.astype(str), sort=False)
    half = n_bins // 2
    text = pd.Series(uniques, dtype=object)
    num = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    numeric = np.isfinite(num) & (num >= 0) & (num <= 65535)
    lut = np.empty(len(uniques), dtype=np.int64)
    lut[numeric] = np.rint((half - 1) * np.log1p(num[numeric]) / np.log1p(65535.0))
    crc = np.array([zlib.crc32(str(u).encode()) for u in text[~numeric]], dtype=np.int64)
    lut[~numeric] = half + crc % (n_bins - half)
    return lut[codes] if len(codes) else np.zeros(0, np.int64)


def build_images(
    flows: pd.DataFrame,
    host_col: str = "src",
    slot_seconds: float = 300.0,
    time_bins: int = 16,
    n_port_bins: int = 32,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Images of every (host, slot) present in ``flows`` (columns host_col, ts, dst, dport).

    Returns ``images`` float32 (n_images, 3, time_bins, n_port_bins) and ``index`` (a DataFrame
    with ``host``, ``slot``, ``slot_start``, ``n_flows``; row i describes image i), ordered by
    (host, slot).
    """
    if len(flows) == 0:
        empty = pd.DataFrame({"host": [], "slot": [], "slot_start": [], "n_flows": []})
        return np.zeros((0, N_CHANNELS, time_bins, n_port_bins), np.float32), empty
    ts = flows["ts"].to_numpy(np.float64)
    slot = np.floor(ts / slot_seconds).astype(np.int64)
    tb = np.clip(
        np.floor((ts - slot * slot_seconds) / (slot_seconds / time_bins)), 0, time_bins - 1
    ).astype(np.int64)
    pb = port_bins(flows["dport"], n_port_bins)
    keys = pd.DataFrame({"host": flows[host_col].astype(str).to_numpy(), "slot": slot})
    img, uniq = pd.factorize(pd.MultiIndex.from_frame(keys), sort=True)
    n_img = len(uniq)
    cell = (img * time_bins + tb) * n_port_bins + pb
    size = n_img * time_bins * n_port_bins
    counts = np.bincount(cell, minlength=size).astype(np.float32)
    dst = pd.factorize(flows["dst"].astype(str), sort=False)[0].astype(np.int64)
    pairs = pd.unique(cell * (int(dst.max()) + 1) + dst)
    distinct = np.bincount(pairs // (int(dst.max()) + 1), minlength=size).astype(np.float32)
    # The slot's most contacted destination (ties: first seen): a scan probes one target on
    # many ports, busy normal traffic reaches its top server on one or two.
    width = int(dst.max()) + 1
    pair, pair_n = np.unique(img * width + dst, return_counts=True)
    order = np.lexsort((-pair_n, pair // width))
    first = np.r_[True, np.diff((pair // width)[order]) != 0]
    top = np.full(n_img, -1, np.int64)
    top[(pair // width)[order][first]] = (pair % width)[order][first]
    to_top = np.bincount(cell[dst == top[img]], minlength=size).astype(np.float32)
    images = np.stack([np.log1p(counts), np.log1p(distinct), np.log1p(to_top)], axis=1)
    images = images.reshape(n_img, time_bins, n_port_bins, N_CHANNELS).transpose(0, 3, 1, 2)
    index = pd.DataFrame(
        {
            "host": uniq.get_level_values(0).astype(str),
            "slot": uniq.get_level_values(1).astype(np.int64),
        }
    )
    index["slot_start"] = index["slot"].to_numpy(np.float64) * slot_seconds
    index["n_flows"] = np.bincount(img, minlength=n_img).astype(np.int64)
    return np.ascontiguousarray(images, dtype=np.float32), index


# -- simulated training images --------------------------------------------------------
def simulated_images(
    n_images: int,
    *,
    seed: int,
    slot_seconds: float = 300.0,
    time_bins: int = 16,
    n_port_bins: int = 32,
    min_scan_flows: int = 3,
    scan_share: float = 0.5,
    busy_range: tuple[float, float] = (0.3, 10.0),
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labelled images from the simulator's scan and normal-activity generators.

    Normal activity: stretches of ``SLOTS_PER_CALL`` slots of one workstation at a random time
    of a random day, its rate 1200 flows/day times a log-uniform factor in ``busy_range``.
    A share ``scan_share`` of the slots gets a scan (random kind and speed, starting between
    half a slot before and most of the way into the slot); a scan with fewer than
    ``min_scan_flows`` flows inside the slot is dropped (such slots are ambiguous). Slots with
    no flow give no image (as in real data).

    Returns ``images`` (n, 3, T, P) float32, ``labels`` (n,) int64 (1 scan, 0 normal) and the
    scan kind of each image (``well_known/fast`` ..., ``""`` for normal ones).
    """
    rng = np.random.default_rng(seed)
    roles = ("out_external", "both", "in_external", "internal")
    ids, ts, dst, dport = [], [], [], []
    kinds: dict[int, str] = {}
    n_made = 0
    stretch = 0
    lo, hi = np.log(busy_range[0]), np.log(busy_range[1])
    while n_made < n_images:
        day = int(rng.integers(0, 7))
        slot0 = int(
            (day * 86400 + rng.uniform(0, 86400 - SLOTS_PER_CALL * slot_seconds)) // slot_seconds
        )
        t0 = slot0 * slot_seconds
        normal = generate_normal_activity(
            rng, f"Host{stretch}", t0, SLOTS_PER_CALL * slot_seconds,
            role=str(rng.choice(roles)), flows_per_day=1200.0 * float(np.exp(rng.uniform(lo, hi))),
        )  # fmt: skip
        nts = normal["ts"].to_numpy(np.float64)
        k_of = np.floor((nts - t0) / slot_seconds).astype(np.int64)
        base = stretch * SLOTS_PER_CALL
        ids.append(base + k_of)
        ts.append(nts)
        dst.append(normal["dst"].to_numpy(object))
        dport.append(normal["dport"].to_numpy(object))
        present = set(np.unique(k_of).tolist())
        for k in range(SLOTS_PER_CALL):
            start = t0 + k * slot_seconds
            if rng.uniform() < scan_share:
                skind, speed = str(rng.choice(SCAN_KINDS)), str(rng.choice(SCAN_SPEEDS))
                t_scan = np.floor(start + rng.uniform(-0.5, 0.8) * slot_seconds)
                scan = generate_scan(rng, "scanner", "target", t_scan, skind, speed)
                sts = scan["ts"].to_numpy(np.float64)
                inside = (sts >= start) & (sts < start + slot_seconds)
                if inside.sum() >= min_scan_flows:
                    ids.append(np.full(int(inside.sum()), base + k))
                    ts.append(sts[inside])
                    dst.append(np.full(int(inside.sum()), f"Target{stretch}", dtype=object))
                    dport.append(scan["dport"].to_numpy(object)[inside])
                    kinds[base + k] = f"{skind}/{speed}"
                    present.add(k)
            n_made += int(k in present)
        stretch += 1
    flows = pd.DataFrame(
        {
            "src": np.concatenate(ids),
            "ts": np.concatenate(ts),
            "dst": np.concatenate(dst),
            "dport": np.concatenate(dport),
        }
    )
    images, index = build_images(flows, "src", slot_seconds, time_bins, n_port_bins)
    image_id = index["host"].astype(np.int64).to_numpy()
    order = np.argsort(image_id, kind="stable")[:n_images]
    kind_list = [kinds.get(int(i), "") for i in image_id[order]]
    labels = np.array([int(k != "") for k in kind_list], np.int64)
    return images[order], labels, kind_list


# -- the network ------------------------------------------------------------------------
class ScanCNN(nn.Module):
    """(B, 3, T, P) images -> (B,) scan logits."""

    def __init__(self, channels: int = N_CHANNELS, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        pooled = torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)
        return self.head(pooled).squeeze(1)


@torch.no_grad()
def predict(model: ScanCNN, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Scan probability of each image: float64, shape (n,)."""
    model.eval()
    device = next(model.parameters()).device
    out = np.empty(len(images), dtype=np.float64)
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(device)
        out[i : i + len(x)] = torch.sigmoid(model(x)).double().cpu().numpy()
    return out


def _binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    both = n_pos > 0 and n_neg > 0
    return {
        "accuracy": float(((p >= 0.5) == (y == 1)).mean()) if len(y) else float("nan"),
        "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
        "ap": float(average_precision_score(y, p)) if both else float("nan"),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }


def train_scan_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    kinds: Sequence[str],
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 0.003,
    heldout: float = 0.25,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[ScanCNN, dict[str, Any]]:
    """Train on a seeded share of the images, evaluate on the held-out rest (module doc)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(images))
    n_hold = int(round(heldout * len(images)))
    hold, train = perm[:n_hold], perm[n_hold:]
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = ScanCNN().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    x_all = torch.from_numpy(images).to(dev)
    y_all = torch.from_numpy(labels.astype(np.float32)).to(dev)
    curve: dict[str, list[float]] = {"train_loss": [], "heldout_loss": []}
    for _ in range(int(epochs)):
        model.train()
        order = train[rng.permutation(len(train))]
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[i : i + batch_size]).to(dev)
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        curve["train_loss"].append(total / max(len(order), 1))
        if n_hold:
            with torch.no_grad():
                model.eval()
                hl = loss_fn(model(x_all[hold]), y_all[hold])
            curve["heldout_loss"].append(float(hl))
    p = predict(model, images[hold])
    y = labels[hold]
    kinds_hold = np.asarray(kinds, dtype=object)[hold]
    by_kind = {}
    for kind in sorted(set(kinds_hold) - {""}):
        sel = kinds_hold == kind
        by_kind[kind] = {"recall": float((p[sel] >= 0.5).mean()), "n": int(sel.sum())}
    report = {
        "n_train": len(train),
        "n_heldout": n_hold,
        "epochs": list(range(1, int(epochs) + 1)),
        **curve,
        "heldout": _binary_metrics(y, p),
        "by_kind": by_kind,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info(
        "scan CNN: %d train / %d held-out images, held-out accuracy %.3f AUROC %.3f, %.1f s",
        len(train), n_hold, report["heldout"]["accuracy"], report["heldout"]["auroc"],
        report["seconds"],
    )  # fmt: skip
    return model, report


# -- the jobs ----------------------------------------------------------------------------
def run_train(out_model: str | Path, out_json: str | Path, params: dict[str, Any], *,
              seed: int = 0, device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Rule ``scan_cnn_train``: simulate labelled images, train, write model and report.

    ``params``: the ``embed.scan_cnn`` slice (``time_bins``, ``port_bins``, ``slot_seconds``,
    ``epochs``, ``train_images``, optional ``min_scan_flows``, ``lr``, ``batch_size``).
    """
    t0 = time.perf_counter()
    settings = _settings(params)
    images, labels, kinds = simulated_images(
        int(params["train_images"]), seed=seed, slot_seconds=settings["slot_seconds"],
        time_bins=settings["time_bins"], n_port_bins=settings["port_bins"],
        min_scan_flows=settings["min_scan_flows"],
    )  # fmt: skip
    log.info("scan CNN: %d simulated images (%d scans) in %.1f s",
             len(images), int(labels.sum()), time.perf_counter() - t0)  # fmt: skip
    model, report = train_scan_cnn(
        images, labels, kinds, epochs=int(params["epochs"]),
        batch_size=int(params.get("batch_size", 64)), lr=float(params.get("lr", 0.003)),
        seed=seed, device=device,
    )  # fmt: skip
    report = {"settings": settings, **report, "seconds": round(time.perf_counter() - t0, 3)}
    torch.save(model.cpu().state_dict(), str(out_model))
    with open(out_json, "w") as handle:
        json.dump(report, handle, indent=1)
    return report


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "slot_seconds": float(params["slot_seconds"]),
        "time_bins": int(params["time_bins"]),
        "port_bins": int(params["port_bins"]),
        "min_scan_flows": int(params.get("min_scan_flows", 3)),
    }


def load_model(path: str | Path, device: str = "cpu") -> ScanCNN:
    model = ScanCNN()
    model.load_state_dict(torch.load(str(path), map_location=device, weights_only=True))
    return model.to(device)


def scan_flow_mask(flows: pd.DataFrame, labels: pd.DataFrame | None) -> np.ndarray:
    """True for each flow of a planted scan (labels.csv: src, dst, start <= ts <= end).

    ``flows`` needs ``src``, ``dst``, ``ts``; without labels, flows whose ``label`` column
    starts with ``scan`` (UGR'16) count; otherwise none. Shape (n,), bool.
    """
    n = len(flows)
    if labels is not None and len(labels):
        need = {"src", "dst", "start", "end"}
        if not need <= set(labels.columns):
            raise ValueError(f"scan labels lack columns {sorted(need - set(labels.columns))}")
        pairs = flows[["src", "dst"]].astype(str).reset_index(drop=True)
        pairs["i"] = np.arange(n)
        pairs["ts"] = flows["ts"].to_numpy(np.float64)
        lab = labels.assign(src=labels["src"].astype(str), dst=labels["dst"].astype(str))
        m = pairs.merge(lab[["src", "dst", "start", "end"]], on=["src", "dst"])
        hit = m["i"].to_numpy()[(m["ts"] >= m["start"]) & (m["ts"] <= m["end"])]
        mask = np.zeros(n, bool)
        mask[hit] = True
        return mask
    if "label" in flows.columns:
        return flows["label"].astype(str).str.lower().str.startswith("scan").to_numpy()
    return np.zeros(n, bool)


def score_dataset(
    flows: pd.DataFrame,
    model_path: str | Path,
    train_json: str | Path,
    out_scores: str | Path,
    labels: pd.DataFrame | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Rule ``embed_scan_cnn``: images of each user's sent flows, scored, with labels.

    ``flows``: user flows (``user``, ``direction``, ``src``, ``dst``, ``ts``, ``dport`` and
    ``label`` where present). Writes and returns the scores table (module docstring).
    """
    with open(train_json) as handle:
        settings = json.load(handle)["settings"]
    sent = flows[flows["direction"].astype(str).to_numpy() == "out"].reset_index(drop=True)
    is_scan = scan_flow_mask(sent, labels)
    images, index = build_images(
        sent.assign(user=sent["user"].astype(str)), "user", settings["slot_seconds"],
        settings["time_bins"], settings["port_bins"],
    )  # fmt: skip
    slot = np.floor(sent["ts"].to_numpy(np.float64) / settings["slot_seconds"]).astype(np.int64)
    key = pd.MultiIndex.from_arrays([sent["user"].astype(str).to_numpy(), slot])
    per_image = pd.Series(is_scan.astype(np.int64), index=key).groupby(level=[0, 1]).sum()
    n_scan = per_image.reindex(pd.MultiIndex.from_frame(index[["host", "slot"]])).to_numpy()
    model = load_model(model_path, device)
    out = index.rename(columns={"host": "user"})
    out["n_scan_flows"] = np.nan_to_num(n_scan).astype(np.int64)
    mins = int(settings["min_scan_flows"])
    out["label"] = np.where(
        out["n_scan_flows"] >= mins, 1, np.where(out["n_scan_flows"] == 0, 0, -1)
    )
    out["score"] = predict(model, images) if len(images) else np.zeros(0)
    out.to_parquet(out_scores, index=False)
    log.info(
        "scan CNN: %d images of %d users, %d scan / %d normal / %d ambiguous",
        len(out), out["user"].nunique(), int((out["label"] == 1).sum()),
        int((out["label"] == 0).sum()), int((out["label"] == -1).sum()),
    )  # fmt: skip
    return out

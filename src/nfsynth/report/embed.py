"""Embeddings and anomaly detection section: the AUC/AP table with the isolation-forest
baseline, ROC curves, autoencoder validation curves, the VAE latent drift, the embedding gain,
the port-scan CNN's held-out figures and the t-SNE maps.

Reads what ``nfsynth.embed`` writes (see the docstrings of ``embed.evaluate``,
``embed.autoencoder``, ``embed.vae`` and ``embed.scan_cnn`` for the file layouts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nfsynth.report.html import Section, figure, paragraph, table

PALETTE = plt.get_cmap("tab10")


def _by_name(paths: Sequence[str | Path], suffix: str) -> dict[str, Path]:
    """Dataset -> file for paths ``results/{dataset}/embed/.../<suffix>``."""
    out = {}
    for p in map(Path, paths):
        text = p.as_posix()
        if text.endswith(suffix) and "/embed/" in text:
            dataset = text.split("/embed/")[0].split("/")[-1]
            out[dataset] = p
    return out


def anomaly_table(anomaly: pd.DataFrame) -> pd.DataFrame:
    """Detectors as rows per dataset and target, with the isolation-forest baseline beside."""
    frame = anomaly.copy()
    base = frame[frame["detector"] == "iforest"][["dataset", "target", "auroc", "ap"]]
    base = base.rename(columns={"auroc": "iforest_auroc", "ap": "iforest_ap"})
    merged = frame.merge(base, on=["dataset", "target"], how="left")
    return merged[
        [
            "dataset",
            "target",
            "detector",
            "auroc",
            "ap",
            "iforest_auroc",
            "iforest_ap",
            "n_pos",
            "n_neg",
        ]
    ]


def curves_figure(curves: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for i, run in enumerate(curves["runs"]):
        ax.plot(run["epochs"], run["val_loss"], color=PALETTE(i), label=f"{run['name']} (val)")
        ax.plot(run["epochs"], run["train_loss"], color=PALETTE(i), ls=":", lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per flow")
    ax.legend(fontsize=7)
    return fig


def drift_figure(drift: dict) -> plt.Figure:
    batches = drift["batches"]
    idx = [b["index"] for b in batches]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    means = np.array([b["mean"] for b in batches], dtype=float)
    stds = np.array([b["std"] for b in batches], dtype=float)
    for d in range(means.shape[1]):
        axes[0].errorbar(
            idx, means[:, d], yerr=stds[:, d], marker="o", capsize=3, label=f"z{d} mean ± std"
        )
    axes[0].set_xlabel("batch (in time order)")
    axes[0].set_title("latent distribution per batch", fontsize=10)
    axes[0].legend(fontsize=7)
    jsd = [np.nan if b.get("jsd_prev") is None else b["jsd_prev"] for b in batches]
    axes[1].plot(idx, jsd, marker="o", color="#c44e52")
    axes[1].set_xlabel("batch")
    axes[1].set_ylabel("JSD to previous batch")
    axes[1].set_title("latent drift", fontsize=10)
    fig.tight_layout()
    return fig


def roc_figure(roc: dict) -> plt.Figure:
    curves = roc["curves"]
    targets = sorted({c["target"] for c in curves})
    fig, axes = plt.subplots(1, len(targets), figsize=(3.6 * len(targets), 3.3), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        for i, c in enumerate(x for x in curves if x["target"] == target):
            ax.plot(
                c["fpr"], c["tpr"], color=PALETTE(i), label=f"{c['detector']} ({c['auroc']:.2f})"
            )
        ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("false positive rate")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("true positive rate")
    fig.tight_layout()
    return fig


def tsne_figure(tsne: pd.DataFrame, kind: str, colour_by: Sequence[str]) -> plt.Figure:
    points = tsne[tsne["kind"] == kind]
    fig, axes = plt.subplots(1, len(colour_by), figsize=(4.2 * len(colour_by), 3.8), squeeze=False)
    for ax, column in zip(axes[0], colour_by, strict=True):
        values = points[column].astype(str).fillna("?")
        for i, value in enumerate(values.value_counts().index[:10]):
            mask = (values == value).to_numpy()
            size = 8 if kind == "flow" else 30
            ax.scatter(
                points["x"][mask],
                points["y"][mask],
                s=size,
                color=PALETTE(i % 10),
                label=value,
                alpha=0.7,
            )
        ax.set_title(f"coloured by {column}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=1.5)
    fig.tight_layout()
    return fig


def embed_sections(anomaly_csv: str | Path, embed_files: Sequence[str | Path]) -> list[Section]:
    """The embeddings and anomaly detection section (one, covering every dataset)."""
    sec = Section("anomaly", "Embeddings and anomaly detection")
    anomaly = pd.read_csv(anomaly_csv)
    sec.add(
        paragraph(
            "Unsupervised detectors score every flow of the user tables: the autoencoder's reconstruction "
            "error (ae_recon), the sequential VAE's latent density (vae_kde: kernel density; vae_gmm: Bayesian "
            "Gaussian mixture; low density = anomalous) and an isolation forest on the same features (the "
            "baseline). The port-scan CNN scores (host, 5-minute slot) images. Targets are the simulator's "
            "planted scans and anomalies and, on UGR'16, the flows labelled blacklist."
        ),
    )
    scored = anomaly[anomaly["n_pos"] > 0]
    if len(scored):
        sec.add(
            table(
                anomaly_table(scored),
                caption="ROC AUC and average precision per detector and target; the isolation-forest baseline beside each.",
            )
        )
    empty = anomaly[anomaly["n_pos"] == 0][["dataset", "target"]].drop_duplicates()
    if len(empty):
        sec.add(
            paragraph(
                "No positives among the selected users' flows (not scored): "
                + "; ".join(f"{d}/{t}" for d, t in empty.itertuples(index=False))
                + ".",
                "note",
            )
        )
    files = [Path(p) for p in embed_files]
    cnn_train = [p for p in files if p.as_posix().endswith("scan_cnn/train.json")]
    if cnn_train:
        info = json.loads(cnn_train[0].read_text())
        held = info["heldout"]
        rows = [{"kind": k, **v} for k, v in info.get("by_kind", {}).items()]
        sec.heading("Port-scan CNN").add(
            paragraph(
                f"Trained on {info['n_train']:,} simulator-generated images, held-out {info['n_heldout']:,}: "
                f"accuracy {held['accuracy']:.3f}, AUROC {held['auroc']:.3f}, AP {held['ap']:.3f}."
            )
        )
        if rows:
            sec.add(table(pd.DataFrame(rows), caption="Held-out recall by scan kind and speed."))
    for dataset, path in sorted(_by_name(files, "autoencoder/curves.json").items()):
        curves = json.loads(path.read_text())
        summary = pd.DataFrame(
            [
                {"model": r["name"], "depth": r["depth"], "latent": r["latent"], "parameters": r["n_params"],
                 "best val loss": min(r["val_loss"]), "seconds": r["seconds"]}
                for r in curves["runs"]
            ]
        )  # fmt: skip
        sec.heading(f"Autoencoders: {dataset}").add(
            table(summary, caption=f"Grid of autoencoders; best: {curves['best']}."),
            figure(
                curves_figure(curves),
                "Validation (solid) and training (dotted) loss per epoch of each autoencoder.",
            ),
        )
    for dataset, path in sorted(_by_name(files, "usefulness.json").items()):
        use = json.loads(path.read_text())
        rows = [{"classifier": k, **v} for k, v in use["models"].items()]
        sec.heading(f"Embedding usefulness: {dataset}").add(
            table(
                pd.DataFrame(rows),
                caption=f"Protocol prediction accuracy without and with the learnt embedding (gain); majority class {use['majority_accuracy']:.3f}.",
            )
        )
    for dataset, path in sorted(_by_name(files, "vae/drift.json").items()):
        drift = json.loads(path.read_text())
        sec.heading(f"Sequential VAE: {dataset}").add(
            paragraph(
                f"{drift['n_batches']} batches of up to {drift['batch_rows']:,} flows, ordered by {drift['order']}."
            ),
            figure(
                drift_figure(drift),
                "Latent distribution of each batch and its drift from the previous batch.",
            ),
        )
    for dataset, path in sorted(_by_name(files, "roc.json").items()):
        roc = json.loads(path.read_text())
        if roc.get("curves"):
            sec.heading(f"ROC curves: {dataset}").add(
                figure(roc_figure(roc), "ROC curve per target and detector (AUROC).")
            )
    for dataset, path in sorted(_by_name(files, "tsne.parquet").items()):
        tsne = pd.read_parquet(path)
        sec.heading(f"t-SNE maps: {dataset}").add(
            figure(
                tsne_figure(tsne, "flow", ["proto", "role", "label"]),
                "t-SNE of flow embeddings by protocol, host role and label.",
            ),
            figure(
                tsne_figure(tsne, "host", ["role", "label"]),
                "t-SNE of host embeddings (mean of the host's flow embeddings).",
            ),
        )
    return [sec]

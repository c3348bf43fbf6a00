"""Anomaly scores against known answers, embedding usefulness, and t-SNE maps.

Rule ``embed_evaluate`` (``run_evaluate``) joins, on (``shard``, ``row``), the per-flow scores
of the autoencoder job (``ae_recon``, ``iforest``, codes ``e*`` and proto-blind codes ``p*``)
and of the VAE job (``vae_kde``, ``vae_gmm``), and the per-slot scores of the scan CNN.

Targets (``flow_targets``), per flow of the user tables (a flow between two users counts in
both tables):

- simulator datasets: ``scan`` (a flow of a planted scan: ``labels.csv`` scanner -> target
  between its start and end), one target per point-anomaly kind of ``truth.json`` (e.g.
  ``exfiltration``: src, dst, time and packets match), and ``any`` (either);
- datasets with a ``label`` column (UGR'16): ``blacklist`` (label ``blacklist``) and
  ``attack`` (any label other than ``background``).

Every flow is scored, training rows included (the detectors are unsupervised).

Outputs (``results/{dataset}/embed/``):

- ``anomaly.csv``: ``dataset, detector, target, auroc, ap, n_pos, n_neg``; detectors
  ``ae_recon``, ``iforest``, ``vae_kde``, ``vae_gmm`` on flows, ``scan_cnn`` on (host, slot)
  images with target ``scan_slot``. AUROC/AP are empty (NaN) where a target has no positive.
- ``roc.json``: ``{"dataset", "curves": [{"detector", "target", "fpr": [..], "tpr": [..],
  "auroc"}]}`` (at most ``ROC_POINTS`` points each) for ROC figures.
- ``usefulness.json``: protocol prediction on the test split (else validation), trained on the
  training split, from the flow's other fields (numeric features and categorical vocabulary
  indices, ``proto`` excluded) with and without the proto-blind embedding ``p*``:
  ``{"target": "proto", "n_train", "n_test", "classes": [..], "majority_accuracy",
  "models": {"logreg": {"base", "with_embedding", "gain"}, "hgb": {...}}}``.
- ``tsne.parquet``: ``kind`` (``flow``/``host``), ``x``, ``y``, ``user``, ``role``, ``proto``
  (name, flows only), ``label`` (the target a flow is positive for, else ``normal``; hosts:
  ``anomalous`` if any of their flows is), ``split``, ``direction``, ``n_flows`` (hosts).
  Flow points: ``tsne_points`` flows (positives first, up to a tenth), codes ``e*`` of the best
  autoencoder; host points: the mean code of each host's flows. ``TSNE(init="pca",
  random_state=seed)``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nfsynth.embed.data import read_flows, read_windows, schema_names
from nfsynth.embed.encoding import CONTEXT_FEATURES, FlowEncoder, read_columns
from nfsynth.embed.scan_cnn import scan_flow_mask
from nfsynth.metrics.utility_protocol import L2_REGULARIZATION
from nfsynth.schema import proto_name

log = logging.getLogger(__name__)

FLOW_DETECTORS = ("ae_recon", "iforest", "vae_kde", "vae_gmm")
ANOMALY_COLUMNS = ["dataset", "detector", "target", "auroc", "ap", "n_pos", "n_neg"]
ROC_POINTS = 200
EXTRA_COLUMNS = ["src", "dst", "packets", "direction", "label"]


def flow_targets(
    flows: pd.DataFrame, labels: pd.DataFrame | None = None, truth: dict | None = None
) -> dict[str, np.ndarray]:
    """Boolean positives per target name (module docstring), each of shape (len(flows),)."""
    out: dict[str, np.ndarray] = {}
    if labels is not None:
        out["scan"] = scan_flow_mask(flows, labels)
        anomalies = pd.DataFrame((truth or {}).get("anomalies") or [])
        if len(anomalies):
            key = ["src", "dst", "ts", "packets"]
            left = flows[["src", "dst"]].astype(str).reset_index(drop=True)
            left["ts"] = np.floor(flows["ts"].to_numpy(np.float64))
            left["packets"] = flows["packets"].to_numpy(np.int64)
            left["i"] = np.arange(len(flows))
            right = anomalies.rename(columns={"time": "ts"})
            right = right.assign(
                src=right["src"].astype(str), dst=right["dst"].astype(str),
                ts=right["ts"].astype(np.float64), packets=right["packets"].astype(np.int64),
            )  # fmt: skip
            hits = left.merge(right[[*key, "kind"]], on=key)
            for kind, grp in hits.groupby("kind"):
                mask = np.zeros(len(flows), bool)
                mask[grp["i"].to_numpy()] = True
                out[str(kind)] = mask
            for kind in set(anomalies["kind"].astype(str)) - set(out):
                out[kind] = np.zeros(len(flows), bool)
        out["any"] = np.logical_or.reduce(list(out.values()))
    elif "label" in flows.columns:
        lab = flows["label"].astype(str).str.strip().str.lower()
        out["blacklist"] = (lab == "blacklist").to_numpy()
        out["attack"] = (~lab.isin(["background", "", "nan", "none"])).to_numpy()
    return out


def rank_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """AUROC and AP of ``score`` for positives ``y`` (NaN when a class is missing)."""
    y = np.asarray(y, bool)
    ok = np.isfinite(score)
    y, score = y[ok], np.asarray(score)[ok]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    both = n_pos > 0 and n_neg > 0
    return {
        "auroc": float(roc_auc_score(y, score)) if both else float("nan"),
        "ap": float(average_precision_score(y, score)) if both else float("nan"),
        "n_pos": n_pos,
        "n_neg": n_neg,
    }


def _roc(y: np.ndarray, score: np.ndarray) -> tuple[list[float], list[float]]:
    ok = np.isfinite(score)
    fpr, tpr, _ = roc_curve(np.asarray(y, bool)[ok], np.asarray(score)[ok])
    if len(fpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return [round(float(v), 5) for v in fpr], [round(float(v), 5) for v in tpr]


def anomaly_table(
    dataset: str,
    scores: pd.DataFrame,
    targets: dict[str, np.ndarray],
    cnn: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Rows of ``anomaly.csv`` and ROC curves of every detector and target."""
    rows, curves = [], []
    for detector in FLOW_DETECTORS:
        if detector not in scores.columns:
            continue
        s = scores[detector].to_numpy(np.float64)
        for target, y in targets.items():
            m = rank_metrics(y, s)
            rows.append({"dataset": dataset, "detector": detector, "target": target, **m})
            if m["n_pos"] and m["n_neg"]:
                fpr, tpr = _roc(y, s)
                curves.append({"detector": detector, "target": target, "fpr": fpr, "tpr": tpr,
                               "auroc": m["auroc"]})  # fmt: skip
    if cnn is not None and len(cnn):
        sel = cnn["label"].to_numpy() >= 0
        y, s = cnn["label"].to_numpy()[sel] == 1, cnn["score"].to_numpy(np.float64)[sel]
        m = rank_metrics(y, s)
        rows.append({"dataset": dataset, "detector": "scan_cnn", "target": "scan_slot", **m})
        if m["n_pos"] and m["n_neg"]:
            fpr, tpr = _roc(y, s)
            curves.append({"detector": "scan_cnn", "target": "scan_slot", "fpr": fpr,
                           "tpr": tpr, "auroc": m["auroc"]})  # fmt: skip
    return pd.DataFrame(rows, columns=ANOMALY_COLUMNS), curves


def protocol_usefulness(
    flows: pd.DataFrame,
    encoder: FlowEncoder,
    windows: pd.DataFrame,
    embedding: np.ndarray,
    *,
    seed: int = 0,
    max_rows: int = 8000,
) -> dict[str, Any]:
    """Protocol prediction with and without the proto-blind embedding (module docstring)."""
    split = flows["split"].astype(str).to_numpy()
    test_name = "test" if (split == "test").any() else "val"
    rng = np.random.default_rng(seed)

    def pick(name: str) -> np.ndarray:
        idx = np.flatnonzero(split == name)
        return np.sort(rng.choice(idx, max_rows, replace=False)) if len(idx) > max_rows else idx

    tr, te = pick("train"), pick(test_name)
    y = flows["proto"].astype(str).to_numpy()
    enc = encoder.transform(flows.iloc[np.r_[tr, te]], windows)
    keep = [j for j, f in enumerate(encoder.cat_fields_) if f != "proto"]
    cat, num = enc.cat[:, keep], enc.num
    emb = embedding[np.r_[tr, te]]
    n_tr = len(tr)
    y_tr, y_te = y[tr], y[te]
    result: dict[str, Any] = {
        "target": "proto",
        "test_split": test_name,
        "n_train": int(len(tr)),
        "n_test": int(len(te)),
        "classes": sorted(set(y_tr) | set(y_te)),
        "majority_accuracy": float(
            (y_te == pd.Series(y_tr).mode().iloc[0]).mean() if len(te) and len(tr) else np.nan
        ),
        "models": {},
    }
    if len(set(y_tr)) < 2 or not len(te):
        result["note"] = "one protocol only in the training split, or no test rows"
        return result
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(cat[:n_tr])
    base_lr = np.hstack([num, onehot.transform(cat)])
    base_tree = np.hstack([num, cat.astype(np.float32)])
    # HistGradientBoosting takes categoricals of at most 255 values; larger vocabularies stay
    # as their rank (ordered by training frequency).
    cards = np.asarray(encoder.cardinalities)[keep]
    is_cat = np.r_[np.zeros(num.shape[1], bool), cards <= 255]
    for name, base, maker in (
        ("logreg", base_lr, lambda d: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))),
        ("hgb", base_tree, lambda d: HistGradientBoostingClassifier(
            max_iter=100, random_state=seed, early_stopping=False,
            l2_regularization=L2_REGULARIZATION,  # a protocol seen once (utility_protocol)
            categorical_features=np.r_[is_cat, np.zeros(d - len(is_cat), bool)])),
    ):  # fmt: skip
        accs = {}
        for variant, X in (("base", base), ("with_embedding", np.hstack([base, emb]))):
            model = maker(X.shape[1]).fit(X[:n_tr], y_tr)
            accs[variant] = float((model.predict(X[n_tr:]) == y_te).mean())
        accs["gain"] = accs["with_embedding"] - accs["base"]
        result["models"][name] = accs
    return result


def tsne_maps(
    flows: pd.DataFrame,
    codes: np.ndarray,
    hosts: pd.DataFrame,
    targets: dict[str, np.ndarray],
    *,
    n_points: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """t-SNE coordinates of sampled flows and of hosts (module docstring)."""
    n = len(flows)
    label = np.full(n, "normal", dtype=object)
    for name, mask in targets.items():
        if name != "any":
            label[mask & (label == "normal")] = name
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(label != "normal")
    pos = rng.choice(pos, min(len(pos), n_points // 10), replace=False) if len(pos) else pos
    rest = np.setdiff1d(np.arange(n), pos)
    rest = rng.choice(rest, min(len(rest), n_points - len(pos)), replace=False)
    idx = np.sort(np.r_[pos, rest]).astype(np.int64)
    role = dict(zip(hosts["user"].astype(str), hosts["role"].astype(str), strict=False))
    users = flows["user"].astype(str).to_numpy()
    xy = _embed2d(codes[idx], seed)
    flow_pts = pd.DataFrame(
        {
            "kind": "flow",
            "x": xy[:, 0],
            "y": xy[:, 1],
            "user": users[idx],
            "role": [role.get(u, "") for u in users[idx]],
            "proto": [proto_name(p) for p in flows["proto"].to_numpy()[idx]],
            "label": label[idx],
            "split": flows["split"].astype(str).to_numpy()[idx],
            "direction": flows["direction"].astype(str).to_numpy()[idx],
            "n_flows": 1,
        }
    )
    frame = pd.DataFrame(codes, columns=[f"e{j}" for j in range(codes.shape[1])])
    frame["user"] = users
    frame["anom"] = label != "normal"
    g = frame.groupby("user", sort=True)
    means = g[[c for c in frame.columns if c.startswith("e")]].mean()
    hxy = _embed2d(means.to_numpy(np.float64), seed)
    host_pts = pd.DataFrame(
        {
            "kind": "host",
            "x": hxy[:, 0],
            "y": hxy[:, 1],
            "user": means.index.astype(str),
            "role": [role.get(u, "") for u in means.index.astype(str)],
            "proto": "",
            "label": np.where(g["anom"].any().to_numpy(), "anomalous", "normal"),
            "split": "",
            "direction": "",
            "n_flows": g.size().to_numpy().astype(np.int64),
        }
    )
    return pd.concat([flow_pts, host_pts], ignore_index=True)


def _embed2d(x: np.ndarray, seed: int) -> np.ndarray:
    """t-SNE to 2-D (PCA when there are too few points for a perplexity of at least 2)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 7:
        if len(x) < 2:
            return np.zeros((len(x), 2))
        pc = PCA(n_components=min(2, x.shape[1], len(x)), random_state=seed).fit_transform(x)
        return np.pad(pc, ((0, 0), (0, 2 - pc.shape[1])))
    perplexity = float(min(30.0, (len(x) - 1) / 3.0))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500
    ).fit_transform(x)


def run_evaluate(
    dataset: str,
    flow_paths: list[str],
    window_paths: list[str],
    hosts_path: str,
    ae_scores: str,
    ae_encoder: str,
    vae_scores: str,
    cnn_scores: str,
    out: dict[str, str],
    *,
    labels_path: str | None = None,
    truth_path: str | None = None,
    tsne_points: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Rule ``embed_evaluate``: write ``anomaly.csv``, ``roc.json``, ``usefulness.json``,
    ``tsne.parquet`` (paths in ``out``) for one dataset; returns the anomaly table."""
    t0 = time.perf_counter()
    names = schema_names(flow_paths)
    cols = sorted(set(read_columns(names)) | {c for c in EXTRA_COLUMNS if c in names})
    flows = read_flows(flow_paths, cols)
    windows = read_windows(window_paths, CONTEXT_FEATURES)
    scores = flows[["shard", "row"]].merge(pd.read_parquet(ae_scores), on=["shard", "row"],
                                           how="left")  # fmt: skip
    vae = pd.read_parquet(vae_scores, columns=["shard", "row", "vae_kde", "vae_gmm"])
    scores = scores.merge(vae, on=["shard", "row"], how="left")
    if len(scores) != len(flows):
        raise ValueError(f"{ae_scores}/{vae_scores}: scores do not match the user flows 1:1")
    labels = pd.read_csv(labels_path) if labels_path else None
    truth = None
    if truth_path and Path(truth_path).exists():
        truth = json.loads(Path(truth_path).read_text())
    targets = flow_targets(flows, labels, truth)
    cnn = pd.read_parquet(cnn_scores)
    table, curves = anomaly_table(dataset, scores, targets, cnn)
    table.to_csv(out["anomaly"], index=False)
    with open(out["roc"], "w") as handle:
        json.dump({"dataset": dataset, "curves": curves}, handle)
    for _, r in table.iterrows():
        log.info("%s %s/%s: AUROC %.3f AP %.3f (%d pos, %d neg)", dataset, r["detector"],
                 r["target"], r["auroc"], r["ap"], r["n_pos"], r["n_neg"])  # fmt: skip

    with open(ae_encoder) as handle:
        encoder = FlowEncoder.from_dict(json.load(handle))
    pcols = sorted((c for c in scores.columns if c.startswith("p") and c[1:].isdigit()),
                   key=lambda c: int(c[1:]))  # fmt: skip
    useful = protocol_usefulness(
        flows, encoder, windows, scores[pcols].to_numpy(np.float32), seed=seed
    )
    with open(out["usefulness"], "w") as handle:
        json.dump(useful, handle, indent=1)
    log.info("%s protocol prediction: %s", dataset, useful["models"])

    ecols = sorted((c for c in scores.columns if c.startswith("e") and c[1:].isdigit()),
                   key=lambda c: int(c[1:]))  # fmt: skip
    hosts = pd.read_parquet(hosts_path)
    maps = tsne_maps(flows, scores[ecols].to_numpy(np.float64), hosts, targets,
                     n_points=tsne_points, seed=seed)  # fmt: skip
    maps.to_parquet(out["tsne"], index=False)
    log.info("%s evaluate: %d flows, %d targets, %.1f s", dataset, len(flows), len(targets),
             time.perf_counter() - t0)  # fmt: skip
    return table


def aggregate(paths: list[str], out_path: str) -> pd.DataFrame:
    """Rule ``anomaly_summary``: concatenate per-dataset ``anomaly.csv`` files."""
    frames = [pd.read_csv(p) for p in paths]
    table = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ANOMALY_COLUMNS)
    )
    table = table[ANOMALY_COLUMNS]
    table.to_csv(out_path, index=False)
    return table

"""Real-vs-synthetic figures of one dataset: per-field histograms on the shared bins, per-hour
distributions with a fixed y axis, ACF curves and the dependence-matrix difference.

Real flows are the test split of the user tables; each model's sample (first seed) goes
through ``features.userflows.derive_features`` like real flows do.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from nfsynth.evalspace import EvalSpace
from nfsynth.features.userflows import derive_features
from nfsynth.metrics.acf import acf_curves
from nfsynth.metrics.common import subsample_hosts
from nfsynth.metrics.mi_pairwise import pairwise_mi
from nfsynth.report.html import Section, figure

COLORS = ["#222222", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]


def load_samples(
    sample_paths: dict[str, str | Path], internal: list[str], max_rows: int
) -> dict[str, pd.DataFrame]:
    """Model name -> the sample's user-flow frame (derived features), at most ``max_rows``."""
    out = {}
    for model, path in sorted(sample_paths.items()):
        frame = pq.read_table(path).to_pandas()
        for column in ("src", "dst", "sport", "dport", "direction"):
            if column in frame:
                frame[column] = frame[column].astype(str)
        flows = derive_features(frame, internal=internal, rolling_seconds=None)
        out[model] = subsample_hosts(flows, max_rows)
    return out


def _hist_axes(n: int, ncols: int = 4) -> tuple[plt.Figure, np.ndarray]:
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def field_histograms(
    space: EvalSpace, real: pd.DataFrame, samples: dict[str, pd.DataFrame]
) -> plt.Figure:
    """One panel per evaluation field: the share of flows in each shared bin."""
    fields = space.fields
    fig, axes = _hist_axes(len(fields))
    for ax, name in zip(axes, fields, strict=False):
        n = space.n_bins(name)
        x = np.arange(n)
        series = {"real": real, **samples}
        width = 0.85 / len(series)
        for i, (label, flows) in enumerate(series.items()):
            codes = (
                space.encode_field(name, flows[name]) if name in flows else np.zeros(0, dtype=int)
            )
            share = np.bincount(codes, minlength=n) / max(len(codes), 1)
            ax.bar(x + i * width, share, width=width, color=COLORS[i % len(COLORS)], label=label)
        ax.set_title(name, fontsize=10)
        if not space.is_continuous(name):
            labels = [*space.vocab[name], "other"]
            ax.set_xticks(x[: min(n, 12)])
            ax.set_xticklabels(labels[: min(n, 12)], rotation=60, fontsize=6)
        else:
            ax.set_xlabel("bin (log1p scale)", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def hourly_boxes(
    real: pd.DataFrame, samples: dict[str, pd.DataFrame], column: str = "log_bytes"
) -> plt.Figure:
    """Per-hour medians and quartiles of ``column`` for real and each model, one fixed y axis."""
    series = {"real": real, **samples}
    fig, axes = plt.subplots(
        1, len(series), figsize=(3.3 * len(series), 2.8), sharey=True, squeeze=False
    )
    all_values = np.concatenate(
        [s[column].to_numpy(dtype=float) for s in series.values() if column in s]
    )
    lo, hi = np.nanpercentile(all_values, [1, 99]) if all_values.size else (0, 1)
    for ax, (label, flows) in zip(axes[0], series.items(), strict=True):
        grouped = flows.groupby("hour")[column]
        q = grouped.quantile([0.25, 0.5, 0.75]).unstack() if len(flows) else pd.DataFrame()
        if len(q):
            ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.3, color="#4c72b0")
            ax.plot(q.index, q[0.5], color="#4c72b0")
        counts = flows.groupby("hour").size().reindex(range(24), fill_value=0)
        ax2 = ax.twinx()
        ax2.bar(range(24), counts / max(counts.sum(), 1), alpha=0.2, color="#dd8452")
        ax2.set_ylim(0, 0.25)
        ax2.set_yticks([])
        ax.set_ylim(lo, hi)
        ax.set_xlim(-0.5, 23.5)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("hour")
    axes[0][0].set_ylabel(f"{column} (median, IQR)")
    fig.tight_layout()
    return fig


def acf_figure(
    real: pd.DataFrame, samples: dict[str, pd.DataFrame], max_lag: int = 50
) -> plt.Figure:
    """Pooled ACF of 5-minute flow counts and log bytes: real against each model."""
    series = {"real": real, **samples}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for i, (label, flows) in enumerate(series.items()):
        curves = acf_curves(flows, max_lag)
        for ax, key in zip(axes, ("flows", "bytes"), strict=True):
            ax.plot(
                np.arange(1, max_lag + 1),
                curves[key],
                color=COLORS[i % len(COLORS)],
                lw=2.2 if label == "real" else 1.2,
                label=label,
            )
    for ax, key in zip(axes, ("flow count", "log1p bytes"), strict=True):
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_xlabel("lag (5-minute windows)")
        ax.set_title(f"ACF of {key}", fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def mi_difference_figure(
    space: EvalSpace, real: pd.DataFrame, samples: dict[str, pd.DataFrame]
) -> plt.Figure:
    """Heat maps of |MI_synthetic - MI_real| (bits) for each field pair, one panel per model."""
    fields = space.fields
    idx = {f: i for i, f in enumerate(fields)}
    real_mi = pairwise_mi(real, space)
    fig, axes = plt.subplots(1, len(samples), figsize=(3.6 * len(samples), 3.4), squeeze=False)
    vmax = 0.0
    mats = {}
    for model, flows in samples.items():
        mat = np.zeros((len(fields), len(fields)))
        for (a, b), value in pairwise_mi(flows, space).items():
            d = abs(value - real_mi[(a, b)])
            mat[idx[a], idx[b]] = mat[idx[b], idx[a]] = d
        mats[model] = mat
        vmax = max(vmax, float(np.nanmax(mat)))
    for ax, (model, mat) in zip(axes[0], mats.items(), strict=True):
        im = ax.imshow(mat, vmin=0, vmax=max(vmax, 1e-6), cmap="magma_r")
        ax.set_xticks(range(len(fields)))
        ax.set_xticklabels(fields, rotation=70, fontsize=6)
        ax.set_yticks(range(len(fields)))
        ax.set_yticklabels(fields, fontsize=6)
        ax.set_title(model, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="|ΔMI| bits")
    return fig


def fidelity_section(
    dataset: str, space: EvalSpace, real: pd.DataFrame, samples: dict[str, pd.DataFrame]
) -> Section:
    """The real-vs-synthetic figures of one dataset."""
    sec = Section(f"fidelity-{dataset}", f"Real against synthetic: {dataset}")
    sec.add(
        figure(
            field_histograms(space, real, samples),
            f"Share of flows per shared evaluation bin, real test split ({len(real):,} flows) against each model's sample (first seed).",
        ),
        figure(
            hourly_boxes(real, samples),
            "log1p bytes per hour of day (median and interquartile band; same y axis in every panel); bars: share of flows per hour.",
        ),
        figure(
            acf_figure(real, samples),
            "Pooled autocorrelation of per-user 5-minute flow counts and bytes, lags 1 to 50.",
        ),
        figure(
            mi_difference_figure(space, real, samples),
            "Dependence between fields: absolute difference of pairwise mutual information, synthetic against real.",
        ),
    )
    return sec

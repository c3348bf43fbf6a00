"""The model comparison: metric tables with the best value marked, and the winner per metric.

Reads ``results/metrics/summary.csv`` (``dataset, model, metric, goal, mean, std,
n_seeds``). The model ``real`` is the real-vs-real reference: shown, never competing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.metrics.common import BREAKDOWN_PREFIXES
from nfsynth.report.html import Section, paragraph, table

REFERENCE = "real"
#: columns of the training-time table, where present
TIME_COLUMNS = ("train_seconds", "fit_seconds", "fit_cpu_seconds")
#: per-protocol F1 behind the TSTR/TRTR macro-F1: a table of their own under Utility
PER_PROTOCOL = ("tstr_protocol_f1_", "trtr_protocol_f1_")
#: train-on-real figures of fidelity, not utility: shown beside the fidelity metric they bound
FIDELITY_REFERENCES = ("trtr_acf_mae",)
#: Metrics shown first, in this order, when present.
HEADLINE = [
    "nll_bits",
    "jsd_mean",
    "jsd_hour_mean",
    "hour_mi_diff",
    "mi_pairwise_diff",
    "acf_mae",
    "trtr_acf_mae",
    "interarrival_jsd",
    "serial_corr_diff",
    "session_diff",
    "burst_diff",
    "time_grid_diff",
    "w1_mean",
    "rule_violations",
    "density",
    "coverage",
    "tstr_protocol_f1",
    "tstr_forecast_mse",
    "dcr_p5_ratio",
    "dcr_median_ratio",
    "exact_copy_share",
]


#: Metrics that describe the real data, the same for every model: shown, never competing.
def is_reference_metric(metric: str) -> bool:
    """``trtr_*`` (train on real) and ``*_holdout`` figures are properties of the real data."""
    return metric.startswith("trtr_") or metric.endswith("_holdout")


def is_detail_metric(metric: str) -> bool:
    """Per-field and per-rule breakdowns (``jsd_bytes``, ``w1_dt``, ``rule_dns_over_icmp``,
    ``acf_mae_flows``, ``serial_corr_diff_bytes``, ``session_diff_peer``, ``burst_diff_8``,
    ``time_grid_diff_end``): shown in the details table, not in the headline or the
    winners."""
    return metric not in HEADLINE and metric.startswith(BREAKDOWN_PREFIXES)


def ordered_metrics(metrics: list[str], include: list[str] | None = None) -> list[str]:
    """Headline metrics first (in HEADLINE order), then the rest alphabetically."""
    chosen = [m for m in metrics if include is None or m in include]
    head = [m for m in HEADLINE if m in chosen]
    return head + sorted(m for m in chosen if m not in head)


def best_models(summary: pd.DataFrame, surrogate_nll: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Per dataset and metric, the best model by its goal (ties: all), the reference and the
    surrogate NLLs of ``surrogate_nll`` models excluded.

    Returns ``dataset, metric, goal, best, value``.
    """
    rows = []
    surrogate = (summary["metric"] == "nll_bits") & summary["model"].isin(surrogate_nll)
    reference = summary["metric"].map(is_reference_metric).astype(bool)
    competing = summary[
        (summary["model"] != REFERENCE) & summary["mean"].notna() & ~surrogate & ~reference
    ]
    for (dataset, metric), group in competing.groupby(["dataset", "metric"], sort=True):
        goal = group["goal"].iloc[0]
        target = group["mean"].min() if goal == "min" else group["mean"].max()
        winners = group.loc[np.isclose(group["mean"], target, rtol=1e-9, atol=1e-12), "model"]
        rows.append(
            {
                "dataset": dataset,
                "metric": metric,
                "goal": goal,
                "best": ", ".join(sorted(winners)),
                "value": target,
            }
        )
    return pd.DataFrame(rows, columns=["dataset", "metric", "goal", "best", "value"])


def metric_table_html(
    summary: pd.DataFrame,
    dataset: str,
    metrics: list[str],
    caption: str,
    surrogate_nll: frozenset[str] = frozenset(),
) -> str:
    """Models as rows, metrics as columns, ``mean ± std``; the best competing value per column
    gets the ``best`` class, the reference row the ``ref`` class. The ``nll_bits`` of models in
    ``surrogate_nll`` (no likelihood of their own) is marked ``(surrogate)``."""
    part = summary[(summary["dataset"] == dataset) & summary["metric"].isin(metrics)]
    if part.empty:
        return ""
    models = sorted(m for m in part["model"].unique() if m != REFERENCE)
    if REFERENCE in set(part["model"]):
        models.append(REFERENCE)
    cols = ordered_metrics(list(part["metric"].unique()), metrics)
    means = part.pivot_table(index="model", columns="metric", values="mean", aggfunc="first")
    stds = part.pivot_table(index="model", columns="metric", values="std", aggfunc="first")
    goals = part.groupby("metric")["goal"].first()
    best = best_models(part, surrogate_nll).set_index("metric")
    text = pd.DataFrame({"model": models})
    for metric in cols:
        arrow = "↓" if goals[metric] == "min" else "↑"
        values = []
        for model in models:
            m = (
                means.at[model, metric]
                if (model in means.index and metric in means.columns)
                else np.nan
            )
            s = (
                stds.at[model, metric]
                if (model in stds.index and metric in stds.columns)
                else np.nan
            )
            text_value = (
                "–"
                if pd.isna(m)
                else (f"{m:.4g} ± {s:.2g}" if pd.notna(s) and s > 0 else f"{m:.4g}")
            )
            if metric == "nll_bits" and model in surrogate_nll and pd.notna(m):
                text_value += " (surrogate)"
            values.append(text_value)
        text[f"{metric} {arrow}"] = values

    def klass(row: int, column: str) -> str:
        model = models[row]
        if model == REFERENCE:
            return "ref"
        metric = column.rsplit(" ", 1)[0]
        if metric in best.index and model in best.at[metric, "best"].split(", "):
            return "best"
        return ""

    return table(text, caption=caption, cell_class=klass, formatters={c: str for c in text.columns})


def models_section(
    summary: pd.DataFrame,
    dataset: str,
    train_seconds: pd.DataFrame | None = None,
    surrogate_nll: frozenset[str] = frozenset(),
) -> Section:
    """Metric tables for one dataset (fidelity, utility, privacy) and the winners.

    ``surrogate_nll``: models whose ``nll_bits`` is a surrogate (CTGAN/TVAE); they are marked
    and do not compete for the best NLL."""
    sec = Section(f"models-{dataset}", f"Models: {dataset}")
    part = summary[summary["dataset"] == dataset]
    if part.empty:
        raise ValueError(f"summary.csv has no rows for dataset {dataset}")
    n_seeds = int(part.loc[part["model"] != REFERENCE, "n_seeds"].max())
    sec.add(
        paragraph(
            f"Mean ± standard deviation over {n_seeds} seed(s). ↓ lower is better, ↑ higher is better; "
            "the best model per column is marked green. The row 'real' scores the real validation "
            "split against the real test split: the floor a perfect generator would reach. "
            "trtr_ columns score the real training split in a sample's place, the same for every "
            "row: trtr_acf_mae is the ACF error of a model that reproduced the training hosts "
            "exactly."
        )
    )
    metrics = list(part["metric"].unique())
    utility = [
        m for m in metrics if m.startswith(("tstr_", "trtr_")) and m not in FIDELITY_REFERENCES
    ]
    per_protocol = [m for m in utility if m.startswith(PER_PROTOCOL)]  # details: no winner
    utility_main = [m for m in utility if m not in per_protocol]
    privacy = [m for m in metrics if m.startswith(("dcr_", "exact_copy"))]
    fidelity = [m for m in metrics if m not in utility and m not in privacy]
    fidelity_main = [m for m in fidelity if not is_detail_metric(m)]
    details = [m for m in fidelity if is_detail_metric(m)]
    sec.heading("Fidelity").add(
        metric_table_html(part, dataset, fidelity_main, "Fidelity and likelihood.", surrogate_nll),
        paragraph(
            "nll_bits of "
            + ", ".join(sorted(surrogate_nll))
            + " is a surrogate (a kernel density of the model's own samples): they have no likelihood, "
            "so they do not compete for the best NLL.",
            "note",
        )
        if surrogate_nll & set(part["model"])
        else "",
    )
    if utility:
        sec.heading("Utility (train on synthetic, test on real)").add(
            metric_table_html(
                part,
                dataset,
                utility_main,
                "TSTR against TRTR: protocol macro-F1 and next-window bytes MSE.",
            ),
            metric_table_html(
                part,
                dataset,
                per_protocol,
                "The F1 of each protocol behind the macro-F1 (their mean): trained on the real "
                "training flows (trtr, the ceiling) and on each model's flows (tstr).",
            ),
        )
    if privacy:
        sec.heading("Privacy").add(
            metric_table_html(
                part,
                dataset,
                privacy,
                "Distance to closest record (synthetic-to-train over holdout-to-train; near 1 is safe, near 0 copies) and exact copies.",
            )
        )
    if details:
        sec.heading("Per-field and per-rule details").add(
            metric_table_html(
                part,
                dataset,
                details,
                "JSD and Wasserstein-1 per field, ACF error per series, violations per rule.",
            )
        )
    if train_seconds is not None and len(train_seconds):
        # configured models only: a model directory left from an older config has no rows
        ts = train_seconds[
            (train_seconds["dataset"] == dataset) & train_seconds["model"].isin(part["model"])
        ]
        if len(ts):
            keys = [
                m
                for m in ("jsd_mean", "jsd_hour_mean", "acf_mae", "rule_violations", "nll_bits")
                if m in metrics
            ]
            means = part.pivot_table(
                index="model", columns="metric", values="mean", aggfunc="first"
            )
            frame = (
                ts[["model", *[c for c in TIME_COLUMNS if c in ts]]]
                .set_index("model")
                .join(means[keys], how="left")
                .reset_index()
            )
            sec.heading("Training time beside fidelity").add(
                table(
                    frame,
                    caption="Mean over seeds: train_seconds, the training job's wall time "
                    "(benchmark files; it depends on the job that ran beside it); fit_seconds "
                    "and fit_cpu_seconds, the fit's own wall and CPU time, the import of the "
                    "model's libraries included (training.json); and headline fidelity.",
                )
            )
    winners = best_models(part, surrogate_nll)
    winners = winners[winners["metric"].isin(fidelity_main + utility_main + privacy)]
    winners = winners[~winners["metric"].map(is_reference_metric).astype(bool)]
    if len(winners):
        ordered = ordered_metrics(list(winners["metric"]))
        winners = winners.set_index("metric").loc[ordered].reset_index()
        sec.heading("Winner per metric").add(
            table(
                winners[["metric", "goal", "best", "value"]],
                caption="The best model for each metric (reference excluded).",
            )
        )
    return sec

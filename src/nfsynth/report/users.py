"""Users (selection, roles, split) and temporal analysis sections of one dataset."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nfsynth.report.html import Section, figure, paragraph, table
from nfsynth.schema import ROLE_DESCRIPTIONS, ROLES


def users_section(dataset: str, hosts_path: str | Path, split_path: str | Path) -> Section:
    """Selected users with their roles and the train/validation/test split."""
    hosts = pd.read_parquet(hosts_path)
    split = json.loads(Path(split_path).read_text())
    sec = Section(f"users-{dataset}", f"Users: {dataset}")
    roles = hosts["role"].value_counts().reindex(list(ROLES), fill_value=0)
    role_table = pd.DataFrame(
        {
            "role": roles.index,
            "meaning": [ROLE_DESCRIPTIONS[r] for r in roles.index],
            "users": roles.to_numpy(),
        }
    )
    sec.add(
        paragraph(
            f"{len(hosts)} users selected, {int(hosts['n_flows'].sum()):,} user flows "
            f"(a flow between two users counts for both). Split by {split.get('mode')}: "
            f"train {len(split.get('train', []))}, validation {len(split.get('val', []))}, "
            f"test {len(split.get('test', []))} {split.get('mode')}."
        ),
        table(role_table, caption="Host roles, from each user's flows with external peers."),
    )
    if split.get("mode") == "days":
        rows = [
            {"split": name, "days": ", ".join(map(str, split.get(name, [])))}
            for name in ("train", "val", "test")
        ]
        sec.add(table(pd.DataFrame(rows), caption="Whole days held out for validation and test."))
    shown = hosts.sort_values("n_flows", ascending=False)
    columns = [
        c
        for c in [
            "user",
            "role",
            "n_flows",
            "n_out",
            "n_in",
            "n_ext_out",
            "n_ext_in",
            "n_int",
            "split",
            "shard",
        ]
        if c in shown
    ]
    sec.heading("Selected users").add(table(shown[columns], caption="Users by flow count."))
    return sec


def temporal_section(dataset: str, temporal_path: str | Path) -> Section:
    """ACF of 5-minute flow counts and bytes with the 95% band and look-back, and dt by hour."""
    data = json.loads(Path(temporal_path).read_text())
    sec = Section(f"temporal-{dataset}", f"Temporal structure: {dataset}")
    lags = np.asarray(data["lags"])
    band = float(data["band"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=True)
    for ax, key, title in zip(axes, ("n_flows", "bytes"), ("flow count", "bytes"), strict=True):
        entry = data["acf"][key]
        for values in entry.get("per_user", {}).values():
            ax.plot(lags, np.asarray(values, dtype=float), color="#9bb1d6", lw=0.6, alpha=0.6)
        ax.plot(
            lags,
            np.asarray(entry["pooled"], dtype=float),
            color="#1f3a73",
            lw=2.2,
            label="pooled (mean over users)",
        )
        ax.axhspan(-band, band, color="#dd8452", alpha=0.2, label="95% band")
        ax.axvline(
            entry["lookback"],
            color="#c44e52",
            ls="--",
            lw=1.2,
            label=f"look-back {entry['lookback']}",
        )
        ax.set_xlabel("lag (windows)")
        ax.set_title(f"ACF of 5-minute {title}", fontsize=10)
        ax.legend(fontsize=7)
    sec.add(
        paragraph(
            f"{data.get('n_users')} users, {data.get('n_windows')} windows of {data.get('window_seconds')} s each. "
            f"Chosen look-back: {data['lookback']} windows "
            f"({data['lookback'] * int(data.get('window_seconds', 300)) / 60:.0f} minutes): after it the pooled ACF "
            "of flow counts stays inside its 95% band."
            + (
                " The ACF is still outside the band at the last lag."
                if data["acf"]["n_flows"].get("lookback_saturated")
                else ""
            )
        ),
        figure(
            fig,
            "Autocorrelation per user (thin) and pooled (thick), with the 95% band of white noise.",
        ),
    )
    dt = data.get("dt_hour")
    if dt:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        hours = np.asarray(dt["hours"])
        q = {k: np.asarray(v, dtype=float) for k, v in dt["quantiles"].items()}
        ax.fill_between(hours, q["q05"], q["q95"], color="#4c72b0", alpha=0.15, label="5-95%")
        ax.fill_between(hours, q["q25"], q["q75"], color="#4c72b0", alpha=0.35, label="25-75%")
        ax.plot(hours, q["q50"], color="#1f3a73", label="median")
        ax.set_ylim(*dt["ylim"])
        ax.set_xlim(-0.5, 23.5)
        ax.set_xlabel("hour of day (UTC)")
        ax.set_ylabel("log1p(time delta, s)")
        ax.legend(fontsize=7)
        sec.heading("Time delta against hour of day").add(
            paragraph(
                f"Spearman correlation of hour and time delta: ρ = {dt['spearman_rho']:.3f} "
                f"(p = {dt['spearman_p']:.2g}, n = {dt['n']:,})."
                if dt.get("spearman_rho") is not None
                else "Spearman correlation undefined (too few flows)."
            ),
            figure(
                fig, "Per-hour distribution of the time to the host's previous flow (fixed y axis)."
            ),
        )
    return sec

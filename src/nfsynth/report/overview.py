"""Data overview of an ingested dataset: counts, protocols, device types, histograms, hours."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.compute as pc

from nfsynth.features.select import InternalFilter
from nfsynth.io.dataset import open_flows
from nfsynth.report.html import Section, figure, paragraph, table
from nfsynth.schema import proto_name

MANIFEST_COUNTS = [
    "lines_read",
    "header_lines",
    "rows_written",
    "rejected",
    "duplicates",
    "truncated_lines",
    "blocks_recovered",
    "bytes_lost_to_truncation",
]


def read_flow_columns(flows_dir: str | Path, columns: list[str], max_rows: int) -> pd.DataFrame:
    """Columns of the canonical table; a deterministic subsample (every k-th row) beyond
    ``max_rows``."""
    dataset = open_flows(flows_dir)
    n = dataset.count_rows()
    step = max(1, int(np.ceil(n / max_rows)))
    frames = []
    offset = 0
    for batch in dataset.to_batches(columns=columns):
        idx = np.arange((-offset) % step, batch.num_rows, step)
        offset += batch.num_rows
        if idx.size:
            frames.append(batch.take(idx).to_pandas())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def device_types(hosts: pd.Series, internal: list[str]) -> pd.Series:
    """A device's type: IP addresses as ``internal``/``external`` by the dataset's filter,
    named devices by their name without digits (``Comp123`` -> ``Comp``)."""
    text = hosts.astype(str)
    is_ip = text.str.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:.]*")
    kinds = text.str.replace(r"\d+$", "", regex=True).str.rstrip("-_")
    if is_ip.any():
        mask = InternalFilter(internal)(text[is_ip].to_numpy())
        kinds[is_ip] = np.where(mask, "internal IP", "external IP")
    return kinds.replace("", "(numeric)")


def manifest_table(manifest: dict) -> pd.DataFrame:
    """One row per input file with the manifest's counts."""
    rows = []
    for item in manifest.get("inputs", []):
        row = {"input": Path(item.get("path", "?")).name, "format": item.get("format", "")}
        row.update({k: item.get(k) for k in MANIFEST_COUNTS if k in item})
        rows.append(row)
    return pd.DataFrame(rows)


def overview_section(
    dataset: str, flows_dir: str | Path, internal: list[str], max_rows: int
) -> Section:
    """The overview section of one dataset."""
    manifest = json.loads((Path(flows_dir) / "manifest.json").read_text())
    totals = manifest.get("totals", {})
    flows_ds = open_flows(flows_dir)
    n_rows = flows_ds.count_rows()
    sec = Section(f"overview-{dataset}", f"Data overview: {dataset}")
    sec.add(
        paragraph(
            f"{n_rows:,} flows ingested from {len(manifest.get('inputs', []))} input file(s), "
            f"format {manifest.get('format', '?')}; lines read {totals.get('lines_read', '–')}, "
            f"rejected {totals.get('rejected', '–')}, duplicates {totals.get('duplicates', '–')}, "
            f"truncated lines {totals.get('truncated_lines', '–')}."
        )
    )
    mt = manifest_table(manifest)
    if len(mt):
        if len(mt) > 30:
            mt = pd.concat([mt.head(30), pd.DataFrame([{"input": f"... {len(mt) - 30} more"}])])
        sec.heading("Ingest manifest").add(
            table(mt, caption="Per input file: lines read and where they went.")
        )
    rejects = totals.get("rejects_by_reason") or {}
    if rejects:
        sec.add(
            table(
                pd.DataFrame({"reason": list(rejects), "lines": list(rejects.values())}),
                caption="Rejected lines by reason.",
            )
        )

    # protocol counts over the whole table (pyarrow group-by, no subsample)
    proto = (
        flows_ds.to_table(columns=["proto"])
        .group_by("proto")
        .aggregate([("proto", "count")])
        .to_pandas()
    )
    proto.columns = ["proto", "flows"]
    proto["protocol"] = proto["proto"].map(proto_name)
    proto = proto.sort_values("flows", ascending=False)
    proto["share"] = proto["flows"] / proto["flows"].sum()
    sec.heading("Protocols").add(
        table(proto[["protocol", "proto", "flows", "share"]], caption="Flows per IP protocol.")
    )

    # device types of sources and destinations
    hosts = flows_ds.to_table(columns=["src", "dst"])
    counts: dict[str, pd.Series] = {}
    for column in ("src", "dst"):
        vc = pc.value_counts(hosts[column].combine_chunks().dictionary_decode()).to_pandas()
        names = pd.Series([v["values"] for v in vc])
        n = pd.Series([v["counts"] for v in vc])
        counts[column] = n.groupby(device_types(names, internal).to_numpy()).sum()
    dev = (
        pd.DataFrame({"as source": counts["src"], "as destination": counts["dst"]})
        .fillna(0)
        .astype(int)
    )
    dev = dev.sort_values("as source", ascending=False).reset_index(names="device type")
    sec.heading("Device types").add(
        table(
            dev,
            caption="Flows by device type (names without their digits; IPs by the internal filter).",
        )
    )

    sample = read_flow_columns(flows_dir, ["ts", "duration", "packets", "bytes"], max_rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax, column, unit in zip(
        axes, ["bytes", "packets", "duration"], ["bytes", "packets", "seconds"], strict=True
    ):
        values = np.log10(1 + sample[column].to_numpy(dtype=float))
        ax.hist(values, bins=50, color="#4c72b0")
        ax.set_yscale("log")
        ax.set_xlabel(f"log10(1 + {unit})")
        ax.set_title(column)
    axes[0].set_ylabel("flows")
    sec.heading("Distributions").add(
        figure(
            fig,
            f"Log-scale histograms of bytes, packets and duration ({len(sample):,} flows shown).",
        )
    )
    hours = ((sample["ts"].to_numpy(dtype=float) % 86400) // 3600).astype(int)
    per_hour = np.bincount(hours, minlength=24)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(24), per_hour, color="#55a868")
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("flows")
    ax.set_xticks(range(0, 24, 2))
    sec.add(figure(fig, "Flows per hour of day, all days pooled."))
    return sec

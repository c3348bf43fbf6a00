"""Runtime and memory of every rule, from Snakemake's ``benchmark:`` files.

A benchmark file (``benchmarks/<rule>/<wildcards>.tsv``) is a TSV with columns ``s``
(wall seconds), ``h:m:s``, ``max_rss`` (MB), ``max_vms``, ``max_uss``, ``max_pss``, ``io_in``,
``io_out``, ``mean_load``, ``cpu_time``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def collect(bench_dir: str | Path) -> pd.DataFrame:
    """One row per benchmark file: ``rule, job, seconds, max_rss_mb, cpu_seconds``.

    ``job`` is the file name without ``.tsv`` (the rule's wildcards). Sorted by rule, job.
    Returns an empty frame (same columns) when there are no benchmark files.
    """
    rows = []
    for path in sorted(Path(bench_dir).glob("*/*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        last = frame.iloc[-1]
        rows.append(
            {
                "rule": path.parent.name,
                "job": path.stem,
                "seconds": float(last.get("s", float("nan"))),
                "max_rss_mb": pd.to_numeric(last.get("max_rss"), errors="coerce"),
                "cpu_seconds": pd.to_numeric(last.get("cpu_time"), errors="coerce"),
            }
        )
    columns = ["rule", "job", "seconds", "max_rss_mb", "cpu_seconds"]
    return pd.DataFrame(rows, columns=columns).sort_values(["rule", "job"], ignore_index=True)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Totals per rule: ``rule, jobs, total_seconds, max_seconds, max_rss_mb``, slowest first."""
    grouped = jobs.groupby("rule").agg(
        jobs=("job", "size"),
        total_seconds=("seconds", "sum"),
        max_seconds=("seconds", "max"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    return grouped.sort_values("total_seconds", ascending=False).reset_index()


#: Why the benchmark files' ``cpu_time`` is too low for a job longer than 15 s.
CPU_SAMPLING_NOTE = (
    "Snakemake samples a job's CPU every 0.5 s for its first 15 s, then every 30 s: a longer "
    "job's CPU seconds stop at its last sample."
)


def model_training_seconds(jobs: pd.DataFrame) -> pd.DataFrame:
    """Training job wall time per dataset and model (mean over seeds) from ``train`` jobs
    named ``{dataset}.{model}.seed{seed}``: columns ``dataset, model, train_seconds``.

    The benchmark files' ``cpu_time`` is left out: Snakemake samples a job's CPU every 0.5 s
    for its first 15 s, then every 30 s, so a 16-45 s job's CPU time stops at its 15 s value
    (every CTGAN, TVAE and neural training job showed 15.4-15.6 s alone, whose CPU by
    ``time`` was 18-25 s). ``model_fit_seconds`` has the fits' own CPU time."""
    columns = ["dataset", "model", "train_seconds"]
    train = jobs[jobs["rule"] == "train"].copy()
    if train.empty:
        return pd.DataFrame(columns=columns)
    parts = train["job"].str.extract(r"^(?P<dataset>[^.]+)\.(?P<model>[^.]+)\.seed\d+$")
    train = pd.concat([train, parts], axis=1).dropna(subset=["dataset", "model"])
    return train.groupby(["dataset", "model"], as_index=False).agg(
        train_seconds=("seconds", "mean")
    )


def model_fit_seconds(models_dirs: dict[str, Path]) -> pd.DataFrame:
    """The fits' own wall and CPU seconds (``training.json`` of every
    ``<models_dir>/<model>/seed<k>``, written by ``models.pipeline.train_model``), mean over
    seeds per dataset and model: columns ``dataset, model, fit_seconds, fit_cpu_seconds``
    (CPU: the training process, all threads; NaN where a file predates it)."""
    rows = []
    for dataset, models_dir in models_dirs.items():
        for path in sorted(Path(models_dir).glob("*/seed*/training.json")):
            info = json.loads(path.read_text())
            rows.append(
                {
                    "dataset": dataset,
                    "model": path.parent.parent.name,
                    "fit_seconds": float(info.get("fit_seconds", float("nan"))),
                    "fit_cpu_seconds": float(info.get("fit_cpu_seconds", float("nan"))),
                }
            )
    columns = ["dataset", "model", "fit_seconds", "fit_cpu_seconds"]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows).groupby(["dataset", "model"], as_index=False)[columns[2:]].mean()

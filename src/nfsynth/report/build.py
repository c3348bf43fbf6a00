"""Assemble ``results/report.html`` from the workflow's outputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from nfsynth import __version__
from nfsynth.evalspace import EvalSpace
from nfsynth.features.tables import UserTables
from nfsynth.metrics.common import subsample_hosts
from nfsynth.report import runtime
from nfsynth.report.fidelity import fidelity_section, load_samples
from nfsynth.report.html import Section, page, paragraph, table
from nfsynth.report.models import models_section
from nfsynth.report.overview import overview_section
from nfsynth.report.users import temporal_section, users_section

log = logging.getLogger(__name__)


@dataclass
class DatasetInputs:
    """The files of one dataset the report reads."""

    name: str
    flows_dir: Path
    users_dir: Path
    temporal: Path
    space: Path
    internal: list[str]
    samples: dict[str, Path] = field(default_factory=dict)


def runtime_section(bench_dir: str | Path) -> Section:
    """Runtime and peak memory of every rule, from the ``benchmark:`` files."""
    jobs = runtime.collect(bench_dir)
    sec = Section("runtime", "Runtime and memory of every rule")
    if jobs.empty:
        return sec.add(
            paragraph(
                "No benchmark files were found (the workflow writes them under benchmarks/).",
                "note",
            )
        )
    totals = runtime.per_rule(jobs)
    sec.add(
        paragraph(
            f"{len(jobs)} jobs, {jobs['seconds'].sum():.0f} s of job time in all (jobs may run in parallel). "
            "The report's own job is written after the report, so it is not listed."
        ),
        table(
            totals,
            caption="Per rule: number of jobs, total and longest wall seconds, largest peak RSS (MB).",
        ),
        table(
            jobs,
            caption="Every job: wall seconds, peak RSS (MB), CPU seconds. "
            + runtime.CPU_SAMPLING_NOTE,
        ),
    )
    return sec


def build_report(
    out_path: str | Path,
    datasets: list[DatasetInputs],
    summary_csv: str | Path,
    *,
    title: str = "nfsynth report",
    bench_dir: str | Path = "benchmarks",
    max_plot_rows: int = 200_000,
    extra_sections: list[Section] | None = None,
    surrogate_nll: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Write the self-contained report; returns counts (sections, datasets, bytes).

    ``surrogate_nll``: models whose ``nll_bits`` is a surrogate (no likelihood of their own).
    """
    t0 = time.perf_counter()
    summary = pd.read_csv(summary_csv)
    jobs = runtime.collect(bench_dir)
    train_seconds = runtime.model_training_seconds(jobs)
    fits = runtime.model_fit_seconds({ds.name: ds.users_dir.parent / "models" for ds in datasets})
    train_seconds = train_seconds.merge(fits, on=["dataset", "model"], how="outer")
    sections: list[Section] = []
    for ds in datasets:
        log.info("report: dataset %s", ds.name)
        sections.append(overview_section(ds.name, ds.flows_dir, ds.internal, max_plot_rows))
        sections.append(
            users_section(ds.name, ds.users_dir / "hosts.parquet", ds.users_dir / "split.json")
        )
        sections.append(temporal_section(ds.name, ds.temporal))
        sections.append(models_section(summary, ds.name, train_seconds, surrogate_nll))
        if ds.samples:
            space = EvalSpace.load(ds.space)
            real = subsample_hosts(UserTables.load(ds.users_dir).subset("test"), max_plot_rows // 4)
            samples = load_samples(ds.samples, ds.internal, max_plot_rows // 4)
            sections.append(fidelity_section(ds.name, space, real, samples))
    sections.extend(extra_sections or [])
    sections.append(runtime_section(bench_dir))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = page(
        title,
        sections,
        subtitle=f"nfsynth {__version__}; datasets: {', '.join(d.name for d in datasets)}; built {stamp}.",
    )
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text(html, encoding="utf-8")
    log.info(
        "report: %d sections, %d bytes, %.1f s", len(sections), len(html), time.perf_counter() - t0
    )
    return {"sections": len(sections), "datasets": len(datasets), "bytes": len(html)}

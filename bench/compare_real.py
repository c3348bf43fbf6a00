"""Models side by side on a real sample: the workflow's own train/sample/evaluate/summarize
jobs for one config, run in a scratch copy of the repository, and the model table printed.

The scratch copy holds ``Snakefile``, ``config/``, ``workflow/`` and ``data/`` (the package is
the venv's editable install); the target is ``results/metrics/summary.csv``, so the embedding
and report stages do not run. For each dataset the table gives, per model, the mean over seeds
(and the standard deviation) of the metrics the issues compare, with the best mark ``*``.

    .venv/bin/python bench/compare_real.py --configfile config/lanl2015.yaml
    .venv/bin/python bench/compare_real.py --configfile config/ugr16.yaml

A dataset path given relative to the repository that the copy does not hold (the shared
samples beside the checkout, ``../shared/data``) is passed to it as an absolute path.

Writes ``bench/results/real_<config stem>.json`` (the summary rows of those metrics, the
machine, versions, date and the wall time).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
METRICS = [
    "nll_bits",
    "jsd_mean",
    "jsd_hour_mean",
    "acf_mae",
    "trtr_acf_mae",
    "acf_mae_train",
    "rule_violations",
    "tstr_protocol_f1",
    "trtr_protocol_f1",
]


def scratch_copy(root: Path) -> None:
    """Copy what the workflow reads (not results, logs or the venv) into ``root``."""
    for name in ("Snakefile", "config", "workflow", "data", "profiles"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name)
        elif src.exists():
            shutil.copy2(src, root / name)


def scratch_config(config: Path, root: Path) -> Path:
    """``config`` as the scratch copy ``root`` reads it: a dataset ``path`` given relative to
    the repository that the copy does not hold (the shared samples beside the checkout,
    ``../shared/data``) made absolute. Returns the path of the copy's config file."""
    doc = yaml.safe_load(config.read_text()) or {}
    for name, dataset in (doc.get("datasets") or {}).items():
        path = (dataset or {}).get("path")
        if path and not Path(path).is_absolute() and not (root / path).exists():
            if not (REPO / path).exists():
                raise FileNotFoundError(f"{config}: datasets.{name}.path {path!r}: no such path")
            dataset["path"] = str((REPO / path).resolve())
    out = root / "config" / f"compare-{config.name}"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``METRICS``: one per (dataset, metric), columns ``model`` -> 'mean ± std'."""
    rows = summary[summary["metric"].isin(METRICS)]
    out = []
    for (dataset, metric), part in rows.groupby(["dataset", "metric"], sort=False):
        goal = part["goal"].iloc[0]
        models = part[part["model"] != "real"]
        best = (
            models.loc[models["mean"].idxmin() if goal == "min" else models["mean"].idxmax()]
            if models["mean"].notna().any()
            else None
        )
        row = {"dataset": dataset, "metric": metric, "goal": goal}
        for _, r in part.iterrows():
            std = "" if pd.isna(r["std"]) else f" ± {r['std']:.4f}"
            mark = "*" if best is not None and r["model"] == best["model"] else ""
            row[r["model"]] = f"{r['mean']:.4f}{std}{mark}"
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", required=True, help="config with the real dataset(s)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args(argv)
    config = Path(args.configfile).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="nfsynth-compare-"))
    try:
        scratch_copy(scratch)
        run_config = scratch_config(config, scratch)
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "results/metrics/summary.csv",
            "--cores",
            str(args.cores),
            "--configfile",
            str(run_config),
        ]
        print("running:", " ".join(cmd), f"(in {scratch})", flush=True)
        t0 = time.perf_counter()
        log = scratch / "snakemake.log"
        with open(log, "w") as handle:
            done = subprocess.run(cmd, cwd=scratch, stdout=handle, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            print(log.read_text()[-4000:], file=sys.stderr)
            print(f"snakemake failed ({done.returncode}); log: {log}", file=sys.stderr)
            args.keep = True
            return 1
        summary = pd.read_csv(scratch / "results/metrics/summary.csv")
        shown = table(summary)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(shown.to_string(index=False))
        print(f"wall time {seconds:.0f} s")
        out = HERE / "results" / f"real_{config.stem}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = summary[summary["metric"].isin(METRICS)].to_dict(orient="records")
        doc = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config),
            "seconds": round(seconds, 1),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "python": platform.python_version(),
            "versions": {
                p: importlib.metadata.version(p) for p in ("torch", "snakemake", "pandas")
            },
            "summary": rows,
        }
        out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"wrote {out}")
        return 0
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

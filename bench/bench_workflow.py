"""Workflow benchmark (issue 9): wall time of ``snakemake --cores 2 results/report.html`` on the
default config, from nothing, in a scratch copy of the repository.

The scratch copy holds ``Snakefile``, ``config/``, ``workflow/`` and ``data/`` (the package
itself is the venv's editable install, so the run uses this checkout's ``src``). In the same
run it measures three references, each a fresh child process timed by wall clock:

- ``python -c 'import nfsynth'`` (interpreter and package start-up, median of 3),
- ``nfsynth ingest --format ugr16 data/ugr16-sample`` (the shipped UGR'16 sample alone), and
- a fixed numpy and Python workload that does not run nfsynth's code (``CPU_REFERENCE``), so
  that a change to the ingest does not move the unit runs are compared in.

After the workflow it reads the ``benchmark:`` files (``nfsynth.report.runtime.collect`` and
``per_rule``): seconds, peak RSS and CPU seconds per job, totals per rule. It prints the
figures and writes ``bench/results/workflow.json`` (figures, machine, versions, date).

``--dry-run`` only plans the DAG (``snakemake --dry-run``) and prints the job counts; it
writes nothing under ``bench/results``.

Usage: ``.venv/bin/python bench/bench_workflow.py [--cores 2] [--dry-run] [--keep]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "workflow.json"
COPIED = ("Snakefile", "config", "workflow", "data")
TARGET = "results/report.html"


def scratch_copy(dest: Path) -> Path:
    """Copy what the workflow needs into ``dest`` (created); returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def timed(cmd: list[str], cwd: Path, log: Path | None = None) -> tuple[float, int]:
    """Run ``cmd`` in ``cwd``; (wall seconds, exit code). Output to ``log`` or discarded."""
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        return time.perf_counter() - t0, rc
    finally:
        if log:
            out.close()


#: One thread of sorting and Python arithmetic, about 1 s on the 2-core machine.
CPU_REFERENCE = (
    "import numpy as np; r = np.random.default_rng(0); "
    "[np.sort(r.random(2_000_000)) for _ in range(12)]; sum(i * i for i in range(8_000_000))"
)


def references(bin_dir: Path, work: Path) -> dict[str, float]:
    """Wall seconds of the three reference commands (see module docstring)."""
    python = str(bin_dir / "python")
    cpu = timed([python, "-c", CPU_REFERENCE], work)[0]
    starts = [timed([python, "-c", "import nfsynth"], work)[0] for _ in range(3)]
    out = work / "ref-ugr16"
    seconds, rc = timed(
        [
            str(bin_dir / "nfsynth"),
            "ingest",
            "--format",
            "ugr16",
            "data/ugr16-sample",
            "--out",
            str(out),
        ],
        work,
        work / "ref-ugr16.log",
    )
    if rc != 0:
        raise RuntimeError(f"reference ingest failed (exit {rc}); see {work / 'ref-ugr16.log'}")
    shutil.rmtree(out, ignore_errors=True)
    return {
        "import_nfsynth_s": statistics.median(starts),
        "ingest_ugr16_sample_s": seconds,
        "cpu_reference_s": cpu,
    }


def planned_jobs(text: str) -> dict[str, int]:
    """Jobs per rule from the ``Job stats`` table snakemake prints (``total`` included)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Job stats"):
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\S+)\s+(\d+)\s*$", line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif counts and not line.strip():
                break
    return counts


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in (
        "nfsynth",
        "snakemake",
        "torch",
        "pandas",
        "pyarrow",
        "numpy",
        "scikit-learn",
        "ctgan",
    ):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, object]:
    mem = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        m = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        mem = round(int(m.group(1)) / 2**20, 1) if m else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "mem_gib": mem,
        "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="plan only; write no results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    bin_dir = Path(sys.executable).parent
    snakemake = bin_dir / "snakemake"
    work = scratch_copy(args.work or Path(tempfile.mkdtemp(prefix="nfsynth-bench-workflow-")))
    print(f"scratch copy: {work}")
    try:
        if args.dry_run:
            proc = subprocess.run(
                [str(snakemake), "--cores", str(args.cores), "--dry-run", TARGET],
                cwd=work, capture_output=True, text=True,
            )  # fmt: skip
            text = proc.stdout + proc.stderr
            jobs = planned_jobs(text)
            print(text[-3000:] if proc.returncode else "")
            print(f"dry run: exit {proc.returncode}; jobs planned: {json.dumps(jobs)}")
            return proc.returncode

        load_before = machine()
        refs = references(bin_dir, work)
        print(f"references: {refs}")
        seconds, rc = timed(
            [str(snakemake), "--cores", str(args.cores), TARGET], work, work / "snakemake.log"
        )
        print(f"snakemake --cores {args.cores} {TARGET}: exit {rc}, {seconds:.1f} s")
        if rc != 0:
            print((work / "snakemake.log").read_text()[-3000:])
            return rc
        from nfsynth.report.runtime import CPU_SAMPLING_NOTE, collect, per_rule

        jobs = collect(work / "benchmarks")
        rules = per_rule(jobs)
        print(rules.to_string(index=False))
        result = {
            "benchmark": "workflow",
            "command": f"snakemake --cores {args.cores} {TARGET}",
            "config": "config/config.yaml (default)",
            "wall_seconds": seconds,
            "jobs": int(len(jobs)),
            "sum_job_seconds": float(jobs["seconds"].sum()),
            "note": "per_job cpu_seconds (not summed): " + CPU_SAMPLING_NOTE,
            "references": refs,
            "wall_in_reference_units": {k: seconds / v for k, v in refs.items() if v > 0},
            "per_rule": json.loads(rules.to_json(orient="records")),
            "per_job": json.loads(jobs.to_json(orient="records")),
            "machine": load_before,
            "versions": versions(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1))
        print(f"wrote {RESULTS}")
        return 0
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

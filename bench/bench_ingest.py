"""Ingest benchmark (issue 9): ``nfsynth ingest`` of a cut LANL-2017 ``.bz2`` against lbzip2.

Generates LANL-format day files of 2 million rows (1x) and 8 million rows (4x) with numpy and
pyarrow, compresses them with ``bzip2 -9`` and cuts 5,000 bytes off the end (as the real day
files are cut), cached under ``bench/work/``. Then, in the same run, times

- ``lbzip2 -dc -n 2 FILE > /dev/null`` (the decompression floor), and
- ``nfsynth ingest --format lanl2017 FILE --out DIR`` end to end (a subprocess),

each as a fresh child measured with ``resource.getrusage(RUSAGE_CHILDREN)`` for peak RSS
(the largest process of the child's tree). Prints the figures and writes
``bench/results/ingest.json``. Target: ingest <= 1.5x lbzip2, peak RSS < 1 GiB and flat
from 1x to 4x. Needs ``lbzip2`` (``apt-get install -y lbzip2``) and ``bzip2``.

Usage: ``.venv/bin/python bench/bench_ingest.py [--repeats 3] [--rows 2000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("NFSYNTH_BENCH_WORK", HERE / "work"))
RESULTS = HERE / "results" / "ingest.json"
CUT_BYTES = 5000
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "out = open(sys.argv[1], 'wb')\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.call(sys.argv[2:], stdout=out)\n"
    "dt = time.perf_counter() - t\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, dt, r.ru_maxrss, r.ru_utime + r.ru_stime)\n"
)


def lanl_text(rows: int, seed: int) -> pa.Table:
    """A LANL-2017-format table of ``rows`` flows over one day (sorted times, 63 bytes/row)."""
    rng = np.random.default_rng(seed)
    devices = np.array([f"Comp{i:06d}" for i in rng.integers(0, 999_999, 20_000)])
    ports = np.array([f"Port{i:05d}" for i in range(100_000)] + ["80", "443", "53", "445"])
    well_known = np.array(["80", "443", "53", "445", "389", "88", "135", "3389"])
    src = devices[rng.zipf(1.3, rows) % len(devices)]
    dst = devices[rng.zipf(1.3, rows) % len(devices)]
    proto = rng.choice(np.array([6, 17, 1]), rows, p=[0.7, 0.25, 0.05])
    pkts = rng.geometric(0.05, (2, rows)) - 1
    return pa.table(
        {
            "Time": np.sort(rng.integers(86_400, 2 * 86_400, rows)),
            "Duration": rng.geometric(0.02, rows) - 1,
            "SrcDevice": src,
            "DstDevice": dst,
            "Protocol": proto,
            "SrcPort": ports[rng.integers(0, len(ports), rows)],
            "DstPort": np.where(
                rng.random(rows) < 0.6,
                well_known[rng.integers(0, len(well_known), rows)],
                ports[rng.integers(0, len(ports), rows)],
            ),
            "SrcPackets": pkts[0],
            "DstPackets": pkts[1],
            "SrcBytes": pkts[0] * rng.integers(40, 1500, rows),
            "DstBytes": pkts[1] * rng.integers(40, 1500, rows),
        }
    )


def make_archive(rows: int, path: Path) -> Path:
    """Cached cut ``.bz2`` of ``rows`` LANL rows (``bzip2 -9``, last 5,000 bytes cut off)."""
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    csv_path = path.with_suffix(".csv")
    with open(csv_path, "wb") as out:
        step = 1_000_000
        for i, start in enumerate(range(0, rows, step)):
            table = lanl_text(min(step, rows - start), seed=start)
            buf = pa.BufferOutputStream()
            pa_csv.write_csv(
                table, buf, pa_csv.WriteOptions(include_header=False, quoting_style="none")
            )
            out.write(buf.getvalue().to_pybytes())
            print(f"  generated {start + table.num_rows:,} rows", file=sys.stderr, flush=i % 4 == 0)
    full = csv_path.with_suffix(".csv.bz2")
    subprocess.run(["bzip2", "-9", "-k", "-f", str(csv_path)], check=True)
    size = full.stat().st_size
    with open(full, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(size - CUT_BYTES))
    full.unlink()
    csv_path.unlink()
    return path


def measure(cmd: list[str], stdout: str = os.devnull) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of ``cmd`` run as a fresh child tree."""
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, stdout, *cmd], check=True, capture_output=True, text=True
    )
    rc, wall, maxrss_kib, cpu = res.stdout.split()
    return {
        "rc": int(rc),
        "seconds": float(wall),
        "cpu_seconds": float(cpu),
        "peak_rss_mib": int(maxrss_kib) / 1024,
    }


def bench(archive: Path, repeats: int) -> dict:
    script = Path(sys.executable).with_name("nfsynth")
    nfsynth = [str(script)] if script.exists() else [sys.executable, "-m", "nfsynth.cli"]
    out_dir = WORK / "out"
    runs = {"lbzip2": [], "ingest": []}
    for _ in range(repeats):
        runs["lbzip2"].append(measure(["lbzip2", "-dc", "-n", "2", str(archive)]))
        shutil.rmtree(out_dir, ignore_errors=True)
        runs["ingest"].append(
            measure(
                [*nfsynth, "ingest", "--format", "lanl2017", str(archive), "--out", str(out_dir)]
            )
        )
        if runs["ingest"][-1]["rc"] != 0:
            raise SystemExit(f"nfsynth ingest failed on {archive}")
    manifest = json.loads((out_dir / "manifest.json").read_text())["inputs"][0]
    med = {k: sorted(r["seconds"] for r in v)[len(v) // 2] for k, v in runs.items()}
    return {
        "file": archive.name,
        "compressed_mb": round(archive.stat().st_size / 1e6, 2),
        "rows": manifest["rows_written"],
        "text_mb": round(manifest["text_bytes"] / 1e6, 1),
        "blocks_recovered": manifest["blocks_recovered"],
        "truncated_lines": manifest["truncated_lines"],
        "lbzip2_seconds": round(med["lbzip2"], 3),
        "ingest_seconds": round(med["ingest"], 3),
        "ratio": round(med["ingest"] / med["lbzip2"], 3),
        "ingest_rows_per_s": round(manifest["rows_written"] / med["ingest"]),
        "ingest_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs["ingest"]), 1),
        "lbzip2_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs["lbzip2"]), 1),
        "lbzip2_cpu_seconds": round(
            sorted(r["cpu_seconds"] for r in runs["lbzip2"])[repeats // 2], 2
        ),
        "ingest_cpu_seconds": round(
            sorted(r["cpu_seconds"] for r in runs["ingest"])[repeats // 2], 2
        ),
        "runs": runs,
    }


def _version(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        return (res.stdout or res.stderr).splitlines()[0].strip()
    except (OSError, IndexError):
        return "missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    if shutil.which("lbzip2") is None:
        raise SystemExit("lbzip2 is not installed: apt-get install -y lbzip2")
    results = []
    for scale in (1, 4):
        archive = make_archive(args.rows * scale, WORK / f"netflow_{args.rows * scale}.bz2")
        r = bench(archive, args.repeats)
        r["scale"] = scale
        results.append(r)
        print(
            f"{scale}x: {r['rows']:,} rows, {r['text_mb']} MB text, {r['compressed_mb']} MB bz2 | "
            f"lbzip2 {r['lbzip2_seconds']:.2f} s | ingest {r['ingest_seconds']:.2f} s "
            f"(ratio {r['ratio']:.2f}, {r['ingest_rows_per_s']:,} rows/s) | "
            f"peak RSS ingest {r['ingest_peak_rss_mib']:.0f} MiB"
        )
    import pyarrow

    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "versions": {
            "python": platform.python_version(),
            "pyarrow": pyarrow.__version__,
            "numpy": np.__version__,
            "lbzip2": _version(["lbzip2", "--version"]),
            "bzip2": _version(["bzip2", "--help"]),
        },
        "target": {"ratio_max": 1.5, "peak_rss_mib_max": 1024},
        "results": results,
        "rss_growth_1x_to_4x": round(
            results[1]["ingest_peak_rss_mib"] / results[0]["ingest_peak_rss_mib"], 3
        ),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"ratio 1x {results[0]['ratio']:.2f}, 4x {results[1]['ratio']:.2f}; "
          f"RSS 1x {results[0]['ingest_peak_rss_mib']:.0f} MiB, 4x {results[1]['ingest_peak_rss_mib']:.0f} MiB "
          f"-> {args.results}")  # fmt: skip


if __name__ == "__main__":
    main()

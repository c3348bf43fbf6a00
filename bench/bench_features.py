"""Benchmark of the feature stage: host counting, user tables, rolling statistics, windows.

Builds a synthetic canonical flow table with numpy (1x = 1M flows, 4x = 4M flows, 3 days,
200 internal workstations, 2000 external peers), writes it as the day-partitioned Parquet
dataset ingest writes, and times each step in a fresh subprocess per scale (so the peak RSS of
each scale is its own). The reference, measured in the same run on the same rows, is a plain
pandas ``groupby([user, window]).size()``; the ratio printed is the step's rows/s over the
reference's rows/s. ``windows`` aggregates the in-memory user table; ``windows_from_file`` is
what rule ``windows`` does (stream the shard's Parquet file, then aggregate). CPU seconds are
reported beside wall seconds because the 2 cores may be shared.

Usage: ``.venv/bin/python bench/bench_features.py [--scales 1 4] [--base 1000000]``;
writes ``bench/results/features.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from nfsynth.features.rolling import rolling_stats
from nfsynth.features.select import count_hosts
from nfsynth.features.userflows import derive_features, read_user_flows, write_user_flows
from nfsynth.features.windows import aggregate, grid, window_index, windows_from_file
from nfsynth.schema import CANONICAL_SCHEMA

OUT = Path(__file__).parent / "results" / "features.json"


def make_table(n: int, seed: int = 0, days: int = 3) -> pa.Table:
    """``n`` canonical flows: workstations Comp0..199 talk to IP0..1999 and each other."""
    rng = np.random.default_rng(seed)
    comps = np.array([f"Comp{i}" for i in range(200)])
    ext = np.array([f"IP{i}" for i in range(2000)])
    ws = comps[np.minimum(rng.zipf(1.3, n) - 1, 199)]
    peer = np.where(
        rng.random(n) < 0.8, ext[rng.integers(0, 2000, n)], comps[rng.integers(0, 200, n)]
    )
    outgoing = rng.random(n) < 0.7
    ts = np.sort(rng.uniform(0, days * 86400.0, n))
    packets = rng.geometric(0.1, n).astype(np.int64)
    cols = {
        "ts": ts,
        "duration": rng.exponential(2.0, n),
        "src": pa.array(np.where(outgoing, ws, peer)).dictionary_encode(),
        "dst": pa.array(np.where(outgoing, peer, ws)).dictionary_encode(),
        "proto": rng.choice(np.array([6, 17, 1], np.uint8), n, p=[0.7, 0.25, 0.05]),
        "sport": pa.array(
            np.char.add("Port", rng.integers(0, 3000, n).astype(str))
        ).dictionary_encode(),
        "dport": pa.array(rng.choice(["80", "443", "53", "445", "22"], n)).dictionary_encode(),
        "packets": packets,
        "bytes": packets * rng.integers(40, 1500, n),
        "rev_packets": packets,
        "rev_bytes": packets * 60,
    }
    table = pa.table(cols, schema=CANONICAL_SCHEMA)
    day = np.asarray(np.floor(ts / 86400).astype("datetime64[D]"), str)
    return table.append_column("day", pa.array(day))


def timed(fn, name: str, cpu: dict[str, float]):
    """(result, wall seconds) of ``fn()``; its CPU seconds go to ``cpu[name]``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    cpu[name] = time.process_time() - c0
    return out, time.perf_counter() - t0


def run_scale(n: int) -> dict:
    """Time every step on ``n`` flows (runs inside the child process)."""
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        table = make_table(n)
        root = Path(tmp) / "flows"
        ds.write_dataset(table, root, format="parquet", partitioning=["day"],
                         partitioning_flavor="hive")  # fmt: skip
        del table
        counts, t_count = timed(lambda: count_hosts(root, ["Comp*"]), "count_hosts", cpu)
        users = counts["user"].tolist()
        raw, t_read = timed(lambda: read_user_flows(root, users), "user_tables_read", cpu)
        flows, t_derive = timed(
            lambda: derive_features(raw, internal=["Comp*"], rolling_seconds=None),
            "user_tables_derive",
            cpu,
        )
        raw = None  # free it before the next steps
        m = len(flows)
        codes = pd.factorize(flows["user"])[0]
        ts = flows["ts"].to_numpy()
        vals = {"packets": flows["packets"].to_numpy(), "bytes": flows["bytes"].to_numpy()}
        _, t_roll = timed(lambda: rolling_stats(codes, ts, vals, [1, 10, 60]), "rolling", cpu)
        fw, lw = grid(ts.min(), ts.max(), 300)
        win, t_win = timed(lambda: aggregate(flows, users, fw, lw, 300), "windows", cpu)
        assert int(win["n_flows"].sum()) == m
        shard = Path(tmp) / "shard-0.parquet"
        write_user_flows(flows, shard)
        _, t_file = timed(
            lambda: windows_from_file(shard, users, fw, lw, 300), "windows_from_file", cpu
        )

        def reference():
            frame = pd.DataFrame({"user": flows["user"], "win": window_index(ts, 300)})
            return frame.groupby(["user", "win"]).size()

        _, t_ref = timed(reference, "reference_pandas_groupby", cpu)
        ref_rate = m / t_ref
        cpu["user_tables"] = cpu["user_tables_read"] + cpu["user_tables_derive"]
        steps = {
            "count_hosts": (n, t_count),
            "user_tables": (n, t_read + t_derive),
            "user_tables_read": (n, t_read),
            "user_tables_derive": (m, t_derive),
            "rolling": (m, t_roll),
            "windows": (m, t_win),
            "windows_from_file": (m, t_file),
            "reference_pandas_groupby": (m, t_ref),
        }
        ref_cpu_rate = m / cpu["reference_pandas_groupby"]
        result = {
            "flows": n,
            "user_rows": m,
            "users": len(users),
            "steps": {
                k: {
                    "rows": r,
                    "seconds": round(t, 4),
                    "cpu_seconds": round(cpu[k], 4),
                    "rows_per_s": round(r / t),
                    "rows_per_cpu_s": round(r / cpu[k]),
                    "ratio_to_reference": round((r / t) / ref_rate, 3),
                    "cpu_ratio_to_reference": round((r / cpu[k]) / ref_cpu_rate, 3),
                }
                for k, (r, t) in steps.items()
            },
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_scale(args.child)))
        return
    runs = {}
    for scale in args.scales:
        n = scale * args.base
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)], check=True,
                              capture_output=True, text=True)  # fmt: skip
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        runs[f"{scale}x"] = res
        print(
            f"{scale}x: {n} flows, {res['user_rows']} user rows, peak RSS {res['peak_rss_mb']} MB"
        )
        for step, s in res["steps"].items():
            print(
                f"  {step:26s} {s['rows_per_s']:>11,d} rows/s {s['rows_per_cpu_s']:>11,d} /CPU s"
                f"  {s['seconds']:7.3f} s  x{s['ratio_to_reference']:.2f} of reference"
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__}  # fmt: skip
    OUT.write_text(json.dumps({"info": info, "runs": runs}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

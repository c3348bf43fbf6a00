"""Benchmark of the feature stage per workflow job: host counting, one shard's user table, its windows.

Each job runs the function its rule runs, in a fresh subprocess, and reports its own peak RSS
(``VmHWM`` of ``/proc/self/status`` in the child) beside the RSS after imports:

- ``select_users``: ``select.select_users`` over the whole canonical table (counting streams);
- ``user_flows``: ``userflows.build_user_flows`` of shard 0 (scans the whole table, keeps the
  shard's users, derives the features and the rolling statistics, writes the shard);
- ``windows``: ``windows.build_windows`` of shard 0 (streams the shard's Parquet file).

Inputs (numpy, ``make_table``): the 1x table has ``--base`` flows (1M) over 3 days between 400
internal workstations (flow share per host lognormal) and 4000 external peers; 100 users per
shard (``users.shards`` = hosts / 100), every internal host selected. Two ways to grow it 4x:

- ``hosts``: 4x hosts and peers, same days, 4x shards: a shard has as many users and flows as
  at 1x, so ``user_flows`` and ``windows`` should stay flat (``user_flows`` still scans 4x rows);
- ``days``: same hosts, 4x days, same shards: every user has 4x flows, so the shard's table is
  4x larger. ``user_flows`` holds at most ``users.max_rows_in_memory`` user rows
  (``MAX_ROWS_IN_MEMORY`` here: the 1x shard fits in one group, the 4x shard goes in 4 groups
  of users through one spill to disk), so its memory stays flat; ``windows`` holds one row
  group (batches cut at (user, window) cells) plus the output grid (users x windows x 11
  int64, 4x with 4x days: 100 users x 12 days x 288 windows is 30 MB).

Rates: rows per wall second and per CPU second (the 2 cores are shared), and the ratio to a
reference measured in the same child on the same rows after the job: a plain pandas
``groupby(...).size()`` (``src`` for ``select_users``; ``[user, 5-minute window]`` for the
shard's user rows). ``rolling`` is ``rolling.rolling_stats`` on the shard's user rows (also
inside ``user_flows``).

Usage: ``.venv/bin/python bench/bench_features.py [--base 1000000]``; writes
``bench/results/features.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from nfsynth.io.dataset import open_flows
from nfsynth.schema import CANONICAL_SCHEMA

OUT = Path(__file__).parent / "results" / "features.json"
HOSTS, PEERS, DAYS, USERS_PER_SHARD = 400, 4000, 3, 100
MAX_ROWS_IN_MEMORY = 400_000  # users.max_rows_in_memory: the 1x shard (~317k rows) in one group
INTERNAL = ["Comp*"]
ROLLING = [1.0, 10.0, 60.0]


def make_table(n: int, hosts: int, peers: int, days: int, seed: int = 0) -> pa.Table:
    """``n`` canonical flows over ``days`` days: workstations ``Comp*`` talk to ``IP*`` and each
    other (80% / 20%); a host's share of flows is lognormal(0, 1), so the per-host distribution
    does not depend on ``hosts``. Adds the ``day`` column (``YYYY-MM-DD``)."""
    rng = np.random.default_rng(seed)
    comps = np.array([f"Comp{i}" for i in range(hosts)])
    ext = np.array([f"IP{i}" for i in range(peers)])
    share = rng.lognormal(0.0, 1.0, hosts)
    ws = comps[np.searchsorted(np.cumsum(share / share.sum()), rng.random(n)).clip(0, hosts - 1)]
    peer = np.where(
        rng.random(n) < 0.8, ext[rng.integers(0, peers, n)], comps[rng.integers(0, hosts, n)]
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


def write_flows(root: Path, n: int, hosts: int, peers: int, days: int) -> None:
    """The day-partitioned dataset ingest writes, with a ``manifest.json`` (first/last ts)."""
    table = make_table(n, hosts, peers, days)
    ds.write_dataset(table, root, format="parquet", partitioning=["day"],
                     partitioning_flavor="hive", max_rows_per_group=1 << 18)  # fmt: skip
    ts = table.column("ts").to_numpy()
    meta = {"rows": n, "first_ts": float(ts.min()), "last_ts": float(ts.max())}
    (root / "manifest.json").write_text(json.dumps(meta))


def memory_mb() -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of this process, MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def rate(rows: int, wall: float, cpu: float, ref: tuple[float, float]) -> dict:
    """Rows/s (wall and CPU) and their ratios to the reference's (rows/s wall, rows/s CPU)."""
    return {
        "rows": int(rows),
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "rows_per_s": round(rows / wall),
        "rows_per_cpu_s": round(rows / cpu),
        "ratio_to_reference": round(rows / wall / ref[0], 3),
        "cpu_ratio_to_reference": round(rows / cpu / ref[1], 3),
    }


def clock(fn):
    """(result, wall s, CPU s) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def user_win_reference(user: pd.Series, ts: np.ndarray) -> tuple[float, float]:
    """Rows/s (wall, CPU) of a plain pandas ``groupby([user, window]).size()``."""
    frame = pd.DataFrame({"user": user, "win": np.floor(ts / 300.0).astype(np.int64)})
    _, wall, cpu = clock(lambda: frame.groupby(["user", "win"]).size())
    return len(frame) / wall, len(frame) / max(cpu, 1e-9)


def job(name: str, data: Path, work: Path, shards: int) -> dict:
    """Run one job in this (fresh) process; the peak RSS is read right after the rule's call."""
    base = memory_mb()["VmRSS"]
    hosts_path, split_path = work / "hosts.parquet", work / "split.json"
    shard_path = work / "flows" / "shard-0.parquet"
    result: dict = {"rss_after_imports_mb": base}
    if name == "select_users":
        from nfsynth.features.select import select_users

        hosts, wall, cpu = clock(
            lambda: select_users(
                data,
                hosts_path,
                split_path,
                internal=INTERNAL,
                top_n=10**6,
                min_flows=1,
                shards=shards,
            )  # fmt: skip
        )
        result["peak_rss_mb"] = memory_mb()["VmHWM"]
        n = json.loads((data / "manifest.json").read_text())["rows"]
        src = open_flows(data).to_table(columns=["src"]).column("src").to_pandas()
        _, rw, rc = clock(lambda: src.groupby(src, observed=True).size())
        ref = (n / rw, n / max(rc, 1e-9))
        result["users"] = len(hosts)
        result["steps"] = {"count_hosts": rate(n, wall, cpu, ref),
                           "reference_pandas_groupby": rate(n, rw, rc, ref)}  # fmt: skip
    elif name == "user_flows":
        from nfsynth.features.rolling import rolling_stats
        from nfsynth.features.userflows import build_user_flows

        split = json.loads(split_path.read_text())
        stats, wall, cpu = clock(
            lambda: build_user_flows(
                data, hosts_path, split, 0, shard_path, ROLLING, max_rows=MAX_ROWS_IN_MEMORY
            )
        )
        result["peak_rss_mb"] = memory_mb()["VmHWM"]
        result["groups"] = stats["groups"]
        n = json.loads((data / "manifest.json").read_text())["rows"]
        table = pq.read_table(shard_path, columns=["user", "ts", "packets", "bytes"]).to_pandas()
        m = len(table)
        ts = table["ts"].to_numpy()
        codes = pd.factorize(table["user"])[0]
        vals = {"packets": table["packets"].to_numpy(), "bytes": table["bytes"].to_numpy()}
        _, r_wall, r_cpu = clock(lambda: rolling_stats(codes, ts, vals, ROLLING))
        ref = user_win_reference(table["user"], ts)
        result["user_rows"] = m
        result["shard_file_mb"] = round(shard_path.stat().st_size / 2**20, 1)
        result["peak_rss_per_user_row_bytes"] = round(
            (result["peak_rss_mb"] - base) * 2**20 / max(m, 1)
        )
        result["steps"] = {
            "user_tables_per_flow_scanned": rate(n, wall, cpu, ref),
            "user_tables_per_user_row": rate(m, wall, cpu, ref),
            "rolling": rate(m, r_wall, r_cpu, ref),
            "reference_pandas_groupby": rate(m, m / ref[0], m / ref[1], ref),
        }
    elif name == "windows":
        from nfsynth.features.select import read_hosts, time_range
        from nfsynth.features.windows import build_windows

        hosts, _ = read_hosts(hosts_path)
        users = hosts.loc[hosts["shard"] == 0, "user"].tolist()
        first_ts, last_ts = time_range(data)
        frame, wall, cpu = clock(
            lambda: build_windows(
                shard_path,
                work / "windows" / "shard-0.parquet",
                work / "windows" / "meta-0.json",
                first_ts,
                last_ts,
                300,
                36,
                users,
                0,
            )  # fmt: skip
        )
        result["peak_rss_mb"] = memory_mb()["VmHWM"]
        m = int(frame["n_flows"].sum())
        rows = pq.read_table(shard_path, columns=["user", "ts"])
        ref = user_win_reference(rows.column("user").to_pandas(), rows.column("ts").to_numpy())
        result["user_rows"] = m
        result["window_rows"] = len(frame)
        result["steps"] = {
            "windows": rate(m, wall, cpu, ref),
            "reference_pandas_groupby": rate(m, m / ref[0], m / ref[1], ref),
        }
    result["peak_rss_above_imports_mb"] = round(result["peak_rss_mb"] - base, 1)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    return result


def run_child(name: str, data: Path, work: Path, shards: int) -> dict:
    cmd = [sys.executable, __file__, "--job", name, "--data", str(data), "--work", str(work),
           "--shards", str(shards)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job is not None:
        print(json.dumps(job(args.job, args.data, args.work, args.shards)))
        return
    cases = {  # name: (flows, hosts, peers, days)
        "1x": (args.base, HOSTS, PEERS, DAYS),
        "4x_hosts": (4 * args.base, 4 * HOSTS, 4 * PEERS, DAYS),
        "4x_days": (4 * args.base, HOSTS, PEERS, 4 * DAYS),
    }
    runs: dict = {}
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for case, (n, hosts, peers, days) in cases.items():
            data, work = Path(tmp) / case / "flows", Path(tmp) / case / "users"
            write_flows(data, n, hosts, peers, days)
            shards = hosts // USERS_PER_SHARD
            runs[case] = {"flows": n, "hosts": hosts, "days": days, "shards": shards,
                          "users_per_shard": USERS_PER_SHARD, "jobs": {}}  # fmt: skip
            for name in ("select_users", "user_flows", "windows"):
                res = run_child(name, data, work, shards)
                runs[case]["jobs"][name] = res
                first = next(iter(res["steps"].values()))
                print(f"{case:9s} {name:13s} peak RSS {res['peak_rss_mb']:7.1f} MB"
                      f" (imports {res['rss_after_imports_mb']:.0f})"
                      f" {first['rows_per_s']:>11,d} rows/s x{first['ratio_to_reference']:.2f}"
                      f" of reference, load {res['load_average_1min']}")  # fmt: skip
                for step, s in list(res["steps"].items())[1:]:
                    print(f"{'':24s}{step:30s} {s['rows_per_s']:>11,d} rows/s"
                          f" {s['rows_per_cpu_s']:>11,d} /CPU s")  # fmt: skip
            shutil_rm(Path(tmp) / case)
    ratios = {
        growth: {
            name: {
                "peak_rss": round(
                    runs[growth]["jobs"][name]["peak_rss_mb"]
                    / runs["1x"]["jobs"][name]["peak_rss_mb"],
                    2,
                ),
                "peak_rss_above_imports": round(
                    runs[growth]["jobs"][name]["peak_rss_above_imports_mb"]
                    / runs["1x"]["jobs"][name]["peak_rss_above_imports_mb"],
                    2,
                ),
            }  # fmt: skip
            for name in ("select_users", "user_flows", "windows")
        }
        for growth in ("4x_hosts", "4x_days")
    }
    print("peak RSS ratios to 1x:", json.dumps(ratios))
    info = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "numpy": np.__version__, "pandas": pd.__version__,
            "pyarrow": pa.__version__, "load_average_at_start": [round(x, 2) for x in load_start],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - t_start, 1)}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"info": info, "peak_rss_ratio_to_1x": ratios, "runs": runs},
                              indent=1))  # fmt: skip
    print(f"wrote {OUT}")


def shutil_rm(path: Path) -> None:
    """Remove a case's files once its jobs ran (keeps /tmp small)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()

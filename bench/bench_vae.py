"""Peak memory of the sequential VAE at 1x and 4x the number of batches (same batch size).

Usage: ``.venv/bin/python bench/bench_vae.py [--batch-rows 20000] [--base-days 5]``

Makes user-flow shards of ``base_days`` and ``4 * base_days`` days (one batch of
``batch_rows`` flows a day, random LANL-like flows of 24 users through
``features.userflows.derive_features``), then runs, each in a fresh child process:

- ``sequential``: ``nfsynth.embed.vae.run_vae`` (day batches streamed with pyarrow, checkpoint
  per batch, codes spilled to Parquet, densities fitted on a bounded reservoir);
- ``reference``: the same VAE fed the whole table at once (``read_flows`` of every shard,
  one ``transform``, ``fit_epochs`` over all rows), the way an in-memory job would do it.

Each child reports its peak resident memory (``VmHWM``), its resident memory after imports and
a warm-up step (baseline) and its wall time; the shards are made in a child too, so the parent
stays small. Writes ``bench/results/vae.json``:
``{"machine", "torch_threads", "batch_rows", "runs": [{"mode", "scale", "days", "rows",
"batches", "peak_mb", "baseline_mb", "growth_mb", "seconds", "rss_after_batch_mb"}],
"ratio_4x_over_1x":
{"sequential": float, "reference": float}}`` (ratios of ``growth_mb``). ``rss_after_batch_mb``:
the child's ``VmRSS`` over baseline as each streamed batch is handed out (the encoder's first
rows, pass 1, pass 2; empty for the reference): it levels off after the first batches.
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

HERE = Path(__file__).resolve().parent
THREADS = 1
#: Row group size of the bench's user-flow shards: the unit Parquet is read in, so the bound on
#: a streaming reader's memory (features.userflows writes 1 << 20).
ROW_GROUP_ROWS = 1 << 14


def _status_mb(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process from /proc, in MiB.

    (``ru_maxrss`` would not do: after fork and exec it keeps the parent's peak.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/self/status")


def make_shards(root: Path, days: int, rows_per_day: int, seed: int = 0) -> None:
    """Random user flows of ``days`` days in two shards (flows + windows), split by day."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nfsynth.features.tables import UserTables
    from nfsynth.features.userflows import derive_features

    rng = np.random.default_rng(seed)
    users = np.array([f"Comp{i:03d}" for i in range(24)])
    peers = np.array([f"IP{i}" for i in range(400)] + ["ActiveDirectory", "DNS01", "Mail"])
    ports = np.array(
        ["443", "80", "53", "445", "389", "88", "22"] + [f"Port{i:05d}" for i in range(50)]
    )
    all_days = [str(np.datetime64(d, "D")) for d in range(days)]
    n_train = max(1, int(days * 0.6))
    n_val = max(1, int(days * 0.2))
    split = {"mode": "days", "train": all_days[:n_train],
             "val": all_days[n_train:n_train + n_val], "test": all_days[n_train + n_val:]}  # fmt: skip
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "windows").mkdir(parents=True, exist_ok=True)
    n = days * rows_per_day
    pk = rng.integers(1, 60, n)
    df = pd.DataFrame(
        {
            "ts": np.sort(rng.uniform(0, days * 86400.0, n)).round(),
            "duration": rng.exponential(5.0, n).round(),
            "src": users[rng.integers(0, len(users), n)],
            "dst": peers[rng.integers(0, len(peers), n)],
            "proto": rng.choice(np.array([6, 17, 1], np.uint8), n, p=[0.8, 0.18, 0.02]),
            "sport": ports[rng.integers(0, len(ports), n)],
            "dport": ports[rng.integers(0, len(ports), n)],
            "packets": pk,
            "bytes": (pk * rng.lognormal(5, 1, n)).astype(np.int64),
            "rev_packets": pk,
            "rev_bytes": (pk * rng.lognormal(6, 1, n)).astype(np.int64),
        }
    )
    df["user"], df["direction"] = df["src"], "out"
    flows = derive_features(df, internal=["Comp*", "ActiveDirectory", "DNS*", "Mail"], split=split)
    tables = UserTables.from_frames(flows, split=split)
    for k in range(2):
        mine = sorted(flows["user"].unique())[k::2]
        f = tables.flows[tables.flows["user"].isin(mine)]
        w = tables.windows[tables.windows["user"].isin(mine)]
        pq.write_table(
            pa.Table.from_pandas(f, preserve_index=False),
            root / "flows" / f"shard-{k}.parquet",
            row_group_size=ROW_GROUP_ROWS,
        )
        pq.write_table(
            pa.Table.from_pandas(w, preserve_index=False),
            root / "windows" / f"shard-{k}.parquet",
            row_group_size=ROW_GROUP_ROWS,
        )


def child(mode: str, data: Path, params: dict) -> dict:
    """Run one mode on the shards under ``data``; returns the measurements."""
    import numpy as np
    import torch

    from nfsynth.embed import vae as vae_module
    from nfsynth.embed.autoencoder import fit_epochs
    from nfsynth.embed.data import read_flows, read_windows, schema_names
    from nfsynth.embed.encoding import CONTEXT_FEATURES, FlowEncoder, read_columns
    from nfsynth.embed.nets import FlowAutoencoder
    from nfsynth.embed.vae import run_vae

    torch.set_num_threads(THREADS)
    flow_paths = sorted(str(p) for p in (data / "flows").glob("shard-*.parquet"))
    win_paths = sorted(str(p) for p in (data / "windows").glob("shard-*.parquet"))
    # Warm torch up (its first optimizer step imports and allocates) before the baseline.
    warm = FlowAutoencoder([3], 2, 2, "deep", variational=True)
    torch.optim.Adam(warm.parameters()).step()
    baseline = _status_mb("VmRSS")
    trace: list[float] = []
    stream = vae_module.iter_batches

    def traced(*args, **kwargs):  # VmRSS (growth over baseline) as each batch is handed out
        for df in stream(*args, **kwargs):
            trace.append(round(_status_mb("VmRSS") - baseline, 1))
            yield df

    vae_module.iter_batches = traced
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if mode == "sequential":
            rep = run_vae(flow_paths, win_paths, out / "s.parquet", out / "d.json", out / "m.pt",
                          params, seed=1, resume_path=out / "r.pt")  # fmt: skip
            rows, batches = rep["n_flows"], rep["n_batches"]
        else:
            flows = read_flows(flow_paths, read_columns(schema_names(flow_paths)))
            windows = read_windows(win_paths, CONTEXT_FEATURES)
            train = flows["split"].astype(str).to_numpy() == "train"
            enc = FlowEncoder(top_k=256).fit(flows[train], windows)
            encoded = enc.transform(flows, windows)
            torch.manual_seed(1)
            net = FlowAutoencoder(enc.cardinalities, enc.n_num, params["latent"], "deep", True)
            fit_epochs(net, encoded.take(np.flatnonzero(train)), epochs=params["epochs_per_batch"],
                       batch_size=params["minibatch"], lr=params["lr"], seed=1)  # fmt: skip
            rows, batches = len(flows), 1
    peak = _status_mb("VmHWM")
    return {"rows": int(rows), "batches": int(batches), "peak_mb": round(peak, 1),
            "baseline_mb": round(baseline, 1), "growth_mb": round(peak - baseline, 1),
            "seconds": round(time.perf_counter() - t0, 2), "rss_after_batch_mb": trace}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-rows", type=int, default=20000)
    ap.add_argument("--base-days", type=int, default=5)  # 3 days: one train day
    ap.add_argument("--out", default=str(HERE / "results" / "vae.json"))
    ap.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=2, metavar=("DAYS", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    params = {"latent": 2, "batch_rows": args.batch_rows, "epochs_per_batch": 2, "minibatch": 512,
              "lr": 0.002, "kde_bandwidth": "scott", "gmm_components": 8, "ref_points": 4000}  # fmt: skip
    if args.make:
        make_shards(Path(args.make[1]), int(args.make[0]), args.batch_rows)
        return
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), params)))
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4):
            days = args.base_days * scale
            data = Path(tmp) / f"x{scale}"
            subprocess.run(
                [sys.executable, __file__, "--batch-rows", str(args.batch_rows),
                 "--make", str(days), str(data)], check=True,
            )  # fmt: skip
            for mode in ("sequential", "reference"):
                res = subprocess.run(
                    [sys.executable, __file__, "--batch-rows", str(args.batch_rows),
                     "--child", mode, str(data)],
                    check=True, capture_output=True, text=True,
                    env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
                )  # fmt: skip
                row = {
                    "mode": mode,
                    "scale": scale,
                    "days": days,
                    **json.loads(res.stdout.splitlines()[-1]),
                }
                print(row, flush=True)
                runs.append(row)
    growth = {(r["mode"], r["scale"]): r["growth_mb"] for r in runs}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch_threads": THREADS,
        "batch_rows": args.batch_rows,
        "runs": runs,
        "ratio_4x_over_1x": {
            m: round(growth[(m, 4)] / max(growth[(m, 1)], 1e-9), 2)
            for m in ("sequential", "reference")
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["ratio_4x_over_1x"]))


if __name__ == "__main__":
    main()

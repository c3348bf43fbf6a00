"""Benchmark every registered model: training and sampling throughput, held-out NLL.

On a simulated LANL-2017 dataset built by the real pipeline (simulate, ingest, select users,
user flows), each model kind that imports (``config/config.yaml`` ``models:`` entries, plus
ctgan/tvae when installed) is fitted on the training split, samples ``--n-users`` hosts for
``--days`` days, and scores the test split. With ``--metrics`` the sample is also scored by
``metrics.evaluate.score`` (JSD, hour JSD, ACF error, rule violations, TSTR, ...).

    .venv/bin/python bench/bench_models.py --threads 2 --device cpu
    .venv/bin/python bench/bench_models.py --device cuda --out bench/results/models_cuda.json

Writes ``bench/results/models.json``: per model the figures, with machine, torch version,
threads, device and date.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXTRA_KINDS = {"ctgan": {"kind": "ctgan"}, "tvae": {"kind": "tvae"}}
SIM = dict(
    days=3, workstations=30, servers=6, external_hosts=200, flows_per_workstation_day=1200, scans=0
)


def build_users(root: Path, seed: int):
    """Simulate, ingest and select users; returns (UserTables, internal patterns)."""
    from nfsynth.features.select import select_users
    from nfsynth.features.tables import UserTables
    from nfsynth.features.userflows import build_user_flows
    from nfsynth.io.ingest import ingest
    from nfsynth.simulate import simulate_lanl2017

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    internal = cfg["datasets"]["sim"]["internal"]
    info = simulate_lanl2017(root / "raw", **SIM, truncate=False, seed=seed)
    ingest(info["files"], root / "flows", fmt="lanl2017")
    users = root / "users"
    select_users(
        root / "flows", users / "hosts.parquet", users / "split.json",
        internal=internal, top_n=24, min_flows=200, shards=1,
    )  # fmt: skip
    split = json.loads((users / "split.json").read_text())
    build_user_flows(
        root / "flows", users / "hosts.parquet", split, 0, users / "flows/shard-0.parquet"
    )
    loaded = UserTables.load(users)
    tables = UserTables.from_frames(
        loaded.flows, hosts=loaded.hosts, split=loaded.split, meta=loaded.meta
    )
    return tables, internal


def bench_model(name: str, spec: dict, users, space, args, internal) -> dict:
    from nfsynth.models import registry

    cls = registry.get(spec["kind"])
    params = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "neural":
        params["device"] = args.device
    train = users.subset("train")
    test = users.subset("test")
    start = float(np.floor(test["ts"].min() / 86400.0) * 86400.0)
    compiler_before = "torch._dynamo" in sys.modules
    t0 = time.perf_counter()
    model = cls(**params).fit(users, seed=args.seed, space=space)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample = model.sample(args.n_users, start, args.days, seed=args.seed)
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nats = model.log_prob(test)
    score_s = time.perf_counter() - t0
    row = {
        "kind": spec["kind"],
        "train_flows": len(train),
        "fit_seconds": round(fit_s, 2),
        # models share one process here: the first fit that imports torch._dynamo (any
        # torch.optim.Optimizer does; the neural fit does not) pays its ~0.8 s import
        "fit_imported_torch_dynamo": not compiler_before and "torch._dynamo" in sys.modules,
        "train_flows_per_s": round(len(train) / fit_s, 1),
        "sample_flows": sample.num_rows,
        "sample_seconds": round(sample_s, 3),
        "sample_flows_per_s": round(sample.num_rows / max(sample_s, 1e-9), 1),
        "test_flows": len(test),
        "log_prob_flows_per_s": round(len(test) / max(score_s, 1e-9), 1),
        "nll_bits_per_flow": round(float(-np.mean(nats) / np.log(2.0)), 4),
    }
    if spec["kind"] == "neural":
        hist = getattr(model, "history_", {})
        row["epochs"] = hist.get("epochs")
        row["dt_factor"] = hist.get("dt_factor")
        row["sample_flows_per_host_day"] = round(sample.num_rows / args.n_users / args.days, 1)
        row["real_test_flows_per_host_day"] = round(
            len(test) / test["user"].nunique() / max(len(users.split.get("test", [])), 1), 1
        )
        speeds = {}
        for n in args.speed_users:
            t0 = time.perf_counter()
            rows = model.sample(n, start, args.days, seed=args.seed + n).num_rows
            speeds[str(n)] = round(rows / (time.perf_counter() - t0), 1)
        row["sample_flows_per_s_by_hosts"] = speeds
        per_epoch = min(len(train), int(params.get("max_train_flows", 60000)))
        row["train_steps_flows_per_s"] = round(per_epoch * (hist.get("epochs") or 0) / fit_s, 1)
    if args.metrics:
        from nfsynth.metrics.evaluate import score, subsample_hosts, synthetic_flows

        synthetic = synthetic_flows(sample, internal)
        real = subsample_hosts(test, 60000, 0)
        values = score(real, synthetic, subsample_hosts(train, 60000, 0), space, None,
                       raw_synthetic=sample.to_pandas(), model=model)  # fmt: skip
        row["metrics"] = {k: round(v, 5) for k, v in values.items()}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", help="config model names (default: all + peers)")
    parser.add_argument("--n-users", type=int, default=24)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--speed-users",
        type=int,
        nargs="*",
        default=[256],
        help="neural: also time sampling this many hosts (flows/s per host count)",
    )
    parser.add_argument("--sim-seed", type=int, default=11)
    parser.add_argument(
        "--metrics", action="store_true", help="also score samples with metrics.evaluate"
    )
    parser.add_argument("--out", default=str(ROOT / "bench/results/models.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import torch

    from nfsynth.evalspace import EvalSpace
    from nfsynth.models import registry

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    specs = dict(cfg["models"])
    for name, spec in EXTRA_KINDS.items():
        specs.setdefault(name, spec)
    if args.models:
        specs = {k: v for k, v in specs.items() if k in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        users, internal = build_users(Path(tmp), args.sim_seed)
        space = EvalSpace.fit(users.subset("train"), n_bins=24, top_k=24)
        print(f"dataset: {len(users.flows)} user flows, {users.flows['user'].nunique()} users, "
              f"train {len(users.subset('train'))}, test {len(users.subset('test'))} "
              f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        results = {}
        for name, spec in specs.items():
            try:
                registry.get(spec["kind"])
            except (ImportError, AttributeError, KeyError) as exc:
                print(f"{name}: skipped ({type(exc).__name__}: {exc})")
                continue
            results[name] = bench_model(name, spec, users, space, args, internal)
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "metrics"}))
    header = f"{'model':8} {'fit s':>7} {'train fl/s':>11} {'sample fl/s':>12} {'NLL bits':>9}"
    print(header + "  (* the fit paid the torch._dynamo import)")
    for name, r in results.items():
        star = "*" if r["fit_imported_torch_dynamo"] else " "
        print(f"{name:8} {r['fit_seconds']:6.1f}{star} {r['train_flows_per_s']:11.0f} "
              f"{r['sample_flows_per_s']:12.0f} {r['nll_bits_per_flow']:9.3f}")  # fmt: skip
    if args.metrics:
        keys = sorted({k for r in results.values() for k in r.get("metrics", {})})
        print(f"{'metric':28}" + "".join(f"{n:>12}" for n in results))
        for k in keys:
            print(
                f"{k:28}"
                + "".join(
                    f"{r.get('metrics', {}).get(k, float('nan')):12.4f}" for r in results.values()
                )
            )
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": __import__("os").cpu_count(),
        },
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "device": args.device,
        "device_name": (
            torch.cuda.get_device_name(0)
            if args.device != "cpu" and torch.cuda.is_available()
            else platform.processor() or platform.machine()
        ),
        "dataset": {
            "simulator": SIM,
            "sim_seed": args.sim_seed,
            "user_flows": int(len(users.flows)),
        },
        "sampling": {"n_users": args.n_users, "days": args.days, "seed": args.seed},
        "models": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

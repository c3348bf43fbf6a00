"""How much of a split-by-host ACF comparison is which hosts the split drew.

For a dataset split by host (one day of logs, as UGR'16's sample), the ACF error of a sample
is measured against a handful of test hosts. This draws many random splits of the same hosts,
of the configured sizes, and scores two stand-ins on each: the training hosts themselves (what
a model that reproduced them exactly would read, ``trtr_acf_mae``) and curves of zeros (a model
with no temporal dependence, as B1). It prints where the configured split lies among them.

    .venv/bin/snakemake --cores 2 users_only          # builds results/<dataset>/users
    .venv/bin/python bench/split_acf.py results/ugr16/users

Writes ``bench/results/split_acf_<dataset>.json`` (the figures, the machine and the date).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from nfsynth.features.tables import UserTables
from nfsynth.metrics import acf

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("users", type=Path, help="a dataset's users folder (results/X/users)")
    parser.add_argument("--draws", type=int, default=2000, help="random host splits (2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the JSON written")
    args = parser.parse_args(argv)
    if not (args.users / "split.json").is_file():
        sys.exit(f"{args.users}: no split.json; build it with `snakemake users_only` first")
    t0 = time.perf_counter()
    users = UserTables.load(args.users)
    split = users.split
    if split.get("mode") != "hosts":
        sys.exit(f"{args.users / 'split.json'}: mode {split.get('mode')!r}, not a split by host")
    dataset = args.users.resolve().parent.name
    train, test = list(split["train"]), list(split["test"])
    curves = acf.host_curves(users.flows)
    own, flat = acf.split_errors(curves, train, test)
    draws = acf.host_split_draws(curves, len(train), len(test), args.draws, args.seed)
    flat_wins = float(np.mean(draws[:, 1] < draws[:, 0]))
    rank = float(np.mean(draws[:, 1] <= flat))  # share of draws whose flat error is as low
    result = {
        "dataset": dataset,
        "hosts": len(curves),
        "train_hosts": len(train),
        "test_hosts": len(test),
        "draws": args.draws,
        "seed": args.seed,
        "configured": {"training_hosts": own, "no_dependence": flat},
        "draws_percentiles": {
            f"p{q}": {"training_hosts": float(a), "no_dependence": float(b)}
            for q, (a, b) in zip(
                (10, 50, 90), np.percentile(draws, [10, 50, 90], axis=0), strict=True
            )
        },
        "share_no_dependence_wins": flat_wins,
        "configured_no_dependence_quantile": rank,
        "seconds": round(time.perf_counter() - t0, 2),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{dataset}: {len(curves)} hosts, splits of {len(train)} training / {len(test)} test")
    print(f"  configured split: training hosts {own:.3f}, no dependence {flat:.3f}")
    for q, row in result["draws_percentiles"].items():
        print(
            f"  {args.draws} random splits, {q}: training hosts {row['training_hosts']:.3f}, "
            f"no dependence {row['no_dependence']:.3f}"
        )
    print(f"  no dependence scores below the training hosts on {flat_wins:.0%} of the splits")
    print(f"  the configured split's no-dependence error is at quantile {rank:.2f} of the draws")
    out = args.out or HERE / "results" / f"split_acf_{dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

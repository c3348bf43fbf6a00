"""The ``nfsynth`` command.

- ``nfsynth ingest --format FMT INPUT... --out DIR [--chunk-bytes N] [--max-reject-ratio R]``:
  raw flow files to a day-partitioned Parquet dataset with ``manifest.json`` and
  ``rejects.csv`` (see ``nfsynth.io.ingest``).
- ``nfsynth simulate --out DIR --seed S --days D [--workstations N ...] [--no-truncate]``:
  LANL-2017-format day files (``netflow_day-NN.bz2``) and ``labels.csv``.
- ``nfsynth sample MODEL_DIR --hosts N --start WHEN --out FILE [--days D] [--role R]
  [--seed S] [--threads T]``: synthetic flows of a saved model (a workflow's
  ``results/<dataset>/models/<model>/seed<N>``) as Parquet; ``--role`` samples hosts of one
  role (``schema.ROLES``; neural models only). The same model and seed give the same rows.

Bad input or arguments end with exit code 2 and a one-line error on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from nfsynth.io.errors import IngestError
from nfsynth.schema import ROLES

log = logging.getLogger("nfsynth")

FORMATS = ("auto", "lanl2017", "lanl2015", "ugr16", "nfdump_csv")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _moment(text: str) -> float:
    """Epoch seconds (UTC) of an ISO date/time (no zone: UTC) or of a number of seconds."""
    from nfsynth.models.base import start_seconds

    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None and math.isfinite(seconds):
        return seconds
    try:
        return start_seconds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time (2016-04-12, 2016-04-12T08:00) or epoch seconds: {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nfsynth`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="nfsynth", description="Synthetic network flows.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="raw flow files to the canonical Parquet table")
    ing.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="plain, .bz2 or .gz")
    ing.add_argument("--format", default="auto", choices=FORMATS, help="input format")
    ing.add_argument("--out", required=True, type=Path, help="output folder")
    ing.add_argument("--chunk-bytes", type=_positive_int, default=16 << 20,
                     help="decompressed bytes parsed per chunk (default 16 MiB)")  # fmt: skip
    ing.add_argument("--max-reject-ratio", type=_ratio, default=0.01,
                     help="fail when a larger share of an input's lines is rejected")  # fmt: skip
    ing.add_argument("--threads", type=_positive_int, default=2, help="bz2 decompression threads")

    sim = sub.add_parser("simulate", help="LANL-2017-format day files with labelled scans")
    sim.add_argument("--out", required=True, type=Path, help="output folder")
    sim.add_argument("--seed", type=int, default=11)
    sim.add_argument("--days", type=_positive_int, default=3)
    sim.add_argument("--workstations", type=_positive_int, default=30)
    sim.add_argument("--servers", type=_positive_int, default=6)
    sim.add_argument("--external-hosts", type=_positive_int, default=200)
    sim.add_argument("--flows-per-workstation-day", type=_positive_int, default=1200)
    sim.add_argument("--scans", type=int, default=6)
    sim.add_argument("--no-truncate", action="store_true",
                     help="write complete archives (default: cut the last block, as LANL's)")  # fmt: skip

    smp = sub.add_parser("sample", help="synthetic flows of a saved model, as Parquet")
    smp.add_argument("model", type=Path, metavar="MODEL_DIR",
                     help="a saved model's folder, e.g. results/sim/models/neural/seed1")  # fmt: skip
    smp.add_argument("--hosts", type=_positive_int, required=True, help="synthetic hosts")
    smp.add_argument("--start", type=_moment, required=True,
                     help="first moment, UTC: ISO date/time or epoch seconds")  # fmt: skip
    smp.add_argument("--days", type=_positive_float, default=1.0, help="days per host (1)")
    smp.add_argument("--role", choices=ROLES, default=None,
                     help="hosts of this role only (a neural model conditions on it)")  # fmt: skip
    smp.add_argument("--seed", type=int, default=1, help="same seed, same rows (1)")
    smp.add_argument("--threads", type=_positive_int, default=2, help="CPU threads (2)")
    smp.add_argument("--out", required=True, type=Path, help="Parquet file to write")
    return parser


def _ingest(args: argparse.Namespace) -> dict:
    from nfsynth.io.ingest import ingest

    manifest = ingest(
        args.inputs,
        args.out,
        fmt=args.format,
        chunk_bytes=args.chunk_bytes,
        max_reject_ratio=args.max_reject_ratio,
        threads=args.threads,
    )
    return manifest["totals"]


def _simulate(args: argparse.Namespace) -> dict:
    from nfsynth import simulate

    if not hasattr(simulate, "simulate_lanl2017"):
        raise IngestError(
            None, "the simulator (nfsynth.simulate.simulate_lanl2017) is not available"
        )
    return simulate.simulate_lanl2017(
        args.out,
        days=args.days,
        workstations=args.workstations,
        servers=args.servers,
        external_hosts=args.external_hosts,
        flows_per_workstation_day=args.flows_per_workstation_day,
        scans=args.scans,
        truncate=not args.no_truncate,
        seed=args.seed,
    )


def _sample(args: argparse.Namespace) -> dict:
    from nfsynth.models.pipeline import sample_to_file

    return sample_to_file(
        args.model,
        args.hosts,
        args.start,
        args.days,
        args.seed,
        args.out,
        role=args.role,
        threads=args.threads,
    )


COMMANDS = {"ingest": _ingest, "simulate": _simulate, "sample": _sample}


def main(argv: list[str] | None = None) -> int:
    """Run ``nfsynth``; returns the exit code (0 ok, 2 bad input or arguments)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        summary = COMMANDS[args.command](args)
    except (IngestError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"nfsynth {args.command}: error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

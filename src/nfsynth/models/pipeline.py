"""What the workflow's model rules run: fit the evaluation space, train a model, sample it.

- ``fit_evalspace(users_dir, out_path, top_k, n_bins)``: rule ``evalspace``;
- ``train_model(users_dir, space_path, hp, seed, out_dir)``: rule ``train`` (also writes
  ``training.json``: rows, seconds, held-out NLL on the validation split in bits per flow);
- ``sample_model(model_dir, split_path, sampling, seed, out_path, hosts_path)``: rule
  ``sample``; ``start: auto`` is midnight UTC of the first test day (day split) or of the
  dataset's first day (host split); ``n_users: auto`` is the training split's host count;
- ``sample_to_file(model_dir, n_users, start, days, seed, out_path, role=...)``: what
  ``sample_model`` and ``nfsynth sample`` run (a role-conditioned sample of any saved model).
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nfsynth.evalspace import EvalSpace
from nfsynth.models import registry
from nfsynth.schema import SECONDS_PER_DAY

log = logging.getLogger(__name__)


def _load_users(users_dir: str | Path):
    from nfsynth.features.tables import UserTables

    return UserTables.load(users_dir)


def fit_evalspace(
    users_dir: str | Path, out_path: str | Path, top_k: int, n_bins: int
) -> EvalSpace:
    """Fit the evaluation space on the training split of the user tables; write JSON."""
    t0 = time.perf_counter()
    train = _load_users(users_dir).subset("train")
    space = EvalSpace.fit(train, n_bins=int(n_bins), top_k=int(top_k))
    space.save(out_path)
    log.info(
        "evaluation space from %d training flows: %s; %.2f s",
        len(train), ", ".join(f"{f}={space.n_bins(f)}" for f in space.fields), time.perf_counter() - t0,
    )  # fmt: skip
    return space


def heldout_nll_bits(model: Any, flows: Any) -> float:
    """Mean negative log-likelihood in bits per flow (NaN for no flows)."""
    if len(flows) == 0:
        return float("nan")
    return float(-np.mean(model.log_prob(flows)) / math.log(2.0))


#: Environment variables that thread pools read when their library loads.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(threads: int | None) -> None:
    """Use at most ``threads`` CPU threads (a job must not use more cores than its rule
    declares): in the BLAS/OpenMP pools already loaded, in torch where it is imported, and,
    through ``THREAD_ENV``, in those loaded later. CTGAN and TVAE import torch inside
    ``fit``; without the variables their torch ran two threads in a job that claims one
    (14.3-20.0 s of CPU in 11.0-14.6 s fits on UGR'16)."""
    if not threads:
        return
    import os
    import sys

    from threadpoolctl import threadpool_limits

    for name in THREAD_ENV:
        os.environ[name] = str(int(threads))
    threadpool_limits(int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def train_model(
    users_dir: str | Path,
    space_path: str | Path,
    hp: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Build the model of config slice ``hp``, fit it on the training split with at most
    ``threads`` CPU threads, save it.

    Returns (and writes as ``out_dir/training.json``) rows, the fit's wall and CPU seconds
    (this process, all threads) and the validation NLL. The fit's time starts before the
    model is built, so it holds the import of the model's libraries for every model alike
    (the neural model imports torch with its module, CTGAN and TVAE inside ``fit``).
    """
    limit_threads(threads)
    users = _load_users(users_dir)
    space = EvalSpace.load(space_path)
    train = users.subset("train")
    log.info(
        "training %s (seed %d) on %d flows of %d users",
        hp["kind"],
        seed,
        len(train),
        train["user"].nunique(),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    model = registry.build(dict(hp))
    model.fit(users, seed=int(seed), space=space)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model.save(out_dir)
    val = users.subset("val")
    nll = heldout_nll_bits(model, val)
    info = {
        "kind": hp["kind"],
        "seed": int(seed),
        "train_rows": len(train),
        "val_rows": len(val),
        "fit_seconds": seconds,
        "fit_cpu_seconds": cpu_seconds,
        "val_nll_bits_per_flow": nll,
    }
    (Path(out_dir) / "training.json").write_text(json.dumps(info, indent=1))
    log.info(
        "trained in %.1f s (%.1f s of CPU); validation NLL %.3f bits/flow on %d flows",
        seconds,
        cpu_seconds,
        nll,
        len(val),
    )
    return info


def sample_start(start: str, split: dict[str, Any], hosts_path: str | Path | None = None) -> float:
    """Epoch seconds of the sampling start: an ISO date/time (UTC), or ``auto``."""
    if start != "auto":
        moment = datetime.fromisoformat(start)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if split.get("mode") == "days" and split.get("test"):
        day = sorted(split["test"])[0]
    else:
        days = split.get("days") or []
        if not days and hosts_path is not None:
            raw = (pq.read_schema(hosts_path).metadata or {}).get(b"nfsynth")
            meta = json.loads(raw) if raw else {}
            days = meta.get("days") or []
            if not days and meta.get("first_ts") is not None:
                first = math.floor(float(meta["first_ts"]) / SECONDS_PER_DAY) * SECONDS_PER_DAY
                return float(first)
        if not days:
            raise ValueError(
                "sampling.start is auto but neither split.json nor hosts.parquet names the days"
            )
        day = sorted(days)[0]
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def sample_host_count(n_users: int | str, hosts_path: str | Path | None) -> int:
    """Synthetic hosts of a sample: ``n_users``, or for ``auto`` the training split's host
    count (hosts of split ``train``, or ``all`` under a day split) from ``hosts.parquet``."""
    if n_users != "auto":
        return int(n_users)
    if hosts_path is None:
        raise ValueError("sampling.n_users is auto but no hosts.parquet was given")
    split = pq.read_table(hosts_path, columns=["split"]).column("split")
    n = pc.sum(pc.is_in(split, value_set=pa.array(["train", "all"]))).as_py() or 0
    if n == 0:
        raise ValueError(f"{hosts_path}: sampling.n_users is auto but no host is in training")
    return n


def sample_model(
    model_dir: str | Path,
    split_path: str | Path,
    sampling: dict[str, Any],
    seed: int,
    out_path: str | Path,
    hosts_path: str | Path | None = None,
    threads: int | None = None,
) -> int:
    """Load a saved model, sample ``sampling.n_users`` hosts (``sample_host_count``) over
    ``sampling.days`` days from ``sampling.start`` with at most ``threads`` CPU threads; write
    Parquet. Returns the number of flows."""
    split = json.loads(Path(split_path).read_text())
    start = sample_start(str(sampling.get("start", "auto")), split, hosts_path)
    n_users = sample_host_count(sampling.get("n_users", "auto"), hosts_path)
    summary = sample_to_file(
        model_dir, n_users, start, float(sampling["days"]), int(seed), out_path, threads=threads
    )
    return int(summary["flows"])


def sample_to_file(
    model_dir: str | Path,
    n_users: int,
    start: float,
    days: float,
    seed: int,
    out_path: str | Path,
    *,
    role: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Load the saved model in ``model_dir`` (any kind) and write ``n_users`` synthetic
    hosts over ``days`` days from ``start`` (epoch seconds, UTC) to the Parquet file
    ``out_path`` (``schema.SAMPLE_SCHEMA``), with at most ``threads`` CPU threads. ``role``
    (one of ``schema.ROLES``) samples hosts of that role; a model that does not condition on
    the role (``conditions_on_role``) is refused, as it would only rename its hosts.
    Returns ``{"flows", "hosts", "role", "start", "days", "seconds", "out"}``."""
    model = registry.load(model_dir)
    if role is not None and not model.conditions_on_role:
        raise ValueError(
            f"{model_dir}: a {model.kind!r} model does not condition on the host role "
            "(only a neural model does); sample it without a role"
        )
    limit_threads(threads)
    t0 = time.perf_counter()
    table = model.sample(int(n_users), float(start), float(days), seed=int(seed), role=role)
    seconds = time.perf_counter() - t0
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    when = datetime.fromtimestamp(float(start), UTC).isoformat()
    log.info(
        "sampled %d flows of %d hosts%s over %.2f days from %s in %.2f s (%.0f flows/s)",
        table.num_rows, n_users, f" of role {role}" if role else "", float(days), when,
        seconds, table.num_rows / max(seconds, 1e-9),
    )  # fmt: skip
    return {
        "flows": table.num_rows,
        "hosts": int(n_users),
        "role": role,
        "start": when,
        "days": float(days),
        "seconds": round(seconds, 3),
        "out": str(out_path),
    }

"""Run every metric on one synthetic sample (or on the real reference) and write the JSON.

``evaluate_sample``: a model's sample against the real test split, ``evaluate_reference``:
the real validation split against the real test split, the same metrics (docs/metrics.md).
Both return a flat ``{metric: value}`` dict; ``write_metrics`` stores it with each metric's
goal (``min``/``max``) so ``summary.summarize`` needs nothing else.

Scoring cost is bounded by ``evaluation.max_rows`` per side, drawn two ways with the same
seed: flows drawn at random (``common.sample_rows``) for the metrics of the flows' joint
distribution (marginals, hour-conditioned, pairs, rules, density, protocol utility,
privacy), whose value must not hinge on which heavy hosts happen to be drawn; whole hosts
(``common.subsample_hosts``, per-host sequences intact) for the forecast utility. The NLL
(of models that condition on a host's past) and the per-host statistics (ACF,
inter-arrival, runs of like flows) see whole hosts up to ``evaluation.host_rows`` flows a
side, by default every host of a sample: they are cheap to compute, and scored on the few
hosts ``max_rows`` holds they compared one draw of real hosts with another of synthetic
ones (docs/metrics.md). ``evaluation.prdc_rows`` bounds density/coverage and
``evaluation.privacy_rows`` the distance to closest record. A sample is cut to
``FLOOD_FACTOR x`` the larger of ``max_rows`` and the training flows, in whole hosts, before
its features are derived (memory stays bounded whatever a model writes).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics import (
    acf,
    bursts,
    coverage,
    dcr,
    density,
    exact_copy,
    hour_jsd,
    hour_mi,
    interarrival,
    jsd,
    mi_pairwise,
    nll,
    rules,
    serial,
    sessions,
    time_grid,
    utility_forecast,
    utility_protocol,
    wasserstein,
)
from nfsynth.metrics.common import (
    BREAKDOWN_PREFIXES,
    WINDOW_SECONDS,
    sample_rows,
    subsample_hosts,
)
from nfsynth.metrics.summary import read_metrics_file

log = logging.getLogger(__name__)

MODULES = (
    jsd,
    wasserstein,
    hour_jsd,
    hour_mi,
    mi_pairwise,
    acf,
    interarrival,
    serial,
    sessions,
    bursts,
    time_grid,
    rules,
    density,
    coverage,
    nll,
    utility_protocol,
    utility_forecast,
    dcr,
    exact_copy,
)

#: The real training hosts' own ACF error against the test hosts: what a model that
#: reproduced the training hosts exactly would read on ``acf_mae``, a property of the split
#: (the same for every sample; on the embedded UGR'16 sample 0.056, above B1's 0.035:
#: docs/metrics.md)
SPLIT_ACF = "trtr_acf_mae"

#: Goal of every metric name that is not a module's NAME; per-field names go by prefix.
EXTRA_GOALS: dict[str, str] = {
    "trtr_protocol_f1": "max",
    "trtr_forecast_mse": "min",
    SPLIT_ACF: "min",
    "dcr_median_ratio": "max",
    "exact_copy_share_holdout": "min",
}
PREFIX_GOALS: dict[str, str] = {
    **dict.fromkeys(BREAKDOWN_PREFIXES, "min"),
    "tstr_protocol_f1_": "max",  # per protocol
    "trtr_protocol_f1_": "max",
}

DEFAULTS: dict[str, Any] = {
    "max_rows": 30000,  # config/schema.yaml's default
    "privacy_rows": 5000,
    "prdc_rows": 5000,
    "prdc_k": 5,
    "acf_max_lag": 50,
    "host_rows": 120000,  # config/schema.yaml's default: every host of a default-sized sample
    "forecast_lags": 6,
    "window_seconds": WINDOW_SECONDS,
    "subsample_seed": 0,
    "utility_draws": 5,
    "rules": list(rules.RULES),
    "tcp_only_ports": list(rules.DEFAULT_TCP_ONLY_PORTS),
}


#: Mean JSD of the sample's marginals against the real *training* flows: how far the model
#: strays from what it learnt from, apart from how the test split differs from the training
#: split (on a split by host, most of ``jsd_mean``; docs/metrics.md)
TRAIN_JSD = "jsd_train_mean"

#: The ACF error (``acf_mae``) against the real *training* hosts: whether the sample keeps
#: the rhythm and persistence of the hosts the model learnt from, apart from how the test
#: hosts differ from them (on UGR'16's split by host, its 4 test hosts barely autocorrelate)
TRAIN_ACF = "acf_mae_train"

#: A sample keeps at most this many times the larger of ``max_rows`` and the training
#: split's flows (whole hosts) for scoring.
FLOOD_FACTOR = 4


def goal_of(name: str) -> str:
    """``min`` or ``max`` for a metric name written by :func:`evaluate_sample`."""
    for module in MODULES:
        if module.NAME == name:
            return module.GOAL
    if name in EXTRA_GOALS:
        return EXTRA_GOALS[name]
    for prefix, goal in PREFIX_GOALS.items():
        if name.startswith(prefix):
            return goal
    raise KeyError(f"unknown metric {name!r}: add it to docs/metrics.md and metrics.evaluate")


def _settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULTS, **(cfg or {})}


def _n_hosts(flows: pd.DataFrame) -> int:
    """Distinct users of a user-flow frame (0 without a ``user`` column)."""
    return int(flows["user"].nunique()) if "user" in flows else 0


def per_host_frames(
    real: pd.DataFrame, synthetic: pd.DataFrame, train: pd.DataFrame, host_rows: int, seed: int
) -> dict[str, pd.DataFrame]:
    """``score``'s ``real_hosts``, ``synthetic_hosts`` and ``train_hosts``: whole hosts up to
    ``host_rows`` flows a side (``common.subsample_hosts``) of the real test, synthetic and
    real training flows, with a log line of what each side holds."""
    frames = {
        "real_hosts": subsample_hosts(real, host_rows, seed),
        "synthetic_hosts": subsample_hosts(synthetic, host_rows, seed),
        "train_hosts": subsample_hosts(train, host_rows, seed),
    }
    sides = {"synthetic": "synthetic_hosts", "real test": "real_hosts", "real train": "train_hosts"}
    held = (
        f"{side} {len(frames[k])} flows of {_n_hosts(frames[k])} hosts" for side, k in sides.items()
    )
    log.info("per-host statistics on whole hosts (host_rows %d): %s", host_rows, ", ".join(held))
    return frames


def synthetic_flows(sample: pa.Table | pd.DataFrame, internal: Any = None) -> pd.DataFrame:
    """A sample (``schema.SAMPLE_SCHEMA``) as user flows, through the same feature code as
    real flows (``features.userflows.derive_features``; no rolling statistics)."""
    from nfsynth.features.userflows import derive_features

    frame = sample.to_pandas() if isinstance(sample, pa.Table) else sample
    return derive_features(frame, internal=internal or [], rolling_seconds=None)


def score(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    train: pd.DataFrame,
    space: EvalSpace,
    cfg: dict[str, Any] | None = None,
    *,
    raw_synthetic: pd.DataFrame | None = None,
    model: Any = None,
    real_seq: pd.DataFrame | None = None,
    synthetic_seq: pd.DataFrame | None = None,
    train_seq: pd.DataFrame | None = None,
    real_hosts: pd.DataFrame | None = None,
    synthetic_hosts: pd.DataFrame | None = None,
    train_hosts: pd.DataFrame | None = None,
    synthetic_pool: pd.DataFrame | None = None,
    train_pool: pd.DataFrame | None = None,
    ceiling: dict[str, float] | None = None,
) -> dict[str, float]:
    """Every metric of ``synthetic`` against the real test flows ``real``.

    ``train``: the real training flows (utility baselines, privacy, ``jsd_train_mean``).
    ``raw_synthetic``: the flows the rule checks see (default ``synthetic``). ``model``: a
    fitted model for ``nll_bits`` (None: left out). ``*_seq``: whole-host frames for the
    forecast utility (default: the frames above). ``*_hosts``: whole-host frames for the
    per-host statistics and the NLL, ``evaluation.host_rows`` flows a side (default: the
    ``*_seq`` frames; ``train_hosts``, the training hosts, for ``acf_mae_train`` and
    ``trtr_acf_mae``).
    ``*_pool``: the frames ``synthetic`` and ``train`` were drawn from, which the protocol
    utility redraws from (``evaluation.utility_draws``; None: one draw).
    ``ceiling``: the train-on-real figures (``utility_ceiling``) where the caller has them
    (the same for every sample of a dataset); None: computed here. All frames are user-flow
    DataFrames; the caller subsamples. Returns ``{metric: value}``.
    """
    real_seq = real if real_seq is None else real_seq
    synthetic_seq = synthetic if synthetic_seq is None else synthetic_seq
    train_seq = train if train_seq is None else train_seq
    real_hosts = real_seq if real_hosts is None else real_hosts
    synthetic_hosts = synthetic_seq if synthetic_hosts is None else synthetic_hosts
    train_hosts = train_seq if train_hosts is None else train_hosts
    s = _settings(cfg)
    seconds = float(s["window_seconds"])
    seed = int(s["subsample_seed"])
    out: dict[str, float] = {}
    steps = [
        ("marginals", lambda: {**jsd.compute(real, synthetic, space),
                               **wasserstein.compute(real, synthetic, space),
                               TRAIN_JSD: jsd.compute(train, synthetic, space)[jsd.NAME]}),
        ("hour", lambda: {hour_jsd.NAME: hour_jsd.compute(real, synthetic, space),
                          hour_mi.NAME: hour_mi.compute(real, synthetic, space)}),
        ("pairs", lambda: {mi_pairwise.NAME: mi_pairwise.compute(real, synthetic, space)}),
        ("temporal", lambda: {**acf_errors(real_hosts, synthetic_hosts, train_hosts,
                                           int(s["acf_max_lag"]), seconds),
                              interarrival.NAME: interarrival.compute(real_hosts,
                                                                      synthetic_hosts),
                              **serial.compute(real_hosts, synthetic_hosts, space),
                              **sessions.compute(real_hosts, synthetic_hosts),
                              **bursts.compute(real_hosts, synthetic_hosts),
                              **time_grid.compute(real, synthetic)}),
        ("rules", lambda: rules.compute(
            synthetic if raw_synthetic is None else raw_synthetic,
            s["rules"], s["tcp_only_ports"])),
        ("density", lambda: density.density_coverage(
            real, synthetic, space, k=int(s["prdc_k"]), max_rows=int(s["prdc_rows"]), seed=seed)),
        ("utility", lambda: {
            **utility_protocol.figures(utility_protocol.NAME, synthetic, real, space,
                                       synthetic_pool, int(s["utility_draws"]), seed),
            utility_forecast.NAME: utility_forecast.train_test_mse(
                synthetic_seq, real_seq, int(s["forecast_lags"]), seconds),
            **(utility_ceiling(real, train, space, s, real_seq, train_seq, train_pool)
               if ceiling is None else ceiling)}),
        ("privacy", lambda: {**dcr.compute(train, synthetic, real, space,
                                           max_rows=int(s["privacy_rows"]), seed=seed),
                             **exact_copy.compute(train, synthetic, real)}),
    ]  # fmt: skip
    if model is not None:
        # every test host up to host_rows: a log_prob pass is cheap (the neural model's on
        # 168,000 flows 1.6 s), and max_rows of whole hosts held 2 of the whole UGR'16
        # sample's 9 test hosts, one a GRE tunnel endpoint that set the figure
        steps.append(("nll", lambda: {nll.NAME: nll.compute(real_hosts, model)}))
    for label, step in steps:
        t0 = time.perf_counter()
        with threadpool_limits(limits=1):  # rules ask for 1 thread
            values = step()
        out.update({k: float(v) for k, v in values.items()})
        log.info("%s: %d value(s) in %.2f s", label, len(values), time.perf_counter() - t0)
    return out


def acf_errors(
    real: pd.DataFrame, synthetic: pd.DataFrame, train: pd.DataFrame, max_lag: int, seconds: float
) -> dict[str, float]:
    """``acf.compute``'s figures of ``synthetic`` against the test hosts ``real``, its
    ``acf_mae`` against the training hosts ``train`` (``acf_mae_train``), and the training
    hosts' own ``acf_mae`` against the test hosts (``trtr_acf_mae``); each side's curves are
    computed once. Whole-host user-flow frames."""
    curves = acf.acf_curves(synthetic, max_lag, seconds)
    real_curves = acf.acf_curves(real, max_lag, seconds)
    train_curves = acf.acf_curves(train, max_lag, seconds)
    return {
        **acf.curve_errors(real_curves, curves),
        TRAIN_ACF: acf.curve_errors(train_curves, curves)[acf.NAME],
        SPLIT_ACF: acf.curve_errors(real_curves, train_curves)[acf.NAME],
    }


def utility_ceiling(
    real: pd.DataFrame,
    train: pd.DataFrame,
    space: EvalSpace,
    cfg: dict[str, Any] | None = None,
    real_seq: pd.DataFrame | None = None,
    train_seq: pd.DataFrame | None = None,
    train_pool: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The train-on-real utility figures (``trtr_protocol_f1`` and per protocol, averaged
    over ``evaluation.utility_draws`` draws from ``train_pool``; ``trtr_forecast_mse``): the
    ceilings the TSTR figures compare with, a property of the dataset's split, the same for
    every sample. Frames as for ``score``."""
    s = _settings(cfg)
    seed = int(s["subsample_seed"])
    real_seq = real if real_seq is None else real_seq
    train_seq = train if train_seq is None else train_seq
    return {
        **utility_protocol.figures("trtr_protocol_f1", train, real, space, train_pool,
                                   int(s["utility_draws"]), seed),
        "trtr_forecast_mse": utility_forecast.train_test_mse(
            train_seq, real_seq, int(s["forecast_lags"]), float(s["window_seconds"])),
    }  # fmt: skip


def dataset_ceiling(
    users: Any, space: EvalSpace, cfg: dict[str, Any] | None = None
) -> dict[str, float]:
    """``utility_ceiling`` of a dataset's user tables, on the flows ``evaluate_sample``
    draws (the test and training splits at ``evaluation.max_rows``, whole hosts for the
    forecast): rule ``ceiling``, computed once per dataset for every sample's scoring."""
    s = _settings(cfg)
    max_rows, seed = int(s["max_rows"]), int(s["subsample_seed"])
    real, train = users.subset("test"), users.subset("train")
    return utility_ceiling(
        sample_rows(real, max_rows, seed),
        sample_rows(train, max_rows, seed),
        space,
        s,
        real_seq=subsample_hosts(real, max_rows, seed),
        train_seq=subsample_hosts(train, max_rows, seed),
        train_pool=train,
    )


def evaluate_sample(
    users: Any,
    space: EvalSpace,
    synthetic_table: pa.Table | pd.DataFrame,
    model_dir: str | Path | None,
    cfg: dict[str, Any] | None = None,
    internal: Any = None,
    ceiling: dict[str, float] | None = None,
) -> dict[str, float]:
    """Metrics of one model's sample (``schema.SAMPLE_SCHEMA``) against the real test split.

    ``users``: a ``features.tables.UserTables``; ``model_dir``: the saved model (for
    ``nll_bits``; None leaves it out); ``cfg``: the ``evaluation`` config slice;
    ``internal``: the dataset's internal-address patterns (``peer_kind`` of the sample);
    ``ceiling``: the dataset's ``dataset_ceiling`` (None: computed here).
    """
    s = _settings(cfg)
    max_rows, seed = int(s["max_rows"]), int(s["subsample_seed"])
    host_rows = int(s["host_rows"])
    raw = synthetic_table.to_pandas() if isinstance(synthetic_table, pa.Table) else synthetic_table
    n_raw = len(raw)
    real = users.subset("test")
    train = users.subset("train")
    # Whole hosts are drawn before the features are derived (the same rows as deriving first:
    # a host's features depend only on its own flows), so a model that floods its sample
    # costs at most FLOOD_FACTOR times the training split's memory. The bound follows the
    # training flows, not max_rows: a sample of one host per training host holds about as
    # many, and cut to max_rows it would keep a few of its hosts, whose mix the flow metrics
    # would then score.
    flood_rows = FLOOD_FACTOR * max(max_rows, len(train))
    raw = subsample_hosts(raw, flood_rows, seed) if "user" in raw else raw
    synthetic = synthetic_flows(raw, internal)
    # the flows scored: as many as the training flows scored (TRTR's training set), so every
    # model is measured at one size: an empirical JSD falls with the rows behind it, and a
    # model that wrote 3x the flows of its training data had scored lower for it alone
    n_flows = min(max_rows, len(train))
    log.info(
        "rows: synthetic %d (kept %d, %d drawn for the flow metrics), real test %d, "
        "real train %d (max_rows %d)",
        n_raw, len(synthetic), min(n_flows, len(synthetic)), len(real), len(train), max_rows,
    )  # fmt: skip
    model = None
    if model_dir is not None:
        from nfsynth.models import registry

        model = registry.load(str(model_dir))
    synth_rows = sample_rows(synthetic, n_flows, seed)
    return score(
        sample_rows(real, max_rows, seed),
        synth_rows,
        sample_rows(train, max_rows, seed),
        space,
        s,
        raw_synthetic=sample_rows(raw, max_rows, seed),
        model=model,
        real_seq=subsample_hosts(real, max_rows, seed),
        synthetic_seq=subsample_hosts(synthetic, max_rows, seed),
        train_seq=subsample_hosts(train, max_rows, seed),
        **per_host_frames(real, synthetic, train, host_rows, seed),
        synthetic_pool=synthetic,
        train_pool=train,
        ceiling=ceiling,
    )


def evaluate_reference(
    users: Any,
    space: EvalSpace,
    cfg: dict[str, Any] | None = None,
    internal: Any = None,
    ceiling: dict[str, float] | None = None,
) -> dict[str, float]:
    """The same metrics with the real validation split standing in for a sample.

    TSTR trains on the validation flows (TRTR on the training flows, as for a model); the
    privacy metrics measure validation-to-train against test-to-train (both unseen real
    flows, so the ratios sit near 1); the rule checks see the validation flows (how often
    real traffic itself breaks the rules); ``nll_bits`` is left out (no model).
    ``internal`` is unused (the real flows already carry ``peer_kind``).
    """
    s = _settings(cfg)
    max_rows, seed = int(s["max_rows"]), int(s["subsample_seed"])
    host_rows = int(s["host_rows"])
    val, real, train = users.subset("val"), users.subset("test"), users.subset("train")
    log.info("rows: real val %d, real test %d, real train %d", len(val), len(real), len(train))
    return score(
        sample_rows(real, max_rows, seed),
        sample_rows(val, min(max_rows, len(train)), seed),  # as a sample (evaluate_sample)
        sample_rows(train, max_rows, seed),
        space,
        s,
        real_seq=subsample_hosts(real, max_rows, seed),
        synthetic_seq=subsample_hosts(val, max_rows, seed),
        train_seq=subsample_hosts(train, max_rows, seed),
        **per_host_frames(real, val, train, host_rows, seed),
        synthetic_pool=val,
        train_pool=train,
        ceiling=ceiling,
    )


def write_metrics(path: str | Path, metrics: dict[str, float], **meta: Any) -> None:
    """Write ``{**meta, "metrics": {...}, "goals": {...}}`` as JSON (non-finite -> null)."""
    clean = {k: (float(v) if math.isfinite(v) else None) for k, v in sorted(metrics.items())}
    bad = [k for k, v in clean.items() if v is None]
    if bad:
        log.warning("non-finite metric(s) written as null: %s", ", ".join(bad))
    doc = {**meta, "metrics": clean, "goals": {k: goal_of(k) for k in clean}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def evaluate_files(
    users_dir: str | Path,
    space_path: str | Path,
    sample_path: str | Path,
    model_dir: str | Path | None,
    out_path: str | Path,
    cfg: dict[str, Any] | None = None,
    internal: Any = None,
    ceiling_path: str | Path | None = None,
    **meta: Any,
) -> dict[str, float]:
    """Rule ``evaluate``: read the user tables, the space, the sample and the dataset's
    ceiling (``ceiling_files``; None: computed here), write the JSON."""
    import pyarrow.parquet as pq

    from nfsynth.features.tables import UserTables

    t0 = time.perf_counter()
    users = UserTables.load(users_dir)
    space = EvalSpace.load(space_path)
    sample = pq.read_table(sample_path)
    ceiling = read_ceiling(ceiling_path)
    metrics = evaluate_sample(users, space, sample, model_dir, cfg, internal, ceiling)
    write_metrics(out_path, metrics, **meta, seconds=round(time.perf_counter() - t0, 3))
    log.info("%d metrics in %.1f s -> %s", len(metrics), time.perf_counter() - t0, out_path)
    return metrics


def reference_files(
    users_dir: str | Path,
    space_path: str | Path,
    out_path: str | Path,
    cfg: dict[str, Any] | None = None,
    internal: Any = None,
    ceiling_path: str | Path | None = None,
    **meta: Any,
) -> dict[str, float]:
    """Rule ``reference``: the real validation split scored against the test split."""
    from nfsynth.features.tables import UserTables

    t0 = time.perf_counter()
    users = UserTables.load(users_dir)
    ceiling = read_ceiling(ceiling_path)
    metrics = evaluate_reference(users, EvalSpace.load(space_path), cfg, internal, ceiling)
    write_metrics(out_path, metrics, **meta, seconds=round(time.perf_counter() - t0, 3))
    log.info("%d metrics in %.1f s -> %s", len(metrics), time.perf_counter() - t0, out_path)
    return metrics


def ceiling_files(
    users_dir: str | Path,
    space_path: str | Path,
    out_path: str | Path,
    cfg: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, float]:
    """Rule ``ceiling``: the dataset's train-on-real figures (``dataset_ceiling``) as JSON,
    read by every ``evaluate`` and ``reference`` job of the dataset."""
    from nfsynth.features.tables import UserTables

    t0 = time.perf_counter()
    users = UserTables.load(users_dir)
    metrics = dataset_ceiling(users, EvalSpace.load(space_path), cfg)
    write_metrics(out_path, metrics, **meta, seconds=round(time.perf_counter() - t0, 3))
    log.info("%d ceiling figures in %.1f s -> %s", len(metrics), time.perf_counter() - t0, out_path)
    return metrics


def read_ceiling(path: str | Path | None) -> dict[str, float] | None:
    """The figures ``ceiling_files`` wrote (``{metric: value}``, null as NaN); None without
    a path. A file of other metrics is refused, naming the file and the metric."""
    if path is None:
        return None
    doc = read_metrics_file(path)
    out = {k: float("nan") if v is None else float(v) for k, v in doc["metrics"].items()}
    stray = [k for k in out if not k.startswith("trtr_")]
    if stray:
        raise ValueError(f"{path}: not a ceiling file: metric {stray[0]!r} is not a trtr_ figure")
    return out

"""Temporal fidelity: autocorrelation of per-user 5-minute series, real against synthetic.

Each user's flows are counted in 5-minute windows (from its first to its last window, empty
ones as zeros; see ``common.window_series``): flow counts, and ``log1p`` of the bytes (so one
huge transfer does not dominate). Each user's ACF at lags 1..L is ``features.temporal.acf``
(the estimator of the data analysis); the pooled curve is their mean over users (constant
series left out). ``acf_mae`` is the mean over lags and both
series of |ACF_real - ACF_synthetic|; ``acf_mae_flows`` / ``acf_mae_bytes`` per series.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from nfsynth.features.temporal import acf
from nfsynth.metrics.common import WINDOW_SECONDS, window_series

NAME = "acf_mae"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 2.0  # ACF values lie in [-1, 1]
MAX_LAG = 50


def pooled_acf(user_index: np.ndarray, values: np.ndarray, max_lag: int) -> np.ndarray:
    """Mean over users of each user's ACF at lags 1..max_lag, float64 (max_lag,).

    ``user_index`` and ``values``: (n,) arrays, each user's windows contiguous and in order.
    The per-user ACF is ``features.temporal.acf`` (biased estimator, as the data analysis and
    the report use); constant series (NaN ACF) are left out; NaN where no user has the lag.
    """
    if values.size == 0:
        return np.full(max_lag, np.nan)
    bounds = np.flatnonzero(np.diff(user_index)) + 1
    return mean_curve([acf(part, max_lag) for part in np.split(values, bounds)])  # per user


def mean_curve(curves: list[np.ndarray]) -> np.ndarray:
    """The mean of per-user ACF curves, each (max_lag,), NaNs (constant series) left out:
    float64 (max_lag,), NaN where no user has the lag."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lags stay NaN
        return np.nanmean(np.vstack(curves), axis=0)


def acf_curves(
    flows: pd.DataFrame, max_lag: int = MAX_LAG, window_seconds: float = WINDOW_SECONDS
) -> dict[str, np.ndarray]:
    """``{"flows": acf, "bytes": acf}``, each float64 (max_lag,), of a user-flow frame."""
    user_index, counts, log_bytes = window_series(flows, window_seconds)
    return {
        "flows": pooled_acf(user_index, counts, max_lag),
        "bytes": pooled_acf(user_index, log_bytes, max_lag),
    }


def curve_errors(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray]) -> dict[str, float]:
    """``{"acf_mae": ..., "acf_mae_flows": ..., "acf_mae_bytes": ...}`` in [0, 2] of two
    ``acf_curves`` results (a synthetic lag no user has counts as 0; a real one is skipped)."""
    out = {}
    for key in ("flows", "bytes"):
        diff = np.abs(real[key] - np.nan_to_num(synthetic[key], nan=0.0))
        out[f"acf_mae_{key}"] = float(np.nanmean(diff)) if np.isfinite(diff).any() else np.nan
    out[NAME] = float(np.nanmean([out["acf_mae_flows"], out["acf_mae_bytes"]]))
    return out


def compute(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    max_lag: int = MAX_LAG,
    window_seconds: float = WINDOW_SECONDS,
) -> dict[str, float]:
    """``{"acf_mae": ..., "acf_mae_flows": ..., "acf_mae_bytes": ...}`` in [0, 2]."""
    return curve_errors(
        acf_curves(real, max_lag, window_seconds), acf_curves(synthetic, max_lag, window_seconds)
    )


def host_curves(
    flows: pd.DataFrame, max_lag: int = MAX_LAG, window_seconds: float = WINDOW_SECONDS
) -> dict[str, dict[str, np.ndarray]]:
    """``{user: acf_curves(that user's flows)}`` of a user-flow frame: each host's own curves,
    which ``pooled_acf`` averages (so a group's pooled curve is the mean of its hosts')."""
    return {
        str(user): acf_curves(part, max_lag, window_seconds)
        for user, part in flows.groupby("user", sort=True, observed=True)
    }


def split_errors(
    curves: dict[str, dict[str, np.ndarray]], train: list[str], test: list[str]
) -> tuple[float, float]:
    """``(training hosts, no dependence)``: the ``acf_mae`` of the training hosts' pooled
    curves against the test hosts', and of curves of zeros (a model with no temporal
    dependence, as B1) against the test hosts'. ``curves``: ``host_curves``."""

    def pool(users: list[str]) -> dict[str, np.ndarray]:
        return {k: mean_curve([curves[u][k] for u in users]) for k in ("flows", "bytes")}

    real = pool(test)
    flat = {k: np.zeros_like(v) for k, v in real.items()}
    return curve_errors(real, pool(train))[NAME], curve_errors(real, flat)[NAME]


def host_split_draws(
    curves: dict[str, dict[str, np.ndarray]], n_train: int, n_test: int, draws: int, seed: int
) -> np.ndarray:
    """``split_errors`` over ``draws`` random splits of the hosts of ``curves`` into
    ``n_train`` training and ``n_test`` test hosts (disjoint; the rest left out, as a
    validation split is): float64 (draws, 2), columns (training hosts, no dependence).
    How much of a split's ACF errors is which hosts it drew (docs/metrics.md)."""
    users = sorted(curves)
    if n_train < 1 or n_test < 1 or n_train + n_test > len(users):
        raise ValueError(
            f"cannot split {len(users)} hosts into {n_train} training and {n_test} test hosts"
        )
    rng = np.random.default_rng(seed)
    out = np.empty((draws, 2))
    for i in range(draws):
        order = rng.permutation(len(users))
        train = [users[j] for j in order[:n_train]]
        test = [users[j] for j in order[n_train : n_train + n_test]]
        out[i] = split_errors(curves, train, test)
    return out

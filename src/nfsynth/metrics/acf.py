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
    curves = np.vstack([acf(part, max_lag) for part in np.split(values, bounds)])  # per user
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lags stay NaN
        return np.nanmean(curves, axis=0)


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

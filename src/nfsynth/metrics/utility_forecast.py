"""Utility: forecast a host's next 5-minute bytes, train on synthetic, test on real.

From each user's flows, the 5-minute series of ``log1p(bytes)`` (``common.window_series``;
empty windows are 0). A ``sklearn.linear_model.Ridge`` (alpha 1) predicts a window from the
previous ``lags`` (6) windows of the same user. ``tstr_forecast_mse``: mean squared error
(log1p-bytes squared) on the real test series when trained on the synthetic series;
``trtr_forecast_mse``: trained on the real training series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from nfsynth.metrics.common import WINDOW_SECONDS, lagged_rows, window_series

NAME = "tstr_forecast_mse"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")
LAGS = 6


def supervised(
    flows: pd.DataFrame, lags: int = LAGS, window_seconds: float = WINDOW_SECONDS
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: previous ``lags`` windows (m, lags) and next window (m,), log1p bytes."""
    user_index, _, log_bytes = window_series(flows, window_seconds)
    return lagged_rows(user_index, log_bytes, lags)


def train_test_mse(
    train: pd.DataFrame,
    test: pd.DataFrame,
    lags: int = LAGS,
    window_seconds: float = WINDOW_SECONDS,
) -> float:
    """Test MSE of a Ridge forecaster fitted on ``train`` (user-flow frames)."""
    x_train, y_train = supervised(train, lags, window_seconds)
    x_test, y_test = supervised(test, lags, window_seconds)
    if len(y_test) == 0:
        return float("nan")
    if len(y_train) == 0:
        predicted = np.zeros(len(y_test))
    else:
        predicted = Ridge(alpha=1.0).fit(x_train, y_train).predict(x_test)
    return float(np.mean((predicted - y_test) ** 2))


def compute(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    train: pd.DataFrame,
    lags: int = LAGS,
    window_seconds: float = WINDOW_SECONDS,
) -> dict[str, float]:
    """``{"tstr_forecast_mse": ..., "trtr_forecast_mse": ...}``; ``real`` is the real test
    split, ``train`` the real training split."""
    return {
        NAME: train_test_mse(synthetic, real, lags, window_seconds),
        "trtr_forecast_mse": train_test_mse(train, real, lags, window_seconds),
    }

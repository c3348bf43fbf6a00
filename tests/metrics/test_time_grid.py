"""The log's clock (``metrics.time_grid``): known shares of whole-second starts and ends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import time_grid

T0 = 1_458_000_000.0  # March 2016, UGR'16's epoch: float64 rounding of about 2.4e-7 s


def _flows(ts: np.ndarray, duration: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts, "duration": duration})


def test_a_log_that_ends_on_whole_seconds_is_told_from_one_that_does_not() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    # nfdump-like: ends on whole seconds, durations in ms, 30% of them zero
    end = T0 + np.sort(rng.integers(0, 86_400, n)).astype(float)
    duration = np.where(rng.random(n) < 0.3, 0.0, rng.integers(1, 5000, n) / 1000.0)
    real = _flows(end - duration, duration)
    starts, ends = time_grid.whole_second_shares(real)
    assert ends == 1.0
    # a flow starts on one only where its duration is whole (0 s for 30%, 1-4 s for a few)
    assert starts == pytest.approx(np.mean(duration == np.round(duration)))
    # a sample on a 1 ms clock: about 1 in 1,000 of its times falls on a whole second
    ts = T0 + np.round(rng.uniform(0, 86_400, n), 3)
    synthetic = _flows(ts, duration)
    out = time_grid.compute(real, synthetic)
    s_start, s_end = time_grid.whole_second_shares(synthetic)
    assert s_start < 0.01 and s_end < 0.01
    assert out["time_grid_diff_end"] == pytest.approx(1.0 - s_end)
    assert out["time_grid_diff_start"] == pytest.approx(abs(starts - s_start))
    assert out["time_grid_diff"] == pytest.approx((1.0 - s_end + abs(starts - s_start)) / 2)
    # the same log scores 0 against itself, and a whole-second sample of it too
    assert time_grid.compute(real, real)["time_grid_diff"] == 0.0
    snapped = _flows(np.round(end) - duration, duration)
    assert time_grid.compute(real, snapped)["time_grid_diff"] == 0.0


def test_whole_second_logs_and_missing_durations() -> None:
    ts = T0 + np.arange(10.0)
    real = _flows(ts, np.ones(10))
    # a missing duration ends the flow where it starts; half the starts off the grid
    synthetic = _flows(ts + np.tile([0.0, 0.25], 5), np.full(10, np.nan))
    assert time_grid.whole_second_shares(synthetic) == (0.5, 0.5)
    assert time_grid.compute(real, synthetic)["time_grid_diff"] == pytest.approx(0.5)
    empty = time_grid.compute(real, real.iloc[:0])
    assert all(np.isnan(v) for v in empty.values())

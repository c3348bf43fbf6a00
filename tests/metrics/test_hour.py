"""Known answers of the hour-conditioned metrics (jsd_hour_mean, hour_mi_diff)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import hour_jsd, hour_mi
from tests.metrics.flowdata import column_resample, user_flows


@pytest.fixture(scope="module")
def shuffled(tables):
    """Draw b with its timestamps redrawn uniformly over the day (hour dependence broken)."""
    raw = tables["raw_b"].copy()
    rng = np.random.default_rng(7)
    raw["ts"] = rng.uniform(0, 86400.0, size=len(raw))
    return user_flows(raw)


def test_identical_tables_score_zero(tables, space):
    assert hour_jsd.compute(tables["a"], tables["a"], space) == pytest.approx(0.0, abs=1e-12)
    assert hour_mi.compute(tables["a"], tables["a"], space) == pytest.approx(0.0, abs=1e-12)


def test_hour_shuffle_loses_hour_conditioned_jsd(tables, space, shuffled):
    same_process = hour_jsd.compute(tables["a"], tables["b"], space)
    broken = hour_jsd.compute(tables["a"], shuffled, space)
    assert broken > 1.5 * same_process


def test_hour_shuffle_loses_within_host_hour_mi(tables, space, shuffled):
    same_process = hour_mi.compute(tables["a"], tables["b"], space)
    broken = hour_mi.compute(tables["a"], shuffled, space)
    assert broken > 4 * same_process
    per_field = hour_mi.mean_hour_mi(shuffled, space)
    assert abs(per_field["proto"]) < 0.02  # bias-corrected: no dependence left, about 0 bits


def test_corrected_mi_known_answers():
    rng = np.random.default_rng(0)
    n = 48000
    hour = np.tile(np.arange(24), n // 24)
    host = np.zeros(n, dtype=np.int64)
    determined = hour % 4  # code is a function of the hour: MI = H(code) = 2 bits
    assert hour_mi.host_hour_mi(host, hour, determined, 4)[0] == pytest.approx(2.0, abs=0.01)
    independent = rng.integers(0, 4, size=n)
    assert abs(hour_mi.host_hour_mi(host, hour, independent, 4)[0]) < 0.002


def test_hours_weighted_by_real_flows_and_missing_hours_score_one(space):
    real = pd.DataFrame({"hour": [1] * 30 + [2] * 10, "proto": [6] * 30 + [17] * 10})
    # hour 1 agrees; hour 2 disjoint protocols (JSD 1 for proto, 0 for every other field)
    synth = pd.DataFrame({"hour": [1] * 10 + [2] * 10, "proto": [6] * 10 + [1] * 10})
    n_fields = len(space.fields)
    want = 0.25 * (1.0 / n_fields)
    assert hour_jsd.compute(real, synth, space) == pytest.approx(want, abs=1e-9)
    # hour 2 absent from the sample: it scores 1 with its weight 1/4; the sample's hour 5,
    # with no real flow, carries no weight
    synth = pd.DataFrame({"hour": [1] * 10 + [5] * 10, "proto": [6] * 10 + [1] * 10})
    assert hour_jsd.compute(real, synth, space) == pytest.approx(0.25, abs=1e-9)
    assert np.isnan(hour_jsd.compute(real.iloc[:0], synth, space))


def test_column_resample_breaks_hour_metrics(tables, space):
    resampled = user_flows(column_resample(tables["raw_b"], 3))
    assert hour_jsd.compute(tables["a"], resampled, space) > hour_jsd.compute(
        tables["a"], tables["b"], space
    )

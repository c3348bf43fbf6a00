"""Known answers of mi_pairwise_diff and acf_mae."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from nfsynth.metrics import acf, mi_pairwise
from nfsynth.metrics.common import LN2, mutual_information_bits
from tests.metrics.flowdata import column_resample, user_flows


def test_mutual_information_matches_sklearn():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=3000)
    b = (a + rng.integers(0, 2, size=3000)) % 7
    expected = mutual_info_score(a, b) / LN2
    assert mutual_information_bits(a, b, 5, 7) == pytest.approx(expected, rel=1e-12)


def test_column_resample_is_caught_by_pairwise_mi(tables, space):
    assert mi_pairwise.compute(tables["a"], tables["a"], space) == pytest.approx(0.0, abs=1e-12)
    same_process = mi_pairwise.compute(tables["a"], tables["b"], space)
    resampled = user_flows(column_resample(tables["raw_b"], 1))
    broken = mi_pairwise.compute(tables["a"], resampled, space)
    assert broken > 5 * same_process


def test_pooled_acf_of_alternating_series():
    # +1/-1 alternating, users of length 10 and 20: ACF_k = (-1)^k (n - k) / n, then the mean
    user = np.repeat([0, 1], [10, 20])
    values = np.concatenate([np.tile([1.0, -1.0], 5), np.tile([1.0, -1.0], 10)])
    out = acf.pooled_acf(user, values, 3)
    np.testing.assert_allclose(out, [-0.925, 0.85, -0.775])


def test_identical_tables_have_zero_acf_mae(tables):
    assert acf.compute(tables["a"], tables["a"])["acf_mae"] == pytest.approx(0.0, abs=1e-12)


def test_timestamp_shuffle_loses_acf(tables):
    raw = tables["raw_b"].copy()
    raw["ts"] = np.random.default_rng(5).uniform(0, 86400.0, size=len(raw))
    shuffled = user_flows(raw)
    same_process = acf.compute(tables["a"], tables["b"])["acf_mae"]
    broken = acf.compute(tables["a"], shuffled)
    assert broken["acf_mae"] > 2 * same_process
    # flow counts: lags beyond ~10 are noise at 12 hosts x 288 windows, so only "worse"
    assert broken["acf_mae_flows"] > acf.compute(tables["a"], tables["b"])["acf_mae_flows"]
    assert np.abs(acf.acf_curves(shuffled)["flows"][:3]).max() < 0.1

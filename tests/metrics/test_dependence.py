"""Known answers of mi_pairwise_diff and acf_mae."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from nfsynth.metrics import acf, mi_pairwise
from nfsynth.metrics.common import LN2, mutual_information_bits
from tests.metrics.flowdata import column_resample, make_raw, user_flows


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


@pytest.fixture(scope="module")
def two_kinds():
    """6 hosts whose 5-minute activity persists (AR(1) 0.8, over a day with office hours) and
    6 with no memory (the office hours only, a flat rate): per-host ACF curves and the frame."""
    import pandas as pd

    flat = user_flows(make_raw(62, n_users=6, rate=4.0, prefix="CompF", persistence=0.0))
    flat = flat[(flat["ts"] % 86400 >= 9 * 3600) & (flat["ts"] % 86400 < 17 * 3600)]
    persistent = make_raw(61, n_users=6, rate=4.0, prefix="CompP", persistence=0.8)
    flows = pd.concat([user_flows(persistent), flat], ignore_index=True)
    return acf.host_curves(flows), flows


def test_split_errors_are_the_acf_error_of_the_hosts_scored_as_a_sample(two_kinds):
    """The training hosts' error is ``acf.compute`` of the test hosts against the training
    hosts' flows; the no-dependence error is ``acf.compute`` against curves of zeros (the
    mean absolute ACF of the test hosts)."""
    curves, flows = two_kinds
    users = sorted(curves)
    train, test = users[0:3] + users[6:9], users[3:6] + users[9:12]
    own, flat = acf.split_errors(curves, train, test)
    real = flows[flows["user"].isin(test)]
    assert own == pytest.approx(acf.compute(real, flows[flows["user"].isin(train)])["acf_mae"])
    test_curves = acf.acf_curves(real)
    assert flat == pytest.approx(np.mean([np.abs(test_curves[k]).mean() for k in test_curves]))


def test_host_split_draws_find_the_splits_where_no_dependence_scores_best(two_kinds):
    """Hosts of one kind: the training hosts beat the flat curve on every draw. Persistent
    hosts trained against memoryless test hosts: the flat curve wins, the split UGR'16's
    ACF comparison sits on; over random splits of both kinds it wins on some draws only.
    Deterministic by seed; an impossible split is refused."""
    curves, _ = two_kinds
    persistent = {u: c for u, c in curves.items() if u.startswith("CompP")}
    one_kind = acf.host_split_draws(persistent, 3, 3, 20, seed=0)
    assert (one_kind[:, 0] < one_kind[:, 1]).all()
    users = sorted(curves)
    own, flat = acf.split_errors(curves, users[6:], users[:6])  # train CompP, test CompF
    assert flat < own
    mixed = acf.host_split_draws(curves, 6, 4, 200, seed=0)
    share = (mixed[:, 1] < mixed[:, 0]).mean()
    assert 0.0 < share < 1.0
    np.testing.assert_array_equal(mixed, acf.host_split_draws(curves, 6, 4, 200, seed=0))
    with pytest.raises(ValueError, match="12 hosts into 9 training and 4 test"):
        acf.host_split_draws(curves, 9, 4, 1, seed=0)

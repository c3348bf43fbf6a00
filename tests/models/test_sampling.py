"""Shared helpers: latent intervals match the evaluation bins, overlaps and vocabularies keep
mass, previous rows, accumulated times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.models import sampling as S


@pytest.fixture
def space():
    flows = pd.DataFrame(
        {"bytes": [0, 1, 2, 5, 40, 700, 90000], "dt": [0.0, 0.2, 1.5, 3, 60, 700, 9000]}
    )
    return EvalSpace.fit(flows, n_bins=6)


def test_integer_intervals_hold_the_counts_of_each_bin(space):
    lo, hi = S.eval_intervals(space, "bytes", integer=True)
    counts = np.arange(0, 200000)
    codes = space.encode_field("bytes", counts)
    y = np.log1p(counts + 0.5)  # any dequantised value of the count
    inside = np.searchsorted(hi, y, side="right")
    np.testing.assert_array_equal(inside, codes)
    assert lo[0] == -np.inf and hi[-1] == np.inf


def test_continuous_intervals_are_the_edges(space):
    lo, hi = S.eval_intervals(space, "dt", integer=False)
    x = np.array([0.0, 0.3, 2.0, 100.0, 1e6])
    np.testing.assert_array_equal(
        np.searchsorted(hi, np.log1p(x), side="right"), space.encode_field("dt", x)
    )


def test_overlap_rows_sum_to_one(space):
    lo, hi = S.eval_intervals(space, "bytes", integer=True)
    own = np.linspace(0, 13, 9)
    m = S.overlap_matrix(own, lo, hi)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert (m >= 0).all()


def test_latent_round_trip_of_counts():
    x = np.arange(0, 1000, dtype=float)
    y = S.to_latent(x, True, np.random.default_rng(0))
    np.testing.assert_array_equal(S.from_latent(y, True), x)


def test_previous_row_per_user_in_time_order():
    frame = pd.DataFrame({"user": ["a", "b", "a", "a", "b"], "ts": [5.0, 1.0, 1.0, 9.0, 2.0]})
    np.testing.assert_array_equal(S.previous_row(frame), [2, -1, -1, 0, 1])


def test_accumulated_times_fill_the_horizon():
    rng = np.random.default_rng(0)
    host, ts = S.accumulate_times(lambda n, r: r.exponential(10.0, n), 4, 100.0, 3600.0, rng)
    assert ts.min() >= 100.0 and ts.max() < 3700.0
    counts = np.bincount(host, minlength=4)
    assert counts == pytest.approx(np.full(4, 360), rel=0.2)
    for h in range(4):
        assert np.all(np.diff(ts[host == h]) >= 0)


def test_vocab_decode_draws_other_from_the_pool():
    vocab = S.Vocab.fit(np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2), top_k=1)
    out = vocab.decode(np.ones(2000, dtype=int), np.random.default_rng(0))
    assert set(out) == {"b", "c"}
    assert (out == "b").mean() == pytest.approx(0.6, abs=0.04)


def test_within_bin_quantiles_reproduce_a_skewed_bin_and_its_eval_mass():
    """One bin [0, 1) whose values pile up near 0 (y = u^3): draws by the within-bin CDF
    keep that shape (uniform draws would not), and the bin's mass in [0, 0.125) is about
    P(u^3 < 0.125) = 0.5."""
    rng = np.random.default_rng(0)
    edges = np.array([0.0, 1.0, 2.0])
    y = np.r_[rng.random(20000) ** 3, 1.0 + rng.random(50)]
    codes = np.r_[np.zeros(20000, np.int64), np.ones(50, np.int64)]
    q = S.bin_quantiles(edges, codes, y)
    assert q.shape == (2, S.BIN_QUANTILES + 1)
    assert q[0, 0] == 0.0 and q[0, -1] == 1.0 and np.all(np.diff(q, axis=1) >= 0)
    draws = S.draw_in_bins(q, np.zeros(20000, np.int64), rng)
    assert np.median(draws) == pytest.approx(0.125, abs=0.02)
    assert draws.min() >= 0.0 and draws.max() < 1.0
    lo, hi = np.array([-np.inf, 0.125, 1.0]), np.array([0.125, 1.0, np.inf])
    share = S.quantile_overlap(q, lo, hi)
    np.testing.assert_allclose(share.sum(axis=1), 1.0)
    assert share[0, 0] == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(share[1], [0.0, 0.0, 1.0])
    # a bin with too few values falls back to uniform, as overlap_matrix has it
    sparse = S.bin_quantiles(edges, np.zeros(1, np.int64), np.array([0.2]))
    np.testing.assert_allclose(
        S.quantile_overlap(sparse, lo, hi), S.overlap_matrix(edges, lo, hi), atol=1e-12
    )

"""Known answers of the bursts metric (``metrics.bursts``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import bursts

SHORT, LONG = 0.2, 30.0  # seconds: below and above ``bursts.BURST_GAP``


def host(user: str, gaps: np.ndarray, start: float = 0.0) -> pd.DataFrame:
    """One host's flows, the first at ``start``, then one after each of ``gaps`` (s)."""
    ts = start + np.r_[0.0, np.cumsum(gaps)]
    return pd.DataFrame({"user": user, "ts": ts})


def runs_of(length: int, n_runs: int) -> np.ndarray:
    """Gaps: ``n_runs`` times a long gap, then ``length`` short gaps; a long gap closes the
    last run."""
    return np.r_[np.tile(np.r_[LONG, np.full(length, SHORT)], n_runs), LONG]


def test_runs_of_twenty_continue_with_their_known_shares() -> None:
    """Runs of exactly 20 short gaps: after k or more short gaps, the run has 21 - k gaps to
    score of which 20 - k are short, so the shares are 19/20, 18/19, 16/17 and 12/13; gaps
    drawn short independently with probability 0.6 read 0.6 at every k."""
    real = pd.concat([host("a", runs_of(20, 40)), host("b", runs_of(20, 40), 5.0)])
    got = bursts.continuation(real)
    for k in bursts.RUN_STEPS:
        assert got[k][0] == pytest.approx((20 - k) / (21 - k))
        assert got[k][1] == 2 * 40 * (21 - k)
    assert got[0][0] == pytest.approx(20 / 21, abs=0.002)  # every gap: 20 of each 21 short

    rng = np.random.default_rng(0)
    drawn = host("s", np.where(rng.random(200_000) < 0.6, SHORT, LONG))
    shares = bursts.continuation(drawn)
    for k in bursts.RUN_STEPS:
        assert shares[k][0] == pytest.approx(0.6, abs=0.03)
    out = bursts.compute(real, drawn)
    assert set(out) == {"burst_diff"} | {f"burst_diff_{k}" for k in bursts.RUN_STEPS}
    assert out["burst_diff_8"] == pytest.approx(12 / 13 - 0.6, abs=0.03)
    expected = np.mean([(20 - k) / (21 - k) - 0.6 for k in bursts.RUN_STEPS])
    assert out["burst_diff"] == pytest.approx(expected, abs=0.02)
    assert bursts.compute(real, real)["burst_diff"] == 0.0


def test_runs_the_sample_never_reaches_score_its_longest_run() -> None:
    """A sample alternating one short and one long gap never has two short gaps in a row: its
    share after one is 0, and that is its estimate after 2, 4 and 8 too. A sample without a
    short gap scores its share of short gaps, 0."""
    real = host("a", runs_of(20, 80))
    alternating = host("s", np.tile([SHORT, LONG], 2000))
    assert bursts.continuation(alternating)[2] == (pytest.approx(float("nan"), nan_ok=True), 0)
    out = bursts.compute(real, alternating)
    for k in bursts.RUN_STEPS:
        assert out[f"burst_diff_{k}"] == pytest.approx((20 - k) / (21 - k))
    none_short = bursts.compute(real, host("s", np.full(2000, LONG)))
    assert none_short["burst_diff_8"] == pytest.approx(12 / 13)


def test_runs_stop_at_a_host_boundary_and_sparse_runs_are_not_scored() -> None:
    """Host a's flows end in 10 short gaps and host b's begin with 10: no run of 20 crosses
    the boundary, whatever the rows' order. A real frame with fewer than MIN_CASES gaps after
    a run of k scores no k there, and none at all without short gaps (NaN)."""
    a = host("a", np.r_[LONG, np.full(10, SHORT)])
    b = host("b", np.r_[np.full(10, SHORT), LONG], 100.0)
    both = pd.concat([b, a]).sample(frac=1.0, random_state=1)
    got = bursts.continuation(both, (1, 8, 10))
    # a: after runs of 1..9 a short gap follows (9 cases); its run of 10 ends its flows.
    # b: the same 9, then the long gap after its run of 10 (10 cases)
    assert got[1] == (pytest.approx(18 / 19), 19)
    assert got[8] == (pytest.approx(4 / 5), 5)  # a: runs 8, 9; b: runs 8, 9, 10
    assert got[10] == (0.0, 1)

    sparse = host("a", runs_of(5, 60))  # 60 cases after 4 short gaps, none after 8
    out = bursts.compute(sparse, sparse)
    assert set(out) == {"burst_diff", "burst_diff_1", "burst_diff_2"}
    assert bursts.MIN_CASES > 60 * (6 - 4)
    assert np.isnan(bursts.compute(host("a", np.full(500, LONG)), sparse)["burst_diff"])

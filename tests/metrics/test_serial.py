"""Known answers of the runs-of-like-flows metric (``metrics.serial``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics import serial


def runs(n_hosts: int, n: int, run: float, seed: int) -> pd.DataFrame:
    """Hosts whose flows alternate runs (mean length ``run``; 1: none) of small (1-3
    packets, 0-1 s) and large (40-120 packets, 5-60 s) flows; bytes = packets x 500."""
    rng = np.random.default_rng(seed)
    parts = []
    for h in range(n_hosts):
        state = (np.cumsum(rng.random(n) < 1.0 / run) % 2 == 1) if run > 1 else rng.random(n) < 0.5
        packets = np.where(state, rng.integers(40, 121, n), rng.integers(1, 4, n))
        parts.append(
            pd.DataFrame(
                {
                    "user": f"h{h}",
                    "ts": np.sort(rng.uniform(0, 86400, n)),
                    "duration": np.where(state, rng.uniform(5, 60, n), rng.uniform(0, 1, n)),
                    "packets": packets,
                    "bytes": packets * 500,
                    "proto": 6,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def space() -> EvalSpace:
    return EvalSpace.fit(runs(4, 500, 20.0, 0))


def test_runs_of_like_flows_correlate_and_independent_draws_do_not(space):
    """Runs of about 20 flows: the state (small or large) of consecutive flows correlates
    1 - 2/20 = 0.9, and a flow's rank is half its state and half its rank within the state,
    so consecutive ranks correlate 0.9 x 0.25 / (0.25 + 1/12) = 0.675; flows drawn
    independently about 0."""
    in_runs, shuffled = runs(4, 2000, 20.0, 1), runs(4, 2000, 1.0, 2)
    for field in ("packets", "bytes", "duration"):
        assert serial.consecutive_rank_correlation(in_runs, field) == pytest.approx(0.675, abs=0.06)
        assert abs(serial.consecutive_rank_correlation(shuffled, field)) < 0.05
    out = serial.compute(in_runs, shuffled, space)
    assert set(out) == {"serial_corr_diff"} | {
        f"serial_corr_diff_{f}" for f in ("duration", "packets", "bytes")
    }
    assert out["serial_corr_diff"] == pytest.approx(0.675, abs=0.07)
    assert serial.compute(in_runs, in_runs, space)["serial_corr_diff"] == 0.0


def test_pairs_stay_within_hosts_and_in_time_order(space):
    """Two hosts, each constant (one small, one large), their rows interleaved and out of
    time order: within hosts there is no variation, so no correlation (NaN, not the 1.0
    that pairs pooled over the hosts would give); a host of no runs beside a host of runs
    reads the mean of the two; reversing time or shuffling rows keeps rho; too few pairs
    give NaN."""
    rng = np.random.default_rng(3)
    a = runs(1, 400, 15.0, 4)
    assert np.isnan(serial.consecutive_rank_correlation(
        pd.DataFrame({"user": ["x", "y"] * 200, "ts": rng.permutation(400),
                      "packets": [2, 90] * 200}), "packets"))  # fmt: skip
    mixed = pd.concat([a, runs(1, 400, 1.0, 5).assign(user="h9")])
    both = [serial.consecutive_rank_correlation(f, "packets") for f in (a, mixed)]
    assert both[1] == pytest.approx(both[0] / 2, abs=0.06)
    flipped = a.assign(ts=-a["ts"])
    assert serial.consecutive_rank_correlation(flipped, "packets") == pytest.approx(
        serial.consecutive_rank_correlation(a, "packets")
    )
    shuffled_rows = a.sample(frac=1.0, random_state=0)  # row order is not time order
    assert serial.consecutive_rank_correlation(shuffled_rows, "packets") == pytest.approx(
        serial.consecutive_rank_correlation(a, "packets")
    )
    few = a.head(10)
    assert np.isnan(serial.consecutive_rank_correlation(few, "packets"))
    assert np.isnan(serial.compute(few, few, space)["serial_corr_diff"])

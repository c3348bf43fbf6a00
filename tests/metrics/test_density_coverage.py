"""Known answers of density and coverage (Naeem et al. 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics import coverage, density
from nfsynth.metrics.common import ball_counts


def continuous(seed: int, n: int = 1500, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(5 + shift, 1, size=(n, 3))
    return pd.DataFrame(np.expm1(x), columns=["duration", "packets", "bytes"])


@pytest.fixture(scope="module")
def cont_space() -> EvalSpace:
    return EvalSpace.fit(continuous(0))


def test_identical_sets(cont_space):
    real = continuous(1)
    out = density.density_coverage(real, real, cont_space, k=5)
    assert out["coverage"] == 1.0
    # every point sits in its own ball and in its k neighbours' balls on average: (k+1)/k
    assert out["density"] == pytest.approx(6 / 5, abs=0.05)


def test_same_distribution_scores_about_one(cont_space):
    real, synth = continuous(1), continuous(2)
    assert density.compute(real, synth, cont_space) == pytest.approx(1.0, abs=0.15)
    assert coverage.compute(real, synth, cont_space) > 0.9


def test_far_away_sets_score_zero(cont_space):
    real, far = continuous(1), continuous(2, shift=40.0)
    assert density.compute(real, far, cont_space) == 0.0
    assert coverage.compute(real, far, cont_space) == 0.0


def test_ball_counts_by_hand():
    real = np.array([[0.0], [1.0], [3.0]])
    synth = np.array([[0.5], [10.0]])
    counts, margin = ball_counts(real, synth, k=1)
    # radii (nearest other real point): 1, 1, 2; 0.5 lies in the balls of 0 and 1
    assert counts.tolist() == [1, 1, 0]
    np.testing.assert_allclose(margin, [-0.5, -0.5, 0.5], atol=1e-6)

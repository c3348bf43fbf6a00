"""Coverage (Naeem et al. 2020): the share of real points whose k-NN ball holds a synthetic one.

Same encoding, sampling and balls as ``density`` (k = 5, scaler fitted on the real side).
1 when the synthetic flows reach every region of the real data, 0 when none is near any real
flow. Measures diversity (mode dropping), where density measures fidelity.
"""

from __future__ import annotations

import pandas as pd

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.density import K, density_coverage

NAME = "coverage"
GOAL = "max"
MIN_VALUE = 0.0
MAX_VALUE = 1.0


def compute(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    space: EvalSpace,
    *,
    k: int = K,
    max_rows: int = 5000,
) -> float:
    """``coverage`` in [0, 1]."""
    return density_coverage(real, synthetic, space, k=k, max_rows=max_rows)["coverage"]

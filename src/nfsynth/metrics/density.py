"""Density (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models").

Real and synthetic flows are encoded numerically (``common.numeric_encoding``: log1p of the
continuous fields, one-hot evaluation-space codes of the categorical ones), standardised with
a scaler fitted on the real side, and ``evaluation.prdc_rows`` rows of each side are drawn.
Each real point gets a ball reaching its k-th nearest real neighbour (k = 5). Density is
``sum over synthetic points of the number of real balls containing it / (k * M)``: about 1
when the synthetic points are spread like the real ones, above 1 when they crowd the dense
real regions, 0 when they fall outside every ball.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import ball_counts, sample_rows, standardised_pair

NAME = "density"
GOAL = "max"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")
K = 5


def density_coverage(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    space: EvalSpace,
    *,
    k: int = K,
    max_rows: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """``{"density": ..., "coverage": ...}`` of two user-flow frames (one k-NN pass)."""
    real = sample_rows(real, max_rows, seed)
    synthetic = sample_rows(synthetic, max_rows, seed + 1)
    if len(real) < 2 or len(synthetic) == 0:
        return {"density": float("nan"), "coverage": float("nan")}
    x, (y,) = standardised_pair(space, real, [synthetic])
    counts, margin = ball_counts(x, y, k)
    k_used = min(k, len(x) - 1)
    return {
        "density": float(counts.sum()) / (k_used * len(y)),
        "coverage": float(np.mean(margin <= 0)),
    }


def compute(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    space: EvalSpace,
    *,
    k: int = K,
    max_rows: int = 5000,
) -> float:
    """``density`` (>= 0, about 1 for matching distributions)."""
    return density_coverage(real, synthetic, space, k=k, max_rows=max_rows)["density"]

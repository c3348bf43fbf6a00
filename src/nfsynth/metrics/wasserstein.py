"""Wasserstein-1 distance on ``log1p`` of the continuous fields, per field and its mean.

``w1_<field>``: ``scipy.stats.wasserstein_distance`` between the real and synthetic
``log1p(value)`` samples (units: log1p of seconds, packets or bytes); ``w1_mean``: the mean
over the continuous fields of the evaluation space. Shifting every log1p value by c gives c.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import log1p_field

NAME = "w1_mean"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")


def compute(real: pd.DataFrame, synthetic: pd.DataFrame, space: EvalSpace) -> dict[str, float]:
    """``{"w1_mean": ..., "w1_<field>": ...}`` over the continuous fields of ``space``."""
    out: dict[str, float] = {}
    for name in space.fields:
        if not space.is_continuous(name):
            continue
        a, b = log1p_field(real, name), log1p_field(synthetic, name)
        out[f"w1_{name}"] = float(wasserstein_distance(a, b)) if a.size and b.size else np.nan
    out[NAME] = float(np.nanmean(list(out.values()))) if out else float("nan")
    return out

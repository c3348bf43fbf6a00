"""Per-field Jensen-Shannon divergence in the evaluation space, and its mean.

``jsd_<field>``: JSD (base 2) between the real and synthetic histograms of the field's
evaluation-space codes; ``jsd_mean``: the mean over fields. 0 = same marginal, 1 = disjoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import field_codes, field_counts, jsd_counts

NAME = "jsd_mean"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0


def compute(real: pd.DataFrame, synthetic: pd.DataFrame, space: EvalSpace) -> dict[str, float]:
    """``{"jsd_mean": ..., "jsd_<field>": ...}`` over ``space.fields`` (user-flow frames)."""
    real_codes = field_codes(space, real)
    synth_codes = field_codes(space, synthetic)
    out: dict[str, float] = {}
    for name in space.fields:
        out[f"jsd_{name}"] = jsd_counts(
            field_counts(space, name, real_codes[name]),
            field_counts(space, name, synth_codes[name]),
        )
    out[NAME] = float(np.nanmean(list(out.values()))) if out else float("nan")
    return out

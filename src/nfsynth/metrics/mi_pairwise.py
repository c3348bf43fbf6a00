"""Cross-field dependence: the pairwise mutual-information matrix, real against synthetic.

For every pair of evaluation-space fields, the plug-in mutual information of their codes in
bits (``common.mutual_information_bits``, equal to ``sklearn.metrics.mutual_info_score`` / ln 2), on the real and on the synthetic flows; ``mi_pairwise_diff`` is the
mean absolute difference over the pairs. A sample that draws each field independently scores
about the real data's total pairwise MI.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import field_codes, mutual_information_bits

NAME = "mi_pairwise_diff"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")


def pairwise_mi(flows: pd.DataFrame, space: EvalSpace) -> dict[tuple[str, str], float]:
    """MI in bits for every field pair (a, b), a before b in ``space.fields``."""
    codes = field_codes(space, flows)
    return {
        (a, b): mutual_information_bits(codes[a], codes[b], space.n_bins(a), space.n_bins(b))
        for a, b in combinations(space.fields, 2)
    }


def compute(real: pd.DataFrame, synthetic: pd.DataFrame, space: EvalSpace) -> float:
    """``mi_pairwise_diff`` in bits."""
    a, b = pairwise_mi(real, space), pairwise_mi(synthetic, space)
    diffs = [abs(a[k] - b[k]) for k in a]
    return float(np.nanmean(diffs)) if diffs else float("nan")

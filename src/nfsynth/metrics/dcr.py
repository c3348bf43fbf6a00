"""Privacy: distance to closest record (DCR), synthetic-to-train against holdout-to-train.

Flows are encoded numerically on the record fields (every evaluation-space field but ``dt``,
which comes from the timestamps: log1p of durations and counts, one-hot codes of protocol,
ports, direction, peer kind), standardised with a scaler fitted on the training rows.
``evaluation.privacy_rows`` rows of the real training split, the synthetic flows and the real
holdout (test) split are drawn. For each synthetic and each holdout flow, the Euclidean
distance to its nearest training flow (``sklearn.neighbors.NearestNeighbors``).

``dcr_p5_ratio`` / ``dcr_median_ratio``: the 5th percentile / median of the synthetic DCRs
over those of the holdout, each plus ``EPS`` (so two zero quantiles give 1). About 1 when the
model is no closer to its training data than unseen real flows are; near 0 when it copies
training flows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import sample_rows, standardised_pair

NAME = "dcr_p5_ratio"
GOAL = "max"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")
EPS = 1e-6
TIME_FIELDS = ("dt",)


def closest_distances(
    train: pd.DataFrame, others: list[pd.DataFrame], space: EvalSpace
) -> list[np.ndarray]:
    """Distance (standardised units) from each row of each frame to its nearest train row."""
    fields = [f for f in space.fields if f not in TIME_FIELDS]
    x_train, encoded = standardised_pair(space, train, others, fields)
    nn = NearestNeighbors(n_neighbors=1).fit(x_train)
    return [nn.kneighbors(x)[0][:, 0] if len(x) else np.zeros(0) for x in encoded]


def compute(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    space: EvalSpace,
    *,
    max_rows: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """``{"dcr_p5_ratio", "dcr_median_ratio", "dcr_p5_synthetic", "dcr_p5_holdout"}``."""
    train = sample_rows(train, max_rows, seed)
    synthetic = sample_rows(synthetic, max_rows, seed + 1)
    holdout = sample_rows(holdout, max_rows, seed + 2)
    if len(train) == 0 or len(synthetic) == 0 or len(holdout) == 0:
        return {"dcr_p5_ratio": float("nan"), "dcr_median_ratio": float("nan")}
    d_synth, d_hold = closest_distances(train, [synthetic, holdout], space)
    out = {}
    for label, q in (("p5", 5.0), ("median", 50.0)):
        s, h = float(np.percentile(d_synth, q)), float(np.percentile(d_hold, q))
        out[f"dcr_{label}_ratio"] = (s + EPS) / (h + EPS)
    return out

"""Hour-conditioned JSD: the per-hour JSD averaged over the real flows' hours.

For each hour h (0..23, UTC, the user tables' ``hour``) and each evaluation-space field, the
JSD (base 2) between the real flows of hour h and the synthetic flows of hour h; the per-hour
value is the mean over fields, and ``jsd_hour_mean`` is its expectation over the real hour of
day, ``sum_h P_real(h) JSD_h`` (a conditional divergence is averaged over the conditioning
distribution). An hour with real flows but no synthetic flow scores 1 (the sample has nothing
of that hour); hours without real flows carry no weight. Weighting by the real flows also keeps
the quiet night hours, where a few hundred flows give a histogram JSD its small-sample bias,
from outweighing the busy hours: an equal mean over hours rewarded a sample with flat hours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import field_codes, jsd_counts

NAME = "jsd_hour_mean"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
HOURS = 24


def hour_field_counts(hour: np.ndarray, codes: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts of (hour, code), shape (24, n_bins)."""
    return np.bincount(hour * n_bins + codes, minlength=HOURS * n_bins).reshape(HOURS, n_bins)


def hours_of(flows: pd.DataFrame) -> np.ndarray:
    """Hour of day of each flow, int64 (n,): the ``hour`` column, else from ``ts`` (UTC)."""
    if "hour" in flows:
        return pd.to_numeric(flows["hour"]).to_numpy(dtype=np.int64) % HOURS
    ts = pd.to_numeric(flows["ts"]).to_numpy(dtype=float)
    return (np.floor(ts / 3600.0).astype(np.int64)) % HOURS


def compute(real: pd.DataFrame, synthetic: pd.DataFrame, space: EvalSpace) -> float:
    """``jsd_hour_mean`` in [0, 1] (user-flow frames with ``hour`` or ``ts``); NaN when
    ``real`` has no flow."""
    h_real, h_synth = hours_of(real), hours_of(synthetic)
    n_real = np.bincount(h_real, minlength=HOURS)[:HOURS].astype(float)
    n_synth = np.bincount(h_synth, minlength=HOURS)[:HOURS]
    if n_real.sum() == 0:
        return float("nan")
    weight = n_real / n_real.sum()
    per_hour = np.ones(HOURS)  # hours the sample lacks score 1
    shared = (n_real > 0) & (n_synth > 0)
    if shared.any():
        real_codes, synth_codes = field_codes(space, real), field_codes(space, synthetic)
        per_field = []
        for name in space.fields:
            n_bins = space.n_bins(name)
            p = hour_field_counts(h_real, real_codes[name], n_bins)[shared]
            q = hour_field_counts(h_synth, synth_codes[name], n_bins)[shared]
            per_field.append(jsd_counts(p, q, axis=1))
        per_hour[shared] = np.nanmean(np.vstack(per_field), axis=0)
    return float(np.sum(weight * per_hour))

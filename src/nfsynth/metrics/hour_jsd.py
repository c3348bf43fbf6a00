"""Hour-conditioned JSD: the mean over the hours of the day of the per-hour JSD.

For each hour h (0..23, UTC, the user tables' ``hour``) and each evaluation-space field, the
JSD (base 2) between the real flows of hour h and the synthetic flows of hour h; the per-hour
value is the mean over fields, and ``jsd_hour_mean`` the mean over hours. Hours with no flow
on either side are skipped (they carry no conditional distribution to compare); when no hour
is shared the value is 1 (nothing of the daily profile matches).
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
    """``jsd_hour_mean`` in [0, 1] (user-flow frames with ``hour`` or ``ts``)."""
    h_real, h_synth = hours_of(real), hours_of(synthetic)
    shared = (np.bincount(h_real, minlength=HOURS) > 0) & (
        np.bincount(h_synth, minlength=HOURS) > 0
    )
    if not shared.any():
        return 1.0
    real_codes, synth_codes = field_codes(space, real), field_codes(space, synthetic)
    per_field = []
    for name in space.fields:
        n_bins = space.n_bins(name)
        p = hour_field_counts(h_real, real_codes[name], n_bins)[shared]
        q = hour_field_counts(h_synth, synth_codes[name], n_bins)[shared]
        per_field.append(jsd_counts(p, q, axis=1))
    return float(np.mean(np.nanmean(np.vstack(per_field), axis=0)))

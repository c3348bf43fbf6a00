"""Inter-arrival times: JSD of the distribution of the time between a host's flows.

``dt`` is the time (s) since the same host's previous flow, recomputed from ``ts`` within each
host (the first flow of a host has none and is left out). Values are binned on a fixed,
data-independent log10 grid (one bin below 1 ms, then tenth-of-a-decade bins from 1 ms to
10^6 s, one bin above), finer than the evaluation space's ``dt`` bins, and compared by JSD
(base 2, in [0, 1]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.metrics.common import jsd_counts

NAME = "interarrival_jsd"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
EDGES = np.concatenate([[-np.inf], np.arange(-3.0, 6.0 + 1e-9, 0.1), [np.inf]])


def host_gaps(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(gaps, same)`` of the frame's rows sorted by (user, ts): the seconds between each
    row and the next, float64 (n - 1,), and whether the two are one host's, bool (n - 1,)."""
    frame = flows[["user", "ts"]].sort_values(["user", "ts"], kind="mergesort")
    user = frame["user"].astype(str).to_numpy()
    ts = frame["ts"].to_numpy(dtype=float)
    return np.diff(ts), user[1:] == user[:-1]


def interarrivals(flows: pd.DataFrame) -> np.ndarray:
    """Seconds between consecutive flows of the same host, float64 (n - hosts,)."""
    gaps, same = host_gaps(flows)
    return gaps[same]


def histogram(dt: np.ndarray) -> np.ndarray:
    """Counts of ``dt`` on the fixed log10 grid, shape (len(EDGES) - 1,)."""
    with np.errstate(divide="ignore"):
        x = np.log10(np.clip(dt, 0.0, None))
    return np.histogram(x, bins=EDGES)[0].astype(float)


def compute(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """``interarrival_jsd`` in [0, 1]; 1 when one side has no inter-arrival at all."""
    p, q = histogram(interarrivals(real)), histogram(interarrivals(synthetic))
    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    return float(jsd_counts(p, q))

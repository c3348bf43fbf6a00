"""Privacy: the share of synthetic flows that copy a training flow exactly.

A flow is compared on the canonical fields other than ``ts`` with its own host's name left
out (synthetic hosts are renamed, so ``src``/``dst`` become ``direction`` and ``peer``):
``duration, proto, sport, dport, packets, bytes, rev_packets, rev_bytes, direction, peer``.
``exact_copy_share``: the share of synthetic flows whose values equal those of some flow of
the real training split. ``exact_copy_share_holdout``, the same share for real held-out
flows, says how often real traffic repeats itself on these fields (a reference, not a goal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.evalspace import categorical_text

NAME = "exact_copy_share"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
NUMERIC = ("duration", "packets", "bytes", "rev_packets", "rev_bytes")
TEXT = ("proto", "sport", "dport", "direction", "peer")


def row_keys(flows: pd.DataFrame) -> np.ndarray:
    """A uint64 hash per flow of the compared fields (missing columns count as null)."""
    parts = {}
    for name in NUMERIC:
        if name in flows:
            x = pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        else:
            x = np.full(len(flows), np.nan)
        parts[name] = np.round(np.nan_to_num(x, nan=-1.0), 6)
    for name in TEXT:
        parts[name] = categorical_text(flows[name]) if name in flows else np.full(len(flows), "")
    frame = pd.DataFrame(parts)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def copy_share(train: pd.DataFrame, other: pd.DataFrame) -> float:
    """Share of rows of ``other`` whose compared fields equal some row of ``train``."""
    if len(other) == 0:
        return float("nan")
    return float(np.isin(row_keys(other), row_keys(train)).mean())


def compute(
    train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None = None
) -> dict[str, float]:
    """``{"exact_copy_share": ..., "exact_copy_share_holdout": ...}`` in [0, 1]."""
    out = {NAME: copy_share(train, synthetic)}
    if holdout is not None:
        out["exact_copy_share_holdout"] = copy_share(train, holdout)
    return out

"""Kitsune-style rolling statistics of a host's recent flows, vectorised.

For flow ``i`` of user ``u`` and a look-back ``W`` seconds the window holds the flows ``j`` of
the same user with ``ts_i - W < ts_j`` and ``j <= i`` in the (user, ts) order, the flow itself
included. Statistics: mean and population standard deviation of ``packets`` and ``bytes``.

How: rows are sorted by (user, ts); the window start of every flow is found at once with
``np.searchsorted`` over the complex keys ``user_code + 1j * ts`` (numpy orders complex numbers
lexicographically, so this is an exact two-key binary search); sums and sums of squares come from
prefix sums of the values shifted by each user's first value (int64, exact, for integer counts;
``np.longdouble`` otherwise), so the cost is O(n log n) with no Python loop over flows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ROLL_FIELDS = ("packets", "bytes")


def roll_name(window: float, field: str, stat: str) -> str:
    """Column name ``roll{W}_{field}_{stat}``; ``W`` printed without a trailing ``.0``."""
    w = f"{float(window):g}"
    return f"roll{w}_{field}_{stat}"


def roll_columns(windows: Sequence[float]) -> list[str]:
    """All rolling column names for the look-backs ``windows`` (seconds)."""
    return [roll_name(w, f, s) for w in windows for f in ROLL_FIELDS for s in ("mean", "std")]


def window_starts(user_codes: np.ndarray, ts: np.ndarray, seconds: float) -> np.ndarray:
    """Index of the first flow in each flow's look-back window.

    ``user_codes`` (int, shape (n,)) and ``ts`` (float seconds, shape (n,)) must be sorted by
    (user, ts). Returns int64 of shape (n,): the smallest ``j`` of the same user with
    ``ts_j > ts_i - seconds``.
    """
    key = user_codes.astype(np.float64) + 1j * ts.astype(np.float64)
    query = user_codes.astype(np.float64) + 1j * (ts.astype(np.float64) - float(seconds))
    return np.searchsorted(key, query, side="right").astype(np.int64)


def _prefix_sums(
    x: np.ndarray, first: np.ndarray, longest: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prefix sums (length n+1) of ``z`` and ``z**2``, ``z = x - x[first]`` (user's first value).

    Integer input whose window sums of ``z**2`` fit in int64 uses int64 prefix sums: they may
    wrap around, but a difference of two of them is exact modulo 2**64, hence exact for any
    window sum below 2**63. Other input uses ``np.longdouble``. Returns (s1, s2, shift).
    """
    shift = x[first].astype(np.float64)
    if np.issubdtype(x.dtype, np.integer):
        z = x.astype(np.int64) - x[first].astype(np.int64)
        peak = int(np.abs(z).max()) if len(z) else 0
        if peak < 2**31 and peak * peak * max(1, longest) < 2**62:
            zero = np.zeros(1, np.int64)
            return (
                np.concatenate([zero, np.cumsum(z)]),
                np.concatenate([zero, np.cumsum(z * z)]),
                shift,
            )
    z = (x.astype(np.float64) - shift).astype(np.longdouble)
    zero = np.zeros(1, np.longdouble)
    return np.concatenate([zero, np.cumsum(z)]), np.concatenate([zero, np.cumsum(z * z)]), shift


def rolling_stats(
    user_codes: np.ndarray,
    ts: np.ndarray,
    values: dict[str, np.ndarray],
    windows: Sequence[float],
) -> dict[str, np.ndarray]:
    """Rolling mean and std of each array of ``values`` over each look-back in ``windows``.

    Inputs are sorted by (user, ts), all shape (n,). Returns float64 arrays of shape (n,)
    keyed by ``roll_name(W, field, "mean"|"std")``.
    """
    n = len(ts)
    out: dict[str, np.ndarray] = {}
    if n == 0:
        return {name: np.zeros(0) for name in roll_columns(windows)} if values else {}
    idx = np.arange(n)
    new_user = np.r_[True, user_codes[1:] != user_codes[:-1]]
    first = np.maximum.accumulate(np.where(new_user, idx, 0))
    starts = {w: window_starts(user_codes, ts, w) for w in windows}
    counts = {w: (idx + 1 - lo).astype(np.float64) for w, lo in starts.items()}
    longest = max(int((idx + 1 - lo).max()) for lo in starts.values())
    for field, raw in values.items():
        s1, s2, shift = _prefix_sums(np.asarray(raw), first, longest)
        for w, lo in starts.items():
            count = counts[w]
            d1 = (s1[1:] - s1[lo]).astype(np.float64)  # window sums, exact before this cast
            d2 = (s2[1:] - s2[lo]).astype(np.float64)
            m = d1 / count
            std = np.sqrt(np.maximum(d2 / count - m * m, 0.0))
            std[count == 1] = 0.0
            out[roll_name(w, field, "mean")] = m + shift
            out[roll_name(w, field, "std")] = std
    return out


def add_rolling(df: pd.DataFrame, windows: Sequence[float]) -> pd.DataFrame:
    """Add the rolling columns to ``df`` (sorted by user then ts) in place; returns ``df``."""
    codes = pd.factorize(df["user"], sort=False)[0]
    values = {f: _numbers(df[f]) for f in ROLL_FIELDS}
    for name, arr in rolling_stats(codes, df["ts"].to_numpy(np.float64), values, windows).items():
        df[name] = arr
    return df


def _numbers(col: pd.Series) -> np.ndarray:
    """Integer columns as int64 (exact prefix sums), others as float64."""
    if pd.api.types.is_integer_dtype(col.dtype) and not col.isna().any():
        return col.to_numpy(np.int64)
    return col.to_numpy(np.float64, na_value=np.nan)

"""Helpers the metrics share: JSD on counts, numeric encodings, subsampling, window series.

Every function is vectorised over flows (numpy/pandas); none loops over rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from nfsynth.evalspace import EvalSpace
from nfsynth.features.windows import user_grid

LN2 = float(np.log(2.0))
WINDOW_SECONDS = 300.0

#: Name prefixes of the per-field and per-rule breakdowns of a metric (``jsd_bytes``,
#: ``w1_dt``, ``acf_mae_flows``, ``rule_dns_over_icmp``...): each is lower-is-better, and the
#: report shows them in its details table, not among the headline metrics
BREAKDOWN_PREFIXES: tuple[str, ...] = (
    "jsd_", "w1_", "acf_mae_", "serial_corr_diff_", "session_diff_", "burst_diff_",
    "time_grid_diff_", "rule_",
)  # fmt: skip


def jsd_counts(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Jensen-Shannon divergence, base 2, in [0, 1], of two count (or probability) arrays.

    ``p`` and ``q`` have the same shape; each is normalised along ``axis``
    (``scipy.spatial.distance.jensenshannon`` squared). Rows that are all zero on either side
    give NaN.
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = jensenshannon(p, q, axis=axis, base=2)
    out = np.square(dist)
    empty = (p.sum(axis=axis) <= 0) | (q.sum(axis=axis) <= 0)
    out = np.where(empty, np.nan, np.clip(out, 0.0, 1.0))
    return float(out) if np.ndim(out) == 0 else out


def field_counts(space: EvalSpace, name: str, codes: np.ndarray) -> np.ndarray:
    """Histogram of one field's codes, shape (n_bins(name),)."""
    return np.bincount(codes, minlength=space.n_bins(name)).astype(float)


def log1p_field(flows: pd.DataFrame, name: str) -> np.ndarray:
    """``log1p`` of a non-negative numeric column, float64 (n,); NaN/negative -> 0."""
    if name not in flows:
        return np.zeros(len(flows))
    x = pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=float)
    return np.log1p(np.clip(np.nan_to_num(x, nan=0.0), 0.0, None))


def numeric_encoding(
    space: EvalSpace, flows: pd.DataFrame, fields: list[str] | None = None
) -> np.ndarray:
    """A numeric matrix for distance-based metrics, shape (n, d), float64.

    Continuous fields enter as ``log1p`` of their values, categorical fields as one-hot
    columns of their evaluation-space codes (top-K plus ``other``). ``fields`` defaults to
    every field of the space. The caller standardises (scaler fitted on the real side).
    """
    names = space.fields if fields is None else [f for f in fields if f in space.fields]
    blocks: list[np.ndarray] = []
    for name in names:
        if space.is_continuous(name):
            blocks.append(log1p_field(flows, name)[:, None])
        else:
            codes = (
                space.encode_field(name, flows[name])
                if name in flows
                else np.full(len(flows), space.n_bins(name) - 1, dtype=np.int64)
            )
            blocks.append(np.eye(space.n_bins(name))[codes])
    return np.hstack(blocks) if blocks else np.zeros((len(flows), 0))


def field_codes(space: EvalSpace, flows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Codes of every field of the space; a field missing from ``flows`` is all ``other``/0."""
    out: dict[str, np.ndarray] = {}
    for name in space.fields:
        if name in flows:
            out[name] = space.encode_field(name, flows[name])
        else:
            fill = 0 if space.is_continuous(name) else space.n_bins(name) - 1
            out[name] = np.full(len(flows), fill, dtype=np.int64)
    return out


def subsample_hosts(flows: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, whole hosts first, deterministic in ``seed``.

    Hosts are taken in a seeded random order while they fit; the first host that does not fit
    contributes its earliest flows up to the limit, so every host keeps a contiguous sequence
    (temporal metrics stay meaningful). Rows keep their (user, ts) order.
    """
    if len(flows) <= max_rows:
        return flows
    users = np.sort(flows["user"].astype(str).unique())
    order = np.random.default_rng(seed).permutation(len(users))
    sizes = flows["user"].astype(str).value_counts().reindex(users[order]).to_numpy()
    cum = np.cumsum(sizes)
    n_whole = int(np.searchsorted(cum, max_rows, side="right"))
    keep = set(users[order][:n_whole])
    frame = flows.sort_values(["user", "ts"], kind="mergesort")
    user_col = frame["user"].astype(str)
    mask = user_col.isin(keep).to_numpy()
    left = max_rows - (int(cum[n_whole - 1]) if n_whole else 0)
    if left > 0 and n_whole < len(users):
        partial = (user_col == users[order][n_whole]).to_numpy()
        mask |= partial & (np.cumsum(partial) <= left)
    return frame[mask]


def sample_rows(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded random subset of at most ``n`` rows (row order kept)."""
    if len(frame) <= n:
        return frame
    idx = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[idx]


def window_series(
    flows: pd.DataFrame, window_seconds: float = WINDOW_SECONDS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user window series built from flows.

    Each user's grid runs from the window of its first flow to that of its last, empty windows
    as zeros. Returns ``(user_index, n_flows, log_bytes)``, three arrays of shape
    (total windows,), users concatenated in sorted order: the user's index (int64), flows per
    window (float64) and ``log1p`` of the bytes per window (float64).
    """
    if len(flows) == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    users, uidx = np.unique(flows["user"].astype(str).to_numpy(), return_inverse=True)
    ts = pd.to_numeric(flows["ts"]).to_numpy(dtype=float)
    _, length, pos = user_grid(ts, uidx, len(users), window_seconds)
    total = int(length.sum())
    counts = np.bincount(pos, minlength=total).astype(float)
    bytes_ = pd.to_numeric(flows["bytes"], errors="coerce").fillna(0).to_numpy(dtype=float)
    sums = np.bincount(pos, weights=np.clip(bytes_, 0, None), minlength=total)
    user_index = np.repeat(np.arange(len(users)), length)
    return user_index, counts, np.log1p(sums)


def lagged_rows(
    user_index: np.ndarray, values: np.ndarray, lags: int
) -> tuple[np.ndarray, np.ndarray]:
    """Supervised rows from per-user series: the previous ``lags`` values and the next one.

    Returns ``(X, y)``: X of shape (m, lags), column j the value ``lags - j`` windows back
    (last column = the previous window), y of shape (m,). Rows never straddle two users.
    """
    n = len(values)
    if n <= lags:
        return np.zeros((0, lags)), np.zeros(0)
    idx = np.arange(lags, n)
    back = idx[:, None] - np.arange(lags, 0, -1)[None, :]
    same = (user_index[back] == user_index[idx][:, None]).all(axis=1)
    return values[back[same]], values[idx[same]]


def standardised_pair(
    space: EvalSpace,
    reference: pd.DataFrame,
    others: list[pd.DataFrame],
    fields: list[str] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numeric encodings (``numeric_encoding``) standardised with a scaler fitted on
    ``reference``: ``(X_reference, [X_other, ...])``, each (n_i, d) float64."""
    from sklearn.preprocessing import StandardScaler

    ref = numeric_encoding(space, reference, fields)
    scaler = StandardScaler().fit(ref)
    return scaler.transform(ref), [
        scaler.transform(numeric_encoding(space, o, fields)) for o in others
    ]


def ball_counts(real: np.ndarray, synthetic: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per real point i: how many synthetic points lie in its k-NN ball, and the distance
    from it to the nearest synthetic point minus the ball radius (<= 0: covered).

    ``real`` (N, d), ``synthetic`` (M, d). The radius of real point i is the distance to its
    k-th nearest other real point (``sklearn.neighbors.NearestNeighbors``). Returns two (N,)
    arrays: int64 counts and float64 margins.
    """
    from sklearn.metrics import pairwise_distances_chunked
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(real) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)
    radius = dist[:, k] * (1 + 1e-9) + 1e-9
    counts = np.zeros(len(real), dtype=np.int64)
    nearest = np.zeros(len(real))
    start = 0
    for block in pairwise_distances_chunked(real, synthetic, working_memory=256):
        stop = start + len(block)
        counts[start:stop] = (block <= radius[start:stop, None]).sum(axis=1)
        nearest[start:stop] = block.min(axis=1)
        start = stop
    return counts, nearest - radius


def mutual_information_bits(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> float:
    """Plug-in mutual information (bits) of two code arrays (n,), codes < n_a and < n_b.

    The same value as ``sklearn.metrics.mutual_info_score(a, b) / ln 2``, from one
    ``np.bincount`` contingency table (fast for the small code ranges of the space).
    """
    n = len(a)
    if n == 0:
        return float("nan")
    c = np.bincount(a * n_b + b, minlength=n_a * n_b).reshape(n_a, n_b).astype(float)
    pa_, pb_ = c.sum(axis=1), c.sum(axis=0)
    nz = c > 0
    outer = np.outer(pa_, pb_)
    return float(np.sum(c[nz] * np.log(c[nz] * n / outer[nz])) / n / LN2)

"""Helpers shared by the baseline models (B1 ``independent``, B2 ``bayesnet``).

Latent space of a continuous field: ``y = log1p(x)``. Integer-valued fields (counts, and times
where the source has whole seconds) are dequantised: ``y = log1p(x + u)``, ``u ~ U[0, 1)``, and a
latent value maps back to ``x = floor(expm1(y))``, so a density over ``y`` is an exact
probability mass over integers and sampling is consistent with scoring. A non-integer field maps
back with ``x = max(expm1(y), 0)``.

Evaluation-space bins (``nfsynth.evalspace``) become intervals of that latent space
(:func:`eval_intervals`): they partition the real line, so any density over ``y`` gives each
evaluation bin its mass.

Categorical fields keep the top-K training values plus ``other`` (:class:`Vocab`); the values
of ``other`` are drawn from a pool of the next most frequent training values, and their mass is
split onto evaluation codes consistently (:meth:`Vocab.eval_matrix`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nfsynth.evalspace import CATEGORICAL_FIELDS, CONTINUOUS_FIELDS, EvalSpace, categorical_text

#: Non-top values kept per categorical field to draw ``other`` from.
OTHER_POOL = 2000
#: Refuse samples larger than this many flows (a model with near-zero time deltas).
MAX_SAMPLE_FLOWS = 50_000_000
#: Smallest probability used inside a logarithm (log(1e-300) = -690.8 nats).
TINY = 1e-300


# -- fields and latent values ----------------------------------------------------------------
def present_continuous(frame: pd.DataFrame) -> list[str]:
    """Continuous fields the frame has for at least half of its rows (the evaluation-space
    rule: ``rev_*`` are dropped where the source has none)."""
    names = []
    for name in CONTINUOUS_FIELDS:
        if name not in frame.columns or len(frame) == 0:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(values).sum() >= 0.5 * len(values):
            names.append(name)
    return names


def present_categorical(frame: pd.DataFrame) -> list[str]:
    """Categorical evaluation fields present in the frame."""
    return [name for name in CATEGORICAL_FIELDS if name in frame.columns]


def numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column as float64 >= 0 (nulls -> NaN), shape (n,)."""
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(values), np.clip(values, 0.0, None), np.nan)


def is_integer_valued(values: np.ndarray) -> bool:
    """True when every finite value is a whole number (counts, whole-second times)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite == np.floor(finite)))


def to_latent(values: np.ndarray, integer: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Latent values ``log1p(x + u)`` (integer fields; ``u = 0.5`` without ``rng``) or
    ``log1p(x)``; NaN stays NaN. Shape as ``values``."""
    x = np.clip(values, 0.0, None)
    if integer:
        u = rng.random(x.shape) if rng is not None else 0.5
        return np.log1p(x + u)
    return np.log1p(x)


def from_latent(y: np.ndarray, integer: bool) -> np.ndarray:
    """Values of latent draws: ``floor(expm1(y))`` (integer fields) or ``expm1(y)``, >= 0."""
    x = np.expm1(np.asarray(y, dtype=float))
    if integer:
        x = np.floor(x)
    return np.clip(x, 0.0, None)


def eval_intervals(space: EvalSpace, name: str, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Latent intervals ``[lo, hi)`` of the evaluation bins of a continuous field.

    For an integer field, bin ``j`` holds the counts ``c`` with ``edges[j] <= log1p(c) <
    edges[j+1]``, i.e. the latent interval ``[log1p(c_j), log1p(c_{j+1}))`` with ``c_j`` the
    smallest such count (empty bins get ``lo == hi``). The first interval starts at -inf, the
    last ends at +inf, so the intervals partition the real line. Shapes (n_bins,).
    """
    edges = np.asarray(space.edges[name], dtype=float)
    if integer:
        finite = edges[np.isfinite(edges)]
        guess = np.ceil(np.expm1(finite))
        cand = np.stack([guess - 1, guess, guess + 1])
        ok = np.log1p(np.clip(cand, 0, None)) >= finite
        counts = np.where(ok, cand, np.inf).min(axis=0).clip(0)
        bounds = np.log1p(counts)
        bounds = np.concatenate([bounds, [np.inf]]) if np.isinf(edges[-1]) else bounds
    else:
        bounds = edges.copy()
    bounds = np.maximum.accumulate(bounds)
    lo, hi = bounds[:-1].copy(), bounds[1:].copy()
    lo[0] = -np.inf
    hi[-1] = np.inf
    return lo, hi


def overlap_matrix(own_edges: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Share of each own bin (uniform in latent space) inside each evaluation interval.

    ``own_edges``: (n_own + 1,) finite increasing edges; ``lo``, ``hi``: (n_eval,) intervals
    that partition the line. Returns (n_own, n_eval); rows sum to 1.
    """
    a, b = own_edges[:-1, None], own_edges[1:, None]
    width = np.maximum(np.minimum(b, hi[None, :]) - np.maximum(a, lo[None, :]), 0.0)
    matrix = width / (b - a)
    return matrix / matrix.sum(axis=1, keepdims=True)


# -- order of flows within a host --------------------------------------------------------------
def previous_row(frame: pd.DataFrame) -> np.ndarray:
    """Positional index of each flow's previous flow of the same user (by ``ts``, stable), or
    -1 for a user's first flow in the frame. Shape (n,), int64."""
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    users = pd.factorize(frame["user"])[0] if "user" in frame else np.zeros(n, dtype=np.int64)
    ts = frame["ts"].to_numpy(dtype=float)
    order = np.lexsort((np.arange(n), ts, users))
    sorted_users = users[order]
    prev_sorted = np.concatenate([[-1], order[:-1]])
    prev_sorted[np.concatenate([[True], sorted_users[1:] != sorted_users[:-1]])] = -1
    prev = np.empty(n, dtype=np.int64)
    prev[order] = prev_sorted
    return prev


def hour_of(ts: np.ndarray) -> np.ndarray:
    """Hour of day (UTC) of epoch seconds, int64 in 0..23."""
    return (np.floor(np.asarray(ts, dtype=float) / 3600.0) % 24).astype(np.int64)


def check_columns(frame: pd.DataFrame, names: list[str], what: str) -> None:
    """Raise naming the missing columns."""
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"{what}: flows lack column(s) {', '.join(missing)}")


# -- drawing -----------------------------------------------------------------------------------
def draw_from_cdf(cdf_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One code per row from cumulative probabilities (n, k): inverse-CDF sampling (never
    argmax). Returns int64 (n,)."""
    u = rng.random(cdf_rows.shape[0])
    codes = (u[:, None] >= cdf_rows).sum(axis=1)
    return np.minimum(codes, cdf_rows.shape[1] - 1).astype(np.int64)


def draw_codes(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One code per row of probabilities (n, k) (rows sum to one). Returns int64 (n,)."""
    return draw_from_cdf(np.cumsum(probs, axis=-1), rng)


#: Quantiles kept per own bin (``bin_quantiles``): the within-bin shape of the training values.
BIN_QUANTILES = 16


def bin_quantiles(
    edges: np.ndarray, codes: np.ndarray, y: np.ndarray, n_q: int = BIN_QUANTILES
) -> np.ndarray:
    """Within-bin quantiles of the latent values ``y`` (n,) in own bins ``codes`` (n,):
    (n_own, n_q + 1), row c from ``edges[c]`` to ``edges[c + 1]`` through the quantiles
    0..1 of the bin's values (a bin with fewer than 2 values: evenly spaced, i.e. uniform).
    Piecewise linear between them, it is the bin's within-bin CDF."""
    n_own = len(edges) - 1
    probs = np.linspace(0.0, 1.0, n_q + 1)
    out = edges[:-1, None] + probs[None, :] * (edges[1:] - edges[:-1])[:, None]
    order = np.argsort(codes, kind="stable")
    sorted_codes, sorted_y = codes[order], y[order]
    bounds = np.searchsorted(sorted_codes, np.arange(n_own + 1))
    for c in range(n_own):
        vals = sorted_y[bounds[c] : bounds[c + 1]]
        if len(vals) >= 2:
            q = np.quantile(vals, probs)
            q[0], q[-1] = edges[c], edges[c + 1]
            out[c] = np.maximum.accumulate(np.clip(q, edges[c], edges[c + 1]))
    return out


def draw_in_bins(quantiles: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Latent values in own bins ``codes`` by inverse CDF of their within-bin quantiles
    (``bin_quantiles``); float64 (n,)."""
    n_q = quantiles.shape[1] - 1
    u = rng.random(len(codes)) * n_q
    k = np.minimum(np.floor(u).astype(np.int64), n_q - 1)
    left, right = quantiles[codes, k], quantiles[codes, k + 1]
    return left + (u - k) * (right - left)


def quantile_overlap(quantiles: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Share of each own bin (distributed as its within-bin quantiles say) inside each
    evaluation interval ``[lo, hi)``, (n_own, n_eval); rows sum to 1 where the intervals
    partition the line (``overlap_matrix`` for uniform bins)."""
    probs = np.linspace(0.0, 1.0, quantiles.shape[1])
    out = np.empty((quantiles.shape[0], len(lo)))
    for c, q in enumerate(quantiles):
        cdf_hi = np.interp(np.minimum(hi, q[-1]), q, probs, left=0.0, right=1.0)
        cdf_lo = np.interp(np.maximum(lo, q[0]), q, probs, left=0.0, right=1.0)
        out[c] = np.maximum(cdf_hi - cdf_lo, 0.0)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-300)


def uniform_in_bins(edges: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Latent values uniform within own bins ``[edges[c], edges[c+1])``; float64 (n,)."""
    return rng.uniform(edges[codes], edges[codes + 1])


def accumulate_times(
    draw_dt: Any, n_hosts: int, start: float, horizon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps from i.i.d. time deltas accumulated per host until ``horizon`` seconds.

    ``draw_dt(n, rng)`` returns n deltas (s, >= 0). Blocks of deltas are drawn for all hosts at
    once until every host has passed the horizon. Returns (host index, ts), int64 and float64
    (n_flows,), flows with ``ts < start + horizon`` only, sorted by host then time.
    """
    probe = draw_dt(4096, rng)
    mean_dt = max(float(np.mean(probe)), 1e-3)
    per_host = int(
        min(math.ceil(1.2 * horizon / mean_dt) + 16, MAX_SAMPLE_FLOWS // max(n_hosts, 1) + 1)
    )
    if per_host * n_hosts > MAX_SAMPLE_FLOWS:
        raise ValueError(
            f"sample would hold about {per_host * n_hosts} flows (mean time delta {mean_dt:.4g} s); "
            f"limit {MAX_SAMPLE_FLOWS}: sample fewer hosts or days"
        )
    blocks: list[np.ndarray] = []
    offset = np.zeros(n_hosts)
    while True:
        deltas = draw_dt(n_hosts * per_host, rng).reshape(n_hosts, per_host)
        times = offset[:, None] + np.cumsum(deltas, axis=1)
        blocks.append(times)
        offset = times[:, -1]
        if np.all(offset >= horizon) or sum(b.size for b in blocks) > MAX_SAMPLE_FLOWS:
            break
    times = np.concatenate(blocks, axis=1)
    if not np.all(times[:, -1] >= horizon):
        raise ValueError(f"sample exceeds {MAX_SAMPLE_FLOWS} flows: sample fewer hosts or days")
    keep = times < horizon
    host = np.broadcast_to(np.arange(n_hosts)[:, None], times.shape)[keep]
    return host.astype(np.int64), start + times[keep]


# -- categorical fields ------------------------------------------------------------------------
@dataclass
class Vocab:
    """Top-K values of a categorical field plus ``other`` (code ``K``).

    ``values``: the top-K values as text (most frequent first, ties by text, as the
    evaluation space orders them); ``counts``: their training counts; ``pool``/``pool_counts``:
    the next most frequent values (at most :data:`OTHER_POOL`) that ``other`` draws from;
    ``n_other``: training rows outside the top-K.
    """

    values: list[str]
    counts: list[int]
    pool: list[str] = field(default_factory=list)
    pool_counts: list[int] = field(default_factory=list)
    n_other: int = 0

    @classmethod
    def fit(cls, values: Any, top_k: int) -> Vocab:
        """Count the values (as text) of a column."""
        counts = pd.Series(categorical_text(values)).value_counts(sort=False)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top, rest = ranked[:top_k], ranked[top_k:]
        return cls(
            values=[v for v, _ in top],
            counts=[int(c) for _, c in top],
            pool=[v for v, _ in rest[:OTHER_POOL]],
            pool_counts=[int(c) for _, c in rest[:OTHER_POOL]],
            n_other=int(sum(c for _, c in rest)),
        )

    @property
    def size(self) -> int:
        """Number of codes (top-K plus ``other``)."""
        return len(self.values) + 1

    def codes(self, values: Any) -> np.ndarray:
        """Codes 0..K of the values (K for anything outside the top-K), int64 (n,)."""
        lookup = {value: i for i, value in enumerate(self.values)}
        text = pd.Series(categorical_text(values))
        return text.map(lookup).fillna(len(self.values)).to_numpy(dtype=np.int64)

    def smoothed(self, alpha: float) -> np.ndarray:
        """Additively smoothed frequencies over the K + 1 codes, float64 (K+1,)."""
        counts = np.asarray(self.counts + [self.n_other], dtype=float) + alpha
        return counts / counts.sum()

    def eval_matrix(self, eval_vocab: list[str], alpha: float) -> np.ndarray:
        """How the mass of each own code falls onto the evaluation codes, (K+1, n_eval + 1).

        A top-K value goes to its evaluation code (or evaluation ``other``). The own ``other``
        mass is split over the pool values by ``count / (n_other + alpha)``; the rest (the
        ``alpha`` share and values beyond the pool) goes in equal parts to the evaluation
        ``other`` and to evaluation values this vocabulary has never seen. Rows sum to 1.
        """
        n_eval = len(eval_vocab)
        lookup = {value: i for i, value in enumerate(eval_vocab)}
        matrix = np.zeros((self.size, n_eval + 1))
        for k, value in enumerate(self.values):
            matrix[k, lookup.get(value, n_eval)] = 1.0
        denom = self.n_other + alpha
        for value, count in zip(self.pool, self.pool_counts, strict=True):
            matrix[-1, lookup.get(value, n_eval)] += count / denom
        known = set(self.values) | set(self.pool)
        targets = [lookup[v] for v in eval_vocab if v not in known] + [n_eval]
        matrix[-1, targets] += max(1.0 - matrix[-1].sum(), 0.0) / len(targets)
        return matrix / matrix.sum(axis=1, keepdims=True)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values (text) of codes; ``other`` draws a pool value by its training count (the
        most frequent value where the pool is empty). Object array (n,)."""
        codes = np.asarray(codes, dtype=np.int64)
        table = np.array(self.values + [self.values[0] if self.values else ""], dtype=object)
        out = table[codes]
        other = codes == len(self.values)
        if other.any() and self.pool:
            p = np.asarray(self.pool_counts, dtype=float)
            out[other] = np.array(self.pool, dtype=object)[
                rng.choice(len(p), size=int(other.sum()), p=p / p.sum())
            ]
        return out

    def to_state(self) -> dict:
        return {
            "values": self.values,
            "counts": self.counts,
            "pool": self.pool,
            "pool_counts": self.pool_counts,
            "n_other": self.n_other,
        }

    @classmethod
    def from_state(cls, state: dict) -> Vocab:
        return cls(**state)


@dataclass
class PeerTable:
    """Peers of each ``peer_kind`` (top-K plus a pool), drawn by training frequency."""

    by_kind: dict[str, Vocab]

    @classmethod
    def fit(cls, frame: pd.DataFrame, top_k: int) -> PeerTable:
        """Peers per kind from user-flow rows (``peer``, ``peer_kind``)."""
        if "peer" not in frame or len(frame) == 0:
            return cls(by_kind={"": Vocab(values=["peer-0"], counts=[1])})
        kinds = (
            categorical_text(frame["peer_kind"])
            if "peer_kind" in frame
            else np.full(len(frame), "", object)
        )
        peers = categorical_text(frame["peer"])
        by_kind = {
            kind: Vocab.fit(peers[kinds == kind], top_k) for kind in sorted(set(kinds.tolist()))
        }
        return cls(by_kind=by_kind)

    def draw(self, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A peer for each flow given its kind (unknown kinds: the most common kind's peers).
        Object array (n,)."""
        kinds = np.asarray(kinds, dtype=object)
        out = np.empty(len(kinds), dtype=object)
        fallback = max(
            self.by_kind, key=lambda k: sum(self.by_kind[k].counts) + self.by_kind[k].n_other
        )
        resolved = np.array(
            [k if k in self.by_kind else fallback for k in kinds.tolist()], dtype=object
        )
        for kind, vocab in self.by_kind.items():
            rows = np.flatnonzero(resolved == kind)
            if rows.size == 0:
                continue
            values = vocab.values + vocab.pool
            p = np.asarray(vocab.counts + vocab.pool_counts, dtype=float)
            out[rows] = np.array(values, dtype=object)[
                rng.choice(len(values), size=rows.size, p=p / p.sum())
            ]
        return out

    def to_state(self) -> dict:
        return {kind: vocab.to_state() for kind, vocab in self.by_kind.items()}

    @classmethod
    def from_state(cls, state: dict) -> PeerTable:
        return cls(by_kind={kind: Vocab.from_state(v) for kind, v in state.items()})


def sample_frame(
    users: list[str],
    host: np.ndarray,
    ts: np.ndarray,
    fields: dict[str, np.ndarray],
    peer: np.ndarray,
) -> pd.DataFrame:
    """The frame ``base.to_sample_table`` takes: synthetic host names, times and field values
    (continuous as numbers, categorical as text; ``proto`` text is turned into numbers)."""
    frame = pd.DataFrame({"user": np.asarray(users, dtype=object)[host], "ts": ts, "peer": peer})
    for name, values in fields.items():
        frame[name] = values
    if "proto" in frame:
        frame["proto"] = pd.to_numeric(frame["proto"], errors="coerce").fillna(0).astype(np.int64)
    for name, default in (
        ("duration", 0.0),
        ("proto", 0),
        ("sport", "0"),
        ("dport", "0"),
        ("direction", "out"),
    ):
        if name not in frame:
            frame[name] = default
    for name in ("packets", "bytes"):
        if name not in frame:
            frame[name] = 0
    return frame

"""Token vocabularies, continuous-field specs and input arrays of the neural flow model.

Everything here is numpy/pandas (no torch): it turns a user-flow DataFrame
(docs/architecture.md) into the arrays :mod:`nfsynth.models.neural_net` consumes, and turns
sampled token ids back into field values.

Fields, in the fixed generation order (``FIELD_ORDER``)::

    dt, proto, dport, sport, peer, direction, duration, packets, bytes, rev_packets, rev_bytes

- Categorical fields (``proto``, ``dport``, ``sport``, ``peer``, ``direction``) are tokens of a
  :class:`CategoricalVocab`: the frequent training values exactly (every value of the
  evaluation space's top-K among them), then *bucket* tokens for the rest (ports: ``<low>``
  below 1024, ``<reg>`` 1024-49151, ``<eph>`` from 49152, ``<anon>`` for anonymised
  ``Port12345``, ``<text>`` otherwise; peers: ``<external>`` / ``<internal>``; other fields:
  ``<other>``). Each token maps to exactly one evaluation code: an exact value to its own code
  (or ``other`` when the space does not list it), a bucket to ``other`` (buckets never hold a
  value the space lists, since those are exact tokens). Peers map to their ``peer_kind`` code.
  A sampled bucket token becomes a concrete value: one of the bucket's (up to 256) most
  frequent training values, drawn by frequency. For peers that keeps the kind: placeholder
  names (``int-0007``) matched none of a dataset's ``internal`` patterns, so the evaluation
  counted them external (on the LANL 2015 sample, 58% of the peers and a peer-kind JSD of
  0.32).
- Continuous fields live on a grid of resolution ``r``: the data's own (``value_resolution``:
  1 for integer data such as counts and LANL's whole seconds, UGR'16's 4 ms for its times
  and durations, at finest 1 ms). The model's latent value is ``log1p(x)``, except
  for ``bytes`` and ``rev_bytes``: ``log(x / max(packets, 1))`` (log bytes per packet, so
  bytes are generated given packets). A grid value ``k * r`` owns the raw interval
  ``[(k - 1/2) r, (k + 1/2) r)`` (``k = 0``: everything below ``r / 2``); its probability is
  the latent mixture's mass over the mapped interval, so likelihoods are exact. A ratio field
  whose packet count is 0 is 0 with certainty (the sampler writes 0): those rows are neither
  trained on nor scored by the mixture, which models bytes per packet of flows with packets
  (its lower truncation, ``lat_lo``, is their 0.1% quantile).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nfsynth.evalspace import OTHER, EvalSpace, categorical_text
from nfsynth.schema import ROLES

FIELD_ORDER: tuple[str, ...] = (
    "dt",
    "proto",
    "dport",
    "sport",
    "peer",
    "direction",
    "duration",
    "packets",
    "bytes",
    "rev_packets",
    "rev_bytes",
)
CATEGORICAL: frozenset[str] = frozenset({"proto", "dport", "sport", "peer", "direction"})
#: training days from which the day of week is a model input (each weekday seen twice)
WEEKLY_MIN_DAYS = 14
#: ratio fields: field -> the count it is divided by
RATIO_BASE: dict[str, str] = {"bytes": "packets", "rev_bytes": "rev_packets"}
#: bytes per packet a sample keeps to (IPv4 header .. largest IP packet)
BPP_RANGE: tuple[float, float] = (20.0, 65535.0)
#: per-window statistics of the context: flows, bytes, packets, outgoing flows (log1p sums)
CONTEXT_FEATURES: int = 4
N_RBF: int = 16


def port_bucket(values: np.ndarray) -> np.ndarray:
    """Bucket name of each port text: ``<low>``/``<reg>``/``<eph>``/``<anon>``/``<text>``."""
    text = pd.Series(values, dtype=object).astype(str)
    number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    anon = text.str.startswith("Port").to_numpy()
    return np.select(
        [
            np.isfinite(number) & (number < 1024),
            np.isfinite(number) & (number < 49152),
            np.isfinite(number),
            anon,
        ],
        ["<low>", "<reg>", "<eph>", "<anon>"],
        default="<text>",
    ).astype(object)


@dataclass
class CategoricalVocab:
    """Tokens of one categorical field: ``tokens`` (exact values then bucket names), the
    evaluation code of each token, and per bucket the training values it stands for."""

    name: str
    tokens: list[str]
    n_exact: int
    eval_code: list[int]
    bucket_values: dict[str, list[str]] = field(default_factory=dict)
    bucket_counts: dict[str, list[int]] = field(default_factory=dict)
    peer_kind: list[str] = field(default_factory=list)
    seen: list[bool] = field(default_factory=list)
    #: per bucket, the share of a host's consecutive training flows in that bucket that have
    #: the same value (``bucket_repeats``); ``decode`` keeps a host's value with it
    bucket_repeat: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def buckets_of(self, text: np.ndarray, flows: pd.DataFrame | None = None) -> np.ndarray:
        """Bucket name of each value (used for values without an exact token)."""
        if self.name in ("dport", "sport"):
            return port_bucket(text)
        if self.name == "peer":
            kind = (
                categorical_text(flows["peer_kind"])
                if flows is not None
                else np.full(len(text), "external")
            )
            return np.where(kind == "internal", "<internal>", "<external>").astype(object)
        return np.full(len(text), "<other>", dtype=object)

    def encode(self, flows: pd.DataFrame) -> np.ndarray:
        """Token ids of ``flows[self.name]``, int64 (n,)."""
        text = categorical_text(flows[self.name])
        lookup = {t: i for i, t in enumerate(self.tokens[: self.n_exact])}
        ids = pd.Series(text).map(lookup).to_numpy(dtype=float)
        missing = np.isnan(ids)
        if missing.any():
            bucket_ids = {t: i for i, t in enumerate(self.tokens) if i >= self.n_exact}
            buckets = self.buckets_of(
                text[missing], flows.loc[missing] if self.name == "peer" else None
            )
            fallback = self.n_exact if self.size > self.n_exact else 0
            ids[missing] = pd.Series(buckets).map(bucket_ids).fillna(fallback).to_numpy(dtype=float)
        return ids.astype(np.int64)

    def decode(
        self,
        ids: np.ndarray,
        rng: np.random.Generator,
        hosts: np.ndarray | None = None,
        ts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Values of token ids (n,) (object array of text); buckets become concrete values,
        drawn by training frequency. With ``hosts`` and ``ts`` (n,) (each flow's host and
        time), a host's flow in the same bucket as its flow before keeps that flow's value
        with the bucket's ``bucket_repeat`` share: a session to one rare peer stays with it."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.asarray(self.tokens, dtype=object)[ids]
        for b in np.unique(ids[ids >= self.n_exact]):
            name = self.tokens[b]
            rows = np.flatnonzero(ids == b)
            values = self.bucket_values.get(name) or [name.strip("<>")]
            counts = np.asarray(self.bucket_counts.get(name) or [1] * len(values), dtype=float)
            out[rows] = np.asarray(values, dtype=object)[
                rng.choice(len(values), size=rows.size, p=counts / counts.sum())
            ]
        if hosts is None or ts is None or not any(self.bucket_repeat.values()) or ids.size < 2:
            return out
        order = np.lexsort((np.asarray(ts, dtype=float), np.asarray(hosts)))
        i, h = ids[order], np.asarray(hosts)[order]
        share = np.zeros(self.size)
        for b, q in self.bucket_repeat.items():
            share[self.tokens.index(b)] = q
        after = np.r_[False, (h[1:] == h[:-1]) & (i[1:] == i[:-1])] & (i >= self.n_exact)
        repeat = after & (rng.random(i.size) < share[i])
        # each repeat takes the value of the last flow before it that drew its own
        source = np.maximum.accumulate(np.where(repeat, 0, np.arange(i.size)))
        out[order] = out[order][source]
        return out

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> CategoricalVocab:
        return cls(**data)


def build_vocab(
    name: str, flows: pd.DataFrame, space: EvalSpace, *, top: int, bucket_keep: int = 256
) -> CategoricalVocab:
    """Vocabulary of field ``name`` from training flows: the ``top`` most frequent values and
    every value the evaluation space lists exactly; the rest in buckets."""
    text = categorical_text(flows[name])
    counts = _ranked_counts(text)
    exact = list(counts.index[:top])
    eval_field = "peer_kind" if name == "peer" else name
    for v in space.vocab.get(eval_field, []) if eval_field != "peer_kind" else []:
        if v not in exact and v in counts.index:
            exact.append(v)
    rest = ~pd.Series(text, dtype=object).isin(exact).to_numpy()
    buckets_all = {
        "dport": ["<low>", "<reg>", "<eph>", "<anon>", "<text>"],
        "sport": ["<low>", "<reg>", "<eph>", "<anon>", "<text>"],
    }
    bucket_names = buckets_all.get(
        name, ["<external>", "<internal>"] if name == "peer" else ["<other>"]
    )
    vocab = CategoricalVocab(
        name=name, tokens=exact + bucket_names, n_exact=len(exact), eval_code=[]
    )
    bucket_of = vocab.buckets_of(text[rest], flows.loc[rest] if name == "peer" else None)
    vocab.seen = [True] * len(exact)
    for b in bucket_names:
        sel = _ranked_counts(text[rest][bucket_of == b])
        vocab.seen.append(bool(len(sel)))
        vocab.bucket_values[b] = [str(v) for v in sel.index[:bucket_keep]]
        vocab.bucket_counts[b] = [int(c) for c in sel.to_numpy()[:bucket_keep]]
    if "user" in flows and "ts" in flows:
        bucket = np.full(len(text), "", dtype=object)
        bucket[rest] = bucket_of
        user = categorical_text(flows["user"])
        order = np.lexsort((flows["ts"].to_numpy(dtype=float), user))
        vocab.bucket_repeat = bucket_repeats(text[order], bucket[order], user[order], bucket_names)
    if name == "peer":
        kinds = _most_frequent_kind(text, categorical_text(flows["peer_kind"]))
        vocab.peer_kind = [str(kinds.get(v, "external")) for v in exact] + ["external", "internal"]
    vocab.eval_code = eval_codes(vocab, space)
    return vocab


def bucket_repeats(
    text: np.ndarray, bucket: np.ndarray, user: np.ndarray, names: list[str]
) -> dict[str, float]:
    """Per bucket name, the share of consecutive flows of one host, both in that bucket, that
    have the same value (0 where no such pair). ``text``, ``bucket`` ('' for an exact
    token) and ``user``: (n,), each host's flows contiguous and in time order. On the
    simulator 80% of a host's consecutive flows to rare peers go to the same peer, on UGR'16
    58%: sessions, which a draw by frequency for every flow would break up."""
    pair = (user[1:] == user[:-1]) & (bucket[1:] == bucket[:-1])
    same = text[1:] == text[:-1]
    out = {}
    for b in names:
        sel = pair & (bucket[1:] == b)
        out[b] = round(float(same[sel].mean()), 4) if sel.any() else 0.0
    return out


def _most_frequent_kind(peers: np.ndarray, kinds: np.ndarray) -> pd.Series:
    """Each peer's most frequent kind (ties: the first kind by name), indexed by peer.
    ``peers``, ``kinds``: (n,) text. One grouped count, where a Python function per peer
    took 1.5 s of a 14 s fit on UGR'16 (tens of thousands of peers)."""
    counts = pd.DataFrame({"peer": peers, "kind": kinds}).groupby(["peer", "kind"]).size()
    ranked = counts.reset_index(name="n").sort_values("n", ascending=False, kind="mergesort")
    first = ranked.drop_duplicates("peer")
    return pd.Series(first["kind"].to_numpy(), index=first["peer"].to_numpy())


def _ranked_counts(text: np.ndarray) -> pd.Series:
    """Value counts, most frequent first, ties by value (deterministic)."""
    counts = pd.Series(text, dtype=object).value_counts(sort=False).sort_index()
    return counts.sort_values(ascending=False, kind="mergesort")


def eval_codes(vocab: CategoricalVocab, space: EvalSpace) -> list[int]:
    """Evaluation code of each token (exact value -> its code or ``other``; bucket -> other)."""
    if vocab.name == "peer":
        if "peer_kind" not in space.vocab:
            return [0] * vocab.size
        return [
            int(space.encode_field("peer_kind", np.array([k], dtype=object))[0])
            for k in vocab.peer_kind
        ]
    if vocab.name not in space.vocab:
        return [0] * vocab.size
    other = len(space.vocab[vocab.name])
    exact = space.encode_field(vocab.name, np.asarray(vocab.tokens[: vocab.n_exact], dtype=object))
    return [int(c) for c in exact] + [other] * (vocab.size - vocab.n_exact)


@dataclass
class TimeWarp:
    """Operational time of the training data's daily rhythm (the time-rescaling theorem).

    ``hour_weights`` (24,): flows per hour of day over all training hosts, smoothed and
    scaled to mean 1. ``forward(t)`` maps epoch seconds to warped seconds, piecewise linear
    with slope ``hour_weights[h]`` in hour ``h`` (a warped day is 86400 s long); ``inverse``
    undoes it. The latent of a gap ``dt`` after a flow at ``t0`` of a host with ``R`` flows
    per day is ``gap_latent = log(R / 86400 * (forward(t0 + dt) - forward(t0)))``: a gap in
    units of the host's mean gap at that hour, mean about 1 for every host and hour. The
    daily rhythm and the activity level are thus built in: a network that learns the gap
    shape (burstiness) samples the right number of flows per hour and per host-day.

    ``host_weights`` (H, 24), optional: each training host's own rhythm (``with_hosts``),
    its hourly flow counts plus ``prior`` flows spread as the pooled rhythm, scaled to mean
    1. The maps then take ``rows`` (n,), each value's training-host id; ids outside
    ``[0, H)`` (unknown hosts) and ``rows=None`` use the pooled rhythm. A pooled rhythm
    made every synthetic host follow the busiest hosts' day: the simulator's hosts' hourly
    profiles correlated with it at 0.91 where the real ones do at 0.73-0.75, and their
    5-minute counts stayed correlated for hours (docs/neural.md section 24).
    """

    hour_weights: list[float]
    host_weights: list[list[float]] | None = None
    _cache: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def fit(cls, ts: np.ndarray, smoothing: float = 0.05) -> TimeWarp:
        counts = np.bincount((np.mod(ts, 86400.0) // 3600.0).astype(np.int64), minlength=24)
        w = counts[:24].astype(float) + smoothing * max(counts.mean(), 1.0)
        return cls(hour_weights=[float(v) for v in w * 24.0 / w.sum()])

    def with_hosts(self, ts: np.ndarray, hosts: np.ndarray, n_hosts: int, prior: float) -> TimeWarp:
        """This warp plus a rhythm per training host: ``ts`` (n,) epoch seconds of the
        training flows, ``hosts`` (n,) their host ids in ``[0, n_hosts)``; ``prior``: flows
        of the pooled rhythm added to each host's hourly counts (> 0), so a host of few flows
        keeps close to the pooled rhythm and no hour of a host has weight 0."""
        if prior <= 0:
            raise ValueError(f"TimeWarp.with_hosts: prior must be > 0, got {prior}")
        hours = (np.mod(ts, 86400.0) // 3600.0).astype(np.int64).clip(0, 23)
        counts = np.zeros((n_hosts, 24))
        np.add.at(counts, (np.asarray(hosts, np.int64), hours), 1.0)
        pooled = np.asarray(self.hour_weights, dtype=float) / 24.0  # shares, sum 1
        w = counts + prior * pooled
        w = w * 24.0 / w.sum(axis=1, keepdims=True)
        return TimeWarp(hour_weights=list(self.hour_weights), host_weights=w.tolist())

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights (H + 1, 24) and cumulative warped seconds (H + 1, 25) per host row; the
        last row is the pooled rhythm. Built once (the sampler maps every step)."""
        if self._cache is None:
            w = np.asarray(self.hour_weights, dtype=float)[None, :]
            if self.host_weights:
                w = np.vstack([np.asarray(self.host_weights, dtype=float), w])
            cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w, axis=1) * 3600.0], 1)
            self._cache = (w, cum)
        return self._cache

    def _rows(self, rows: np.ndarray | None, n_tables: int) -> np.ndarray | int:
        if rows is None or n_tables == 1:
            return n_tables - 1
        r = np.asarray(rows, dtype=np.int64)
        return np.where((r >= 0) & (r < n_tables - 1), r, n_tables - 1)

    def hour_rates(self, rows: np.ndarray) -> np.ndarray:
        """The slope of each host row's warp in each hour of day, float64 (n, 24): its
        rhythm; rows outside the host rows (unknown hosts, -1) get the pooled one."""
        w, _ = self._tables()
        r = np.asarray(rows, dtype=np.int64)
        return np.broadcast_to(w[self._rows(r, len(w))], (r.size, 24))

    def forward(self, t: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Warped seconds of epoch seconds ``t``, each in its host row's rhythm."""
        w, cum = self._tables()
        r = self._rows(rows, len(w))
        t = np.asarray(t, dtype=float)
        day = np.floor(t / 86400.0)
        s = t - day * 86400.0
        h = np.minimum((s // 3600.0).astype(np.int64), 23)
        return day * 86400.0 + cum[r, h] + w[r, h] * (s - h * 3600.0)

    def inverse(self, tau: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Epoch seconds of warped seconds ``tau`` (``forward`` undone, row by row)."""
        w, cum = self._tables()
        r = self._rows(rows, len(w))
        tau = np.asarray(tau, dtype=float)
        day = np.floor(tau / 86400.0)
        s = tau - day * 86400.0
        if np.ndim(r) == 0:
            h = np.clip(np.searchsorted(cum[r], s, side="right") - 1, 0, 23)
        else:
            h = np.clip((cum[r] <= np.asarray(s)[..., None]).sum(-1) - 1, 0, 23)
        return day * 86400.0 + h * 3600.0 + (s - cum[r, h]) / w[r, h]

    def bound(self, rows: np.ndarray | None) -> RowWarp:
        """This warp with its host rows fixed (for ``value_interval``'s gap)."""
        return RowWarp(self, rows)

    def gap_latent(
        self, t0: np.ndarray, dt: np.ndarray, rate: np.ndarray, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Latent of gaps ``dt`` (s) after ``t0`` for hosts of activity ``rate`` (log10/day)
        and host rows ``rows``."""
        with np.errstate(divide="ignore"):
            return np.log(
                np.power(10.0, rate)
                / 86400.0
                * (self.forward(t0 + dt, rows) - self.forward(t0, rows))
            )

    def to_dict(self) -> dict:
        out: dict = {"hour_weights": list(self.hour_weights)}
        if self.host_weights:
            out["host_weights"] = [list(map(float, r)) for r in self.host_weights]
        return out


@dataclass
class RowWarp:
    """A ``TimeWarp`` whose maps take each value's host row from ``rows`` (n,)."""

    warp: TimeWarp
    rows: np.ndarray | None

    def forward(self, t: np.ndarray) -> np.ndarray:
        return self.warp.forward(t, self.rows)

    def inverse(self, tau: np.ndarray) -> np.ndarray:
        return self.warp.inverse(tau, self.rows)


@dataclass
class ContinuousSpec:
    """A continuous field: grid ``resolution`` (raw units), ``scale`` (max log1p value, for
    the input embedding), the latent range seen in training (``lat_lo``, ``lat_hi``) and
    ``floor``, the smallest training value of a plain (not ratio, not gap) field: its grid
    cell owns the mixture's whole left tail and smaller values have probability 0 (a flow
    has at least the packets of the smallest training flow, not 0 from the tail's leak)."""

    name: str
    resolution: float
    scale: float
    lat_lo: float
    lat_hi: float
    floor: float = 0.0

    @property
    def floor_cell(self) -> float:
        """Grid index ``k`` of ``floor`` (float, for numpy)."""
        return float(np.rint(self.floor / self.resolution))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def raw_values(flows: pd.DataFrame, name: str) -> np.ndarray:
    """Non-negative float64 values of a continuous field (nulls as 0), shape (n,)."""
    if name == "dt" and "dt" not in flows:
        ts = flows["ts"].to_numpy(dtype=float)
        dt = np.diff(ts, prepend=ts[:1]) if len(ts) else ts
        first = (
            np.r_[True, flows["user"].to_numpy()[1:] != flows["user"].to_numpy()[:-1]]
            if len(ts)
            else ts
        )
        return np.where(first, 0.0, np.clip(dt, 0.0, None))
    x = pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=float)
    return np.clip(np.nan_to_num(x, nan=0.0), 0.0, None)


def latent_base(flows: pd.DataFrame, name: str) -> np.ndarray | None:
    """Divisor of a ratio field (``max(packets, 1)``), or None."""
    if name not in RATIO_BASE:
        return None
    return np.maximum(raw_values(flows, RATIO_BASE[name]), 1.0)


def base_is_zero(flows: pd.DataFrame, name: str) -> np.ndarray | None:
    """Rows of a ratio field whose packet count is 0 (bool (n,)), or None for other fields."""
    if name not in RATIO_BASE:
        return None
    return raw_values(flows, RATIO_BASE[name]) <= 0


def value_resolution(x: np.ndarray) -> float:
    """The grid raw values ``x`` (n,) lie on, in their units: 1 for whole numbers; else the
    largest whole number of milliseconds dividing one second that every value is a multiple
    of (UGR'16's nfdump times and durations: 4 ms); 1 ms for values finer than that. A
    sample drawn on a finer grid than the log's would hold values no log has (gaps of 1-3 ms
    between UGR'16 flows, whose real gaps are 0, 4, 8 ms ...)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if np.all(np.abs(x - np.rint(x)) < 1e-9):
        return 1.0
    ms = x * 1000.0
    if not np.all(np.abs(ms - np.rint(ms)) < 1e-3):  # within a microsecond
        return 0.001
    step = int(np.gcd.reduce(np.abs(np.rint(ms)).astype(np.int64)))
    return float(math.gcd(step, 1000)) / 1000.0


#: a whole-second gap is an atom of a log's gaps (``gap_atoms``) when it holds at least this
#: share of them and this many times the mean count of the ``ATOM_NEIGHBOURS`` grid cells on
#: either side; at most ``MAX_ATOMS`` of them, the commonest
ATOM_MIN_SHARE, ATOM_MIN_EXCESS, ATOM_NEIGHBOURS, MAX_ATOMS = 0.001, 3.0, 4, 32


def gap_atoms(dt: np.ndarray, resolution: float) -> np.ndarray:
    """The whole-second gaps (seconds, sorted float64 (A,)) that stand out of the gaps
    ``dt`` (n,) on their grid of ``resolution`` seconds; empty on a grid of a second or more.

    A log that writes each flow's end in whole seconds and its duration in milliseconds
    (UGR'16's nfdump logs) puts two flows of zero duration a whole number of seconds apart,
    and a host's periodic traffic (a 30 s keep-alive, a 60 s beacon) repeats one gap
    exactly: on UGR'16's training split 1 s holds 1.9% of the gaps against 0.4% for 0.996 s
    and 0.3% for 1.004 s. A gap of ``k`` seconds is an atom when it holds at least
    ``ATOM_MIN_SHARE`` of the gaps and ``ATOM_MIN_EXCESS`` times the mean count of the
    ``ATOM_NEIGHBOURS`` grid cells on either side (a smooth density holds about as much in
    each), ``k >= 1``."""
    dt = np.asarray(dt, dtype=np.float64)
    dt = dt[np.isfinite(dt)]
    if resolution >= 1.0 or dt.size == 0:
        return np.zeros(0)
    cells, counts = np.unique(np.rint(dt / resolution).astype(np.int64), return_counts=True)
    per_second = int(round(1.0 / resolution))
    whole = np.flatnonzero((cells > 0) & (cells % per_second == 0))
    whole = whole[counts[whole] >= ATOM_MIN_SHARE * dt.size]
    if whole.size == 0:
        return np.zeros(0)
    near = np.r_[np.arange(-ATOM_NEIGHBOURS, 0), np.arange(1, ATOM_NEIGHBOURS + 1)]
    around = cells[whole][:, None] + near[None, :]  # (candidates, 2 * ATOM_NEIGHBOURS)
    at = np.searchsorted(cells, around).clip(max=cells.size - 1)
    neighbours = np.where(cells[at] == around, counts[at], 0).mean(axis=1)
    atoms = whole[counts[whole] >= ATOM_MIN_EXCESS * neighbours]
    atoms = atoms[np.argsort(-counts[atoms], kind="stable")[:MAX_ATOMS]]
    return np.sort(cells[atoms] * resolution)


def atom_index(dt: np.ndarray, atoms: np.ndarray, resolution: float) -> np.ndarray:
    """int64 (n,): 1 + the index in ``atoms`` (seconds, sorted (A,)) of each gap ``dt`` (n,)
    that lies on one (on the grid of ``resolution`` seconds), else 0."""
    dt = np.asarray(dt, dtype=np.float64)
    if len(atoms) == 0:
        return np.zeros(dt.shape, np.int64)
    cells = np.rint(np.nan_to_num(dt, nan=-1.0) / resolution).astype(np.int64)
    atom_cells = np.rint(np.asarray(atoms) / resolution).astype(np.int64)
    at = np.searchsorted(atom_cells, cells).clip(max=atom_cells.size - 1)
    return np.where(atom_cells[at] == cells, at + 1, 0).astype(np.int64)


def build_spec(name: str, flows: pd.DataFrame, latent: np.ndarray | None = None) -> ContinuousSpec:
    """Spec of a continuous field (its grid: ``value_resolution``); ``latent`` overrides the
    field's latent values (``dt``)."""
    x = raw_values(flows, name)
    resolution = value_resolution(x)
    base = latent_base(flows, name)
    lat = np.log1p(x) if base is None else np.log(np.maximum(x, 0.5 * resolution) / base)
    if base is not None:  # bytes per packet of the flows with packets (the rest are 0 bytes)
        lat = lat[~base_is_zero(flows, name)]
    floor = 0.0
    if latent is not None:
        lat = latent[np.isfinite(latent)]
    elif base is None and len(x):
        floor = float(np.rint(x.min() / resolution) * resolution)
    return ContinuousSpec(
        name=name,
        resolution=resolution,
        scale=float(max(np.log1p(x).max(initial=0.0), 1.0)),
        lat_lo=float(np.quantile(lat, 0.001)) if len(lat) else 0.0,
        lat_hi=float(lat.max(initial=1.0)),
        floor=floor,
    )


def grid_interval(
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    spec: ContinuousSpec,
    base: np.ndarray | None,
    gap: tuple[np.ndarray, np.ndarray, TimeWarp | RowWarp] | None = None,
    base_zero: np.ndarray | None = None,
):
    """Latent interval of the grid values within raw ``[x_lo, x_hi)`` (x_hi may be inf).

    ``base``: divisor of a ratio field; ``gap``: (previous flow time t0 (s), host activity
    log10 flows/day, the warp) for ``dt``, whose latent is ``TimeWarp.gap_latent``.
    ``base_zero``: rows of a ratio field without packets, whose value is 0 with certainty: an
    interval holding 0 becomes the whole line (probability 1). (Bytes without packets, a rule
    violation in a real log, keep their interval as if the flow had one packet.)
    Returns (lo, hi, width), float64 (n,): ``lo`` may be -inf, ``hi`` +inf; ``width`` is
    ``hi - lo`` computed without cancellation (0 where the interval holds no grid value).
    """
    r = spec.resolution
    k_floor = spec.floor_cell if base is None and gap is None else 0.0
    k_min = np.maximum(np.ceil(x_lo / r - 1e-9), k_floor)
    k_max = np.where(np.isinf(x_hi), np.inf, np.ceil(x_hi / r - 1e-9) - 1)
    a_raw = (k_min - 0.5) * r
    b_raw = (k_max + 0.5) * r
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if gap is not None:
            t0, rate, warp = gap
            per = np.power(10.0, rate) / 86400.0
            w0 = warp.forward(t0)
            wa = warp.forward(t0 + np.maximum(a_raw, 0.0)) - w0
            wb = warp.forward(t0 + np.where(np.isinf(b_raw), 0.0, b_raw)) - w0
            lo = np.where(k_min <= 0, -np.inf, np.log(per * wa))
            hi = np.where(np.isinf(b_raw), np.inf, np.log(per * wb))
            width = np.log1p((wb - wa) / np.maximum(wa, 1e-300))
        elif base is None:
            lo = np.where(k_min <= k_floor, -np.inf, np.log1p(a_raw))
            hi = np.where(np.isinf(b_raw), np.inf, np.log1p(b_raw))
            width = np.log1p((b_raw - a_raw) / (1.0 + np.maximum(a_raw, 0.0)))
        else:
            lo = np.where(k_min <= 0, -np.inf, np.log(a_raw / base))
            hi = np.where(np.isinf(b_raw), np.inf, np.log(b_raw / base))
            width = np.log1p((b_raw - a_raw) / np.maximum(a_raw, 1e-300))
    empty = k_max < k_min  # no grid value (e.g. below the floor): finite bounds, width 0
    width = np.where(empty, 0.0, width)
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    if base_zero is not None and np.any(base_zero):
        certain = base_zero & (k_min <= 0) & (k_max >= 0)
        lo = np.where(certain, -np.inf, lo)
        hi = np.where(certain, np.inf, hi)
        width = np.where(certain, 1.0, width)
    return lo, hi, width


def value_interval(
    x: np.ndarray,
    spec: ContinuousSpec,
    base: np.ndarray | None,
    gap: tuple[np.ndarray, np.ndarray, TimeWarp | RowWarp] | None = None,
    base_zero: np.ndarray | None = None,
):
    """Latent interval of each value's grid cell (training target)."""
    r = spec.resolution
    k = np.maximum(np.rint(x / r), 0.0)
    return grid_interval(k * r, (k + 1) * r, spec, base, gap, base_zero)


def time_features(ts: np.ndarray, weekly: bool = True) -> np.ndarray:
    """Cyclic hour-of-day and day-of-week of epoch seconds: (n, 4) float32
    ``[sin h, cos h, sin d, cos d]`` (day 0 = Monday; 1970-01-01 was a Thursday). Without
    ``weekly`` the day-of-week pair is zero: a model trained on fewer days than
    ``WEEKLY_MIN_DAYS`` has not seen the other weekdays, and a sample on one of them would
    feed the network inputs it never saw."""
    hour = np.mod(ts, 86400.0) / 3600.0
    a = 2 * np.pi * hour / 24.0
    if not weekly:
        zero = np.zeros_like(a)
        return np.stack([np.sin(a), np.cos(a), zero, zero], axis=1).astype(np.float32)
    dow = np.mod(np.floor(ts / 86400.0) + 3.0, 7.0) + hour / 24.0
    b = 2 * np.pi * dow / 7.0
    return np.stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b)], axis=1).astype(np.float32)


def weekly_span(ts: np.ndarray) -> bool:
    """Whether training times ``ts`` (epoch seconds) span ``WEEKLY_MIN_DAYS`` days, so that
    every weekday is seen at least twice and the day of week can be an input."""
    if ts.size == 0:
        return False
    days = np.unique(np.floor(np.asarray(ts, dtype=float) / 86400.0))
    return bool(days.max() - days.min() + 1 >= WEEKLY_MIN_DAYS)


def infer_roles(flows: pd.DataFrame) -> dict[str, str]:
    """Role of each user from its flows (design §4), for frames without a hosts table."""
    out = flows["direction"].astype(str).to_numpy() == "out"
    ext = categorical_text(flows["peer_kind"]) == "external"
    frame = pd.DataFrame(
        {"user": flows["user"].astype(str).to_numpy(), "eo": out & ext, "ei": ~out & ext}
    )
    agg = frame.groupby("user").agg(eo=("eo", "any"), ei=("ei", "any"))
    role = np.select(
        [agg["eo"] & agg["ei"], agg["eo"], agg["ei"]],
        ["both", "out_external", "in_external"],
        "internal",
    )
    return dict(zip(agg.index.astype(str), role, strict=True))


def role_ids(roles: np.ndarray) -> np.ndarray:
    lookup = {r: i for i, r in enumerate(ROLES)}
    return pd.Series(roles).map(lookup).fillna(0).to_numpy(dtype=np.int64)


@dataclass
class Encoded:
    """A user-flow frame as model inputs, rows sorted by (user, ts). ``n`` flows, ``F`` fields.

    ``cat[f]``: int64 (n,) token ids. ``lo/hi/width[f]``: float32 (n,) latent interval of the
    value's grid cell. ``emb[f]``: float32 (n,) log1p(value) / scale (embedding input).
    ``time``: (n, 4) cyclic time of the flow. ``host``: int64 (n,) host index; ``start``/``end``:
    int64 (n,) first row / row after the last of the flow's host. ``role``: int64 (n,), ``rate``: float32 (n,)
    host activity. ``ctx_rows``: int64 (n,) row of the flow's window in ``ctx_table``
    (C, F) per host with C zero rows before each host; ``partial``: (n, 4) log1p sums of the
    flow's window up to and including the flow. ``order``: the frame row of each sorted row.
    """

    n: int
    cat: dict[str, np.ndarray]
    lo: dict[str, np.ndarray]
    hi: dict[str, np.ndarray]
    width: dict[str, np.ndarray]
    emb: dict[str, np.ndarray]
    base: dict[str, np.ndarray]
    time: np.ndarray
    host: np.ndarray
    start: np.ndarray
    end: np.ndarray
    role: np.ndarray
    rate: np.ndarray
    ctx_table: np.ndarray
    ctx_rows: np.ndarray
    partial: np.ndarray
    order: np.ndarray
    frame: pd.DataFrame
    #: int64 (n,): 0, or 1 + the index of the gap atom (``gap_atoms``) the flow's gap is
    #: (None: the model has no atoms)
    atom: np.ndarray | None = None


def host_rates(flows: pd.DataFrame, warp: TimeWarp | None = None) -> dict[str, float]:
    """log10 of flows per day of each user: its flows over the days it has flows, each day
    counted by the share of it the frame covers (``day_coverage``), so a capture of minutes
    gives its hosts their rate per day, not their count. With ``warp``, the share is of the
    day's operational time (a capture of the busiest hour covers more than 1/24 of the day),
    which is what ``TimeWarp.gap_latent`` divides by."""
    if len(flows) == 0:
        return {}
    ts = flows["ts"].to_numpy(dtype=float)
    days = np.floor(ts / 86400.0)
    cover = day_coverage(ts, warp)
    frame = pd.DataFrame({"user": flows["user"].astype(str).to_numpy(), "day": days})
    first = frame.drop_duplicates(["user", "day"])
    exposure = pd.Series(cover(first["day"].to_numpy()), index=first["user"].to_numpy())
    exposure = exposure.groupby(level=0).sum()
    n = frame.groupby("user").size()
    return dict(zip(n.index, np.log10(n / exposure.reindex(n.index)).astype(float), strict=True))


def warp_rows(users: np.ndarray, host_ids: dict[str, int] | None) -> np.ndarray | None:
    """Each user's row of a ``TimeWarp`` (n,): its training-host id, -1 (the pooled
    rhythm) for users not in ``host_ids``; None without ``host_ids``."""
    if not host_ids:
        return None
    rows = pd.Series(np.asarray(users, dtype=object)).astype(str).map(host_ids)
    return rows.fillna(-1).to_numpy(dtype=np.int64)


WarpMap = Callable[..., np.ndarray]  # (t, rows=None) -> mapped seconds


def warp_maps(warp: TimeWarp | None) -> tuple[WarpMap, WarpMap]:
    """``warp``'s (forward, inverse) maps of epoch seconds, each taking optional host
    ``rows`` (``TimeWarp.forward``), or the identity twice without a warp."""
    if warp is not None:
        return warp.forward, warp.inverse

    def same(t: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(t, dtype=float)

    return same, same


def day_coverage(
    ts: np.ndarray, warp: TimeWarp | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """For epoch seconds ``ts`` (n,), a function of day numbers (m,) giving the share of each
    day within ``[min(ts), max(ts)]``, in (0, 1]: 1 for a day the capture spans, less for its
    first and last day when it starts or ends within them; in ``warp``'s operational time
    when given. At least 1 s of a day."""
    lo, hi = float(np.min(ts)), float(np.max(ts))
    fwd, _ = warp_maps(warp)

    def cover(days: np.ndarray) -> np.ndarray:
        days = np.asarray(days, dtype=float)
        start = np.maximum(days * 86400.0, lo)
        end = np.maximum(np.minimum((days + 1) * 86400.0, hi), start)
        return np.clip(fwd(end) - fwd(start), 1.0, 86400.0) / 86400.0

    return cover


def window_sums(frame: pd.DataFrame) -> np.ndarray:
    """Per-flow statistics summed into windows: (n, 4) float64 [1, bytes, packets, out]."""
    return np.stack(
        [
            np.ones(len(frame)),
            raw_values(frame, "bytes"),
            raw_values(frame, "packets"),
            (frame["direction"].astype(str).to_numpy() == "out").astype(float),
        ],
        axis=1,
    )


def encode_frame(
    flows: pd.DataFrame,
    vocabs: dict[str, CategoricalVocab],
    specs: dict[str, ContinuousSpec],
    roles: dict[str, str],
    rates: dict[str, float],
    *,
    window_seconds: float,
    context: int,
    warp: TimeWarp | None = None,
    weekly: bool = True,
    host_ids: dict[str, int] | None = None,
) -> Encoded:
    """Model inputs of a user-flow frame (see :class:`Encoded`); ``warp``: the latent of
    ``dt`` is the warped gap (``TimeWarp.gap_latent``, in the rhythm of each user's row in
    ``host_ids``; users not in it take the pooled rhythm), else ``log1p(dt)``; ``weekly``:
    see ``time_features``."""
    frame = normalise_frame(flows)
    order = np.lexsort((frame["ts"].to_numpy(dtype=float), frame["user"].astype(str).to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    n = len(frame)
    users = frame["user"].astype(str).to_numpy()
    first = np.r_[True, users[1:] != users[:-1]] if n else np.zeros(0, bool)
    host = np.cumsum(first) - 1
    start = np.flatnonzero(first)[host] if n else np.zeros(0, np.int64)
    cat = {name: v.encode(frame) for name, v in vocabs.items()}
    known = infer_roles(frame) if n else {}
    role = role_ids(np.array([roles.get(u, known.get(u, "both")) for u in users], dtype=object))
    own = host_rates(frame, warp)
    rate = np.array([rates.get(u, own.get(u, 0.0)) for u in users], dtype=np.float32)
    ts = frame["ts"].to_numpy(dtype=float)
    lo, hi, width, emb, base = {}, {}, {}, {}, {}
    for name, spec in specs.items():
        x = raw_values(frame, name)
        b = latent_base(frame, name)
        gap = None
        if name == "dt" and warp is not None:
            gap = (ts - x, rate.astype(float), warp.bound(warp_rows(users, host_ids)))
        a, c, w = value_interval(x, spec, b, gap, base_is_zero(frame, name))
        lo[name], hi[name], width[name] = (
            a.astype(np.float32),
            c.astype(np.float32),
            w.astype(np.float32),
        )
        emb[name] = (np.log1p(x) / spec.scale).astype(np.float32)
        if b is not None:
            base[name] = b
    win = np.floor(ts / window_seconds).astype(np.int64)
    sums = window_sums(frame)
    # dense per-host window table with `context` zero rows before each host's first window
    n_hosts = int(host.max()) + 1 if n else 0
    wmin = np.full(n_hosts, 0, np.int64)
    wmax = np.full(n_hosts, 0, np.int64)
    if n:
        wmin = pd.Series(win).groupby(host).min().to_numpy()
        wmax = pd.Series(win).groupby(host).max().to_numpy()
    size = wmax - wmin + 1 + context
    offset = np.r_[0, np.cumsum(size)[:-1]] if n_hosts else np.zeros(0, np.int64)
    rows = offset[host] + context + (win - wmin[host]) if n else np.zeros(0, np.int64)
    table = np.zeros((int(size.sum()) if n_hosts else 0, sums.shape[1]))
    for j in range(sums.shape[1]):
        table[:, j] = np.bincount(rows, weights=sums[:, j], minlength=table.shape[0])
    # running sums within (host, window) including the flow itself
    group_start = np.r_[True, rows[1:] != rows[:-1]] if n else np.zeros(0, bool)
    csum = np.cumsum(sums, axis=0)
    gidx = np.flatnonzero(group_start)[np.cumsum(group_start) - 1] if n else np.zeros(0, np.int64)
    before = np.where(gidx[:, None] > 0, csum[np.maximum(gidx - 1, 0)], 0.0) if n else csum
    partial = csum - before
    return Encoded(
        n=n,
        cat=cat,
        lo=lo,
        hi=hi,
        width=width,
        emb=emb,
        base=base,
        time=time_features(ts, weekly),
        host=host.astype(np.int64),
        start=start.astype(np.int64),
        end=(np.cumsum(np.bincount(host))[host] if n else np.zeros(0, np.int64)).astype(np.int64),
        role=role,
        rate=rate,
        ctx_table=np.log1p(table).astype(np.float32),
        ctx_rows=rows.astype(np.int64),
        partial=np.log1p(partial).astype(np.float32),
        order=order,
        frame=frame,
    )


def normalise_frame(flows: pd.DataFrame) -> pd.DataFrame:
    """A frame with the columns the model reads: adds ``peer``/``peer_kind`` from
    ``src``/``dst`` and ``direction`` where missing (sample tables have no peer)."""
    frame = flows
    if "peer" not in frame:
        frame = frame.copy()
        out = frame["direction"].astype(str).to_numpy() == "out"
        frame["peer"] = np.where(out, frame["dst"].astype(str), frame["src"].astype(str))
    if "peer_kind" not in frame:
        frame = frame.copy()
        frame["peer_kind"] = "external"
    for name in ("rev_packets", "rev_bytes"):
        if name not in frame:
            frame = frame.copy()
            frame[name] = np.nan
    return frame


__all__ = [
    "BPP_RANGE",
    "CATEGORICAL",
    "CONTEXT_FEATURES",
    "FIELD_ORDER",
    "OTHER",
    "RATIO_BASE",
    "CategoricalVocab",
    "TimeWarp",
    "ContinuousSpec",
    "Encoded",
    "atom_index",
    "build_spec",
    "gap_atoms",
    "base_is_zero",
    "build_vocab",
    "encode_frame",
    "grid_interval",
    "day_coverage",
    "host_rates",
    "infer_roles",
    "time_features",
    "warp_maps",
    "warp_rows",
    "RowWarp",
    "weekly_span",
]

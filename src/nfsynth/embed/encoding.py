"""Flow features for the embedding networks, fitted on the training split only.

``FlowEncoder.fit(train_flows, windows)`` learns, from training rows only:

- a vocabulary per categorical field (``CAT_FIELDS``: peer, sport, dport, proto, prev_proto,
  direction, peer_kind, hour, dow): index 0 is "other/unseen", 1..K the top-K training values
  by count (ties by value), so a high-cardinality field (peers, ports) never becomes one-hot or
  a raw integer code: the networks look the index up in an ``nn.Embedding``;
- per numeric field (``NUM_FIELDS`` present in the table, the ``roll{W}_*`` rolling
  statistics, and the window-context summary below) the mean and standard deviation of its
  log-scaled value. Counts, seconds and rates are log1p-scaled (``log_*`` columns already are);
  a field that is all-missing in training is dropped; missing values become the training mean
  (0 after standardisation).

Window context (architecture.md): for a flow in window ``w`` of its user, the previous ``C``
windows ``w-C .. w-1``. It is summarised, without building the ``(n, C, F)`` stack, from prefix
sums of the user's window rows: ``ctx_mean_{f}`` = log1p(mean over the ``C`` previous windows)
and ``ctx_last_{f}`` = log1p(window ``w-1``) for ``f`` in ``CONTEXT_FEATURES``.

``transform(flows) -> EncodedFlows`` with ``cat`` (int64, shape (n, n_cat)) and ``num``
(float32, shape (n, n_num)). ``to_dict``/``from_dict`` round-trip the fitted state as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nfsynth.features.windows import window_index, window_seconds

CAT_FIELDS: tuple[str, ...] = (
    "peer", "sport", "dport", "proto", "prev_proto", "direction", "peer_kind", "hour", "dow",
)  # fmt: skip
#: Numeric fields and whether they still need log1p (``log_*`` columns are already log1p).
NUM_FIELDS: dict[str, bool] = {
    "dt": True,
    "log_duration": False,
    "log_bytes": False,
    "log_packets": False,
    "log_rev_bytes": False,
    "log_rev_packets": False,
    "bpp": True,
    "prev_log_bytes": False,
    "prev_log_packets": False,
    "prev_dt": True,
}
ROLL_RE = re.compile(r"^roll[0-9.]+_(packets|bytes)_(mean|std)$")
CONTEXT_FEATURES: tuple[str, ...] = (
    "n_flows", "bytes", "packets", "n_peers", "n_dports", "n_out", "n_in",
)  # fmt: skip
#: User-flow columns the encoder may read (plus the rolling columns).
READ_COLUMNS: tuple[str, ...] = ("user", "ts", "split", *CAT_FIELDS, *NUM_FIELDS)


def read_columns(available: Sequence[str]) -> list[str]:
    """The encoder's columns among ``available`` (a user-flow table's column names)."""
    keep = set(READ_COLUMNS)
    return [c for c in available if c in keep or ROLL_RE.match(c)]


@dataclass
class EncodedFlows:
    """Network inputs. ``cat``: int64 (n, n_cat) vocabulary indices; ``num``: float32 (n, n_num)."""

    cat: np.ndarray
    num: np.ndarray

    def __len__(self) -> int:
        return len(self.cat)

    def take(self, idx: np.ndarray) -> EncodedFlows:
        return EncodedFlows(self.cat[idx], self.num[idx])


def _as_text(values: pd.Series) -> pd.Series:
    """Values as strings; categoricals stay categorical (with string categories)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.rename_categories(values.cat.categories.astype(str))
    return values.astype(str)


def vocab_codes(values: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    """Index of each value in ``vocab`` plus one; 0 for values not in it. Shape (n,), int64."""
    index = pd.Index(list(vocab))
    text = _as_text(values)
    if isinstance(text.dtype, pd.CategoricalDtype):
        lut = np.r_[index.get_indexer(text.cat.categories) + 1, 0]
        codes = text.cat.codes.to_numpy()
        return lut[np.where(codes < 0, len(lut) - 1, codes)].astype(np.int64)
    return (index.get_indexer(text) + 1).astype(np.int64)


def top_values(values: pd.Series, k: int) -> list[str]:
    """The ``k`` most frequent values (as strings), ties broken by value."""
    counts = _as_text(values).value_counts(sort=False)
    counts = counts[counts > 0]
    frame = pd.DataFrame({"v": counts.index.astype(str), "n": counts.to_numpy()})
    frame = frame.sort_values(["n", "v"], ascending=[False, True], kind="mergesort")
    return frame["v"].head(int(k)).tolist()


def context_summary(
    flows: pd.DataFrame, windows: pd.DataFrame, C: int, seconds: float | None = None
) -> pd.DataFrame:
    """``ctx_mean_{f}`` and ``ctx_last_{f}`` per flow (float64, log1p), index of ``flows``.

    ``windows``: the user windows table (grouped by user, consecutive ``win``). Windows outside
    a user's grid count as zeros, as in ``features.windows.context``.
    """
    seconds = seconds or window_seconds(windows)
    w = windows.sort_values(["user", "win"], kind="mergesort")
    wuser = w["user"].astype(str).to_numpy()
    wwin = w["win"].to_numpy(np.int64)
    new = np.r_[True, wuser[1:] != wuser[:-1]] if len(w) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(w)].astype(np.int64)
    users = pd.Index(wuser[starts])
    values = w[list(CONTEXT_FEATURES)].to_numpy(np.float64)
    # prefix[r] = sum of rows before r within the whole table; per user, differences stay inside.
    prefix = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    b = users.get_indexer(flows["user"].astype(str))
    known = b >= 0
    bb = np.where(known, b, 0)
    row0 = starts[bb] if len(starts) else np.zeros(len(flows), np.int64)
    first = wwin[row0] if len(w) else np.zeros(len(flows), np.int64)
    n_rows = (ends[bb] - row0) if len(starts) else np.zeros(len(flows), np.int64)
    fwin = window_index(flows["ts"].to_numpy(np.float64), seconds)
    pos = fwin - first  # the flow's own row within its user's block
    hi = np.clip(pos, 0, n_rows)  # rows strictly before the flow's window
    lo = np.clip(pos - C, 0, n_rows)
    total = prefix[row0 + hi] - prefix[row0 + lo]
    total[~known] = 0.0
    has_last = known & (pos - 1 >= 0) & (pos - 1 < n_rows)
    last = np.where(has_last[:, None], values[np.clip(row0 + pos - 1, 0, max(len(w) - 1, 0))], 0)
    out = {}
    for j, f in enumerate(CONTEXT_FEATURES):
        out[f"ctx_mean_{f}"] = np.log1p(total[:, j] / C)
        out[f"ctx_last_{f}"] = np.log1p(last[:, j])
    return pd.DataFrame(out, index=flows.index)


class FlowEncoder:
    """Vocabularies and standardisation fitted on training flows (module docstring).

    ``top_k``: vocabulary size per categorical field; ``context``: windows in the context.
    Fitted state (``vocab_``, ``num_fields_``, ``mean_``, ``std_``, ``log_``) ends in ``_``.
    """

    def __init__(
        self, top_k: int = 256, context: int = 36, cat_fields: Sequence[str] = CAT_FIELDS
    ) -> None:
        self.top_k = int(top_k)
        self.context = int(context)
        self.cat_fields = tuple(cat_fields)

    # -- fitting --------------------------------------------------------------------
    def _numeric_frame(self, flows: pd.DataFrame, windows: pd.DataFrame | None) -> pd.DataFrame:
        cols = {}
        for name, needs_log in NUM_FIELDS.items():
            if name in flows.columns:
                cols[name] = (name, needs_log)
        for name in flows.columns:
            if ROLL_RE.match(name):
                cols[name] = (name, True)
        frame = pd.DataFrame(index=flows.index)
        for name, (col, needs_log) in cols.items():
            v = pd.to_numeric(flows[col], errors="coerce").to_numpy(np.float64)
            frame[name] = np.log1p(np.clip(v, 0, None)) if needs_log else v
        if windows is not None and len(windows):
            frame = pd.concat([frame, context_summary(flows, windows, self.context)], axis=1)
        return frame

    def fit(self, flows: pd.DataFrame, windows: pd.DataFrame | None = None) -> FlowEncoder:
        """Learn vocabularies and statistics from ``flows`` (the training rows only)."""
        if len(flows) == 0:
            raise ValueError("FlowEncoder.fit: no training flows")
        self.cat_fields_ = [f for f in self.cat_fields if f in flows.columns]
        self.vocab_ = {f: top_values(flows[f], self.top_k) for f in self.cat_fields_}
        num = self._numeric_frame(flows, windows)
        num = num.loc[:, num.notna().any(axis=0)]
        self.num_fields_ = list(num.columns)
        self.log_ = {k: bool(v) for k, v in NUM_FIELDS.items()}
        self.mean_ = num.mean(axis=0).to_numpy(np.float64)
        std = num.std(axis=0, ddof=0).fillna(0.0).to_numpy(np.float64)
        self.std_ = np.where(std > 1e-9, std, 1.0)
        self.use_context_ = windows is not None and len(windows) > 0
        return self

    # -- transforming ---------------------------------------------------------------
    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: vocabulary plus the "other" index, per categorical field."""
        return [len(self.vocab_[f]) + 1 for f in self.cat_fields_]

    @property
    def n_num(self) -> int:
        return len(self.num_fields_)

    def transform(self, flows: pd.DataFrame, windows: pd.DataFrame | None = None) -> EncodedFlows:
        """Encode flows with the training statistics: ``EncodedFlows`` of ``len(flows)`` rows."""
        cat = np.zeros((len(flows), len(self.cat_fields_)), dtype=np.int64)
        for j, f in enumerate(self.cat_fields_):
            if f in flows.columns:
                cat[:, j] = vocab_codes(flows[f], self.vocab_[f])
        if self.use_context_ and windows is None:
            raise ValueError("FlowEncoder.transform: fitted with window context; pass windows")
        frame = self._numeric_frame(flows, windows if self.use_context_ else None)
        frame = frame.reindex(columns=self.num_fields_)
        raw = frame.to_numpy(np.float64)
        z = (raw - self.mean_) / self.std_
        z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        return EncodedFlows(cat, np.clip(z, -10, 10).astype(np.float32))

    # -- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "context": self.context,
            "cat_fields": self.cat_fields_,
            "vocab": self.vocab_,
            "num_fields": self.num_fields_,
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "use_context": self.use_context_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowEncoder:
        enc = cls(top_k=d["top_k"], context=d["context"], cat_fields=d["cat_fields"])
        enc.cat_fields_ = list(d["cat_fields"])
        enc.vocab_ = {k: list(v) for k, v in d["vocab"].items()}
        enc.num_fields_ = list(d["num_fields"])
        enc.mean_ = np.asarray(d["mean"], dtype=np.float64)
        enc.std_ = np.asarray(d["std"], dtype=np.float64)
        enc.log_ = dict(NUM_FIELDS)
        enc.use_context_ = bool(d["use_context"])
        return enc

"""The shared evaluation space (design §6): per-field bins fitted on the training split.

Every model's ``log_prob`` and every metric is computed on these bins, so numbers are
comparable across models. Fields:

- continuous (``CONTINUOUS_FIELDS``): ``dt`` (s), ``duration`` (s), ``packets``, ``bytes``,
  ``rev_packets``, ``rev_bytes``. Bins are intervals of ``log1p(value)``: the first is
  ``[0, log1p(0.5))`` (zero counts, sub-half-second times), then ``n_bins`` equal-width
  log-spaced bins up to the training maximum, the last open to +inf. ``rev_*`` fields are
  used only where the training data has them (LANL), not where they are null (UGR'16).
- categorical (``CATEGORICAL_FIELDS``): ``proto``, ``sport``, ``dport``, ``direction``,
  ``peer_kind``: the top-K training values as text, plus code ``K`` for any other value.

A flow's discrete probability in this space is the product over fields of the probability
of its bin (code); a model's ``log_prob`` is the sum of the per-field log-probabilities, in
nats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

CONTINUOUS_FIELDS: tuple[str, ...] = (
    "dt",
    "duration",
    "packets",
    "bytes",
    "rev_packets",
    "rev_bytes",
)
CATEGORICAL_FIELDS: tuple[str, ...] = ("proto", "sport", "dport", "direction", "peer_kind")
OTHER = "other"
ZERO_EDGE = float(np.log1p(0.5))


def categorical_text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Field values as the text the vocabulary holds (``6`` -> ``"6"``, nulls -> ``""``)."""
    series = pd.Series(np.asarray(values, dtype=object))
    return series.where(series.notna(), "").astype(str).to_numpy(dtype=object)


@dataclass
class EvalSpace:
    """Per-field bins. ``edges[f]``: log1p-space edges, shape (n_bins(f) + 1,), first 0 and
    last +inf. ``vocab[f]``: the top-K values; code ``len(vocab[f])`` is ``other``."""

    edges: dict[str, np.ndarray] = field(default_factory=dict)
    vocab: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, flows: pd.DataFrame, *, n_bins: int = 24, top_k: int = 24) -> EvalSpace:
        """Learn bins from training flows (user-table rows, see docs/architecture.md)."""
        if len(flows) == 0:
            raise ValueError("cannot fit the evaluation space on an empty training split")
        edges: dict[str, np.ndarray] = {}
        for name in CONTINUOUS_FIELDS:
            if name not in flows.columns:
                continue
            values = pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=float)
            present = values[np.isfinite(values)]
            if present.size < 0.5 * len(values) or present.size == 0:
                continue
            top = float(np.log1p(max(present.max(), 1.0)))
            inner = np.linspace(ZERO_EDGE, max(top, ZERO_EDGE + 1e-6), n_bins + 1)
            edges[name] = np.concatenate([[0.0], inner[:-1], [np.inf]])
        vocab: dict[str, list[str]] = {}
        for name in CATEGORICAL_FIELDS:
            if name not in flows.columns:
                continue
            counts = pd.Series(categorical_text(flows[name])).value_counts(sort=False)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            vocab[name] = [value for value, _ in ranked[:top_k]]
        return cls(edges=edges, vocab=vocab)

    @property
    def fields(self) -> list[str]:
        """Fields in a fixed order: continuous then categorical."""
        return [f for f in CONTINUOUS_FIELDS if f in self.edges] + [
            f for f in CATEGORICAL_FIELDS if f in self.vocab
        ]

    def is_continuous(self, name: str) -> bool:
        return name in self.edges

    def n_bins(self, name: str) -> int:
        """Number of codes of a field (categorical: top-K plus ``other``)."""
        if name in self.edges:
            return len(self.edges[name]) - 1
        return len(self.vocab[name]) + 1

    def encode_field(self, name: str, values: pd.Series | np.ndarray) -> np.ndarray:
        """Codes of one field, int64 array of shape (n,), in ``0 .. n_bins(name) - 1``."""
        if name in self.edges:
            x = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy(dtype=float)
            x = np.log1p(np.clip(np.nan_to_num(x, nan=0.0), 0.0, None))
            codes = np.searchsorted(self.edges[name], x, side="right") - 1
            return np.clip(codes, 0, self.n_bins(name) - 1).astype(np.int64)
        vocab = self.vocab[name]
        lookup = {value: i for i, value in enumerate(vocab)}
        text = categorical_text(values)
        return pd.Series(text).map(lookup).fillna(len(vocab)).to_numpy(dtype=np.int64)

    def encode(self, flows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Codes of every field present in ``flows``: field -> int64 array (n,)."""
        return {name: self.encode_field(name, flows[name]) for name in self.fields if name in flows}

    def decode_uniform(self, name: str, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Continuous values drawn uniformly (in log1p space) within each code's bin.

        The open last bin is drawn within the width of the bin before it. Returns float64 (n,).
        """
        edges = self.edges[name]
        lo = edges[codes]
        hi = edges[codes + 1].copy()
        last = np.isinf(hi)
        hi[last] = lo[last] + (edges[-2] - edges[-3] if len(edges) > 2 else 1.0)
        return np.expm1(rng.uniform(lo, hi))

    def to_dict(self) -> dict:
        return {
            "edges": {
                k: [float(e) if np.isfinite(e) else "inf" for e in v] for k, v in self.edges.items()
            },
            "vocab": self.vocab,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvalSpace:
        edges = {
            k: np.array([np.inf if e == "inf" else float(e) for e in v])
            for k, v in data["edges"].items()
        }
        return cls(edges=edges, vocab={k: list(v) for k, v in data["vocab"].items()})

    def save(self, path: str | Path) -> None:
        """Write the bins as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> EvalSpace:
        """Read bins written by :meth:`save` (plain JSON, no code)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

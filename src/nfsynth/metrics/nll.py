"""Held-out negative log-likelihood in bits per flow, in the evaluation space.

``nll_bits = -mean(model.log_prob(test flows)) / ln 2``: the model's ``log_prob`` gives nats
per flow (the sum over fields of log P(the flow's bin)), so the value is the average number of
bits a code built from the model needs per real test flow. Only for models with ``log_prob``;
not defined for the real-vs-real reference (there is no model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nfsynth.metrics.common import LN2

NAME = "nll_bits"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = float("inf")


def nll_bits(log_prob_nats: np.ndarray) -> float:
    """Bits per flow from per-flow log-probabilities in nats (shape (n,))."""
    values = np.asarray(log_prob_nats, dtype=float)
    if values.size == 0:
        return float("nan")
    if not np.isfinite(values).all():
        return float("inf")
    return float(-values.mean() / LN2)


def compute(real: pd.DataFrame, model: Any) -> float:
    """``nll_bits`` of the real test flows ``real`` (user-flow frame) under ``model``."""
    if not hasattr(model, "log_prob"):
        return float("nan")
    return nll_bits(model.log_prob(real))

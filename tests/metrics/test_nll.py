"""Known answer of nll_bits: a model whose distribution is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import nll


class UniformProto:
    """Uniform over 4 protocol codes and certain about everything else: 2 bits per flow."""

    def log_prob(self, flows: pd.DataFrame) -> np.ndarray:
        return np.full(len(flows), np.log(0.25))


class Mixed:
    """Probability 1/2 for TCP flows, 1/8 for the rest."""

    def log_prob(self, flows: pd.DataFrame) -> np.ndarray:
        return np.where(flows["proto"] == 6, np.log(0.5), np.log(0.125))


def test_nll_bits_of_known_distributions():
    flows = pd.DataFrame({"proto": [6, 6, 17, 1]})
    assert nll.compute(flows, UniformProto()) == pytest.approx(2.0)
    assert nll.compute(flows, Mixed()) == pytest.approx((1 + 1 + 3 + 3) / 4)


def test_zero_probability_is_infinite_and_no_model_is_nan():
    assert nll.nll_bits(np.array([0.0, -np.inf])) == np.inf
    assert np.isnan(nll.compute(pd.DataFrame({"proto": [6]}), object()))

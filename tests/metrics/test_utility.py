"""Known answers of the TSTR / TRTR utility metrics."""

from __future__ import annotations

import numpy as np
import pytest

from nfsynth.metrics import utility_forecast, utility_protocol
from tests.metrics.flowdata import column_resample, user_flows


def test_tstr_on_real_training_data_equals_trtr(tables, space):
    out = utility_protocol.compute(tables["a"], tables["train"], space, tables["train"])
    assert out["tstr_protocol_f1"] == pytest.approx(out["trtr_protocol_f1"])
    assert out["trtr_protocol_f1"] > 0.9  # the ports give the protocol away
    fc = utility_forecast.compute(tables["a"], tables["train"], tables["train"])
    assert fc["tstr_forecast_mse"] == pytest.approx(fc["trtr_forecast_mse"])


def test_tstr_on_a_column_resample_is_worse(tables, space):
    resampled = user_flows(column_resample(tables["raw_b"], 2))
    out = utility_protocol.compute(tables["a"], resampled, space, tables["train"])
    assert out["tstr_protocol_f1"] < out["trtr_protocol_f1"] - 0.3
    fc = utility_forecast.compute(tables["a"], resampled, tables["train"])
    assert fc["tstr_forecast_mse"] > fc["trtr_forecast_mse"]


def test_single_protocol_training_set_predicts_it(tables, space):
    only_tcp = tables["train"][tables["train"]["proto"] == 6]
    f1 = utility_protocol.train_test_f1(only_tcp, tables["a"], space)
    share_tcp = np.mean(tables["a"]["proto"] == 6)
    # F1 of TCP = 2p/(1+p), other classes 0, averaged over the 3 protocols present
    assert f1 == pytest.approx(2 * share_tcp / (1 + share_tcp) / 3)


def test_a_class_seen_once_in_training_is_handled():
    """A protocol that occurs once in the training rows must not break the classifier
    (HistGradientBoosting's early-stopping split used to refuse it)."""
    import numpy as np
    import pandas as pd

    from nfsynth.evalspace import EvalSpace
    from nfsynth.metrics.utility_protocol import train_test_f1

    rng = np.random.default_rng(0)
    n = 12000
    proto = np.where(rng.random(n) < 0.5, 6, 17)
    proto[0] = 1  # ICMP once
    flows = pd.DataFrame(
        {
            "proto": proto,
            "dport": np.where(proto == 6, "443", "53"),
            "bytes": rng.integers(40, 5000, n),
            "packets": rng.integers(1, 20, n),
            "ts": np.arange(n, dtype=float),
        }
    )
    space = EvalSpace.fit(flows, n_bins=8, top_k=8)
    assert train_test_f1(flows, flows.iloc[1:], space) > 0.99

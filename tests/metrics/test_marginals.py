"""Known answers of jsd, wasserstein and interarrival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics import interarrival, jsd, wasserstein
from nfsynth.metrics.common import jsd_counts


def test_jsd_of_identical_tables_is_zero(tables, space):
    out = jsd.compute(tables["a"], tables["a"], space)
    assert out["jsd_mean"] == pytest.approx(0.0, abs=1e-12)
    assert set(out) == {"jsd_mean"} | {f"jsd_{f}" for f in space.fields}


def test_jsd_of_disjoint_supports_is_one():
    real = pd.DataFrame({"proto": [6] * 50, "dport": ["443"] * 50})
    synth = pd.DataFrame({"proto": [17] * 50, "dport": ["53"] * 50})
    space = EvalSpace.fit(pd.concat([real, synth]))
    out = jsd.compute(real, synth, space)
    assert out["jsd_proto"] == pytest.approx(1.0)
    assert out["jsd_dport"] == pytest.approx(1.0)
    assert out["jsd_mean"] == pytest.approx(1.0)


def test_jsd_by_hand():
    # p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): m = (1/4, 1/2, 1/4), JSD = 1/2 bit
    assert jsd_counts(np.array([2.0, 2, 0]), np.array([0.0, 5, 5])) == pytest.approx(0.5)


def test_w1_of_a_shift_in_log1p_space_is_the_shift(space):
    rng = np.random.default_rng(0)
    x = rng.lognormal(5, 1, size=2000)
    c = 0.7
    real = pd.DataFrame({"bytes": x, "packets": x})
    synth = pd.DataFrame({"bytes": np.expm1(np.log1p(x) + c), "packets": x})
    out = wasserstein.compute(real, synth, space)
    assert out["w1_bytes"] == pytest.approx(c, rel=1e-9)
    assert out["w1_packets"] == pytest.approx(0.0, abs=1e-12)


def _flows(ts_by_user: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {"user": np.repeat(list(ts_by_user), [len(v) for v in ts_by_user.values()]),
         "ts": np.concatenate(list(ts_by_user.values()))}
    )  # fmt: skip


def test_interarrival_jsd_known_answers():
    every_second = _flows({"u1": np.arange(100.0), "u2": 1e6 + np.arange(50.0)})
    every_hundred = _flows({"u1": np.arange(100.0) * 100})
    assert interarrival.compute(every_second, every_second) == pytest.approx(0.0)
    # the jump between the two hosts is no inter-arrival; 1 s and 100 s are disjoint bins
    assert interarrival.compute(every_second, every_hundred) == pytest.approx(1.0)
    assert interarrival.interarrivals(every_second).tolist() == [1.0] * 148

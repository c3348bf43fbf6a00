"""Fixtures of the metric tests (data from ``flowdata``)."""

from __future__ import annotations

import pandas as pd
import pytest

from nfsynth.evalspace import EvalSpace
from tests.metrics.flowdata import make_raw, user_flows


@pytest.fixture(scope="session")
def tables() -> dict[str, pd.DataFrame]:
    """Raw and user-flow frames: independent draws ``a``, ``b`` (same process) and ``train``."""
    raws = {"a": make_raw(1), "b": make_raw(2), "train": make_raw(3)}
    out = {name: user_flows(raw) for name, raw in raws.items()}
    out.update({f"raw_{name}": raw for name, raw in raws.items()})
    return out


@pytest.fixture(scope="session")
def space(tables) -> EvalSpace:
    return EvalSpace.fit(tables["train"], n_bins=24, top_k=24)

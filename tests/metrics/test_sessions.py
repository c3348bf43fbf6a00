"""Known answers of the sessions metric (``metrics.sessions``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import sessions


def hosts_in_sessions(n_hosts: int, n: int, keep: float, seed: int) -> pd.DataFrame:
    """Hosts whose flows keep the peer and port of the flow before with probability ``keep``
    and otherwise draw one of 10 peers (and its port) uniformly, so consecutive flows share
    their peer with probability ``keep + (1 - keep) / 10``; protocol always TCP."""
    rng = np.random.default_rng(seed)
    parts = []
    for h in range(n_hosts):
        drawn = rng.integers(0, 10, n)
        same = rng.random(n) < keep
        which = drawn.copy()
        for k in range(1, n):
            if same[k]:
                which[k] = which[k - 1]
        parts.append(
            pd.DataFrame(
                {
                    "user": f"h{h}",
                    "ts": np.arange(n, dtype=float) * 10.0,
                    "proto": 6,
                    "dport": (1000 + which).astype(str),
                    "peer": [f"p{w}" for w in which],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_sessions_keep_their_peer_and_independent_draws_do_not() -> None:
    """Sessions that keep their peer with probability 0.6: a share of 0.6 + 0.4 / 10 = 0.64;
    independent draws 0.1; the protocol, always TCP, 1 on both sides; so the difference is
    0.54 for peer and port and 0 for the protocol, 0.36 on average."""
    kept, drawn = hosts_in_sessions(5, 3000, 0.6, 1), hosts_in_sessions(5, 3000, 0.0, 2)
    assert sessions.repeat_share(kept, "peer") == pytest.approx(0.64, abs=0.02)
    assert sessions.repeat_share(drawn, "dport") == pytest.approx(0.10, abs=0.02)
    out = sessions.compute(kept, drawn)
    assert set(out) == {"session_diff"} | {f"session_diff_{f}" for f in sessions.FIELDS}
    assert out["session_diff_proto"] == 0.0
    assert out["session_diff_peer"] == pytest.approx(0.54, abs=0.03)
    assert out["session_diff"] == pytest.approx(0.36, abs=0.02)
    assert sessions.compute(kept, kept)["session_diff"] == 0.0


def test_pairs_stay_within_hosts_and_in_time_order() -> None:
    """Two hosts, each with one peer, their rows interleaved and out of time order: every
    pair within a host keeps its peer (1.0, where pairs pooled across the rows would give
    0); a host of independent draws beside one of sessions reads the mean of the two; a
    host of too few pairs is left out, and a frame of none gives NaN; a field one side
    lacks is left out."""
    rng = np.random.default_rng(3)
    two = pd.DataFrame(
        {
            "user": ["x", "y"] * 200,
            "ts": rng.permutation(400).astype(float),
            "peer": ["a", "b"] * 200,
        }
    )
    assert sessions.repeat_share(two, "peer") == 1.0
    kept = hosts_in_sessions(1, 2000, 0.6, 4)
    mixed = pd.concat([kept, hosts_in_sessions(1, 2000, 0.0, 5).assign(user="h9")])
    assert sessions.repeat_share(mixed, "peer") == pytest.approx((0.64 + 0.10) / 2, abs=0.03)
    short = hosts_in_sessions(1, 10, 0.6, 6).assign(user="short")
    assert sessions.repeat_share(pd.concat([kept, short]), "peer") == pytest.approx(
        sessions.repeat_share(kept, "peer")
    )
    assert np.isnan(sessions.repeat_share(short, "peer"))
    assert np.isnan(sessions.compute(short, short)["session_diff"])
    out = sessions.compute(kept.drop(columns="peer"), kept)
    assert "session_diff_peer" not in out and out["session_diff"] == 0.0

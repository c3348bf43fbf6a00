"""Sessions: how often a host's consecutive flows keep their protocol, port and peer, real
against synthetic.

A real host's flows come in sessions: a web page is several connections to one server, a
backup one long exchange with one share. On the simulator 61% of a test host's consecutive
flows go to the peer of the flow before and 54% to its destination port; on UGR'16 70% to
its peer. A generator that draws each flow apart from the one before, or pools its hosts,
reads near the chance of drawing the same value twice (5% for the simulator's peers). The
marginal, hourly and 5-minute metrics cannot see this: shuffling a host's flows within each
5-minute window changes none of them.

For each of ``FIELDS`` that both frames have, each host's share of consecutive flows (time
order) whose values are equal (the raw values as text: a port number, a peer's name),
averaged over hosts as the ACF is (hosts with fewer than ``MIN_PAIRS`` pairs left out).
``session_diff`` is the mean over fields of ``|share_real - share_synthetic|``, in [0, 1];
``session_diff_<field>`` per field.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.evalspace import categorical_text

NAME = "session_diff"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
#: the fields a session keeps
FIELDS = ("proto", "dport", "peer")
#: a host with fewer consecutive pairs than this gives no share
MIN_PAIRS = 30


def repeat_share(flows: pd.DataFrame, field: str) -> float:
    """Mean over hosts of the share of a host's consecutive flows whose ``field`` equals the
    flow before's (a user-flow frame with ``user``, ``ts`` and ``field``; any row order).
    NaN when no host has ``MIN_PAIRS`` pairs."""
    frame = flows[["user", "ts", field]].sort_values(["user", "ts"], kind="mergesort")
    user = frame["user"].astype(str).to_numpy()
    value = categorical_text(frame[field])
    pair = user[1:] == user[:-1]
    same = (value[1:] == value[:-1])[pair].astype(float)
    owner = user[1:][pair]
    if owner.size == 0:
        return float("nan")
    hosts, index, pairs = np.unique(owner, return_inverse=True, return_counts=True)
    shares = np.bincount(index, weights=same, minlength=hosts.size) / pairs
    kept = shares[pairs >= MIN_PAIRS]
    return float(kept.mean()) if kept.size else float("nan")


def compute(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """``{"session_diff": ..., "session_diff_<field>": ...}`` (whole-host frames:
    consecutive flows must be the host's own); NaN where no field has a share on both
    sides."""
    out: dict[str, float] = {}
    for f in FIELDS:
        if f not in real or f not in synthetic:
            continue
        a, b = repeat_share(real, f), repeat_share(synthetic, f)
        if np.isfinite(a) and np.isfinite(b):
            out[f"{NAME}_{f}"] = abs(a - b)
    out[NAME] = float(np.mean(list(out.values()))) if out else float("nan")
    return out

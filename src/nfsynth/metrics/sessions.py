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
    return repeat_shares(flows, [field])[field]


def repeat_shares(flows: pd.DataFrame, fields: list[str]) -> dict[str, float]:
    """``repeat_share`` of each of ``fields``, the frame sorted once."""
    frame = flows[["user", "ts", *fields]].sort_values(["user", "ts"], kind="mergesort")
    user = frame["user"].astype(str).to_numpy()
    pair = user[1:] == user[:-1]
    owner = user[1:][pair]
    if owner.size == 0:
        return dict.fromkeys(fields, float("nan"))
    hosts, index, pairs = np.unique(owner, return_inverse=True, return_counts=True)
    kept = pairs >= MIN_PAIRS
    out = {}
    for f in fields:
        value = categorical_text(frame[f])
        same = (value[1:] == value[:-1])[pair].astype(float)
        shares = np.bincount(index, weights=same, minlength=hosts.size) / pairs
        out[f] = float(shares[kept].mean()) if kept.any() else float("nan")
    return out


def compute(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """``{"session_diff": ..., "session_diff_<field>": ...}`` (whole-host frames:
    consecutive flows must be the host's own); NaN where no field has a share on both
    sides."""
    fields = [f for f in FIELDS if f in real and f in synthetic]
    a, b = repeat_shares(real, fields), repeat_shares(synthetic, fields)
    out: dict[str, float] = {}
    for f in fields:
        if np.isfinite(a[f]) and np.isfinite(b[f]):
            out[f"{NAME}_{f}"] = abs(a[f] - b[f])
    out[NAME] = float(np.mean(list(out.values()))) if out else float("nan")
    return out

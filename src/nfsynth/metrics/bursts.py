"""Bursts: how long a host keeps sending flows less than a second apart, real against
synthetic.

Real hosts send bursts: on UGR'16 a web server answers one client's 300-670 connections
within 5 minutes, most of them 0 s apart, and a host that has sent 8 flows each less than
``BURST_GAP`` after the one before sends the next one as quickly 93% of the time (training
hosts; test hosts 94%). A generator that keeps only the last gap continues a burst at about
its first-step rate at every length (0.60 there), so its bursts stop short and its 5-minute
counts swing less (docs/neural.md section 38). The inter-arrival JSD cannot see this: it
compares the gaps' marginal, and shuffling a host's gaps keeps it.

For each ``k`` in ``RUN_STEPS``: among the gaps that follow ``k`` or more short gaps in a row
(gaps between a host's consecutive flows in time order, short: below ``BURST_GAP``), the share
that is short, pooled over hosts. ``burst_diff_<k>`` is ``|P_real - P_synthetic|`` where the
real frame has at least ``MIN_CASES`` such gaps. A sample whose runs never reach ``k`` short
gaps scores there its share for the longest run it has, or its share of short gaps among
all gaps where it has no short gap at all: the estimate of a run it never shows.
``burst_diff`` is the mean over those ``k``, in [0, 1]; NaN where the real frame has no ``k``
with ``MIN_CASES`` gaps (a log without bursts) or the sample has no gaps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.metrics.interarrival import host_gaps

NAME = "burst_diff"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
#: a gap below this many seconds continues a burst
BURST_GAP = 1.0
#: run lengths (short gaps in a row) after which the next gap is scored
RUN_STEPS = (1, 2, 4, 8)
#: the real frame needs this many gaps after a run of ``k`` to score ``k``: the simulator's
#: test day has 66 after 4 short gaps, and their share is 0.11 there and 0.77 on its
#: validation day
MIN_CASES = 200


def continuation(
    flows: pd.DataFrame, steps: tuple[int, ...] = RUN_STEPS
) -> dict[int, tuple[float, int]]:
    """``{k: (share, cases)}``: among the gaps that follow ``k`` or more short gaps in a row
    within a host, the share that is short, and how many such gaps there are (share NaN
    without any); ``k = 0``: among all gaps. ``flows``: a user-flow frame with ``user`` and
    ``ts`` (seconds), any row order."""
    gaps, same = host_gaps(flows)  # gap i: between flows i and i + 1, of one host if same[i]
    short = same & (gaps < BURST_GAP)
    # run[i]: the short gaps in a row ending at gap i (0 where gap i is long or not a gap)
    idx = np.arange(short.size)
    last_break = np.maximum.accumulate(np.where(short, -1, idx)) if short.size else idx
    run = np.where(short, idx - last_break, 0)
    follows = same[1:]  # gap i + 1 is the same host's next gap after gap i
    before, after = run[:-1][follows], short[1:][follows]
    out = {0: (float(short[same].mean()) if same.any() else float("nan"), int(same.sum()))}
    for k in steps:
        hit = before >= k
        cases = int(hit.sum())
        out[k] = (float(after[hit].mean()) if cases else float("nan"), cases)
    return out


def compute(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """``{"burst_diff": ..., "burst_diff_<k>": ...}`` (whole-host frames: consecutive flows
    must be the host's own); ``burst_diff`` NaN where the real frame has no scored ``k``."""
    a, b = continuation(real), continuation(synthetic)
    out: dict[str, float] = {}
    carried = b[0][0]  # the sample's share at the longest run it reaches
    for k in RUN_STEPS:
        share_b, cases_b = b[k]
        if cases_b:
            carried = share_b
        share_a, cases_a = a[k]
        if cases_a >= MIN_CASES and np.isfinite(carried):
            out[f"{NAME}_{k}"] = abs(share_a - carried)
    out[NAME] = float(np.mean(list(out.values()))) if out else float("nan")
    return out

"""Runs of like flows: rank correlation of a host's consecutive flows' sizes, real against
synthetic.

Within a real host consecutive flows are alike: polling, scans and transfers come in runs
of flows of one size (on UGR'16 the durations of a test host's consecutive flows
rank-correlate 0.40 on average). A generator that draws each flow's sizes with little
regard to the flow before (independent columns, or a network that learnt that dependence
only in part) reads near 0.
The marginal and the 5-minute metrics cannot see this: shuffling a host's flow sizes among
its flows of the same 5-minute window changes neither.

For each continuous record field of the evaluation space but ``dt`` (durations, packets,
bytes and the reverse counts where the space has them), each host's Spearman correlation
between each flow's value and its previous flow's (flows in time order;
``scipy.stats.spearmanr``, ties ranked by their mean), averaged over hosts as the ACF is.
``serial_corr_diff`` is the mean over fields of ``|rho_real - rho_synthetic|``, in [0, 2];
``serial_corr_diff_<field>`` per field. A field either side lacks, or that no host varies
in, is left out.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from nfsynth.evalspace import EvalSpace

NAME = "serial_corr_diff"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 2.0
#: fewer consecutive pairs than this give no correlation (NaN)
MIN_PAIRS = 30


def consecutive_rank_correlation(flows: pd.DataFrame, field: str) -> float:
    """Mean over hosts of the Spearman correlation of ``field`` between the host's
    consecutive flows (a user-flow frame with ``user``, ``ts`` and ``field``; flows in time
    order). A host with fewer than ``MIN_PAIRS`` pairs, or whose values do not vary, is left
    out; NaN when no host is left. Per host, as the ACF is: pooled over hosts, pairs of a
    host of large flows and pairs of a host of small ones would correlate with no run in
    either."""
    frame = flows[["user", "ts", field]].sort_values(["user", "ts"], kind="mergesort")
    user = frame["user"].astype(str).to_numpy()
    x = pd.to_numeric(frame[field], errors="coerce").to_numpy(dtype=np.float64)
    bounds = np.flatnonzero(user[1:] != user[:-1]) + 1
    rhos = []
    for part in np.split(x, bounds):
        a, b = part[:-1], part[1:]
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        if a.size < MIN_PAIRS or np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rho = float(stats.spearmanr(a, b)[0])
        if np.isfinite(rho):
            rhos.append(rho)
    return float(np.mean(rhos)) if rhos else float("nan")


def serial_fields(space: EvalSpace, *frames: pd.DataFrame) -> list[str]:
    """The evaluation space's continuous fields but ``dt`` that every frame has."""
    return [
        f
        for f in space.fields
        if space.is_continuous(f) and f != "dt" and all(f in fr for fr in frames)
    ]


def compute(real: pd.DataFrame, synthetic: pd.DataFrame, space: EvalSpace) -> dict[str, float]:
    """``{"serial_corr_diff": ..., "serial_corr_diff_<field>": ...}`` (whole-host frames:
    consecutive flows must be the host's own); NaN where no field has a correlation on
    both sides."""
    out: dict[str, float] = {}
    for f in serial_fields(space, real, synthetic):
        a = consecutive_rank_correlation(real, f)
        b = consecutive_rank_correlation(synthetic, f)
        if np.isfinite(a) and np.isfinite(b):
            out[f"{NAME}_{f}"] = abs(a - b)
    out[NAME] = float(np.mean(list(out.values()))) if out else float("nan")
    return out

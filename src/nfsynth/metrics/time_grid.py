"""The log's clock: the share of flows that start and end on a whole second, real against
synthetic.

A flow log writes its times at its exporter's resolution, and often not the same one for
both ends. UGR'16's nfdump logs give each flow's end in whole seconds and its duration in
milliseconds, so every real flow ends on a whole second, and those of whole durations (most
of them zero) start on one too: 20-37% of a split's flows. LANL's and the simulator's logs
give both ends in whole seconds. A synthetic log that misses this is told from a real one
by its timestamps alone, whatever its distributions, and a gap of exactly 1 s (UGR'16: 1.9%
of the training gaps, two flows of zero duration a second apart) is one of the log's
commonest values.

``time_grid_diff`` is the mean over the flows' starts (``ts``) and ends (``ts +
duration``, seconds) of ``|share_real - share_synthetic|`` of the flows that lie on a
whole second (within ``TOLERANCE``), in [0, 1]; ``time_grid_diff_start`` and
``time_grid_diff_end`` per side. A side without flows leaves the figures NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAME = "time_grid_diff"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
#: seconds: a time this close to a whole second lies on it (epoch seconds in float64 carry
#: about 2.4e-7 s of rounding near 2016; a millisecond grid's nearest off-grid time is 1e-3)
TOLERANCE = 1e-4


def whole_second_shares(flows: pd.DataFrame) -> tuple[float, float]:
    """``(starts, ends)``: the shares of ``flows`` (with ``ts`` and ``duration``, seconds)
    whose start and whose end lie on a whole second; NaN for no flow. A missing duration
    counts as 0 (the flow ends where it starts)."""
    if len(flows) == 0:
        return float("nan"), float("nan")
    start = pd.to_numeric(flows["ts"]).to_numpy(dtype=np.float64)
    duration = np.nan_to_num(pd.to_numeric(flows["duration"]).to_numpy(dtype=np.float64))
    end = start + duration

    def share(t: np.ndarray) -> float:
        return float(np.mean(np.abs(t - np.round(t)) <= TOLERANCE))

    return share(start), share(end)


def compute(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """``{"time_grid_diff": ..., "time_grid_diff_start": ..., "time_grid_diff_end": ...}``,
    each in [0, 1] (NaN where either side has no flow)."""
    a, b = whole_second_shares(real), whole_second_shares(synthetic)
    start, end = abs(a[0] - b[0]), abs(a[1] - b[1])
    return {
        f"{NAME}_start": start,
        f"{NAME}_end": end,
        NAME: float(np.mean([start, end])),
    }

"""Temporal analysis of the user tables: ACF of 5-minute series, look-back, dt versus hour.

``acf(x, max_lag)`` is the sample autocorrelation (biased estimator, FFT, normalised by the
lag-0 autocovariance) at lags 1..max_lag; the metrics reuse it.

``temporal_analysis(users, max_lag)`` returns a JSON-ready dict, written by rule ``temporal`` to
``results/{dataset}/temporal.json``. Keys:

- ``window_seconds`` (int), ``n_windows`` (windows per user series), ``n_users``, ``n_flows``,
  ``max_lag``, ``lags`` (list 1..max_lag).
- ``band``: the 95% band half-width ``1.96 / sqrt(n_windows)`` of an ACF of white noise.
- ``acf``: for each series ``n_flows`` and ``bytes`` (window flow counts and byte sums):
  ``{"pooled": [max_lag floats] (mean over users of their ACF, users with a constant series
  left out), "per_user": {user: [max_lag floats or null]}, "lookback": int,
  "lookback_saturated": bool, "n_users_used": int}``. ``lookback`` is the smallest lag ``L``
  with ``|pooled[l]| < band`` for every lag ``l > L`` (0 when all lags are inside the band;
  ``max_lag`` and ``lookback_saturated = true`` when the last lag is still outside).
- ``lookback``: the chosen look-back in windows, that of ``n_flows``.
- ``dt_hour``: dependence of the time delta on the hour of day, over flows that are not their
  user's first: ``spearman_rho``, ``spearman_p`` (``scipy.stats.spearmanr`` of hour versus
  dt), ``n``, ``hours`` (0..23), ``count`` (flows per hour), ``quantiles`` (``{"q05", "q25",
  "q50", "q75", "q95"}``: per-hour quantiles of ``log1p(dt)``, 24 floats or null each),
  ``mean`` (per-hour mean of log1p(dt)), ``ylim`` ([low, high], a fixed y axis for the plot:
  0 and the largest q95 rounded up).
- ``roles``: ``{role: number of users}`` for every role of ``schema.ROLES``.

Non-finite numbers are written as null.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nfsynth.features.tables import UserTables
from nfsynth.schema import ROLES

log = logging.getLogger(__name__)

QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95}
MAX_SPEARMAN_ROWS = 2_000_000


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation of ``x`` (shape (n,)) at lags 1..max_lag: shape (max_lag,).

    ``r_k = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2`` (the biased estimator, as
    statsmodels' ``acf``). NaN for every lag when ``x`` is constant; NaN for lags >= n.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    out = np.full(int(max_lag), np.nan)
    n = len(x)
    if n < 2:
        return out
    z = x - x.mean()
    denom = float(np.dot(z, z))
    if denom <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2):
        return out
    size = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(z, size)
    full = np.fft.irfft(f * np.conj(f), size)[:n]
    k = min(int(max_lag), n - 1)
    out[:k] = full[1 : k + 1] / denom
    return out


def acf_matrix(series: np.ndarray, max_lag: int) -> np.ndarray:
    """ACF of each row of ``series`` (shape (n_users, n_windows)): shape (n_users, max_lag)."""
    series = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if series.shape[0] == 0:
        return np.zeros((0, int(max_lag)))
    return np.vstack([acf(row, max_lag) for row in series])


def lookback(pooled: np.ndarray, band: float) -> tuple[int, bool]:
    """(L, saturated): smallest L with ``|pooled[l-1]| < band`` for all lags l > L.

    NaN lags count as inside the band. ``saturated`` when the last lag is outside.
    """
    outside = np.abs(np.nan_to_num(pooled, nan=0.0)) >= band
    if not outside.any():
        return 0, False
    last = int(np.flatnonzero(outside)[-1]) + 1
    return last, bool(outside[-1])


def user_series(windows: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray]:
    """(users, matrix (n_users, n_windows)) of one window column, users in sorted order."""
    if windows.empty:
        return [], np.zeros((0, 0))
    table = windows.pivot(index="user", columns="win", values=column).fillna(0)
    return [str(u) for u in table.index], table.to_numpy(dtype=np.float64)


def dt_hour(flows: pd.DataFrame) -> dict[str, Any]:
    """Time delta versus hour of day (see module docstring, key ``dt_hour``)."""
    user = flows["user"].astype(object).to_numpy()
    not_first = np.r_[False, user[1:] == user[:-1]] if len(user) else np.zeros(0, bool)
    hour = flows["hour"].to_numpy(np.int64)[not_first]
    ldt = np.log1p(np.maximum(flows["dt"].to_numpy(np.float64)[not_first], 0.0))
    result: dict[str, Any] = {"n": int(len(ldt)), "hours": list(range(24))}
    if len(ldt) >= 3 and np.ptp(hour) > 0 and np.ptp(ldt) > 0:
        step = max(1, len(ldt) // MAX_SPEARMAN_ROWS)
        rho, p = stats.spearmanr(hour[::step], ldt[::step])
        result.update(spearman_rho=float(rho), spearman_p=float(p))
    else:
        result.update(spearman_rho=None, spearman_p=None)
    frame = pd.DataFrame({"hour": hour, "ldt": ldt})
    grouped = frame.groupby("hour")["ldt"]
    count = grouped.size().reindex(range(24), fill_value=0)
    result["count"] = [int(c) for c in count]
    result["mean"] = grouped.mean().reindex(range(24)).tolist()
    qs = grouped.quantile(list(QUANTILES.values())).unstack() if len(frame) else pd.DataFrame()
    result["quantiles"] = {}
    for name, q in QUANTILES.items():
        col = qs[q].reindex(range(24)) if q in getattr(qs, "columns", []) else None
        result["quantiles"][name] = col.tolist() if col is not None else [float("nan")] * 24
    q95 = np.array(result["quantiles"]["q95"], dtype=np.float64)
    top = float(np.nanmax(q95)) if np.isfinite(q95).any() else 1.0
    result["ylim"] = [0.0, float(math.ceil(max(top, 1e-9)))]
    return result


def temporal_analysis(users: UserTables, max_lag: int = 50) -> dict[str, Any]:
    """The analysis dict of the module docstring."""
    t0 = time.perf_counter()
    windows = users.windows
    seconds = int(users.meta.get("window_seconds") or 300)
    n_windows = int(windows["win"].nunique()) if len(windows) else 0
    band = 1.96 / math.sqrt(n_windows) if n_windows else float("nan")
    result: dict[str, Any] = {
        "window_seconds": seconds,
        "n_windows": n_windows,
        "n_users": int(len(users.hosts)),
        "n_flows": int(len(users.flows)),
        "max_lag": int(max_lag),
        "lags": list(range(1, int(max_lag) + 1)),
        "band": band,
        "acf": {},
    }
    for column in ("n_flows", "bytes"):
        names, series = user_series(windows, column)
        mat = acf_matrix(series, max_lag)
        used = ~np.isnan(mat).all(axis=1) if len(mat) else np.zeros(0, bool)
        if used.any():
            with np.errstate(all="ignore"):
                pooled = np.nanmean(mat[used], axis=0)
        else:
            pooled = np.full(int(max_lag), np.nan)
        lb, saturated = lookback(pooled, band) if n_windows else (0, False)
        result["acf"][column] = {
            "pooled": pooled.tolist(),
            "per_user": {u: row.tolist() for u, row in zip(names, mat, strict=True)},
            "lookback": lb,
            "lookback_saturated": saturated,
            "n_users_used": int(used.sum()),
        }
    result["lookback"] = result["acf"]["n_flows"]["lookback"]
    result["dt_hour"] = dt_hour(users.flows)
    roles = users.hosts["role"].value_counts() if len(users.hosts) else pd.Series(dtype=int)
    result["roles"] = {r: int(roles.get(r, 0)) for r in ROLES}
    log.info(
        "temporal: %d users x %d windows, look-back %d (band %.4f), dt~hour rho=%s, %.2f s",
        result["n_users"],
        n_windows,
        result["lookback"],
        band,
        result["dt_hour"]["spearman_rho"],
        time.perf_counter() - t0,
    )
    return _finite(result)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_temporal(users_dir: str | Path, out_path: str | Path, max_lag: int = 50) -> dict:
    """Rule ``temporal``: load the user tables, analyse, write JSON; returns the dict."""
    result = temporal_analysis(UserTables.load(users_dir), max_lag)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as handle:
        json.dump(result, handle, indent=1, allow_nan=False)
    return result

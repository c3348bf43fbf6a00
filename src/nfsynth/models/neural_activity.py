"""Slow activity modulation of synthetic hosts: at the desk or away for tens of minutes.

A real host's 5-minute flow counts vary around its daily rhythm far more slowly than its
flows do: a user is at the desk or away, a batch job runs for half an hour. Free-running,
the network keeps hardly any of that: on the simulator the ACF of a synthetic host's counts
around its mean times the pooled rhythm is 0.17 at one window and 0.05 at two, where the
held-out hosts' is 0.33 / 0.27 / 0.19 at 1 / 2 / 3 windows and 0.11 at 6
(docs/neural.md section 27). The daily rhythm then holds too large a share of each synthetic
host's variance, and its 5-minute counts stay correlated for hours.

This module supplies that part as a doubly stochastic (Cox) modulation: each synthetic host
gets a path ``m(t) = exp(sigma z(t) - sigma^2 / 2)`` (mean 1) on a grid of 5-minute cells,
``z`` a stationary Gaussian AR(1) with correlation ``phi`` per cell, and the idle part of its
gaps runs on a clock that ticks at ``m`` times the host's rhythm (``ActivityClock``): away
(``m < 1``) the idle time stretches, present it shrinks, and a burst keeps its spacing.

``sigma`` and ``phi`` are measured, not set: ``normalised_autocovariance`` gives, per host,
the autocovariance of the counts' residual around ``host mean x rhythm``, divided by the
rhythm's own product, whose value for a Cox process of modulation ``m`` is
``exp(sigma^2 phi^k) - 1`` at lag ``k``. ``fit_activity_modulation`` fits that form to what
the held-out validation hosts have beyond what the network's own free-running samples have
(the two combine as a product: ``(1 + rho_total) = (1 + rho_m) (1 + rho_network)``), and
``rescaled_sigma`` corrects ``sigma`` by what a calibration round sampled with it realised
(a host's bursts keep their spacing, so it falls short of its path). ``host_shares`` gives
each host its own share of ``sigma`` from its training counts, so steady hosts (servers,
which weigh most in every hour's mix) keep to their rhythm (docs/neural.md section 35).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import curve_fit
from scipy.signal import lfilter

from nfsynth.features.windows import user_grid
from nfsynth.models.neural_vocab import TimeWarp

CELL_SECONDS = 300.0  # the modulation's grid, the evaluation's window
#: what each host's path keeps of the warp's volume (``ActivityClock``): each clock hour's
#: or only the whole period's
SPANS = ("hour", "period")
#: lags (cells) the modulation is fitted on: 2 hours, beyond which the daily rhythm rules
FIT_LAGS = 24
#: a host's counts enter the fit with at least this many cells (two fitted spans)
MIN_CELLS = 2 * FIT_LAGS
#: below this ``sigma^2`` the fitted modulation is no modulation
MIN_VARIANCE = 1e-3
SIGMA2_MAX, PHI_MAX = 4.0, 0.99
#: the lags (cells) a calibration round's correction of ``sigma`` compares, and the most it
#: may multiply or divide ``sigma^2`` by
STEP_LAGS, STEP_RANGE = 6, 4.0
#: the most a host's share of ``sigma`` (``host_shares``) may be, in units of the mean host's
SHARE_MAX = 3.0


def cell_counts(
    ts: np.ndarray, host: np.ndarray, warp: TimeWarp | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per host (in sorted host order), its flows per 5-minute cell from its first cell to its
    last and the counts its mean and the pooled rhythm expect there: a list of
    ``(counts, expected)``, float64 arrays (n_cells,). ``ts``: epoch seconds (n,), ``host``:
    any labels (n,). Without a warp the rhythm is flat. Hosts of fewer than ``MIN_CELLS``
    cells are left out."""
    return labelled_cell_counts(ts, host, warp)[1]


def labelled_cell_counts(
    ts: np.ndarray, host: np.ndarray, warp: TimeWarp | None
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """``cell_counts`` with the label of each host it keeps: ``(labels (m,), series)``."""
    ts = np.asarray(ts, dtype=np.float64)
    if ts.size == 0:
        return np.asarray(host)[:0], []
    labels, code = np.unique(np.asarray(host), return_inverse=True)
    first, length, pos = user_grid(ts, code, len(labels), CELL_SECONDS)
    counts = np.bincount(pos, minlength=int(length.sum())).astype(np.float64)
    owner = np.repeat(np.arange(len(labels)), length)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]])
    cell = np.arange(counts.size) - offset[owner] + first[owner]  # global window index
    w = np.ones(24) if warp is None else np.asarray(warp.hour_weights, dtype=np.float64)
    mid = (cell + 0.5) * CELL_SECONDS
    rhythm = w[(np.mod(mid, 86400.0) // 3600.0).astype(np.int64).clip(0, 23)]
    scale = np.bincount(owner, counts) / np.bincount(owner, rhythm)
    expected = rhythm * scale[owner]
    bounds = np.cumsum(length)[:-1]
    kept = length >= MIN_CELLS
    series = zip(np.split(counts, bounds), np.split(expected, bounds), strict=True)
    return labels[kept], [ce for ce, keep in zip(series, kept, strict=True) if keep]


def normalised_autocovariance(
    series: list[tuple[np.ndarray, np.ndarray]], max_lag: int = FIT_LAGS
) -> np.ndarray:
    """Mean over hosts of ``sum_t r_t r_{t+k} / sum_t e_t e_{t+k}`` at lags 1..``max_lag``,
    ``r = counts - expected``: float64 (max_lag,), NaN where no host has the lag.

    For counts of a Cox process with intensity ``expected x m`` (``m`` mean 1) this is the
    autocovariance of ``m`` at lag ``k``, whatever the rhythm; each host weighs equally, as
    in the evaluation's ACF (``metrics.acf``)."""
    rows = host_autocovariance(series, max_lag)
    if not len(rows):
        return np.full(max_lag, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lags stay NaN
        return np.nanmean(rows, axis=0)


def host_autocovariance(
    series: list[tuple[np.ndarray, np.ndarray]], max_lag: int = FIT_LAGS
) -> np.ndarray:
    """Each host's row of ``normalised_autocovariance``: float64 (n_hosts, max_lag), NaN
    where the host does not have the lag."""
    rows = np.full((len(series), max_lag), np.nan)
    for i, (counts, expected) in enumerate(series):
        r = counts - expected
        for k in range(1, min(max_lag, counts.size - 1) + 1):
            den = float(np.dot(expected[:-k], expected[k:]))
            if den > 0:
                rows[i, k - 1] = float(np.dot(r[:-k], r[k:])) / den
    return rows


def host_shares(
    ts: np.ndarray, host: np.ndarray, n_hosts: int, warp: TimeWarp | None, lags: int = STEP_LAGS
) -> np.ndarray:
    """Each host's share of the modulation's ``sigma``, float64 (n_hosts,): the square root
    of its own 5-minute counts' normalised autocovariance (``normalised_autocovariance``,
    mean over lags 1..``lags``) relative to the mean over the hosts measured, within
    [0, ``SHARE_MAX``]. A host as steady as its rhythm (a server: about 0) gets about none
    of the modulation, one that comes and goes (a workstation) more than the mean.

    ``ts``: epoch seconds (n,); ``host``: int ids in [0, n_hosts) (n,). A host too short to
    measure (fewer than ``MIN_CELLS`` cells) gets 1, and so does every host where no host's
    excess is positive."""
    ids, series = labelled_cell_counts(ts, np.asarray(host, np.int64), warp)
    excess = np.full(int(n_hosts), np.nan)
    if series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a host without these lags: NaN
            per_host = np.nanmean(host_autocovariance(series, lags), axis=1)
        inside = (ids >= 0) & (ids < n_hosts)
        excess[ids[inside]] = per_host[inside]
    measured = np.isfinite(excess)
    mean = float(np.clip(excess[measured], 0.0, None).mean()) if measured.any() else 0.0
    if mean <= 0:
        return np.ones(int(n_hosts))
    share = np.sqrt(np.clip(excess, 0.0, None) / mean).clip(0.0, SHARE_MAX)
    return np.where(measured, share, 1.0)


def modulation_autocovariance(lags: np.ndarray, sigma2: float, phi: float) -> np.ndarray:
    """``exp(sigma2 phi^k) - 1``: the autocovariance of ``exp(sigma z - sigma^2/2)`` at lags
    ``k`` for a unit-variance AR(1) ``z`` of coefficient ``phi``."""
    return np.expm1(sigma2 * np.power(phi, lags))


def fit_activity_modulation(target: np.ndarray, network: np.ndarray) -> tuple[float, float]:
    """``(sigma, phi)`` of the modulation that adds to the ``network``'s normalised
    autocovariance (max_lag,) what the ``target`` one (max_lag,) has beyond it: a least-squares
    fit of ``sigma^2 phi^k`` to ``log(1 + target) - log(1 + network)`` over the lags both
    have. ``(0, 0)`` (none) where that excess is not positive at lag 1 or the fit's variance
    is below ``MIN_VARIANCE``."""
    target, network = np.asarray(target, np.float64), np.asarray(network, np.float64)
    lags = np.arange(1, target.size + 1, dtype=np.float64)
    ok = np.isfinite(target) & np.isfinite(network) & (target > -1) & (network > -1)
    if ok.sum() < 3 or not ok[0]:
        return 0.0, 0.0
    excess = np.log1p(target[ok]) - np.log1p(network[ok])
    if excess[0] <= 0:
        return 0.0, 0.0
    try:
        (sigma2, phi), _ = curve_fit(
            lambda k, s2, p: s2 * np.power(p, k),
            lags[ok],
            excess,
            p0=[float(excess[0]), 0.8],
            bounds=([0.0, 0.0], [SIGMA2_MAX, PHI_MAX]),
        )
    except (RuntimeError, ValueError):
        return 0.0, 0.0
    if sigma2 < MIN_VARIANCE:
        return 0.0, 0.0
    return float(np.sqrt(sigma2)), float(phi)


def rescaled_sigma(
    sigma: float, target: np.ndarray, network: np.ndarray, realised: np.ndarray
) -> float:
    """``sigma`` corrected by what a round sampled with it realised: the excess over the
    ``network``'s own normalised autocovariance (max_lag,) that the ``target`` has, summed
    over ``STEP_LAGS`` lags, divided by the excess the ``realised`` curve has, times
    ``sigma^2`` (kept within ``STEP_RANGE`` of it; ``sigma`` itself where the realised excess
    is not positive). A sampled host falls short of its path: its flows come in bursts whose
    spacing the modulation keeps, so a path of ``m = 3`` triples its idle time's pace only."""
    k = slice(0, STEP_LAGS)
    want = np.log1p(np.asarray(target, np.float64)[k]) - np.log1p(np.asarray(network)[k])
    got = np.log1p(np.asarray(realised, np.float64)[k]) - np.log1p(np.asarray(network)[k])
    ok = np.isfinite(want) & np.isfinite(got)
    if sigma <= 0 or not ok.any() or got[ok].sum() <= 0 or want[ok].sum() <= 0:
        return sigma
    ratio = float(np.clip(want[ok].sum() / got[ok].sum(), 1.0 / STEP_RANGE, STEP_RANGE))
    return float(np.sqrt(min(sigma**2 * ratio, SIGMA2_MAX)))


def modulation_paths(
    rng: np.random.Generator, n: int, n_cells: int, sigma: float | np.ndarray, phi: float
) -> np.ndarray:
    """``exp(sigma z - sigma^2 / 2)`` for ``n`` hosts, float64 (n, n_cells): ``z`` a
    stationary unit-variance AR(1) with coefficient ``phi`` per cell, started in its
    stationary law, so each path has mean 1 at every cell. ``sigma``: one for every host or
    one per host (n,) (``host_shares`` times the fitted one); the draws are the same."""
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (n,))[:, None]
    if n_cells == 0 or not (sig > 0).any():
        return np.ones((n, n_cells))
    eps = rng.standard_normal((n, n_cells))
    eps[:, 1:] *= np.sqrt(1.0 - phi**2)
    z = lfilter([1.0], [1.0, -phi], eps, axis=1)
    return np.exp(sig * z - 0.5 * sig**2)


class ActivityClock:
    """The modulated operational clock of a set of hosts on a common grid of 5-minute cells.

    ``modulation`` (n_hosts, n_cells): each host's ``m`` per cell from ``t0`` (epoch seconds,
    a multiple of ``CELL_SECONDS``); ``rows`` (n_hosts,): each host's row of ``warp`` (its
    rhythm; ``TimeWarp.forward``). In cell ``c`` a host's clock ticks ``m[c] x w(hour)``
    warped seconds per second, so over a span where ``m = 1`` it is the warp itself. Each
    host's path is first rescaled so that its clock covers as many warped seconds as the
    warp does over each ``span``: ``"hour"``, each clock hour of the grid (a host keeps its
    expected flows in every hour, and the modulation moves its activity within the hour
    only), or ``"period"``, the whole grid. Unscaled, one day of a path of ``sigma`` 0.6 and
    ``phi`` 0.83 varies a host's count by about 13%, which reshuffled the mix of busy and
    quiet hosts behind every pooled marginal; kept per period only, it draws which hosts
    are active in each hour, which the hour-conditioned marginals of held-out hosts pay
    for (docs/neural.md sections 27 and 28). Beyond the grid's end the clock stops
    (``advance`` returns the grid's end: a row sampled past its end stops there)."""

    def __init__(
        self,
        warp: TimeWarp,
        rows: np.ndarray,
        modulation: np.ndarray,
        t0: float,
        span: str = "hour",
    ) -> None:
        if span not in SPANS:
            raise ValueError(f"ActivityClock: span {span!r} is not one of {SPANS}")
        m = np.asarray(modulation, dtype=np.float64)
        n_hosts, n_cells = m.shape
        self.t0, self.n_cells = float(t0), n_cells
        mid = self.t0 + (np.arange(n_cells) + 0.5) * CELL_SECONDS
        hour = (np.mod(mid, 86400.0) // 3600.0).astype(np.int64).clip(0, 23)
        base = warp.hour_rates(rows)[:, hour]  # (n_hosts, n_cells) the warp's rate
        if span == "hour" and n_cells:  # the warp's rate is constant within a clock hour
            block = (mid // 3600.0).astype(np.int64)
            starts = np.flatnonzero(np.r_[True, np.diff(block) != 0])
            size = np.diff(np.r_[starts, n_cells])
            mean = np.add.reduceat(m, starts, axis=1) / size
            m = m / np.repeat(mean, size, axis=1)
        m = m * (base.sum(axis=1, keepdims=True) / (m * base).sum(axis=1, keepdims=True))
        self.rate = m * base  # warped seconds per second
        cum = np.cumsum(self.rate * CELL_SECONDS, axis=1)
        self.cum = np.concatenate([np.zeros((n_hosts, 1)), cum], axis=1)  # (n_hosts, n+1)
        # every host's cumulative clock in one increasing array, for one searchsorted
        self.span = float(self.cum[:, -1].max()) + 1.0
        self.flat = (self.cum + self.span * np.arange(n_hosts)[:, None]).ravel()

    @property
    def end(self) -> float:
        """Epoch seconds of the grid's end."""
        return self.t0 + self.n_cells * CELL_SECONDS

    def forward(self, t: np.ndarray, host: np.ndarray) -> np.ndarray:
        """Each host's clock (warped seconds from the grid's start, (B,)) at epoch seconds
        ``t`` (B,), clamped to the grid; ``host`` (B,) indexes the clock's hosts (the
        argument order of ``TimeWarp.forward``)."""
        host = np.asarray(host, dtype=np.int64)
        t = np.clip(np.asarray(t, dtype=np.float64), self.t0, self.end)
        c = np.minimum(((t - self.t0) // CELL_SECONDS).astype(np.int64), self.n_cells - 1)
        return self.cum[host, c] + self.rate[host, c] * (t - self.t0 - c * CELL_SECONDS)

    def inverse(self, clock: np.ndarray, host: np.ndarray) -> np.ndarray:
        """Epoch seconds (B,) at which each host's clock reads ``clock`` (B,); the grid's end
        where it reads at least its total."""
        host = np.asarray(host, dtype=np.int64)
        clock = np.asarray(clock, dtype=np.float64)
        j = np.searchsorted(self.flat, clock + self.span * host, side="right") - 1
        j = np.clip(j - host * (self.n_cells + 1), 0, self.n_cells - 1)
        t = self.t0 + j * CELL_SECONDS + (clock - self.cum[host, j]) / self.rate[host, j]
        return np.where(clock >= self.cum[host, -1], self.end, t)

    def advance(self, t: np.ndarray, idle: np.ndarray, host: np.ndarray) -> np.ndarray:
        """Epoch seconds (B,) at which each host's clock, from ``t`` (B,), has run ``idle``
        (B,) warped seconds; ``host`` (B,) indexes the clock's hosts."""
        t = np.asarray(t, dtype=np.float64)
        t1 = self.inverse(self.forward(t, host) + np.asarray(idle, dtype=np.float64), host)
        return np.maximum(t1, t)

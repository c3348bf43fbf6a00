"""Daily rhythms and bursty session start times (a non-homogeneous Hawkes process).

A rhythm is a function of the hour of day (float hours, 0..24) returning a relative rate,
normalised to mean 1 over the day, so ``rate_per_day * rhythm(h) / 86400`` is an intensity in
sessions per second. Session starts come from a Hawkes process in its cluster form: immigrant
sessions follow the rhythm times a per-host *presence* modulation (a log-AR(1) with a
45-minute correlation time: at the desk or away), as Poisson counts per 5-minute cell; every
session spawns Poisson(``eta``) child sessions after Exp(``tau``) seconds (self-excitation).
Both make a host's 5-minute flow counts autocorrelated beyond the daily rhythm. The expected
number of sessions per day stays ``rate_per_day``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter

Rhythm = Callable[[np.ndarray], np.ndarray]

DAY = 86400.0
WORK_HOURS: tuple[int, int] = (8, 18)  # [start, end) hours whose flows use the work-hour mix
HAWKES_ETA = 0.55  # expected child sessions per session
HAWKES_TAU = 420.0  # seconds, mean delay of a child session
CELL = 300.0  # seconds, resolution of the rhythm and of the presence modulation
PRESENCE_SIGMA = 0.9  # workstations: log-sd of the at-desk/away modulation
PRESENCE_MINUTES = 45.0  # its correlation time


def _bump(h: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((h - centre) / width) ** 2)


def _normalise(fn: Callable[[np.ndarray], np.ndarray]) -> Rhythm:
    grid = (np.arange(24 * 60) + 0.5) / 60.0
    mean = float(fn(grid).mean())

    def rhythm(h: np.ndarray) -> np.ndarray:
        return fn(np.asarray(h, dtype=np.float64)) / mean

    return rhythm


#: Office hours: quiet night, peaks 9-12 and 14-17, a lunch dip (work/night ratio about 10).
office = _normalise(
    lambda h: (
        0.07
        + 1.0 * _bump(h, 10.5, 1.3)
        + 0.95 * _bump(h, 15.5, 1.3)
        + 0.35 * _bump(h, 13.0, 0.7)
        + 0.12 * _bump(h, 20.0, 1.5)
    )
)
#: Remote access: evenings (VPN logins), some daytime.
evening = _normalise(lambda h: 0.15 + 0.5 * _bump(h, 11.0, 2.5) + 1.0 * _bump(h, 20.5, 1.6))
#: Always on, a mild daytime bump (inbound mail, hosted services).
flat = _normalise(lambda h: 1.0 + 0.6 * _bump(h, 13.0, 3.5))

RHYTHMS: dict[str, Rhythm] = {"office": office, "evening": evening, "flat": flat}


def hour_of(t: np.ndarray) -> np.ndarray:
    """Hour of day (float, 0..24) of LANL relative times in seconds."""
    return np.mod(t, DAY) / 3600.0


def is_work_hour(t: np.ndarray) -> np.ndarray:
    """True where ``t`` (seconds) falls in ``WORK_HOURS``; bool array like ``t``."""
    h = hour_of(t)
    return (h >= WORK_HOURS[0]) & (h < WORK_HOURS[1])


def presence(
    rng: np.random.Generator, n: int, n_cells: int, sigma: float, tau_cells: float
) -> np.ndarray:
    """Multiplicative activity modulation per initiator and cell, mean 1: ``exp(sigma z - sigma^2/2)``
    with ``z`` a stationary AR(1) (unit variance, correlation ``exp(-1/tau_cells)`` per cell).

    Shape (n, n_cells). Models a user at the desk or away for tens of minutes.
    """
    if sigma <= 0 or n_cells == 0:
        return np.ones((n, n_cells))
    phi = np.exp(-1.0 / tau_cells)
    eps = rng.normal(0.0, np.sqrt(1.0 - phi**2), (n, n_cells))
    eps[:, 0] = rng.normal(0.0, 1.0, n)  # start in the stationary distribution
    z = lfilter([1.0], [1.0, -phi], eps, axis=1)
    return np.exp(sigma * z - 0.5 * sigma**2)


def session_times(
    rng: np.random.Generator,
    rate_per_day: np.ndarray,
    rhythm: Rhythm,
    t0: float,
    t1: float,
    *,
    eta: float = HAWKES_ETA,
    tau: float = HAWKES_TAU,
    presence_sigma: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Session starts of several initiators over ``[t0, t1)`` seconds.

    Immigrant sessions: Poisson counts per initiator and ``CELL``-second cell with mean
    ``rate * (1 - eta) * rhythm(hour) * presence * cell / 86400``, uniform within the cell;
    then the Hawkes children. ``rate_per_day``: float array (n_init,), expected sessions per
    day of each initiator. Returns ``(initiator, time)``: int64 and float64 arrays
    (n_sessions,), sorted by (initiator, time). Children may fall after ``t1`` (the caller
    carries or drops them).
    """
    rate_per_day = np.asarray(rate_per_day, dtype=np.float64)
    n_init = len(rate_per_day)
    edges = np.append(np.arange(t0, t1, CELL), t1)
    width = np.diff(edges)
    lam = rhythm(hour_of(edges[:-1] + 0.5 * width)) * width / DAY  # (n_cells,)
    mod = presence(rng, n_init, len(width), presence_sigma, PRESENCE_MINUTES * 60.0 / CELL)
    counts = rng.poisson(rate_per_day[:, None] * (1.0 - eta) * lam[None, :] * mod).ravel()
    cell = np.repeat(np.tile(np.arange(len(width)), n_init), counts)
    who = np.repeat(np.repeat(np.arange(n_init, dtype=np.int64), len(width)), counts)
    when = edges[cell] + rng.uniform(size=len(cell)) * width[cell]
    all_who, all_when = [who], [when]
    while len(who) and eta > 0:  # one generation of children per pass
        kids = rng.poisson(eta, len(who))
        who = np.repeat(who, kids)
        when = np.repeat(when, kids) + rng.exponential(tau, kids.sum())
        all_who.append(who)
        all_when.append(when)
    who, when = np.concatenate(all_who), np.concatenate(all_when)
    order = np.lexsort((when, who))
    return who[order], when[order]

"""The gaps' residual dependence, and a Gaussian copula that puts it into sampled gaps.

The network draws each gap from its conditional distribution given the host's past, but
learns that conditional's dependence on the past only in part (docs/neural.md section 23):
on the training flows, the PITs of the true gaps under the teacher-forced network are
uniform overall, yet serially correlated. Their normal scores ``z = Phi^-1(PIT)`` correlate
0.17 at lag 1 and still 0.06 at lag 40 on the simulator: a busy stretch goes on being
busier than the network expects. A sampler that draws each gap's uniform independently
leaves that out, so the synthetic hosts are less bursty than real ones.

``cell_scores`` and ``latent_correlations`` measure the serial correlation of the normal
scores within training windows from the gaps' grid cells, undoing the damping of cells that
hide where a gap lies (``lag_correlations`` is the plain correlation). ``fit_gap_copula``
solves the Yule-Walker equations for the Gaussian AR(p) process
with exactly those correlations at lags 1..p (shrunk toward 0 where noise makes them
inconsistent). The sampler draws each gap's normal score from that process
(``gap_copula_start``, ``gap_copula_step``): standard normal at every step, so each sampled
gap's PIT is still uniform given the network's conditional (the gap marginal and the rate
calibration stay as they were), and consecutive PITs correlate as the training gaps' do.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.linalg import cholesky, solve_toeplitz, toeplitz
from scipy.special import ndtr, ndtri

#: lags (flows) the copula matches: its AR order at most
MAX_LAG = 48
#: smallest innovation variance accepted: at most 90% of a gap's normal score comes from
#: the gaps before it
MIN_INNOVATION = 0.1
#: below this largest |correlation| the gaps count as independent (no copula)
MIN_DEPENDENCE = 0.01
#: uniforms are kept this far inside (0, 1) before ``ndtri``
EPS = 1e-6


def _lag_pairs(
    x: np.ndarray, valid: np.ndarray, max_lag: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(k, later values, earlier values) of the pairs ``x[:, t + k]``, ``x[:, t]`` where
    both are ``valid``, for each lag k = 1..max_lag with at least 30 such pairs. ``x``,
    ``valid``: (windows, flows); pairs never cross windows."""
    for k in range(1, min(int(max_lag), x.shape[1] - 1) + 1):
        ok = valid[:, k:] & valid[:, :-k]
        if ok.sum() >= 30:
            yield k, x[:, k:][ok], x[:, :-k][ok]


def lag_correlations(z: np.ndarray, valid: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Correlation of ``z[:, t]`` with ``z[:, t + k]`` over the pairs where both are
    ``valid``, for k = 1..max_lag (NaN for a lag with fewer than 30 pairs), float64
    (max_lag,). ``z``, ``valid``: (windows, flows) arrays; a window is one host's
    consecutive flows, so pairs never cross hosts."""
    out = np.full(int(max_lag), np.nan)
    pairs = _lag_pairs(np.asarray(z, dtype=np.float64), np.asarray(valid, dtype=bool), max_lag)
    for k, a, b in pairs:
        if a.std() > 0 and b.std() > 0:
            out[k - 1] = float(np.corrcoef(a, b)[0, 1])
    return out


def cell_scores(f_lo: np.ndarray, f_hi: np.ndarray) -> np.ndarray:
    """The mean normal score of each target's grid cell, float64 like ``f_lo``: ``E[z | z
    in (a, b)]`` for ``a = Phi^-1(f_lo)``, ``b = Phi^-1(f_hi)``, the cell's CDF bounds under
    the network (``a`` itself for an empty cell)."""
    f_lo = np.clip(np.asarray(f_lo, dtype=np.float64), EPS, 1.0 - EPS)
    f_hi = np.clip(np.asarray(f_hi, dtype=np.float64), EPS, 1.0 - EPS)
    a, b = ndtri(f_lo), ndtri(f_hi)
    width = f_hi - f_lo
    pdf = np.exp(-0.5 * a**2) - np.exp(-0.5 * b**2)
    mean = pdf / np.sqrt(2.0 * np.pi) / np.where(width > 1e-9, width, 1.0)
    return np.where(width > 1e-9, mean, a)


def latent_correlations(m: np.ndarray, valid: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """The lag correlations (k = 1..max_lag) of the normal scores behind the cell scores
    ``m`` (``cell_scores``), float64 (max_lag,), NaN for a lag with fewer than 30 pairs.

    A grid cell hides where in it a value lies, which damps every correlation measured on
    cell scores (half of the simulator's gaps fall in cells holding over 10% of their
    probability; there a plain correlation of randomised PITs read 0.144 at lag 1, this
    0.167). For a small correlation ``rho`` of the normal scores, the cell scores'
    covariance is ``rho * V**2`` to first order (Hermite expansion; ``V`` the cell scores'
    variance, 1 for exact values), so this returns ``cov_k / V**2``, within (-0.99, 0.99).
    Pairs never cross windows (rows), as in ``lag_correlations``."""
    m = np.asarray(m, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    out = np.full(int(max_lag), np.nan)
    if valid.sum() < 30:
        return out
    mu = float(m[valid].mean())
    v = float(np.mean((m[valid] - mu) ** 2))
    if v <= 0:
        return out
    for k, a, b in _lag_pairs(m - mu, valid, max_lag):
        out[k - 1] = float(np.clip(np.mean(a * b) / v**2, -0.99, 0.99))
    return out


def _stationary(coef: np.ndarray) -> bool:
    """Whether the AR process with coefficients ``coef`` (lag 1 first) is stationary: every
    eigenvalue of its companion matrix inside the unit circle."""
    p = coef.size
    companion = np.zeros((p, p))
    companion[0] = coef
    companion[1:, :-1] = np.eye(p - 1)
    return bool(np.max(np.abs(np.linalg.eigvals(companion))) < 1.0 - 1e-9)


def fit_gap_copula(corr: np.ndarray) -> np.ndarray:
    """The AR(p) copula matching the lag correlations ``corr`` (k = 1..len), float64
    (2, p): row 0 the AR coefficients (lag 1 first), row 1 the correlations it reproduces
    at lags 1..p. p is the last lag before the first NaN; the correlations are shrunk by
    0.9 at a time until the process is stationary with an innovation variance of at least
    ``MIN_INNOVATION``. Shape (2, 0), no copula, where no lag reaches ``MIN_DEPENDENCE``."""
    corr = np.asarray(corr, dtype=np.float64)
    p = int(np.argmax(~np.isfinite(corr))) if (~np.isfinite(corr)).any() else corr.size
    r = corr[:p]
    if p == 0 or np.max(np.abs(r)) < MIN_DEPENDENCE:
        return np.zeros((2, 0))
    for _ in range(60):
        column = np.r_[1.0, r[:-1]]
        try:
            coef = solve_toeplitz(column, r)
        except np.linalg.LinAlgError:
            coef = None
        if coef is not None and 1.0 - coef @ r >= MIN_INNOVATION and _stationary(coef):
            return np.vstack([coef, r])
        r = r * 0.9
    return np.zeros((2, 0))


def gap_copula_start(params: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """The last p normal scores of ``B`` new sequences, oldest first, drawn from the
    process's stationary distribution with the standard normals ``normals`` (B, p):
    float64 (B, p)."""
    r = params[1]
    if r.size == 0:
        return np.zeros((normals.shape[0], 0))
    chol = cholesky(toeplitz(np.r_[1.0, r[:-1]]), lower=True)
    return normals @ chol.T


def gap_copula_step(
    history: np.ndarray, params: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One gap of ``B`` sequences: (the uniform to draw the gap with, (B,); the history
    with the new normal score last, (B, p)). ``history`` (B, p): the last p normal scores,
    oldest first; ``u`` (B,): the innovation's uniforms. The score is
    ``sum_k a_k z_{t-k} + sqrt(1 - a . r) * Phi^-1(u)``: standard normal, so the uniform is
    uniform."""
    coef, r = params
    e = ndtri(np.clip(u, EPS, 1.0 - EPS))
    if coef.size == 0:
        return ndtr(e), history
    z = history[:, ::-1] @ coef + np.sqrt(1.0 - coef @ r) * e
    history = np.concatenate([history[:, 1:], z[:, None]], axis=1)
    return ndtr(z), history


#: bisection steps of ``mixture_quantile``: the bracket shrinks by 2^-36 (1e-9 of a latent
#: range of 60)
QUANTILE_STEPS = 36


def _mixture_parts(logits: np.ndarray, log_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The component weights (softmax of ``logits``) and scales of logistic mixtures,
    float64 (B, M) each."""
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True), np.exp(log_s)


def _cdf(y: np.ndarray, w: np.ndarray, mu: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.sum(w * (0.5 + 0.5 * np.tanh(0.5 * (y[:, None] - mu) / scale)), axis=1)


def mixture_quantile(
    logits: np.ndarray,
    mu: np.ndarray,
    log_s: np.ndarray,
    u: np.ndarray,
    lo: float | None = None,
    hi: float | None = None,
) -> np.ndarray:
    """The value whose CDF under the logistic mixture (B, M parameters) is ``u`` (B,), the
    mixture truncated to ``[lo, hi]`` where given: float64 (B,), by bisection (the mixture
    CDF has no closed inverse; its weights and scales are computed once, not per step).
    The draw's PIT is then ``u`` itself, so a copula's uniforms carry their dependence into
    the values whole, where a component drawn apart from its within-component uniform
    dilutes it."""
    logits, mu, log_s = (np.asarray(a, dtype=np.float64) for a in (logits, mu, log_s))
    u = np.clip(np.asarray(u, dtype=np.float64), EPS, 1.0 - EPS)
    w, scale = _mixture_parts(logits, log_s)
    f_lo = np.zeros_like(u) if lo is None else _cdf(np.full_like(u, lo), w, mu, scale)
    f_hi = np.ones_like(u) if hi is None else _cdf(np.full_like(u, hi), w, mu, scale)
    target = f_lo + u * (f_hi - f_lo)
    spread = 40.0 * scale.max(axis=1)
    a = mu.min(axis=1) - spread if lo is None else np.full_like(u, lo)
    b = mu.max(axis=1) + spread if hi is None else np.full_like(u, hi)
    for _ in range(QUANTILE_STEPS):
        mid = 0.5 * (a + b)
        below = _cdf(mid, w, mu, scale) < target
        a = np.where(below, mid, a)
        b = np.where(below, b, mid)
    return 0.5 * (a + b)

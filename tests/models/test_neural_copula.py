"""Tests of ``neural_copula``: the gaps' residual dependence and its Gaussian AR copula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from nfsynth.models.neural_copula import (
    MIN_INNOVATION,
    cell_scores,
    fit_gap_copula,
    gap_copula_start,
    gap_copula_step,
    lag_correlations,
    latent_correlations,
    mixture_quantile,
)

LAGS = np.arange(1, 49)
#: a fast and a slow decay, as the simulator's training gaps show (0.14 at lag 1, 0.05 at 40)
TWO_SPEEDS = 0.08 * 0.6**LAGS + 0.06 * 0.99**LAGS


def _run(params: np.ndarray, rows: int, steps: int, seed: int) -> np.ndarray:
    """The copula's uniforms, (rows, steps), each row a sequence from its stationary start."""
    rng = np.random.default_rng(seed)
    history = gap_copula_start(params, rng.standard_normal((rows, params.shape[1])))
    out = np.empty((rows, steps))
    for t in range(steps):
        out[:, t], history = gap_copula_step(history, params, rng.random(rows))
    return out


@pytest.mark.parametrize(
    "target",
    [TWO_SPEEDS, np.where(LAGS % 2 == 0, 0.3 * 0.9 ** (LAGS / 2), 0.0)],
    ids=["two-speeds", "alternating"],
)
def test_the_copula_keeps_gaps_uniform_and_correlates_them_as_measured(
    target: np.ndarray,
) -> None:
    """Setup: lag correlations with a fast and a slow decay, or alternating ones (0 at odd
    lags, as request/reply gaps give). Run: fit, then 4,000 sequences of 48 gaps. Assert:
    the uniforms are uniform (KS p > 0.01, at the first step too: the start is stationary)
    and their normal scores correlate as measured at lags 1, 2, 5, 10, 20 and 40 within
    0.02."""
    params = fit_gap_copula(target)
    assert params.shape == (2, 48)
    u = _run(params, 4000, 48, seed=0)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 0.01
    assert stats.kstest(u[:, 0], "uniform").pvalue > 0.01
    got = lag_correlations(stats.norm.ppf(u), np.ones_like(u, dtype=bool), 47)
    lags = np.array([1, 2, 5, 10, 20, 40])
    np.testing.assert_allclose(got[lags - 1], target[lags - 1], atol=0.02)


def test_the_fit_from_measured_scores_comes_near_the_truth() -> None:
    """Setup: 2,000 windows of 64 normal scores from the two-speed copula. Run: measure
    their lag correlations, fit, and run the fitted copula. Assert: its scores correlate
    within 0.02 of the true correlations at lags 1-40."""
    truth = fit_gap_copula(TWO_SPEEDS)
    z = stats.norm.ppf(_run(truth, 2000, 64, seed=2))
    fitted = fit_gap_copula(lag_correlations(z, np.ones_like(z, dtype=bool)))
    again = stats.norm.ppf(_run(fitted, 4000, 48, seed=3))
    got = lag_correlations(again, np.ones_like(again, dtype=bool), 40)
    np.testing.assert_allclose(got, TWO_SPEEDS[:40], atol=0.02)


def test_inconsistent_correlations_are_shrunk_to_a_valid_process() -> None:
    """Setup: correlations no process has (0.9 at lag 1, -0.9 at lag 2). Assert: the fit
    shrinks them until the AR process is stationary with at least ``MIN_INNOVATION`` of new
    variance per step, and its scores stay standard normal."""
    params = fit_gap_copula(np.array([0.9, -0.9]))
    coef, used = params
    assert 1.0 - coef @ used >= MIN_INNOVATION
    assert np.all(np.abs(used) < 0.9)
    z = stats.norm.ppf(_run(params, 4000, 30, seed=4))
    assert abs(z.std() - 1.0) < 0.02


@pytest.mark.parametrize(
    "corr", [np.full(48, 0.001), np.full(48, np.nan), np.r_[np.nan, np.full(47, 0.3)]]
)
def test_no_copula_without_measured_dependence(corr: np.ndarray) -> None:
    """Negligible or unmeasured correlations (the order stops at the first NaN lag) give no
    copula, and its step passes the uniform through."""
    params = fit_gap_copula(corr)
    assert params.shape == (2, 0)
    u = np.random.default_rng(1).random(500)
    got, _ = gap_copula_step(gap_copula_start(params, np.zeros((500, 0))), params, u)
    np.testing.assert_allclose(got, u, atol=1e-9)


def test_lag_pairs_leave_invalid_flows_out() -> None:
    """Setup: an AR(1) series (phi 0.8) in two windows (the second negated, which keeps its
    autocorrelation); one invalid flow holds a huge value. Assert: the lag correlations come
    out near 0.8**k: the invalid flow is in no pair."""
    rng = np.random.default_rng(3)
    x = np.zeros(4000)
    for t in range(1, x.size):
        x[t] = 0.8 * x[t - 1] + rng.standard_normal() * 0.6
    z = np.stack([x[:2000], -x[:2000]])
    valid = np.ones_like(z, dtype=bool)
    z[0, 100], valid[0, 100] = 1e6, False
    got = lag_correlations(z, valid, 5)
    np.testing.assert_allclose(got, 0.8 ** np.arange(1, 6), atol=0.05)


def test_mixture_cdf_is_the_logistic_mixtures_cdf() -> None:
    """Setup: a two-component logistic mixture (weights 0.25 / 0.75, locations -1 / 2, scales
    0.5 / 1.5). Assert: ``mixture_cdf`` equals scipy's weighted logistic CDFs at finite
    points, 0 at -inf and 1 at +inf, and its differences are ``interval_log_prob``'s mass."""
    torch = pytest.importorskip("torch")
    from nfsynth.models.neural_net import interval_log_prob, mixture_cdf

    logits = np.log([0.25, 0.75])
    mu, scale = np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    params = torch.tensor(np.r_[logits, mu, np.log(scale)], dtype=torch.float32)
    x = np.array([-np.inf, -3.0, -1.0, 0.0, 2.0, 5.0, np.inf])
    got = mixture_cdf(params.expand(len(x), 6), torch.tensor(x, dtype=torch.float32)).numpy()
    want = 0.25 * stats.logistic.cdf(x, -1.0, 0.5) + 0.75 * stats.logistic.cdf(x, 2.0, 1.5)
    np.testing.assert_allclose(got, want, atol=1e-6)
    lo, hi = torch.tensor([-1.0]), torch.tensor([2.0])
    mass = interval_log_prob(params.expand(1, 6), lo, hi, hi - lo).exp().numpy()
    np.testing.assert_allclose(mass, want[4] - want[2], rtol=1e-5)


def test_cell_scores_are_the_mean_normal_score_of_each_cell() -> None:
    """The upper half's mean score is sqrt(2/pi); the whole line's is 0; an empty cell's is
    its point; a narrow cell's is its midpoint's."""
    got = cell_scores(np.array([0.5, 0.0, 0.8413447, 0.3]), np.array([1.0, 1.0, 0.8413447, 0.3001]))
    np.testing.assert_allclose(got[:3], [np.sqrt(2 / np.pi), 0.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(got[3], stats.norm.ppf(0.30005), atol=1e-4)


@pytest.mark.parametrize("phi", [0.15, 0.3])
def test_latent_correlations_undo_the_damping_of_coarse_cells(phi: float) -> None:
    """Setup: 2,000 windows of 64 AR(1) normal scores (phi 0.15 or 0.3) seen only through
    coarse cells: all negative scores in one cell (half the mass), then cells 0.5 wide.
    Assert: the plain correlation of the cell scores is damped (by a fifth), the latent
    correlation recovers phi**k at lags 1-3 within 0.02."""
    rng = np.random.default_rng(0)
    z = np.zeros((2000, 64))
    z[:, 0] = rng.standard_normal(2000)
    for t in range(1, 64):
        z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(2000)
    edges = np.r_[-np.inf, 0.0, np.arange(0.5, 4.01, 0.5), np.inf]
    cell = np.searchsorted(edges, z, side="right") - 1
    m = cell_scores(stats.norm.cdf(edges[cell]), stats.norm.cdf(edges[cell + 1]))
    ok = np.ones_like(m, dtype=bool)
    assert lag_correlations(m, ok, 1)[0] < 0.9 * phi
    np.testing.assert_allclose(latent_correlations(m, ok, 3), phi ** np.arange(1, 4), atol=0.02)


def logistic_mixture_cdf(
    y: np.ndarray, logits: np.ndarray, mu: np.ndarray, log_s: np.ndarray
) -> np.ndarray:
    """The reference: CDF at ``y`` (B,) of the logistic mixtures with component logits,
    locations and log scales (B, M), by scipy's logistic distribution and softmax."""
    parts = stats.logistic.cdf(np.asarray(y, float)[:, None], loc=mu, scale=np.exp(log_s))
    return np.sum(special.softmax(logits, axis=1) * parts, axis=1)


def test_mixture_quantile_inverts_the_mixture_cdf_within_its_bounds() -> None:
    """Random 3-component logistic mixtures: the quantile at ``u`` has CDF ``u`` (to 1e-8),
    increases with ``u``, and, truncated below at 0, lies above 0 with its CDF rescaled to
    the mass above 0; draws at uniform ``u`` follow the mixture (KS against its own CDF)."""
    rng = np.random.default_rng(0)
    B, M = 4000, 3
    logits, mu = rng.normal(size=(B, M)), 3.0 * rng.normal(size=(B, M))
    log_s = 0.5 * rng.normal(size=(B, M)) - 0.5
    u = rng.random(B)
    y = mixture_quantile(logits, mu, log_s, u)
    assert np.abs(logistic_mixture_cdf(y, logits, mu, log_s) - u).max() < 1e-8
    row = np.repeat(logits[:1], 50, 0), np.repeat(mu[:1], 50, 0), np.repeat(log_s[:1], 50, 0)
    assert np.all(np.diff(mixture_quantile(*row, np.linspace(0.01, 0.99, 50))) > 0)
    cut = mixture_quantile(logits, mu, log_s, u, lo=0.0)
    f0 = logistic_mixture_cdf(np.zeros(B), logits, mu, log_s)
    assert cut.min() >= 0.0
    rescaled = (logistic_mixture_cdf(cut, logits, mu, log_s) - f0) / (1.0 - f0)
    assert np.abs(rescaled - u).max() < 1e-6
    # one mixture, many uniforms: the draws are that mixture's
    one = tuple(np.repeat(a[:1], B, 0) for a in (logits, mu, log_s))
    draws = mixture_quantile(*one, rng.random(B))

    def cdf(x: np.ndarray) -> np.ndarray:
        x = np.atleast_1d(x).astype(float)
        return logistic_mixture_cdf(x, *(a[: x.size] for a in one))

    assert stats.kstest(draws, cdf).pvalue > 0.01

"""The synthetic hosts' slow activity modulation (``nfsynth.models.neural_activity``)."""

from __future__ import annotations

import numpy as np
import pytest

from nfsynth.models.neural_activity import (
    CELL_SECONDS,
    FIT_LAGS,
    MIN_CELLS,
    ActivityClock,
    cell_counts,
    fit_activity_modulation,
    host_shares,
    modulation_autocovariance,
    modulation_paths,
    normalised_autocovariance,
    rescaled_sigma,
)
from nfsynth.models.neural_vocab import TimeWarp

OFFICE = [0.2] * 8 + [2.0] * 10 + [0.5] * 6  # a rhythm with busy days and quiet nights


def office_warp() -> TimeWarp:
    w = np.asarray(OFFICE)
    return TimeWarp(hour_weights=list(w * 24.0 / w.sum()))


def cox_flows(
    n_hosts: int, days: float, per_day: float, sigma: float, phi: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flows (ts, host) of hosts whose rate per 5-minute cell is ``per_day`` times the
    office rhythm times a modulation path of ``sigma`` and ``phi``: Poisson counts per
    cell, times uniform within it."""
    rng = np.random.default_rng(seed)
    warp = office_warp()
    n_cells = int(days * 86400 / CELL_SECONDS)
    hour = ((np.arange(n_cells) + 0.5) * CELL_SECONDS % 86400 // 3600).astype(int)
    rhythm = np.asarray(warp.hour_weights)[hour]
    m = modulation_paths(rng, n_hosts, n_cells, sigma, phi)
    counts = rng.poisson(per_day / 288.0 * rhythm[None, :] * m)
    host = np.repeat(np.repeat(np.arange(n_hosts), n_cells), counts.ravel())
    cell = np.repeat(np.tile(np.arange(n_cells), n_hosts), counts.ravel())
    ts = (cell + rng.random(cell.size)) * CELL_SECONDS
    return ts, host


def test_modulation_paths_have_mean_one_the_log_sd_and_the_correlation() -> None:
    """Setup: 400 paths of 2,000 cells, sigma 0.6, phi 0.8. Assert: mean 1 (within 0.02), the
    log path's sd 0.6 and lag-1 correlation 0.8 (within 0.01), and sigma 0 gives ones."""
    m = modulation_paths(np.random.default_rng(0), 400, 2000, 0.6, 0.8)
    assert m.shape == (400, 2000)
    assert abs(m.mean() - 1.0) < 0.02
    z = np.log(m)
    assert abs(z.std() - 0.6) < 0.01
    zc = z - z.mean()
    assert abs((zc[:, 1:] * zc[:, :-1]).mean() / zc.var() - 0.8) < 0.01
    assert abs(z[:, 0].std() - 0.6) < 0.05  # started in the stationary law, not at 0
    np.testing.assert_array_equal(modulation_paths(np.random.default_rng(0), 3, 5, 0.0, 0.8), 1)


def test_a_path_per_host_takes_its_own_sigma_from_the_same_draws() -> None:
    """Setup: sigma per host (0, 0.3, 0.9) against one sigma of 0.9, same rng seed. Assert:
    the host of sigma 0 keeps m = 1; the host of 0.9 gets the path the single sigma gives
    it; the host of 0.3 has the same z (its log path is a third of that one's, shifted)."""
    one = modulation_paths(np.random.default_rng(4), 3, 50, 0.9, 0.8)
    each = modulation_paths(np.random.default_rng(4), 3, 50, np.array([0.0, 0.3, 0.9]), 0.8)
    np.testing.assert_array_equal(each[0], 1.0)
    np.testing.assert_allclose(each[2], one[2])
    z_one = (np.log(one[1]) + 0.5 * 0.81) / 0.9
    z_each = (np.log(each[1]) + 0.5 * 0.09) / 0.3
    np.testing.assert_allclose(z_each, z_one, atol=1e-9)
    np.testing.assert_array_equal(
        modulation_paths(np.random.default_rng(4), 2, 5, np.zeros(2), 0.8), 1
    )


def test_host_shares_spare_steady_hosts_and_weigh_the_ones_that_come_and_go() -> None:
    """Setup: 10 hosts on an office rhythm over 4 days, 5 steady (Poisson around the rhythm)
    and 5 modulated (sigma 0.9, phi 0.9), and one host of a single hour. Assert: the steady
    hosts' shares lie below 0.35, the modulated ones' above 1 (the mean square share of the
    hosts measured is 1), the short host gets 1, and so does every host where none is long
    enough to measure."""
    warp = office_warp()
    ts0, h0 = cox_flows(5, 4, 3000, 0.0, 0.9, seed=5)
    ts1, h1 = cox_flows(5, 4, 3000, 0.9, 0.9, seed=6)
    ts = np.r_[ts0, ts1, np.linspace(0, 3000, 40)]
    host = np.r_[h0, h1 + 5, np.full(40, 10)]
    shares = host_shares(ts, host, 11, warp)
    assert shares.shape == (11,)
    assert shares[:5].max() < 0.35, shares
    assert shares[5:10].min() > 1.0, shares
    assert shares[10] == 1.0
    assert abs(np.mean(shares[:10] ** 2) - 1.0) < 1e-9
    short = host_shares(np.linspace(0, 3000, 40), np.arange(40) % 2, 2, warp)
    np.testing.assert_array_equal(short, 1.0)


def test_the_autocovariance_of_cox_counts_is_the_modulation_s() -> None:
    """Setup: 30 hosts of 6 days, 3,000 flows a day on an office rhythm, modulated with
    sigma 0.7, phi 0.85. Assert: the normalised autocovariance matches
    exp(sigma^2 phi^k) - 1 within 0.06 at lags 1-24 (the rhythm divided out), and is about 0
    for unmodulated hosts."""
    warp = office_warp()
    ts, host = cox_flows(30, 6, 3000, 0.7, 0.85, seed=1)
    got = normalised_autocovariance(cell_counts(ts, host, warp))
    want = modulation_autocovariance(np.arange(1, FIT_LAGS + 1), 0.49, 0.85)
    np.testing.assert_allclose(got, want, atol=0.06)
    ts, host = cox_flows(30, 6, 3000, 0.0, 0.85, seed=2)
    flat = normalised_autocovariance(cell_counts(ts, host, warp))
    assert np.abs(flat).max() < 0.03, flat


def test_the_fit_recovers_what_the_network_lacks() -> None:
    """Setup: a target of sigma 0.7, phi 0.85 measured from Cox counts; a network with
    none, then one with a modulation of its own. Assert: against none the fit recovers
    sigma and phi (within 0.08 and 0.05); against the network's own part it fits less; a
    network with as much or more gives no modulation."""
    warp = office_warp()
    ts, host = cox_flows(40, 6, 3000, 0.7, 0.85, seed=3)
    target = normalised_autocovariance(cell_counts(ts, host, warp))
    sigma, phi = fit_activity_modulation(target, np.zeros(FIT_LAGS))
    assert abs(sigma - 0.7) < 0.08 and abs(phi - 0.85) < 0.05, (sigma, phi)
    own = modulation_autocovariance(np.arange(1, FIT_LAGS + 1), 0.25, 0.6)
    part, _ = fit_activity_modulation(target, own)
    assert 0.2 < part < sigma - 0.1, (part, sigma)
    assert fit_activity_modulation(target, target + 0.05) == (0.0, 0.0)
    assert fit_activity_modulation(np.full(FIT_LAGS, np.nan), np.zeros(FIT_LAGS)) == (0.0, 0.0)


def test_cell_counts_leave_out_short_hosts_and_expect_the_host_s_total() -> None:
    """Setup: one host over 3 days, one over an hour. Assert: only the first is kept, its
    expected counts sum to its flows and follow the rhythm (day cells 10x the night's)."""
    warp = office_warp()
    ts = np.r_[np.arange(0, 3 * 86400, 60.0), np.arange(0, 3600, 10.0)]
    host = np.r_[np.zeros(3 * 1440, int), np.ones(360, int)]
    series = cell_counts(ts, host, warp)
    assert len(series) == 1
    counts, expected = series[0]
    assert counts.size == 3 * 288 >= MIN_CELLS
    assert expected.sum() == pytest.approx(counts.sum())
    assert expected[10 * 12] / expected[2 * 12] == pytest.approx(10.0)


def test_the_clock_is_the_warp_where_the_modulation_is_constant() -> None:
    """Setup: two hosts on the office warp, one with m = 1, one with m = 2 throughout.
    Assert: both advance exactly as the warp's inverse (a path is rescaled to cover the
    warp's span, so a constant one is no modulation)."""
    warp = office_warp()
    m = np.ones((2, 600))
    m[1] = 2.0
    clock = ActivityClock(warp, np.array([-1, -1]), m, 0.0)
    t = np.array([1000.0, 30000.0, 40000.0, 86400.0 + 500.0])
    idle = np.array([50.0, 4000.0, 20000.0, 7.0])
    want = warp.inverse(warp.forward(t) + idle)
    for host in (0, 1):
        got = clock.advance(t, idle, np.full(4, host))
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_clock_integrates_across_cells_and_keeps_the_span() -> None:
    """Setup: a flat warp, one host whose path reads 1, 4, 1 over three cells (rescaled to
    0.5, 2, 0.5: the same 900 warped seconds as the warp). Assert: 450 warped seconds from
    0 end 150 s into the second cell; a gap from inside the busy cell ends 4x sooner than
    in a quiet one; the whole span ends at the grid's end, and beyond it the clock stops."""
    warp = TimeWarp(hour_weights=[1.0] * 24)
    clock = ActivityClock(warp, np.array([0]), np.array([[1.0, 4.0, 1.0]]), 0.0)
    one = np.array([0])
    assert clock.advance(np.array([0.0]), np.array([450.0]), one)[0] == pytest.approx(450.0)
    busy = clock.advance(np.array([310.0]), np.array([20.0]), one)[0] - 310.0
    quiet = clock.advance(np.array([10.0]), np.array([20.0]), one)[0] - 10.0
    assert quiet == pytest.approx(4 * busy) and busy == pytest.approx(10.0)
    assert clock.advance(np.array([0.0]), np.array([900.0]), one)[0] == clock.end
    assert clock.advance(np.array([100.0]), np.array([1e6]), one)[0] == clock.end
    assert clock.end == 3 * CELL_SECONDS


def test_a_round_that_realised_half_the_excess_doubles_sigma_squared() -> None:
    """Setup: a target excess over the network of sigma^2 = 0.4, phi 0.8; a round realised
    half of it. Assert: sigma^2 doubles; a round that realised it all keeps sigma; one that
    realised nothing (or no modulation) keeps it too; the step is at most 4x."""
    lags = np.arange(1, FIT_LAGS + 1)
    network = modulation_autocovariance(lags, 0.05, 0.5)
    target = np.expm1(np.log1p(network) + 0.4 * 0.8**lags)
    half = np.expm1(np.log1p(network) + 0.2 * 0.8**lags)
    assert rescaled_sigma(0.5, target, network, half) ** 2 == pytest.approx(0.5)
    assert rescaled_sigma(0.5, target, network, target) == pytest.approx(0.5)
    assert rescaled_sigma(0.5, target, network, network) == 0.5
    assert rescaled_sigma(0.0, target, network, half) == 0.0
    tenth = np.expm1(np.log1p(network) + 0.01 * 0.8**lags)
    assert rescaled_sigma(0.5, target, network, tenth) ** 2 == pytest.approx(1.0)


def test_the_clock_s_inverse_undoes_its_forward_map() -> None:
    """Setup: 5 hosts with paths of sigma 0.8 over a day of the office warp. Assert: the
    clock's inverse undoes its forward map within 1e-6 s at 200 times per host, the forward
    map rises with time, and each host's clock over the grid equals the warp's span."""
    warp = office_warp()
    paths = modulation_paths(np.random.default_rng(4), 5, 289, 0.8, 0.85)
    clock = ActivityClock(warp, np.full(5, -1), paths, 0.0)
    t = np.sort(np.random.default_rng(5).uniform(0.0, 86400.0, 200))
    for host in range(5):
        rows = np.full(t.size, host)
        w = clock.forward(t, rows)
        assert np.all(np.diff(w) > 0)
        np.testing.assert_allclose(clock.inverse(w, rows), t, atol=1e-6)
    span = warp.forward(np.array([clock.end])) - warp.forward(np.array([0.0]))
    np.testing.assert_allclose(clock.cum[:, -1], span[0], rtol=1e-12)


def test_the_clock_follows_each_host_s_own_rhythm() -> None:
    """Setup: a warp with a rhythm per training host (``TimeWarp.with_hosts``: host 0 busy at
    night, host 1 by day), paths of m = 1. Assert: each host's clock advances as the warp of
    its own row, an unknown host's (-1) as the pooled one."""
    ts = np.r_[np.arange(0, 6 * 3600, 30.0), np.arange(9 * 3600, 17 * 3600, 30.0)]
    who = np.r_[np.zeros(720, int), np.ones(960, int)]
    warp = TimeWarp.fit(ts).with_hosts(ts, who, 2, prior=100.0)
    rows = np.array([0, 1, -1])
    clock = ActivityClock(warp, rows, np.ones((3, 300)), 0.0)
    t, idle = np.full(3, 7200.0), np.full(3, 900.0)
    want = warp.inverse(warp.forward(t, rows) + idle, rows)
    np.testing.assert_allclose(clock.advance(t, idle, np.arange(3)), want, rtol=1e-12)
    assert want[0] - 7200.0 < want[1] - 7200.0  # host 0 is busy at 2 o'clock


def test_the_clock_keeps_each_hour_s_volume_or_only_the_period_s() -> None:
    """Setup: 6 hosts with paths of sigma 0.8, phi 0.9 over a day of the office warp, the
    grid starting 25 minutes into an hour (a partial first and last hour). Assert: with
    ``span="hour"`` each host's clock runs as many warped seconds as the warp in every clock
    hour of the grid, while within the hour it still speeds up and slows down; with
    ``span="period"`` only the whole grid's total is kept and the hours' shares move by
    tens of percent; an unknown span is refused."""
    warp = office_warp()
    paths = modulation_paths(np.random.default_rng(8), 6, 289, 0.8, 0.9)
    t0 = 5 * CELL_SECONDS
    hours = np.arange(1.0, 24.0) * 3600.0
    edges = np.r_[t0, hours, t0 + 289 * CELL_SECONDS]  # the grid's clock-hour boundaries
    want = np.diff(warp.forward(edges))
    rows = np.full(6, -1)
    spread = {}
    for span in ("hour", "period"):
        clock = ActivityClock(warp, rows, paths, t0, span=span)
        got = np.stack([np.diff(clock.forward(edges, np.full(edges.size, h))) for h in range(6)])
        spread[span] = np.abs(got / want - 1.0).max()
        np.testing.assert_allclose(got.sum(axis=1), want.sum(), rtol=1e-9)
        hour2 = clock.rate[:, 19:31]  # cells of 2:00-3:00, where the warp's rate is constant
        assert (hour2 / hour2.mean(axis=1, keepdims=True)).std() > 0.2  # m still acts there
    assert spread["hour"] < 1e-9 < 0.2 < spread["period"]
    with pytest.raises(ValueError, match="span 'day'"):
        ActivityClock(warp, rows, paths, t0, span="day")

"""B2 (bayesnet): normalised smoothed tables, sampling from (not the argmax of) conditionals,
the daily rhythm and the previous-flow dependence that B1 misses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from nfsynth.evalspace import EvalSpace
from nfsynth.models.bayesnet import BayesNetModel, bin_edges, stationary_hour_factor
from nfsynth.models.independent import IndependentModel
from nfsynth.models.sampling import draw_codes
from tests.models.conftest import frame_tables, make_user_flows

B1_SMALL = {"max_components": 4, "cv_folds": 3, "max_fit_rows": 3000}
START = 5 * 86400.0


@pytest.fixture(scope="module")
def space(planted_tables):
    return EvalSpace.fit(planted_tables.subset("train"))


@pytest.fixture(scope="module")
def b2(planted_tables, space):
    return BayesNetModel().fit(planted_tables, seed=1, space=space)


@pytest.fixture(scope="module")
def b1(planted_tables, space):
    return IndependentModel(**B1_SMALL).fit(planted_tables, seed=1, space=space)


def test_conditionals_sum_to_one_and_never_zero(b2):
    for name, table in b2.tables_.items():
        probs = np.exp(table)
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-9, err_msg=name)
        assert probs.min() > 0, name
    for name in b2.space_.fields:
        key = {"dt": "dt_cond", "bytes": "bytes_cond"}.get(name, f"cpt_{name}")
        mapped = b2._to_eval(name, b2.tables_[key])
        np.testing.assert_allclose(mapped.sum(axis=-1), 1.0, atol=1e-9, err_msg=name)


def test_bins_capped_and_rules():
    y = np.random.default_rng(0).normal(5, 1, 10000).clip(0)
    assert len(bin_edges(y, "fd", 8, y.max())) - 1 == 8
    assert len(bin_edges(y, "sqrt", 256, y.max())) - 1 == 101  # sqrt(10000) + overflow bin
    fd = bin_edges(y, "fd", 256, y.max())
    width = 2 * np.subtract(*np.percentile(y, [75, 25])) * 10000 ** (-1 / 3)
    assert fd[1] - fd[0] == pytest.approx(width, rel=0.1)


def test_draws_follow_a_70_30_conditional():
    rng = np.random.default_rng(0)
    codes = draw_codes(np.tile([0.7, 0.3], (20000, 1)), rng)
    assert codes.mean() == pytest.approx(0.3, abs=0.015)


def test_model_samples_70_30_not_argmax(space):
    flows = make_user_flows(seed=3)
    flows["proto"] = np.where(np.random.default_rng(3).random(len(flows)) < 0.7, 6, 17).astype(
        np.uint8
    )
    model = BayesNetModel().fit(frame_tables(flows), seed=1, space=space)
    sample = model.sample(6, START, 3.0, seed=5).to_pandas()
    assert sample["proto"].eq(6).mean() == pytest.approx(0.7, abs=0.03)


def hour_shares(ts: np.ndarray) -> np.ndarray:
    counts = np.bincount((ts // 3600 % 24).astype(int), minlength=24)
    return counts / counts.sum()


def test_b2_reproduces_the_daily_rhythm_b1_misses(b1, b2, planted_tables):
    real = hour_shares(planted_tables.subset("train")["ts"].to_numpy())
    jsd = {}
    for name, model in (("b1", b1), ("b2", b2)):
        sample = model.sample(6, START, 3.0, seed=4).to_pandas()
        jsd[name] = jensenshannon(real, hour_shares(sample["ts"].to_numpy()), base=2) ** 2
    assert jsd["b2"] < 0.02
    assert jsd["b1"] > 0.1
    # busy hours (08-18) hold ~87% of the real flows
    sample = b2.sample(6, START, 3.0, seed=4).to_pandas()
    busy = ((sample["ts"] // 3600 % 24) >= 8) & ((sample["ts"] // 3600 % 24) < 18)
    assert busy.mean() == pytest.approx(10 * 60 / (10 * 60 + 14 * 6), abs=0.05)


def test_b2_beats_b1_on_previous_flow_dependence(b1, b2, planted_tables):
    test = planted_tables.subset("test")
    nll_b1 = -b1.log_prob(test).mean()
    nll_b2 = -b2.log_prob(test).mean()
    assert nll_b2 < nll_b1 - 1.0
    # the bytes chain: B2's sampled bytes keep the previous flow's state (stay 0.9)
    sample = b2.sample(6, START, 2.0, seed=6).to_pandas()
    large = np.log1p(sample["bytes"].to_numpy()) > 7.0
    same_user = sample["user"].to_numpy()[1:] == sample["user"].to_numpy()[:-1]
    stay = (large[1:] == large[:-1])[same_user].mean()
    assert stay > 0.8


def test_bytes_chain_keeps_the_hour_marginal(b2):
    """The bytes chain's hour factor is calibrated: at every hour, P(B | T) is the stationary
    distribution of P(B | B_prev, T), so the hour's evidence does not compound along a host's
    flows. The time-delta chain keeps the plain factor P(Tp | DT) (its steps move the clock)."""
    cond = np.exp(b2.tables_["bytes_cond"])  # [x_prev, t, x]
    first = np.exp(b2.tables_["bytes_first"])  # [t, x]
    np.testing.assert_allclose(np.einsum("tp,ptx->tx", first, cond), first, atol=1e-8)
    cond_dt = np.exp(b2.tables_["dt_cond"])
    first_dt = np.exp(b2.tables_["dt_first"])
    assert not np.allclose(np.einsum("tp,ptx->tx", first_dt, cond_dt), first_dt, atol=1e-4)


def test_hour_factor_is_naive_bayes_without_persistence():
    rng = np.random.default_rng(0)
    p_x = rng.dirichlet(np.ones(5))
    t_x = rng.dirichlet(np.ones(24), size=5)  # P(T | X), (5, 24)
    first = np.log(p_x[None, :] * t_x.T)
    first -= np.log(np.exp(first).sum(axis=1, keepdims=True))
    pair = np.log(np.tile(p_x, (5, 1)).T * p_x[None, :])  # P(X_prev) P(X): no information
    factor = stationary_hour_factor(first, pair)
    expected = np.log(t_x.T) - np.log(t_x.T).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(factor - factor.mean(axis=1, keepdims=True), expected, atol=1e-6)

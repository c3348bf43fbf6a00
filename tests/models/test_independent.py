"""B1 (independent): component count by cross-validation, smoothed frequencies, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.models.independent import IndependentModel, choose_components
from nfsynth.models.sampling import Vocab

SMALL = {"max_components": 4, "cv_folds": 3, "max_fit_rows": 3000}


def test_cv_finds_three_components():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(m, 0.5, 700) for m in (0.0, 4.0, 8.0)])
    k, scores = choose_components(y, 5, 3, seed=0)
    assert k == 3
    assert scores[2] > scores[1] + 0.3  # three clearly beat two


def test_cv_finds_one_component():
    y = np.random.default_rng(1).normal(2.0, 1.0, 1500)
    assert choose_components(y, 4, 3, seed=0)[0] == 1


def test_frequencies_smoothed():
    vocab = Vocab.fit(np.array(["a"] * 6 + ["b"] * 3 + ["c"]), top_k=2)
    np.testing.assert_allclose(vocab.smoothed(1.0), np.array([7, 4, 2]) / 13)
    # the evaluation space knows a value B1 has never seen: it still gets probability
    matrix = vocab.eval_matrix(["a", "b", "zzz"], alpha=1.0)
    probs = vocab.smoothed(1.0) @ matrix
    assert probs.sum() == pytest.approx(1.0)
    assert (probs > 0).all()
    assert probs[0] == pytest.approx(7 / 13)


@pytest.fixture(scope="module")
def fitted(planted_tables):
    space = EvalSpace.fit(planted_tables.subset("train"))
    return IndependentModel(**SMALL).fit(planted_tables, seed=1, space=space)


def test_field_probabilities_sum_to_one(fitted):
    for name in fitted.space_.fields:
        probs = fitted.field_probs(name)
        assert probs.sum() == pytest.approx(1.0, abs=1e-9), name
        assert (probs > 0).any()


def test_log_prob_is_sum_of_field_terms(fitted, planted_tables):
    test = planted_tables.subset("test").head(50)
    codes = fitted.space_.encode(test)
    by_hand = sum(np.log(fitted.field_probs(f)[codes[f]]) for f in fitted.space_.fields)
    np.testing.assert_allclose(fitted.log_prob(test), by_hand)


def test_sample_marginals_match_training(fitted, planted_tables):
    table = fitted.sample(6, 5 * 86400.0, 3.0, seed=2).to_pandas()
    train = planted_tables.subset("train")
    assert table["proto"].eq(6).mean() == pytest.approx(train["proto"].eq(6).mean(), abs=0.03)
    assert np.median(np.log1p(table["bytes"])) == pytest.approx(
        np.median(np.log1p(train["bytes"])), abs=0.5
    )
    assert table["packets"].dtype == np.int64
    # flow counts follow the mean time delta: about as many flows per host-day as in training
    per_day_real = len(train) / (6 * 3)
    assert len(table) / (6 * 3) == pytest.approx(per_day_real, rel=0.25)

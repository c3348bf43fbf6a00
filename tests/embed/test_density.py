"""Latent densities rank planted outliers above normal points; drift sees a shift."""

import numpy as np
from sklearn.metrics import roc_auc_score

from nfsynth.embed.density import LatentDensity, drift


def test_density_ranks_planted_outliers_above_normal_points():
    # Setup: two Gaussian clusters of normal codes, 40 outliers scattered far from both.
    rng = np.random.default_rng(0)
    normal = np.vstack([rng.normal(-1.5, 0.3, (1000, 2)), rng.normal(1.5, 0.3, (1000, 2))])
    outliers = rng.uniform(-4, 4, (40, 2))
    outliers = outliers[
        np.minimum(*(np.linalg.norm(outliers - c, axis=1) for c in (-1.5, 1.5))) > 1.5
    ]
    ref = normal[rng.permutation(len(normal))[:1000]]

    # Run
    dens = LatentDensity("scott", components=4, seed=0).fit(ref)
    z = np.vstack([normal, outliers])
    y = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    scores = dens.score(z)

    # Assert
    assert len(outliers) > 10
    assert roc_auc_score(y, scores["kde"]) > 0.95
    assert roc_auc_score(y, scores["gmm"]) > 0.95


def test_drift_zero_for_same_codes_positive_for_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (2000, 2))
    same = drift(a, a)
    assert same["jsd"] == 0.0 and same["mean_shift"] == 0.0
    moved = drift(a, a + np.array([1.0, 0.0]))
    assert moved["jsd"] > 0.1
    assert abs(moved["wasserstein"][0] - 1.0) < 1e-9 and moved["wasserstein"][1] < 1e-9

"""Densities of latent codes and the drift of latent codes from batch to batch.

``LatentDensity(bandwidth, components, seed).fit(z_ref)`` fits, on reference codes ``z_ref``
(float, shape (n, d)), a Gaussian kernel density (``sklearn.neighbors.KernelDensity``,
bandwidth ``scott``/``silverman``/a number, in latent units) and a Bayesian Gaussian mixture
(``sklearn.mixture.BayesianGaussianMixture``, ``components`` at most, full covariances).
``score(z)`` returns the anomaly scores ``{"kde": -log p_kde(z), "gmm": -log p_gmm(z)}``
(nats, shape (n,)): low density, high score. In two dimensions or fewer the KDE is evaluated
once on a ``GRID_POINTS``-per-axis grid spanning the reference codes plus 4 bandwidths and
interpolated linearly (grid spacing a fraction of the bandwidth), so scoring costs O(n) instead
of O(n * n_ref); codes outside the grid are evaluated exactly.

Drift between two batches of codes (``drift(prev, cur, grid)``): the Jensen-Shannon divergence
(base 2, in [0, 1]) of their histograms on a fixed grid (codes outside are clipped to the edge
cells), the Wasserstein-1 distance per latent dimension, and the distance between means.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from sklearn.neighbors import KernelDensity

GRID_POINTS = 96


class LatentDensity:
    """KDE and Bayesian GMM over latent codes (module docstring)."""

    def __init__(self, bandwidth: str | float = "scott", components: int = 8, seed: int = 0):
        self.bandwidth = bandwidth
        self.components = int(components)
        self.seed = int(seed)

    def fit(self, z: np.ndarray) -> LatentDensity:
        z = np.asarray(z, dtype=np.float64)
        if len(z) < 2:
            raise ValueError("LatentDensity.fit: need at least 2 reference codes")
        bw = self.bandwidth
        bw = float(bw) if not isinstance(bw, str) or bw not in ("scott", "silverman") else bw
        self.kde_ = KernelDensity(kernel="gaussian", bandwidth=bw).fit(z)
        with warnings.catch_warnings():  # non-convergence is reported by summary()
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gmm_ = self._gmm(z)
        self.grid_ = None
        if z.shape[1] <= 2:
            pad = 4.0 * float(self.kde_.bandwidth_)
            axes = [np.linspace(z[:, j].min() - pad, z[:, j].max() + pad, GRID_POINTS)
                    for j in range(z.shape[1])]  # fmt: skip
            mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, z.shape[1])
            values = self.kde_.score_samples(mesh).reshape([GRID_POINTS] * z.shape[1])
            self.grid_ = RegularGridInterpolator(axes, values, bounds_error=False, fill_value=None)
            self.lo_, self.hi_ = mesh.min(axis=0), mesh.max(axis=0)
        return self

    def _gmm(self, z: np.ndarray) -> BayesianGaussianMixture:
        return BayesianGaussianMixture(
            n_components=min(self.components, len(z)),
            covariance_type="full",
            max_iter=100,
            reg_covar=1e-4,
            random_state=self.seed,
        ).fit(z)

    def kde_logpdf(self, z: np.ndarray) -> np.ndarray:
        """log p_kde(z), shape (n,): interpolated on the grid inside it, exact outside."""
        if self.grid_ is None:
            return self.kde_.score_samples(z)
        out = np.empty(len(z))
        inside = np.all((z >= self.lo_) & (z <= self.hi_), axis=1)
        out[inside] = self.grid_(z[inside])
        if (~inside).any():
            out[~inside] = self.kde_.score_samples(z[~inside])
        return out

    def score(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Anomaly scores (negative log-densities, nats), each float64 of shape (n,)."""
        z = np.asarray(z, dtype=np.float64)
        if len(z) == 0:
            return {"kde": np.zeros(0), "gmm": np.zeros(0)}
        return {"kde": -self.kde_logpdf(z), "gmm": -self.gmm_.score_samples(z)}

    def summary(self) -> dict[str, Any]:
        return {
            "kde_bandwidth": float(self.kde_.bandwidth_),
            "gmm_weights": [float(w) for w in self.gmm_.weights_],
            "gmm_means": self.gmm_.means_.tolist(),
            "gmm_converged": bool(self.gmm_.converged_),
        }


def histogram2d(z: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of codes (first two dims) on a ``bins x bins`` grid over ``[lo, hi]^2``, clipped."""
    z = np.clip(np.asarray(z, dtype=np.float64)[:, :2], lo, hi - 1e-9 * (hi - lo))
    h, _, _ = np.histogram2d(z[:, 0], z[:, 1], bins=bins, range=[[lo, hi], [lo, hi]])
    return h.ravel()


def drift(
    prev: np.ndarray, cur: np.ndarray, lo: float = -4.0, hi: float = 4.0, bins: int = 24
) -> dict[str, Any]:
    """``{"jsd": float, "wasserstein": [float per dim], "mean_shift": float}`` from prev to cur."""
    hp, hc = histogram2d(prev, lo, hi, bins), histogram2d(cur, lo, hi, bins)
    jsd = float(jensenshannon(hp, hc, base=2) ** 2) if hp.sum() and hc.sum() else float("nan")
    wd = [float(wasserstein_distance(prev[:, j], cur[:, j])) for j in range(prev.shape[1])]
    shift = float(np.linalg.norm(prev.mean(axis=0) - cur.mean(axis=0)))
    return {"jsd": jsd, "wasserstein": wd, "mean_shift": shift}

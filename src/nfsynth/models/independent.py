"""B1 (``independent``): every field of a flow independent of the others and of the past.

- Continuous fields (``dt``, ``duration``, ``packets``, ``bytes``, ``rev_*`` where present): a
  one-dimensional Gaussian mixture on latent values (``log1p``, dequantised for integer fields,
  see ``models.sampling``). The component count is chosen by cross-validated held-out
  likelihood: K-fold out-of-fold ``score_samples`` for 1..``max_components`` components (on at
  most ``CV_ROWS`` rows), and the smallest count whose mean held-out log-likelihood is within one
  standard error (of the paired per-flow difference) of the best.
- Categorical fields (``proto``, ``sport``, ``dport``, ``direction``, ``peer_kind``): additively
  smoothed frequencies over the top-K values plus ``other``; the peer by frequency within its
  kind.
- Timestamps: time deltas drawn i.i.d. and accumulated per synthetic host until ``days`` are
  filled.

``log_prob`` scores each field's evaluation-space bin: the mixture's mass over the bin's latent
interval (sum over components of ``norm.cdf`` differences) or the smoothed frequency mapped onto
the evaluation codes; the sum over fields, in nats.

``role`` is accepted for the interface but not conditioned on: the baseline pools all hosts
(the sample's host names carry the role).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.stats import norm
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold

from nfsynth.evalspace import EvalSpace
from nfsynth.models import sampling as S
from nfsynth.models.base import (
    FlowModel,
    flows_frame,
    read_model_files,
    start_seconds,
    synthetic_user_names,
    to_sample_table,
    train_flows,
    write_model_files,
)
from nfsynth.schema import SECONDS_PER_DAY

log = logging.getLogger(__name__)

REG_COVAR = 1e-4
#: k-means++ seeding: no Lloyd iterations (which dominate small fits), same EM afterwards.
INIT = "k-means++"
#: Rows the cross-validation that picks the component count runs on (a deterministic subsample
#: of the fitting rows); the chosen mixture is then fitted on up to ``max_fit_rows`` rows.
CV_ROWS = 10000


def choose_components(
    y: np.ndarray, max_components: int, folds: int, seed: int
) -> tuple[int, np.ndarray]:
    """Component count of a 1-D Gaussian mixture by K-fold held-out likelihood.

    ``y``: (n,) latent values. Returns the chosen count and the mean held-out log-likelihood
    (nats per value) of every count 1..max_components, shape (max_components,). The smallest
    count within one standard error of the best is chosen (1-SE rule on per-value differences).
    """
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    n_distinct = len(np.unique(y))
    top = max(1, min(max_components, n_distinct, len(y) // max(folds, 2)))
    oof = np.full((max_components, len(y)), -np.inf)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for k in range(1, top + 1):
        for train_idx, test_idx in splitter.split(y):
            gm = GaussianMixture(k, reg_covar=REG_COVAR, init_params=INIT, random_state=seed).fit(
                y[train_idx]
            )
            oof[k - 1, test_idx] = gm.score_samples(y[test_idx])
    mean = oof.mean(axis=1)
    best = int(np.argmax(mean))
    diff = oof[:top] - oof[best]
    se = diff.std(axis=1, ddof=1) / np.sqrt(len(y))
    chosen = int(np.flatnonzero(mean[:top] >= mean[best] - se)[0]) + 1
    return chosen, mean


class IndependentModel(FlowModel):
    """B1: independent fields (see module docstring)."""

    kind = "independent"

    def __init__(
        self,
        max_components: int = 6,
        cv_folds: int = 3,
        top_k: int = 32,
        alpha: float = 1.0,
        max_fit_rows: int = 50000,
    ) -> None:
        super().__init__(
            max_components=max_components,
            cv_folds=cv_folds,
            top_k=top_k,
            alpha=alpha,
            max_fit_rows=max_fit_rows,
        )
        self.mixtures_: dict[str, dict[str, np.ndarray]] = {}
        self.integer_: dict[str, bool] = {}
        self.cv_scores_: dict[str, list[float]] = {}
        self.vocabs_: dict[str, S.Vocab] = {}
        self.peers_: S.PeerTable | None = None

    # -- fit ------------------------------------------------------------------------------
    def fit(self, users: Any, *, seed: int, space: EvalSpace | None = None) -> IndependentModel:
        """Fit every field's marginal on the training split. Returns self."""
        t0 = time.perf_counter()
        hp = self.hyperparameters
        frame = train_flows(users)
        if len(frame) == 0:
            raise ValueError("independent: the training split holds no flows")
        self.space_ = self._space_for(users, space)
        rng = np.random.default_rng(seed)
        has_prev = S.previous_row(frame) >= 0
        for name in S.present_continuous(frame):
            values = S.numeric(frame, name)
            if name == "dt":  # the first flow of a host has dt = 0 by construction
                values = values[has_prev] if has_prev.any() else values
            values = values[np.isfinite(values)]
            integer = S.is_integer_valued(values)
            y = S.to_latent(values, integer, rng)
            if len(y) > hp["max_fit_rows"]:
                y = y[np.sort(rng.choice(len(y), hp["max_fit_rows"], replace=False))]
            cv_y = (
                y if len(y) <= CV_ROWS else y[np.sort(rng.choice(len(y), CV_ROWS, replace=False))]
            )
            k, scores = choose_components(cv_y, hp["max_components"], hp["cv_folds"], seed)
            gm = GaussianMixture(k, reg_covar=REG_COVAR, init_params=INIT, random_state=seed).fit(
                y.reshape(-1, 1)
            )
            self.mixtures_[name] = {
                "weights": gm.weights_.astype(float),
                "means": gm.means_.ravel().astype(float),
                "sds": np.sqrt(gm.covariances_.ravel()).astype(float),
            }
            self.integer_[name] = integer
            self.cv_scores_[name] = [float(s) for s in scores]
            log.info(
                "independent: %s: %d rows, %d components (CV nats/value %s)",
                name,
                len(y),
                k,
                ", ".join(f"{s:.3f}" for s in scores),
            )
        for name in S.present_categorical(frame):
            self.vocabs_[name] = S.Vocab.fit(frame[name], hp["top_k"])
        self.peers_ = S.PeerTable.fit(frame, hp["top_k"])
        log.info("independent: fitted on %d flows in %.1f s", len(frame), time.perf_counter() - t0)
        return self

    # -- scoring --------------------------------------------------------------------------
    def field_probs(self, name: str) -> np.ndarray:
        """Probability of each evaluation code of a field, float64 (n_bins(name),)."""
        space = self.space_
        if space.is_continuous(name):
            if name not in self.mixtures_:
                raise ValueError(
                    f"independent: model has no distribution of {name!r} (evaluation space has)"
                )
            m = self.mixtures_[name]
            lo, hi = S.eval_intervals(space, name, self.integer_[name])
            mu, sd, w = m["means"][:, None], m["sds"][:, None], m["weights"][:, None]
            zl, zh = (lo[None, :] - mu) / sd, (hi[None, :] - mu) / sd
            upper = zl > 0  # upper tail: differences of survival functions keep precision
            mass = np.where(upper, norm.sf(zl) - norm.sf(zh), norm.cdf(zh) - norm.cdf(zl))
            return (w * np.clip(mass, 0.0, None)).sum(axis=0)
        if name not in self.vocabs_:
            raise ValueError(
                f"independent: model has no distribution of {name!r} (evaluation space has)"
            )
        vocab = self.vocabs_[name]
        alpha = self.hyperparameters["alpha"]
        return vocab.smoothed(alpha) @ vocab.eval_matrix(space.vocab[name], alpha)

    def log_prob(self, flows: Any) -> np.ndarray:
        """Log-probability (nats) of each flow's evaluation-space bins, (n_flows,)."""
        self._check_fitted()
        frame = flows_frame(flows)
        S.check_columns(frame, self.space_.fields, "independent.log_prob")
        codes = self.space_.encode(frame)
        total = np.zeros(len(frame))
        for name in self.space_.fields:
            probs = self.field_probs(name)
            total += np.log(np.maximum(probs[codes[name]], S.TINY))
        return total

    # -- sampling -------------------------------------------------------------------------
    def _draw_latent(self, name: str, n: int, rng: np.random.Generator) -> np.ndarray:
        m = self.mixtures_[name]
        comp = rng.choice(len(m["weights"]), size=n, p=m["weights"] / m["weights"].sum())
        return rng.normal(m["means"][comp], m["sds"][comp])

    def draw_field(self, name: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """n values of one field: numbers (continuous) or text (categorical), shape (n,)."""
        if name in self.mixtures_:
            return S.from_latent(self._draw_latent(name, n, rng), self.integer_[name])
        vocab = self.vocabs_[name]
        codes = S.draw_codes(
            np.broadcast_to(vocab.smoothed(self.hyperparameters["alpha"]), (n, vocab.size)), rng
        )
        return vocab.decode(codes, rng)

    def sample(
        self,
        n_users: int,
        start: datetime | float,
        days: float,
        *,
        seed: int,
        role: str | None = None,
    ) -> pa.Table:
        """Synthetic flows of ``n_users`` hosts over ``days`` days (``role`` only names hosts)."""
        self._check_sample_args(role)
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        host, ts = S.accumulate_times(
            lambda n, r: self.draw_field("dt", n, r),
            n_users,
            start_seconds(start),
            days * SECONDS_PER_DAY,
            rng,
        )
        n = len(ts)
        fields = {
            name: self.draw_field(name, n, rng)
            for name in list(self.mixtures_) + list(self.vocabs_)
            if name != "dt"
        }
        kinds = fields.pop("peer_kind", np.full(n, "", dtype=object))
        peer = self.peers_.draw(kinds, rng)
        frame = S.sample_frame(synthetic_user_names(n_users, role), host, ts, fields, peer)
        table = to_sample_table(frame)
        log.info(
            "independent: sampled %d flows of %d hosts in %.2f s",
            n,
            n_users,
            time.perf_counter() - t0,
        )
        return table

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self._check_fitted()
        arrays = {
            f"{name}__{key}": value
            for name, m in self.mixtures_.items()
            for key, value in m.items()
        }
        state = {
            "integer": self.integer_,
            "cv_scores": self.cv_scores_,
            "vocabs": {name: v.to_state() for name, v in self.vocabs_.items()},
            "peers": self.peers_.to_state(),
        }
        write_model_files(path, self.kind, self.hyperparameters, state, arrays, self.space_)

    @classmethod
    def load(cls, path: str | Path) -> IndependentModel:
        hp, state, arrays, space = read_model_files(path, cls.kind)
        model = cls(**hp)
        model.space_ = space
        model.integer_ = {k: bool(v) for k, v in state["integer"].items()}
        model.cv_scores_ = state["cv_scores"]
        model.mixtures_ = {
            name: {key: arrays[f"{name}__{key}"] for key in ("weights", "means", "sds")}
            for name in state["integer"]
        }
        model.vocabs_ = {name: S.Vocab.from_state(v) for name, v in state["vocabs"].items()}
        model.peers_ = S.PeerTable.from_state(state["peers"])
        return model


__all__ = ["IndependentModel", "choose_components"]

"""B2 (``bayesnet``): a discrete Bayesian network over binned fields, conditioned on the hour of
day and the host's previous flow.

Own bins: every continuous field is binned on its latent values (``log1p``, dequantised for
integer fields, see ``models.sampling``) with edges from 0 to the training maximum, the bin
count from the Freedman-Diaconis rule (``bin_rule: fd``; square-root rule where the IQR is 0 or
with ``bin_rule: sqrt``), capped at ``max_bins`` including one overflow bin above the maximum.
Bins are shared by all hosts. Categorical fields keep the top-K values plus ``other``.

Structure (T: hour of the flow, Tp: hour of the previous flow, i.e. when the gap starts):

- time delta: ``P(DT | DT_prev, Tp) ∝ P(Tp | DT) P(DT_prev | DT) P(DT)``;
- bytes: ``P(B | B_prev, T) ∝ P(T | B) P(B_prev | B) P(B)``;
- every other field F (``packets``, ``duration``, ``rev_*``, ``proto``, ``sport``, ``dport``,
  ``direction``, ``peer_kind``): ``P(F | B, T)``; the peer by frequency within its kind.

In the bytes chain the hour factor ``P(T | B)`` is calibrated (``stationary_hour_factor``,
Sinkhorn scaling) so that ``P(B | T)`` is the chain's stationary distribution at every hour:
the plain naive-Bayes factor re-applies the hour's evidence at each step although ``B_prev``
already carries it, and along a host's persistent chain that evidence compounded (on the
simulator: a transition hour's bytes mix exaggerated, the hour-conditioned JSD worse than
B1's). Without dependence on the previous flow the calibrated factor is ``P(T | B)`` itself.
The time-delta chain keeps the plain factor ``P(Tp | DT)``: its steps move the clock (a long
gap leaves the hour), so "stationary within an hour" is not its target, and calibrating it
flattened the bursts (simulator, seeds 1-3: ACF error 0.038 -> 0.058 for an hour-conditioned
JSD 0.0109 -> 0.0103).

A host's first flow uses the marginal over the previous flow: ``P(B | T) ∝ P(T | B) P(B)``
(likewise for DT). Probabilities are Laplace-smoothed with ``alpha`` (``P(F | B, T)`` is
smoothed towards ``P(F | B)``, itself Laplace-smoothed, so sparse hours borrow from the bytes
bin rather than from a uniform table) and normalised in log space with ``logsumexp``, so no
probability is zero and every conditional sums to one. Sampling draws from the conditional
tables with the rng (inverse CDF, never argmax), and a value within the bin by the inverse of
its within-bin CDF (``sampling.bin_quantiles``: 16 quantiles of the training values of the
bin; a value uniform in the bin would flatten every heavy-tailed bin); it runs for all hosts
at once, one flow step at a time.

``log_prob`` in the evaluation space: own bins differ from the evaluation bins, so each own bin
is spread over the evaluation intervals it overlaps by its within-bin CDF:
``P(eval bin) = sum over own bins of P(own bin) x overlap fraction``. The previous flow is the
previous row of the same user in the scored frame (its values at the latent midpoint); the
fields conditioned on the bytes bin use the posterior over own bytes bins given the flow's
evaluation bytes bin, so the score is a proper probability over evaluation-space codes. The
hour of the flow is context (as for the neural model).

``role`` is accepted but not conditioned on (the baseline pools all hosts).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.special import logsumexp

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

HOURS = 24


def bin_edges(y: np.ndarray, rule: str, max_bins: int, top: float) -> np.ndarray:
    """Own bin edges on latent values ``y`` (finite, >= 0): equal width from 0 to ``top``,
    the count by the rule, plus one overflow bin of the same width above ``top``.
    Returns (n_bins + 1,) with n_bins <= max_bins."""
    top = max(float(top), 1e-3)
    n = max(len(y), 1)
    inner = math.ceil(math.sqrt(n))
    if rule == "fd" and len(y) > 1:
        q75, q25 = np.percentile(y, [75, 25])
        width = 2.0 * (q75 - q25) * n ** (-1.0 / 3.0)
        if width > 0:
            inner = math.ceil(top / width)
    elif rule not in ("fd", "sqrt"):
        raise ValueError(f"bayesnet: unknown bin_rule {rule!r} (fd, sqrt)")
    inner = int(min(max(inner, 1), max_bins - 1))
    edges = np.linspace(0.0, top, inner + 1)
    return np.concatenate([edges, [top + top / inner]])


def own_codes(edges: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Own bin of latent values, int64 (n,), clipped into 0..n_bins-1."""
    codes = np.searchsorted(edges, y, side="right") - 1
    return np.clip(codes, 0, len(edges) - 2).astype(np.int64)


def _log_normalise(log_table: np.ndarray) -> np.ndarray:
    """Normalise the last axis with logsumexp so each conditional sums to one."""
    return log_table - logsumexp(log_table, axis=-1, keepdims=True)


def _counts(index: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(index, minlength=size).astype(float)


def naive_bayes_tables(
    x: np.ndarray,
    t: np.ndarray,
    x_prev: np.ndarray,
    paired: np.ndarray,
    n_x: int,
    alpha: float,
    calibrate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``log P(X | X_prev, T) ∝ log P(T | X) + log P(X_prev | X) + log P(X)``.

    ``x``, ``t``: codes (n,) of the rows used; ``x_prev``: previous codes, read where
    ``paired`` (n,) is true. With ``calibrate``, ``P(T | X)`` in the conditional is the
    calibrated hour factor (``stationary_hour_factor``), so the chain keeps ``P(X | T)`` as its
    marginal at every hour instead of compounding the hour's evidence step after step; without,
    the plain Laplace-smoothed ``P(T | X)``. Returns the conditional (n_x, 24, n_x) indexed
    ``[x_prev, t, x]`` and the first-flow table ``log P(X | T)`` (24, n_x), log space.
    """
    p_x = np.log(_counts(x, n_x) + alpha) - np.log(len(x) + alpha * n_x)
    t_x = _counts(x * HOURS + t, n_x * HOURS).reshape(n_x, HOURS) + alpha
    log_t_x = np.log(t_x / t_x.sum(axis=1, keepdims=True))
    p_x_prev = _counts(x[paired] * n_x + x_prev[paired], n_x * n_x).reshape(n_x, n_x) + alpha
    log_prev_x = np.log(p_x_prev / p_x_prev.sum(axis=1, keepdims=True))
    first = _log_normalise(p_x[None, :] + log_t_x.T)
    # the hour factor of the chain, calibrated so that P(X | T) stays the chain's marginal
    hour_factor = (
        stationary_hour_factor(first, log_prev_x.T + p_x[None, :]) if calibrate else log_t_x.T
    )
    # [x_prev, t, x]
    joint = p_x[None, None, :] + hour_factor[None, :, :] + log_prev_x.T[:, None, :]
    return _log_normalise(joint), first


def stationary_hour_factor(
    first: np.ndarray, log_pair: np.ndarray, iterations: int = 1000, tol: float = 1e-9
) -> np.ndarray:
    """The calibrated ``log P(T | X)`` of the chain, (24, n_x): the factor ``w_t(x)`` such
    that ``P(X | X_prev, t) ∝ w_t(X) P(X_prev | X) P(X)`` has ``P(X | T = t)`` (``first``,
    log, (24, n_x)) as its stationary distribution at every hour.

    The plain naive-Bayes factor ``P(T | X)`` is evidence about the hour that is applied again
    at every step of the chain, while ``X_prev`` already carries the same hour's evidence: along
    a persistent chain it compounds, and a host's flows drift within an hour to the bins the
    hour favours far beyond ``P(X | T)`` (on the simulator: too few flows at night, the bytes
    mix of a transition hour such as 17 h exaggerated). The calibration is Sinkhorn scaling of
    ``A[x_prev, x] = P(X_prev | X) P(X)`` (``log_pair``, (n_x, n_x)) to row and column sums
    ``P(X | t)``; when ``X_prev`` carries no information about ``X`` it returns ``P(T | X)`` up to
    a constant per hour (which the normalisation removes).
    """
    a = np.exp(log_pair - log_pair.max())
    pi = np.exp(first)
    w = pi.copy()
    for _ in range(iterations):
        r = pi / np.maximum(w @ a.T, S.TINY)  # row scaling (24, n_x_prev)
        w_new = pi / np.maximum(r @ a, S.TINY)  # column scaling (24, n_x)
        w_new /= w_new.sum(axis=1, keepdims=True)
        step = np.max(np.abs(np.log(np.maximum(w_new, S.TINY)) - np.log(np.maximum(w, S.TINY))))
        w = w_new
        if step < tol:
            break
    return np.log(np.maximum(w, S.TINY))


def conditional_table(
    f: np.ndarray, b: np.ndarray, t: np.ndarray, n_f: int, n_b: int, alpha: float
) -> np.ndarray:
    """``log P(F | B, T)``, (n_b, 24, n_f): counts plus ``alpha * n_f * P(F | B)``, with
    ``P(F | B)`` Laplace-smoothed; normalised with logsumexp."""
    fb = _counts(b * n_f + f, n_b * n_f).reshape(n_b, n_f) + alpha
    prior = fb / fb.sum(axis=1, keepdims=True)
    fbt = _counts((b * HOURS + t) * n_f + f, n_b * HOURS * n_f).reshape(n_b, HOURS, n_f)
    return _log_normalise(np.log(fbt + alpha * n_f * prior[:, None, :]))


def _cdf(log_table: np.ndarray) -> np.ndarray:
    return np.cumsum(np.exp(log_table), axis=-1)


class BayesNetModel(FlowModel):
    """B2: discrete Bayesian network (see module docstring)."""

    kind = "bayesnet"

    def __init__(
        self, bin_rule: str = "fd", max_bins: int = 32, alpha: float = 1.0, top_k: int = 32
    ) -> None:
        if bin_rule not in ("fd", "sqrt"):
            raise ValueError(f"bayesnet: unknown bin_rule {bin_rule!r} (fd, sqrt)")
        super().__init__(bin_rule=bin_rule, max_bins=max_bins, alpha=alpha, top_k=top_k)
        self.edges_: dict[str, np.ndarray] = {}
        self.integer_: dict[str, bool] = {}
        self.vocabs_: dict[str, S.Vocab] = {}
        self.tables_: dict[str, np.ndarray] = {}
        self.quantiles_: dict[str, np.ndarray] = {}  # within-bin quantiles of the latent
        self.others_: list[str] = []
        self.peers_: S.PeerTable | None = None

    # -- fit ------------------------------------------------------------------------------
    def fit(self, users: Any, *, seed: int, space: EvalSpace | None = None) -> BayesNetModel:
        """Bin the fields and count the conditional tables on the training split."""
        t0 = time.perf_counter()
        hp = self.hyperparameters
        frame = train_flows(users)
        if len(frame) == 0:
            raise ValueError("bayesnet: the training split holds no flows")
        S.check_columns(frame, ["ts", "dt", "bytes"], "bayesnet.fit")
        self.space_ = self._space_for(users, space)
        rng = np.random.default_rng(seed)
        prev = S.previous_row(frame)
        has_prev = prev >= 0
        codes: dict[str, np.ndarray] = {}
        for name in S.present_continuous(frame):
            values = S.numeric(frame, name)
            integer = S.is_integer_valued(values)
            y = S.to_latent(np.nan_to_num(values, nan=0.0), integer, rng)
            top = float(y.max())
            if name in self.space_.edges:
                lo, _ = S.eval_intervals(self.space_, name, integer)
                top = max(top, float(lo[-1]))
            fit_y = y[has_prev] if name == "dt" and has_prev.any() else y
            self.edges_[name] = bin_edges(fit_y, hp["bin_rule"], hp["max_bins"], top)
            self.integer_[name] = integer
            codes[name] = own_codes(self.edges_[name], y)
            self.quantiles_[name] = S.bin_quantiles(self.edges_[name], codes[name], y)
        for name in S.present_categorical(frame):
            self.vocabs_[name] = S.Vocab.fit(frame[name], hp["top_k"])
            codes[name] = self.vocabs_[name].codes(frame[name])
        ts = frame["ts"].to_numpy(dtype=float)
        hour = S.hour_of(ts)
        hour_prev = S.hour_of(ts - np.nan_to_num(S.numeric(frame, "dt")))
        alpha = float(hp["alpha"])
        # bytes: all rows; pairs where the previous flow exists
        b = codes["bytes"]
        n_b = len(self.edges_["bytes"]) - 1
        prev_safe = np.where(has_prev, prev, 0)
        self.tables_["bytes_cond"], self.tables_["bytes_first"] = naive_bayes_tables(
            b, hour, b[prev_safe], has_prev, n_b, alpha
        )
        # dt: rows whose dt is a real gap (a previous flow exists); pairs where the previous
        # flow's dt is real too
        dt = codes["dt"]
        n_dt = len(self.edges_["dt"]) - 1
        rows = np.flatnonzero(has_prev) if has_prev.any() else np.arange(len(frame))
        paired = has_prev[prev_safe[rows]] & has_prev[rows]
        self.tables_["dt_cond"], self.tables_["dt_first"] = naive_bayes_tables(
            dt[rows], hour_prev[rows], dt[prev_safe[rows]], paired, n_dt, alpha, calibrate=False
        )
        self.others_ = [n for n in codes if n not in ("bytes", "dt")]
        for name in self.others_:
            size = self.vocabs_[name].size if name in self.vocabs_ else len(self.edges_[name]) - 1
            self.tables_[f"cpt_{name}"] = conditional_table(codes[name], b, hour, size, n_b, alpha)
        self.peers_ = S.PeerTable.fit(frame, hp["top_k"])
        log.info(
            "bayesnet: fitted on %d flows in %.1f s; bins %s",
            len(frame),
            time.perf_counter() - t0,
            ", ".join(f"{k}={len(v) - 1}" for k, v in self.edges_.items()),
        )
        return self

    # -- scoring --------------------------------------------------------------------------
    def _to_eval(self, name: str, log_table: np.ndarray) -> np.ndarray:
        """Probabilities over own codes (last axis) -> over evaluation codes."""
        probs = np.exp(log_table)
        if name in self.edges_:
            lo, hi = S.eval_intervals(self.space_, name, self.integer_[name])
            return probs @ self._overlap(name, lo, hi)
        alpha = self.hyperparameters["alpha"]
        return probs @ self.vocabs_[name].eval_matrix(self.space_.vocab[name], alpha)

    def _overlap(self, name: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Share of each own bin of ``name`` in each evaluation interval (n_own, n_eval)."""
        q = self.quantiles_.get(name)
        if q is None:  # a model saved before within-bin quantiles: uniform bins
            return S.overlap_matrix(self.edges_[name], lo, hi)
        return S.quantile_overlap(q, lo, hi)

    def _in_bins(self, name: str, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Latent values of own bins ``codes`` of ``name`` (within-bin CDF)."""
        q = self.quantiles_.get(name)
        if q is None:
            return S.uniform_in_bins(self.edges_[name], codes, rng)
        return S.draw_in_bins(q, codes, rng)

    def _prev_codes(self, frame: Any, name: str, prev: np.ndarray) -> np.ndarray:
        values = S.numeric(frame, name)[np.where(prev >= 0, prev, 0)]
        y = S.to_latent(np.nan_to_num(values, nan=0.0), self.integer_[name], None)
        return own_codes(self.edges_[name], y)

    def log_prob(self, flows: Any) -> np.ndarray:
        """Log-probability (nats) of each flow in the evaluation space, (n_flows,)."""
        self._check_fitted()
        frame = flows_frame(flows)
        space = self.space_
        S.check_columns(frame, space.fields + ["ts"], "bayesnet.log_prob")
        for name in space.fields:
            if name not in self.edges_ and name not in self.vocabs_:
                raise ValueError(
                    f"bayesnet: model has no distribution of {name!r} (evaluation space has)"
                )
        n = len(frame)
        codes = space.encode(frame)
        prev = S.previous_row(frame)
        has_prev = prev >= 0
        ts = frame["ts"].to_numpy(dtype=float)
        hour = S.hour_of(ts)
        hour_prev = S.hour_of(ts - np.nan_to_num(S.numeric(frame, "dt")))
        total = np.zeros(n)
        # dt
        e_dt = codes["dt"]
        cond = self._to_eval("dt", self.tables_["dt_cond"])
        first = self._to_eval("dt", self.tables_["dt_first"])
        dtp = self._prev_codes(frame, "dt", prev)
        p_dt = np.where(has_prev, cond[dtp, hour_prev, e_dt], first[hour_prev, e_dt])
        total += np.log(np.maximum(p_dt, S.TINY))
        # bytes: own-bin probabilities, their mass in the flow's evaluation bin, the posterior
        bp = self._prev_codes(frame, "bytes", prev)
        p_own = np.where(
            has_prev[:, None],
            np.exp(self.tables_["bytes_cond"][bp, hour]),
            np.exp(self.tables_["bytes_first"][hour]),
        )
        lo, hi = S.eval_intervals(space, "bytes", self.integer_["bytes"])
        overlap = self._overlap("bytes", lo, hi)
        joint = p_own * overlap[:, codes["bytes"]].T  # (n, n_b)
        p_bytes = joint.sum(axis=1)
        total += np.log(np.maximum(p_bytes, S.TINY))
        post = joint / np.maximum(p_bytes, S.TINY)[:, None]
        for name in space.fields:
            if name in ("dt", "bytes"):
                continue
            table = self._to_eval(name, self.tables_[f"cpt_{name}"])  # (n_b, 24, n_eval)
            values = table[:, hour, codes[name]].T  # (n, n_b)
            total += np.log(np.maximum((post * values).sum(axis=1), S.TINY))
        return total

    # -- sampling -------------------------------------------------------------------------
    def sample(
        self,
        n_users: int,
        start: datetime | float,
        days: float,
        *,
        seed: int,
        role: str | None = None,
    ) -> pa.Table:
        """Synthetic flows of ``n_users`` hosts over ``days`` days, all hosts stepped together."""
        self._check_sample_args(role)
        t_start = time.perf_counter()
        rng = np.random.default_rng(seed)
        t0 = start_seconds(start)
        end = t0 + days * SECONDS_PER_DAY
        dt_cond, dt_first = _cdf(self.tables_["dt_cond"]), _cdf(self.tables_["dt_first"])
        b_cond, b_first = _cdf(self.tables_["bytes_cond"]), _cdf(self.tables_["bytes_first"])
        now = np.full(n_users, t0)
        dt_prev = np.full(n_users, -1, dtype=np.int64)
        b_prev = np.full(n_users, -1, dtype=np.int64)
        active = np.arange(n_users)
        out_host, out_ts, out_b = [], [], []
        n_flows = 0
        while active.size:
            hp_ = S.hour_of(now[active])
            dp = dt_prev[active]
            rows = np.where((dp >= 0)[:, None], dt_cond[np.maximum(dp, 0), hp_], dt_first[hp_])
            dt_code = S.draw_from_cdf(rows, rng)
            gap = S.from_latent(self._in_bins("dt", dt_code, rng), self.integer_["dt"])
            when = now[active] + gap
            alive = when < end
            active, dt_code, when = active[alive], dt_code[alive], when[alive]
            if not active.size:
                break
            hour = S.hour_of(when)
            bp = b_prev[active]
            rows = np.where((bp >= 0)[:, None], b_cond[np.maximum(bp, 0), hour], b_first[hour])
            b_code = S.draw_from_cdf(rows, rng)
            out_host.append(active)
            out_ts.append(when)
            out_b.append(b_code)
            now[active], dt_prev[active], b_prev[active] = when, dt_code, b_code
            n_flows += active.size
            if n_flows > S.MAX_SAMPLE_FLOWS:
                raise ValueError(
                    f"sample exceeds {S.MAX_SAMPLE_FLOWS} flows: sample fewer hosts or days"
                )
        host = np.concatenate(out_host) if out_host else np.zeros(0, dtype=np.int64)
        ts = np.concatenate(out_ts) if out_ts else np.zeros(0)
        b = np.concatenate(out_b) if out_b else np.zeros(0, dtype=np.int64)
        hour = S.hour_of(ts)
        fields: dict[str, np.ndarray] = {
            "bytes": S.from_latent(self._in_bins("bytes", b, rng), self.integer_["bytes"])
        }
        for name in self.others_:
            code = S.draw_codes(np.exp(self.tables_[f"cpt_{name}"][b, hour]), rng)
            if name in self.edges_:
                latent = self._in_bins(name, code, rng)
                fields[name] = S.from_latent(latent, self.integer_[name])
            else:
                fields[name] = self.vocabs_[name].decode(code, rng)
        kinds = fields.pop("peer_kind", np.full(len(ts), "", dtype=object))
        peer = self.peers_.draw(kinds, rng)
        frame = S.sample_frame(synthetic_user_names(n_users, role), host, ts, fields, peer)
        table = to_sample_table(frame)
        log.info(
            "bayesnet: sampled %d flows of %d hosts in %.2f s",
            len(ts),
            n_users,
            time.perf_counter() - t_start,
        )
        return table

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self._check_fitted()
        arrays = {f"edges__{k}": v for k, v in self.edges_.items()}
        arrays.update({f"table__{k}": v for k, v in self.tables_.items()})
        arrays.update({f"quant__{k}": v for k, v in self.quantiles_.items()})
        state = {
            "integer": self.integer_,
            "others": self.others_,
            "vocabs": {name: v.to_state() for name, v in self.vocabs_.items()},
            "peers": self.peers_.to_state(),
        }
        write_model_files(path, self.kind, self.hyperparameters, state, arrays, self.space_)

    @classmethod
    def load(cls, path: str | Path) -> BayesNetModel:
        hp, state, arrays, space = read_model_files(path, cls.kind)
        model = cls(**hp)
        model.space_ = space
        model.integer_ = {k: bool(v) for k, v in state["integer"].items()}
        model.others_ = list(state["others"])
        model.vocabs_ = {name: S.Vocab.from_state(v) for name, v in state["vocabs"].items()}
        model.peers_ = S.PeerTable.from_state(state["peers"])
        model.edges_ = {
            k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("edges__")
        }
        model.tables_ = {
            k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("table__")
        }
        model.quantiles_ = {
            k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("quant__")
        }
        return model


__all__ = [
    "BayesNetModel",
    "bin_edges",
    "conditional_table",
    "naive_bayes_tables",
    "own_codes",
    "stationary_hour_factor",
]

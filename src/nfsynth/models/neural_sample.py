"""Fast step-by-step sampling of a fitted ``FlowNet`` in numpy (hosts on the batch axis).

Sampling is sequential (one step per flow, one head per field within a step) with small
batches (24-256 hosts), so its cost is per-call overhead, not arithmetic: a torch op costs
~5-10 us on CPU, a numpy call ~1 us. :class:`StepSampler` therefore copies the network's
weights once into float32 numpy arrays (the per-field head matrices pre-transposed, the
unseen-token masks and the radial-basis constants precomputed) and runs the same maths as
``FlowNet.state`` / ``FlowNet.field_embedding`` / ``FlowNet.head`` step by step (the one
torch call left is the GELU, on the numpy arrays' memory, where torch's vectorised erf beats
scipy's):

- history: a (B, K, d) buffer of the last K flow embeddings, shifted once per step, one
  matmul with ``hist_proj``; context: raw (B, C + 1, 4) window sums, shifted only for the
  hosts whose flow entered a new 5-minute window;
- fields: categorical tokens by inverse CDF (one uniform against the cumulative softmax:
  1.5x faster than a Gumbel-max draw over 60-70 tokens, which needs a log-log per logit),
  mixture components by Gumbel-max (faster over 6 components), logistic values by inverse
  CDF, all uniforms of a step drawn at once;
- continuous draws: through the model's value map (a quantile map of the latent, from the
  calibration) where it has one;
- ``dt``: a warped gap (``neural_vocab.TimeWarp``) mapped back to seconds, drawn with a
  uniform from the gaps' copula (``neural_copula``) where the model has one, so consecutive
  gaps keep the dependence the network left unlearnt, and its idle part on the host's
  modulated clock (``neural_activity``) where the model has an activity modulation.

One batch row is one sequence: a host's whole period, or (``NeuralFlowModel`` cuts busy
hosts' periods into chunks of equal expected flow counts, each with a discarded burn-in) a
piece of it; a row runs until its next flow falls after its end, and finished rows leave
the batch, so the step count is the longest row's flow count, not the busiest host's.
Deterministic given the ``numpy.random.Generator``. Used on every device (a GPU does not
speed up a sequence of tiny steps; the weights are copied to the host once).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch.nn import functional as F

from nfsynth.models.neural_activity import ActivityClock
from nfsynth.models.neural_copula import gap_copula_start, gap_copula_step, mixture_quantile
from nfsynth.models.neural_net import LOG_SCALE_RANGE, FlowNet, torch_threads
from nfsynth.models.neural_vocab import (
    BPP_RANGE,
    CATEGORICAL,
    CONTEXT_FEATURES,
    N_RBF,
    RATIO_BASE,
    CategoricalVocab,
    ContinuousSpec,
    TimeWarp,
    time_features,
)


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU of a float32 array: ``torch.nn.functional.gelu`` on the same memory
    (zero-copy), 2-9x faster than ``scipy.special.erf`` on (24-300, 64-128) arrays, which
    took a third of the sampling time."""
    return F.gelu(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


#: distance of the value maps' added end knots (``far_knots``), in latent units
FAR = 1e3
#: A gap is drawn below the longest training gap's latent plus this (log of the host's mean
#: gaps): free-running UGR'16 hosts fell silent for up to 1.75 h, where no training host
#: paused for more than 17 minutes, and 8.5% of their time lay in such gaps
#: (docs/neural.md section 18).
DT_TAIL_MARGIN = 0.0

#: Gaps shorter than this share of a host's mean gap are left as sampled by the rate
#: calibration (``scale_gaps``).
SCALE_GAPS_FROM = 0.1


def scale_gaps(gaps: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    """A host's gaps in units of its mean gap, (B,), after the rate calibration's ``factor``
    (B,) or scalar: the part of each gap above ``SCALE_GAPS_FROM`` is scaled, the rest kept.

    The calibration sets the factor so that a host holds its flows per day. Scaling whole
    gaps moved the short ones too: with factors of 0.5-1.3 per host the gaps within a burst
    shrank or grew with the idle time between bursts. Nearly all of a host's time lies in its
    longer gaps, so scaling only them changes its flow count about as much and keeps its
    bursts (docs/neural.md section 11). Continuous and increasing in the gap, so no value is
    skipped or piled up."""
    c = SCALE_GAPS_FROM
    return np.where(gaps > c, c + (gaps - c) * factor, gaps)


def logistic_cdf(x: float, mu: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """CDF at ``x`` of the logistic components with locations ``mu`` and log scales
    ``log_s`` (B,): the sampler truncates a component by scaling its uniform draw by it."""
    return 0.5 + 0.5 * np.tanh(0.5 * (x - mu) / np.exp(log_s))


def draw_categorical(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One index per row of ``logits`` (B, V) from its softmax, by inverse CDF with the
    uniforms ``u`` (B,) in (0, 1): the first index whose cumulative probability reaches
    ``u``. A logit of -1e9 (a masked token) has probability 0 and is never drawn."""
    c = np.exp(logits - logits.max(axis=1, keepdims=True)).cumsum(axis=1)
    below = (c < (u * c[:, -1])[:, None]).sum(axis=1)
    return np.minimum(below, logits.shape[1] - 1)


def far_knots(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The knots ``src`` -> ``dst`` (K,) with one more at either end, ``FAR`` beyond the end
    knots with slope 1, so that ``np.interp`` alone gives ``map_latent`` for latents within
    ``FAR`` of them (every latent: they are log values, within +-50)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    return np.r_[src[0] - FAR, src, src[-1] + FAR], np.r_[dst[0] - FAR, dst, dst[-1] + FAR]


def map_latent(y: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Monotone map of latent values ``y`` (B,) through the knots ``src`` -> ``dst``
    (increasing, same length): piecewise linear between the knots, shifted by the end
    knots' difference beyond them (slope 1, so no tail is cut or stretched). The value
    calibration's quantile map (``NeuralFlowModel._calibrate``); the sampler keeps the
    ``far_knots`` of each map and calls ``np.interp`` (one call instead of three)."""
    return np.interp(y, *far_knots(src, dst))


class StepSampler:
    """Numpy twin of a ``FlowNet`` for sampling (see module docstring)."""

    def __init__(
        self,
        net: FlowNet,
        fields: list[str],
        vocabs: dict[str, CategoricalVocab],
        specs: dict[str, ContinuousSpec],
        warp: TimeWarp | None,
        window_seconds: float,
        dt_factor: float | np.ndarray = 1.0,
        token_offsets: dict[str, np.ndarray] | None = None,
        weekly: bool = True,
        proto_support: dict[str, np.ndarray] | None = None,
        value_maps: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        gap_copula: np.ndarray | None = None,
        value_copulas: dict[str, np.ndarray] | None = None,
        gap_atoms: np.ndarray | None = None,
    ) -> None:
        self.fields, self.vocabs, self.specs, self.warp = fields, vocabs, specs, warp
        # whole-second gaps the gap head draws exactly (``neural_vocab.gap_atoms``), (A,)
        self.atoms = np.zeros(0) if gap_atoms is None else np.asarray(gap_atoms, np.float64)
        # the gaps' residual dependence (``neural_copula``): (2, p) AR coefficients and the
        # lag correlations they reproduce; None: each gap's uniform drawn independently
        cop = None if gap_copula is None else np.asarray(gap_copula, dtype=np.float64)
        self.gap_copula = cop if cop is not None and cop.shape[1] > 0 else None
        # the same per continuous field but the gap (``value_copula``): its value drawn by
        # the mixture's inverse CDF at the copula's uniform
        self.value_copulas = {
            f: np.asarray(c, dtype=np.float64)
            for f, c in (value_copulas or {}).items()
            if f != "dt" and np.asarray(c).shape[1] > 0
        }
        # per continuous field, quantile-map knots (src, dst) applied to the drawn latent
        self.value_maps = {
            f: (np.asarray(a, np.float64), np.asarray(b, np.float64))
            for f, (a, b) in (value_maps or {}).items()
        }
        self._interp_knots = {f: far_knots(a, b) for f, (a, b) in self.value_maps.items()}
        #: when set, every kept row also carries ``~<field>``: the latent of each continuous
        #: field as drawn (after the value map, if any; ``dt``: before the rate scale; NaN
        #: for a ratio field without packets), from which the calibration makes its maps
        self.record_latents = False
        self.weekly = weekly  # day of week as an input (``neural_vocab.time_features``)
        self.window_seconds = float(window_seconds)
        # gap scale: one factor, or one per training-host id (the last: unknown hosts)
        self.dt_factor = np.atleast_1d(np.asarray(dt_factor, dtype=np.float64))
        self.K, self.C, self.d = net.K, net.C, net.d
        self.hist_in = _np(net.hist_in.weight).T.copy()
        self.hist_w, self.hist_b = _np(net.hist_proj.weight).T.copy(), _np(net.hist_proj.bias)
        # the context scale folded into the projection: (C + 1) * 4 rows, feature fastest
        scale = np.tile(_np(net.ctx_scale), net.C + 1)
        self.ctx_w = (_np(net.ctx_proj.weight).T / scale[:, None]).astype(np.float32)
        self.ctx_b = _np(net.ctx_proj.bias)
        self.aux_w, self.aux_b = _np(net.aux_proj.weight).T.copy(), _np(net.aux_proj.bias)
        self.bias0 = self.hist_b + self.ctx_b + self.aux_b
        self.role_emb = _np(net.role_emb.weight)
        self.host_emb = _np(net.host_emb.weight)
        ln = net.state_norm
        self.ln_w, self.ln_b, self.ln_eps = _np(ln.weight), _np(ln.bias), float(ln.eps)
        m1, m2 = net.state_mlp[0], net.state_mlp[2]
        self.m1_w, self.m1_b = _np(m1.weight).T.copy(), _np(m1.bias)
        self.m2_w, self.m2_b = _np(m2.weight).T.copy(), _np(m2.bias)
        self.rbf_centers = _np(net.rbf_centers)
        self.rbf_width = 1.0 / (N_RBF - 1)
        self.heads = []
        # gate x host log frequencies (+ calibration offsets), (hosts + 1, V)
        self.priors: dict[str, np.ndarray] = {}
        # per categorical field in ``FlowNet.copy_fields``: the weights (d, K) and bias (K,) of
        # its gates on the host's history tokens (``neural_net.copy_logits``)
        self.copy: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for j, f in enumerate(fields):
            w1, b1 = _np(net.head_w1[j]), _np(net.head_b1[j])
            wo, bo = _np(net.head_out[j].weight).T.copy(), _np(net.head_out[j].bias)
            emb = net.embed[f]
            if f in CATEGORICAL:
                V = vocabs[f].size
                if f in net.copy_fields:
                    self.copy[f] = (wo[:, V:].copy(), bo[V:].copy())
                    wo, bo = wo[:, :V].copy(), bo[:V].copy()
                seen = vocabs[f].seen or [True] * vocabs[f].size
                bo = bo + np.where(np.asarray(seen, bool), 0.0, -1e9).astype(np.float32)
                self.priors[f] = float(_np(net.prior_gate)[j]) * _np(getattr(net, f"prior_{f}"))
                if token_offsets and f in token_offsets:  # the model's token calibration, (V,)
                    self.priors[f] = self.priors[f] + token_offsets[f].astype(np.float32)[None]
                self.heads.append((f, w1, b1, wo, bo, _np(emb.weight), None))
            else:
                self.heads.append((f, w1, b1, wo, bo, _np(emb.weight).T.copy(), _np(emb.bias)))
        self.M = net.M
        # per port field, (proto tokens, port tokens): 0 where the pair occurs in training,
        # -1e9 where it never does (ICMP has port 0 only), added to the port head's output
        self.proto_mask = {
            f: np.where(np.asarray(ok, bool), 0.0, -1e9).astype(np.float32)
            for f, ok in (proto_support or {}).items()
            if "proto" in fields and fields.index("proto") < fields.index(f)
        }
        out_tokens = vocabs["direction"].tokens if "direction" in vocabs else []
        self.is_out = np.asarray([t == "out" for t in out_tokens], dtype=np.float64)

    # -- pieces ------------------------------------------------------------------------
    def _rbf(self, v: np.ndarray) -> np.ndarray:
        feats = np.exp(-np.square((v[:, None] - self.rbf_centers) / self.rbf_width))
        return np.concatenate([feats, v[:, None]], axis=1)

    def head_output(
        self,
        j: int,
        u: np.ndarray,
        hid: np.ndarray,
        prior: np.ndarray | None = None,
        copy_from: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """``FlowNet.head``: field ``j``'s output (B, out_j) from its input ``u`` (B, d) for
        training-host ids ``hid`` (B,) (categorical heads add the host prior, ``prior`` (B,
        V) if given, else gathered from ``hid``; tokens never seen in training are
        masked; with copy gates, the gates on ``copy_from``'s history tokens (B, K) int
        where each history flow is present (B, K) float)."""
        f, w1, b1, wo, bo, _, eb = self.heads[j]
        h = gelu(u @ w1 + b1)
        o = h @ wo + bo
        if eb is not None:
            return o
        if f in self.copy and copy_from is not None:
            tokens, present = copy_from
            cw, cb = self.copy[f]
            gates = (h @ cw + cb) * present
            B, V = o.shape
            flat = (np.arange(B)[:, None] * V + tokens).ravel()
            o = o + np.bincount(flat, gates.ravel(), minlength=B * V).reshape(B, V)
        return o + (self.priors[f][hid] if prior is None else prior)

    def _state(self, hist, log_ctx, aux, role, hid) -> np.ndarray:
        B = hist.shape[0]
        s = (
            hist.reshape(B, -1) @ self.hist_w
            + log_ctx.reshape(B, -1) @ self.ctx_w
            + aux @ self.aux_w
            + self.bias0
            + self.role_emb[role]
            + self.host_emb[hid]
        )
        mean = s.mean(1, keepdims=True)
        var = np.square(s - mean).mean(1, keepdims=True)
        s = (s - mean) / np.sqrt(var + self.ln_eps) * self.ln_w + self.ln_b
        return s + gelu(s @ self.m1_w + self.m1_b) @ self.m2_w + self.m2_b

    # -- the loop ----------------------------------------------------------------------
    def generate(self, *args: Any, **kwargs: Any) -> tuple[pd.DataFrame, int]:
        """See ``_generate``; BLAS and torch (the GELU) held to one thread: on these tiny
        arrays extra threads only spin (a sampling job used 1.3x its wall time in CPU while
        the job beside it waited)."""
        with torch_threads(1, torch.device("cpu")), threadpool_limits(1, "blas"):
            return self._generate(*args, **kwargs)

    def _generate(
        self,
        hosts: np.ndarray,
        roles: np.ndarray,
        rates: np.ndarray,
        hids: np.ndarray,
        t_start: np.ndarray,
        t_keep: np.ndarray,
        t_end: np.ndarray,
        rng: np.random.Generator,
        max_steps: int,
        ctx0: np.ndarray | None = None,
        clock: ActivityClock | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """Run one sequence per row: host id, role id, activity (log10 flows/day), the
        training host whose identity embedding it uses, start
        time (s, the sequence begins there with an empty history), keep-from time (flows
        before it are burn-in, dropped) and end time (the row stops at its first flow at or
        after it). Returns a frame with one column per field (token ids / raw values), ``ts``
        and ``host``, and the number of rows still unfinished after ``max_steps`` steps.
        ``ctx0``: the complete windows before each row's start, raw sums (n, C, 4), oldest
        first (None: empty, as for a host's first flow). ``clock``: the hosts' modulated
        clock (``neural_activity``; indexed by ``hosts``), on which the idle part of every
        gap runs (None: the warp alone)."""
        K, C, F = self.K, self.C, len(self.fields)
        n = len(roles)
        host = np.asarray(hosts, dtype=np.int64)
        role = np.asarray(roles, dtype=np.int64)
        hid = np.asarray(hids, dtype=np.int64)
        rate = np.asarray(rates, dtype=np.float32)
        per_day = np.power(10.0, rate.astype(np.float64))
        fac = self.dt_factor[np.minimum(hid, self.dt_factor.size - 1)]
        keep_from = np.asarray(t_keep, dtype=float)
        end = np.asarray(t_end, dtype=float)
        hist = np.zeros((n, K, self.hist_in.shape[1]), np.float32)
        ctx = np.zeros((n, C + 1, CONTEXT_FEATURES))
        log_ctx = np.zeros((n, C + 1, CONTEXT_FEATURES), np.float32)
        if ctx0 is not None:
            ctx[:, :C] = ctx0
            log_ctx[:, :C] = np.log1p(ctx0)
        ts = np.asarray(t_start, dtype=float).copy()
        win = np.floor(ts / self.window_seconds)
        steps = np.zeros(n, np.float32)
        out: list[dict[str, np.ndarray]] = []
        idx_c = np.arange(C)
        warp = self.warp
        tf_now = time_features(ts, self.weekly)  # of each row's current time, (n, 4)
        # the host priors of the categorical heads, gathered once per batch composition
        priors = {f: p[hid] for f, p in self.priors.items()}
        # each row's last K tokens per copying field, oldest first (``head_output``)
        tok_hist = {f: np.zeros((n, K), np.int64) for f in self.copy}
        lag_of = np.arange(K - 1, -1, -1, dtype=np.float32)  # flows back from the newest
        cop = self.gap_copula
        cop_state = None
        if cop is not None:
            cop_state = gap_copula_start(cop, rng.standard_normal((n, cop.shape[1])))
        value_state = {
            f: gap_copula_start(c, rng.standard_normal((n, c.shape[1])))
            for f, c in self.value_copulas.items()
        }
        for _ in range(max_steps):
            B = host.size
            if B == 0:
                break
            aux = np.concatenate(
                [
                    tf_now,
                    (steps == 0).astype(np.float32)[:, None],
                    (np.minimum(steps, K) / K)[:, None],
                    rate[:, None],
                ],
                axis=1,
            )
            s = self._state(hist, log_ctx, aux, role, hid)
            acc = s.copy()
            # which of each row's K history flows exist (B, K), where a field copies
            present = (steps[:, None] > lag_of[None, :]).astype(np.float32) if tok_hist else None
            # per field: a logistic value, a token, a gap atom (``dt`` with atoms; else unused)
            u = rng.random((B, 3 * F)).clip(1e-6, 1 - 1e-6)
            gumbel = -np.log(-np.log(rng.random((B, F, max(self.M, 1))).clip(1e-12, 1.0)))
            values: dict[str, np.ndarray] = {}
            latents: dict[str, np.ndarray] = {}
            # the values as the network sees them: a value map corrects what is written,
            # not the history and context the network conditions on (``dt`` excepted: the
            # mapped gap is the time that passes)
            net: dict[str, np.ndarray] = {}
            new_ts, tfeat = ts, None
            for j, (f, _, _, _, _, ew, eb) in enumerate(self.heads):
                copy_from = (tok_hist[f], present) if f in tok_hist else None
                o = self.head_output(j, acc, hid, priors.get(f), copy_from)
                if eb is None:  # categorical: a token from the softmax
                    if f in self.proto_mask:
                        o = o + self.proto_mask[f][values["proto"]]
                    x = draw_categorical(o, u[:, 3 * j + 1])
                    values[f] = net[f] = x
                    acc += ew[x]
                    continue
                spec = self.specs[f]
                M = self.M
                comp = np.argmax(o[:, :M] + gumbel[:, j, :M], axis=1)
                rows = np.arange(B)
                mu = o[rows, M + comp]
                log_s = np.clip(o[rows, 2 * M + comp], *LOG_SCALE_RANGE)
                uj = u[:, 3 * j]
                if f in value_state:  # the uniform from the field's copula, the value by
                    # the whole mixture's inverse CDF (bytes per packet truncated below)
                    uj, value_state[f] = gap_copula_step(value_state[f], self.value_copulas[f], uj)
                    lo = max(spec.lat_lo, math.log(BPP_RANGE[0])) if f in RATIO_BASE else None
                    y = mixture_quantile(
                        o[:, :M],
                        o[:, M : 2 * M],
                        np.clip(o[:, 2 * M : 3 * M], *LOG_SCALE_RANGE),
                        uj,
                        lo=lo,
                    )
                elif f in RATIO_BASE:  # bytes per packet: the component truncated below the
                    # training's 0.1% quantile (and 20 bytes), not piled up at a clip
                    lo = max(spec.lat_lo, math.log(BPP_RANGE[0]))
                    f_lo = logistic_cdf(lo, mu, log_s)
                    uj = np.clip(f_lo + uj * (1.0 - f_lo), 1e-12, 1.0 - 1e-12)
                elif f == "dt":  # gaps: the component truncated above the longest training
                    # gap (in the host's mean gaps; ``DT_TAIL_MARGIN``), not clipped
                    if cop_state is not None:  # the uniform, serially dependent
                        uj, cop_state = gap_copula_step(cop_state, cop, uj)
                    hi = spec.lat_hi + DT_TAIL_MARGIN
                    f_hi = logistic_cdf(hi, mu, log_s)
                    uj = np.clip(uj * f_hi, 1e-12, 1.0 - 1e-12)
                if f not in value_state:
                    y = mu + np.exp(log_s) * (np.log(uj) - np.log1p(-uj))
                mapped = f in self.value_maps
                y_net = np.minimum(y.astype(np.float64), spec.lat_hi + 1.0)
                y = (
                    np.minimum(np.interp(y, *self._interp_knots[f]), spec.lat_hi + 1.0)
                    if mapped
                    else y_net
                )
                r = spec.resolution
                lat = y
                if f == "dt" and warp is not None:
                    e = np.exp(y)
                    gap = scale_gaps(e, fac) * 86400.0 / per_day
                    if clock is None:
                        t1 = warp.inverse(warp.forward(ts, hid) + gap, hid)
                    else:  # the burst part on the warp, the idle part on the host's clock
                        burst = np.minimum(e, SCALE_GAPS_FROM) * 86400.0 / per_day
                        t_mid = warp.inverse(warp.forward(ts, hid) + burst, hid)
                        t1 = clock.advance(t_mid, gap - burst, host)
                    x = x_net = np.maximum(np.round((t1 - ts) / r) * r, 0.0)
                elif f in RATIO_BASE:
                    b = RATIO_BASE[f]
                    x, y = _ratio_value(y, values[b], r)
                    lat = np.where(values[b] > 0, y, np.nan)
                    x_net = x
                    if mapped or b in self.value_maps:
                        x_net = _ratio_value(y_net, net[b], r)[0]
                else:
                    x = _count_value(y, spec)
                    if f == "dt":  # (no warp: a capture too short to fit one)
                        x = scale_gaps(x * per_day / 86400.0, fac) * 86400.0 / per_day
                    x_net = _count_value(y_net, spec) if mapped and f != "dt" else x
                if f == "dt" and self.atoms.size:  # a gap on an atom: that many seconds
                    # exactly, on no clock (a period is the same at any hour and activity)
                    atom = draw_categorical(o[:, 3 * M :], u[:, 3 * j + 2])
                    on = atom > 0
                    x = x_net = np.where(on, self.atoms[np.maximum(atom - 1, 0)], x)
                    lat = np.where(on, np.nan, lat)
                if f == "dt":
                    new_ts = ts + x
                    tfeat = time_features(new_ts, self.weekly)
                values[f], net[f] = x, x_net
                if self.record_latents:
                    latents[f"~{f}"] = lat
                feats = self._rbf((np.log1p(x_net) / spec.scale).astype(np.float32))
                if tfeat is not None and f == "dt":
                    feats = np.concatenate([feats, tfeat], axis=1)
                acc += feats @ ew + eb
            inside = new_ts < end
            kept = inside & (new_ts >= keep_from)
            rec = {f: v[kept] for f, v in (values | latents).items()}
            rec["ts"], rec["host"] = new_ts[kept], host[kept]
            out.append(rec)
            # host state: history, context windows
            hist[:, :-1] = hist[:, 1:].copy()
            hist[:, -1] = (acc - s) @ self.hist_in
            for f, toks in tok_hist.items():
                toks[:, :-1] = toks[:, 1:].copy()
                toks[:, -1] = net[f]
            new_win = np.floor(new_ts / self.window_seconds)
            moved = np.flatnonzero(new_win > win)
            if moved.size:
                shift = (new_win[moved] - win[moved]).astype(np.int64)
                idx = idx_c[None, :] + shift[:, None]
                sub = ctx[moved]
                complete = np.take_along_axis(sub, np.minimum(idx, C)[..., None], axis=1)
                complete *= (idx <= C)[..., None]
                ctx[moved, :C] = complete
                ctx[moved, C] = 0.0
                log_ctx[moved, :C] = np.log1p(complete)
            ctx[:, C, 0] += 1.0
            ctx[:, C, 1] += net["bytes"]
            ctx[:, C, 2] += net["packets"]
            ctx[:, C, 3] += self.is_out[values["direction"]]
            log_ctx[:, C] = np.log1p(ctx[:, C])
            ts, win = new_ts, np.maximum(win, new_win)
            tf_now = tfeat if tfeat is not None else time_features(ts, self.weekly)
            steps += 1
            if not inside.all():
                keep = np.flatnonzero(inside)
                host, role, hid = host[keep], role[keep], hid[keep]
                rate, per_day, fac = rate[keep], per_day[keep], fac[keep]
                keep_from, end = keep_from[keep], end[keep]
                hist, ctx, log_ctx = hist[keep], ctx[keep], log_ctx[keep]
                ts, win, steps, tf_now = ts[keep], win[keep], steps[keep], tf_now[keep]
                priors = {f: p[keep] for f, p in priors.items()}
                tok_hist = {f: v[keep] for f, v in tok_hist.items()}
                if cop_state is not None:
                    cop_state = cop_state[keep]
                value_state = {f: v[keep] for f, v in value_state.items()}
        return _frame(out, self.fields), int(host.size)


def _count_value(y: np.ndarray, spec: ContinuousSpec) -> np.ndarray:
    """A plain field's values (B,) on its grid from its log1p latent ``y``, at least its
    floor (``ContinuousSpec.floor``)."""
    return np.maximum(np.round(np.expm1(y) / spec.resolution), spec.floor_cell) * spec.resolution


def _ratio_value(y: np.ndarray, base: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """A ratio field's values (B,) on its grid ``r`` from its latent ``y`` (log value per
    unit of ``base``, clipped to ``BPP_RANGE``) and its base (B,) (0 where the base is 0),
    and the clipped latent."""
    y = np.clip(y, math.log(BPP_RANGE[0]), math.log(BPP_RANGE[1]))
    return np.round(np.maximum(base, 1.0) * np.exp(y) / r) * r * (base > 0), y


def _frame(records: list[dict[str, np.ndarray]], fields: list[str]) -> pd.DataFrame:
    if not records:
        columns = {f: np.zeros(0) for f in fields}
        return pd.DataFrame({**columns, "ts": np.zeros(0), "host": np.zeros(0, np.int64)})
    data = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
    frame = pd.DataFrame(data)
    for f in fields:
        if f in CATEGORICAL:
            frame[f] = frame[f].astype(np.int64)
    return frame

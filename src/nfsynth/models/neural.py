"""The neural autoregressive flow model (design §5): ``NeuralFlowModel``.

Each host's flows are generated one flow per step and, within a flow, field by field in
``neural_vocab.FIELD_ORDER`` (dt, proto, dport, sport, peer, direction, duration, packets,
bytes, rev_packets, rev_bytes). A field is conditioned on the earlier fields of its flow, the
host's last ``history`` flows, the 3-hour context of 5-minute windows, the hour and day of
week (the day of week only when training spans ``WEEKLY_MIN_DAYS`` days), the host's
role (``schema.ROLES``) and its activity (log10 flows/day). Categorical heads add the
host's own smoothed log token frequencies (``host_priors``; a training host's, or the pooled
ones for an unknown host), so a sampled host keeps its own mix of ports, peers and
directions over a whole day instead of drifting into another kind of host's tokens. See
``neural_net`` for the network and ``neural_vocab`` for tokens and continuous grids.

Likelihood in the evaluation space (``log_prob``): the sum over evaluation fields of the log
mass the model puts on the flow's bin, each field conditioned on the flow's *actual* earlier
fields (teacher forcing; the exact joint bin probability would marginalise them within their
bins). Continuous fields: mixture CDF differences over the bin's grid values. Categorical
fields: the summed softmax of the tokens mapping to the bin's code; a bucket token (a port,
protocol or peer outside the exact vocabulary) holds only values the space calls ``other``,
so all of its mass goes to ``other``. ``peer_kind`` is scored through the peer head (each
peer token has one kind).

Time: ``dt`` is modelled in operational time (``neural_vocab.TimeWarp``): the gap, warped by
the training data's hourly flow profile and divided by the host's mean gap (its activity),
so the daily rhythm and the flows per host-day are built in and the network learns the
shape of the gaps (bursts, sessions). A fixed period in seconds falls at another latent for
every host and hour, so with ``gap_atoms`` the whole-second gaps that stand out of a
sub-second log's gaps (its clock, keep-alives, beacons: ``neural_vocab.gap_atoms``) have
logits of their own beside the mixture, and the sampler draws them exactly.

After training, ``calibrate`` scales the idle part of
sampled gaps (``neural_sample.scale_gaps``) so that free-running samples of the training
hosts hold their flows per day (the mean of a log-space mixture is sensitive to its tail,
and free-running history drifts from teacher forcing), and offsets the categorical heads'
logits so that their pooled token mix is the training one, and (``calibrate_values``) maps
the sampled gaps, durations and counts onto the training ones' quantiles where that narrows
their drift (``_calibrate``). The port heads
draw only ports that occur with the drawn protocol in the training flows
(``_proto_support``; sampling only, like the calibration).

Training: NLL of the grid cells (nats/flow), AdamW with a one-cycle schedule
(``neural_optim``), gradient clipping, early stopping on ``max_val_flows`` flows of the
validation split, ``max_train_flows`` flows per epoch drawn as windows of ``seq_len``
consecutive flows of a host (each with its ``history`` previous flows);
``history_dropout`` hides a target's past, ``history_noise`` swaps history flows for random
training flows, ``self_history`` swaps the categorical tokens of history flows for the
network's own draws (``_self_history``), ``host_dropout`` scores a window as an unknown host.

Sampling (``neural_sample.StepSampler``, numpy on the CPU whatever the device): hosts, and
chunks of busy hosts' periods (``sample_chunk_flows``, each after a dropped burn-in of
``sample_burn_in`` flows), run in parallel on the batch axis until each has filled its
period; seeded with a ``numpy.random.Generator``, so the same seed gives the same rows.
With ``gap_copula``, each gap's uniform comes from a Gaussian AR(p) copula fitted after
training to the serial correlation of the training gaps' PITs (``_fit_copulas``,
``neural_copula``), so consecutive gaps keep the dependence the network left unlearnt;
with ``value_copula`` the other continuous fields get one each, their values drawn by the
mixture's inverse CDF at the copula's uniform.
With ``activity_modulation``, each synthetic host's idle time runs on a clock modulated by a
log-normal AR(1) path (at the desk or away), fitted in the calibration to the validation
hosts' 5-minute counts beyond the network's own (``_fit_activity``, ``neural_activity``);
``activity_span`` says what the path keeps of each host's expected volume: every clock
hour's (``hour``) or only the period's (``period``); with ``activity_share`` each host's
sigma is scaled by its own training counts' share of that variation (``host_shares``), so
steady hosts (servers) are spared.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from nfsynth.evalspace import EvalSpace
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
from nfsynth.models.neural_activity import (
    CELL_SECONDS,
    SPANS,
    ActivityClock,
    cell_counts,
    fit_activity_modulation,
    host_shares,
    modulation_paths,
    normalised_autocovariance,
    rescaled_sigma,
)
from nfsynth.models.neural_copula import cell_scores, fit_gap_copula, latent_correlations
from nfsynth.models.neural_net import (
    FlowNet,
    interval_log_prob,
    mixture_cdf,
    torch_threads,
    with_atoms,
    with_atoms_in_bin,
)
from nfsynth.models.neural_optim import OneCycleAdamW
from nfsynth.models.neural_sample import StepSampler
from nfsynth.models.neural_vocab import (
    CATEGORICAL,
    CONTEXT_FEATURES,
    FIELD_ORDER,
    CategoricalVocab,
    ContinuousSpec,
    Encoded,
    TimeWarp,
    atom_index,
    base_is_zero,
    build_spec,
    build_vocab,
    encode_frame,
    gap_atoms,
    grid_interval,
    host_rates,
    infer_roles,
    latent_base,
    raw_values,
    warp_maps,
    warp_rows,
    weekly_span,
    window_sums,
)
from nfsynth.models.sampling import MAX_SAMPLE_FLOWS
from nfsynth.schema import ROLES, SECONDS_PER_DAY

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "history": 8,
    "mixtures": 6,
    "epochs": 8,
    "batch_size": 32,
    "seq_len": 64,
    "lr": 0.003,
    "weight_decay": 0.0001,
    "patience": 2,
    "max_train_flows": 40000,
    "max_val_flows": 20000,
    "top_ports": 64,
    "top_peers": 64,
    "history_dropout": 0.3,
    "history_noise": 0.15,
    "self_history": 0.8,
    "history_copy": [],
    "host_rhythm": 0.0,
    "gap_copula": False,
    "gap_atoms": True,
    "value_copula": False,
    "activity_modulation": True,
    "activity_span": "period",
    "activity_share": True,
    "host_dropout": 0.1,
    "calibrate": True,
    "calibrate_values": True,
    "calibration_flows": 100000,
    "cpu_threads": 1,
    "sample_chunk_flows": 400,
    "sample_burn_in": 32,
    "device": "auto",
}
PRIOR_PSEUDO_FLOWS = 2.0  # a host's token frequencies are smoothed toward the pooled ones
TOKEN_PSEUDO_FLOWS = 1.0  # added to both counts of a token calibration ratio
TOKEN_OFFSET_RANGE = (-4.0, 4.0)  # sampling-side logit offsets of the token calibration
#: lags (5-minute windows) at which the activity fit's log and history show its curves
ACTIVITY_SHOWN = (1, 2, 3, 6, 12, 24)
#: the rate calibration's response model (``rate_step``): a host's flow count falls as a power
#: of its gap factor; the power assumed before two rounds measure it, and its clip range
RATE_ELASTICITY_FIRST = 2.0
RATE_ELASTICITY_RANGE = (0.5, 4.0)
RATE_FACTOR_RANGE = (0.1, 10.0)
#: quantile levels of the value calibration's map knots (``_calibrate``)
VALUE_MAP_LEVELS = np.linspace(0.0, 1.0, 202)[1:-1]
VALUE_DRIFT_BINS = 50  # equal-mass bins of the training values for the value drift
WINDOW_SECONDS = 300.0
CONTEXT_WINDOWS = 36
WEIGHTS = "weights.pt"


def context_scale(ctx_table: np.ndarray) -> np.ndarray:
    """Per context statistic (columns of ``ctx_table`` (rows, 4), log1p window sums), the
    99th percentile of its non-empty windows, at least 1: float32 (4,). Raw, the bytes
    column reaches 15-20 and the 148 context inputs outweighed every other input of the
    state (its layer norm then saw mostly the context)."""
    scale = np.ones(ctx_table.shape[1], np.float32)
    for j in range(ctx_table.shape[1]):
        col = ctx_table[:, j]
        col = col[col > 0]
        if col.size:
            scale[j] = max(1.0, float(np.quantile(col, 0.99)))
    return scale


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. On CUDA, cuBLAS is asked for its
    deterministic workspace (``CUBLAS_WORKSPACE_CONFIG``, unless the environment sets one)
    before any CUDA work: training runs under torch's deterministic algorithms there, and
    without it cuBLAS's matrix products may differ from run to run."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("models.neural.device is 'cuda' but torch sees no CUDA device")
    if name == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype training runs its network in on ``device``: bfloat16 on a CUDA
    device that supports it, float16 on an older one, None (float32 throughout) on the CPU.
    The likelihood itself is computed in float32 from the heads either way."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def loss_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler where training runs in float16 (``amp_dtype``), whose gradients
    would otherwise underflow: the loss is scaled up before the backward pass, the gradients
    unscaled before clipping, and a step whose gradients overflowed is skipped at a halved
    scale. None for bfloat16 (float32's exponent range) and float32."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def _shown(curve: np.ndarray) -> list[float | None]:
    """A normalised autocovariance (max_lag,) at ``ACTIVITY_SHOWN`` lags, rounded (None where
    unmeasured), for the log and ``history_``."""
    return [
        round(float(curve[k - 1]), 4) if np.isfinite(curve[k - 1]) else None
        for k in ACTIVITY_SHOWN
        if k <= curve.size
    ]


class NeuralFlowModel(FlowModel):
    """Autoregressive neural generator of per-host flow sequences (see module docstring)."""

    kind = "neural"
    conditions_on_role = True

    def __init__(self, **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"NeuralFlowModel: unknown hyperparameters {sorted(unknown)}")
        span = hyperparameters.get("activity_span", DEFAULTS["activity_span"])
        if span not in SPANS:
            raise ValueError(f"NeuralFlowModel: activity_span {span!r} is not one of {SPANS}")
        copying = set(hyperparameters.get("history_copy", ())) - CATEGORICAL
        if copying:
            raise ValueError(
                f"NeuralFlowModel: history_copy {sorted(copying)} are not categorical fields "
                f"({', '.join(sorted(CATEGORICAL))})"
            )
        super().__init__(**{**DEFAULTS, **hyperparameters})
        self.net_: FlowNet | None = None
        self.vocabs_: dict[str, CategoricalVocab] = {}
        self.specs_: dict[str, ContinuousSpec] = {}
        self.fields_: list[str] = []
        self.roles_: dict[str, str] = {}
        self.rates_: dict[str, float] = {}
        self.train_hosts_: list[tuple[str, float]] = []  # (role, log10 flows/day) per host
        self.host_ids_: dict[str, int] = {}  # training host -> its row of the host embedding
        self.window_seconds_ = WINDOW_SECONDS
        self.context_ = CONTEXT_WINDOWS
        self.history_: dict[str, Any] = {}
        self.warp_: TimeWarp | None = None
        self.weekly_ = True  # day of week an input (training spans WEEKLY_MIN_DAYS days)
        self.period_ = (0.0, SECONDS_PER_DAY)  # first and last training flow (s), for fitting
        self.dt_factor_ = 1.0
        self.host_dt_factors_: np.ndarray | None = None  # per training-host id, then unknown
        # per categorical field, sampling-side logit offsets (V,) of every host, see _calibrate
        self.token_offsets_: dict[str, np.ndarray] = {}
        # per port field, bool (proto tokens, port tokens): pairs seen in training
        self.proto_support_: dict[str, np.ndarray] = {}
        # per continuous field, quantile-map knots (src, dst) of the latent, see _calibrate
        self.value_maps_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # the gaps' residual copula (neural_copula): (2, p) AR coefficients, correlations
        self.gap_copula_: np.ndarray | None = None
        self.value_copulas_: dict[str, np.ndarray] = {}
        # whole-second gaps the gap head draws exactly (neural_vocab.gap_atoms), seconds (A,)
        self.gap_atoms_: np.ndarray = np.zeros(0)
        # the synthetic hosts' slow activity modulation (neural_activity): (sigma, phi per
        # 5-minute cell), None: none; and the validation hosts' normalised autocovariance
        # it is fitted to (during the fit only)
        self.activity_: tuple[float, float] | None = None
        # each training host's share of sigma (neural_activity.host_shares), None: 1 for all
        self.activity_shares_: np.ndarray | None = None
        self._activity_target: np.ndarray | None = None
        self._activity_network: np.ndarray | None = None  # the network's own, round 0
        self.ctx_profile_: np.ndarray | None = None  # (hosts + 1, windows per day, 4) sums
        self.sampler_: StepSampler | None = None
        self.device_ = torch.device("cpu")

    # -- fitting -----------------------------------------------------------------------
    def fit(self, users: Any, *, seed: int, space: EvalSpace | None = None) -> NeuralFlowModel:
        hp = self.hyperparameters
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.device_ = pick_device(hp["device"])
        self.space_ = self._space_for(users, space)
        train = train_flows(users)
        val = _val_flows(users)
        if len(train) == 0:
            raise ValueError("NeuralFlowModel.fit: the training split has no flows")
        meta = getattr(users, "meta", None) or {}
        self.window_seconds_ = float(meta.get("window_seconds") or WINDOW_SECONDS)
        self.context_ = int(meta.get("context") or meta.get("context_windows") or CONTEXT_WINDOWS)
        self._build_vocabulary(users, train)
        enc = self._encode(train)
        self.proto_support_ = self._proto_support(enc)
        enc_val = self._encode(val) if val is not None and len(val) else None
        self.net_ = self._new_net()
        self._init_heads(enc)
        self.ctx_profile_ = self.context_profile(enc)
        with torch_threads(int(hp["cpu_threads"]), self.device_):
            self.history_ = self._train(enc, enc_val, rng, seed)
            self.gap_copula_, self.value_copulas_ = None, {}
            self._fit_copulas(enc)
        self.sampler_, self.dt_factor_, self.host_dt_factors_ = None, 1.0, None
        self.token_offsets_, self.value_maps_ = {}, {}
        self.activity_, self._activity_target, self.activity_shares_ = None, None, None
        if hp["activity_modulation"] and self.warp_ is not None and val is not None:
            self._activity_target = self._counts_autocovariance(val, "user")
            if hp["activity_share"]:
                self._fit_shares(train)
        if hp["calibrate"]:
            self._calibrate(enc, seed)
        self._activity_target = self._activity_network = None
        self.history_["dt_factor"] = round(self.dt_factor_, 4)
        self.history_["seconds"] = round(time.perf_counter() - t0, 2)
        self.history_["train_flows"] = int(enc.n)
        log.info(
            "neural: fitted on %d flows of %d hosts in %.1f s (best val %.4f nats/flow, %d epochs)",
            enc.n,
            int(enc.host.max()) + 1,
            self.history_["seconds"],
            self.history_.get("best_val", float("nan")),
            self.history_["epochs"],
        )
        return self

    def _build_vocabulary(self, users: Any, train: pd.DataFrame) -> None:
        hp, space = self.hyperparameters, self.space_
        assert space is not None
        from nfsynth.models.neural_vocab import normalise_frame

        train = normalise_frame(train)
        with_rev = "rev_packets" in space.edges and "rev_bytes" in space.edges
        self.fields_ = [f for f in FIELD_ORDER if with_rev or not f.startswith("rev_")]
        tops = {"dport": hp["top_ports"], "sport": hp["top_ports"], "peer": hp["top_peers"]}
        self.vocabs_ = {
            f: build_vocab(f, train, space, top=int(tops.get(f, 64)))
            for f in self.fields_
            if f in CATEGORICAL
        }
        hosts = getattr(users, "hosts", None)
        roles = infer_roles(train)
        if hosts is not None and len(hosts) and "role" in hosts:
            roles.update(
                dict(zip(hosts["user"].astype(str), hosts["role"].astype(str), strict=True))
            )
        elif "role" in train:
            roles.update(
                train.groupby(train["user"].astype(str))["role"].first().astype(str).to_dict()
            )
        self.roles_ = {u: (r if r in ROLES else "both") for u, r in roles.items()}
        ts = train["ts"].to_numpy(dtype=float)
        self.warp_ = TimeWarp.fit(ts)
        self.weekly_ = weekly_span(ts)
        self.period_ = (float(ts.min()), float(ts.max()))
        self.rates_ = host_rates(train, self.warp_)
        self.train_hosts_ = [
            (self.roles_.get(u, "both"), float(r)) for u, r in sorted(self.rates_.items())
        ]
        self.host_ids_ = {u: i for i, u in enumerate(sorted(self.rates_))}
        users = train["user"].astype(str).to_numpy()
        rows = warp_rows(users, self.host_ids_)
        if float(hp["host_rhythm"]) > 0:  # each training host's own daily rhythm
            self.warp_ = self.warp_.with_hosts(
                ts, rows, len(self.host_ids_), float(hp["host_rhythm"])
            )
        dt = raw_values(train, "dt")
        rate = train["user"].astype(str).map(self.rates_).to_numpy(dtype=float)
        gap_latent = self.warp_.gap_latent(ts - dt, dt, rate, rows)
        self.specs_ = {
            f: build_spec(f, train, gap_latent if f == "dt" else None)
            for f in self.fields_
            if f not in CATEGORICAL
        }
        self.gap_atoms_ = (
            gap_atoms(dt, self.specs_["dt"].resolution)
            if hp["gap_atoms"] and "dt" in self.specs_
            else np.zeros(0)
        )
        if self.gap_atoms_.size:
            on = atom_index(dt, self.gap_atoms_, self.specs_["dt"].resolution) > 0
            log.info(
                "neural: %d gap atoms (whole seconds drawn exactly) hold %.1f%% of the "
                "training gaps: %s s",
                self.gap_atoms_.size,
                100.0 * on.mean(),
                ", ".join(f"{a:g}" for a in self.gap_atoms_),
            )

    def _encode(self, frame: pd.DataFrame) -> Encoded:
        """``encode_frame`` plus ``hid``: each row's training-host id (unknown: the count)."""
        enc = encode_frame(
            frame,
            self.vocabs_,
            self.specs_,
            self.roles_,
            self.rates_,
            window_seconds=self.window_seconds_,
            context=self.context_,
            warp=self.warp_,
            weekly=self.weekly_,
            host_ids=self.host_ids_,
        )
        users = enc.frame["user"].astype(str) if enc.n else pd.Series([], dtype=object)
        enc.hid = users.map(self.host_ids_).fillna(len(self.host_ids_)).to_numpy(dtype=np.int64)
        if self.gap_atoms_.size:
            resolution = self.specs_["dt"].resolution
            enc.atom = atom_index(raw_values(enc.frame, "dt"), self.gap_atoms_, resolution)
        return enc

    def _new_net(self) -> FlowNet:
        hp = self.hyperparameters
        fields = [
            (f, "cat", self.vocabs_[f].size)
            if f in CATEGORICAL
            else (f, "cont", self.gap_atoms_.size if f == "dt" else 0)
            for f in self.fields_
        ]
        net = FlowNet(
            fields,
            d_model=int(hp["d_model"]),
            history=int(hp["history"]),
            context=self.context_,
            mixtures=int(hp["mixtures"]),
            n_roles=len(ROLES),
            n_hosts=len(self.host_ids_),
            history_dropout=float(hp["history_dropout"]),
            host_dropout=float(hp["host_dropout"]),
            copy=[f for f in hp["history_copy"] if f in self.fields_],
        )
        return net.to(self.device_)

    def host_priors(self, enc: Encoded) -> dict[str, np.ndarray]:
        """Per categorical field, the log token frequencies of each training host, smoothed
        toward the pooled frequencies by ``PRIOR_PSEUDO_FLOWS`` flows, and of the unknown host
        (the pooled ones): float32 (n_hosts + 1, V)."""
        n_hosts = len(self.host_ids_)
        priors = {}
        for f in self.fields_:
            if f not in CATEGORICAL:
                continue
            V = self.vocabs_[f].size
            pooled = np.bincount(enc.cat[f], minlength=V)[:V] + 0.1
            pooled = pooled / pooled.sum()
            counts = np.zeros((n_hosts + 1, V))
            known = enc.hid < n_hosts
            np.add.at(counts, (enc.hid[known], enc.cat[f][known]), 1.0)
            freq = (counts + PRIOR_PSEUDO_FLOWS * pooled) / (
                counts.sum(1, keepdims=True) + PRIOR_PSEUDO_FLOWS
            )
            freq[n_hosts] = pooled
            priors[f] = np.log(freq).astype(np.float32)
        return priors

    def context_profile(self, enc: Encoded) -> np.ndarray:
        """Mean window sums (flows, bytes, packets, outgoing flows) of each training host by
        window of the day, over the days it has flows, and their mean over hosts for the
        unknown host: float32 (n_hosts + 1, ceil(86400 / window_seconds), 4). Sampling
        starts each sequence's 3-hour context from its host's profile at that time of day,
        as a running host's would be (an empty context is a host just switched on)."""
        n_hosts, ws = len(self.host_ids_), float(self.window_seconds_)
        W = int(math.ceil(SECONDS_PER_DAY / ws))
        profile = np.zeros((n_hosts + 1, W, CONTEXT_FEATURES))
        if enc.n == 0:
            return profile.astype(np.float32)
        ts = enc.frame["ts"].to_numpy(dtype=float)
        wod = np.minimum(np.floor(np.mod(ts, SECONDS_PER_DAY) / ws).astype(np.int64), W - 1)
        known = enc.hid < n_hosts
        sums = window_sums(enc.frame)[known]
        cell = enc.hid[known] * W + wod[known]
        for j in range(CONTEXT_FEATURES):
            profile[:n_hosts, :, j] = np.bincount(
                cell, weights=sums[:, j], minlength=n_hosts * W
            ).reshape(n_hosts, W)
        day = np.floor(ts[known] / SECONDS_PER_DAY).astype(np.int64)
        days = pd.Series(day).groupby(enc.hid[known]).nunique()
        n_days = np.ones(n_hosts)
        n_days[days.index.to_numpy()] = days.to_numpy()
        profile[:n_hosts] /= n_days[:, None, None]
        profile[n_hosts] = profile[:n_hosts].mean(0) if n_hosts else 0.0
        return profile.astype(np.float32)

    def _context_start(self, hids: np.ndarray, t0: np.ndarray) -> np.ndarray | None:
        """The ``context`` complete windows before each sequence's start ``t0`` (s) from the
        profile of its host ``hids``: raw sums, (n, context, 4), oldest first; None without
        a profile."""
        if self.ctx_profile_ is None:
            return None
        ws, C = float(self.window_seconds_), int(self.context_)
        W = self.ctx_profile_.shape[1]
        win = np.floor(np.asarray(t0, dtype=float) / ws)[:, None] + np.arange(-C, 0)[None, :]
        wod = np.floor(np.mod(win * ws, SECONDS_PER_DAY) / ws).astype(np.int64)
        hid = np.minimum(np.asarray(hids, dtype=np.int64), self.ctx_profile_.shape[0] - 1)
        return self.ctx_profile_[hid[:, None], np.minimum(wod, W - 1)].astype(np.float64)

    def _init_heads(self, enc: Encoded) -> None:
        """Start each head at the training marginal: categorical heads at the host priors
        (``host_priors``; softmax biases zero), mixture locations at quantiles of the latent
        values."""
        assert self.net_ is not None
        m = self.net_.M
        self.net_.set_priors(
            {f: torch.as_tensor(v, device=self.device_) for f, v in self.host_priors(enc).items()}
        )
        self.net_.set_context_scale(
            torch.as_tensor(context_scale(enc.ctx_table), device=self.device_)
        )
        for j, f in enumerate(self.fields_):
            if f in CATEGORICAL:
                with torch.no_grad():
                    self.net_.head_out[j].bias.zero_()
                continue
            lo, hi = enc.lo[f].astype(float), enc.hi[f].astype(float)
            with np.errstate(invalid="ignore"):  # cells open on both sides: NaN, dropped
                mid = np.where(
                    np.isinf(lo), hi - 0.5, np.where(np.isinf(hi), lo + 0.5, 0.5 * (lo + hi))
                )
            mid = mid[np.isfinite(mid)]
            if mid.size == 0:
                mid = np.zeros(1)
            q = np.quantile(mid, (np.arange(m) + 0.5) / m)
            spread = float(np.std(mid)) / m + 0.05
            self.net_.init_mixture(
                j, torch.as_tensor(q, dtype=torch.float32, device=self.device_), spread
            )
            if f == "dt" and enc.atom is not None:  # no atom, then each, at its share
                shares = np.bincount(enc.atom, minlength=self.gap_atoms_.size + 1) / max(enc.n, 1)
                self.net_.init_atoms(
                    j, torch.as_tensor(shares, dtype=torch.float32, device=self.device_)
                )

    # -- batches -----------------------------------------------------------------------
    def _segments(self, enc: Encoded) -> np.ndarray:
        """First row of every window of ``seq_len`` consecutive flows of a host, (n_seg,)."""
        L = int(self.hyperparameters["seq_len"])
        if enc.n == 0:
            return np.zeros(0, np.int64)
        offset = np.arange(enc.n) - enc.start
        return np.flatnonzero(offset % L == 0)

    def _batch(
        self, enc: Encoded, starts: np.ndarray, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Tensors of the windows starting at rows ``starts`` (see ``FlowNet.forward``).

        With ``rng`` (training) each position's flow, as the *history* of later targets,
        is replaced with probability ``history_noise`` by a random training flow (keys
        ``h:<field>``); targets and their within-flow prefixes keep the true flow. The state
        then learns to lean on the host's identity when its past looks unlike it, as a
        free-running sample's past sometimes does."""
        K, L, C = (
            int(self.hyperparameters["history"]),
            int(self.hyperparameters["seq_len"]),
            self.context_,
        )
        host_start = enc.start[starts]
        host_end = enc.end[starts]
        pos = starts[:, None] - K + np.arange(K + L)[None, :]
        valid = (pos >= host_start[:, None]) & (pos < host_end[:, None])
        posc = np.clip(pos, 0, enc.n - 1)
        tpos, tvalid = posc[:, K:], valid[:, K:]
        prev = tpos - 1
        has_prev = (pos[:, K:] - 1 >= host_start[:, None]) & tvalid
        prevc = np.where(has_prev, prev, tpos)
        n_hist = np.minimum(pos[:, K:] - host_start[:, None], K).clip(0) / K
        aux = np.concatenate(
            [
                enc.time[prevc],
                (~has_prev)[..., None].astype(np.float32),
                n_hist[..., None].astype(np.float32),
                enc.rate[tpos][..., None],
            ],
            axis=-1,
        )
        rows = enc.ctx_rows[prevc][..., None] - np.arange(C, 0, -1)
        ctx = np.concatenate([enc.ctx_table[rows], enc.partial[prevc][..., None, :]], axis=-2)
        ctx *= has_prev[..., None, None]
        dev = self.device_
        out: dict[str, torch.Tensor] = {
            "valid": torch.as_tensor(valid, dtype=torch.float32, device=dev),
            "tvalid": torch.as_tensor(tvalid, dtype=torch.float32, device=dev),
            "time": torch.as_tensor(enc.time[posc], device=dev),
            "aux": torch.as_tensor(aux.astype(np.float32), device=dev),
            "ctx": torch.as_tensor(ctx.astype(np.float32), device=dev),
            "role": torch.as_tensor(enc.role[tpos], device=dev),
            "hid": torch.as_tensor(enc.hid[tpos], device=dev),
            "tpos": torch.as_tensor(tpos, device=dev),
        }
        noise = float(self.hyperparameters["history_noise"]) if rng is not None else 0.0
        hpos = posc
        if noise > 0:
            assert rng is not None
            swap = rng.random(posc.shape) < noise
            hpos = np.where(swap, rng.integers(0, enc.n, size=posc.shape), posc)
            out["hswap"] = torch.as_tensor(swap, device=dev)
        for f in self.fields_:
            source = enc.cat[f] if f in CATEGORICAL else enc.emb[f]
            if noise > 0:
                out[f"h:{f}"] = torch.as_tensor(source[hpos], device=dev)
            if f in CATEGORICAL:
                out[f"x:{f}"] = torch.as_tensor(enc.cat[f][posc], device=dev)
                out[f"y:{f}"] = torch.as_tensor(enc.cat[f][tpos], device=dev)
            else:
                out[f"x:{f}"] = torch.as_tensor(enc.emb[f][posc], device=dev)
                for part in ("lo", "hi", "width"):
                    out[f"{part}:{f}"] = torch.as_tensor(getattr(enc, part)[f][tpos], device=dev)
        if enc.atom is not None:  # the gap atom each target's gap is (0: none)
            out["a:dt"] = torch.as_tensor(enc.atom[tpos], device=dev)
        return out

    @torch.no_grad()
    def _self_history(
        self, batch: dict[str, torch.Tensor], p: float, rng: np.random.Generator
    ) -> None:
        """Put the network's own tokens into the history of a training batch, in place.

        A no-gradient pass over ``batch`` (as in training: the same dropouts) gives each
        target flow's categorical heads, teacher-forced. At a share ``p`` of the target
        positions (drawn per position, the same for every field) each categorical field's
        history token ``h:<field>`` (S, P) becomes a token drawn from that flow's head (inverse
        CDF of one uniform from ``rng``); continuous fields and the targets themselves
        (``x:``/``y:``) keep what they had (the true flow, or ``history_noise``'s). The later
        targets of the window then see a past with the network's own token choices, as a
        free-running host's past is made of them: it learns to come back from its own drift
        (a server that lingers in one port) instead of amplifying it (docs/neural.md
        section 22)."""
        assert self.net_ is not None
        K = self.net_.K
        cats = [j for j, f in enumerate(self.fields_) if f in CATEGORICAL]
        if not cats:
            return
        _, heads = self.net_(batch, only=cats)
        S, L = heads[cats[0]].shape[:2]
        dev = heads[cats[0]].device
        pick = torch.as_tensor(rng.random((S, L)) < p, device=dev)
        if "hswap" not in batch:  # ``history_noise`` off: the history starts as the flows
            batch["hswap"] = torch.zeros_like(batch["valid"], dtype=torch.bool)
        for j, f in enumerate(self.fields_):
            key = f"h:{f}"
            if key not in batch:
                batch[key] = batch[f"x:{f}"].clone()
            if f not in CATEGORICAL:
                continue
            cdf = torch.softmax(heads[j].float(), dim=-1).cumsum(-1)
            u = torch.as_tensor(rng.random((S, L, 1)), dtype=cdf.dtype, device=dev)
            drawn = (cdf < u * cdf[..., -1:]).sum(-1).clamp(max=cdf.shape[-1] - 1)
            h = batch[key]
            h[:, K:] = torch.where(pick, drawn.to(h.dtype), h[:, K:])

    def _field_nll(self, heads: list[torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative log-likelihood (nats) of each target, summed over fields, (S, L).
        The continuous fields are scored in one call (stacked on a field axis)."""
        total = torch.zeros_like(batch["tvalid"])
        cont = []
        for j, f in enumerate(self.fields_):
            if f in CATEGORICAL:
                total = total - F.log_softmax(heads[j].float(), dim=-1).gather(
                    -1, batch[f"y:{f}"].unsqueeze(-1)
                ).squeeze(-1)
            else:
                cont.append((j, f))
        if cont:
            m3 = 3 * self.net_.M
            params = torch.stack([heads[j][..., :m3] for j, _ in cont], dim=-2)
            lo, hi, width = (
                torch.stack([batch[f"{part}:{f}"] for _, f in cont], dim=-1)
                for part in ("lo", "hi", "width")
            )
            logp = interval_log_prob(params, lo, hi, width)  # (S, L, continuous fields)
            if "a:dt" in batch:
                k = [f for _, f in cont].index("dt")
                gap = with_atoms(heads[cont[k][0]][..., m3:], logp[..., k], batch["a:dt"])
                logp = torch.cat([logp[..., :k], gap.unsqueeze(-1), logp[..., k + 1 :]], dim=-1)
            total = total - logp.sum(-1)
        return total

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean NLL nats/flow over valid targets, number of valid targets)."""
        assert self.net_ is not None
        dtype = amp_dtype(self.device_)
        with torch.autocast(
            device_type=self.device_.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            _, heads = self.net_(batch)
        heads = [h.float() for h in heads]
        nll = self._field_nll(heads, batch)
        w = batch["tvalid"]
        count = w.sum()
        return (nll * w).sum() / count.clamp(min=1.0), count

    def _train(
        self, enc: Encoded, enc_val: Encoded | None, rng: np.random.Generator, seed: int
    ) -> dict:
        hp = self.hyperparameters
        assert self.net_ is not None
        net = self.net_
        L, S = int(hp["seq_len"]), int(hp["batch_size"])
        segments = self._segments(enc)
        per_epoch = min(len(segments), max(1, math.ceil(int(hp["max_train_flows"]) / L)))
        steps = max(1, math.ceil(per_epoch / S))
        epochs = int(hp["epochs"])
        # torch.optim.AdamW + OneCycleLR's steps, without the torch._dynamo import (0.8 s)
        opt = OneCycleAdamW(
            net.parameters(),
            max_lr=float(hp["lr"]),
            total_steps=epochs * steps,
            weight_decay=float(hp["weight_decay"]),
            pct_start=0.15,
        )
        scaler = loss_scaler(self.device_, amp_dtype(self.device_))
        val_segments = None
        if enc_val is not None:  # max_val_flows worth of windows, spread over every host
            all_val = self._segments(enc_val)
            n_val = max(1, math.ceil(int(hp["max_val_flows"]) / L))
            pick = np.linspace(0, len(all_val) - 1, min(len(all_val), n_val))
            val_segments = all_val[np.unique(pick.astype(np.int64))] if len(all_val) else all_val
        best, best_state, bad, history = math.inf, None, 0, {"train": [], "val": []}
        self_history = float(hp["self_history"])  # share of history tokens drawn by the net
        # CPU kernels are deterministic already; the flag only slows their backward passes.
        # Set only where it changes: setting it imports torch._inductor (and _dynamo, 0.8 s).
        previous = torch.are_deterministic_algorithms_enabled()
        previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        deterministic = self.device_.type == "cuda"
        if deterministic != previous:
            torch.use_deterministic_algorithms(deterministic, warn_only=True)
        try:
            for epoch in range(epochs):
                net.train()
                order = rng.permutation(segments)[:per_epoch]
                total, count, t0 = 0.0, 0.0, time.perf_counter()
                bar = tqdm(
                    range(steps),
                    desc=f"neural epoch {epoch + 1}/{epochs}",
                    leave=False,
                    disable=None,
                )
                for k in bar:
                    batch = self._batch(enc, np.sort(order[k * S : (k + 1) * S]), rng)
                    if self_history > 0:
                        self._self_history(batch, self_history, rng)
                    loss, n = self._loss(batch)
                    opt.zero_grad()
                    if scaler is None:
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                        opt.step()
                    else:  # float16: scaled, unscaled before the clip, skipped on overflow
                        scaler.scale(loss).backward()
                        scaler.unscale_(opt)
                        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                        scaler.step(opt)
                        scaler.update()
                    total += float(loss.detach()) * float(n)
                    count += float(n)
                    bar.set_postfix(
                        loss=f"{total / max(count, 1):.3f}",
                        flows_s=f"{count / (time.perf_counter() - t0):.0f}",
                    )
                bar.close()
                train_loss = total / max(count, 1.0)
                history["train"].append(round(train_loss, 5))
                val_loss = (
                    self._mean_nll(enc_val, val_segments)
                    if val_segments is not None
                    else train_loss
                )
                history["val"].append(round(val_loss, 5))
                log.info(
                    "neural epoch %d/%d: train %.4f val %.4f nats/flow, %.0f flows/s",
                    epoch + 1,
                    epochs,
                    train_loss,
                    val_loss,
                    count / (time.perf_counter() - t0),
                )
                if val_loss < best - 1e-4:
                    best, bad = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
                    if bad >= int(hp["patience"]):
                        break
        finally:
            if deterministic != previous:
                torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        history.update(best_val=round(best, 5), epochs=len(history["train"]), seed=seed)
        return history

    @torch.no_grad()
    def _fit_copulas(self, enc: Encoded) -> None:
        """Measure the residual serial dependence of the continuous fields the options ask
        for (``gap_copula``: ``dt``; ``value_copula``: every other continuous field) and fit
        ``gap_copula_`` / ``value_copulas_`` to it (``neural_copula``): the CDF bounds of the
        training values' grid cells under the teacher-forced network (``max_val_flows``
        flows of training windows spread over every host), the lag correlations of the
        normal scores behind them within windows (``latent_correlations``, lags
        1..``MAX_LAG``; a ratio field's flows without packets left out), and the AR(p)
        process that reproduces them (``fit_gap_copula``). Deterministic: no draw is
        involved."""
        assert self.net_ is not None
        hp = self.hyperparameters
        cont = [f for f in self.fields_ if f not in CATEGORICAL]
        fields = [f for f in cont if (f == "dt" and hp["gap_copula"])]
        fields += [f for f in cont if f != "dt" and hp["value_copula"]]
        if not fields:
            return
        js = [self.fields_.index(f) for f in fields]
        segments = self._segments(enc)
        n_seg = max(1, math.ceil(int(hp["max_val_flows"]) / int(hp["seq_len"])))
        pick = np.linspace(0, len(segments) - 1, min(len(segments), n_seg)).astype(np.int64)
        if not len(segments):
            return
        segments = segments[np.unique(pick)]
        self.net_.eval()
        scores: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        valid: dict[str, list[np.ndarray]] = {f: [] for f in fields}
        S = int(hp["batch_size"]) * 4
        for k in range(0, len(segments), S):
            batch = self._batch(enc, segments[k : k + S])
            _, heads = self.net_(batch, only=js)
            target = (batch["tvalid"] > 0).cpu().numpy()
            for f, j in zip(fields, js, strict=True):
                params = heads[j]
                assert params is not None
                params = params[..., : 3 * self.net_.M]  # the mixture (atoms after it)
                lo, hi = batch[f"lo:{f}"], batch[f"hi:{f}"]
                f_lo = mixture_cdf(params, lo).double().cpu().numpy()
                f_hi = mixture_cdf(params, hi).double().cpu().numpy()
                scores[f].append(cell_scores(f_lo, f_hi))
                # a value known with certainty (bytes without packets) says nothing
                certain = (torch.isneginf(lo) & torch.isposinf(hi)).cpu().numpy()
                if f == "dt" and "a:dt" in batch:  # a gap on an atom has no mixture PIT
                    certain |= (batch["a:dt"] > 0).cpu().numpy()
                valid[f].append(target & ~certain)
        self.value_copulas_ = {}
        for f in fields:
            corr = latent_correlations(np.concatenate(scores[f]), np.concatenate(valid[f]))
            params = fit_gap_copula(corr)
            shown = [
                round(float(corr[k - 1]), 4) if np.isfinite(corr[k - 1]) else None
                for k in (1, 2, 5, 10, 20, 40)
                if k <= corr.size
            ]
            coef, used = params
            share = float(coef @ used) if coef.size else 0.0  # of a score's variance
            key = "gap" if f == "dt" else f
            self.history_[f"{key}_dependence"] = shown
            self.history_[f"{key}_copula"] = {"order": int(coef.size), "carried": round(share, 4)}
            if f == "dt":
                self.gap_copula_ = params
            elif coef.size:
                self.value_copulas_[f] = params
            log.info(
                "neural: training %s' PIT correlation at lags 1/2/5/10/20/40 %s; copula AR(%d) "
                "carrying %.3f of each value's normal score",
                f,
                shown,
                coef.size,
                share,
            )

    @torch.no_grad()
    def _mean_nll(self, enc: Encoded | None, segments: np.ndarray) -> float:
        if enc is None or len(segments) == 0:
            return math.inf
        assert self.net_ is not None
        self.net_.eval()
        S = int(self.hyperparameters["batch_size"]) * 4
        total, count = 0.0, 0.0
        for k in range(0, len(segments), S):
            loss, n = self._loss(self._batch(enc, segments[k : k + S]))
            total += float(loss) * float(n)
            count += float(n)
        return total / max(count, 1.0)

    # -- scoring -----------------------------------------------------------------------
    def log_prob(self, flows: Any) -> np.ndarray:
        parts = self.field_log_probs(flows)
        return np.sum(np.stack(list(parts.values()), axis=0), axis=0) if parts else np.zeros(0)

    def field_log_probs(self, flows: Any) -> dict[str, np.ndarray]:
        """Per evaluation field, the log-probability (nats) of each flow's bin, (n_flows,)
        in the frame's row order."""
        with torch_threads(int(self.hyperparameters["cpu_threads"]), self.device_):
            return self._field_log_probs(flows)

    @torch.no_grad()
    def _field_log_probs(self, flows: Any) -> dict[str, np.ndarray]:
        self._check_fitted()
        assert self.net_ is not None and self.space_ is not None
        frame = flows_frame(flows).reset_index(drop=True)
        enc = self._encode(frame)
        space, net = self.space_, self.net_
        net.eval()
        # evaluation targets, per model field: categorical codes or grid intervals of bins
        targets: dict[str, Any] = {}
        for f in self.fields_:
            ef = "peer_kind" if f == "peer" else f
            if ef not in space.fields or ef not in enc.frame and f not in enc.frame:
                continue
            if f in CATEGORICAL:
                codes = space.encode_field(ef, enc.frame[ef])
                mapping = torch.zeros(self.vocabs_[f].size, space.n_bins(ef), device=self.device_)
                mapping[
                    torch.arange(self.vocabs_[f].size), torch.as_tensor(self.vocabs_[f].eval_code)
                ] = 1.0
                targets[f] = (ef, codes, mapping)
            else:
                x = raw_values(enc.frame, f)
                codes = space.encode_field(f, x)
                edges = space.edges[f]
                gap = None
                if f == "dt" and self.warp_ is not None:
                    ts = enc.frame["ts"].to_numpy(dtype=float)
                    # the training-host ids (unknown hosts: past the last row, pooled rhythm)
                    gap = (ts - x, enc.rate.astype(float), self.warp_.bound(enc.hid))
                lo, hi, width = grid_interval(
                    np.expm1(edges[codes]),
                    np.expm1(edges[codes + 1]),
                    self.specs_[f],
                    latent_base(enc.frame, f),
                    gap,
                    base_is_zero(enc.frame, f),
                )
                targets[f] = (
                    f,
                    lo.astype(np.float32),
                    hi.astype(np.float32),
                    width.astype(np.float32),
                )
                if f == "dt" and self.gap_atoms_.size:  # the atoms in each flow's bin
                    inside = codes[:, None] == space.encode_field(f, self.gap_atoms_)[None, :]
                    targets[f] += (np.where(inside, 0.0, -1e4).astype(np.float32),)
        out = {t[0]: np.zeros(enc.n) for t in targets.values()}
        segments = self._segments(enc)
        S = int(self.hyperparameters["batch_size"]) * 4
        for k in range(0, len(segments), S):
            batch = self._batch(enc, segments[k : k + S])
            _, heads = net(batch)
            tpos = batch["tpos"].cpu().numpy()
            keep = batch["tvalid"].cpu().numpy() > 0
            rows = tpos[keep]
            for j, f in enumerate(self.fields_):
                if f not in targets:
                    continue
                t = targets[f]
                if f in CATEGORICAL:
                    probs = torch.softmax(heads[j].float(), dim=-1) @ t[2]
                    code = torch.as_tensor(t[1][tpos], device=self.device_)
                    logp = torch.log(
                        probs.gather(-1, code.unsqueeze(-1)).squeeze(-1).clamp(min=1e-30)
                    )
                else:
                    lo, hi, width = (torch.as_tensor(a[tpos], device=self.device_) for a in t[1:4])
                    m3 = 3 * net.M
                    logp = interval_log_prob(heads[j][..., :m3], lo, hi, width)
                    if len(t) > 4:  # P(none) P_mixture(bin) + the atoms in the bin
                        log_in = torch.as_tensor(t[4][tpos], device=self.device_)
                        logp = with_atoms_in_bin(heads[j][..., m3:], logp, log_in)
                out[t[0]][rows] = logp.cpu().numpy()[keep]
        # back to the frame's row order
        result = {}
        for name, values in out.items():
            original = np.empty_like(values)
            original[enc.order] = values
            result[name] = original
        return result

    # -- sampling ----------------------------------------------------------------------
    def sample(
        self,
        n_users: int,
        start: Any,
        days: float,
        *,
        seed: int,
        role: str | None = None,
    ) -> pa.Table:
        self._check_fitted()
        assert self.net_ is not None
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        roles, rates, hids = self._host_attributes(n_users, role, rng)
        expected = float(np.power(10.0, rates.astype(np.float64)).sum()) * float(days)
        if expected > MAX_SAMPLE_FLOWS:
            raise ValueError(
                f"neural: {n_users} hosts over {days} days would be about {expected:.3g} "
                f"flows; limit {MAX_SAMPLE_FLOWS}: sample fewer hosts or days"
            )
        frame = self._generate(roles, rates, hids, start_seconds(start), float(days), rng)
        names = np.asarray(synthetic_user_names(n_users, role), dtype=object)
        frame["user"] = names[frame.pop("host").to_numpy()]
        hosts, ts = frame["user"].to_numpy(), frame["ts"].to_numpy()
        for f, vocab in self.vocabs_.items():
            frame[f] = vocab.decode(frame[f].to_numpy(), rng, hosts, ts)
        frame["proto"] = pd.to_numeric(frame["proto"], errors="coerce").fillna(0).astype(np.int64)
        table = to_sample_table(frame)
        seconds = time.perf_counter() - t0
        log.info(
            "neural: sampled %d flows of %d hosts in %.2f s (%.0f flows/s)",
            table.num_rows,
            n_users,
            seconds,
            table.num_rows / max(seconds, 1e-9),
        )
        return table

    def _host_attributes(
        self, n: int, role: str | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Role ids, activity levels (log10 flows/day) and training-host ids of ``n``
        synthetic hosts: the training hosts' profiles (of ``role`` when given) in a random
        order, cycled, so ``n`` = the training host count reproduces the training
        population exactly (the busiest hosts dominate every marginal). A ``role`` no
        training host has is refused: its embedding was never trained, so the hosts would
        be another role's under its name."""
        hosts = [(r, v, i) for i, (r, v) in enumerate(self.train_hosts_)]
        if role is not None and hosts and all(h[0] != role for h in hosts):
            known = sorted({h[0] for h in hosts})
            raise ValueError(
                f"no training host has role {role!r}, so the model cannot condition on it; "
                f"its training hosts' roles: {', '.join(known)}"
            )
        hosts = hosts or [("both", 3.0, len(self.host_ids_))]
        pool = [h for h in hosts if role is None or h[0] == role] or hosts
        pick = np.resize(rng.permutation(len(pool)), n)
        names = [role or pool[i][0] for i in pick]
        rates = np.asarray([pool[i][1] for i in pick], dtype=np.float32)
        hids = np.asarray([pool[i][2] for i in pick], dtype=np.int64)
        ids = np.array([ROLES.index(r) for r in names], dtype=np.int64)
        return ids, rates, hids

    def _generate(
        self,
        roles: np.ndarray,
        rates: np.ndarray,
        hids: np.ndarray,
        start: float,
        days: float,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """Run the network step by step for every host until it passes ``start + days``
        (``neural_sample.StepSampler``); one row per flow: field tokens/values, ts, host."""
        if self.sampler_ is None:
            self.sampler_ = self._step_sampler()
        clock = None
        if self.activity_ is not None and self.warp_ is not None and len(rates):
            # one path per synthetic host over its period (its chunks share it)
            t0 = math.floor(float(start) / CELL_SECONDS) * CELL_SECONDS
            n_cells = math.ceil((float(start) + days * SECONDS_PER_DAY - t0) / CELL_SECONDS) + 1
            sigma, phi = self.activity_
            paths = modulation_paths(rng, len(rates), n_cells, self._host_sigma(sigma, hids), phi)
            span = str(self.hyperparameters["activity_span"])
            clock = ActivityClock(self.warp_, np.asarray(hids), paths, t0, span)
        rows = self._chunks(np.asarray(rates, dtype=float), start, days, np.asarray(hids), clock)
        max_steps = int(max(2000, 20 * np.max(rows["flows"], initial=1.0)))
        row_hids = np.asarray(hids)[rows["host"]]
        frame, unfinished = self.sampler_.generate(
            rows["host"],
            np.asarray(roles)[rows["host"]],
            np.asarray(rates)[rows["host"]],
            row_hids,
            rows["start"],
            rows["keep"],
            rows["end"],
            rng,
            max_steps,
            ctx0=self._context_start(row_hids, rows["start"]),
            clock=clock,
        )
        if unfinished:
            log.warning(
                "neural: sampling stopped after %d steps with %d hosts unfinished",
                max_steps,
                unfinished,
            )
        return frame

    def _step_sampler(self) -> StepSampler:
        """The numpy sampler of the fitted network with this model's calibration."""
        assert self.net_ is not None
        return StepSampler(
            self.net_,
            self.fields_,
            self.vocabs_,
            self.specs_,
            self.warp_,
            self.window_seconds_,
            self.dt_factor_ if self.host_dt_factors_ is None else self.host_dt_factors_,
            self.token_offsets_,
            self.weekly_,
            self.proto_support_,
            self.value_maps_,
            self.gap_copula_,
            self.value_copulas_,
            self.gap_atoms_,
        )

    def _chunks(
        self,
        rates: np.ndarray,
        start: float,
        days: float,
        hids: np.ndarray | None = None,
        clock: ActivityClock | None = None,
    ) -> dict[str, np.ndarray]:
        """Cut each host's period into ``ceil(expected flows / sample_chunk_flows)`` chunks
        of equal expected flow count (equal lengths of warped time); each chunk but the
        period's first starts ``sample_burn_in`` expected flows early (burn-in, dropped) so
        its history is that of a running host (its context starts from the host's profile,
        ``context_profile``). Warped time is each host's own (``hids``: training-host ids,
        None: the pooled rhythm), or its modulated ``clock``'s (``neural_activity``: a chunk
        cut on the warp alone would hold up to several times its share where the host is
        present, and the longest chunk sets the sampler's step count). A chunk starts on the
        gaps' grid (``ContinuousSpec.resolution``), so its flows' times stay on the grid the
        training log's lie on. Arrays per chunk: host, start, keep (first kept time), end,
        flows (expected flows incl. burn-in)."""
        hp = self.hyperparameters
        end = start + days * SECONDS_PER_DAY
        per_day = np.power(10.0, rates)
        n = len(rates)
        hid = np.full(n, -1, np.int64) if hids is None else np.asarray(hids, np.int64)
        if clock is None:
            fwd, inv = warp_maps(self.warp_)
        else:  # the clock's rows are the hosts themselves
            hid = np.arange(n, dtype=np.int64)
            fwd, inv = clock.forward, clock.inverse
        w0, w1 = fwd(np.full(n, float(start)), hid), fwd(np.full(n, float(end)), hid)
        expected = per_day * (w1 - w0) / SECONDS_PER_DAY
        target = int(hp["sample_chunk_flows"])
        n_chunks = (
            np.maximum(np.ceil(expected / target), 1).astype(np.int64)
            if target > 0
            else np.ones(len(rates), np.int64)
        )
        host = np.repeat(np.arange(len(rates)), n_chunks)
        first = np.r_[0, np.cumsum(n_chunks)[:-1]]
        k = np.arange(len(host)) - np.repeat(first, n_chunks)
        span = (w1 - w0)[host] / n_chunks[host]
        lo_w, hi_w = w0[host] + k * span, w0[host] + (k + 1) * span
        burn = float(hp["sample_burn_in"]) * SECONDS_PER_DAY / per_day[host]
        rows = hid[host]
        keep = np.where(k == 0, start, inv(lo_w, rows))
        row_end = np.where(k == n_chunks[host] - 1, end, inv(hi_w, rows))
        row_start = np.where(k == 0, start, inv(lo_w - burn, rows))
        if "dt" in self.specs_:  # on the gaps' grid, so every flow's time is on the log's
            r = self.specs_["dt"].resolution
            row_start = np.floor(row_start / r + 1e-9) * r
        flows = expected[host] / n_chunks[host] + np.where(k == 0, 0.0, hp["sample_burn_in"])
        return {"host": host, "start": row_start, "keep": keep, "end": row_end, "flows": flows}

    def _calibrate(self, enc: Encoded, seed: int, rounds: int | None = None) -> None:
        """Correct what free-running sampling drifts from after training (exposure bias:
        the network was trained on real histories and samples on its own), in ``rounds`` (by
        default 2, 3 with ``calibrate_values``) rounds of one sampled day of every training
        host (its role, activity and identity;
        the first day of the training period, or all of it when it is shorter):

        - rate: a gap scale per training host so that it holds as many flows as its
          activity says (the mean of a log-space mixture is sensitive to its tail), and one
          over all hosts for unknown hosts; it scales the idle part of each gap only
          (``neural_sample.scale_gaps``), so bursts keep their spacing. Each round steps
          toward the factor that holds a host's count by a secant through the last two
          rounds (``rate_step``): a host's count can answer its factor several times over;
        - tokens: per categorical field, a logit offset per token, the log ratio of its
          training count to its sampled count over all hosts (each with
          ``TOKEN_PSEUDO_FLOWS`` added, clipped to ``TOKEN_OFFSET_RANGE``). Free-running
          hosts lean to the tokens their own history makes likelier (outgoing flows on the
          simulator: 4-6 points too many before, 0.2 after). A field's offsets are tried in
          the next round and kept only if that round's drift (the share of sampled flows
          that would have to change token) is smaller: one day of a few busy hosts is a
          noisy measure where a host stays in one kind of session for hours, and on one
          seed an unchecked step doubled the port drift. So the last round only checks.
          Per host offsets were tried: a host's sampled day is too noisy to correct it by,
          and they made the hosts' port mixes worse;
        - values (``calibrate_values``, a third round): per continuous field, a quantile map
          of the drawn latent (``value_map``), from the next-to-last round's draws (made
          with the token offsets, which take no step there, so the maps see the tokens they
          will be sampled with) to the training latents (``training_latents``); tried in
          the last round and kept only if that round's value drift (``value_drift``) is
          smaller. A free-running host's gaps, durations and counts drift as its tokens
          do (durations of 2-3 minutes at less than half their share on UGR'16, the longest
          gaps too rare on the simulator). A round that tries a gap map measures the rates
          again with it, from the factors so far (the map moves every host's rate); if
          the map is dropped, the factors before it stand.

        All act on sampling only: ``log_prob`` scores the trained network."""
        if not self.train_hosts_:
            return
        n = len(self.train_hosts_)
        roles = np.array([ROLES.index(r) for r, _ in self.train_hosts_], dtype=np.int64)
        rates = np.array([v for _, v in self.train_hosts_], dtype=np.float32)
        # the training period's first day, or all of it when shorter (a capture of minutes)
        start, last = self.period_
        days = float(np.clip((last - start) / SECONDS_PER_DAY, 60.0 / SECONDS_PER_DAY, 1.0))
        fwd, inv = warp_maps(self.warp_)
        hosts = np.arange(n)

        def warped_span(days: float, rows: np.ndarray | None = hosts) -> np.ndarray:
            """Seconds of operational time from ``start`` (each host's, or pooled)."""
            m = 1 if rows is None else len(rows)
            t0, t1 = np.full(m, float(start)), np.full(m, start + days * SECONDS_PER_DAY)
            return fwd(t1, rows) - fwd(t0, rows)

        per_second = np.power(10.0, rates.astype(float)) / SECONDS_PER_DAY
        expected = per_second * warped_span(days)
        budget = float(self.hyperparameters.get("calibration_flows") or 0)
        if budget and expected.sum() > budget:  # rounds of about ``budget`` flows: a shorter
            # span (in pooled operational time, so every host keeps about its share)
            w0 = float(fwd(np.array([start]), None)[0])
            span = float(warped_span(days, None)[0]) * budget / expected.sum()
            end = float(inv(np.array([w0 + span]), None)[0])
            days = max((end - start) / SECONDS_PER_DAY, 60.0 / SECONDS_PER_DAY)
            expected = per_second * warped_span(days)
        factors = np.ones(n + 1)
        cats = [f for f in self.fields_ if f in CATEGORICAL]
        target = {f: self._token_counts(enc.cat[f], f) for f in cats}
        kept = {f: np.zeros(t.shape, np.float32) for f, t in target.items()}
        trial = {f: o.copy() for f, o in kept.items()}
        best = dict.fromkeys(cats, np.inf)
        values_on = bool(self.hyperparameters.get("calibrate_values"))
        rounds = (3 if values_on else 2) if rounds is None else rounds
        conts = self._value_fields() if values_on and rounds >= 3 else []
        latents = training_latents(enc, conts, np.random.default_rng(seed + 2000))
        values = {f: np.log1p(raw_values(enc.frame, f)) for f in conts}
        # the token offsets take a step in every round but the last (which checks them),
        # and the one before it where value maps are made, so that the maps see the tokens
        # they will be sampled with
        token_steps = rounds - (2 if conts else 1)
        maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # kept value maps
        map_trial: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        best_value = dict.fromkeys(conts, np.inf)
        rate_factors = None  # the last factors measured without a gap map on trial
        # the rate rounds' last measurement (log factors, log count ratios; hosts and the
        # overall factor) and the elasticities measured between two rounds (None: not yet)
        measured: tuple[np.ndarray, np.ndarray] | None = None
        elasticity: np.ndarray | None = None
        for k in range(rounds):
            gap_trial = "dt" in map_trial and "dt" not in maps
            if gap_trial:  # a new gap map moves every rate: measure them again with it
                rate_factors = factors.copy()  # (from the factors so far: a short last step)
                measured = None  # a new setting: no earlier round to take a secant with
            self.host_dt_factors_ = factors.copy()
            self.token_offsets_ = {f: o.copy() for f, o in trial.items()}
            self.value_maps_ = dict(map_trial)
            self.sampler_ = self._step_sampler()
            self.sampler_.record_latents = True
            rng = np.random.default_rng(seed + 1000 + k)
            frame = self._generate(roles, rates, np.arange(n), start, days, rng)
            # the activity modulation, from this round's samples of the network alone, is
            # a new setting for the rounds after it: no secant across it; the next round
            # corrects its sigma by what it realised, where a round follows to use it
            modulated = False
            if k == 0 and rounds > 1:
                modulated = self._fit_activity(frame)
            elif k == 1 and rounds > 2 and self.activity_ is not None:
                modulated = self._rescale_activity(frame)
            host = frame["host"].to_numpy()
            counts = np.bincount(host, minlength=n)[:n].astype(float)
            ratio = np.maximum(counts, 1.0) / np.maximum(expected, 1.0)
            overall = counts.sum() / max(expected.sum(), 1.0)
            log_f, log_r = np.log(factors), np.log(np.r_[ratio, overall])
            new_log_f, measured_e = rate_step(log_f, log_r, measured, elasticity)
            if measured_e is not None:
                elasticity = measured_e
            measured = None if modulated else (log_f, log_r)
            factors = np.exp(new_log_f)
            notes = []
            for f in cats:
                got = self._token_counts(frame[f].to_numpy(), f)
                want = target[f] / max(target[f].sum(), 1.0) * got.sum()
                drift = 0.5 * np.abs(want - got).sum() / max(got.sum(), 1.0)
                if drift < best[f]:  # this round's offsets (none in round 0) helped: keep
                    kept[f], best[f] = trial[f], drift
                    if k < token_steps:
                        step = np.log((want + TOKEN_PSEUDO_FLOWS) / (got + TOKEN_PSEUDO_FLOWS))
                        trial[f] = np.clip(kept[f] + step, *TOKEN_OFFSET_RANGE).astype(np.float32)
                    notes.append(f"{f} {drift:.3f}")
                elif not np.array_equal(trial[f], kept[f]):  # worse than the kept offsets:
                    trial[f] = kept[f]  # drop the trial, stop for this field
                    notes.append(f"{f} {drift:.3f} (offsets dropped)")
                else:  # the kept offsets again (a round that only checks): a noisier day
                    notes.append(f"{f} {drift:.3f}")
            for f in conts:
                drift = value_drift(np.log1p(frame[f].to_numpy(dtype=float)), values[f])
                if f in map_trial and f not in maps:  # this round checks the map
                    if drift < best_value[f]:
                        maps[f] = map_trial[f]
                        notes.append(f"{f} {drift:.3f}")
                    else:
                        del map_trial[f]
                        notes.append(f"{f} {drift:.3f} (map dropped)")
                    continue
                best_value[f] = drift
                notes.append(f"{f} {drift:.3f}")
                got = frame[f"~{f}"].to_numpy(dtype=float)
                got = got[np.isfinite(got)]
                if k == rounds - 2 and got.size:  # try this round's map in the last round
                    map_trial[f] = value_map(got, latents[f])
            if gap_trial and "dt" not in maps:  # this round's rates were measured with a
                factors = rate_factors  # gap map that is dropped: the ones before stand
            log.info(
                "neural: calibration %d: %d flows of %.0f expected over %.2f h, %.3f of the "
                "flows (hosts %.2f..%.2f), dt x %.3f (hosts %.2f..%.2f); drift %s",
                k, len(frame), expected.sum(), days * 24.0, overall, ratio.min(), ratio.max(),
                factors[n], factors[:n].min(), factors[:n].max(), ", ".join(notes),
            )  # fmt: skip
        self.host_dt_factors_ = factors
        self.dt_factor_ = float(factors[n])
        self.token_offsets_ = kept
        self.value_maps_ = maps
        self.sampler_ = None

    def _counts_autocovariance(self, frame: pd.DataFrame, host: str) -> np.ndarray:
        """The normalised autocovariance (``neural_activity``, lags 1..``FIT_LAGS``) of the
        5-minute counts of ``frame``'s hosts (column ``host``) around the pooled rhythm."""
        ts = pd.to_numeric(frame["ts"]).to_numpy(dtype=float)
        return normalised_autocovariance(cell_counts(ts, frame[host].to_numpy(), self.warp_))

    def _fit_shares(self, train: pd.DataFrame) -> None:
        """``activity_shares_``: each training host's share of the modulation's sigma from its
        own 5-minute counts (``neural_activity.host_shares``), logged in numbers."""
        assert self.warp_ is not None
        rows = warp_rows(train["user"].astype(str).to_numpy(), self.host_ids_)
        ts = train["ts"].to_numpy(dtype=float)
        shares = host_shares(ts, rows, len(self.host_ids_), self.warp_)
        self.activity_shares_ = shares
        q = np.quantile(shares, [0.0, 0.25, 0.5, 0.75, 1.0]) if len(shares) else np.zeros(5)
        self.history_["activity_shares"] = [round(float(v), 3) for v in shares]
        log.info(
            "neural: activity shares of %d training hosts: min %.2f, quartiles %.2f / %.2f / "
            "%.2f, max %.2f; %d below 0.25",
            len(shares), *q, int((shares < 0.25).sum()),
        )  # fmt: skip

    def _host_sigma(self, sigma: float, hids: np.ndarray) -> float | np.ndarray:
        """The modulation's sigma of synthetic hosts of training-host ids ``hids`` (n,):
        ``sigma`` times each one's share (1 for a host id without one), or ``sigma`` itself
        without shares."""
        shares = self.activity_shares_
        if shares is None:
            return sigma
        hids = np.asarray(hids, dtype=np.int64)
        known = (hids >= 0) & (hids < len(shares))
        out = np.ones(len(hids))
        out[known] = shares[hids[known]]
        return sigma * out

    def _fit_activity(self, frame: pd.DataFrame) -> bool:
        """Fit ``activity_`` (``neural_activity``) from a calibration round's samples of the
        network alone (``frame``: ts, host) and the validation hosts' normalised
        autocovariance; True when the fit gives a modulation. Nothing without a target
        (``activity_modulation`` off, no validation hosts or no time warp)."""
        if self._activity_target is None or self.warp_ is None:
            return False
        network = self._counts_autocovariance(frame, "host")
        target = self._activity_target
        sigma, phi = fit_activity_modulation(target, network)
        self.activity_ = (sigma, phi) if sigma > 0 else None
        self._activity_network = network
        self.history_["activity"] = {
            "sigma": round(sigma, 4),
            "phi": round(phi, 4),
            "validation": _shown(target),
            "network": _shown(network),
        }
        log.info(
            "neural: counts' normalised autocovariance at lags %s (5-minute windows): "
            "validation hosts %s, network %s; activity modulation sigma %.3f, phi %.3f",
            ACTIVITY_SHOWN,
            self.history_["activity"]["validation"],
            self.history_["activity"]["network"],
            sigma,
            phi,
        )
        return self.activity_ is not None

    def _rescale_activity(self, frame: pd.DataFrame) -> bool:
        """Correct ``activity_``'s sigma by the normalised autocovariance a calibration
        round sampled with it realised (``frame``: ts, host; ``rescaled_sigma``); True when
        sigma changed."""
        assert self.activity_ is not None and self.warp_ is not None
        assert self._activity_target is not None and self._activity_network is not None
        realised = self._counts_autocovariance(frame, "host")
        sigma, phi = self.activity_
        new = rescaled_sigma(sigma, self._activity_target, self._activity_network, realised)
        self.activity_ = (new, phi)
        self.history_["activity"].update(
            realised=_shown(realised), sigma=round(new, 4), sigma_first=round(sigma, 4)
        )
        log.info(
            "neural: activity modulation realised %s at lags %s; sigma %.3f -> %.3f",
            self.history_["activity"]["realised"],
            ACTIVITY_SHOWN,
            sigma,
            new,
        )
        return new != sigma

    def _value_fields(self) -> list[str]:
        """The continuous fields the value calibration maps (``dt`` only with a time warp:
        without one its latent is not the gap the rate calibration scales)."""
        return [
            f
            for f in self.fields_
            if f not in CATEGORICAL and (f != "dt" or self.warp_ is not None)
        ]

    def _proto_support(self, enc: Encoded) -> dict[str, np.ndarray]:
        """Per port field, bool (proto tokens, port tokens): the
        pairs that occur in the training flows. The sampler never draws another pair: a
        free-running host had given 4% of its ICMP flows source port 80 on UGR'16, where
        every real ICMP flow has port 0. ``log_prob`` is not masked (a real flow may pair
        them), so the mask acts on sampling only, as the calibration does."""
        if "proto" not in self.fields_:
            return {}
        proto = enc.cat["proto"]
        out = {}
        for f in ("sport", "dport"):
            if f not in self.fields_:
                continue
            shape = (self.vocabs_["proto"].size, self.vocabs_[f].size)
            seen = np.zeros(shape, bool)
            seen[proto, enc.cat[f]] = True
            seen[~seen.any(axis=1)] = True  # a protocol never seen: no constraint
            out[f] = seen
        return out

    def _token_counts(self, tokens: np.ndarray, f: str) -> np.ndarray:
        """Counts of field ``f``'s token ids ``tokens`` (n,): float64 (V,)."""
        V = self.vocabs_[f].size
        return np.bincount(tokens, minlength=V)[:V].astype(float)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self._check_fitted()
        assert self.net_ is not None and self.space_ is not None
        state = {
            "fields": self.fields_,
            "vocabs": {f: v.to_dict() for f, v in self.vocabs_.items()},
            "specs": {f: s.to_dict() for f, s in self.specs_.items()},
            "roles": self.roles_,
            "rates": self.rates_,
            "train_hosts": self.train_hosts_,
            "host_ids": self.host_ids_,
            "window_seconds": self.window_seconds_,
            "context_windows": self.context_,
            "history": self.history_,
            "warp": self.warp_.to_dict() if self.warp_ is not None else None,
            "weekly": self.weekly_,
            "period": list(self.period_),
            "dt_factor": self.dt_factor_,
            "host_dt_factors": (
                None if self.host_dt_factors_ is None else self.host_dt_factors_.tolist()
            ),
            "activity": None if self.activity_ is None else list(self.activity_),
            "activity_shares": (
                None if self.activity_shares_ is None else self.activity_shares_.tolist()
            ),
            "gap_atoms": self.gap_atoms_.tolist(),
            "torch_version": torch.__version__,
        }
        arrays = {} if self.ctx_profile_ is None else {"ctx_profile": self.ctx_profile_}
        arrays.update({f"token_offset_{f}": v for f, v in self.token_offsets_.items()})
        arrays.update({f"proto_support_{f}": v for f, v in self.proto_support_.items()})
        for f, (src, dst) in self.value_maps_.items():
            arrays[f"value_map_src_{f}"], arrays[f"value_map_dst_{f}"] = src, dst
        if self.gap_copula_ is not None:
            arrays["gap_copula"] = self.gap_copula_
        arrays.update({f"value_copula_{f}": v for f, v in self.value_copulas_.items()})
        write_model_files(path, self.kind, self.hyperparameters, state, arrays, self.space_)
        weights = {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}
        torch.save(weights, Path(path) / WEIGHTS)

    @classmethod
    def load(cls, path: str | Path) -> NeuralFlowModel:
        hyperparameters, state, arrays, space = read_model_files(path, cls.kind)
        if state.get("activity") is not None:  # saved before the span was a choice: the
            hyperparameters.setdefault("activity_span", "period")  # span it was fitted with
        hyperparameters.setdefault("history_copy", [])  # saved before the copy heads
        model = cls(**hyperparameters)
        model.device_ = pick_device(hyperparameters.get("device", "auto"))
        model.space_ = space
        model.fields_ = list(state["fields"])
        model.vocabs_ = {f: CategoricalVocab.from_dict(v) for f, v in state["vocabs"].items()}
        model.specs_ = {f: ContinuousSpec(**s) for f, s in state["specs"].items()}
        model.roles_ = dict(state["roles"])
        model.rates_ = {k: float(v) for k, v in state["rates"].items()}
        model.train_hosts_ = [(str(r), float(v)) for r, v in state["train_hosts"]]
        model.host_ids_ = {str(u): int(i) for u, i in state.get("host_ids", {}).items()}
        model.window_seconds_ = float(state["window_seconds"])
        model.context_ = int(state["context_windows"])
        model.history_ = dict(state.get("history", {}))
        model.warp_ = TimeWarp(**state["warp"]) if state.get("warp") else None
        model.weekly_ = bool(state.get("weekly", True))
        if "period" in state:  # models saved before it was kept: the default of __init__
            model.period_ = (float(state["period"][0]), float(state["period"][1]))
        model.dt_factor_ = float(state.get("dt_factor", 1.0))
        factors = state.get("host_dt_factors")
        activity = state.get("activity")  # models saved before it: None (no modulation)
        model.activity_ = None if activity is None else (float(activity[0]), float(activity[1]))
        shares = state.get("activity_shares")  # models saved before them: none
        model.activity_shares_ = None if shares is None else np.asarray(shares, dtype=float)
        model.host_dt_factors_ = None if factors is None else np.asarray(factors, dtype=float)
        # models saved before them: none
        model.gap_atoms_ = np.asarray(state.get("gap_atoms", []), dtype=np.float64)
        prefix = "token_offset_"
        model.token_offsets_ = {
            k[len(prefix) :]: np.asarray(v, dtype=np.float32)
            for k, v in arrays.items()
            if k.startswith(prefix)
        }
        support = "proto_support_"
        model.proto_support_ = {
            k[len(support) :]: np.asarray(v, dtype=bool)
            for k, v in arrays.items()
            if k.startswith(support)
        }
        src = "value_map_src_"
        model.value_maps_ = {
            k[len(src) :]: (
                np.asarray(v, dtype=np.float64),
                np.asarray(arrays[f"value_map_dst_{k[len(src) :]}"], dtype=np.float64),
            )
            for k, v in arrays.items()
            if k.startswith(src)
        }
        copula = arrays.get("gap_copula")  # models saved before it: None (independent)
        model.gap_copula_ = None if copula is None else np.asarray(copula, dtype=np.float64)
        model.value_copulas_ = {  # models saved before them: none
            k[len("value_copula_") :]: np.asarray(v, dtype=np.float64)
            for k, v in arrays.items()
            if k.startswith("value_copula_")
        }
        profile = arrays.get("ctx_profile")
        model.ctx_profile_ = None if profile is None else np.asarray(profile, dtype=np.float32)
        model.net_ = model._new_net()
        weights = torch.load(Path(path) / WEIGHTS, map_location=model.device_, weights_only=True)
        weights.setdefault("ctx_scale", torch.ones(CONTEXT_FEATURES))  # saved before it was
        model.net_.load_state_dict(weights)
        model.net_.eval()
        return model

    def describe(self) -> str:
        """One line of JSON with the fitted sizes (fields, vocabularies, parameters)."""
        n_params = sum(p.numel() for p in self.net_.parameters()) if self.net_ is not None else 0
        return json.dumps(
            {
                "fields": self.fields_,
                "vocab": {f: v.size for f, v in self.vocabs_.items()},
                "parameters": int(n_params),
            }
        )


def rate_step(
    log_f: np.ndarray,
    log_r: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None,
    elasticity: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One step of the rate calibration: ``(next log gap factors (H,), the elasticities
    (H,) measured in this step, or None without an earlier round)``, from this round's log
    factors ``log_f`` (H,) and log count ratios ``log_r`` (H,) (sampled over expected flows).

    Response model per host: ``log r = -e (log f - log f*)``, so ``log f* = log f + log r /
    e``. ``e`` is measured between this round and ``previous`` (the last round's log factors
    and log ratios, in the same setting) where the factors moved by more than 5% and the count
    fell as the factor rose (a secant), clipped to ``RATE_ELASTICITY_RANGE``; elsewhere it is
    the last measured one (``elasticity``) or ``RATE_ELASTICITY_FIRST``.

    A plain step (``e = 1``, factor times ratio) diverged on UGR'16. There a free-running
    host's count answers its gap factor 2-3 times over (slower gaps make quieter windows,
    which make slower gaps): one host read 1.63 of its flows at factor 1, 0.36 at 1.63, and
    the factors after two rounds gave the sample 1.55 times the expected flows. The count
    falls monotonically in the factor, so a factor between two measured ones is safe; a
    first step with ``e = 2`` converges for any elasticity below 4."""
    e = np.full(log_f.shape, RATE_ELASTICITY_FIRST) if elasticity is None else elasticity.copy()
    measured = None
    if previous is not None:
        d_f, d_r = log_f - previous[0], log_r - previous[1]
        ok = (np.abs(d_f) > np.log(1.05)) & (d_r * d_f < 0)
        e[ok] = np.clip(-d_r[ok] / d_f[ok], *RATE_ELASTICITY_RANGE)
        measured = e
    lo, hi = np.log(RATE_FACTOR_RANGE[0]), np.log(RATE_FACTOR_RANGE[1])
    return np.clip(log_f + log_r / e, lo, hi), measured


def training_latents(
    enc: Encoded, fields: list[str], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per continuous field, the training flows' latents (sorted float64, one per flow with a
    finite cell): each drawn uniformly within its grid cell's latent interval (``enc.lo`` /
    ``enc.hi``), so the values are continuous like the sampler's draws. A cell open to the
    left (a gap of 0 s, a count at its floor) is taken one unit wide; a ratio field without
    packets (certain 0, the whole line) is left out, as the sampler writes it without a
    draw."""
    out = {}
    for f in fields:
        lo, hi = enc.lo[f].astype(np.float64), enc.hi[f].astype(np.float64)
        ok = np.isfinite(hi) & (enc.width[f] > 0)
        if f == "dt" and enc.atom is not None:  # gaps on an atom: the sampler draws no latent
            ok &= enc.atom == 0
        lo, hi = lo[ok], hi[ok]
        lo = np.where(np.isfinite(lo), lo, hi - 1.0)
        out[f] = np.sort(lo + rng.random(lo.size) * (hi - lo))
    return out


def value_map(sampled: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantile-map knots (src, dst), each (len(VALUE_MAP_LEVELS),) strictly increasing, from
    a field's sampled latents (n,) to its training latents (m,): ``dst = F_target^-1(
    F_sampled(src))`` at ``VALUE_MAP_LEVELS``. Knots that would not increase are dropped."""
    src = np.quantile(sampled, VALUE_MAP_LEVELS)
    dst = np.quantile(target, VALUE_MAP_LEVELS)
    keep = np.r_[True, (np.diff(src) > 1e-9) & (np.diff(dst) > 1e-9)]
    return src[keep], dst[keep]


def value_drift(sampled: np.ndarray, target: np.ndarray) -> float:
    """Share of the ``sampled`` values (n,) of a field that would have to move to another
    bin to match the training values ``target`` (m,) (total variation), over up to
    ``VALUE_DRIFT_BINS`` bins of equal training mass (ties kept in one bin; values outside
    the training range in bins of their own): 0 = the same
    distribution at that resolution, 1 = disjoint. Values, not latents, so that a cell open
    to the left (0 s gaps, a count's floor) is one bin however the sampler reached it."""
    if sampled.size == 0 or target.size == 0:
        return 1.0
    levels = np.linspace(0.0, 1.0, VALUE_DRIFT_BINS + 1)[1:-1]
    # plus a bin below and one above the training range, which hold no training value
    top = np.nextafter(target.max(), np.inf)
    edges = np.unique(np.r_[target.min(), np.quantile(target, levels), top])
    p = np.bincount(np.searchsorted(edges, target, "right"), minlength=edges.size + 1)
    q = np.bincount(np.searchsorted(edges, sampled, "right"), minlength=edges.size + 1)
    return float(0.5 * np.abs(p / target.size - q / sampled.size).sum())


def _val_flows(users: Any) -> pd.DataFrame | None:
    """The validation split of a ``UserTables`` or a frame with a ``split`` column."""
    if isinstance(users, pd.DataFrame):
        return users[users["split"] == "val"] if "split" in users else None
    try:
        return users.subset("val")
    except (KeyError, ValueError):
        return None


def _draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one index per row of ``probs`` (B, V) with uniforms ``u`` (B,)."""
    cdf = probs.cumsum(dim=-1)
    idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1)).squeeze(1)
    return idx.clamp_(max=probs.shape[1] - 1)

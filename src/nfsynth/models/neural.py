"""The neural autoregressive flow model (design §5): ``NeuralFlowModel``.

Each host's flows are generated one flow per step and, within a flow, field by field in
``neural_vocab.FIELD_ORDER`` (dt, proto, dport, sport, peer, direction, duration, packets,
bytes, rev_packets, rev_bytes). A field is conditioned on the earlier fields of its flow, the
host's last ``history`` flows, the 3-hour context of 5-minute windows, the hour and day of
week, the host's role (``schema.ROLES``) and its activity (log10 flows/day). See
``neural_net`` for the network and ``neural_vocab`` for tokens and continuous grids.

Likelihood in the evaluation space (``log_prob``): the sum over evaluation fields of the log
mass the model puts on the flow's bin, each field conditioned on the flow's *actual* earlier
fields (teacher forcing; the exact joint bin probability would marginalise them within their
bins). Continuous fields: mixture CDF differences over the bin's grid values. Categorical
fields: the summed softmax of the tokens mapping to the bin's code; a bucket token (a port,
protocol or peer outside the exact vocabulary) holds only values the space calls ``other``,
so all of its mass goes to ``other``. ``peer_kind`` is scored through the peer head (each
peer token has one kind).

Training: NLL of the grid cells (nats/flow), AdamW, OneCycle schedule, gradient clipping,
early stopping on the validation split, ``max_train_flows`` flows per epoch drawn as
windows of ``seq_len`` consecutive flows of a host (each with its ``history`` previous flows).
Sampling draws all hosts in parallel (hosts on the batch axis) until each has filled the
requested days; seeded with a ``torch.Generator``, so the same seed gives the same rows.
"""

from __future__ import annotations

import json
import logging
import math
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
from nfsynth.models.neural_net import (
    LOG_SCALE_RANGE,
    FlowNet,
    interval_log_prob,
    time_features_torch,
)
from nfsynth.models.neural_vocab import (
    BPP_RANGE,
    CATEGORICAL,
    CONTEXT_FEATURES,
    FIELD_ORDER,
    RATIO_BASE,
    CategoricalVocab,
    ContinuousSpec,
    Encoded,
    build_spec,
    build_vocab,
    encode_frame,
    grid_interval,
    host_rates,
    infer_roles,
)
from nfsynth.schema import ROLES, SECONDS_PER_DAY

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "history": 16,
    "mixtures": 6,
    "epochs": 4,
    "batch_size": 64,
    "seq_len": 32,
    "lr": 0.003,
    "weight_decay": 0.0001,
    "patience": 2,
    "max_train_flows": 40000,
    "top_ports": 64,
    "top_peers": 64,
    "device": "auto",
}
WINDOW_SECONDS = 300.0
CONTEXT_WINDOWS = 36
WEIGHTS = "weights.pt"


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("models.neural.device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


class NeuralFlowModel(FlowModel):
    """Autoregressive neural generator of per-host flow sequences (see module docstring)."""

    kind = "neural"

    def __init__(self, **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"NeuralFlowModel: unknown hyperparameters {sorted(unknown)}")
        super().__init__(**{**DEFAULTS, **hyperparameters})
        self.net_: FlowNet | None = None
        self.vocabs_: dict[str, CategoricalVocab] = {}
        self.specs_: dict[str, ContinuousSpec] = {}
        self.fields_: list[str] = []
        self.roles_: dict[str, str] = {}
        self.rates_: dict[str, float] = {}
        self.train_hosts_: list[tuple[str, float]] = []  # (role, log10 flows/day) per host
        self.window_seconds_ = WINDOW_SECONDS
        self.context_ = CONTEXT_WINDOWS
        self.history_: dict[str, Any] = {}
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
        enc_val = self._encode(val) if val is not None and len(val) else None
        self.net_ = self._new_net()
        self._init_heads(enc)
        self.history_ = self._train(enc, enc_val, rng, seed)
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
        self.specs_ = {f: build_spec(f, train) for f in self.fields_ if f not in CATEGORICAL}
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
        self.rates_ = host_rates(train)
        self.train_hosts_ = [
            (self.roles_.get(u, "both"), float(r)) for u, r in sorted(self.rates_.items())
        ]

    def _encode(self, frame: pd.DataFrame) -> Encoded:
        return encode_frame(
            frame,
            self.vocabs_,
            self.specs_,
            self.roles_,
            self.rates_,
            window_seconds=self.window_seconds_,
            context=self.context_,
        )

    def _new_net(self) -> FlowNet:
        hp = self.hyperparameters
        fields = [
            (f, "cat", self.vocabs_[f].size) if f in CATEGORICAL else (f, "cont", 0)
            for f in self.fields_
        ]
        net = FlowNet(
            fields,
            d_model=int(hp["d_model"]),
            history=int(hp["history"]),
            context=self.context_,
            mixtures=int(hp["mixtures"]),
            n_roles=len(ROLES),
        )
        return net.to(self.device_)

    def _init_heads(self, enc: Encoded) -> None:
        """Start each head at the training marginal: softmax biases at the log token
        frequencies, mixture locations at quantiles of the latent values."""
        assert self.net_ is not None
        m = self.net_.M
        for j, f in enumerate(self.fields_):
            if f in CATEGORICAL:
                counts = np.bincount(enc.cat[f], minlength=self.vocabs_[f].size) + 0.1
                prior = torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)
                with torch.no_grad():
                    self.net_.head_out[j].bias.copy_(prior.to(self.device_))
                continue
            lo, hi = enc.lo[f].astype(float), enc.hi[f].astype(float)
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

    # -- batches -----------------------------------------------------------------------
    def _segments(self, enc: Encoded) -> np.ndarray:
        """First row of every window of ``seq_len`` consecutive flows of a host, (n_seg,)."""
        L = int(self.hyperparameters["seq_len"])
        if enc.n == 0:
            return np.zeros(0, np.int64)
        offset = np.arange(enc.n) - enc.start
        return np.flatnonzero(offset % L == 0)

    def _batch(self, enc: Encoded, starts: np.ndarray) -> dict[str, torch.Tensor]:
        """Tensors of the windows starting at rows ``starts`` (see ``FlowNet.forward``)."""
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
            "tpos": torch.as_tensor(tpos, device=dev),
        }
        for f in self.fields_:
            if f in CATEGORICAL:
                out[f"x:{f}"] = torch.as_tensor(enc.cat[f][posc], device=dev)
                out[f"y:{f}"] = torch.as_tensor(enc.cat[f][tpos], device=dev)
            else:
                out[f"x:{f}"] = torch.as_tensor(enc.emb[f][posc], device=dev)
                for part in ("lo", "hi", "width"):
                    out[f"{part}:{f}"] = torch.as_tensor(getattr(enc, part)[f][tpos], device=dev)
        return out

    def _field_nll(self, heads: list[torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative log-likelihood (nats) of each field of each target, (S, L, F)."""
        parts = []
        for j, f in enumerate(self.fields_):
            if f in CATEGORICAL:
                logp = (
                    F.log_softmax(heads[j].float(), dim=-1)
                    .gather(-1, batch[f"y:{f}"].unsqueeze(-1))
                    .squeeze(-1)
                )
            else:
                logp = interval_log_prob(
                    heads[j], batch[f"lo:{f}"], batch[f"hi:{f}"], batch[f"width:{f}"]
                )
            parts.append(-logp)
        return torch.stack(parts, dim=-1)

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean NLL nats/flow over valid targets, number of valid targets)."""
        assert self.net_ is not None
        amp = self.device_.type == "cuda"
        dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast(device_type=self.device_.type, dtype=dtype, enabled=amp):
            _, heads = self.net_(batch)
        nll = self._field_nll(heads, batch).sum(-1)
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
        opt = torch.optim.AdamW(
            net.parameters(), lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"])
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=float(hp["lr"]), total_steps=epochs * steps, pct_start=0.15
        )
        val_segments = (
            self._segments(enc_val)[: max(1, per_epoch // 2)] if enc_val is not None else None
        )
        best, best_state, bad, history = math.inf, None, 0, {"train": [], "val": []}
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
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
                    batch = self._batch(enc, np.sort(order[k * S : (k + 1) * S]))
                    loss, n = self._loss(batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    sched.step()
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
            torch.use_deterministic_algorithms(previous)
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        history.update(best_val=round(best, 5), epochs=len(history["train"]), seed=seed)
        return history

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

    @torch.no_grad()
    def field_log_probs(self, flows: Any) -> dict[str, np.ndarray]:
        """Per evaluation field, the log-probability (nats) of each flow's bin, (n_flows,)
        in the frame's row order."""
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
                from nfsynth.models.neural_vocab import latent_base, raw_values

                codes = space.encode_field(f, raw_values(enc.frame, f))
                edges = space.edges[f]
                lo, hi, width = grid_interval(
                    np.expm1(edges[codes]),
                    np.expm1(edges[codes + 1]),
                    self.specs_[f],
                    latent_base(enc.frame, f),
                )
                targets[f] = (
                    f,
                    lo.astype(np.float32),
                    hi.astype(np.float32),
                    width.astype(np.float32),
                )
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
                    lo, hi, width = (torch.as_tensor(a[tpos], device=self.device_) for a in t[1:])
                    logp = interval_log_prob(heads[j], lo, hi, width)
                out[t[0]][rows] = logp.cpu().numpy()[keep]
        # back to the frame's row order
        result = {}
        for name, values in out.items():
            original = np.empty_like(values)
            original[enc.order] = values
            result[name] = original
        return result

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
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
        gen = torch.Generator(device=self.device_)
        gen.manual_seed(seed)
        roles, rates = self._host_attributes(n_users, role, rng)
        threads = torch.get_num_threads()
        if self.device_.type == "cpu":
            torch.set_num_threads(1)  # one small op after another: threads only add overhead
        try:
            frame = self._generate(roles, rates, start_seconds(start), float(days), gen)
        finally:
            torch.set_num_threads(threads)
        names = np.asarray(synthetic_user_names(n_users, role), dtype=object)
        frame["user"] = names[frame.pop("host").to_numpy()]
        for f, vocab in self.vocabs_.items():
            frame[f] = vocab.decode(frame[f].to_numpy(), rng)
        frame["proto"] = pd.to_numeric(frame["proto"], errors="coerce").fillna(0).astype(np.int64)
        table = to_sample_table(frame)
        log.info(
            "neural: sampled %d flows of %d hosts in %.2f s (%.0f flows/s)",
            table.num_rows,
            n_users,
            time.perf_counter() - t0,
            table.num_rows / max(time.perf_counter() - t0, 1e-9),
        )
        return table

    def _host_attributes(
        self, n: int, role: str | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Role ids and activity levels of ``n`` synthetic hosts: roles in the training
        hosts' proportions (largest remainder, shuffled) unless ``role`` is given; activity
        drawn from the training hosts of the role."""
        hosts = self.train_hosts_ or [("both", 3.0)]
        if role is None:
            share = (
                pd.Series([r for r, _ in hosts])
                .value_counts(normalize=True)
                .reindex(list(ROLES), fill_value=0.0)
            )
            quota = np.floor(share.to_numpy() * n).astype(int)
            rest = np.argsort(-(share.to_numpy() * n - quota), kind="stable")[: n - quota.sum()]
            quota[rest] += 1
            names = np.repeat(np.asarray(ROLES, dtype=object), quota)
            names = names[rng.permutation(n)]
        else:
            names = np.full(n, role, dtype=object)
        rates = np.empty(n, dtype=np.float32)
        for r in np.unique(names):
            pool = [v for rr, v in hosts if rr == r] or [v for _, v in hosts]
            idx = np.flatnonzero(names == r)
            rates[idx] = np.asarray(pool)[rng.integers(0, len(pool), size=idx.size)]
        ids = np.array([ROLES.index(r) for r in names], dtype=np.int64)
        return ids, rates

    def _generate(
        self, roles: np.ndarray, rates: np.ndarray, start: float, days: float, gen: torch.Generator
    ) -> pd.DataFrame:
        """Run the network step by step for every host until it passes ``start + days``."""
        assert self.net_ is not None
        net, dev = self.net_, self.device_
        n, K, C, d = len(roles), net.K, net.C, net.d
        end = start + days * SECONDS_PER_DAY
        host = torch.arange(n, device=dev)
        role = torch.as_tensor(roles, device=dev)
        rate = torch.as_tensor(rates, device=dev)
        hist = torch.zeros(n, K, d, device=dev)
        ctx = torch.zeros(n, C + 1, CONTEXT_FEATURES, device=dev, dtype=torch.float64)  # raw sums
        ts = torch.full((n,), start, dtype=torch.float64, device=dev)
        win = torch.floor(ts / self.window_seconds_).long()
        steps = torch.zeros(n, device=dev)
        first = torch.ones(n, device=dev)
        max_rate = max((v for _, v in self.train_hosts_), default=3.0)
        max_steps = int(max(2000, 20 * days * 10**max_rate))
        records: list[dict[str, torch.Tensor]] = []
        plan = self._sampling_plan()
        idx_c = torch.arange(C, device=dev)
        for _ in range(max_steps):
            if host.numel() == 0:
                break
            aux = torch.cat(
                [
                    time_features_torch(ts),
                    first[:, None],
                    (steps.clamp(max=K) / K)[:, None],
                    rate[:, None],
                ],
                dim=1,
            )
            s = net.state(hist, torch.log1p(ctx).float(), aux, role)
            acc = s
            values: dict[str, torch.Tensor] = {}
            new_ts = ts
            u_all = torch.rand(host.numel(), 2 * len(plan), generator=gen, device=dev).clamp_(
                1e-6, 1 - 1e-6
            )
            for j, (f, w1, b1, wo, bo, extra) in enumerate(plan):
                out = torch.addmm(bo, F.gelu(torch.addmm(b1, acc, w1)), wo)
                if f in CATEGORICAL:
                    x = _draw(torch.softmax(out + extra, dim=-1), u_all[:, 2 * j])
                    values[f] = x
                    acc = acc + net.embed[f].weight[x]
                    continue
                spec = self.specs_[f]
                logits, mu, log_s = out.chunk(3, dim=-1)
                comp = _draw(torch.softmax(logits, dim=-1), u_all[:, 2 * j])[:, None]
                scale = torch.exp(log_s.gather(1, comp).squeeze(1).clamp(*LOG_SCALE_RANGE))
                y = mu.gather(1, comp).squeeze(1) + scale * torch.logit(u_all[:, 2 * j + 1])
                y = y.clamp(max=spec.lat_hi + 1.0)
                if f in RATIO_BASE:
                    base_count = values[RATIO_BASE[f]]
                    y = y.clamp(math.log(BPP_RANGE[0]), math.log(BPP_RANGE[1]))
                    x = (
                        torch.round(base_count.clamp(min=1.0) * torch.exp(y) / spec.resolution)
                        * spec.resolution
                    )
                    x = x * (base_count > 0)
                else:
                    x = (
                        torch.round(torch.expm1(y) / spec.resolution).clamp_(min=0.0)
                        * spec.resolution
                    )
                values[f] = x
                tfeat = None
                if f == "dt":
                    new_ts = ts + x.double()
                    tfeat = time_features_torch(new_ts)
                acc = acc + net.field_embedding(j, torch.log1p(x) / spec.scale, tfeat)
            flow_emb = acc - s
            # record the flows that fall before the end
            inside = new_ts < end
            rec = {f: v for f, v in values.items()}
            rec["ts"], rec["host"], rec["inside"] = new_ts, host, inside
            records.append(rec)
            # update the host state
            hist = torch.cat([hist[:, 1:], flow_emb[:, None]], dim=1)
            new_win = torch.floor(new_ts / self.window_seconds_).long()
            shift = (new_win - win).clamp(min=0)
            idx = idx_c[None, :] + shift[:, None]
            complete = ctx.gather(1, idx.clamp(max=C)[..., None].expand(-1, -1, CONTEXT_FEATURES))
            complete = complete * (idx <= C)[..., None]
            partial = torch.where(shift[:, None] > 0, torch.zeros_like(ctx[:, C]), ctx[:, C])
            is_out = self._is_out(values)
            partial = partial + torch.stack(
                [
                    torch.ones_like(new_ts),
                    values["bytes"].double(),
                    values["packets"].double(),
                    is_out,
                ],
                dim=1,
            )
            ctx = torch.cat([complete, partial[:, None]], dim=1)
            ts, win = new_ts, torch.maximum(win, new_win)
            steps = steps + 1
            first = torch.zeros_like(first)
            if not bool(inside.all()):
                keep = torch.nonzero(inside).squeeze(1)
                host, role, rate, hist, ctx = (
                    host[keep],
                    role[keep],
                    rate[keep],
                    hist[keep],
                    ctx[keep],
                )
                ts, win, steps, first = ts[keep], win[keep], steps[keep], first[keep]
        else:
            log.warning(
                "neural: sampling stopped after %d steps with %d hosts unfinished",
                max_steps,
                host.numel(),
            )
        return self._records_frame(records)

    def _sampling_plan(
        self,
    ) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any]]:
        """Per field: (name, W1 (d, d), b1, W_out^T (d, out), b_out, logit mask of tokens
        never seen in training (categorical) or None)."""
        assert self.net_ is not None
        net, plan = self.net_, []
        for j, f in enumerate(self.fields_):
            extra = None
            if f in CATEGORICAL:
                seen = self.vocabs_[f].seen or [True] * self.vocabs_[f].size
                extra = torch.as_tensor([0.0 if ok else -1e9 for ok in seen], device=self.device_)
            head = net.head_out[j]
            plan.append(
                (f, net.head_w1[j], net.head_b1[j], head.weight.t().contiguous(), head.bias, extra)
            )
        return plan

    def _is_out(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        vocab = self.vocabs_["direction"]
        out_ids = torch.as_tensor([t == "out" for t in vocab.tokens], device=self.device_)
        return out_ids[values["direction"]].double()

    def _records_frame(self, records: list[dict[str, torch.Tensor]]) -> pd.DataFrame:
        if not records:
            columns = {f: np.zeros(0) for f in self.fields_}
            return pd.DataFrame({**columns, "ts": np.zeros(0), "host": np.zeros(0, np.int64)})
        keys = [k for k in records[0] if k != "inside"]
        inside = torch.cat([r["inside"] for r in records]).cpu().numpy()
        data = {k: torch.cat([r[k] for r in records]).cpu().numpy()[inside] for k in keys}
        frame = pd.DataFrame(data)
        for f in self.fields_:
            if f in CATEGORICAL:
                frame[f] = frame[f].astype(np.int64)
        return frame

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
            "window_seconds": self.window_seconds_,
            "context_windows": self.context_,
            "history": self.history_,
            "torch_version": torch.__version__,
        }
        write_model_files(path, self.kind, self.hyperparameters, state, {}, self.space_)
        weights = {k: v.detach().cpu() for k, v in self.net_.state_dict().items()}
        torch.save(weights, Path(path) / WEIGHTS)

    @classmethod
    def load(cls, path: str | Path) -> NeuralFlowModel:
        hyperparameters, state, _, space = read_model_files(path, cls.kind)
        model = cls(**hyperparameters)
        model.device_ = pick_device(hyperparameters.get("device", "auto"))
        model.space_ = space
        model.fields_ = list(state["fields"])
        model.vocabs_ = {f: CategoricalVocab.from_dict(v) for f, v in state["vocabs"].items()}
        model.specs_ = {f: ContinuousSpec(**s) for f, s in state["specs"].items()}
        model.roles_ = dict(state["roles"])
        model.rates_ = {k: float(v) for k, v in state["rates"].items()}
        model.train_hosts_ = [(str(r), float(v)) for r, v in state["train_hosts"]]
        model.window_seconds_ = float(state["window_seconds"])
        model.context_ = int(state["context_windows"])
        model.history_ = dict(state.get("history", {}))
        model.net_ = model._new_net()
        weights = torch.load(Path(path) / WEIGHTS, map_location=model.device_, weights_only=True)
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

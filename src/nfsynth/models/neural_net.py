"""The torch network of the neural flow model: embeddings, host state, per-field heads.

One step per flow. For a target flow the *state* ``s`` (d) summarises

- the last ``K`` flows of the host: each flow's embedding is the sum of its field embeddings,
  projected to ``HIST_DIM`` (once per flow); the K projections (oldest first, zeros before the
  host's first flow) are concatenated and projected to ``d`` (a causal convolution with
  kernel K; cheap enough to recompute at every sampling step);
- the 3-hour context: the ``C`` complete 5-minute windows before the previous flow's window and
  that window so far, ``(C + 1) x 4`` log1p sums (flows, bytes, packets, outgoing flows);
- the previous flow's cyclic hour and day, a first-flow flag, the share of the history that
  exists, the host's activity (log10 flows/day), its role (embedding) and its identity (an
  embedding per training host, plus one for unknown hosts, which training substitutes for a
  window's host with probability ``host_dropout``). Sampling gives each synthetic host a
  training host's profile, so chunks of one synthetic host share one identity.

Field ``j`` of the flow is predicted by its head from ``s + sum_{i<j} E_i(x_i)``: the
embeddings of the earlier fields of the same flow (MADE-like causal order, ``FIELD_ORDER``).
Categorical heads give softmax logits over the vocabulary, plus ``gate_j`` times the host's
log token frequencies (buffer ``prior_<name>``, (n_hosts + 1, V): a training host's smoothed
training frequencies, the unknown host's the pooled ones). That host prior is a product of
experts with the network: the network models how the context moves a host away from its own
mix, and a host cannot drift into tokens it never uses (a mail server into a workstation's
peers) through a run of its own sampled flows. With ``copy`` (``history_copy``), a
categorical head also gives one gate per history flow, added to the logit of the token that
flow had (``copy_logits``): sessions of one peer or service. Continuous heads give a mixture of
``M`` logistics over the field's latent value (``logits, mu, log_scale``), scored on
intervals so probabilities are exact; where the gaps have atoms (whole seconds a log's
clock or a host's period makes common, ``neural_vocab.gap_atoms``), ``dt``'s head adds
their logits, and a gap is an atom exactly or else the mixture's. ``dt``'s embedding also
carries the flow's own cyclic time, so every later field sees the hour of its flow.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from nfsynth.models.neural_vocab import CONTEXT_FEATURES, N_RBF

LOG_SCALE_RANGE = (-7.0, 4.0)
HIST_DIM = 16  # each history flow's embedding is first projected to this width
AUX_FEATURES = 7  # prev time (4), first flag, history share, host activity


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def log_expm1(x: torch.Tensor) -> torch.Tensor:
    """log(exp(x) - 1) for x > 0, stable at both ends."""
    x = x.clamp(min=1e-30)
    big = x > 15.0
    small = torch.log(torch.expm1(torch.where(big, torch.ones_like(x), x)))
    large = torch.where(big, x, torch.full_like(x, 20.0))  # safe in both branches (no NaN grads)
    return torch.where(big, large + torch.log1p(-torch.exp(-large)), small)


def interval_log_prob(
    params: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """log P(lo < Y <= hi) under a mixture of logistics, shape (...).

    ``params``: (..., 3M) = mixture logits, locations, log scales. ``lo`` may be -inf and
    ``hi`` +inf; ``width`` = hi - lo computed without cancellation (0: empty interval).
    """
    logits, mu, log_s = params.float().chunk(3, dim=-1)
    log_s = log_s.clamp(*LOG_SCALE_RANGE)
    inv_s = torch.exp(-log_s)
    lo, hi, width = lo.unsqueeze(-1), hi.unsqueeze(-1), width.unsqueeze(-1)
    left_open, right_open = torch.isinf(lo), torch.isinf(hi)
    lo_safe = torch.where(left_open, torch.zeros_like(lo), lo)
    hi_safe = torch.where(right_open, torch.zeros_like(hi), hi)
    width = torch.where(left_open | right_open, torch.ones_like(width), width)
    a = (lo_safe - mu) * inv_s
    b = (hi_safe - mu) * inv_s
    w = width * inv_s
    both = a + log_expm1(w) - softplus(a) - softplus(a + w)
    below = -softplus(-b)  # lo = -inf: log sigmoid(b)
    above = -softplus(a)  # hi = +inf: log (1 - sigmoid(a))
    comp = torch.where(
        left_open,
        torch.where(right_open, torch.zeros_like(a), below),
        torch.where(right_open, above, both),
    )
    comp = torch.where(width <= 0, torch.full_like(comp, -69.0), comp)
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + comp, dim=-1)


def with_atoms(
    atom_logits: torch.Tensor, mixture_logp: torch.Tensor, atom: torch.Tensor
) -> torch.Tensor:
    """log P of each gap (...) under a head with atoms (``neural_vocab.gap_atoms``):
    ``atom_logits`` (..., A + 1) (no atom, then each atom), ``mixture_logp`` (...) the
    mixture's log probability of the gap's cell, ``atom`` (...) int64: 1 + the atom the gap
    is, 0 for none. A gap on atom ``a`` has ``P(a) + P(none) P_mixture(cell)`` (the two ways
    to it), any other ``P(none) P_mixture(cell)``."""
    la = F.log_softmax(atom_logits.float(), dim=-1)
    on = la.gather(-1, atom.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    on = torch.where(atom > 0, on, torch.full_like(on, -1e4))
    return torch.logaddexp(la[..., 0] + mixture_logp, on)


def with_atoms_in_bin(
    atom_logits: torch.Tensor, mixture_logp: torch.Tensor, log_in: torch.Tensor
) -> torch.Tensor:
    """log P of each gap's evaluation bin (...) under a head with atoms: ``atom_logits``
    (..., A + 1) as for ``with_atoms``, ``mixture_logp`` (...) the mixture's log probability
    of the bin, ``log_in`` (..., A) 0 for the atoms inside the bin and -1e4 for the others.
    ``P(none) P_mixture(bin)`` plus the probability of every atom in the bin (the held-out
    NLL, where a bin can hold several atoms; ``with_atoms`` is the case of one gap's cell)."""
    la = F.log_softmax(atom_logits.float(), dim=-1)
    parts = torch.cat([la[..., :1] + mixture_logp.unsqueeze(-1), la[..., 1:] + log_in], -1)
    return torch.logsumexp(parts, dim=-1)


def mixture_cdf(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """P(Y <= x) under a mixture of logistics, shape (...) like ``x`` (float32; -inf gives
    0, +inf gives 1). ``params``: (..., 3M) = mixture logits, locations, log scales, as for
    ``interval_log_prob``."""
    logits, mu, log_s = params.float().chunk(3, dim=-1)
    log_s = log_s.clamp(*LOG_SCALE_RANGE)
    finite = torch.isfinite(x)
    xs = torch.where(finite, x, torch.zeros_like(x)).unsqueeze(-1)
    cdf = (torch.softmax(logits, dim=-1) * torch.sigmoid((xs - mu) * torch.exp(-log_s))).sum(-1)
    return torch.where(finite, cdf, (x > 0).to(cdf.dtype))


@contextmanager
def torch_threads(threads: int, device: torch.device) -> Iterator[None]:
    """Run torch CPU ops with at most ``threads`` intra-op threads (0: unchanged). The
    model's ops are small (thousands of rows by 64): a second thread gains little on an idle
    machine and loses several-fold when the cores are shared (OpenMP threads wait on each
    other), so the default is one."""
    before = torch.get_num_threads()
    if device.type == "cpu" and threads > 0:
        torch.set_num_threads(min(threads, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mixture_width(mixtures: int, atoms: int) -> int:
    """Outputs of a continuous head: ``3 * mixtures`` (logits, locations, log scales), plus
    ``atoms + 1`` logits (no atom, then each atom) where the field has atoms."""
    return 3 * mixtures + (atoms + 1 if atoms else 0)


def copy_logits(
    logits: torch.Tensor, gates: torch.Tensor, tokens: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """A categorical head's logits (..., V) plus, for each of the K history flows of its host,
    its gate (..., K) on the token that flow had (``tokens`` (..., K) long; ``present``
    (..., K) 0 where there is no such flow): a copy mechanism. A host's consecutive flows
    come in sessions of one peer and one service (on the simulator 57% of consecutive flows
    share their destination port and 57% their peer); through the history's embedding alone
    the network drew the same peer again for 14% of them. A token seen in several history
    flows collects each one's gate."""
    bonus = (gates * present).to(logits.dtype)
    return logits + torch.zeros_like(logits).scatter_add(-1, tokens, bonus)


class FlowNet(nn.Module):
    """Autoregressive flow network. ``fields``: (name, kind, size) in generation order, kind
    ``cat`` (size = vocabulary) or ``cont`` (size = the field's atoms, ``gap_atoms``; 0 for
    none). A continuous head's output is ``mixture_width``: the mixture's ``3 M`` parameters
    first, then its atom logits."""

    def __init__(
        self,
        fields: list[tuple[str, str, int]],
        *,
        d_model: int,
        history: int,
        context: int,
        mixtures: int,
        n_roles: int,
        n_hosts: int = 0,
        history_dropout: float = 0.3,
        host_dropout: float = 0.2,
        copy: Collection[str] = (),
    ) -> None:
        super().__init__()
        #: the categorical fields whose heads copy history tokens (``copy_logits``), and the
        #: history flows they copy from (K, or 0 where none does)
        self.copy_fields = frozenset(copy)
        self.copy_k = int(history) if self.copy_fields else 0
        self.history_dropout = float(history_dropout)
        self.fields = [(str(n), str(k), int(s)) for n, k, s in fields]
        self.d, self.K, self.C, self.M = d_model, history, context, mixtures
        d = d_model
        self.embed = nn.ModuleDict()
        for name, kind, size in self.fields:
            if kind == "cat":
                self.embed[name] = nn.Embedding(size, d)
            else:
                self.embed[name] = nn.Linear(N_RBF + 1 + (4 if name == "dt" else 0), d)
        self.register_buffer("rbf_centers", torch.linspace(0.0, 1.0, N_RBF), persistent=False)
        self.hist_in = nn.Linear(d, HIST_DIM, bias=False)
        self.hist_proj = nn.Linear(history * HIST_DIM, d)
        self.ctx_proj = nn.Linear((context + 1) * CONTEXT_FEATURES, d)
        # divides each context statistic (log1p window sums: flows, bytes, packets, outgoing)
        # so it is O(1) like the other inputs (``set_context_scale``)
        self.register_buffer("ctx_scale", torch.ones(CONTEXT_FEATURES))
        self.aux_proj = nn.Linear(AUX_FEATURES, d)
        self.role_emb = nn.Embedding(n_roles, d)
        self.host_emb = nn.Embedding(n_hosts + 1, d)  # last row: unknown host
        nn.init.zeros_(self.host_emb.weight)
        self.unknown_host = int(n_hosts)
        self.host_dropout = float(host_dropout)
        self.state_norm = nn.LayerNorm(d)
        self.state_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        n_fields = len(self.fields)
        self.head_w1 = nn.Parameter(torch.randn(n_fields, d, d) / math.sqrt(d))
        self.head_b1 = nn.Parameter(torch.zeros(n_fields, d))
        # (F, F), 1 below the diagonal: head j sees the embeddings of fields i < j
        prefix_mask = torch.tril(torch.ones(n_fields, n_fields), diagonal=-1)
        self.register_buffer("prefix_mask", prefix_mask, persistent=False)
        # a categorical head's output: its logits, then with ``copy`` one gate per history
        # flow (``copy_logits``); a continuous head's: the mixture and its atoms
        self.head_out = nn.ModuleList(
            nn.Linear(
                d,
                size + (self.copy_k if name in self.copy_fields else 0)
                if kind == "cat"
                else mixture_width(mixtures, size),
            )
            for name, kind, size in self.fields
        )
        with torch.no_grad():  # the gates start at 0: no copying until training finds it
            for j, (name, kind, size) in enumerate(self.fields):
                if kind == "cat" and name in self.copy_fields:
                    self.head_out[j].weight[size:].zero_()
                    self.head_out[j].bias[size:].zero_()
        self.cat_index = {name: j for j, (name, kind, _) in enumerate(self.fields) if kind == "cat"}
        for name, j in self.cat_index.items():
            self.register_buffer(f"prior_{name}", torch.zeros(n_hosts + 1, self.fields[j][2]))
        self.prior_gate = nn.Parameter(torch.ones(len(self.fields)))

    def set_context_scale(self, scale: torch.Tensor) -> None:
        """Scale (CONTEXT_FEATURES,) of the context statistics, > 0."""
        with torch.no_grad():
            self.ctx_scale.copy_(scale)

    def set_priors(self, priors: dict[str, torch.Tensor]) -> None:
        """Host log token frequencies per categorical field, (n_hosts + 1, V) each."""
        with torch.no_grad():
            for name, value in priors.items():
                getattr(self, f"prior_{name}").copy_(value)

    def host_prior(self, j: int, host: torch.Tensor) -> torch.Tensor | None:
        """``gate_j`` x the host prior of field ``j`` for host ids (...): (..., V), or None
        (continuous field)."""
        name = self.fields[j][0]
        if name not in self.cat_index:
            return None
        return self.prior_gate[j] * getattr(self, f"prior_{name}")[host]

    # -- pieces ------------------------------------------------------------------------
    def init_mixture(self, j: int, quantiles: torch.Tensor, spread: float) -> None:
        """Start continuous head ``j``'s locations at ``quantiles`` (M,) of its latent."""
        with torch.no_grad():
            bias = self.head_out[j].bias
            bias[self.M : 2 * self.M] = quantiles
            bias[2 * self.M : 3 * self.M] = math.log(max(spread, 1e-3))

    def init_atoms(self, j: int, shares: torch.Tensor) -> None:
        """Start continuous head ``j``'s atom logits at the log of ``shares`` (A + 1,): no
        atom, then each atom (``gap_atoms``)."""
        with torch.no_grad():
            self.head_out[j].bias[3 * self.M :] = torch.log(shares.clamp(min=1e-6))

    def rbf(self, v: torch.Tensor) -> torch.Tensor:
        """(...,) in [0, 1] -> (..., N_RBF + 1) radial features plus the value."""
        width = 1.0 / (N_RBF - 1)
        feats = torch.exp(-(((v.unsqueeze(-1) - self.rbf_centers) / width) ** 2))
        return torch.cat([feats, v.unsqueeze(-1)], dim=-1)

    def field_embedding(
        self, j: int, x: torch.Tensor, time: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embedding (..., d) of field ``j``: token ids, or scaled log1p values (plus the
        flow's cyclic time (..., 4) for ``dt``)."""
        name, kind, _ = self.fields[j]
        if kind == "cat":
            return self.embed[name](x)
        feats = self.rbf(x.float())
        if name == "dt":
            feats = torch.cat([feats, time], dim=-1)
        return self.embed[name](feats)

    def state(
        self,
        hist: torch.Tensor,
        ctx: torch.Tensor,
        aux: torch.Tensor,
        role: torch.Tensor,
        host: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Host state (..., d) from history (..., K, HIST_DIM), context (..., C + 1, 4),
        aux (..., 7), role ids (...) and training-host ids (...; None: unknown)."""
        if host is None:
            host = torch.full_like(role, self.unknown_host)
        s = (
            self.hist_proj(hist.flatten(-2))
            + self.ctx_proj((ctx / self.ctx_scale).flatten(-2))
            + self.aux_proj(aux)
            + self.role_emb(role)
            + self.host_emb(host)
        )
        s = self.state_norm(s)
        return s + self.state_mlp(s)

    def head(
        self,
        j: int,
        u: torch.Tensor,
        host: torch.Tensor,
        copy_from: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Output of field ``j``'s head from its input (..., d) for host ids (...), a
        categorical head's copying ``copy_from``'s history tokens (``heads``; None: a host
        without history)."""
        return self._head_out(j, F.gelu(u @ self.head_w1[j] + self.head_b1[j]), host, copy_from)

    def _head_out(
        self,
        j: int,
        hidden: torch.Tensor,
        host: torch.Tensor,
        copy_from: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Field ``j``'s output from its head's hidden layer (..., d): a copying head's
        logits with its gates on ``copy_from``'s tokens (``copy_logits``; None: no history,
        no gates), then a categorical head's host prior."""
        out = self.head_out[j](hidden)
        name, kind, size = self.fields[j]
        if kind == "cat" and name in self.copy_fields:
            logits = out[..., :size]
            out = logits if copy_from is None else copy_logits(logits, out[..., size:], *copy_from)
        prior = self.host_prior(j, host)
        return out if prior is None else out + prior.to(out.dtype)

    def heads(
        self,
        s: torch.Tensor,
        field_emb: torch.Tensor,
        host: torch.Tensor,
        only: list[int] | None = None,
        copy_from: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> list[torch.Tensor | None]:
        """Every head at once: ``s`` (..., d), the target flows' field embeddings
        (..., F, d), host ids (...); head j sees ``s`` plus the embeddings of fields < j.
        ``only``: compute just these heads (the others' entries are None). ``copy_from``:
        per categorical field, its history tokens (..., K) long and whether each history
        flow is there (..., K) float (``copy_logits``); a categorical head's output is then
        its logits (..., V) with the copied tokens' gates added."""
        n_fields, d = field_emb.shape[-2], field_emb.shape[-1]
        # exclusive prefix sums over the fields as one (F, F) @ (F, rows * d) product: a
        # cumsum along the short field axis (with its flip-cumsum-flip backward) took ~2x as long
        mask = self.prefix_mask.to(field_emb.dtype)
        idx = list(range(n_fields)) if only is None else list(only)
        if only is not None:
            mask = mask[idx]
        by_field = field_emb.movedim(-2, 0).reshape(n_fields, -1)
        prefix = (mask @ by_field).view(len(idx), *field_emb.shape[:-2], d)
        u = s.unsqueeze(0) + prefix  # (F or len(only), ..., d)
        w1, b1 = (
            (self.head_w1, self.head_b1) if only is None else (self.head_w1[idx], self.head_b1[idx])
        )
        bias = b1.view(len(idx), *([1] * (u.dim() - 2)), d)
        hidden = F.gelu(torch.einsum("f...d,fdh->f...h", u, w1) + bias)
        outs: list[torch.Tensor | None] = [None] * n_fields
        # unbind: one backward stack, where a select per field zero-fills the whole gradient
        for j, h in zip(idx, hidden.unbind(0), strict=True):
            copy = copy_from.get(self.fields[j][0]) if copy_from else None
            outs[j] = self._head_out(j, h, host, copy)
        return outs

    def _history_sum(
        self, batch: dict[str, torch.Tensor], embs: list[torch.Tensor], time: torch.Tensor
    ) -> torch.Tensor:
        """Sum over fields (S, P, d) of the embeddings of the flows the history sees
        (``h:<name>``). With ``hswap`` (S, P), the positions whose continuous ``h:`` values
        differ from ``x:`` (``history_noise``'s swapped flows; elsewhere they are equal), the
        continuous fields reuse the flows' own embeddings ``embs`` and embed only the swapped
        positions anew (radial features and a projection each; the categorical ones are
        lookups): at most 0.16 s of a 7 s fit on the simulator (docs/neural.md section 23)."""
        swap = batch.get("hswap")
        embedded, cont = [], []  # embedded from ``h:`` / continuous fields reusing ``embs``
        for j, (name, kind, _) in enumerate(self.fields):
            if kind == "cat" or swap is None:
                embedded.append(self.field_embedding(j, batch[f"h:{name}"], time))
            else:
                cont.append(j)
        total = torch.stack(embedded, 0).sum(0)
        if not cont:
            return total
        own = torch.stack([embs[j] for j in cont], 0).sum(0)
        if bool(swap.any()):
            swapped = torch.stack(
                [
                    self.field_embedding(j, batch[f"h:{self.fields[j][0]}"][swap], time[swap])
                    for j in cont
                ],
                0,
            ).sum(0)
            own = own.index_put((swap,), swapped)
        return total + own

    # -- training / scoring ------------------------------------------------------------
    def forward(
        self, batch: dict[str, torch.Tensor], only: list[int] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Heads of the target flows of a batch of windows.

        ``batch``: per field ``x:<name>`` (S, P) token ids or scaled values of the P = K + L
        positions; ``time`` (S, P, 4); ``valid`` (S, P); ``ctx`` (S, L, C + 1, 4);
        ``aux`` (S, L, 7); ``role`` (S, L); optionally ``hid`` (S, L) training-host ids and
        ``h:<name>`` (S, P) the flows the history sees (default: ``x:<name>``) with
        ``hswap`` (S, P) bool, where their continuous values differ from ``x:``
        (``_history_sum``). Returns (target field embeddings (S, L, F, d), head outputs:
        one (S, L, out_j) per field; with ``only``, just those fields' heads are computed
        and the others are None).
        """
        K = self.K
        time = batch["time"]
        embs = [
            self.field_embedding(j, batch[f"x:{name}"], time)
            for j, (name, _, _) in enumerate(self.fields)
        ]
        field_emb = torch.stack(embs, dim=-2)  # (S, P, F, d)
        if f"h:{self.fields[0][0]}" in batch:  # history inputs with noise (training)
            hist_sum = self._history_sum(batch, embs, time)
        else:
            hist_sum = field_emb.sum(-2)
        flow_emb = self.hist_in(hist_sum) * batch["valid"].unsqueeze(-1)
        L = flow_emb.shape[1] - K
        hist = flow_emb.unfold(1, K, 1)[:, :L]  # (S, L, HIST_DIM, K)
        hist = hist.transpose(-1, -2)  # (S, L, K, HIST_DIM), oldest first
        ctx, aux = batch["ctx"], batch["aux"]
        if self.training and self.history_dropout > 0:
            # forget the host's past for some targets, as at its first flow: the state must
            # then predict from role, activity and time alone (keeps role conditioning strong)
            drop = torch.rand(hist.shape[:2], device=hist.device) < self.history_dropout
            keep = (~drop).unsqueeze(-1)
            hist = hist * keep.unsqueeze(-1)
            ctx = ctx * keep.unsqueeze(-1)
            aux = torch.cat(
                [
                    aux[..., :4],
                    torch.where(keep, aux[..., 4:6], aux.new_tensor([1.0, 0.0])),
                    aux[..., 6:],
                ],
                -1,
            )
        copy_from = None
        if self.copy_k:  # each target's K history tokens per categorical field, oldest first
            present = batch["valid"].to(flow_emb.dtype).unfold(1, K, 1)[:, :L]  # (S, L, K)
            if self.training and self.history_dropout > 0:
                present = present * keep
            copy_from = {
                name: (batch.get(f"h:{name}", batch[f"x:{name}"]).unfold(1, K, 1)[:, :L], present)
                for name in self.copy_fields
            }
        host = batch.get("hid")
        if host is None:
            host = torch.full_like(batch["role"], self.unknown_host)
        elif self.training and self.host_dropout > 0:
            forget = torch.rand(host.shape[0], 1, device=host.device) < self.host_dropout
            host = torch.where(forget, torch.full_like(host, self.unknown_host), host)
        s = self.state(hist, ctx, aux, batch["role"], host)
        target = field_emb[:, K:]
        return target, self.heads(s, target, host, only, copy_from)

"""Peers: CTGAN and TVAE (the ``ctgan`` package, extra ``peers``) behind ``FlowModel``.

Both learn the joint distribution of one flow's fields as a table row, with no memory of a
host's earlier flows. Training table (one row per training flow that has a previous flow of
its host, at most ``max_train_rows`` of them, a deterministic subsample by seed):

- continuous: ``log1p`` of ``dt``, ``duration``, ``packets``, ``bytes`` and, where the training
  split has them, ``rev_packets``, ``rev_bytes``;
- discrete: ``hour`` (0..23) and ``proto``, ``sport``, ``dport``, ``direction``, ``peer_kind`` as
  the top-``top_k`` training values plus ``<other>``; ``<other>`` is turned back into a value by
  drawing from the next most frequent training values (``sampling.Vocab``), the peer by
  training frequency within the drawn ``peer_kind`` (``sampling.PeerTable``).

Sampling hosts (the models draw rows independently). A pool of model rows is drawn and split
by its ``hour`` field. Every synthetic host has a clock (start of the period); while the clock
is before ``start + days``: take the next block of pool rows of the clock's hour of day, lay
them one after the other by their ``dt`` from the clock, and keep those whose previous flow
still lies in the clock's hour slot (and which start before the end of the period); the clock
moves to the last kept flow. So a host's rate follows the model's hour-dependent ``dt``, and
each flow's fields come from a row generated for the hour its gap started in. Rows of an
hour are used once, in a random order, until that hour's part of the pool runs out (then they
are reused; the number is logged). Host names carry ``role``; the model does not condition
on it.

Saved models are data only. ctgan's own ``save`` pickles the whole object; it is not used.
What is saved: the network's ``state_dict`` (CTGAN: the generator; TVAE: the decoder with its
output scales ``sigma``) in ``network.pt``, read back with ``torch.load(weights_only=True)``
into ctgan's own ``Generator``/``Decoder`` classes, and the fitted ``DataTransformer``
parameters as arrays: for each continuous column the valid components of its Bayesian GMM
(means, standard deviations, weights: rdt's mode-specific normalisation ``x = 4 * std_k *
alpha + mean_k``), for each discrete column its one-hot categories, and CTGAN's
conditional-vector category probabilities. The output of the network is turned into values by
this module (:func:`decode`), which reproduces ctgan's ``inverse_transform`` from those
parameters (checked against ctgan in the tests); sampling runs through that same code before
and after a save, so a loaded model gives the same rows.

How the network output becomes a row, as ctgan does it. CTGAN: the generator runs on batches
of ``batch_size`` (at least 1000) noise vectors with a conditional vector drawn from the training category
frequencies (log-frequency, CTGAN's default) and with batch statistics in its batch norms;
a softmax span (a column's category, a continuous column's component) is a draw from the
softmax of its logits (the argmax of a Gumbel-softmax), ``alpha = tanh``. TVAE: the decoder's
output goes through ``tanh``; spans take their argmax, ``alpha`` gets Gaussian noise of the
decoder's ``sigma`` and is clipped to [-1, 1].

``log_prob`` is a SURROGATE: CTGAN and TVAE have no likelihood. At fit time
``surrogate_samples`` rows are drawn from the fitted model and encoded in the evaluation
space; a flow's log-probability is that of a product-kernel estimate over those codes
(:class:`KernelSurrogate`: on ordered, continuous fields a geometric kernel ``h^|x - s|``, on
categorical fields the Aitchison-Aitken kernel, ``1 - h`` on the same value and ``h / (n-1)``
on each other one; one bandwidth ``h`` chosen by leave-one-out likelihood of the samples).
It is a proper distribution over the evaluation codes that keeps the dependence between
fields the model produces, so its held-out NLL (bits per flow) is comparable in scale with the
other models', but it is labelled a surrogate: it measures the model's samples, not a density
the model computes.

Deterministic by seed: training seeds ctgan (``set_random_state``) and torch; sampling uses
its own ``numpy`` and ``torch`` generators. Threads: the torch thread count is the caller's;
ctgan's per-column data transform runs sequentially (it would otherwise start a process per
core through joblib).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import math
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
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

#: Value that stands for every categorical value outside the top-K in the training table.
OTHER = "<other>"
#: Categorical fields of the training table (besides ``hour``).
CATEGORICAL = ("proto", "sport", "dport", "direction", "peer_kind")
#: rdt's ``ClusterBasedNormalizer.STD_MULTIPLIER``.
STD_MULTIPLIER = 4.0
#: Rows drawn first to learn the mean time delta per hour of day (they join the pool).
PROBE_ROWS = 4096
#: Largest block of rows laid out per host and step.
MAX_BLOCK = 4096
#: Pool rows drawn per expected use (rows of a block past the hour slot are not used).
POOL_FACTOR = 1.3
#: Bandwidths tried for the surrogate's kernel.
BANDWIDTHS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
#: Rows per block when scoring the surrogate (bounds memory: block x samples floats).
SCORE_BLOCK = 1024
#: Distinct sample rows the bandwidth's leave-one-out likelihood is computed on.
LOO_QUERIES = 1000
NETWORK_FILE = "network.pt"
#: Rows generated and decoded at a time (bounds memory).
ROW_CHUNK = 50_000
#: Smallest batch CTGAN's generator runs on when sampling (its batch norms use batch statistics).
GENERATE_BATCH = 1000


def available() -> tuple[bool, str]:
    """Whether the peers can run: ``(True, "ctgan 0.12.1")`` or ``(False, reason)``.

    Cheap (does not import ctgan or torch): checks that the ``ctgan`` and ``rdt`` packages
    are installed. Use it to drop ``ctgan``/``tvae`` models from a run with a note.
    """
    missing = [name for name in ("ctgan", "rdt") if importlib.util.find_spec(name) is None]
    if missing:
        return False, (
            f"package(s) {', '.join(missing)} not installed; install the extra with "
            "`pip install -e '.[peers]'`"
        )
    return True, f"ctgan {importlib.metadata.version('ctgan')}"


def busiest_host_hour(frame: pd.DataFrame) -> int:
    """Most flows one host had in one clock hour (``floor(ts / 3600)``) of ``frame``; 1 if
    empty."""
    if len(frame) == 0:
        return 1
    slot = np.floor(S.numeric(frame, "ts") / 3600.0).astype(np.int64)
    counts = pd.Series(slot).groupby([frame["user"].astype(str).to_numpy(), slot]).size()
    return int(max(counts.max(), 1))


def _require_ctgan() -> Any:
    ok, reason = available()
    if not ok:
        raise ImportError(f"CTGAN/TVAE models need the ctgan package: {reason}")
    import ctgan

    return ctgan


# -- the training table --------------------------------------------------------------------------
def training_table(
    frame: pd.DataFrame,
    continuous: list[str],
    vocabs: dict[str, S.Vocab],
    max_rows: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The table CTGAN/TVAE train on: ``log_<field>`` (float64) for the continuous fields,
    ``hour`` and the categorical fields as text (``OTHER`` outside the top-K).

    Rows: flows with a previous flow of their host (the first flow's ``dt`` is 0 by
    construction) and finite continuous values; at most ``max_rows``, chosen by ``rng`` and
    kept in time order. Shape (n_rows, len(continuous) + 1 + len(vocabs)).
    """
    keep = S.previous_row(frame) >= 0
    if not keep.any():
        keep = np.ones(len(frame), dtype=bool)
    columns: dict[str, np.ndarray] = {}
    for name in continuous:
        columns[f"log_{name}"] = np.log1p(S.numeric(frame, name))
    hours = frame["hour"].to_numpy() if "hour" in frame else S.hour_of(frame["ts"].to_numpy())
    columns["hour"] = np.asarray(hours, dtype=np.int64).astype(str).astype(object)
    for name, vocab in vocabs.items():
        codes = vocab.codes(frame[name])
        columns[name] = np.array(vocab.values + [OTHER], dtype=object)[codes]
    table = pd.DataFrame(columns)
    finite = np.all(np.isfinite(table[[f"log_{n}" for n in continuous]].to_numpy()), axis=1)
    rows = np.flatnonzero(keep & finite)
    if len(rows) > max_rows:
        rows = np.sort(rng.choice(rows, size=max_rows, replace=False))
    return table.iloc[rows].reset_index(drop=True)


# -- what the fitted transformer holds, as data ----------------------------------------------------
@dataclass
class Column:
    """One column of the network's output. Continuous: ``means``, ``stds``, ``weights`` of the
    valid GMM components (shape (k,)), output span ``1 + k``; discrete: ``categories`` (text),
    output span ``len(categories)``."""

    name: str
    kind: str  # "continuous" | "discrete"
    means: np.ndarray | None = None
    stds: np.ndarray | None = None
    weights: np.ndarray | None = None
    categories: list[str] | None = None

    @property
    def width(self) -> int:
        if self.kind == "continuous":
            return 1 + len(self.means)
        return len(self.categories)


def columns_from_transformer(transformer: Any) -> list[Column]:
    """The fitted parameters of ctgan's ``DataTransformer``, in output order."""
    columns = []
    for info in transformer._column_transform_info_list:
        if info.column_type == "continuous":
            gm = info.transform
            bgm = gm._bgm_transformer
            valid = np.asarray(gm.valid_component_indicator, dtype=bool)
            columns.append(
                Column(
                    name=info.column_name,
                    kind="continuous",
                    means=np.asarray(bgm.means_, dtype=float).reshape(-1)[valid],
                    stds=np.sqrt(np.asarray(bgm.covariances_, dtype=float)).reshape(-1)[valid],
                    weights=np.asarray(bgm.weights_, dtype=float).reshape(-1)[valid],
                )
            )
        else:
            categories = [str(c) for c in info.transform.dummies]
            columns.append(Column(name=info.column_name, kind="discrete", categories=categories))
    return columns


def _gumbel_argmax(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A draw from softmax(logits) per row (Gumbel-max), int64 (n,)."""
    u = rng.random(logits.shape)
    return np.argmax(logits - np.log(-np.log(np.clip(u, 1e-300, 1.0))), axis=1)


def decode(
    raw: np.ndarray,
    columns: list[Column],
    mode: str,
    rng: np.random.Generator,
    sigmas: np.ndarray | None = None,
) -> pd.DataFrame:
    """Rows of values from network output ``raw`` (n, sum of widths), as ctgan's
    ``inverse_transform`` would give them.

    ``mode="ctgan"``: ``raw`` is the generator's output before activation: ``alpha = tanh``,
    spans drawn from their softmax. ``mode="tvae"``: ``raw`` is ``tanh`` of the decoder
    output: spans by argmax, ``alpha`` plus N(0, ``sigmas[st]``) noise. ``mode="activated"``:
    ``raw`` is already activated (tests): spans by argmax, ``alpha`` as is.
    Continuous values ``clip(alpha, -1, 1) * 4 * std_k + mean_k`` (float64), discrete values
    the category text.
    """
    out: dict[str, np.ndarray] = {}
    st = 0
    for col in columns:
        span = raw[:, st : st + col.width]
        if col.kind == "continuous":
            alpha = span[:, 0].astype(float)
            logits = span[:, 1:]
            if mode == "ctgan":
                alpha = np.tanh(alpha)
                comp = _gumbel_argmax(logits, rng)
            else:
                comp = np.argmax(logits, axis=1)
                if mode == "tvae" and sigmas is not None:
                    alpha = rng.normal(alpha, float(sigmas[st]))
            alpha = np.clip(alpha, -1.0, 1.0)
            out[col.name] = alpha * STD_MULTIPLIER * col.stds[comp] + col.means[comp]
        else:
            code = _gumbel_argmax(span, rng) if mode == "ctgan" else np.argmax(span, axis=1)
            out[col.name] = np.array(col.categories, dtype=object)[code]
        st += col.width
    if st != raw.shape[1]:
        raise ValueError(f"network output has {raw.shape[1]} columns, the transformer {st}")
    return pd.DataFrame(out)


# -- the likelihood surrogate --------------------------------------------------------------------
@dataclass
class KernelSurrogate:
    """Product-kernel estimate over evaluation codes of rows drawn from a model (see module
    docstring). ``codes``: (U, F) distinct code rows of the samples, ``log_weight``: (U,) log
    of their share; ``sizes``: codes per field; ``ordered``: continuous (ordered) fields."""

    fields: list[str]
    sizes: list[int]
    ordered: list[bool]
    codes: np.ndarray
    log_weight: np.ndarray
    bandwidth: float

    @classmethod
    def fit(cls, space: EvalSpace, rows: pd.DataFrame) -> KernelSurrogate:
        """Encode ``rows`` (model rows with the evaluation fields) and choose the bandwidth
        by leave-one-out log-likelihood over ``BANDWIDTHS``."""
        fields = [f for f in space.fields if f in rows.columns]
        missing = [f for f in space.fields if f not in rows.columns]
        if missing:
            raise ValueError(f"surrogate: model rows lack evaluation field(s) {', '.join(missing)}")
        encoded = space.encode(rows)
        matrix = np.stack([encoded[f] for f in fields], axis=1)
        unique, counts = np.unique(matrix, axis=0, return_counts=True)
        model = cls(
            fields=fields,
            sizes=[space.n_bins(f) for f in fields],
            ordered=[space.is_continuous(f) for f in fields],
            codes=unique.astype(np.int64),
            log_weight=np.log(counts / counts.sum()),
            bandwidth=BANDWIDTHS[0],
        )
        n = counts.sum()
        # leave-one-out over at most LOO_QUERIES distinct rows (a fixed, evenly spaced subset)
        query = np.unique(
            np.linspace(0, len(unique) - 1, min(len(unique), LOO_QUERIES)).astype(np.int64)
        )
        scores = []
        for h in BANDWIDTHS:
            model.bandwidth = h
            total = model._score_codes(unique[query])  # log of sum_j w_j K(u | s_j)
            own = model._own_log_kernel()[query]  # log K(u | u)
            # leave one copy of u out: (n * exp(total) - exp(own)) / (n - 1)
            with np.errstate(divide="ignore"):
                rest = (
                    np.log(n) + total + np.log1p(-np.minimum(np.exp(own - total - np.log(n)), 1.0))
                )
            loo = np.maximum(rest, np.log(S.TINY)) - np.log(max(n - 1, 1))
            scores.append(float((counts[query] * loo).sum() / counts[query].sum()))
        model.bandwidth = BANDWIDTHS[int(np.argmax(scores))]
        log.info(
            "surrogate: %d rows, %d distinct; bandwidth %.3g (leave-one-out nats/row %s)",
            n, len(unique), model.bandwidth, ", ".join(f"{s:.2f}" for s in scores),
        )  # fmt: skip
        return model

    def log_kernel(self, i: int) -> np.ndarray:
        """``L[x, s] = log K(x | s)`` of field ``i``, shape (n, n), columns sum to one."""
        n, h = self.sizes[i], self.bandwidth
        if n == 1:
            return np.zeros((1, 1))
        if self.ordered[i]:
            d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
            k = h**d
            return np.log(k / k.sum(axis=0, keepdims=True))
        return np.where(np.eye(n, dtype=bool), np.log1p(-h), np.log(h / (n - 1)))

    def _own_log_kernel(self) -> np.ndarray:
        total = np.zeros(len(self.codes))
        for i in range(len(self.fields)):
            diag = np.diag(self.log_kernel(i))
            total += diag[self.codes[:, i]]
        return total

    def _score_codes(self, x: np.ndarray) -> np.ndarray:
        """log sum_j w_j prod_f K_f(x_f | s_jf) for code rows ``x`` (n, F) -> (n,)."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        m = np.zeros((offsets[-1], len(self.codes)))
        for i in range(len(self.fields)):
            m[offsets[i] : offsets[i + 1]] = self.log_kernel(i)[:, self.codes[:, i]]
        out = np.empty(len(x))
        for lo in range(0, len(x), SCORE_BLOCK):
            block = x[lo : lo + SCORE_BLOCK]
            onehot = np.zeros((len(block), offsets[-1]))
            rows = np.arange(len(block))
            for i in range(len(self.fields)):
                onehot[rows, offsets[i] + block[:, i]] = 1.0
            out[lo : lo + len(block)] = logsumexp(onehot @ m + self.log_weight[None, :], axis=1)
        return out

    def log_prob(self, space: EvalSpace, flows: pd.DataFrame) -> np.ndarray:
        """Surrogate log-probability (nats) of each flow's evaluation codes, (n_flows,)."""
        S.check_columns(flows, self.fields, "peers.log_prob")
        encoded = space.encode(flows)
        x = (
            np.stack([encoded[f] for f in self.fields], axis=1)
            if len(flows)
            else np.zeros((0, len(self.fields)), np.int64)
        )
        if len(x) == 0:
            return np.zeros(0)
        unique, inverse = np.unique(x, axis=0, return_inverse=True)
        return self._score_codes(unique)[inverse.reshape(-1)]


# -- the models ------------------------------------------------------------------------------------
class _PeerModel(FlowModel):
    """What CTGAN and TVAE share: the training table, decoding, hosts, surrogate, files."""

    mode: ClassVar[str] = ""
    #: ctgan's layer widths where ``hidden`` is not given.
    default_hidden: ClassVar[tuple[int, ...]] = (256, 256)

    def __init__(
        self,
        epochs: int = 10,
        batch_size: int = 500,
        max_train_rows: int = 10000,
        top_k: int = 32,
        surrogate_samples: int = 5000,
        embedding_dim: int = 128,
        hidden: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        if batch_size % 10:
            raise ValueError(f"{self.kind}: batch_size must be a multiple of 10, not {batch_size}")
        super().__init__(
            epochs=int(epochs),
            batch_size=int(batch_size),
            max_train_rows=int(max_train_rows),
            top_k=int(top_k),
            surrogate_samples=int(surrogate_samples),
            embedding_dim=int(embedding_dim),
            hidden=[int(h) for h in (hidden or self.default_hidden)],
        )
        self.continuous_: list[str] = []
        self.integer_: dict[str, bool] = {}
        self.vocabs_: dict[str, S.Vocab] = {}
        self.peers_: S.PeerTable | None = None
        self.columns_: list[Column] = []
        self.network_: Any = None
        self.cond_probs_: np.ndarray = np.zeros(0)
        self.surrogate_: KernelSurrogate | None = None
        self.max_hour_flows_ = MAX_BLOCK  # busiest training host-hour (caps sample blocks)
        self.fit_info_: dict[str, Any] = {}

    # -- to be provided by CTGAN / TVAE --------------------------------------------------------
    def _train(self, table: pd.DataFrame, discrete: list[str], seed: int) -> None:
        raise NotImplementedError

    def _raw_rows(self, n: int, gen: Any, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _build_network(self, data_dim: int, cond_dim: int) -> Any:
        raise NotImplementedError

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, users: Any, *, seed: int, space: EvalSpace | None = None) -> _PeerModel:
        """Train on the training split of ``users``; draw the surrogate's rows. Returns self."""
        _require_ctgan()
        import torch

        t0 = time.perf_counter()
        hp = self.hyperparameters
        frame = train_flows(users)
        if len(frame) == 0:
            raise ValueError(f"{self.kind}: the training split holds no flows")
        self.space_ = self._space_for(users, space)
        rng = np.random.default_rng(seed)
        self.continuous_ = S.present_continuous(frame)
        self.integer_ = {n: S.is_integer_valued(S.numeric(frame, n)) for n in self.continuous_}
        self.vocabs_ = {n: S.Vocab.fit(frame[n], hp["top_k"]) for n in CATEGORICAL if n in frame}
        self.peers_ = S.PeerTable.fit(frame, hp["top_k"])
        self.max_hour_flows_ = busiest_host_hour(frame)
        table = training_table(frame, self.continuous_, self.vocabs_, hp["max_train_rows"], rng)
        if len(table) < 10:
            raise ValueError(f"{self.kind}: {len(table)} usable training rows; need at least 10")
        torch.manual_seed(seed)
        t1 = time.perf_counter()
        self._train(table, ["hour", *self.vocabs_], seed)
        train_seconds = time.perf_counter() - t1
        t2 = time.perf_counter()
        rows = self.draw_rows(hp["surrogate_samples"], np.random.default_rng([seed, 1]), seed + 1)
        self.surrogate_ = KernelSurrogate.fit(self.space_, rows)
        self.fit_info_ = {
            "train_rows": len(table),
            "train_seconds": train_seconds,
            "surrogate_seconds": time.perf_counter() - t2,
            "torch_threads": torch.get_num_threads(),
        }
        log.info(
            "%s: %d training rows (%d columns, output width %d), %d epochs in %.1f s; "
            "surrogate in %.1f s; %.1f s in all (%d torch threads)",
            self.kind, len(table), table.shape[1], sum(c.width for c in self.columns_),
            hp["epochs"], train_seconds, self.fit_info_["surrogate_seconds"],
            time.perf_counter() - t0, torch.get_num_threads(),
        )  # fmt: skip
        return self

    def _after_training(self, transformer: Any, network: Any) -> None:
        self.columns_ = columns_from_transformer(transformer)
        self.network_ = network.cpu().eval()

    # -- rows ------------------------------------------------------------------------------------
    def draw_rows(self, n: int, rng: np.random.Generator, torch_seed: int) -> pd.DataFrame:
        """``n`` rows from the model as flow field values: ``hour`` (int64), continuous fields
        (float64, >= 0; whole numbers where training had them), categorical fields (text,
        ``<other>`` drawn from the training pool), ``peer``. Shape (n, ...)."""
        import torch

        gen = torch.Generator().manual_seed(int(torch_seed))
        sigmas = self._sigmas()
        chunks = []
        for lo in range(0, max(n, 1), ROW_CHUNK):
            size = min(ROW_CHUNK, n - lo)
            with torch.no_grad():
                raw = self._raw_rows(size, gen, rng)
            chunks.append(decode(raw, self.columns_, self.mode, rng, sigmas))
        values = pd.concat(chunks, ignore_index=True)
        out = pd.DataFrame({"hour": pd.to_numeric(values["hour"]).to_numpy(dtype=np.int64)})
        for name in self.continuous_:
            x = np.clip(np.expm1(values[f"log_{name}"].to_numpy(dtype=float)), 0.0, None)
            out[name] = np.rint(x) if self.integer_[name] else x
        for name, vocab in self.vocabs_.items():
            text = values[name].to_numpy(dtype=object)
            lookup = {v: i for i, v in enumerate(vocab.values)}
            codes = pd.Series(text).map(lookup).fillna(len(vocab.values)).to_numpy(dtype=np.int64)
            out[name] = vocab.decode(codes, rng)
        kinds = (
            out["peer_kind"].to_numpy(dtype=object)
            if "peer_kind" in out
            else np.full(n, "", object)
        )
        out["peer"] = self.peers_.draw(kinds, rng)
        return out

    def _sigmas(self) -> np.ndarray | None:
        return None

    # -- scoring ---------------------------------------------------------------------------------
    def log_prob(self, flows: Any) -> np.ndarray:
        """SURROGATE log-probability (nats) of each flow in the evaluation space, (n_flows,):
        the kernel estimate over the model's own samples (module docstring). CTGAN and TVAE
        have no likelihood of their own."""
        self._check_fitted()
        return self.surrogate_.log_prob(self.space_, flows_frame(flows))

    # -- sampling --------------------------------------------------------------------------------
    def sample(
        self,
        n_users: int,
        start: datetime | float,
        days: float,
        *,
        seed: int,
        role: str | None = None,
    ) -> pa.Table:
        """Synthetic flows of ``n_users`` hosts over ``days`` days (module docstring)."""
        self._check_sample_args(role)
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        t_start, horizon = start_seconds(start), days * SECONDS_PER_DAY
        pool = self.draw_rows(PROBE_ROWS, rng, seed)
        block = self._block_sizes(pool)
        slots = np.arange(math.floor(t_start / 3600.0), math.ceil((t_start + horizon) / 3600.0))
        expected = n_users * int(block[(slots % 24).astype(int)].sum())
        if expected > S.MAX_SAMPLE_FLOWS:
            raise ValueError(
                f"{self.kind}: sample would use about {expected} rows; limit {S.MAX_SAMPLE_FLOWS}: "
                "sample fewer hosts or days"
            )
        extra = int(POOL_FACTOR * expected) - len(pool)
        if extra > 0:
            pool = pd.concat([pool, self.draw_rows(extra, rng, seed + 1)], ignore_index=True)
        host, ts, row, reused = lay_out_hosts(
            pool["dt"].to_numpy(dtype=float),
            pool["hour"].to_numpy(),
            block,
            n_users,
            t_start,
            horizon,
            rng,
            max_per_hour=self.hour_cap(),
        )
        fields = {
            n: pool[n].to_numpy()[row] for n in pool.columns if n not in ("hour", "dt", "peer")
        }
        frame = S.sample_frame(
            synthetic_user_names(n_users, role), host, ts, fields, pool["peer"].to_numpy()[row]
        )
        table = to_sample_table(frame)
        log.info(
            "%s: sampled %d flows of %d hosts from a pool of %d rows (%d reused) in %.2f s",
            self.kind, len(ts), n_users, len(pool), reused, time.perf_counter() - t0,
        )  # fmt: skip
        return table

    def _block_sizes(self, probe: pd.DataFrame) -> np.ndarray:
        """Rows per block per hour of day: 1.25 x the rows one hour holds at the hour's mean
        time delta, plus 2, in [2, ``hour_cap()``]. int64 (24,)."""
        dt = probe["dt"].to_numpy(dtype=float)
        hour = probe["hour"].to_numpy()
        overall = max(float(dt.mean()), 1e-3)
        sums = np.bincount(hour, weights=dt, minlength=24)[:24]
        counts = np.bincount(hour, minlength=24)[:24]
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        cap = self.hour_cap()
        return np.clip(np.ceil(1.25 * 3600.0 / np.maximum(mean, 1e-3)) + 2, 2, cap).astype(np.int64)

    def hour_cap(self) -> int:
        """Most flows a synthetic host gets in one clock hour: 1.25 x the busiest training
        host-hour plus 2, at most ``MAX_BLOCK`` (a model whose gaps are far too short would
        otherwise flood the sample; its hosts then run at about the busiest real rate)."""
        return int(min(MAX_BLOCK, math.ceil(1.25 * self.max_hour_flows_) + 2))

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``model.json``, ``arrays.npz``, ``evalspace.json`` and ``network.pt`` (a
        ``state_dict``); no pickled objects."""
        import torch

        self._check_fitted()
        arrays: dict[str, np.ndarray] = {
            "cond_probs": self.cond_probs_,
            "surrogate_codes": self.surrogate_.codes,
            "surrogate_log_weight": self.surrogate_.log_weight,
        }
        columns = []
        for i, col in enumerate(self.columns_):
            entry: dict[str, Any] = {"name": col.name, "kind": col.kind}
            if col.kind == "continuous":
                for key in ("means", "stds", "weights"):
                    arrays[f"col{i}_{key}"] = getattr(col, key)
            else:
                entry["categories"] = col.categories
            columns.append(entry)
        sur = self.surrogate_
        state = {
            "continuous": self.continuous_,
            "integer": self.integer_,
            "vocabs": {n: v.to_state() for n, v in self.vocabs_.items()},
            "peers": self.peers_.to_state(),
            "columns": columns,
            "surrogate": {
                "fields": sur.fields,
                "sizes": sur.sizes,
                "ordered": sur.ordered,
                "bandwidth": sur.bandwidth,
            },
            "fit_info": self.fit_info_,
            "max_hour_flows": int(self.max_hour_flows_),
            "versions": {"ctgan": available()[1], "torch": torch.__version__},
        }
        write_model_files(path, self.kind, self.hyperparameters, state, arrays, self.space_)
        torch.save(self.network_.state_dict(), Path(path) / NETWORK_FILE)

    @classmethod
    def load(cls, path: str | Path) -> _PeerModel:
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``)."""
        _require_ctgan()
        import torch

        hp, state, arrays, space = read_model_files(path, cls.kind)
        model = cls(**hp)
        model.space_ = space
        model.continuous_ = list(state["continuous"])
        model.integer_ = {k: bool(v) for k, v in state["integer"].items()}
        model.vocabs_ = {n: S.Vocab.from_state(v) for n, v in state["vocabs"].items()}
        model.peers_ = S.PeerTable.from_state(state["peers"])
        model.columns_ = [
            Column(
                name=c["name"],
                kind=c["kind"],
                categories=c.get("categories"),
                **{
                    k: arrays[f"col{i}_{k}"]
                    for k in ("means", "stds", "weights")
                    if c["kind"] == "continuous"
                },
            )  # fmt: skip
            for i, c in enumerate(state["columns"])
        ]
        model.cond_probs_ = arrays["cond_probs"]
        sur = state["surrogate"]
        model.surrogate_ = KernelSurrogate(
            fields=sur["fields"], sizes=sur["sizes"], ordered=sur["ordered"],
            codes=arrays["surrogate_codes"], log_weight=arrays["surrogate_log_weight"],
            bandwidth=float(sur["bandwidth"]),
        )  # fmt: skip
        model.fit_info_ = state.get("fit_info", {})
        model.max_hour_flows_ = int(state.get("max_hour_flows", MAX_BLOCK))
        network = model._build_network(sum(c.width for c in model.columns_), len(model.cond_probs_))
        weights = torch.load(Path(path) / NETWORK_FILE, weights_only=True, map_location="cpu")
        network.load_state_dict(weights)
        model.network_ = network.eval()
        return model


class CTGANModel(_PeerModel):
    """CTGAN (Xu et al. 2019, the ``ctgan`` package) as a flow model (module docstring).

    Hyperparameters: ``epochs``, ``batch_size`` (multiple of 10, CTGAN's ``pac``),
    ``max_train_rows``, ``top_k``, ``surrogate_samples``, ``embedding_dim``, ``hidden`` (the
    generator's and discriminator's layer widths).
    """

    kind = "ctgan"
    mode = "ctgan"

    def _train(self, table: pd.DataFrame, discrete: list[str], seed: int) -> None:
        from ctgan import CTGAN
        from joblib import parallel_config

        hp = self.hyperparameters
        synth = CTGAN(
            embedding_dim=hp["embedding_dim"], generator_dim=tuple(hp["hidden"]),
            discriminator_dim=tuple(hp["hidden"]), batch_size=hp["batch_size"],
            epochs=hp["epochs"], enable_gpu=False, verbose=False,
        )  # fmt: skip
        synth.set_random_state(int(seed))
        with parallel_config(backend="sequential"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth.fit(table, discrete_columns=discrete)
        sampler = synth._data_sampler
        probs = sampler._discrete_column_category_prob.flatten()
        probs = probs[probs != 0]
        self.cond_probs_ = probs / probs.sum()
        self._after_training(synth._transformer, synth._generator)

    def _build_network(self, data_dim: int, cond_dim: int) -> Any:
        from ctgan.synthesizers.ctgan import Generator

        hp = self.hyperparameters
        return Generator(hp["embedding_dim"] + cond_dim, tuple(hp["hidden"]), data_dim)

    def _raw_rows(self, n: int, gen: Any, rng: np.random.Generator) -> np.ndarray:
        """Generator output (before activation) for ``n`` rows, in batches of ``batch_size``
        (at least ``GENERATE_BATCH``) with batch statistics in the batch norms (as ctgan
        samples). (n, data_dim)."""
        import torch
        import torch.nn.functional as F

        bs = max(self.hyperparameters["batch_size"], GENERATE_BATCH)
        emb = self.hyperparameters["embedding_dim"]
        n_cond = len(self.cond_probs_)
        layers = list(self.network_.seq)
        out = []
        for _ in range(n // bs + 1):
            z = torch.randn(bs, emb, generator=gen)
            cond = np.zeros((bs, n_cond), dtype=np.float32)
            if n_cond:
                cond[np.arange(bs), rng.choice(n_cond, size=bs, p=self.cond_probs_)] = 1.0
            h = torch.cat([z, torch.from_numpy(cond)], dim=1)
            for layer in layers[:-1]:  # Residual: cat([relu(bn(fc(h))), h])
                y = layer.fc(h)
                y = F.batch_norm(
                    y, None, None, layer.bn.weight, layer.bn.bias, True, 0.0, layer.bn.eps
                )
                h = torch.cat([torch.relu(y), h], dim=1)
            out.append(layers[-1](h))
        return torch.cat(out).numpy().astype(np.float64)[:n]


class TVAEModel(_PeerModel):
    """TVAE (Xu et al. 2019, the ``ctgan`` package) as a flow model (module docstring).

    Hyperparameters: ``epochs``, ``batch_size``, ``max_train_rows``, ``top_k``,
    ``surrogate_samples``, ``embedding_dim`` (latent size), ``hidden`` (encoder and decoder
    layer widths).
    """

    kind = "tvae"
    mode = "tvae"
    default_hidden = (128, 128)

    def _train(self, table: pd.DataFrame, discrete: list[str], seed: int) -> None:
        from ctgan import TVAE
        from joblib import parallel_config

        hp = self.hyperparameters
        synth = TVAE(
            embedding_dim=hp["embedding_dim"], compress_dims=tuple(hp["hidden"]),
            decompress_dims=tuple(hp["hidden"]), batch_size=hp["batch_size"],
            epochs=hp["epochs"], enable_gpu=False, verbose=False,
        )  # fmt: skip
        synth.set_random_state(int(seed))
        with parallel_config(backend="sequential"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth.fit(table, discrete_columns=discrete)
        self.cond_probs_ = np.zeros(0)
        self._after_training(synth.transformer, synth.decoder)

    def _build_network(self, data_dim: int, cond_dim: int) -> Any:
        from ctgan.synthesizers.tvae import Decoder

        hp = self.hyperparameters
        return Decoder(hp["embedding_dim"], tuple(hp["hidden"]), data_dim)

    def _sigmas(self) -> np.ndarray:
        return self.network_.sigma.detach().numpy().astype(np.float64)

    def _raw_rows(self, n: int, gen: Any, rng: np.random.Generator) -> np.ndarray:
        """``tanh`` of the decoder output for ``n`` standard-normal latents, (n, data_dim)."""
        import torch

        z = torch.randn(n, self.hyperparameters["embedding_dim"], generator=gen)
        fake, _ = self.network_(z)
        return torch.tanh(fake).numpy().astype(np.float64)


def lay_out_hosts(
    dt: np.ndarray,
    hour: np.ndarray,
    block: np.ndarray,
    n_hosts: int,
    start: float,
    horizon: float,
    rng: np.random.Generator,
    max_per_hour: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Timestamps of ``n_hosts`` hosts from pool rows (time delta ``dt`` s and ``hour`` of day,
    shapes (P,)) as the module docstring describes; ``block``: rows per block by hour (24,).
    ``max_per_hour``: a host that has this many flows in a clock hour skips to the next hour
    (its next flow comes one row's gap after the hour starts); the capped host-hours are logged.

    Returns (host index, ts, pool row, rows reused): int64, float64, int64 arrays (n_flows,)
    sorted by host then time, and the count of pool rows used more than once.
    """
    order = rng.permutation(len(dt))
    by_hour = [order[hour[order] == h] for h in range(24)]
    fallback = order
    pointer = np.zeros(24, dtype=np.int64)
    clock = np.zeros(n_hosts)  # seconds after start of each host's last flow
    active = np.ones(n_hosts, dtype=bool)
    hosts_out, times_out, rows_out = [], [], []
    reused = total = capped = 0
    cap = int(max_per_hour) if max_per_hour else None
    slot_of = np.full(n_hosts, -1.0)  # clock hour each host's count is for
    in_hour = np.zeros(n_hosts, dtype=np.int64)  # flows of the host in that hour so far
    while active.any():
        idle = np.flatnonzero(active)
        hours = S.hour_of(start + clock[idle])
        for h in np.unique(hours):
            hosts = idle[hours == h]
            pool = by_hour[h] if len(by_hour[h]) else fallback
            b = int(block[h])
            take = pointer[h] + np.arange(len(hosts) * b)
            reused += int((take >= len(pool)).sum())
            pointer[h] += len(take)
            rows = pool[take % len(pool)].reshape(len(hosts), b)
            times = clock[hosts, None] + np.cumsum(dt[rows], axis=1)
            prev = np.concatenate([clock[hosts, None], times[:, :-1]], axis=1)
            slot = np.floor((start + clock[hosts]) / 3600.0)
            in_slot = np.cumprod(np.floor((start + prev) / 3600.0) == slot[:, None], axis=1).astype(
                bool
            )
            keep = in_slot & (times < horizon)  # a prefix of each block (times increase)
            full = np.zeros(len(hosts), dtype=bool)
            if cap is not None:
                fresh = slot_of[hosts] != slot
                in_hour[hosts] = np.where(fresh, 0, in_hour[hosts])
                slot_of[hosts] = slot
                room = cap - in_hour[hosts]
                keep &= np.arange(b)[None, :] < room[:, None]
                full = keep.sum(axis=1) >= room
                in_hour[hosts] += keep.sum(axis=1)
                capped += int(full.sum())
            n_keep = keep.sum(axis=1)
            hosts_out.append(np.broadcast_to(hosts[:, None], keep.shape)[keep])
            times_out.append(times[keep])
            rows_out.append(rows[keep])
            total += int(n_keep.sum())
            last = np.where(
                n_keep > 0, times[np.arange(len(hosts)), np.maximum(n_keep - 1, 0)], clock[hosts]
            )
            # a host at its hour's cap waits for the next hour
            clock[hosts] = np.where(full, (slot + 1) * 3600.0 - start, last)
            active[hosts] = ~(in_slot & (times >= horizon)).any(axis=1) & (clock[hosts] < horizon)
            if total > S.MAX_SAMPLE_FLOWS:
                raise ValueError(
                    f"sample exceeds {S.MAX_SAMPLE_FLOWS} flows: sample fewer hosts or days"
                )
    if capped:
        log.warning(
            "%d host-hours reached the cap of %d flows (the model's gaps are shorter than any "
            "training host's); those hosts skipped to the next hour",
            capped, cap,
        )  # fmt: skip
    host = np.concatenate(hosts_out) if hosts_out else np.zeros(0, np.int64)
    ts = np.concatenate(times_out) if times_out else np.zeros(0)
    row = np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)
    order = np.lexsort((ts, host))
    return host[order].astype(np.int64), start + ts[order], row[order].astype(np.int64), reused


__all__ = ["CTGANModel", "KernelSurrogate", "TVAEModel", "available", "decode", "lay_out_hosts"]

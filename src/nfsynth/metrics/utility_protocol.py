"""Utility: predict the protocol from the other fields, train on synthetic, test on real.

A ``sklearn.ensemble.HistGradientBoostingClassifier`` (fixed seed, categorical features
native, L2-regularised leaf values) predicts the protocol's evaluation-space code from the
other fields: log1p of the continuous fields, the codes of ``sport``, ``dport``,
``direction``, ``peer_kind`` and the hour. ``tstr_protocol_f1``: macro-F1 on the real test
flows when trained on the synthetic flows; ``trtr_protocol_f1``: the same classifier trained
on the real training flows (the ceiling to compare with). Macro-F1 is averaged over the
protocols present in the test flows. A training set with a single protocol predicts it
everywhere.

Both are averaged over ``evaluation.utility_draws`` draws of their training flows (the
flows the other metrics see, then redraws of as many from the same pools): where the test
hosts carry traffic the training hosts barely have, the real classifier's F1 rests on a
handful of training flows, and on UGR'16 one draw of 16,000 training flows gave a TRTR
anywhere from 0.856 to 0.948 (docs/metrics.md).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from nfsynth.evalspace import EvalSpace
from nfsynth.metrics.common import field_codes, log1p_field, sample_rows
from nfsynth.metrics.hour_jsd import hours_of
from nfsynth.schema import proto_name

log = logging.getLogger(__name__)

NAME = "tstr_protocol_f1"
GOAL = "max"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
TARGET = "proto"
L2_REGULARIZATION = 1.0  # of the boosting's leaf values (see ``train_test_f1``)


def design(flows: pd.DataFrame, space: EvalSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, categorical_mask)``: features (n, d) float64, protocol codes (n,) int64."""
    codes = field_codes(space, flows)
    columns, categorical = [], []
    for name in space.fields:
        if name == TARGET:
            continue
        if space.is_continuous(name):
            columns.append(log1p_field(flows, name))
            categorical.append(False)
        else:
            columns.append(codes[name].astype(float))
            # HistGradientBoosting takes at most 255 categories; wider fields enter as codes
            categorical.append(space.n_bins(name) <= 255)
    columns.append(hours_of(flows).astype(float))
    categorical.append(False)
    y = codes[TARGET] if TARGET in codes else np.zeros(len(flows), dtype=np.int64)
    return np.column_stack(columns), y, np.array(categorical)


def train_test_scores(
    train: pd.DataFrame, test: pd.DataFrame, space: EvalSpace, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """``(macro-F1, {protocol: F1})`` on ``test`` of the classifier trained on ``train``
    (user-flow frames), over the protocols present in ``test``. A protocol is named by
    ``protocol_names``; NaN and ``{}`` without rows."""
    if len(train) == 0 or len(test) == 0:
        return float("nan"), {}
    x_train, y_train, categorical = design(train, space)
    x_test, y_test, _ = design(test, space)
    classes = np.unique(y_train)
    if len(classes) == 1:
        predicted = np.full(len(y_test), classes[0])
    else:
        # no early stopping: its stratified validation split fails on classes seen once.
        # L2 on the leaf values: a leaf's value is -sum(gradient) / (sum(hessian) + l2), and
        # for a class seen once the hessian p(1-p) is ~1/n while the gradient stays ~1, so
        # without it one stray flow of a fourth protocol drove the logits to 10^5 and took a
        # TSTR from 0.83 to 0.43 (docs/metrics.md)
        clf = HistGradientBoostingClassifier(
            categorical_features=categorical,
            max_iter=50,
            early_stopping=False,
            l2_regularization=L2_REGULARIZATION,
            random_state=seed,
        )
        with threadpool_limits(limits=1):  # OpenMP threads oversubscribe a shared machine
            predicted = clf.fit(x_train, y_train).predict(x_test)
    labels = np.unique(y_test)
    per_class = f1_score(y_test, predicted, labels=labels, average=None, zero_division=0)
    names = protocol_names(test, y_test)
    return float(np.mean(per_class)), {
        names[c]: float(f) for c, f in zip(labels, per_class, strict=True)
    }


def train_test_f1(
    train: pd.DataFrame, test: pd.DataFrame, space: EvalSpace, seed: int = 0
) -> float:
    """Macro-F1 on ``test`` of the classifier trained on ``train`` (user-flow frames)."""
    return train_test_scores(train, test, space, seed)[0]


def protocol_names(flows: pd.DataFrame, codes: np.ndarray) -> dict[int, str]:
    """Name of each evaluation code of the protocol in ``flows`` (codes (n,)): the protocol's
    lower-case name (``tcp``, ``udp``, ``icmp``, or its number) where the code holds one
    protocol, ``other`` where it holds several (the space's bucket)."""
    values = flows[TARGET].to_numpy() if TARGET in flows else np.zeros(len(flows), np.int64)
    out = {}
    for code in np.unique(codes):
        held = np.unique(values[codes == code])
        out[int(code)] = proto_name(held[0]).lower() if len(held) == 1 else "other"
    return out


def drawn_scores(
    train: pd.DataFrame,
    test: pd.DataFrame,
    space: EvalSpace,
    pool: pd.DataFrame | None = None,
    draws: int = 1,
    seed: int = 0,
) -> tuple[float, dict[str, float]]:
    """``train_test_scores`` averaged over ``draws`` training sets: ``train`` itself, then
    ``draws - 1`` seeded redraws of ``len(train)`` flows from ``pool`` (``sample_rows``,
    seeds ``seed + 1``...; the flows ``train`` was drawn from). One draw where ``pool`` is
    missing or no larger than ``train`` (every redraw would be the same flows)."""
    sets = [train]
    if pool is not None and len(pool) > len(train):
        sets += [sample_rows(pool, len(train), seed + d) for d in range(1, max(draws, 1))]
    scores = [train_test_scores(t, test, space) for t in sets]
    macro = [m for m, _ in scores]
    names = scores[0][1].keys()  # the test flows' protocols: the same in every draw
    if len(sets) > 1:
        log.info(
            "protocol F1 over %d draws of %d training flows: %.4f +- %.4f (%.4f..%.4f)",
            len(sets), len(train), np.mean(macro), np.std(macro), min(macro), max(macro),
        )  # fmt: skip
    return float(np.mean(macro)), {n: float(np.mean([p[n] for _, p in scores])) for n in names}


def figures(
    key: str,
    source: pd.DataFrame,
    real: pd.DataFrame,
    space: EvalSpace,
    pool: pd.DataFrame | None = None,
    draws: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """``{key: macro-F1, key_<protocol>: F1 of each protocol of the test flows}`` on the
    real test flows ``real`` of the classifier trained on ``source``, averaged over
    ``draws`` training sets (``drawn_scores``; ``pool``: the flows ``source`` was drawn
    from). ``key``: ``NAME`` for a sample, ``trtr_protocol_f1`` for the training split."""
    macro, per_protocol = drawn_scores(source, real, space, pool, draws, seed)
    return {key: macro, **{f"{key}_{name}": f1 for name, f1 in per_protocol.items()}}


def compute(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    space: EvalSpace,
    train: pd.DataFrame,
    synthetic_pool: pd.DataFrame | None = None,
    train_pool: pd.DataFrame | None = None,
    draws: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """``{"tstr_protocol_f1": ..., "trtr_protocol_f1": ...}`` (macro-F1) and the F1 of each
    protocol of the test flows, ``tstr_protocol_f1_<name>`` and ``trtr_protocol_f1_<name>``
    (``protocol_names``); ``real`` is the real test split, ``train`` the real training
    split. Each is averaged over ``draws`` training sets (``figures``): ``synthetic``
    and ``train``, then redraws of as many flows from ``synthetic_pool`` and
    ``train_pool``."""
    return {
        **figures(NAME, synthetic, real, space, synthetic_pool, draws, seed),
        **figures("trtr_protocol_f1", train, real, space, train_pool, draws, seed),
    }

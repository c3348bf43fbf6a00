"""CTGAN / TVAE peers (``nfsynth.models.peers``): the decoding reproduces ctgan's own inverse
transform, host timestamps follow the rows' time deltas, the likelihood surrogate is a proper
distribution, and a fitted model round-trips through its data-only files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nfsynth.evalspace import EvalSpace
from nfsynth.models import peers
from nfsynth.models import sampling as S
from nfsynth.schema import SAMPLE_SCHEMA

OK, REASON = peers.available()
needs_ctgan = pytest.mark.skipif(not OK, reason=f"ctgan missing: {REASON}")
TINY = {"epochs": 1, "batch_size": 100, "max_train_rows": 300, "surrogate_samples": 400}


def test_available_names_the_package_or_the_reason():
    ok, reason = peers.available()
    assert isinstance(ok, bool)
    assert reason.startswith("ctgan ") if ok else "pip install" in reason


# -- pure parts (no ctgan needed) --------------------------------------------------------------
def test_hosts_follow_hour_dependent_time_deltas():
    """dt 360 s in hours 0-11 and 36 s in hours 12-23 over one day from midnight: per host the
    flows at 360, 720, ..., 43200 (120; the last one's gap started at 11:54) and then every 36
    s up to 86364 (1199)."""
    hour = np.repeat(np.arange(24), 50)
    dt = np.where(hour < 12, 360.0, 36.0)
    block = np.full(24, 200)
    start = 10 * 86400.0
    host, ts, row, _ = peers.lay_out_hosts(
        dt, hour, block, 2, start, 86400.0, np.random.default_rng(0)
    )
    assert np.bincount(host).tolist() == [1319, 1319]
    first = ts[host == 0] - start
    np.testing.assert_allclose(first[:120], 360.0 * np.arange(1, 121))
    np.testing.assert_allclose(first[120:], 43200.0 + 36.0 * np.arange(1, 1200))
    assert (hour[row[host == 0][:120]] < 12).all() and (hour[row[host == 0][120:]] >= 12).all()


def test_surrogate_is_a_distribution_and_prefers_sampled_codes():
    space = EvalSpace(
        edges={"dt": np.array([0.0, 0.4, 1.0, 2.0, np.inf])}, vocab={"proto": ["6", "17"]}
    )
    rows = pd.DataFrame({"dt": [0.0, 0.0, 0.0, 5.0] * 25, "proto": ["6", "6", "6", "17"] * 25})
    sur = peers.KernelSurrogate.fit(space, rows)
    grid = pd.DataFrame(
        [(dt, p) for dt in (0.0, 1.0, 3.0, 100.0) for p in ("6", "17", "1")],
        columns=["dt", "proto"],
    )
    lp = sur.log_prob(space, grid)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-9)
    best = grid.iloc[int(np.argmax(lp))]
    assert (best["dt"], best["proto"]) == (0.0, "6")
    # the dependence of the samples is kept: (dt 0, proto 6) and (dt large, proto 17)
    pair = sur.log_prob(space, pd.DataFrame({"dt": [0.0, 0.0], "proto": ["6", "17"]}))
    assert pair[0] > pair[1]


def test_training_table_drops_first_flows_and_folds_rare_values(planted_tables):
    frame = planted_tables.subset("train")
    vocabs = {"dport": S.Vocab.fit(frame["dport"], 2)}
    table = peers.training_table(frame, ["dt", "bytes"], vocabs, 10**9, np.random.default_rng(0))
    assert len(table) == len(frame) - frame["user"].nunique()
    assert set(table["dport"]) == {*vocabs["dport"].values, peers.OTHER}
    has_prev = S.previous_row(frame) >= 0
    rare = ~frame["dport"].isin(vocabs["dport"].values).to_numpy()
    assert (table["dport"] == peers.OTHER).sum() == (rare & has_prev).sum()
    np.testing.assert_allclose(
        np.expm1(table["log_bytes"].to_numpy()), frame["bytes"].to_numpy()[has_prev]
    )
    small = peers.training_table(frame, ["dt"], vocabs, 100, np.random.default_rng(1))
    again = peers.training_table(frame, ["dt"], vocabs, 100, np.random.default_rng(1))
    assert len(small) == 100 and small.equals(again)


# -- with ctgan ------------------------------------------------------------------------------------
@needs_ctgan
def test_decode_matches_ctgan_inverse_transform():
    from ctgan.data_transformer import DataTransformer
    from joblib import parallel_config

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "log_bytes": np.concatenate([rng.normal(3, 0.2, 300), rng.normal(9, 0.5, 300)]),
            "hour": rng.choice(["1", "2", "13"], 600),
            "proto": rng.choice(["6", "17"], 600),
        }
    )
    transformer = DataTransformer()
    with parallel_config(backend="sequential"):
        transformer.fit(table, ["hour", "proto"])
        matrix = transformer.transform(table)
    columns = peers.columns_from_transformer(transformer)
    assert sum(c.width for c in columns) == matrix.shape[1]
    noisy = matrix + rng.normal(0, 0.05, matrix.shape)
    ours = peers.decode(noisy, columns, "activated", rng)
    theirs = transformer.inverse_transform(noisy)
    np.testing.assert_allclose(ours["log_bytes"], theirs["log_bytes"], rtol=1e-12)
    assert (ours["hour"].to_numpy() == theirs["hour"].astype(str).to_numpy()).all()
    assert (ours["proto"].to_numpy() == theirs["proto"].astype(str).to_numpy()).all()
    # transform then decode returns the data (up to the clip of alpha at +-0.99)
    np.testing.assert_allclose(
        peers.decode(matrix, columns, "activated", rng)["log_bytes"], table["log_bytes"], atol=0.05
    )


@pytest.fixture(scope="module", params=["ctgan", "tvae"])
def fitted(request, planted_tables):
    if not OK:
        pytest.skip(f"ctgan missing: {REASON}")
    cls = peers.CTGANModel if request.param == "ctgan" else peers.TVAEModel
    return cls(**TINY).fit(planted_tables, seed=1)


@pytest.fixture(scope="module")
def start(planted_tables) -> float:
    return float(np.floor(planted_tables.subset("test")["ts"].min() / 86400.0) * 86400.0)


@pytest.mark.slow
def test_sample_is_canonical_and_deterministic(fitted, start):
    a = fitted.sample(3, start, 0.2, seed=5)
    assert a.schema.equals(SAMPLE_SCHEMA)
    df = a.to_pandas()
    assert len(df) > 0 and df["ts"].between(start, start + 0.2 * 86400.0, inclusive="left").all()
    assert set(df["user"]) <= {"synth-0000", "synth-0001", "synth-0002"}
    assert a.equals(fitted.sample(3, start, 0.2, seed=5))
    assert not a.equals(fitted.sample(3, start, 0.2, seed=6))
    named = fitted.sample(2, start, 0.1, seed=5, role="internal").to_pandas()
    assert named["user"].str.startswith("synth-internal-").all()


@pytest.mark.slow
def test_round_trip_through_data_only_files(fitted, planted_tables, start, tmp_path):
    fitted.save(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["arrays.npz", "evalspace.json", "model.json", "network.pt"]
    torch.load(tmp_path / "m" / "network.pt", weights_only=True)  # plain tensors only
    again = type(fitted).load(tmp_path / "m")
    test = planted_tables.subset("test")
    lp = fitted.log_prob(test)
    assert lp.shape == (len(test),) and np.isfinite(lp).all() and (lp < 0).all()
    np.testing.assert_array_equal(again.log_prob(test), lp)
    assert again.sample(2, start, 0.1, seed=3).equals(fitted.sample(2, start, 0.1, seed=3))


@pytest.mark.slow
def test_same_training_seed_same_model(fitted, planted_tables, start):
    again = type(fitted)(**TINY).fit(planted_tables, seed=1)
    assert again.sample(2, start, 0.1, seed=1).equals(fitted.sample(2, start, 0.1, seed=1))


def test_batch_size_must_suit_ctgan_pac():
    with pytest.raises(ValueError, match="multiple of 10"):
        peers.CTGANModel(batch_size=64)


def test_busiest_host_hour_counts_one_host_in_one_clock_hour():
    frame = pd.DataFrame(
        {
            "user": ["a"] * 5 + ["b"] * 3,
            # a: 3 flows in hour 0, 2 in hour 1; b: 3 flows in hour 0
            "ts": [10.0, 20.0, 3599.0, 3600.0, 7199.0, 1.0, 2.0, 3.0],
        }
    )
    assert peers.busiest_host_hour(frame) == 3
    assert peers.busiest_host_hour(frame.iloc[:0]) == 1


@pytest.mark.slow
def test_a_flooding_model_is_held_to_the_busiest_real_host_hour(fitted, start):
    """With the busiest training host-hour set to 8 flows, a synthetic host gets at most
    1.25 x 8 + 2 = 12 flows whose gaps start in one clock hour, so at most 13 flows in a clock
    hour (the last gap of an hour may end in the next): a model with too-short gaps cannot
    flood the sample."""
    saved = fitted.max_hour_flows_
    try:
        fitted.max_hour_flows_ = 8
        df = fitted.sample(3, start, 0.25, seed=2).to_pandas()
    finally:
        fitted.max_hour_flows_ = saved
    per_hour = df.groupby([df["user"], np.floor(df["ts"] / 3600.0)]).size()
    assert len(df) > 0 and per_hour.max() <= 13

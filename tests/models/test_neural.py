"""Tests of the neural autoregressive flow model on small hand-made user tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

torch = pytest.importorskip("torch")

from nfsynth.evalspace import EvalSpace  # noqa: E402
from nfsynth.models.neural import NeuralFlowModel  # noqa: E402
from nfsynth.models.neural_activity import (  # noqa: E402
    cell_counts,
    modulation_paths,
    normalised_autocovariance,
)

#: ``NFSYNTH_TEST_DEVICE=cuda`` runs these tests on the GPU (training and scoring there,
#: mixed precision; sampling is numpy on the CPU on every device).
DEVICE = os.environ.get("NFSYNTH_TEST_DEVICE", "cpu")
SMALL = dict(
    d_model=16,
    history=4,
    mixtures=3,
    epochs=6,
    batch_size=8,
    seq_len=16,
    lr=0.01,
    max_train_flows=4000,
    patience=3,
    device=DEVICE,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is faster and steadier on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_flows(
    roles: dict[str, str], *, days: int = 2, per_day: int = 300, seed: int = 0
) -> pd.DataFrame:
    """User-flow rows (docs/architecture.md columns) with planted structure: hosts of role
    ``out_external`` send HTTPS (TCP 443) to one external peer, hosts of role ``in_external``
    receive DNS (UDP 53); flows come in daytime hours; bytes = packets x 100..1400. The last
    day is the validation split."""
    rng = np.random.default_rng(seed)
    parts = []
    for user, role in roles.items():
        n = per_day * days
        day = rng.integers(0, days, n)
        hour = rng.choice(np.arange(8, 18), n)
        ts = np.sort(day * 86400.0 + hour * 3600.0 + rng.integers(0, 3600, n))
        web = role == "out_external"
        packets = rng.geometric(0.2, n).astype(np.int64)
        frame = pd.DataFrame(
            {
                "user": user,
                "ts": ts,
                "duration": rng.integers(0, 30, n).astype(float),
                "proto": np.uint8(6 if web else 17),
                "sport": rng.integers(49152, 65535, n).astype(str) if web else "53",
                "dport": "443" if web else rng.integers(49152, 65535, n).astype(str),
                "packets": packets,
                "bytes": packets * rng.integers(100, 1400, n),
                "rev_packets": packets + 1,
                "rev_bytes": (packets + 1) * 80,
                "direction": "out" if web else "in",
                "peer": "ext-web" if web else "ext-resolver",
                "peer_kind": "external",
            }
        )
        parts.append(frame)
    flows = pd.concat(parts, ignore_index=True).sort_values(["user", "ts"], kind="mergesort")
    flows = flows.reset_index(drop=True)
    first = np.r_[True, flows["user"].to_numpy()[1:] != flows["user"].to_numpy()[:-1]]
    flows["dt"] = np.where(first, 0.0, flows["ts"].diff().fillna(0.0))
    flows["hour"] = ((flows["ts"] % 86400) // 3600).astype(np.int8)
    flows["split"] = np.where(flows["ts"] >= (days - 1) * 86400.0, "val", "train")
    return flows


ROLES2 = {"h0": "out_external", "h1": "out_external", "h2": "in_external", "h3": "in_external"}


@pytest.fixture(scope="module")
def flows() -> pd.DataFrame:
    return make_flows(ROLES2)


@pytest.fixture(scope="module")
def fitted(flows: pd.DataFrame) -> NeuralFlowModel:
    hp = {**SMALL, "epochs": 15, "patience": 15, "history_dropout": 0.1}
    return NeuralFlowModel(**hp).fit(flows, seed=3)


def test_training_drives_nll_down(flows: pd.DataFrame) -> None:
    """Setup: the planted tables. Run: train. Assert: validation NLL falls well below the
    first epoch's, and the held-out eval-space log-likelihood beats the untrained model's."""
    space = EvalSpace.fit(flows[flows["split"] == "train"])
    model = NeuralFlowModel(**SMALL).fit(flows, seed=0, space=space)
    val = model.history_["val"]
    assert min(val) < val[0] - 1.0
    untrained = NeuralFlowModel(**{**SMALL, "epochs": 1, "max_train_flows": 100, "lr": 1e-6})
    untrained.fit(flows, seed=0, space=space)
    held = flows[flows["split"] == "val"]
    assert model.log_prob(held).mean() > untrained.log_prob(held).mean() + 1.0


def test_training_runs_on_the_cpu_in_float32_and_on_cuda_in_mixed_precision() -> None:
    """What the device decides: no autocast and no loss scaler on the CPU; on CUDA the
    network runs in bfloat16 (or float16 with a dynamic loss scaler on an older GPU)."""
    from nfsynth.models.neural import amp_dtype, loss_scaler

    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None
    assert loss_scaler(cpu, None) is None and loss_scaler(cpu, torch.bfloat16) is None
    assert isinstance(loss_scaler(cpu, torch.float16), torch.amp.GradScaler)


def test_cuda_asks_cublas_for_its_deterministic_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pick_device``: on CUDA the cuBLAS workspace setting that deterministic matrix
    products need is set unless the environment chose one; the CPU leaves it alone; a CUDA
    device that is missing is refused."""
    from nfsynth.models.neural import pick_device

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # recorded, so teardown restores it
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    assert pick_device("cpu").type == "cpu" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    pick_device("cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_training_learns_as_float32_does(
    flows: pd.DataFrame, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup: the planted tables; the CUDA path's autocast dtype forced on the CPU (whose
    autocast runs both), float16 with its loss scaler. Run: train in float32, then in the
    dtype. Assert: the mixed-precision fit's best validation NLL is within 3% of float32's
    and well below its first epoch's; in float16 the scaler skipped the overflowing steps
    (its scale fell from 2^16), so no step took an inf or NaN gradient and every weight is
    finite."""
    from nfsynth.models import neural

    full = NeuralFlowModel(**SMALL).fit(flows, seed=0).history_["best_val"]
    scalers, make_scaler = [], neural.loss_scaler

    def recorded(device, kind):
        scalers.append(make_scaler(device, kind))
        return scalers[-1]

    monkeypatch.setattr(neural, "amp_dtype", lambda device: getattr(torch, dtype))
    monkeypatch.setattr(neural, "loss_scaler", recorded)
    model = NeuralFlowModel(**SMALL).fit(flows, seed=0)
    val = model.history_["val"]
    assert abs(model.history_["best_val"] - full) < 0.03 * full
    assert min(val) < val[0] - 1.0
    assert all(torch.isfinite(p).all() for p in model.net_.parameters())
    if dtype == "float16":
        assert scalers and scalers[0] is not None
        assert scalers[0].get_scale() < 2.0**16
    else:
        assert scalers == [None]


def test_validation_scores_max_val_flows_spread_over_every_host(
    flows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup: 4 hosts with about 300 validation flows each (windows of 16). Run: one epoch
    with ``max_val_flows`` 320, then 10**6. Assert: 20 windows scored, from every host;
    then every window."""
    scored: list[np.ndarray] = []
    original = NeuralFlowModel._mean_nll

    def spy(self, enc, segments):
        if enc is not None:
            scored.append(enc.host[segments])
        return original(self, enc, segments)

    monkeypatch.setattr(NeuralFlowModel, "_mean_nll", spy)
    hp = {**SMALL, "epochs": 1, "max_train_flows": 200, "calibrate": False}
    NeuralFlowModel(**hp, max_val_flows=320).fit(flows, seed=0)
    assert len(scored[-1]) == 20 and set(scored[-1].tolist()) == {0, 1, 2, 3}
    NeuralFlowModel(**hp, max_val_flows=10**6).fit(flows, seed=0)
    per_host = flows[flows["split"] == "val"].groupby("user").size().to_numpy()
    assert len(scored[-1]) == int(np.ceil(per_host / SMALL["seq_len"]).sum())


def test_causal_mask(fitted: NeuralFlowModel, flows: pd.DataFrame) -> None:
    """Changing a later field of flow i, or flow i+1, leaves the earlier fields of flow i
    and all earlier flows unchanged, while the changed field's own log-prob moves."""
    frame = flows[flows["user"] == "h0"].head(40).reset_index(drop=True)
    base = fitted.field_log_probs(frame)
    i = 20
    changed = frame.copy()
    changed.loc[i, ["packets", "bytes"]] = [900, 900 * 1000]
    after = fitted.field_log_probs(changed)
    for name in ("dt", "proto", "dport", "sport", "direction", "peer_kind", "duration"):
        np.testing.assert_allclose(after[name][: i + 1], base[name][: i + 1], rtol=1e-5, atol=1e-5)
    for name in after:
        np.testing.assert_allclose(after[name][:i], base[name][:i], rtol=1e-5, atol=1e-5)
    assert abs(after["packets"][i] - base["packets"][i]) > 0.1
    later = frame.copy()
    later.loc[i + 1, "dport"] = "22"
    moved = fitted.field_log_probs(later)
    for name in moved:
        np.testing.assert_allclose(moved[name][: i + 1], base[name][: i + 1], rtol=1e-5, atol=1e-5)
    assert abs(moved["dport"][i + 1] - base["dport"][i + 1]) > 0.1


def test_role_conditions_samples(fitted: NeuralFlowModel) -> None:
    """Hosts sampled as out_external use port 443 over TCP outwards; in_external ones get DNS."""
    web = fitted.sample(3, 8 * 3600.0, 0.4, seed=1, role="out_external").to_pandas()
    dns = fitted.sample(3, 8 * 3600.0, 0.4, seed=1, role="in_external").to_pandas()
    assert len(web) > 50 and len(dns) > 50
    assert (web["dport"].astype(str) == "443").mean() > 0.9
    assert (web["direction"].astype(str) == "out").mean() > 0.9
    assert (web["proto"] == 17).mean() < 0.05
    # only the role differs: DNS hosts are DNS hosts all day (the host prior holds them)
    assert (dns["sport"].astype(str) == "53").mean() > 0.9
    assert (dns["proto"] == 17).mean() > 0.9
    assert (web["sport"].astype(str) == "53").mean() < 0.05
    assert web["user"].str.startswith("synth-out_external-").all()


def test_cli_samples_hosts_of_a_chosen_role(
    fitted: NeuralFlowModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Setup: the fitted planted model, saved. Run: ``nfsynth sample --role``. Assert: the
    role's hosts come out as that role's (HTTPS out), named for it; a role no training host
    has is refused with the roles it has (its embedding was never trained), and so is a
    sample beyond the flow limit."""
    from nfsynth.cli import main

    fitted.save(tmp_path / "m")
    out = tmp_path / "web.parquet"
    args = ["sample", str(tmp_path / "m"), "--hosts", "3", "--start", "1970-01-01T08:00",
            "--days", "0.4", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert main([*args, "--role", "out_external"]) == 0
    web = pd.read_parquet(out)
    assert json.loads(capsys.readouterr().out)["flows"] == len(web) > 50
    assert (web["dport"].astype(str) == "443").mean() > 0.9
    assert web["user"].str.startswith("synth-out_external-").all()
    assert main([*args, "--role", "internal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no training host has role 'internal'" in err
    assert "in_external, out_external" in err
    with pytest.raises(ValueError, match="no training host has role 'both'"):
        fitted.sample(2, 0.0, 0.1, seed=1, role="both")
    # a sample beyond the flow limit is refused before any step, with its estimate
    huge = [*args[:2], "--hosts", "100000", "--start", "0", "--days", "1000", "--out", str(out)]
    assert main(huge) == 2
    assert "sample fewer hosts or days" in capsys.readouterr().err


def test_samples_are_valid_and_seeded(fitted: NeuralFlowModel) -> None:
    """Same seed same rows; another seed other rows; flows sorted, inside the days, byte
    counts within 20..65535 bytes per packet, integer counts."""
    a = fitted.sample(4, 86400.0, 1.0, seed=5).to_pandas()
    b = fitted.sample(4, 86400.0, 1.0, seed=5).to_pandas()
    c = fitted.sample(4, 86400.0, 1.0, seed=6).to_pandas()
    pd.testing.assert_frame_equal(a, b)
    assert not a["ts"].equals(c["ts"])
    assert a["ts"].between(86400.0, 2 * 86400.0).all()
    assert (a.groupby("user")["ts"].diff().dropna() >= 0).all()
    bpp = a["bytes"] / a["packets"].where(a["packets"] > 0)
    assert bpp.dropna().between(20, 65535).all()


def test_save_load_round_trip(fitted: NeuralFlowModel, flows: pd.DataFrame, tmp_path) -> None:
    """A loaded model scores and samples as the fitted one, and every fitted attribute
    (``*_``) comes back equal: the training period was once lost, so a calibration redone on
    a loaded model sampled 1970-01-01 instead of the training day."""
    fitted.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    assert fitted.period_ != (0.0, 86400.0)  # the planted period is not the default
    skip = {"net_", "sampler_", "device_", "space_"}  # compared by behaviour below
    for name, value in vars(fitted).items():
        if name.endswith("_") and name not in skip:
            loaded = getattr(again, name)
            if isinstance(value, dict):
                assert value.keys() == loaded.keys(), name
                for key, item in value.items():
                    np.testing.assert_equal(np.asarray(loaded[key]), np.asarray(item), name)
            else:
                np.testing.assert_equal(loaded, value, name)
    held = flows[flows["split"] == "val"]
    np.testing.assert_allclose(again.log_prob(held), fitted.log_prob(held), rtol=1e-6)
    pd.testing.assert_frame_equal(
        again.sample(2, 0.0, 0.3, seed=2).to_pandas(),
        fitted.sample(2, 0.0, 0.3, seed=2).to_pandas(),
    )


def test_log_prob_is_a_distribution_over_bins(fitted: NeuralFlowModel, flows: pd.DataFrame) -> None:
    """For one flow, the probabilities of every bytes bin sum to 1 (exact CDF differences),
    and the log-probs keep the frame's row order."""
    space = fitted.space_
    frame = flows.head(30).reset_index(drop=True)
    edges = space.edges["bytes"]
    total = 0.0
    for k in range(len(edges) - 1):
        probe = frame.copy()
        probe.loc[29, "bytes"] = int(np.ceil(np.expm1(edges[k]))) if k else 0
        if space.encode_field("bytes", probe["bytes"].to_numpy())[29] != k:
            continue
        total += float(np.exp(fitted.field_log_probs(probe)["bytes"][29]))
    assert 0.95 < total <= 1.0 + 1e-4
    shuffled = frame.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(
        fitted.log_prob(shuffled), fitted.log_prob(frame)[shuffled.index], rtol=1e-5
    )


def test_planted_poisson_rate_per_day_and_hour() -> None:
    """Setup: three hosts, each a Poisson process of 60 flows/h from 08 to 18 h and 6 flows/h
    otherwise (684 flows/day), fields independent of time; 3 training days. Run: train a
    small model, sample 6 hosts for one day. Assert: flows per host-day within 15% of 684,
    and the day hours hold about their planted share (600 of 684)."""
    from tests.models.conftest import frame_tables, make_user_flows

    flows = make_user_flows(n_users=3, days=5, seed=4, day_rate=60.0, night_rate=6.0)
    tables = frame_tables(flows)
    model = NeuralFlowModel(**{**SMALL, "epochs": 4, "max_train_flows": 3000}).fit(tables, seed=0)
    start = float(np.floor(flows["ts"].max() / 86400.0) * 86400.0) + 86400.0
    sample = model.sample(6, start, 1.0, seed=1).to_pandas()
    per_day = sample.groupby("user").size()
    truth = 10 * 60.0 + 14 * 6.0
    assert len(per_day) == 6
    assert abs(per_day.mean() / truth - 1.0) < 0.15, per_day.mean()
    hour = (sample["ts"] % 86400.0) // 3600.0
    day_share = hour.between(8, 17).mean()
    assert abs(day_share - 600.0 / truth) < 0.05, day_share


def test_step_sampler_matches_the_network(fitted: NeuralFlowModel) -> None:
    """The numpy sampler computes the torch network's host state and head outputs (to
    float32 rounding) for random inputs and a known host."""
    from nfsynth.models.neural_sample import StepSampler

    net = fitted.net_
    sp = StepSampler(net, fitted.fields_, fitted.vocabs_, fitted.specs_, fitted.warp_, 300.0)
    rng = np.random.default_rng(0)
    B = 5
    hist = rng.normal(size=(B, net.K, sp.hist_in.shape[1])).astype(np.float32)
    ctx = (rng.random((B, net.C + 1, 4)) * 3).astype(np.float32)
    aux = rng.random((B, 7)).astype(np.float32)
    role, hid = rng.integers(0, 4, B), rng.integers(0, net.unknown_host + 1, B)
    with torch.no_grad():
        want = net.state(*(torch.as_tensor(a) for a in (hist, ctx, aux, role, hid))).numpy()
    np.testing.assert_allclose(sp._state(hist, ctx, aux, role, hid), want, atol=1e-4)
    u = rng.normal(size=(B, net.d)).astype(np.float32)
    for j, (f, *_) in enumerate(sp.heads):
        with torch.no_grad():
            want = net.head(j, torch.as_tensor(u), torch.as_tensor(hid)).numpy()
        got = sp.head_output(j, u, hid)
        ok = np.asarray(fitted.vocabs_[f].seen, bool) if f in fitted.vocabs_ else slice(None)
        np.testing.assert_allclose(got[:, ok], want[:, ok], atol=1e-4, err_msg=f)


def test_step_sampler_copies_the_history_tokens_as_the_network_does(flows: pd.DataFrame) -> None:
    """With ``history_copy``, the numpy sampler's categorical heads add the same gates on
    the same history tokens as the torch network's (random inputs, tokens and missing
    history flows; gates made non-zero), and a head without history adds none."""
    from nfsynth.models.neural_sample import StepSampler

    model = NeuralFlowModel(**{**SMALL, "epochs": 1, "history_copy": ["peer", "dport"]})
    model.fit(flows, seed=0)
    net = model.net_
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for j, (f, _, size) in enumerate(net.fields):
            if f in net.copy_fields:
                net.head_out[j].weight[size:] = torch.randn(net.K, net.d) * 0.5
    sp = StepSampler(net, model.fields_, model.vocabs_, model.specs_, model.warp_, 300.0)
    B = 6
    u = rng.normal(size=(B, net.d)).astype(np.float32)
    hid = rng.integers(0, net.unknown_host + 1, B)
    for j, (f, *_) in enumerate(sp.heads):
        if f not in net.copy_fields:
            continue
        tokens = rng.integers(0, model.vocabs_[f].size, (B, net.K))
        tokens[:, :3] = tokens[:, 3:4]  # a token seen in several history flows
        present = (rng.random((B, net.K)) < 0.7).astype(np.float32)
        copy = (torch.as_tensor(tokens), torch.as_tensor(present))
        with torch.no_grad():
            want = net.head(j, torch.as_tensor(u), torch.as_tensor(hid), copy).numpy()
            bare = net.head(j, torch.as_tensor(u), torch.as_tensor(hid)).numpy()
        ok = np.asarray(model.vocabs_[f].seen, bool)
        got = sp.head_output(j, u, hid, copy_from=(tokens, present))
        np.testing.assert_allclose(got[:, ok], want[:, ok], atol=1e-4, err_msg=f)
        assert np.abs(want - bare)[:, ok].max() > 0.1
        np.testing.assert_allclose(sp.head_output(j, u, hid)[:, ok], bare[:, ok], atol=1e-4)


def test_time_warp_round_trip_and_unit_gaps() -> None:
    """inverse(forward(t)) = t; a day of warped time is a day; a host with R flows/day at a
    constant rhythm has latent 0 for a gap of 86400 / R seconds."""
    from nfsynth.models.neural_vocab import TimeWarp

    ts = np.r_[np.repeat(np.arange(24) * 3600.0 + 10.0, np.arange(1, 25)), 86400.0 + 5.0]
    warp = TimeWarp.fit(ts)
    t = np.linspace(0.0, 3 * 86400.0, 1001)
    np.testing.assert_allclose(warp.inverse(warp.forward(t)), t, atol=1e-6)
    assert warp.forward(np.array([86400.0]))[0] == pytest.approx(86400.0)
    assert warp.hour_weights[23] > 5 * warp.hour_weights[0]
    flat = TimeWarp(hour_weights=[1.0] * 24)
    lat = flat.gap_latent(np.array([1000.0]), np.array([86400.0 / 500]), np.array([np.log10(500)]))
    assert lat[0] == pytest.approx(0.0, abs=1e-9)


def test_time_warp_gives_each_host_its_own_rhythm() -> None:
    """Setup: host 0 has flows in hours 0-5 only, host 1 all day. Run: ``with_hosts`` with
    a prior of 10 flows. Assert: each host row round-trips and has a day of 86400 warped
    seconds; host 0's weights are high in its hours and low elsewhere, host 1's near the
    pooled rhythm; unknown rows (-1, 2) and ``rows=None`` map as the pooled warp; a huge
    prior gives the pooled rhythm back."""
    from nfsynth.models.neural_vocab import TimeWarp

    rng = np.random.default_rng(0)
    ts0 = rng.uniform(0, 6 * 3600.0, 600)
    ts1 = rng.uniform(0, 86400.0, 600)
    ts, hosts = np.r_[ts0, ts1], np.r_[np.zeros(600, int), np.ones(600, int)]
    pooled = TimeWarp.fit(ts)
    warp = pooled.with_hosts(ts, hosts, 2, prior=10.0)
    w = np.asarray(warp.host_weights)
    assert w.shape == (2, 24)
    np.testing.assert_allclose(w.mean(axis=1), 1.0)
    assert w[0, :6].min() > 3.0 and w[0, 6:].max() < 0.05
    assert np.abs(w[1] - 1.0).max() < 0.5
    t = np.linspace(0.0, 2 * 86400.0, 501)
    for row in (0, 1):
        rows = np.full(t.size, row)
        np.testing.assert_allclose(warp.inverse(warp.forward(t, rows), rows), t, atol=1e-6)
        assert warp.forward(np.array([86400.0]), np.array([row]))[0] == pytest.approx(86400.0)
    for rows in (np.full(t.size, -1), np.full(t.size, 2), None):
        np.testing.assert_allclose(warp.forward(t, rows), pooled.forward(t))
        np.testing.assert_allclose(warp.inverse(t, rows), pooled.inverse(t))
    flat = pooled.with_hosts(ts, hosts, 2, prior=1e9)
    np.testing.assert_allclose(flat.host_weights, [pooled.hour_weights] * 2, rtol=1e-5)
    with pytest.raises(ValueError, match="prior"):
        pooled.with_hosts(ts, hosts, 2, prior=0.0)


def test_sampled_hosts_keep_their_training_hosts_hours(tmp_path) -> None:
    """Setup: the planted tables re-timed: the HTTPS hosts send in hours 2-7 only, the DNS
    hosts answer in hours 14-19 only (the pooled rhythm has both). Run: train with
    ``host_rhythm`` 20 and 0 (pooled), sample the 4 hosts for a day. Assert: with it, each
    synthetic host puts at least 85% of its flows in its training host's hours, and more
    than with the pooled rhythm (0.93 against 0.45 measured: the pooled warp spreads every
    host over both windows); saved and loaded, the model keeps its hosts' rhythms and
    samples the same flows."""
    flows = make_flows(ROLES2, per_day=200, seed=5)
    web = flows["dport"].astype(str) == "443"
    day = np.floor(flows["ts"] / 86400.0) * 86400.0
    within = flows["ts"] - day - flows["hour"].astype(float) * 3600.0  # seconds into the hour
    hours = np.where(web, 2.0, 14.0) + ((flows["hour"].astype(int) - 8) % 6)
    flows["ts"] = day + hours * 3600.0 + within
    flows = flows.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = np.r_[True, flows["user"].to_numpy()[1:] != flows["user"].to_numpy()[:-1]]
    flows["dt"] = np.where(first, 0.0, flows["ts"].diff().fillna(0.0))
    flows["hour"] = ((flows["ts"] % 86400) // 3600).astype(np.int8)

    def own_hours_share(rhythm: float) -> float:
        hp = {**SMALL, "epochs": 8, "patience": 8, "host_rhythm": rhythm}
        model = NeuralFlowModel(**hp).fit(flows, seed=1)
        frame = model.sample(4, 86400.0, 1.0, seed=2).to_pandas()
        model.save(tmp_path / f"m{rhythm}")
        again = NeuralFlowModel.load(tmp_path / f"m{rhythm}")
        assert again.warp_.host_weights == model.warp_.host_weights
        assert (again.warp_.host_weights is None) == (rhythm == 0)
        pd.testing.assert_frame_equal(again.sample(4, 86400.0, 1.0, seed=2).to_pandas(), frame)
        hour = (frame["ts"].astype(float) % 86400.0) // 3600.0
        is_web = (frame["dport"].astype(str) == "443").groupby(frame["user"]).transform("mean")
        lo = np.where(is_web > 0.5, 2.0, 14.0)
        inside = (hour >= lo) & (hour < lo + 6.0)
        return float(inside.groupby(frame["user"]).mean().min())

    own, pooled = own_hours_share(20.0), own_hours_share(0.0)
    assert own >= 0.85, (own, pooled)
    assert own > pooled + 0.05, (own, pooled)


def test_every_sampled_host_keeps_its_training_hosts_mix(fitted: NeuralFlowModel) -> None:
    """Four synthetic hosts take the four training hosts' profiles: two send HTTPS all day,
    two answer DNS all day; no host drifts into the other kind's tokens in free running."""
    frame = fitted.sample(4, 86400.0, 1.0, seed=11).to_pandas()
    share_443 = frame.assign(web=frame["dport"].astype(str) == "443").groupby("user")["web"]
    shares = np.sort(share_443.mean().to_numpy())
    assert len(shares) == 4 and frame.groupby("user").size().min() > 100
    np.testing.assert_allclose(shares, [0.0, 0.0, 1.0, 1.0], atol=0.05)
    out = (frame["direction"].astype(str) == "out").groupby(frame["user"]).mean()
    np.testing.assert_allclose(np.sort(out.to_numpy()), [0.0, 0.0, 1.0, 1.0], atol=0.05)


def test_host_priors_are_smoothed_training_frequencies(fitted: NeuralFlowModel) -> None:
    """A training host's prior is its own token mix (smoothed by a few pooled flows); the
    unknown host's is the pooled mix."""
    flows = make_flows(ROLES2)
    train = flows[flows["split"] == "train"]
    enc = fitted._encode(train)
    priors = fitted.host_priors(enc)
    vocab = fitted.vocabs_["direction"]
    out = vocab.tokens.index("out")
    for user, role in ROLES2.items():
        p_out = float(np.exp(priors["direction"][fitted.host_ids_[user], out]))
        want = 1.0 if role == "out_external" else 0.0
        assert p_out == pytest.approx(want, abs=0.01), user
    pooled = float(np.exp(priors["direction"][len(fitted.host_ids_), out]))
    assert pooled == pytest.approx(0.5, abs=0.05)
    stored = fitted.net_.prior_direction.cpu().numpy()
    np.testing.assert_allclose(stored, priors["direction"], atol=1e-6)


def test_context_profile_is_the_hosts_mean_window_by_time_of_day(fitted: NeuralFlowModel) -> None:
    """The profile holds each training host's flows (and outgoing flows) per 5-minute window
    of the day averaged over its days; a sequence starting at t0 gets the 36 windows before
    t0 from it, oldest first, wrapping around midnight."""
    flows = make_flows(ROLES2)
    train = flows[flows["split"] == "train"]
    profile = fitted.context_profile(fitted._encode(train))
    assert profile.shape == (len(ROLES2) + 1, 288, 4)
    for user in ROLES2:
        rows = train[train["user"] == user]
        days = np.floor(rows["ts"] / 86400.0).nunique()
        wod = (np.mod(rows["ts"], 86400.0) // 300).astype(int)
        want = np.bincount(wod, minlength=288) / days
        np.testing.assert_allclose(profile[fitted.host_ids_[user], :, 0], want, rtol=1e-6)
        out = (rows["direction"] == "out").groupby(wod).sum().reindex(range(288), fill_value=0)
        np.testing.assert_allclose(profile[fitted.host_ids_[user], :, 3], out / days, rtol=1e-6)
    np.testing.assert_allclose(profile[-1], profile[:-1].mean(0), rtol=1e-6)
    fitted.ctx_profile_, saved = profile, fitted.ctx_profile_
    try:
        t0 = np.array([2 * 86400.0 + 3600.0])  # 01:00: the windows of 22:00 .. 00:55
        hid = np.array([fitted.host_ids_["h0"]])
        ctx0 = fitted._context_start(hid, t0)
    finally:
        fitted.ctx_profile_ = saved
    want_wod = np.r_[np.arange(264, 288), np.arange(0, 12)]
    np.testing.assert_allclose(ctx0[0], profile[hid[0], want_wod])


def test_count_floor_owns_the_left_tail_and_samples_keep_it(
    fitted: NeuralFlowModel, flows: pd.DataFrame
) -> None:
    """Training packets are >= 1: packets = 1 owns the mixture's left tail, 0 has probability
    0 (the tail leaked 0.9% zero-packet flows into the simulator's samples); the evaluation
    bins still sum to 1."""
    assert fitted.specs_["packets"].floor == 1.0 and fitted.specs_["duration"].floor == 0.0
    sample = fitted.sample(4, 86400.0, 1.0, seed=1).to_pandas()
    assert len(sample) and (sample["packets"] >= 1).all()
    space = fitted.space_
    frame = flows.head(30).reset_index(drop=True)
    edges = space.edges["packets"]
    probs = {}
    for k in range(len(edges) - 1):
        probe = frame.copy()
        probe.loc[29, "packets"] = int(np.ceil(np.expm1(edges[k]))) if k else 0
        code = int(space.encode_field("packets", probe["packets"].to_numpy())[29])
        if code == k and k not in probs:
            probs[k] = float(np.exp(fitted.field_log_probs(probe)["packets"][29]))
    assert 0.95 < sum(probs.values()) <= 1.0 + 1e-4
    from nfsynth.models.neural_vocab import value_interval

    lo, hi, width = value_interval(np.array([0.0, 1.0, 2.0]), fitted.specs_["packets"], None)
    assert width[0] == 0.0  # 0 packets: an empty cell
    assert np.isneginf(lo[1]) and np.isclose(hi[1], np.log1p(1.5))  # 1 packet: the left tail
    assert np.isclose(lo[2], np.log1p(1.5)) and np.isclose(hi[2], np.log1p(2.5))


def test_value_grid_is_the_logs_own() -> None:
    """Whole numbers lie on 1; UGR'16-like times on 4 ms (their gcd in milliseconds, kept to
    a divisor of one second); half seconds on 0.5; values finer than 1 ms, or not on one
    millisecond grid, on 1 ms; NaN is ignored."""
    from nfsynth.models.neural_vocab import value_resolution

    assert value_resolution(np.array([0.0, 3.0, 86400.0])) == 1.0
    assert value_resolution(np.array([0.0, 0.004, 0.44, 12.012, np.nan])) == 0.004
    assert value_resolution(np.array([0.5, 1.5, 30.0])) == 0.5
    assert value_resolution(np.array([0.0, 0.0015, 1.0])) == 0.001
    assert value_resolution(np.array([0.0001, 0.2])) == 0.001
    # a gap taken between two float epoch times keeps its grid
    assert value_resolution(np.array([1460332924.436 - 1460332924.432, 0.008])) == 0.004


def test_samples_keep_the_training_logs_time_grid() -> None:
    """Setup: the planted hosts with times and durations on a 4 ms grid (as UGR'16's nfdump
    logs). Run: fit, sample a day of 4 hosts (several chunks each). Assert: the gaps' and
    durations' grid is 4 ms, and every sampled time and duration is a multiple of it (a
    1 ms grid had drawn gaps of 1-3 ms that no such log has)."""
    rng = np.random.default_rng(4)
    flows = make_flows(ROLES2, per_day=300)
    ticks = rng.integers(0, 250, len(flows))
    flows["ts"] = flows["ts"] + 0.004 * ticks
    flows["duration"] = flows["duration"] + 0.004 * rng.integers(0, 250, len(flows))
    flows = flows.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = np.r_[True, flows["user"].to_numpy()[1:] != flows["user"].to_numpy()[:-1]]
    flows["dt"] = np.where(first, 0.0, flows["ts"].diff().fillna(0.0))
    hp = {**SMALL, "epochs": 2, "sample_chunk_flows": 100}
    model = NeuralFlowModel(**hp).fit(flows, seed=0)
    assert model.specs_["dt"].resolution == 0.004 == model.specs_["duration"].resolution
    sample = model.sample(4, 86400.0 + 0.002, 1.0, seed=2).to_pandas()
    assert len(sample) > 500
    for name in ("ts", "duration"):
        ms = sample[name].to_numpy(dtype=float) * 1000.0
        assert np.abs(ms / 4.0 - np.rint(ms / 4.0)).max() < 1e-3, name
    assert sample["ts"].min() >= 86400.0 + 0.002


def test_ratio_field_without_packets_is_zero_with_certainty() -> None:
    """rev_bytes of a flow without reverse packets is 0 for sure: its cell spans the whole
    latent line (probability 1); other rows keep their cells; bytes per packet's lower
    truncation (lat_lo) comes from the flows with packets only."""
    from nfsynth.models.neural_vocab import base_is_zero, build_spec, value_interval

    frame = pd.DataFrame(
        {"rev_packets": [0, 0, 1, 2, 3] * 40, "rev_bytes": [0, 0, 60, 200, 300] * 40}
    )
    spec = build_spec("rev_bytes", frame)
    assert np.isclose(spec.lat_lo, np.log(60.0), atol=1e-6)  # not log(0.5) of the zeros
    x = frame["rev_bytes"].to_numpy(dtype=float)
    base = np.maximum(frame["rev_packets"].to_numpy(dtype=float), 1.0)
    lo, hi, width = value_interval(x, spec, base, None, base_is_zero(frame, "rev_bytes"))
    assert np.isneginf(lo[:2]).all() and np.isposinf(hi[:2]).all() and (width[:2] == 1).all()
    assert np.isclose(lo[2], np.log(59.5)) and np.isclose(hi[3], np.log(200.5 / 2))


def test_calibration_pulls_a_drifted_token_back_toward_its_training_share(
    fitted: NeuralFlowModel, flows: pd.DataFrame
) -> None:
    """Setup: the fitted model (half the training flows go to port 443) with its port head's
    bias for 443 raised by 12 nats, so free-running hosts that answer DNS drift to 443 too.
    Run: the model's calibration. Assert: sampled (8 hosts, one day), 443 holds over 0.65
    of the flows before and at least 0.08 less after (0.97 -> 0.66 and 0.99 -> 0.73
    measured on two fits that differ in float rounding only; one standard error is 0.01);
    443's offset is negative, the ephemeral ports' positive on average. The pooled offsets
    correct the drift only in part when one kind of host causes it (docstring of
    ``_calibrate``). At 8 nats one of those fits drifted to 0.61 only, within the noise of
    the calibration's ten-hour days, and its offsets were rightly dropped."""
    import copy

    model = copy.deepcopy(fitted)
    vocab = model.vocabs_["dport"]
    tok = vocab.tokens.index("443")
    j = model.fields_.index("dport")
    with torch.no_grad():
        model.net_.head_out[j].bias[tok] += 12.0
    model.sampler_, model.token_offsets_ = None, {}
    model.proto_support_ = {}  # the drift crosses protocols (DNS over UDP to 443)

    def share_443(m: NeuralFlowModel) -> float:
        frame = m.sample(8, 86400.0, 1.0, seed=11).to_pandas()
        return float((frame["dport"].astype(str) == "443").mean())

    drifted = share_443(model)
    train = flows[flows["split"] == "train"]
    model._calibrate(model._encode(train), seed=0)
    calibrated = share_443(model)
    assert drifted > 0.65, drifted
    assert calibrated < drifted - 0.08, (drifted, calibrated)
    offsets = model.token_offsets_["dport"]
    assert offsets[tok] < 0.0
    used = np.flatnonzero(np.bincount(model._encode(train).cat["dport"], minlength=vocab.size))
    assert offsets[used[used != tok]].mean() > 0.2


def test_self_history_feeds_the_networks_own_tokens_to_later_targets(
    fitted: NeuralFlowModel, flows: pd.DataFrame
) -> None:
    """Setup: the fitted model with its destination-port head's bias for its rarest
    training port token raised by 50 nats, so that head draws it wherever it is asked; a
    training batch of windows without history noise. Run: ``_self_history`` with p = 1,
    and with p = 0 on the same windows. Assert: at p = 1 every history port after the first
    ``history`` positions is that token, while the positions before them, the target ports
    (``x:``) and the continuous history keep the true flows; the other categorical fields'
    history holds tokens of their own vocabularies; at p = 0 the history is the flows
    themselves."""
    import copy

    model = copy.deepcopy(fitted)
    enc = model._encode(flows[flows["split"] == "train"])
    tok = int(np.argmin(np.bincount(enc.cat["dport"], minlength=model.vocabs_["dport"].size)))
    j = model.fields_.index("dport")
    with torch.no_grad():
        model.net_.head_out[j].bias[tok] += 50.0
    starts = model._segments(enc)[:16]
    K = model.net_.K
    batch = model._batch(enc, starts)
    true_dport = batch["x:dport"].clone()
    assert (true_dport[:, K:] != tok).float().mean() > 0.5  # not what the hosts send
    model._self_history(batch, 1.0, np.random.default_rng(0))
    assert bool((batch["h:dport"][:, K:] == tok).all())
    assert torch.equal(batch["h:dport"][:, :K], true_dport[:, :K])
    assert torch.equal(batch["x:dport"], true_dport)
    for f in model.fields_:
        if f == "dport":
            continue
        h = batch[f"h:{f}"]
        if f in model.vocabs_:
            assert int(h.min()) >= 0 and int(h.max()) < model.vocabs_[f].size
        else:
            assert torch.equal(h, batch[f"x:{f}"])
    same = model._batch(enc, starts)
    model._self_history(same, 0.0, np.random.default_rng(0))
    for f in model.fields_:
        assert torch.equal(same[f"h:{f}"], same[f"x:{f}"])


def test_history_embeds_only_the_swapped_flows_anew(
    fitted: NeuralFlowModel, flows: pd.DataFrame
) -> None:
    """Setup: a training batch (``history_noise`` swaps some history flows for random
    training flows, marked in ``hswap``). Run: the network in eval mode on it, and on the
    same batch without ``hswap`` (every history field embedded from ``h:``). Assert: some
    positions are swapped and their continuous ``h:`` values differ from ``x:``; the heads
    agree to float rounding, so reusing the flows' own embeddings elsewhere changes
    nothing; dropping the swapped flows' embeddings would change them."""
    model = fitted
    enc = model._encode(flows[flows["split"] == "train"])
    batch = model._batch(enc, model._segments(enc)[:16], np.random.default_rng(3))
    swap = batch["hswap"]
    assert 0 < int(swap.sum()) < swap.numel()
    assert bool((batch["h:duration"][swap] != batch["x:duration"][swap]).any())
    general = {k: v for k, v in batch.items() if k != "hswap"}
    unswapped = {**batch, "hswap": torch.zeros_like(swap)}
    model.net_.eval()
    with torch.no_grad():
        _, fast = model.net_(batch)
        _, slow = model.net_(general)
        _, wrong = model.net_(unswapped)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    dt = model.fields_.index("dt")
    assert float((wrong[dt] - slow[dt]).abs().max()) > 1e-2


def test_day_of_week_is_an_input_only_after_two_weeks(fitted: NeuralFlowModel) -> None:
    """Trained on 2 days (< ``WEEKLY_MIN_DAYS``), the model has seen two weekdays; a sample
    on any other weekday must not feed the network a day-of-week it never saw. Assert: the
    day-of-week features are zero without ``weekly``; ``weekly_span`` is false for 2 days and
    13 days, true for 14; and the fitted model samples the same rows (shifted by 3 days) on
    day 1 (a Friday) and day 4 (a Monday)."""
    from nfsynth.models.neural_vocab import WEEKLY_MIN_DAYS, time_features, weekly_span

    ts = np.array([0.0, 3600.0 * 30, 86400.0 * 5 + 7200.0])
    np.testing.assert_array_equal(time_features(ts, weekly=False)[:, 2:], 0.0)
    np.testing.assert_allclose(time_features(ts, weekly=False)[:, :2], time_features(ts)[:, :2])
    assert np.abs(time_features(ts)[:, 2:]).sum() > 0.5
    assert WEEKLY_MIN_DAYS == 14
    assert not weekly_span(np.array([0.0, 86400.0 + 5.0]))
    assert not weekly_span(np.array([0.0, 12 * 86400.0 + 5.0]))
    assert weekly_span(np.array([0.0, 13 * 86400.0 + 5.0]))
    assert fitted.weekly_ is False
    a = fitted.sample(3, 86400.0, 1.0, seed=4).to_pandas()
    b = fitted.sample(3, 4 * 86400.0, 1.0, seed=4).to_pandas()
    assert len(a) > 300 and len(a) == len(b)
    np.testing.assert_allclose(b["ts"] - 3 * 86400.0, a["ts"], atol=1e-3)
    pd.testing.assert_frame_equal(a.drop(columns="ts"), b.drop(columns="ts"))


def test_context_statistics_are_scaled_to_order_one(fitted: NeuralFlowModel) -> None:
    """``context_scale``: per column the 99th percentile of the non-empty windows, at least
    1 (a column of zeros keeps 1). The fitted network holds it, and the numpy sampler folds
    it into its context weights (``test_step_sampler_matches_the_network`` compares the two
    with this scale in place)."""
    from nfsynth.models.neural import context_scale

    table = np.zeros((1000, 4), np.float32)
    table[:, 0] = np.linspace(0.0, 10.0, 1000)
    table[:500, 1] = 0.5
    got = context_scale(table)
    assert got[0] == pytest.approx(np.quantile(table[1:, 0], 0.99), rel=1e-5)
    np.testing.assert_array_equal(got[1:], [1.0, 1.0, 1.0])
    scale = fitted.net_.ctx_scale.cpu().numpy()
    assert scale[1] > 5.0  # bytes: log1p of a window's bytes
    flows = make_flows(ROLES2)
    train = flows[flows["split"] == "train"]
    np.testing.assert_allclose(scale, context_scale(fitted._encode(train).ctx_table), rtol=1e-6)


def test_a_capture_of_minutes_samples_its_own_rate() -> None:
    """Setup: the planted hosts' flows (600 a host) at uniform times over 20 minutes (0.5
    flows/s); the first 800 s train, the rest validate. Run: train, sample the 4 hosts for
    the last 400 s. Assert: activities are flows per day at the capture's rate (a day
    counted by the share of it the capture covers, not as a whole day: 10^rate x the warped
    coverage = the host's training flows), and each sampled host holds 0.5 flows/s within
    30% (200 flows; a whole-day count would give 0.003 flows/s and a calibration stuck at
    its 10x clip)."""
    from nfsynth.models.neural_vocab import day_coverage

    flows = make_flows(ROLES2, days=2, per_day=300, seed=1)
    t0, length = 86400.0 * 30, 1200.0
    rng = np.random.default_rng(1)  # a Poisson process: uniform times, sorted per host
    flows["ts"] = np.floor(t0 + rng.uniform(0.0, length, len(flows)))
    flows = flows.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = flows["user"].ne(flows["user"].shift())
    flows["dt"] = np.where(first, 0.0, flows["ts"].diff().fillna(0.0))
    flows["hour"] = ((flows["ts"] % 86400) // 3600).astype(np.int8)
    flows["split"] = np.where(flows["ts"] < t0 + 800.0, "train", "val")
    model = NeuralFlowModel(**{**SMALL, "epochs": 4}).fit(flows, seed=0)
    train = flows[flows["split"] == "train"]
    cover = day_coverage(train["ts"].to_numpy(), model.warp_)
    share = float(cover(np.array([np.floor(t0 / 86400.0)]))[0])
    for user, n in train.groupby("user").size().items():
        assert 10 ** model.rates_[user] * share == pytest.approx(n, rel=1e-6)
    sample = model.sample(4, t0 + 800.0, 400.0 / 86400.0, seed=2).to_pandas()
    per_host = sample.groupby("user").size()
    assert len(per_host) == 4
    np.testing.assert_allclose(per_host.to_numpy() / 400.0, 0.5, rtol=0.3)


def test_rare_peers_are_sampled_as_training_peers_of_their_kind() -> None:
    """Setup: the planted hosts, half of whose flows go to one of 500 internal peers
    ``C<n>`` (the rest to their one external peer); 4 exact peer tokens, so the internal
    peers fall in the ``<internal>`` bucket. Run: train, sample. Assert: every sampled peer is
    a training peer, the ``C`` peers are the internal ones, and their share is the
    training's within 0.1 (placeholder names would match no ``internal`` pattern)."""
    flows = make_flows(ROLES2, seed=2)
    rng = np.random.default_rng(2)
    internal = rng.random(len(flows)) < 0.5
    flows.loc[internal, "peer"] = [f"C{i}" for i in rng.integers(0, 500, internal.sum())]
    flows.loc[internal, "peer_kind"] = "internal"
    model = NeuralFlowModel(**{**SMALL, "epochs": 3, "top_peers": 4}).fit(flows, seed=0)
    assert model.vocabs_["peer"].tokens[-1] == "<internal>"
    assert model.vocabs_["peer"].bucket_repeat["<internal>"] < 0.05  # no sessions planted
    sample = model.sample(4, 86400.0, 1.0, seed=3).to_pandas()
    out = sample["direction"].astype(str) == "out"
    peer = pd.Series(np.where(out, sample["dst"], sample["src"])).astype(str)
    train = flows[flows["split"] == "train"]
    assert set(peer) <= set(train["peer"].astype(str))
    share = peer.str.startswith("C").mean()
    assert abs(share - (train["peer_kind"] == "internal").mean()) < 0.1, share


def test_sampled_hosts_keep_their_rare_peers_in_sessions() -> None:
    """Setup: the planted hosts, every flow to one of 500 internal peers, kept from the flow
    before with probability 0.8 (sessions); 4 exact peer tokens, so the peers fall in the
    ``<internal>`` bucket. Run: train, sample a day. Assert: the bucket's repeat share is
    the planted 0.8 (0.77 measured on the training day); a sampled host's consecutive flows in the bucket share their peer
    far more often than independent draws from 500 peers would (measured 0.68)."""
    flows = make_flows(ROLES2, seed=2)
    rng = np.random.default_rng(2)
    peers = []
    for _, frame in flows.groupby("user", sort=False):
        which = rng.integers(0, 500, len(frame))
        for k in range(1, len(frame)):
            if rng.random() < 0.8:
                which[k] = which[k - 1]
        peers.append([f"C{w}" for w in which])
    flows["peer"] = np.concatenate(peers)
    flows["peer_kind"] = "internal"
    model = NeuralFlowModel(**{**SMALL, "epochs": 2, "top_peers": 4}).fit(flows, seed=0)
    assert model.vocabs_["peer"].bucket_repeat["<internal>"] == pytest.approx(0.8, abs=0.05)
    sample = model.sample(4, 86400.0, 1.0, seed=3).to_pandas()
    out = sample["direction"].astype(str) == "out"
    sample["peer"] = np.where(out, sample["dst"], sample["src"]).astype(str)
    frame = sample.sort_values(["user", "ts"], kind="mergesort")
    peer, user = frame["peer"].to_numpy(), frame["user"].to_numpy()
    rare = np.char.startswith(peer.astype(str), "C")
    pair = (user[1:] == user[:-1]) & rare[1:] & rare[:-1]
    assert pair.sum() > 200
    assert (peer[1:] == peer[:-1])[pair].mean() > 0.4


def test_a_session_to_a_rare_peer_keeps_its_peer() -> None:
    """Setup: a peer vocabulary with an ``<internal>`` bucket of 50 equally frequent peers,
    measured on training flows whose hosts stay with a rare peer for 70% of consecutive
    flows. Run: decode 40,000 flows of 20 hosts, all in the bucket, in shuffled row order,
    with and without their hosts and times. Assert: ``bucket_repeats`` measures 0.7; with
    hosts, a host's consecutive flows share their peer at that share (plus the 1/50 of a
    fresh draw), without them at about 1/50; every peer stays a training peer, drawn about
    evenly; exact tokens are left as they are."""
    from nfsynth.models.neural_vocab import CategoricalVocab, bucket_repeats

    rng = np.random.default_rng(0)
    peers = np.array([f"C{i}" for i in range(50)], dtype=object)
    n = 40_000
    user = np.repeat(np.arange(20), n // 20).astype(str).astype(object)
    keep = rng.random(n) < 0.7
    draw = peers[rng.integers(0, 50, n)]
    text = draw.copy()
    for k in range(1, n):
        if keep[k] and user[k] == user[k - 1]:
            text[k] = text[k - 1]
    bucket = np.full(n, "<internal>", dtype=object)
    share = bucket_repeats(text, bucket, user, ["<external>", "<internal>"])
    assert share["<external>"] == 0.0 and abs(share["<internal>"] - 0.7 - 0.3 / 50) < 0.01
    vocab = CategoricalVocab(
        name="peer",
        tokens=["web", "<external>", "<internal>"],
        n_exact=1,
        eval_code=[0, 1, 2],
        bucket_values={"<internal>": list(peers)},
        bucket_counts={"<internal>": [10] * 50},
        bucket_repeat=share,
    )
    ts = np.tile(np.arange(n // 20, dtype=float), 20)
    shuffle = rng.permutation(n)
    ids = np.full(n, 2)
    ids[::97] = 0  # a few flows to the exact peer break some runs

    def consecutive_share(values: np.ndarray) -> float:
        order = np.lexsort((ts[shuffle], user[shuffle]))
        v, u, i = values[order], user[shuffle][order], ids[shuffle][order]
        pair = (u[1:] == u[:-1]) & (i[1:] == 2) & (i[:-1] == 2)
        return float((v[1:] == v[:-1])[pair].mean())

    kept = vocab.decode(ids[shuffle], np.random.default_rng(1), user[shuffle], ts[shuffle])
    free = vocab.decode(ids[shuffle], np.random.default_rng(1))
    assert abs(consecutive_share(kept) - (0.706 + 0.294 / 50)) < 0.02
    assert consecutive_share(free) < 0.05
    assert set(kept[ids[shuffle] == 2]) <= set(peers)
    counts = pd.Series(kept[ids[shuffle] == 2]).value_counts()
    assert len(counts) == 50 and counts.max() < 3 * counts.min()
    assert (kept[ids[shuffle] == 0] == "web").all()


def test_rate_calibration_scales_the_idle_time_and_keeps_the_bursts():
    """``scale_gaps``: gaps under a tenth of the host's mean gap stay as sampled, the rest of
    each gap is scaled; the map is continuous and increasing, and on exponential gaps (less
    bursty than real ones, so more of their time in short gaps) it still moves the total time,
    so the flow count, 90% of the way to the factor: each multiplicative calibration round
    closes at least 90% of a host's rate error."""
    from nfsynth.models.neural_sample import SCALE_GAPS_FROM, scale_gaps

    c = SCALE_GAPS_FROM
    short = np.array([0.0, 0.001, 0.02, c])
    for factor in (0.3, 0.7, 1.6):
        np.testing.assert_array_equal(scale_gaps(short, factor), short)
        np.testing.assert_allclose(scale_gaps(np.array([c + 2.0]), factor), [c + 2.0 * factor])
    grid = np.linspace(0.0, 5.0, 5001)
    for factor in (0.1, 0.5, 1.0, 3.0, 10.0):
        out = scale_gaps(grid, factor)
        assert np.all(np.diff(out) > 0)  # increasing: no value skipped or piled up
        assert np.abs(np.diff(out)).max() <= max(factor, 1.0) * 0.001 + 1e-12  # continuous
    # one factor per host (rows)
    np.testing.assert_allclose(scale_gaps(np.array([1.1, 1.1]), np.array([0.5, 2.0])), [0.6, 2.1])
    gaps = np.random.default_rng(0).exponential(1.0, 200_000)
    for factor in (0.6, 0.85, 1.3):
        ratio = scale_gaps(gaps, factor).sum() / gaps.sum()
        assert abs(ratio - factor) <= 0.1 * abs(1.0 - factor), (factor, ratio)


def test_value_map_sends_sampled_quantiles_onto_the_training_ones() -> None:
    """Setup: "sampled" latents N(0, 1) and training latents N(2, 0.5). Assert: the map's
    knots increase; mapped, the sampled values have the training quantiles (within 0.03)
    and a value drift under 0.03, against over 0.6 before; the map is increasing on a grid
    and has slope 1 beyond its end knots (no tail cut or stretched)."""
    from nfsynth.models.neural import value_drift, value_map
    from nfsynth.models.neural_sample import map_latent

    rng = np.random.default_rng(0)
    sampled = rng.normal(0.0, 1.0, 20000)
    target = np.sort(rng.normal(2.0, 0.5, 30000))
    src, dst = value_map(sampled, target)
    assert (np.diff(src) > 0).all() and (np.diff(dst) > 0).all()
    mapped = map_latent(sampled, src, dst)
    levels = [0.01, 0.1, 0.5, 0.9, 0.99]
    assert np.allclose(np.quantile(mapped, levels), np.quantile(target, levels), atol=0.03)
    assert value_drift(sampled, target) > 0.6
    assert value_drift(mapped, target) < 0.03
    grid = np.linspace(-8.0, 8.0, 1001)
    assert (np.diff(map_latent(grid, src, dst)) >= 0).all()
    assert np.isclose(map_latent(src[-1:] + 3.0, src, dst)[0], dst[-1] + 3.0)
    assert np.isclose(map_latent(src[:1] - 2.0, src, dst)[0], dst[0] - 2.0)


def test_value_drift_counts_tied_values_in_one_bin() -> None:
    """A count field is mostly ties (60% of flows with 1 packet). Assert: the training values
    against themselves drift 0; moving 10% of the flows from 1 packet to 2 drifts 0.1;
    disjoint values drift 1."""
    from nfsynth.models.neural import value_drift

    rng = np.random.default_rng(1)
    target = np.log1p(np.r_[np.ones(6000), rng.integers(2, 50, 4000)].astype(float))
    assert value_drift(target, target) == 0.0
    moved = target.copy()
    moved[:1000] = np.log1p(2.0)
    assert np.isclose(value_drift(moved, target), 0.1, atol=0.005)
    assert value_drift(target + 10.0, target) == 1.0


def test_value_calibration_pulls_a_drifted_field_back_to_its_training_values(
    fitted: NeuralFlowModel, flows: pd.DataFrame, tmp_path
) -> None:
    """Setup: the fitted model with its duration head's mixture means raised by 1.5 (latent
    log1p units: durations about 4.5x too long). Run: the calibration (3 rounds, value maps
    on). Assert: sampled (8 hosts, one day), the durations' value drift against the training
    durations falls to under half of the drift without value maps (``calibrate_values``
    off; 0.80 -> 0.13 measured), and their median comes back within 3 s of the training
    median (15 s; 70 s drifted); the duration map is kept; a saved and loaded model has
    the same maps and samples the same rows."""
    import copy

    from nfsynth.models.neural import value_drift

    train = flows[flows["split"] == "train"]
    real = np.log1p(train["duration"].to_numpy(dtype=float))
    model = copy.deepcopy(fitted)
    j, M = model.fields_.index("duration"), model.net_.M
    with torch.no_grad():
        model.net_.head_out[j].bias[M : 2 * M] += 1.5

    def durations(m: NeuralFlowModel) -> np.ndarray:
        frame = m.sample(8, 86400.0, 1.0, seed=11).to_pandas()
        return frame["duration"].to_numpy(dtype=float)

    off = copy.deepcopy(model)
    off.hyperparameters["calibrate_values"] = False
    off._calibrate(off._encode(train), seed=0)
    drifted = durations(off)
    model._calibrate(model._encode(train), seed=0)
    calibrated = durations(model)
    before = value_drift(np.log1p(drifted), real)
    after = value_drift(np.log1p(calibrated), real)
    assert np.median(drifted) > 40.0, np.median(drifted)
    assert after < 0.5 * before, (before, after)
    assert abs(np.median(calibrated) - np.median(train["duration"])) < 3.0
    assert "duration" in model.value_maps_ and not off.value_maps_
    model.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    assert set(again.value_maps_) == set(model.value_maps_)
    assert np.array_equal(durations(again), calibrated)


def test_a_dropped_gap_map_leaves_the_rates_measured_without_it(
    fitted: NeuralFlowModel, flows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup: the calibration's map for ``dt`` replaced by one that makes every gap 20x
    longer (latent + 3), so the round that tries it samples far too few flows and drifts
    far. Run: the calibration (3 rounds). Assert: the gap map is dropped, and the rate
    factors are the ones measured before the trial: a day of the training hosts then holds
    0.7-1.4x their flows per day (with the factors of the trial round, measured under 20x
    gaps, it held 5.1x)."""
    import copy

    from nfsynth.models import neural as neural_module

    real_map = neural_module.value_map
    spoiled = []

    def bad_gap_map(sampled: np.ndarray, target: np.ndarray):
        src, dst = real_map(sampled, target)
        if np.median(target) >= 0.0:  # log1p values and log bytes per packet
            return src, dst
        spoiled.append(len(target))  # the gaps: log of gap / host's mean gap, mostly < 0
        return src, src + 3.0

    monkeypatch.setattr(neural_module, "value_map", bad_gap_map)
    train = flows[flows["split"] == "train"]
    model = copy.deepcopy(fitted)
    model._calibrate(model._encode(train), seed=0)
    assert len(spoiled) == 1  # one map spoiled: the gaps'
    assert "dt" not in model.value_maps_
    frame = model.sample(len(model.train_hosts_), 86400.0, 1.0, seed=3).to_pandas()
    per_day = np.power(10.0, [rate for _, rate in model.train_hosts_]).sum()
    assert 0.7 < len(frame) / per_day < 1.4, (len(frame), per_day)


def test_calibration_rounds_keep_to_their_flow_budget(
    fitted: NeuralFlowModel, flows: pd.DataFrame, caplog
) -> None:
    """Training hosts expecting more than ``calibration_flows`` flows over the calibration
    span are calibrated on a shorter span that expects about that many (the same share of
    operational time for every host); with the budget off, on the whole span."""
    import copy
    import logging
    import re

    train = flows[flows["split"] == "train"]

    def calibrate_with(budget: int) -> tuple[float, float]:
        model = copy.deepcopy(fitted)
        model.hyperparameters["calibration_flows"] = budget
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nfsynth.models.neural"):
            model._calibrate(model._encode(train), seed=0)
        rounds = re.findall(
            r"calibration \d: \d+ flows of (\d+) expected over ([\d.]+) h", caplog.text
        )
        assert len(rounds) == 3 and len(set(rounds)) == 1, rounds  # 3: with value maps
        return float(rounds[0][0]), float(rounds[0][1])

    expected, hours = calibrate_with(0)
    assert expected > 400 and hours > 1.0
    budget = int(expected / 4)
    short_expected, short_hours = calibrate_with(budget)
    assert abs(short_expected - budget) <= 1.0, (short_expected, budget)
    assert short_hours < hours
    assert calibrate_with(int(expected * 2)) == (expected, hours)  # under budget: unchanged


def test_sampled_ports_keep_to_the_protocols_they_occur_with(fitted: NeuralFlowModel) -> None:
    """Setup: the fitted model with its port head pushed 8 nats toward 443, which the
    training flows use with TCP only. Assert: with the protocol-port support (learned in
    ``fit``) no UDP flow gets port 443 and every sampled (proto, port) pair occurs in
    training; without it, UDP flows do get 443."""
    import copy

    model = copy.deepcopy(fitted)
    vocab = model.vocabs_["dport"]
    tok = vocab.tokens.index("443")
    with torch.no_grad():
        model.net_.head_out[model.fields_.index("dport")].bias[tok] += 8.0
    model.sampler_, model.token_offsets_ = None, {}
    support = model.proto_support_["dport"]
    udp = model.vocabs_["proto"].tokens.index("17")
    assert support[:, tok].any() and not support[udp, tok]

    def udp_on_443(m: NeuralFlowModel) -> tuple[int, pd.DataFrame]:
        frame = m.sample(8, 86400.0, 1.0, seed=5).to_pandas()
        bad = (frame["proto"].astype(str) == "17") & (frame["dport"].astype(str) == "443")
        return int(bad.sum()), frame

    masked, frame = udp_on_443(model)
    assert masked == 0
    p = model.vocabs_["proto"].encode(frame)
    for f in ("sport", "dport"):
        assert model.proto_support_[f][p, model.vocabs_[f].encode(frame)].all(), f
    model.proto_support_, model.sampler_ = {}, None
    unmasked, _ = udp_on_443(model)
    assert unmasked > 20, unmasked


def test_categorical_draws_follow_the_softmax_and_skip_masked_tokens() -> None:
    """``draw_categorical`` (the sampler's inverse-CDF draw of a categorical field's token).
    Setup: logits of probabilities (0.2, 0.3, 0.5) and the same with a masked (-1e9) token
    between them. Assert: uniforms land on the index whose cumulative interval
    holds them; over 200,000 draws the shares are the softmax (within 0.005) and the masked
    token is never drawn, even for a uniform at its interval's edge."""
    from nfsynth.models.neural_sample import draw_categorical

    logits = np.log(np.array([[0.2, 0.3, 0.5]] * 4, dtype=np.float32))
    u = np.array([0.1, 0.25, 0.6, 0.999999])
    np.testing.assert_array_equal(draw_categorical(logits, u), [0, 1, 2, 2])
    masked = np.log(np.array([[0.2, 1.0, 0.3, 0.5]], dtype=np.float32)) + np.array(
        [[0.0, -1e9, 0.0, 0.0]], dtype=np.float32
    )
    edge = np.array([0.2 - 1e-6, 0.2 + 1e-6, 0.5 + 1e-6])
    np.testing.assert_array_equal(draw_categorical(np.repeat(masked, 3, 0), edge), [0, 2, 3])
    rng = np.random.default_rng(0)
    n = 200_000
    draws = draw_categorical(np.repeat(masked, n, axis=0), rng.random(n))
    shares = np.bincount(draws, minlength=4) / n
    assert shares[1] == 0.0
    np.testing.assert_allclose(shares[[0, 2, 3]], [0.2, 0.3, 0.5], atol=0.005)


@pytest.mark.parametrize("elasticity", [0.8, 1.0, 2.5, 3.5])
def test_rate_steps_reach_the_factor_that_holds_each_hosts_flow_count(elasticity: float) -> None:
    """``rate_step`` (the rate calibration's update). Setup: three hosts whose flow count
    answers the gap factor f as ``(f / f*)^-e`` with f* = 0.3, 1 and 3 (a count ratio of 1 at
    f*), starting from f = 1. Assert: after two steps (the second a secant through both
    measured rounds) every factor is within 1% of its f*, and the elasticity is measured
    where the factor moved; for e = 3.5 the plain step (factor times ratio) moves away from
    f* instead, which is what the secant replaces."""
    from nfsynth.models.neural import rate_step

    target = np.log(np.array([0.3, 1.0, 3.0]))

    def log_ratio(log_f: np.ndarray) -> np.ndarray:
        return -elasticity * (log_f - target)

    log_f0 = np.zeros(3)
    log_f1, e1 = rate_step(log_f0, log_ratio(log_f0), None, None)
    assert e1 is None
    log_f2, e2 = rate_step(log_f1, log_ratio(log_f1), (log_f0, log_ratio(log_f0)), e1)
    np.testing.assert_allclose(np.exp(log_f2), np.exp(target), rtol=0.01)
    moved = np.abs(log_f1 - log_f0) > np.log(1.05)
    np.testing.assert_allclose(e2[moved], elasticity)
    if elasticity == 3.5:
        plain1 = log_f0 + log_ratio(log_f0)
        plain2 = plain1 + log_ratio(plain1)
        assert (np.abs(plain2 - target)[moved] > np.abs(log_f0 - target)[moved]).all()


def test_a_rate_step_keeps_its_prior_where_the_count_rose_with_the_factor() -> None:
    """A noisy round can read more flows at a larger gap factor. Assert: no elasticity is
    taken from such a pair (the assumed one stands), and factors stay in their clip range."""
    from nfsynth.models.neural import RATE_ELASTICITY_FIRST, RATE_FACTOR_RANGE, rate_step

    prev = (np.log(np.array([1.0, 1.0])), np.log(np.array([0.9, 100.0])))
    log_f, e = rate_step(np.log(np.array([1.2, 1.0])), np.log(np.array([1.1, 100.0])), prev, None)
    assert e is not None and e[0] == RATE_ELASTICITY_FIRST
    assert np.isclose(np.exp(log_f[1]), RATE_FACTOR_RANGE[1])


def test_sampled_gaps_stay_below_the_longest_training_gap(
    fitted: NeuralFlowModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setup: the fitted model with its gap head's locations pushed 3 (log mean gaps, 20x)
    up, so that it draws gaps far longer than any in training. Assert: every drawn gap
    latent stays at or below the longest training gap's (``spec.lat_hi``), the share of
    gaps near it is not piled up at a clip, and without the truncation
    (``DT_TAIL_MARGIN`` infinite) many gaps lie beyond it."""
    import copy

    from nfsynth.models import neural_sample
    from nfsynth.models.neural import ROLES

    model = copy.deepcopy(fitted)
    j, M = model.fields_.index("dt"), model.net_.M
    with torch.no_grad():
        model.net_.head_out[j].bias[M : 2 * M] += 3.0
    model.token_offsets_, model.value_maps_ = {}, {}
    roles = np.array([ROLES.index(r) for r, _ in model.train_hosts_])
    rates = np.array([v for _, v in model.train_hosts_], dtype=np.float32)
    hi = model.specs_["dt"].lat_hi

    def gap_latents() -> np.ndarray:
        model.sampler_ = model._step_sampler()
        model.sampler_.record_latents = True
        rng = np.random.default_rng(0)
        frame = model._generate(roles, rates, np.arange(len(roles)), 0.0, 1.0, rng)
        return frame["~dt"].to_numpy(dtype=float)

    truncated = gap_latents()
    assert truncated.size > 100
    assert truncated.max() <= hi + 1e-9
    assert np.mean(truncated > hi - 1e-6) < 0.01  # truncated, not clipped onto hi
    monkeypatch.setattr(neural_sample, "DT_TAIL_MARGIN", np.inf)
    assert np.mean(gap_latents() > hi) > 0.1


def _in_sessions(flows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``flows`` re-timed in sessions: each host alternates runs of about 40 flows with a
    mean gap of 20 s and runs with a mean gap of 400 s; the last day is validation."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, frame in flows.groupby("user", sort=True):
        busy = np.cumsum(rng.random(len(frame)) < 1 / 40) % 2 == 1
        ts = np.floor(np.cumsum(rng.exponential(np.where(busy, 20.0, 400.0))))
        parts.append(frame.assign(ts=ts))
    out = pd.concat(parts).sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = np.r_[True, out["user"].to_numpy()[1:] != out["user"].to_numpy()[:-1]]
    out["dt"] = np.where(first, 0.0, out["ts"].diff().fillna(0.0))
    out["hour"] = ((out["ts"] % 86400) // 3600).astype(np.int8)
    day = np.floor(out["ts"] / 86400.0)
    out["split"] = np.where(day >= day.max(), "val", "train")
    return out


def _peer_sessions(flows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``flows`` whose outgoing hosts talk to 8 external peers in sessions: each flow starts
    a new session with probability 1/6, to a peer drawn uniformly, else keeps the peer of
    the flow before (consecutive flows share their peer about 85% of the time)."""
    rng = np.random.default_rng(seed)
    out = flows.copy()
    for _, frame in out.groupby("user", sort=True):
        if frame["direction"].iloc[0] != "out":
            continue
        start = rng.random(len(frame)) < 1 / 6
        start[0] = True
        session = np.cumsum(start) - 1
        peers = np.array([f"ext-{k}" for k in rng.integers(0, 8, session.max() + 1)])
        out.loc[frame.index, "peer"] = peers[session]
    return out


def _same_peer_share(frame: pd.DataFrame) -> float:
    """Share of a host's consecutive flows to the same peer (``dst`` of a sample's outgoing
    flows, ``peer`` of user-flow rows), outgoing hosts only."""
    frame = frame[frame["direction"] == "out"].sort_values(["user", "ts"], kind="mergesort")
    peer = (frame["peer"] if "peer" in frame else frame["dst"]).astype(str).to_numpy()
    user = frame["user"].astype(str).to_numpy()
    same = user[1:] == user[:-1]
    return float((peer[1:] == peer[:-1])[same].mean())


def test_history_copy_puts_back_the_sessions_of_one_peer(tmp_path: Path) -> None:
    """Setup: the planted outgoing hosts talk to 8 peers in sessions (85% of consecutive
    training flows share their peer). Run: the small network fitted with and without
    ``history_copy: [peer]``, each sampled for three days. Assert: the copy heads lower the
    validation NLL; the samples with them share their peer from flow to flow far more often
    than without (0.58 against 0.16 measured; the training flows 0.87, of which
    ``self_history`` hides the true peer from 80% of the history); the
    peers keep their training shares within 0.12 (0.09 measured; a host in a session draws
    its peers in runs, so a day of two hosts holds few independent draws); the probability of a host's earlier flows does not
    move when a later flow's peer changes (the copy sees the past only); saved and loaded,
    the model samples the same flows."""
    flows = _peer_sessions(make_flows(ROLES2, per_day=300, seed=5), seed=0)
    train = flows[flows["split"] == "train"]
    hp = {**SMALL, "epochs": 8, "patience": 8}
    copying = NeuralFlowModel(**hp, history_copy=["peer"]).fit(flows, seed=1)
    plain = NeuralFlowModel(**hp).fit(flows, seed=1)
    assert copying.history_["best_val"] < plain.history_["best_val"] - 0.15
    frame = copying.sample(4, 86400.0, 3.0, seed=2).to_pandas()
    with_copy = _same_peer_share(frame)
    without = _same_peer_share(plain.sample(4, 86400.0, 3.0, seed=2).to_pandas())
    assert with_copy > without + 0.3, (with_copy, without)
    assert with_copy > 0.45, with_copy
    out = frame[frame["direction"] == "out"]
    shares = out["dst"].value_counts(normalize=True)
    want = train.loc[train["direction"] == "out", "peer"].value_counts(normalize=True)
    assert (shares.reindex(want.index, fill_value=0.0) - want).abs().max() < 0.12
    host = flows[flows["user"] == "h0"].head(40).reset_index(drop=True)
    before = copying.log_prob(host)
    changed = host.copy()
    changed.loc[30, "peer"] = "ext-7" if changed.loc[30, "peer"] != "ext-7" else "ext-6"
    after = copying.log_prob(changed)
    np.testing.assert_allclose(after[:30], before[:30], rtol=1e-5, atol=1e-5)
    assert not np.allclose(after[31:], before[31:])
    with pytest.raises(ValueError, match="not categorical"):
        NeuralFlowModel(history_copy=["bytes"])
    copying.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    assert again.hyperparameters["history_copy"] == ["peer"]
    pd.testing.assert_frame_equal(again.sample(4, 86400.0, 3.0, seed=2).to_pandas(), frame)


def _consecutive_gaps_correlation(frame: pd.DataFrame) -> float:
    """Spearman correlation of each host's consecutive gaps (a burstiness measure)."""
    frame = frame.sort_values(["user", "ts"], kind="mergesort")
    gap = frame.groupby("user")["ts"].diff()
    prev = gap.groupby(frame["user"]).shift(1)
    ok = gap.notna() & prev.notna()
    return float(stats.spearmanr(gap[ok], prev[ok])[0])


def test_gap_copula_puts_back_the_sessions_the_network_misses(tmp_path) -> None:
    """Setup: the planted hosts' flows in sessions (``_in_sessions``: consecutive training
    gaps correlate 0.55). Run: fit with ``gap_copula``, sample the 4 hosts for a day, then
    the same model with independent gap draws. Assert: the small network leaves much of the
    dependence out (its PITs correlate above 0.2 at lag 1), the copula carries it (over 0.2
    of each gap's normal score comes from the gaps before), and the samples' consecutive
    gaps correlate more with the copula (0.21 against 0.02 measured) but not beyond the
    training gaps; saved and loaded, the model keeps the copula and samples the same
    flows."""
    flows = _in_sessions(make_flows(ROLES2, per_day=300, seed=5), seed=0)
    train = flows[flows["split"] == "train"]
    # windows of 48 flows, so the lags the copula matches are measured far enough; no activity
    # modulation, whose swings make consecutive gaps alike too (0.26 here without the copula)
    hp = {**SMALL, "gap_copula": True, "seq_len": 48, "activity_modulation": False}
    model = NeuralFlowModel(**hp).fit(flows, seed=1)
    assert model.history_["gap_dependence"][0] > 0.2
    assert model.gap_copula_ is not None and model.history_["gap_copula"]["carried"] > 0.2
    frame = model.sample(4, 86400.0, 1.0, seed=2).to_pandas()
    model.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.gap_copula_, model.gap_copula_)
    pd.testing.assert_frame_equal(again.sample(4, 86400.0, 1.0, seed=2).to_pandas(), frame)
    with_copula = _consecutive_gaps_correlation(frame)
    model.gap_copula_, model.sampler_ = None, None
    without = _consecutive_gaps_correlation(model.sample(4, 86400.0, 1.0, seed=2).to_pandas())
    assert with_copula > without + 0.1, (with_copula, without)
    assert with_copula < _consecutive_gaps_correlation(train), with_copula


def _sizes_in_runs(flows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``flows`` with each host's packet counts in runs of about 30 flows, alternately small
    (1-3 packets) and large (40-120); bytes stay packets x 100..1400, durations follow."""
    rng = np.random.default_rng(seed)
    out = flows.copy()
    state = np.zeros(len(out), dtype=bool)
    for _, idx in out.groupby("user").indices.items():
        flips = rng.random(len(idx)) < 1.0 / 30.0
        state[idx] = (np.cumsum(flips) + rng.integers(0, 2)) % 2 == 1
    packets = np.where(state, rng.integers(40, 121, len(out)), rng.integers(1, 4, len(out)))
    out["packets"] = packets.astype(np.int64)
    out["bytes"] = packets * rng.integers(100, 1400, len(out))
    out["duration"] = np.where(state, rng.integers(5, 60, len(out)), rng.integers(0, 2, len(out)))
    out["duration"] = out["duration"].astype(float)
    return out


def _consecutive_rank_correlation(frame: pd.DataFrame, field: str) -> float:
    """Spearman correlation of consecutive flows' ``field`` within each host."""
    frame = frame.sort_values(["user", "ts"], kind="mergesort")
    x = pd.to_numeric(frame[field]).to_numpy(dtype=float)
    same = frame["user"].to_numpy()[1:] == frame["user"].to_numpy()[:-1]
    return float(stats.spearmanr(x[:-1][same], x[1:][same])[0])


def test_value_copula_puts_back_the_runs_of_sizes_the_network_misses(tmp_path) -> None:
    """Setup: the planted hosts' packet counts and durations in runs of about 30 flows
    (consecutive training flows' packets rank-correlate 0.69). Run: a small network (3
    epochs) fitted with ``value_copula``, sampled for a day, then without its copulas.
    Assert: the teacher-forced PITs of packets still correlate (the network left the
    dependence out), the copula carries part of each value's normal score, and the
    samples' consecutive packet counts correlate far more with it (0.80 against 0.05
    measured), within 0.15 of the training flows' (a dependence this strong, seen through
    cells of 1-3 packets, is overestimated: see ``latent_correlations``); the share of large
    flows stays within 0.1 of the sample without it; saved and loaded, the model keeps its
    copulas and samples the same flows."""
    flows = _sizes_in_runs(make_flows(ROLES2, per_day=300, seed=5), seed=0)
    train = flows[flows["split"] == "train"]
    hp = {**SMALL, "epochs": 3, "value_copula": True, "seq_len": 48, "calibrate_values": False}
    model = NeuralFlowModel(**hp).fit(flows, seed=1)
    assert model.history_["packets_dependence"][0] > 0.1
    assert set(model.value_copulas_) >= {"packets", "duration"}
    assert model.history_["packets_copula"]["carried"] > 0.05
    frame = model.sample(4, 86400.0, 1.0, seed=2).to_pandas()
    model.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    assert set(again.value_copulas_) == set(model.value_copulas_)
    pd.testing.assert_frame_equal(again.sample(4, 86400.0, 1.0, seed=2).to_pandas(), frame)
    with_copula = _consecutive_rank_correlation(frame, "packets")
    model.value_copulas_, model.sampler_ = {}, None
    plain = model.sample(4, 86400.0, 1.0, seed=2).to_pandas()
    without = _consecutive_rank_correlation(plain, "packets")
    large = [float((f["packets"] >= 20).mean()) for f in (frame, plain)]
    assert with_copula > without + 0.1, (with_copula, without)
    assert abs(with_copula - _consecutive_rank_correlation(train, "packets")) < 0.15

    assert abs(large[0] - large[1]) < 0.1, large


def _modulated(flows: pd.DataFrame, sigma: float, phi: float, seed: int) -> pd.DataFrame:
    """``flows`` re-timed as a Cox process: each host's flows fall in its 5-minute cells in
    proportion to the planted hours (8-18) times its own modulation path (``sigma``,
    ``phi`` per cell; ``neural_activity.modulation_paths``); the last day is validation."""
    rng = np.random.default_rng(seed)
    days = int(np.ceil(flows["ts"].max() / 86400.0))
    n_cells = days * 288
    hour = (np.arange(n_cells) % 288) // 12
    rhythm = ((hour >= 8) & (hour < 18)).astype(float)
    parts = []
    for _, frame in flows.groupby("user", sort=True):
        m = modulation_paths(rng, 1, n_cells, sigma, phi)[0] * rhythm
        cells = rng.choice(n_cells, size=len(frame), p=m / m.sum())
        ts = np.sort(np.floor((cells + rng.random(len(frame))) * 300.0))
        parts.append(frame.assign(ts=ts))
    out = pd.concat(parts).sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = np.r_[True, out["user"].to_numpy()[1:] != out["user"].to_numpy()[:-1]]
    out["dt"] = np.where(first, 0.0, out["ts"].diff().fillna(0.0))
    out["hour"] = ((out["ts"] % 86400) // 3600).astype(np.int8)
    out["split"] = np.where(out["ts"] >= (days - 1) * 86400.0, "val", "train")
    return out


def _counts_autocovariance(frame: pd.DataFrame, warp) -> np.ndarray:
    ts = pd.to_numeric(frame["ts"]).to_numpy(dtype=float)
    return normalised_autocovariance(cell_counts(ts, frame["user"].astype(str), warp))


def _hourly_dispersion(frame: pd.DataFrame) -> float:
    """Mean over (host, clock hour) of ``(count - expected)^2 / expected``, ``expected`` the
    host's flows spread as all hosts' flows over the clock hours (about 1 for Poisson counts
    around a shared rhythm, more where hosts' hourly volumes move on their own)."""
    hour = (pd.to_numeric(frame["ts"]).to_numpy() // 3600).astype(np.int64)
    hour -= hour.min()
    host = pd.factorize(frame["user"])[0]
    counts = np.zeros((host.max() + 1, hour.max() + 1))
    np.add.at(counts, (host, hour), 1.0)
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0) / counts.sum())
    ok = expected > 5.0
    return float(np.mean((counts[ok] - expected[ok]) ** 2 / expected[ok]))


def test_activity_modulation_gives_hosts_the_slow_activity_the_network_misses(tmp_path) -> None:
    """Setup: the planted hosts' flows re-timed as a Cox process (``_modulated``: 1,200
    flows a day, a modulation of sigma 0.9 and phi 0.9 per 5-minute cell), 4 days, the last
    one validation. Run: fit with ``activity_modulation`` over the whole period
    (``activity_span: period``), sample 8 hosts for 2 days, then the same model without its
    modulation, then with it kept per clock hour. Assert: the fit finds a modulation beyond
    the network's own (sigma over 0.3); with it the synthetic hosts' 5-minute counts keep
    more of the validation hosts' normalised autocovariance at 2-6 windows than without,
    their flows per host stay within 10% of the unmodulated sample's; saved and loaded, the
    model keeps the modulation and samples the same flows, and one saved before the span was
    a choice loads with the span it was fitted with. Kept per clock hour, the
    modulation still raises the counts' autocovariance at one window, while each host's
    hourly counts scatter around its expected ones as little as without a modulation (over
    the period, much more)."""
    base = make_flows(ROLES2, days=4, per_day=1200, seed=7)
    flows = _modulated(base, 0.9, 0.9, seed=0)
    hp = {**SMALL, "activity_modulation": True, "activity_span": "period"}
    model = NeuralFlowModel(**hp).fit(flows, seed=1)
    assert model.activity_ is not None
    sigma, phi = model.activity_
    assert sigma > 0.3, model.history_["activity"]
    target = _counts_autocovariance(flows[flows["split"] == "val"], model.warp_)
    frame = model.sample(8, 86400.0, 2.0, seed=2).to_pandas()
    model.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    assert again.activity_ == model.activity_
    pd.testing.assert_frame_equal(again.sample(8, 86400.0, 2.0, seed=2).to_pandas(), frame)
    meta_path = tmp_path / "m" / "model.json"  # a model saved before the span was a choice
    meta = json.loads(meta_path.read_text())
    del meta["hyperparameters"]["activity_span"]
    meta_path.write_text(json.dumps(meta))
    older = NeuralFlowModel.load(tmp_path / "m")
    assert older.hyperparameters["activity_span"] == "period"  # the span it was fitted with
    pd.testing.assert_frame_equal(older.sample(8, 86400.0, 2.0, seed=2).to_pandas(), frame)
    again.hyperparameters["activity_span"], again.sampler_ = "hour", None
    hourly = again.sample(8, 86400.0, 2.0, seed=2).to_pandas()
    model.activity_, model.sampler_ = None, None
    plain = model.sample(8, 86400.0, 2.0, seed=2).to_pandas()
    lags = slice(1, 6)
    with_mod = _counts_autocovariance(frame, model.warp_)[lags]
    without = _counts_autocovariance(plain, model.warp_)[lags]
    assert np.abs(with_mod - target[lags]).mean() < 0.6 * np.abs(without - target[lags]).mean()
    assert abs(len(frame) / len(plain) - 1.0) < 0.1, (len(frame), len(plain))
    lag1 = _counts_autocovariance(hourly, model.warp_)[0]
    assert lag1 > _counts_autocovariance(plain, model.warp_)[0] + 0.05, lag1
    dispersion = {k: _hourly_dispersion(f) for k, f in (("hour", hourly), ("plain", plain),
                                                         ("period", frame))}  # fmt: skip
    assert dispersion["hour"] < 1.5 * dispersion["plain"] < dispersion["period"], dispersion


def test_activity_shares_spare_the_steady_hosts(tmp_path) -> None:
    """Setup: of the planted hosts, h0 and h2 steady around the planted hours and h1 and h3
    re-timed as a Cox process (sigma 0.9, phi 0.9; ``_modulated``), 4 days, the last one
    validation. Run: fit with ``activity_share`` over the period, save, load. Assert: both
    steady hosts' shares lie below both modulated hosts' (below 0.5 and above 1), each
    synthetic host's sigma is the fitted one times its training host's share, and the
    loaded model keeps the shares and samples the same flows."""
    base = make_flows(ROLES2, days=4, per_day=1200, seed=7)
    steady = base["user"].isin(["h0", "h2"])
    flows = pd.concat(
        [_modulated(base[steady], 0.0, 0.9, seed=0), _modulated(base[~steady], 0.9, 0.9, seed=1)]
    ).sort_values(["user", "ts"], kind="mergesort", ignore_index=True)
    hp = {**SMALL, "activity_modulation": True, "activity_span": "period", "activity_share": True}
    model = NeuralFlowModel(**hp).fit(flows, seed=1)
    assert model.activity_ is not None and model.activity_shares_ is not None
    share = {u: model.activity_shares_[i] for u, i in model.host_ids_.items()}
    assert max(share["h0"], share["h2"]) < 0.5 and min(share["h1"], share["h3"]) > 1.0, share
    ids = np.array([model.host_ids_["h0"], model.host_ids_["h1"], len(model.host_ids_)])
    np.testing.assert_allclose(
        model._host_sigma(0.7, ids), 0.7 * np.array([share["h0"], share["h1"], 1.0])
    )
    frame = model.sample(4, 86400.0, 1.0, seed=2).to_pandas()
    model.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
    np.testing.assert_array_equal(again.activity_shares_, model.activity_shares_)
    pd.testing.assert_frame_equal(again.sample(4, 86400.0, 1.0, seed=2).to_pandas(), frame)


def test_gap_atoms_are_the_whole_seconds_that_stand_out() -> None:
    """Gaps on a 4 ms grid: a smooth spread, plus 5% at exactly 60 s and 2% at exactly 1 s.
    Those two are the atoms (a smooth density's whole seconds hold no more than their
    neighbours); a 1 s grid has none; ``atom_index`` marks the gaps on them."""
    from nfsynth.models.neural_vocab import atom_index, gap_atoms

    rng = np.random.default_rng(0)
    smooth = np.rint(rng.lognormal(1.0, 1.5, 20_000) / 0.004) * 0.004
    dt = np.r_[smooth, np.full(1_000, 60.0), np.full(400, 1.0)]
    dt = dt + rng.normal(0.0, 1e-7, dt.size)  # float epoch times' rounding
    atoms = gap_atoms(dt, 0.004)
    assert atoms.tolist() == [1.0, 60.0]
    index = atom_index(dt, atoms, 0.004)
    assert (index[-400:] == 1).all() and (index[-1400:-400] == 2).all()
    assert np.mean(index[:20_000] > 0) < 0.01  # the smooth gaps that happen to be 1 s or 60 s
    assert gap_atoms(np.rint(dt), 1.0).size == 0


def test_gap_atom_likelihood_adds_both_ways_to_the_atom() -> None:
    """``with_atoms``: a gap on atom a has P(a) + P(none) P_mixture(cell); any other gap
    P(none) P_mixture(cell)."""
    from nfsynth.models.neural_net import with_atoms

    p = torch.tensor([[0.7, 0.2, 0.1]])  # none, atom 1, atom 2
    cell = torch.tensor([0.05])
    for atom, want in ((0, 0.7 * 0.05), (1, 0.2 + 0.7 * 0.05), (2, 0.1 + 0.7 * 0.05)):
        got = with_atoms(p.log(), cell.log(), torch.tensor([atom]))
        assert torch.allclose(got.exp(), torch.tensor([want]))


def test_a_bin_holds_the_mixture_and_every_atom_inside_it() -> None:
    """``with_atoms_in_bin`` (the held-out NLL): a bin has P(none) P_mixture(bin) plus the
    probability of each atom inside it, and agrees with ``with_atoms`` for a bin of one."""
    from nfsynth.models.neural_net import with_atoms, with_atoms_in_bin

    p = torch.tensor([[0.6, 0.25, 0.15]])  # none, atom 1, atom 2
    mix = torch.tensor([0.1]).log()
    cases = (([-1e4, -1e4], 0.06), ([0.0, -1e4], 0.31), ([0.0, 0.0], 0.46))
    for log_in, want in cases:
        got = with_atoms_in_bin(p.log(), mix, torch.tensor([log_in]))
        assert torch.allclose(got.exp(), torch.tensor([want]))
    one = with_atoms(p.log(), mix, torch.tensor([2]))
    assert torch.allclose(with_atoms_in_bin(p.log(), mix, torch.tensor([[-1e4, 0.0]])), one)


def test_gap_atoms_keep_a_hosts_beacon(tmp_path: Path) -> None:
    """Setup: the planted hosts on a 4 ms grid, one of which sends a flow exactly every 60
    s from 08:00 (a beacon: a quarter of the training gaps). Run: fit with and without
    ``gap_atoms``, sample a day of the 4 hosts. Assert: the atoms are [60 s]; with them the
    sample keeps at least half of the training share of 60 s gaps, without them under 2%
    (the mixture spreads a gap over its host's rate and the hour's rhythm); the model
    scores the beacon's flows more likely with them (the evaluation's gap bin holding 60 s
    is wide, so by half a nat a flow); a saved model keeps its atoms, its scores and its
    seeded rows."""
    rng = np.random.default_rng(4)
    flows = make_flows(ROLES2, per_day=300)
    flows["ts"] = flows["ts"] + 0.004 * rng.integers(0, 250, len(flows))
    flows["duration"] = flows["duration"] + 0.004 * rng.integers(0, 250, len(flows))
    beacon = flows["user"] == "h0"
    k = np.arange(int(beacon.sum()))
    day = flows.loc[beacon, "ts"].to_numpy() // 86400.0
    flows.loc[beacon, "ts"] = np.sort(day) * 86400.0 + 8 * 3600.0 + 60.0 * (k % 300)
    flows = flows.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)
    first = np.r_[True, flows["user"].to_numpy()[1:] != flows["user"].to_numpy()[:-1]]
    flows["dt"] = np.where(first, 0.0, flows["ts"].diff().fillna(0.0))

    def share_60(frame: pd.DataFrame) -> float:
        frame = frame.sort_values(["user", "ts"], kind="mergesort")
        same = frame["user"].to_numpy()[1:] == frame["user"].to_numpy()[:-1]
        gaps = np.diff(frame["ts"].to_numpy(dtype=float))[same]
        return float(np.mean(np.abs(gaps - 60.0) < 1e-3))

    train = flows[flows["ts"] < 86400.0]
    hp = {**SMALL, "epochs": 3}
    shares, scores = {}, {}
    for on in (True, False):
        model = NeuralFlowModel(**hp, gap_atoms=on).fit(flows, seed=0)
        assert model.gap_atoms_.tolist() == ([60.0] if on else [])
        sample = model.sample(4, 86400.0 * 2, 1.0, seed=1).to_pandas()
        shares[on] = share_60(sample)
        scored = model.log_prob(flows[flows["user"] == "h0"])
        scores[on] = float(scored.mean())
        if on:
            model.save(tmp_path / "atoms")
            loaded = NeuralFlowModel.load(tmp_path / "atoms")
            assert loaded.gap_atoms_.tolist() == [60.0]
            np.testing.assert_allclose(loaded.log_prob(flows[flows["user"] == "h0"]), scored)
            again = loaded.sample(4, 86400.0 * 2, 1.0, seed=1).to_pandas()
            pd.testing.assert_frame_equal(again, sample)
    assert share_60(train) > 0.2
    assert shares[True] > 0.5 * share_60(train) and shares[False] < 0.02, shares
    assert scores[True] > scores[False] + 0.25, scores  # nats per flow (0.52 measured)

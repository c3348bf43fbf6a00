"""Tests of the neural autoregressive flow model on small hand-made user tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from nfsynth.evalspace import EvalSpace  # noqa: E402
from nfsynth.models.neural import NeuralFlowModel  # noqa: E402

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
    device="cpu",
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
    return NeuralFlowModel(**{**SMALL, "epochs": 15, "patience": 15}).fit(flows, seed=3)


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
    # only the role differs: DNS hosts start as DNS hosts (a tiny model's errors compound
    # later in the day, drifting towards the web pattern)
    first = dns.groupby("user").head(20)
    assert (first["sport"].astype(str) == "53").mean() > 0.5
    assert (dns["proto"] == 17).mean() > 0.3
    assert (web["sport"].astype(str) == "53").mean() < 0.05
    assert web["user"].str.startswith("synth-out_external-").all()


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
    fitted.save(tmp_path / "m")
    again = NeuralFlowModel.load(tmp_path / "m")
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

"""FlowEncoder: vocabularies and standardisation come from the training split only."""

import numpy as np
import pandas as pd

from nfsynth.embed.encoding import FlowEncoder, context_summary, vocab_codes


def test_vocabulary_and_scaling_use_training_rows_only(toy):
    # Setup: the test split gets a peer and byte counts never seen in training.
    flows = toy.flows.copy()
    test = flows["split"] == "test"
    flows["peer"] = flows["peer"].astype(object)
    flows.loc[test, "peer"] = "NeverSeenInTraining"
    flows.loc[test, "log_bytes"] = 50.0
    train = flows[flows["split"] == "train"]

    # Run
    enc = FlowEncoder(top_k=64).fit(train, toy.windows)
    out = enc.transform(flows, toy.windows)

    # Assert: the unseen peer is "other" (index 0), the statistics are the training ones.
    assert "NeverSeenInTraining" not in enc.vocab_["peer"]
    j = enc.cat_fields_.index("peer")
    assert (out.cat[test.to_numpy(), j] == 0).all()
    k = enc.num_fields_.index("log_bytes")
    assert np.isclose(enc.mean_[k], train["log_bytes"].mean())
    assert np.isclose(enc.std_[k], train["log_bytes"].std(ddof=0))
    expected = (flows["log_bytes"] - train["log_bytes"].mean()) / train["log_bytes"].std(ddof=0)
    assert np.allclose(out.num[:, k], np.clip(expected, -10, 10), atol=1e-5)
    assert (out.num[test.to_numpy(), k] == 10).all()  # held-out extremes clip, never refit
    # Same encoder whatever the held-out rows hold.
    again = FlowEncoder(top_k=64).fit(toy.flows[toy.flows["split"] == "train"], toy.windows)
    assert again.vocab_ == enc.vocab_ and np.allclose(again.mean_, enc.mean_)


def test_vocab_codes_on_categoricals_and_strings():
    vocab = ["443", "80"]
    s = pd.Series(["80", "443", "22", "80"])
    assert vocab_codes(s, vocab).tolist() == [2, 1, 0, 2]
    assert vocab_codes(s.astype("category"), vocab).tolist() == [2, 1, 0, 2]


def test_context_summary_is_mean_of_previous_windows():
    # Setup: one user, windows 10..14 with n_flows 1, 2, 3, 4, 5; flows in windows 10 and 14.
    windows = pd.DataFrame(
        {"user": "u", "win": np.arange(10, 15), "win_start": np.arange(10, 15) * 300.0}
    )
    for col in ("n_flows", "bytes", "packets", "n_peers", "n_dports", "n_out", "n_in"):
        windows[col] = np.arange(1, 6)
    flows = pd.DataFrame({"user": ["u", "u", "x"], "ts": [10 * 300.0 + 5, 14 * 300.0, 14 * 300.0]})

    ctx = context_summary(flows, windows, C=3)

    # Window 10 has nothing before it; window 14 sees windows 11..13 (2, 3, 4) and last = 4;
    # an unknown user sees zeros.
    assert ctx["ctx_mean_n_flows"].tolist() == [0.0, np.log1p(3.0), 0.0]
    assert ctx["ctx_last_n_flows"].tolist() == [0.0, np.log1p(4.0), 0.0]

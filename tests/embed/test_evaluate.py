"""Targets from the simulator's answers, the anomaly table, and the summary over datasets."""

import numpy as np
import pandas as pd

from nfsynth.embed.encoding import FlowEncoder
from nfsynth.embed.evaluate import (
    ANOMALY_COLUMNS,
    aggregate,
    anomaly_table,
    flow_targets,
    protocol_usefulness,
)


def _flows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "src": ["A", "A", "A", "B", "C"],
            "dst": ["T", "T", "T", "X", "Y"],
            "ts": [100.0, 150.0, 900.0, 3600.0, 50.0],
            "packets": [1, 1, 1, 500000, 3],
        }
    )


def test_flow_targets_from_labels_and_truth():
    labels = pd.DataFrame({"src": ["A"], "dst": ["T"], "start": [100], "end": [200]})
    truth = {"anomalies": [{"kind": "exfiltration", "time": 3600, "src": "B", "dst": "X",
                            "packets": 500000}]}  # fmt: skip
    t = flow_targets(_flows(), labels, truth)
    assert t["scan"].tolist() == [True, True, False, False, False]
    assert t["exfiltration"].tolist() == [False, False, False, True, False]
    assert t["any"].tolist() == [True, True, False, True, False]


def test_flow_targets_from_ugr_labels():
    flows = _flows().assign(label=["background", "blacklist", "anomaly-spam", "background", "x"])
    t = flow_targets(flows)
    assert t["blacklist"].tolist() == [False, True, False, False, False]
    assert t["attack"].tolist() == [False, True, True, False, True]


def test_anomaly_table_perfect_and_missing_positives(tmp_path):
    scores = pd.DataFrame({"ae_recon": [5.0, 4.0, 1.0, 3.0, 0.0]})
    targets = {"scan": np.array([1, 1, 0, 0, 0], bool), "none": np.zeros(5, bool)}
    cnn = pd.DataFrame({"label": [1, 0, -1, 0], "score": [0.2, 0.1, 0.9, 0.3]})
    table, curves = anomaly_table("sim", scores, targets, cnn)
    assert list(table.columns) == ANOMALY_COLUMNS
    row = table.set_index(["detector", "target"])
    assert row.loc[("ae_recon", "scan"), "auroc"] == 1.0
    assert row.loc[("ae_recon", "scan"), "ap"] == 1.0
    assert (
        np.isnan(row.loc[("ae_recon", "none"), "auroc"])
        and row.loc[("ae_recon", "none"), "n_pos"] == 0
    )
    # The ambiguous image (-1) is left out: 1 positive ranked between 2 negatives.
    assert row.loc[("scan_cnn", "scan_slot"), "auroc"] == 0.5
    assert row.loc[("scan_cnn", "scan_slot"), "n_neg"] == 2
    assert {c["detector"] for c in curves} == {"ae_recon", "scan_cnn"}

    table.to_csv(tmp_path / "a.csv", index=False)
    table.assign(dataset="ugr16").to_csv(tmp_path / "b.csv", index=False)
    both = aggregate([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], str(tmp_path / "all.csv"))
    assert len(both) == 2 * len(table) and set(both["dataset"]) == {"sim", "ugr16"}


def test_protocol_usefulness_learns_protocol_from_ports_without_seeing_it(toy):
    # In the toy data the protocol follows from the port (53 is UDP, the rest TCP; planted
    # flows UDP on 31337): a model that never sees `proto` should still get it right.
    flows = toy.flows
    enc = FlowEncoder(top_k=64).fit(flows[flows["split"] == "train"], toy.windows)
    embedding = np.random.default_rng(0).normal(size=(len(flows), 3)).astype(np.float32)
    res = protocol_usefulness(flows, enc, toy.windows, embedding, seed=0)
    assert res["classes"] == ["17", "6"] and res["test_split"] == "test"
    for name in ("logreg", "hgb"):
        assert res["models"][name]["base"] > 0.98 > res["majority_accuracy"]
        assert abs(res["models"][name]["gain"]) < 0.02  # noise features neither help nor hurt

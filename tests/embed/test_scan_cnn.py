"""Port-scan CNN: images hold the right counts, and a planted scan is detected on held-out
simulator-generated images."""

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from nfsynth.embed.scan_cnn import (
    build_images,
    port_bins,
    predict,
    scan_flow_mask,
    simulated_images,
    train_scan_cnn,
)


def test_port_bins_log_spaced_numeric_and_hashed_labels():
    bins = port_bins(pd.Series(["0", "443", "65535", "Port02726", "Port02726", "N10451"]), 32)
    assert bins[0] == 0 and bins[2] == 15  # numeric ports fill the first half
    assert 0 < bins[1] < 15
    assert bins[3] == bins[4] and 16 <= bins[3] < 32 and 16 <= bins[5] < 32


def test_build_images_counts_flows_and_distinct_destinations():
    # Setup: host A, slot 0: three flows to port 443 in time bin 0 (two destinations);
    # host A, slot 1: one flow. Slot 300 s, 10 time bins of 30 s.
    flows = pd.DataFrame(
        {
            "src": ["A", "A", "A", "A"],
            "dst": ["x", "x", "y", "x"],
            "ts": [1.0, 2.0, 29.0, 301.0],
            "dport": ["443", "443", "443", "22"],
        }
    )
    images, index = build_images(flows, "src", 300.0, 10, 32)
    b443 = port_bins(pd.Series(["443"]), 32)[0]
    assert images.shape == (2, 3, 10, 32)
    assert index[["host", "slot", "n_flows"]].values.tolist() == [["A", 0, 3], ["A", 1, 1]]
    assert np.isclose(images[0, 0, 0, b443], np.log1p(3)) and np.isclose(
        images[0, 1, 0, b443], np.log1p(2)
    )
    assert np.isclose(images[0, 2, 0, b443], np.log1p(2))  # flows to x, the top destination
    assert np.isclose(images[0].sum(), np.log1p(3) + 2 * np.log1p(2))  # nothing anywhere else


def test_scan_flow_mask_matches_labels_window():
    flows = pd.DataFrame({"src": ["s", "s", "s", "t"], "dst": ["d", "d", "e", "d"],
                          "ts": [99.0, 100.0, 150.0, 120.0]})  # fmt: skip
    labels = pd.DataFrame({"src": ["s"], "dst": ["d"], "start": [100], "end": [200]})
    assert scan_flow_mask(flows, labels).tolist() == [False, True, False, False]


def test_cnn_detects_planted_scans_on_held_out_simulated_images():
    torch.set_num_threads(1)
    # Setup: train on one simulated set, test on images from another seed.
    x, y, kinds = simulated_images(360, seed=1)
    x_new, y_new, _ = simulated_images(160, seed=2)
    assert 0.3 < y.mean() < 0.7 and 0.3 < y_new.mean() < 0.7

    # Run
    model, report = train_scan_cnn(x, y, kinds, epochs=8, batch_size=32, lr=0.003, seed=0)
    p = predict(model, x_new)

    # Assert: ranking and accuracy well above chance on unseen images.
    assert roc_auc_score(y_new, p) > 0.9
    assert ((p >= 0.5) == (y_new == 1)).mean() > 0.8
    assert report["heldout"]["n_pos"] + report["heldout"]["n_neg"] == report["n_heldout"]

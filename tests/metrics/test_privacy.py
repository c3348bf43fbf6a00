"""Known answers of the privacy metrics (distance to closest record, exact copies)."""

from __future__ import annotations

import pytest

from nfsynth.metrics import dcr, exact_copy


def renamed(frame, prefix="synth"):
    out = frame.copy()
    out["user"] = prefix + out["user"].astype(str)
    return out


def test_copies_of_training_flows_are_caught(tables, space):
    copies = renamed(tables["train"])
    out = exact_copy.compute(tables["train"], copies, tables["a"])
    assert out["exact_copy_share"] == 1.0
    assert out["exact_copy_share_holdout"] < 0.05
    ratios = dcr.compute(tables["train"], copies, tables["a"], space)
    assert ratios["dcr_p5_ratio"] < 0.05
    assert ratios["dcr_median_ratio"] < 0.05


def test_unseen_real_flows_are_as_far_as_the_holdout(tables, space):
    ratios = dcr.compute(tables["train"], tables["b"], tables["a"], space)
    assert ratios["dcr_p5_ratio"] == pytest.approx(1.0, abs=0.3)
    assert ratios["dcr_median_ratio"] == pytest.approx(1.0, abs=0.2)
    assert exact_copy.compute(tables["train"], tables["b"])["exact_copy_share"] < 0.05


def test_half_copied_sample_has_half_share(tables):
    train = tables["train"]
    half = len(train) // 2
    mixed = renamed(train.iloc[:half])
    mixed = mixed._append(tables["b"].iloc[:half], ignore_index=True)
    share = exact_copy.compute(train, mixed)["exact_copy_share"]
    assert share == pytest.approx(0.5, abs=0.03)

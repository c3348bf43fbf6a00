"""summary.summarize on hand-made metric files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nfsynth.metrics.summary import COLUMNS, summarize


def write(path, metrics, goals=None, **meta):
    path.parent.mkdir(parents=True, exist_ok=True)
    goals = goals or {k: "min" for k in metrics}
    path.write_text(json.dumps({**meta, "metrics": metrics, "goals": goals}))
    return path


def test_mean_std_over_seeds_and_reference(tmp_path):
    files = [
        write(tmp_path / "sim/metrics/b1/seed1.json", {"jsd_mean": 0.1, "density": 1.0},
              {"jsd_mean": "min", "density": "max"}),
        write(tmp_path / "sim/metrics/b1/seed2.json", {"jsd_mean": 0.3, "density": None},
              {"jsd_mean": "min", "density": "max"}),
        write(tmp_path / "sim/metrics/b2/seed1.json", {"jsd_mean": 0.5}),
    ]  # fmt: skip
    ref = write(tmp_path / "sim/metrics/reference.json", {"jsd_mean": 0.02})
    table = summarize(files, [ref])
    assert list(table.columns) == COLUMNS
    row = table.set_index(["model", "metric"]).loc[("b1", "jsd_mean")]
    assert row["dataset"] == "sim" and row["goal"] == "min"
    assert row["mean"] == pytest.approx(0.2)
    assert row["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert row["n_seeds"] == 2
    dens = table.set_index(["model", "metric"]).loc[("b1", "density")]
    assert (dens["mean"], dens["n_seeds"], dens["goal"]) == (1.0, 1, "max")
    real = table.set_index(["model", "metric"]).loc[("real", "jsd_mean")]
    assert real["mean"] == pytest.approx(0.02) and real["n_seeds"] == 1 and np.isnan(real["std"])
    assert len(table) == 4


def test_meta_in_the_file_wins_over_the_path(tmp_path):
    f = write(tmp_path / "x/metrics/y/seed9.json", {"w1_mean": 1.0}, dataset="ugr16", model="b2")
    row = summarize([f]).iloc[0]
    assert (row["dataset"], row["model"]) == ("ugr16", "b2")


def test_bad_file_names_the_file(tmp_path):
    bad = tmp_path / "d/metrics/m/seed1.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{\n  oops")
    with pytest.raises(ValueError, match=r"seed1\.json: line 2"):
        summarize([bad])

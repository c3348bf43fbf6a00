"""Benchmark files are gathered into per-job and per-rule tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nfsynth.report import runtime

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _write(path: Path, seconds: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{seconds / 2}\n")


def test_collect_and_aggregate(tmp_path: Path):
    _write(tmp_path / "train" / "sim.b1.seed1.tsv", 2.0, 100)
    _write(tmp_path / "train" / "sim.b1.seed2.tsv", 4.0, 120)
    _write(tmp_path / "train" / "sim.neural.seed1.tsv", 10.0, 300)
    _write(tmp_path / "ingest" / "sim.tsv", 1.5, 50)
    jobs = runtime.collect(tmp_path)
    assert len(jobs) == 4
    rules = runtime.per_rule(jobs).set_index("rule")
    assert rules.at["train", "jobs"] == 3
    assert rules.at["train", "total_seconds"] == 16.0
    assert rules.at["train", "max_rss_mb"] == 300
    assert list(runtime.per_rule(jobs)["rule"]) == ["train", "ingest"]  # slowest first
    t = runtime.model_training_seconds(jobs).set_index("model")
    assert t.at["b1", "train_seconds"] == 3.0 and t.at["neural", "train_seconds"] == 10.0
    assert "train_cpu_seconds" not in t  # the benchmark's CPU stops at its 15 s sample


def test_fit_seconds_come_from_each_models_training_json(tmp_path: Path):
    def fit(dataset: str, model: str, seed: int, info: dict) -> None:
        path = tmp_path / dataset / "models" / model / f"seed{seed}" / "training.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(info))

    fit("sim", "neural", 1, {"fit_seconds": 12.0, "fit_cpu_seconds": 11.0})
    fit("sim", "neural", 2, {"fit_seconds": 14.0, "fit_cpu_seconds": 13.0})
    fit("sim", "ctgan", 1, {"fit_seconds": 16.0})  # written before the CPU time was
    fit("other", "neural", 1, {"fit_seconds": 99.0, "fit_cpu_seconds": 99.0})
    t = runtime.model_fit_seconds({"sim": tmp_path / "sim" / "models"}).set_index("model")
    assert sorted(t.index) == ["ctgan", "neural"] and set(t["dataset"]) == {"sim"}
    assert t.at["neural", "fit_seconds"] == 13.0 and t.at["neural", "fit_cpu_seconds"] == 12.0
    assert t.at["ctgan", "fit_seconds"] == 16.0 and np.isnan(t.at["ctgan", "fit_cpu_seconds"])
    assert runtime.model_fit_seconds({"sim": tmp_path / "none"}).empty


def test_no_files_gives_empty_table(tmp_path: Path):
    assert runtime.collect(tmp_path).empty

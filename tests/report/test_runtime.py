"""Benchmark files are gathered into per-job and per-rule tables."""

from __future__ import annotations

from pathlib import Path

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
    assert t.at["b1", "train_cpu_seconds"] == 1.5 and t.at["neural", "train_cpu_seconds"] == 5.0


def test_no_files_gives_empty_table(tmp_path: Path):
    assert runtime.collect(tmp_path).empty

"""The functions the model rules call: evaluation space, training with its log, sampling with
``start: auto``."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nfsynth.evalspace import EvalSpace
from nfsynth.models.pipeline import (
    fit_evalspace,
    sample_host_count,
    sample_model,
    sample_start,
    train_model,
)
from nfsynth.schema import SAMPLE_SCHEMA


def test_train_and_sample_from_files(sim_users_dir, tmp_path):
    space = fit_evalspace(sim_users_dir, tmp_path / "evalspace.json", top_k=8, n_bins=10)
    assert EvalSpace.load(tmp_path / "evalspace.json").vocab == space.vocab
    assert space.n_bins("bytes") == 11  # the zero bin and n_bins log-spaced ones (last open)
    info = train_model(
        sim_users_dir,
        tmp_path / "evalspace.json",
        {"kind": "bayesnet", "max_bins": 12},
        3,
        tmp_path / "m",
    )
    saved = json.loads((tmp_path / "m" / "training.json").read_text())
    assert saved == info
    assert info["train_rows"] > 0 and 0 < info["val_nll_bits_per_flow"] < 200
    assert 0 < info["fit_cpu_seconds"] < info["fit_seconds"] * 4 + 1
    n = sample_model(
        tmp_path / "m", sim_users_dir / "split.json", {"n_users": 2, "days": 0.2, "start": "auto"}, 3,
        tmp_path / "s.parquet", hosts_path=sim_users_dir / "hosts.parquet",
    )  # fmt: skip
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.num_rows == n > 0
    assert table.schema.equals(SAMPLE_SCHEMA)
    test_day = json.loads((sim_users_dir / "split.json").read_text())["test"][0]
    assert test_day == "1970-01-03"
    assert table["ts"].to_numpy().min() >= 2 * 86400.0
    assert len(set(table["user"].to_pylist())) == 2
    # n_users auto: the training population, here every host (a day split trains on all 6)
    n = sample_model(
        tmp_path / "m", sim_users_dir / "split.json", {"n_users": "auto", "days": 0.2, "start": "auto"}, 3,
        tmp_path / "auto.parquet", hosts_path=sim_users_dir / "hosts.parquet",
    )  # fmt: skip
    table = pq.read_table(tmp_path / "auto.parquet")
    assert table.num_rows == n > 0
    assert len(set(table["user"].to_pylist())) == 6


def test_auto_host_count_is_the_training_split(tmp_path):
    hosts = pa.table({"user": list("abcdefg"), "split": ["train"] * 4 + ["val"] * 2 + ["test"]})
    pq.write_table(hosts, tmp_path / "hosts.parquet")
    assert sample_host_count("auto", tmp_path / "hosts.parquet") == 4
    assert sample_host_count(9, tmp_path / "hosts.parquet") == 9
    pq.write_table(hosts.set_column(1, "split", pa.array(["all"] * 7)), tmp_path / "days.parquet")
    assert sample_host_count("auto", tmp_path / "days.parquet") == 7
    pq.write_table(hosts.set_column(1, "split", pa.array(["val"] * 7)), tmp_path / "none.parquet")
    with pytest.raises(ValueError, match=r"none\.parquet.*no host is in training"):
        sample_host_count("auto", tmp_path / "none.parquet")


def test_sample_start_rules(tmp_path):
    assert sample_start("2017-07-03", {"mode": "days", "test": ["x"]}) == 1499040000.0
    assert (
        sample_start("auto", {"mode": "days", "test": ["1970-01-04", "1970-01-03"]}) == 2 * 86400.0
    )
    assert sample_start("auto", {"mode": "hosts", "days": ["1970-01-02"]}) == 86400.0
    with pytest.raises(ValueError, match="auto"):
        sample_start("auto", {"mode": "hosts"})


def test_thread_limit_holds_for_torch_imported_after_it():
    """A peer imports torch inside ``fit``, after the job set its thread limit: torch must
    still use the job's one thread, not every core."""
    import subprocess
    import sys

    code = (
        "from nfsynth.models.pipeline import limit_threads; limit_threads(1); "
        "import torch; print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"

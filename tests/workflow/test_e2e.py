"""End to end: the whole workflow on config/test.yaml, then what reruns after edits, and a run
killed in the middle of training that restarts to the same outputs.

One full run (module-scoped) in a scratch copy of the repository; the incremental checks are
dry runs against it. Marked ``e2e`` (minutes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.workflow.helpers import (
    SNAKEMAKE,
    planned_jobs,
    planned_outputs,
    scratch_copy,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.e2e

REPORT_SECTIONS = [
    "Data overview: sim",
    "Data overview: ugr16",
    "Ingest manifest",
    "Protocols",
    "Device types",
    "Users: sim",
    "Temporal structure: sim",
    "Models: sim",
    "Winner per metric",
    "Real against synthetic: sim",
    "Embeddings and anomaly detection",
    "Port-scan CNN",
    "Runtime and memory of every rule",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = scratch_copy(tmp_path_factory.mktemp("e2e"))
    snakemake(work, "results/report.html", timeout=1500)
    return work


def test_report_exists_with_expected_sections(workdir: Path):
    html = (workdir / "results" / "report.html").read_text()
    for heading in REPORT_SECTIONS:
        assert heading in html, heading
    assert '<img src="data:image/png;base64,' in html
    assert "http://" not in html and "https://" not in html  # opens offline


def test_summary_has_every_model_and_seed(workdir: Path):
    summary = pd.read_csv(workdir / "results" / "metrics" / "summary.csv")
    assert list(summary.columns) == ["dataset", "model", "metric", "goal", "mean", "std", "n_seeds"]
    models = set(summary["model"])
    assert {"b1", "b2", "neural", "real"} <= models
    assert set(summary["dataset"]) == {"sim", "ugr16"}
    competing = summary[summary["model"] != "real"]
    scored = competing["n_seeds"] == 2
    # a metric the data gives nothing to score is NaN for every seed: here the bursts of the
    # test config's small UGR'16 sample (fewer than bursts.MIN_CASES gaps after a run)
    unscored = (competing["n_seeds"] == 0) & competing["mean"].isna()
    assert (scored | unscored).all()
    assert set(competing.loc[unscored, "metric"]) <= {"burst_diff"}
    assert {"jsd_mean", "nll_bits", "acf_mae", "rule_violations"} <= set(summary["metric"])


def test_nothing_to_do_after_a_full_run(workdir: Path):
    proc = snakemake(workdir, "-n", "results/report.html")
    assert planned_jobs(proc.stdout) == {}, proc.stdout[-3000:]


def test_model_edit_reruns_only_that_model(workdir: Path):
    write_config(workdir, "edit_b2.yaml", lambda c: c["models"]["b2"].update(max_bins=12))
    proc = snakemake(workdir, "-n", "results/report.html", configfile="config/edit_b2.yaml")
    jobs = planned_jobs(proc.stdout)
    n_runs = 2 * 2  # datasets x seeds
    assert jobs == {
        "train": n_runs,
        "sample": n_runs,
        "evaluate": n_runs,
        "summarize": 1,
        "report": 1,
    }, jobs
    model_outputs = [
        o
        for o in planned_outputs(proc.stdout)
        if "/models/" in o or "/samples/" in o or "/metrics/" in o and "seed" in o
    ]
    assert model_outputs and all("/b2/" in o for o in model_outputs), model_outputs


def test_evaluation_edit_rescores_and_reruns_the_ceiling_only_for_its_own_settings(
    workdir: Path,
):
    """An evaluation setting the ceiling does not read (prdc_k) rescores every sample and
    the reference, and leaves the train-on-real ceiling and every model alone; one it reads
    (utility_draws) reruns the ceiling of each dataset too."""
    write_config(workdir, "edit_eval.yaml", lambda c: c["evaluation"].update(prdc_k=4))
    jobs = planned_jobs(
        snakemake(workdir, "-n", "results/report.html", configfile="config/edit_eval.yaml").stdout
    )
    n_samples = 2 * 3 * 2  # datasets x models x seeds
    assert jobs == {
        "evaluate": n_samples,
        "reference": 2,
        "summarize": 1,
        "report": 1,
    }, jobs
    write_config(workdir, "edit_draws.yaml", lambda c: c["evaluation"].update(utility_draws=2))
    jobs = planned_jobs(
        snakemake(workdir, "-n", "results/report.html", configfile="config/edit_draws.yaml").stdout
    )
    assert jobs.get("ceiling") == 2 and jobs.get("evaluate") == n_samples, jobs
    assert "train" not in jobs and "sample" not in jobs, jobs


def test_window_edit_reruns_windows_and_downstream_not_ingest(workdir: Path):
    write_config(
        workdir, "edit_windows.yaml", lambda c: c.setdefault("windows", {}).update(seconds=600)
    )
    jobs = planned_jobs(
        snakemake(
            workdir, "-n", "results/report.html", configfile="config/edit_windows.yaml"
        ).stdout
    )
    assert jobs.get("windows") == 2 * 2  # datasets x shards
    for upstream in ("simulate", "ingest", "select_users", "user_flows"):
        assert upstream not in jobs, jobs
    assert {"train", "sample", "evaluate", "summarize", "report"} <= set(jobs)


def test_raw_input_change_reruns_its_ingest_and_downstream(workdir: Path):
    raw = sorted((workdir / "tests" / "data" / "ugr16-mini").glob("*.csv"))[0]
    original = raw.read_text()
    try:
        lines = original.splitlines(keepends=True)
        raw.write_text("".join(lines[:-1]))  # one flow fewer
        jobs = planned_jobs(snakemake(workdir, "-n", "results/report.html").stdout)
        assert jobs.get("ingest") == 1, jobs  # ugr16 only, not sim
        assert "simulate" not in jobs
        assert {"select_users", "user_flows", "windows", "train", "report"} <= set(jobs)
    finally:
        raw.write_text(original)
        os.utime(raw, (time.time() - 10**6, time.time() - 10**6))


def test_interrupted_training_restarts_to_the_same_outputs(workdir: Path, tmp_path: Path):
    """Kill a run while a train job runs; the rerun rebuilds the incomplete job only and ends
    with the same samples as the uninterrupted run."""
    other = scratch_copy(tmp_path / "interrupted")
    target = "results/sim/samples/neural/seed1.parquet"
    cmd = [SNAKEMAKE, target, "--cores", "2", "--configfile", "config/test.yaml"]
    proc = subprocess.Popen(
        cmd,
        cwd=other,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 900
    train_log = other / "logs" / "train" / "sim.neural.seed1.log"
    while time.time() < deadline and not train_log.exists():
        if proc.poll() is not None:
            pytest.fail("the run ended before training started:\n" + proc.stdout.read()[-3000:])
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (other / target).exists()
    complete_before = {
        p: p.stat().st_mtime for p in (other / "results" / "sim" / "users").rglob("*.parquet")
    }
    assert complete_before, "user tables were complete before training"

    snakemake(other, "--unlock", target)  # a killed run leaves its lock behind
    rerun = snakemake(other, "--rerun-incomplete", target)
    jobs = planned_jobs(rerun.stdout)
    assert jobs.get("train") == 1 and "ingest" not in jobs and "user_flows" not in jobs, jobs
    for path, mtime in complete_before.items():
        assert path.stat().st_mtime == mtime, f"{path} was rebuilt"
    a = pq.read_table(other / target).to_pandas()
    b = pq.read_table(workdir / target).to_pandas()
    pd.testing.assert_frame_equal(a, b)


def test_report_renders_in_headless_chromium(workdir: Path):
    """Every image decodes and every table has rows, as a person opening the page sees it."""
    from tests.report.browser import chromium, inspect_page

    if chromium() is None:
        pytest.skip("chromium is not installed (make test installs it with apt-get as root)")
    shot = workdir / "results" / "report.png"
    result = inspect_page(workdir / "results" / "report.html", shot)
    assert result["images"] >= 10
    assert result["broken_images"] == 0, result
    assert result["tables"] >= 10
    assert result["empty_tables"] == 0, result
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = Path(__file__).resolve().parents[2] / "results"
    keep.mkdir(exist_ok=True)
    (keep / "report-e2e-screenshot.png").write_bytes(shot.read_bytes())

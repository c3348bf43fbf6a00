import json
from pathlib import Path

import pytest

import nfsynth.simulate
from nfsynth.cli import main
from nfsynth.io.dataset import read_manifest


def test_ingest_writes_the_dataset_and_prints_totals(tmp_path, capsys):
    src = tmp_path / "flows.txt"
    src.write_text("1,0,C1,N1,C2,N2,6,1,60\n2,0,C1,N1,C3,N2,17,2,70\n")
    code = main(["ingest", "--format", "lanl2015", str(src), "--out", str(tmp_path / "out"),
                 "--chunk-bytes", "65536", "--max-reject-ratio", "0"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["rows_written"] == 2
    assert read_manifest(tmp_path / "out")["inputs"][0]["rows_written"] == 2


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("day.bz2", b"not bz2\n", "named .bz2 but is not a bz2 archive"),
        ("bad.txt", b"1,0,C1,N1,C2,N2,6,1,60\n1,0,C1\n", "1 of 2 lines rejected"),
        ("what.txt", b"hello world\n", "cannot detect the format"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, name, content, expected):
    src = tmp_path / name
    src.write_bytes(content)
    code = main(["ingest", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("nfsynth ingest: error: ") and expected in err[-1]
    assert str(src) in err[-1] and "Traceback" not in "\n".join(err)


def test_missing_input_exits_2(tmp_path, capsys):
    assert main(["ingest", str(tmp_path / "nope.bz2"), "--out", str(tmp_path / "o")]) == 2
    assert "input file not found" in capsys.readouterr().err


def test_simulate_passes_its_arguments(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake(out_dir, **kwargs):
        calls.update(out_dir=out_dir, **kwargs)
        return {"days": kwargs["days"], "flows": 10}

    monkeypatch.setattr(nfsynth.simulate, "simulate_lanl2017", fake, raising=False)
    code = main(["simulate", "--out", str(tmp_path), "--seed", "5", "--days", "2",
                 "--workstations", "12", "--scans", "0", "--no-truncate"])  # fmt: skip
    assert code == 0
    assert calls == {
        "out_dir": tmp_path, "days": 2, "workstations": 12, "servers": 6, "external_hosts": 200,
        "flows_per_workstation_day": 1200, "scans": 0, "truncate": False, "seed": 5,
    }  # fmt: skip
    assert json.loads(capsys.readouterr().out) == {"days": 2, "flows": 10}


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["ingest", "x", "--out", "o", "--max-reject-ratio", "3"])
    assert info.value.code == 2


def test_ingest_takes_a_directory_as_one_dataset(tmp_path: Path):
    """`nfsynth ingest DIR` reads every file of the directory (the UGR'16 extracts ship so)."""
    import subprocess
    import sys

    data = Path(__file__).resolve().parents[1] / "tests" / "data" / "ugr16-mini"
    exe = Path(sys.executable).with_name("nfsynth")
    proc = subprocess.run(
        [str(exe), "ingest", "--format", "ugr16", str(data), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["inputs"]) == len(list(data.glob("*.csv"))) == 6
    assert manifest["totals"]["lines_read"] == 6 * 600


@pytest.fixture(scope="module")
def b2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A B2 model fitted on planted hosts, saved as the workflow saves it."""
    from nfsynth.models.bayesnet import BayesNetModel
    from tests.models.conftest import make_user_flows

    out = tmp_path_factory.mktemp("model") / "b2"
    BayesNetModel(max_bins=16).fit(make_user_flows(n_users=3, days=4), seed=1).save(out)
    return out


def test_sample_writes_the_model_s_seeded_rows(b2_dir, tmp_path, capsys):
    """Setup: a saved B2. Run: ``nfsynth sample`` twice with one seed, once with another.
    Assert: exit 0; the summary's counts are the file's; 5 hosts named synth-*, every flow
    inside [start, start + days); the same seed writes the same rows, another seed others."""
    import pandas as pd

    def run(seed: int, name: str) -> tuple[dict, pd.DataFrame]:
        out = tmp_path / name
        code = main(["sample", str(b2_dir), "--hosts", "5", "--start", "1970-01-09T06:00",
                     "--days", "0.5", "--seed", str(seed), "--threads", "1", "--out", str(out)])  # fmt: skip
        assert code == 0
        return json.loads(capsys.readouterr().out), pd.read_parquet(out)

    summary, a = run(7, "a.parquet")
    start = 8 * 86400.0 + 6 * 3600.0
    assert summary["flows"] == len(a) > 100 and summary["hosts"] == 5
    assert summary["start"] == "1970-01-09T06:00:00+00:00" and summary["role"] is None
    assert sorted(a["user"].unique()) == [f"synth-{i:04d}" for i in range(5)]
    assert a["ts"].min() >= start and a["ts"].max() < start + 0.5 * 86400.0
    pd.testing.assert_frame_equal(run(7, "b.parquet")[1], a)
    assert not run(8, "c.parquet")[1].equals(a)


def test_sample_refuses_what_it_cannot_do(b2_dir, tmp_path, capsys):
    """A role for a model that ignores roles, a folder without a model, a model.json of bad
    JSON or of an unknown kind: exit 2 and one line naming the folder or file (and line);
    a start that is no date and a role that is none: argparse's exit 2."""
    out = str(tmp_path / "x.parquet")
    cases = [
        ([str(b2_dir), "--role", "internal"], f"{b2_dir}: a 'bayesnet' model does not condition"),
        ([str(tmp_path)], f"{tmp_path / 'model.json'}: no saved model here"),
    ]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text('{\n"kind": "neural",\n}\n')
    cases.append(([str(tmp_path / "bad")], f"{tmp_path / 'bad' / 'model.json'}: line 3: not valid"))
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "model.json").write_text('{"kind": "pickle"}')
    cases.append(([str(tmp_path / "odd")], "field 'kind': unknown model kind 'pickle'"))
    for args, expected in cases:
        code = main(["sample", *args, "--hosts", "2", "--start", "0", "--out", out])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err[-1].startswith("nfsynth sample: error: ")
        assert expected in err[-1], err[-1]
    for bad in (["--start", "tuesday"], ["--start", "0", "--role", "admin"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["sample", str(b2_dir), "--hosts", "2", *bad, "--out", out])
        assert exit_info.value.code == 2
    assert "not an ISO date/time" in capsys.readouterr().err
    assert not Path(out).exists()

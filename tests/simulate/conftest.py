"""A small simulation shared by the simulator tests (module-scoped: built once per module)."""

from __future__ import annotations

import bz2
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from nfsynth.simulate import simulate_lanl2017

SMALL = dict(
    days=2,
    workstations=8,
    servers=6,
    external_hosts=40,
    flows_per_workstation_day=700,
    scans=4,
    seed=5,
)
COLUMNS = [
    "ts",
    "duration",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "packets",
    "rev_packets",
    "bytes",
    "rev_bytes",
]


def read_day(path: Path) -> tuple[bytes, bool]:
    """Everything a streaming decompressor recovers from a day file, and whether it hit eof."""
    dec = bz2.BZ2Decompressor()
    with open(path, "rb") as handle:
        out = b"".join(dec.decompress(chunk) for chunk in iter(lambda: handle.read(65536), b""))
    return out, dec.eof


def read_flows(out_dir: Path) -> pd.DataFrame:
    """Complete lines of every day file (the partial last line cut off), with a `day` column."""
    frames = []
    for day, path in enumerate(sorted(out_dir.glob("netflow_day-*.bz2")), start=1):
        text, _ = read_day(path)
        text = text[: text.rfind(b"\n") + 1]
        frame = pd.read_csv(
            io.BytesIO(text), header=None, names=COLUMNS, dtype={"sport": str, "dport": str}
        )
        frames.append(frame.assign(day=day))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def small() -> dict:
    """Arguments of the small simulation (2 days, 8 workstations, about 8k rows a day)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def day_reader():
    """``read_day(path) -> (recovered bytes, eof)``."""
    return read_day


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sim")
    summary = simulate_lanl2017(out, **SMALL)
    truth = json.loads((out / "truth.json").read_text())
    return {"dir": out, "summary": summary, "truth": truth, "flows": read_flows(out)}

"""generate_scan and generate_normal_activity: the reusable generators of labelled slots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.schema import CANONICAL_COLUMNS
from nfsynth.simulate import generate_normal_activity, generate_scan
from nfsynth.simulate.ports import SCAN_WELL_KNOWN_PORTS


@pytest.mark.parametrize(
    ("kind", "speed", "n_range", "span_range"),
    [
        ("well_known", "fast", (len(SCAN_WELL_KNOWN_PORTS), len(SCAN_WELL_KNOWN_PORTS)), (0, 120)),
        ("well_known", "slow", (30, 59), (300, 3600)),
        ("wide", "fast", (300, 999), (0, 120)),
        ("wide", "slow", (100, 249), (300, 3600)),
    ],
)
def test_generate_scan_shapes(kind, speed, n_range, span_range):
    scan = generate_scan(np.random.default_rng(1), "Comp111111", "Mail", 5000.0, kind, speed)
    assert list(scan.columns) == CANONICAL_COLUMNS
    assert n_range[0] <= len(scan) <= n_range[1]
    assert scan.ts.iloc[0] == 5000 and scan.ts.is_monotonic_increasing
    assert span_range[0] <= scan.ts.iloc[-1] - 5000 <= span_range[1]
    assert (scan.ts == np.floor(scan.ts)).all()
    assert (scan.src == "Comp111111").all() and (scan.dst == "Mail").all()
    assert scan.dport.nunique() == len(scan)  # every probe a new port
    assert (scan.proto == 6).all() and (scan.duration == 0).all()
    assert scan.packets.between(1, 2).all() and (scan.bytes / scan.packets).between(40, 60).all()
    assert (scan.rev_packets <= 2).all() and (scan.rev_packets == 0).mean() > 0.3
    if kind == "well_known":
        assert scan.dport.str.isdigit().all()
    else:
        assert scan.dport.str.match(r"^Port\d{5}$").mean() > 0.9


def test_generate_scan_is_deterministic_and_checks_arguments():
    a = generate_scan(np.random.default_rng(7), "A", "B", 0, "wide", "fast")
    b = generate_scan(np.random.default_rng(7), "A", "B", 0, "wide", "fast")
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="kind"):
        generate_scan(np.random.default_rng(7), "A", "B", 0, "udp", "fast")
    with pytest.raises(ValueError, match="speed"):
        generate_scan(np.random.default_rng(7), "A", "B", 0, "wide", "medium")


def _slots(hour: float, role: str = "out_external", n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.concat(
        [
            generate_normal_activity(rng, "Comp123456", hour * 3600 + 86400 * k, 300, role=role)
            for k in range(n)
        ],
        ignore_index=True,
    )


def test_normal_activity_follows_the_rhythm_and_role():
    work, night = _slots(10.5), _slots(3.0)
    assert list(work.columns) == CANONICAL_COLUMNS
    assert (work.src == "Comp123456").all()
    assert len(work) > 4 * max(len(night), 1)
    assert work.ts.mod(86400).between(10.5 * 3600, 10.5 * 3600 + 300, inclusive="left").all()
    assert work.dst.str.startswith("IP").any()  # out_external browses outside
    internal = _slots(10.5, role="internal")
    assert len(internal) > 0 and not internal.dst.str.startswith("IP").any()
    # normal slots do not look like scans: few distinct ports per destination
    assert work.groupby("dst").dport.nunique().max() < 10


def test_normal_activity_is_deterministic():
    a = generate_normal_activity(np.random.default_rng(5), "Comp1", 36000.0, 600)
    b = generate_normal_activity(np.random.default_rng(5), "Comp1", 36000.0, 600)
    pd.testing.assert_frame_equal(a, b)

"""Known answers of rule_violations: each rule on a table with a known count of bad flows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nfsynth.metrics import rules


def clean(n: int = 100) -> pd.DataFrame:
    """``n`` valid TCP flows to port 443 within one day."""
    return pd.DataFrame(
        {
            "ts": np.linspace(0, 86000, n),
            "duration": np.full(n, 1.5),
            "proto": np.full(n, 6, dtype=np.uint8),
            "sport": ["Port5000"] * n,
            "dport": ["443"] * n,
            "packets": np.full(n, 10),
            "bytes": np.full(n, 5000),
            "rev_packets": pd.array([8] * n, dtype="Int64"),
            "rev_bytes": pd.array([4000] * n, dtype="Int64"),
        }
    )


def test_clean_table_breaks_nothing():
    out = rules.compute(clean())
    assert out["rule_violations"] == 0.0
    assert set(out) == {"rule_violations"} | {f"rule_{r}" for r in rules.RULES}


def test_udp_on_443_gives_its_exact_share():
    df = clean()
    df.loc[:6, "proto"] = 17  # rows 0..6: 7 UDP flows to 443
    out = rules.compute(df)
    assert out["rule_tcp_only_port_with_udp"] == pytest.approx(0.07)
    assert out["rule_violations"] == pytest.approx(0.07)
    relaxed = rules.compute(df, tcp_only_ports=["80"])
    assert relaxed["rule_violations"] == 0.0


@pytest.mark.parametrize(
    ("rule", "edit", "share"),
    [
        ("dns_over_icmp", {"proto": 1, "dport": "53"}, 0.05),
        ("bytes_per_packet_range", {"bytes": 100}, 0.05),  # 10 bytes per packet < 20
        ("bytes_per_packet_range", {"bytes": 10 * 65536}, 0.05),
        ("bytes_without_packets", {"packets": 0}, 0.05),
        ("negative_duration", {"duration": -1.0}, 0.05),
        ("negative_duration", {"duration": 3 * 86400.0}, 0.05),
    ],
)
def test_each_rule_gives_its_exact_share(rule, edit, share):
    df = clean()
    for col, value in edit.items():
        df.loc[10:14, col] = value
    out = rules.compute(df)
    assert out[f"rule_{rule}"] == pytest.approx(share)
    assert out["rule_violations"] == pytest.approx(share)


def test_reverse_counts_are_checked_and_nulls_skipped():
    df = clean()
    df["rev_packets"] = pd.array([0] * 3 + [None] * 97, dtype="Int64")
    df["rev_bytes"] = pd.array([50] * 3 + [None] * 97, dtype="Int64")
    assert rules.compute(df)["rule_bytes_without_packets"] == pytest.approx(0.03)


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown rule"):
        rules.compute(clean(), rules=["no_such_rule"])

"""Domain-rule violations: the share of synthetic flows that no real network would emit.

Rules (configured by ``evaluation.rules``; each gives ``rule_<name>``, the share of flows
breaking it; ``rule_violations`` is the share breaking at least one configured rule):

- ``tcp_only_port_with_udp``: UDP (17) with ``sport`` or ``dport`` in
  ``evaluation.tcp_only_ports`` (80, 443, 445, 22, 3389, 139 by default).
- ``dns_over_icmp``: ICMP (1) with port 53 on either side (ICMP has no ports).
- ``bytes_per_packet_range``: a direction with packets > 0 and bytes < 20 x packets (smaller
  than an IP header) or bytes > 65535 x packets (larger than an IP packet); forward and, where
  present, reverse counts.
- ``bytes_without_packets``: packets = 0 with bytes > 0 (forward or reverse).
- ``negative_duration``: duration negative, not finite, or longer than the sampling span (the
  table's last ``ts`` minus its first, at least one day).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nfsynth.evalspace import categorical_text
from nfsynth.schema import SECONDS_PER_DAY

NAME = "rule_violations"
GOAL = "min"
MIN_VALUE = 0.0
MAX_VALUE = 1.0
RULES: tuple[str, ...] = (
    "tcp_only_port_with_udp",
    "dns_over_icmp",
    "bytes_per_packet_range",
    "bytes_without_packets",
    "negative_duration",
)
DEFAULT_TCP_ONLY_PORTS: tuple[str, ...] = ("80", "443", "445", "22", "3389", "139")
MIN_BYTES_PER_PACKET = 20
MAX_BYTES_PER_PACKET = 65535


def _num(flows: pd.DataFrame, name: str) -> np.ndarray:
    """Numeric column as float64 (n,); NaN where null or missing."""
    if name not in flows:
        return np.full(len(flows), np.nan)
    return pd.to_numeric(flows[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _ports(flows: pd.DataFrame, ports: Sequence[str]) -> np.ndarray:
    wanted = set(str(p) for p in ports)
    hit = np.zeros(len(flows), dtype=bool)
    for col in ("sport", "dport"):
        if col in flows:
            hit |= pd.Series(categorical_text(flows[col])).isin(wanted).to_numpy()
    return hit


def violations(
    flows: pd.DataFrame,
    rules: Sequence[str] = RULES,
    tcp_only_ports: Sequence[str] = DEFAULT_TCP_ONLY_PORTS,
) -> dict[str, np.ndarray]:
    """Boolean mask (n,) of the flows breaking each rule (canonical columns)."""
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"evaluation.rules: unknown rule(s) {sorted(unknown)}; known: {RULES}")
    proto = _num(flows, "proto")
    out: dict[str, np.ndarray] = {}
    pairs = [(_num(flows, "packets"), _num(flows, "bytes"))]
    pairs.append((_num(flows, "rev_packets"), _num(flows, "rev_bytes")))
    for rule in rules:
        if rule == "tcp_only_port_with_udp":
            out[rule] = (proto == 17) & _ports(flows, tcp_only_ports)
        elif rule == "dns_over_icmp":
            out[rule] = (proto == 1) & _ports(flows, ["53"])
        elif rule == "bytes_per_packet_range":
            bad = np.zeros(len(flows), dtype=bool)
            for packets, bytes_ in pairs:
                with np.errstate(invalid="ignore"):
                    bad |= (packets > 0) & (
                        (bytes_ < MIN_BYTES_PER_PACKET * packets)
                        | (bytes_ > MAX_BYTES_PER_PACKET * packets)
                    )
            out[rule] = bad
        elif rule == "bytes_without_packets":
            bad = np.zeros(len(flows), dtype=bool)
            for packets, bytes_ in pairs:
                bad |= (packets == 0) & (bytes_ > 0)
            out[rule] = bad
        elif rule == "negative_duration":
            ts, duration = _num(flows, "ts"), _num(flows, "duration")
            span = max(float(np.nanmax(ts) - np.nanmin(ts)), SECONDS_PER_DAY) if len(ts) else 0
            out[rule] = ~np.isfinite(duration) | (duration < 0) | (duration > span)
    return out


def compute(
    synthetic: pd.DataFrame,
    rules: Sequence[str] = RULES,
    tcp_only_ports: Sequence[str] = DEFAULT_TCP_ONLY_PORTS,
) -> dict[str, float]:
    """``{"rule_violations": share, "rule_<name>": share, ...}`` in [0, 1].

    ``synthetic``: flows with canonical columns (a sample table as a DataFrame). An empty
    table gives 0 for every share.
    """
    masks = violations(synthetic, rules, tcp_only_ports)
    n = max(len(synthetic), 1)
    out = {f"rule_{rule}": float(mask.sum()) / n for rule, mask in masks.items()}
    any_bad = np.zeros(len(synthetic), dtype=bool)
    for mask in masks.values():
        any_bad |= mask
    out[NAME] = float(any_bad.sum()) / n
    return out

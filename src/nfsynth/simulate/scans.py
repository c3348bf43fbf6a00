"""Labelled port scans and "normal" activity slots, reusable to build training data.

A scan is one scanner probing many destination ports of one target over TCP with SYN-like
flows: 1-2 packets of 40-60 bytes each, duration 0, and a reverse side that is mostly empty
(filtered: 60%), a single RST (35%) or a SYN-ACK from an open port (5%).

| kind | ports | fast (20-120 s) | slow (20-60 min) |
|---|---|---|---|
| ``well_known`` | the numeric well-known ports (``ports.SCAN_WELL_KNOWN_PORTS``) | all of them | 30-59 of them |
| ``wide`` | distinct ports in 1..65535 (anonymised ``PortNNNNN`` unless well known) | 300-999 | 100-249 |

``generate_scan`` and ``generate_normal_activity`` return DataFrames with
``schema.CANONICAL_COLUMNS`` in LANL spelling (see ``flowblock.to_frame``), so a port-scan
classifier can be trained on images built from the same code that plants the scans here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.simulate.flowblock import FlowBlock, concat, make_block, to_frame
from nfsynth.simulate.hosts import Network, build_network
from nfsynth.simulate.ports import SCAN_WELL_KNOWN_PORTS, ephemeral_tokens, port_tokens
from nfsynth.simulate.rhythm import DAY, is_work_hour
from nfsynth.simulate.services import MIX_OFF, MIX_WORK, TCP
from nfsynth.simulate.traffic import workstation_flows

SCAN_KINDS: tuple[str, ...] = ("well_known", "wide")
SCAN_SPEEDS: tuple[str, ...] = ("slow", "fast")
LABEL_COLUMNS: list[str] = ["scan_id", "src", "dst", "start", "end", "kind", "speed", "n_flows"]
SCAN_WINDOW_HOURS = (0.5, 21.0)  # planted scans start in this part of a day (never in the cut tail)


def scan_arrays(rng: np.random.Generator, start: float, kind: str, speed: str) -> FlowBlock:
    """The flows of one scan starting at ``start`` seconds, ``src``/``dst`` set to 0.

    Times are whole seconds from ``start`` (the first flow at ``start``), sorted.
    """
    if kind not in SCAN_KINDS:
        raise ValueError(f"scan kind {kind!r} is not one of {SCAN_KINDS}")
    if speed not in SCAN_SPEEDS:
        raise ValueError(f"scan speed {speed!r} is not one of {SCAN_SPEEDS}")
    fast = speed == "fast"
    if kind == "well_known":
        n = len(SCAN_WELL_KNOWN_PORTS) if fast else int(rng.integers(30, 60))
        ports = rng.permutation(SCAN_WELL_KNOWN_PORTS)[:n]
    else:
        n = int(rng.integers(300, 1000)) if fast else int(rng.integers(100, 250))
        ports = rng.choice(65535, size=n, replace=False) + 1
    span = rng.uniform(20.0, 120.0) if fast else rng.uniform(1200.0, 3600.0)
    offsets = np.sort(rng.uniform(0.0, span, n))
    offsets[0] = 0.0
    t = np.floor(start) + np.floor(offsets)
    sport = (
        ephemeral_tokens(rng, n) if rng.uniform() < 0.5 else np.repeat(ephemeral_tokens(rng, 1), n)
    )
    pk = np.where(rng.uniform(size=n) < 0.75, 1, 2)
    answer = rng.uniform(size=n)  # < 0.6 filtered, < 0.95 RST, else SYN-ACK
    rpk = np.where(answer < 0.6, 0, np.where(answer < 0.95, 1, rng.integers(1, 3, n)))
    return make_block(
        t=t,
        dur=np.zeros(n),
        src=np.zeros(n),
        dst=np.zeros(n),
        proto=np.full(n, TCP),
        sport=sport,
        dport=port_tokens(ports),
        pk=pk,
        by=pk * rng.integers(40, 61, n),
        rpk=rpk,
        rby=rpk * rng.integers(40, 61, n),
    )


def generate_scan(
    rng: np.random.Generator, scanner: str, target: str, start: float, kind: str, speed: str
) -> pd.DataFrame:
    """Flows of one port scan of ``target`` by ``scanner`` starting at ``start`` (seconds).

    ``kind``: ``well_known`` | ``wide``; ``speed``: ``fast`` | ``slow`` (see the module doc).
    Returns a DataFrame with ``schema.CANONICAL_COLUMNS`` (LANL spelling), sorted by ``ts``.
    """
    block = scan_arrays(rng, start, kind, speed)
    names = np.array([scanner, target], dtype=object)
    block["dst"][:] = 1
    return to_frame(block, names)


def generate_normal_activity(
    rng: np.random.Generator,
    host: str,
    start: float,
    seconds: float = 300.0,
    *,
    role: str = "out_external",
    flows_per_day: float = 1200.0,
    external_hosts: int = 200,
) -> pd.DataFrame:
    """Normal flows a workstation ``host`` starts in ``[start, start + seconds)``.

    The same engine as the simulator's workstations (office rhythm at ``start``'s hour, bursty
    sessions, Markov chain over services), in a fresh network of 30 workstations, the 6
    standard servers and ``external_hosts`` external peers. ``role`` decides whether web and
    update flows go out to external peers (``out_external``, ``both``) or to the intranet.
    Returns a DataFrame with ``schema.CANONICAL_COLUMNS``, sorted by ``ts``; it may be empty.
    """
    net = build_network(rng, 30, 6, external_hosts, flows_per_day)
    net.names[0], net.roles[0], net.activity[0] = host, role, flows_per_day
    mix = MIX_WORK if is_work_hour(np.array([start]))[0] else MIX_OFF
    last = rng.choice(len(mix), size=len(net.comps), p=mix)
    block = workstation_flows(rng, net, np.array([0]), start, start + seconds, last)
    keep = np.flatnonzero(block["t"] < start + seconds)
    keep = keep[np.argsort(block["t"][keep], kind="stable")]
    return to_frame({k: v[keep] for k, v in block.items()}, net.names).reset_index(drop=True)


def plan_scans(
    rng: np.random.Generator, net: Network, days: int, n: int
) -> tuple[pd.DataFrame, FlowBlock]:
    """``n`` scans from random workstations to random other internal hosts.

    Kinds and speeds cycle (well_known/slow, wide/slow, well_known/fast, wide/fast, ...);
    each starts on a random day between ``SCAN_WINDOW_HOURS``. Returns the labels
    (``LABEL_COLUMNS``, sorted by start, ``scan_id`` 1..n in that order) and the flows.
    """
    rows, blocks = [], []
    internal = net.internal
    for i in range(n):
        kind, speed = SCAN_KINDS[i % 2], SCAN_SPEEDS[(i // 2) % 2]
        scanner = int(rng.choice(net.comps))
        target = int(rng.choice(internal[internal != scanner]))
        day = int(rng.integers(0, days))
        start = np.floor(day * DAY + rng.uniform(*SCAN_WINDOW_HOURS) * 3600.0)
        block = scan_arrays(rng, start, kind, speed)
        block["src"][:], block["dst"][:] = scanner, target
        blocks.append(block)
        rows.append(
            (
                net.names[scanner],
                net.names[target],
                int(start),
                int(block["t"].max()),
                kind,
                speed,
                len(block["t"]),
            )
        )
    labels = pd.DataFrame(rows, columns=LABEL_COLUMNS[1:]).sort_values("start", kind="stable")
    labels.insert(0, "scan_id", np.arange(1, n + 1))
    return labels.reset_index(drop=True), concat(blocks)

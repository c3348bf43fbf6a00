"""The simulator driver: LANL 2017 netflow day files with planted, documented structure.

``simulate_lanl2017(out_dir, ...)`` writes into ``out_dir``:

- ``netflow_day-01.bz2``, ``netflow_day-02.bz2``, ...: day ``d`` holds the flows starting in
  ``[(d-1)*86400, d*86400)`` seconds, as headerless lines of the 11 LANL fields
  ``Time,Duration,SrcDevice,DstDevice,Protocol,SrcPort,DstPort,SrcPackets,DstPackets,
  SrcBytes,DstBytes`` sorted by time, bz2-compressed and (``truncate``) cut inside the last block;
- ``labels.csv``: the planted port scans (``scans.LABEL_COLUMNS``), written last;
- ``truth.json``: hosts (kind, intended role, flows), the rhythm, the Markov chain, the scans,
  the point anomalies and what each day file holds.

The generation runs one day at a time (memory bounded by a day of flows); flows that spill past
midnight move to the next day, past the last day they are dropped (counted in ``truth.json``).
See docs/simulator.md.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from nfsynth.simulate import archive
from nfsynth.simulate.anomalies import EXFIL_HOURS, plan_exfiltration
from nfsynth.simulate.flowblock import FlowBlock, concat, n_rows, take, to_lanl_csv
from nfsynth.simulate.hosts import INTERNAL_PATTERNS, WS_ROLE_CYCLE, build_network
from nfsynth.simulate.rhythm import DAY, HAWKES_ETA, HAWKES_TAU, RHYTHMS, WORK_HOURS
from nfsynth.simulate.scans import SCAN_WINDOW_HOURS, plan_scans
from nfsynth.simulate.services import (
    MARKOV_FOLLOW,
    MARKOV_STAY,
    MIX_OFF,
    MIX_WORK,
    SERVICES,
    WS_SERVICES,
    transition_matrices,
)
from nfsynth.simulate.traffic import server_flows, workstation_flows

log = logging.getLogger(__name__)


def day_file_name(day: int) -> str:
    """``netflow_day-01.bz2`` for day 1."""
    return f"netflow_day-{day:02d}.bz2"


def _check(name: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"simulate: {name} must be >= {low}, got {value}")


def simulate_lanl2017(
    out_dir: str | Path,
    *,
    days: int = 3,
    workstations: int = 30,
    servers: int = 6,
    external_hosts: int = 200,
    flows_per_workstation_day: float = 1200,
    scans: int = 6,
    truncate: bool = True,
    seed: int = 11,
) -> dict:
    """Simulate LANL-2017-format traffic into ``out_dir`` (see the module doc).

    Same arguments, same bytes. Returns a summary: ``files`` (day file paths), ``rows_per_day``
    (lines written before any cut), ``recoverable_rows_per_day`` (complete lines a
    block-recovering reader gets), ``labels`` (scans labelled), ``anomalies``, ``labels_path``,
    ``truth_path`` and ``seconds``.
    """
    t_start = time.perf_counter()
    for name, value, low in [
        ("days", days, 1),
        ("workstations", workstations, 2),
        ("servers", servers, 1),
    ]:
        _check(name, value, low)
    _check("external_hosts", external_hosts, 1)
    _check("flows_per_workstation_day", flows_per_workstation_day, 1)
    _check("scans", scans, 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net_ss, scan_ss, anom_ss, arch_ss, *day_ss = np.random.SeedSequence(seed).spawn(4 + days)
    net = build_network(
        np.random.default_rng(net_ss),
        workstations,
        servers,
        external_hosts,
        flows_per_workstation_day,
    )
    labels, scan_flows = plan_scans(np.random.default_rng(scan_ss), net, days, scans)
    anomalies, exfil_flows = plan_exfiltration(np.random.default_rng(anom_ss), net, days)
    arch_rng = np.random.default_rng(arch_ss)

    pending: FlowBlock = concat([scan_flows, exfil_flows])  # planted flows, and spill-over
    last_service = np.zeros(len(net.comps), np.int64)  # each workstation starts with "web"
    n_out = np.zeros(len(net.names), np.int64)
    n_in = np.zeros(len(net.names), np.int64)
    files, day_info = [], []
    for d in range(days):
        rng = np.random.default_rng(day_ss[d])
        t0, t1 = d * DAY, (d + 1) * DAY
        ws = workstation_flows(rng, net, np.arange(len(net.comps)), t0, t1, last_service)
        block = concat([pending, ws, server_flows(rng, net, t0, t1, ws)])
        now = block["t"] < t1
        pending, block = take(block, ~now), take(block, now)
        block = take(block, np.argsort(np.floor(block["t"]), kind="stable"))
        n_out += np.bincount(block["src"], minlength=len(net.names))
        n_in += np.bincount(block["dst"], minlength=len(net.names))
        text = to_lanl_csv(block, net.names)
        path = out / day_file_name(d + 1)
        info = archive.write_day(path, text, truncate=truncate, rng=arch_rng)
        info.update(day=d + 1, start=int(t0), end=int(t1), rows=n_rows(block))
        info["recoverable_rows"] = text[: info["recoverable_bytes"]].count(b"\n")
        files.append(str(path))
        day_info.append(info)
        log.info(
            "day %d: %d rows, %d text bytes, level %d, %d blocks, cut %d bytes, %d rows recoverable",
            d + 1, info["rows"], len(text), info["compresslevel"], info["blocks"], info["cut_bytes"], info["recoverable_rows"],
        )  # fmt: skip

    params = {
        "days": days,
        "workstations": workstations,
        "servers": servers,
        "external_hosts": external_hosts,
        "flows_per_workstation_day": flows_per_workstation_day,
        "scans": scans,
        "truncate": truncate,
        "seed": seed,
    }
    truth = _truth(net, params, day_info, labels, anomalies, n_out, n_in, dropped=n_rows(pending))
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    labels_path = out / "labels.csv"
    labels.to_csv(labels_path, index=False, lineterminator="\n")
    seconds = time.perf_counter() - t_start
    log.info(
        "simulated %d rows in %d files, %d scans, %.2f s",
        sum(i["rows"] for i in day_info),
        days,
        len(labels),
        seconds,
    )
    return {
        "files": files,
        "rows_per_day": [i["rows"] for i in day_info],
        "recoverable_rows_per_day": [i["recoverable_rows"] for i in day_info],
        "labels": len(labels),
        "anomalies": len(anomalies),
        "labels_path": str(labels_path),
        "truth_path": str(truth_path),
        "seconds": seconds,
    }


def _truth(net, params, day_info, labels, anomalies, n_out, n_in, *, dropped: int) -> dict:
    """The ``truth.json`` document (plain JSON types)."""
    activity = dict(zip(net.comps.tolist(), net.activity.tolist(), strict=True))
    hosts = [
        {
            "name": str(net.names[i]),
            "kind": str(net.kinds[i]),
            "role": net.roles[i],
            "flows_per_day": activity.get(i),
            "n_out": int(n_out[i]),
            "n_in": int(n_in[i]),
        }
        for i in range(len(net.names))
    ]
    hours = np.arange(24) + 0.5
    return {
        "generator": "nfsynth.simulate.simulate_lanl2017",
        "format": "lanl2017",
        "params": params,
        "internal_patterns": INTERNAL_PATTERNS,
        "day_files": day_info,
        "dropped_after_last_day": dropped,
        "hosts": hosts,
        "workstation_role_cycle": list(WS_ROLE_CYCLE),
        "rhythm": {
            "work_hours": list(WORK_HOURS),
            "hour_weights": {
                name: [round(float(x), 4) for x in fn(hours)] for name, fn in RHYTHMS.items()
            },
            "note": "relative session rate per hour (mean 1); workstations follow `office`",
        },
        "hawkes": {"eta": HAWKES_ETA, "tau_seconds": HAWKES_TAU},
        "markov": {
            "states": list(WS_SERVICES),
            "stay": MARKOV_STAY,
            "follow": MARKOV_FOLLOW,
            "mix_work": MIX_WORK.tolist(),
            "mix_off": MIX_OFF.tolist(),
            "transition_off": np.round(transition_matrices()[0], 4).tolist(),
            "transition_work": np.round(transition_matrices()[1], 4).tolist(),
        },
        "services": [
            {
                "name": s.name,
                "ports": [[p, proto, w] for p, proto, w in s.choices],
                "flows_per_session": s.flows_mean,
            }
            for s in SERVICES
        ],
        "scan_window_hours": list(SCAN_WINDOW_HOURS),
        "scans": labels.to_dict(orient="records"),
        "anomaly_window_hours": list(EXFIL_HOURS),
        "anomalies": anomalies,
    }

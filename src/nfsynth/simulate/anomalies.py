"""Planted point anomalies: exfiltration-like huge outgoing flows at night.

One workstation that already sends to external peers (role ``out_external``, so its role is
unchanged) sends, once per night between 01:00 and 04:00, one huge flow to an external host that
sees no other traffic: 200k-800k packets of 1400-1500 bytes (0.3-1.2 GB; normal flows of that
workstation stay far below), port 443 or 22, a thin reverse stream (2% of the packets) and a
duration of about 3 ms per packet.
"""

from __future__ import annotations

import numpy as np

from nfsynth.simulate.flowblock import FlowBlock, empty_block, make_block
from nfsynth.simulate.hosts import Network
from nfsynth.simulate.ports import ephemeral_tokens, port_tokens
from nfsynth.simulate.rhythm import DAY
from nfsynth.simulate.services import TCP

EXFIL_HOURS = (1.0, 4.0)


def plan_exfiltration(
    rng: np.random.Generator, net: Network, days: int
) -> tuple[list[dict], FlowBlock]:
    """One exfiltration flow per day; returns the truth records and the flows."""
    senders = net.comps_with_role("out_external")
    if len(senders) == 0:
        senders = net.comps_with_role("both")
    if len(senders) == 0:
        return [], empty_block()
    src = int(senders[min(1, len(senders) - 1)])
    t = np.floor(np.arange(days) * DAY + rng.uniform(*EXFIL_HOURS, days) * 3600.0)
    pk = rng.integers(200_000, 800_001, days)
    by = pk * rng.integers(1400, 1501, days)
    rpk = np.rint(pk * 0.02).astype(np.int64)
    rby = rpk * rng.integers(52, 120, days)
    dur = np.rint((pk + rpk) * 0.003 * rng.uniform(0.7, 1.4, days)).astype(np.int64)
    dport = rng.choice([443, 22], days)
    block = make_block(
        t=t,
        dur=dur,
        src=np.full(days, src),
        dst=np.full(days, net.exfil_dst),
        proto=np.full(days, TCP),
        sport=ephemeral_tokens(rng, days),
        dport=port_tokens(dport),
        pk=pk,
        by=by,
        rpk=rpk,
        rby=rby,
    )
    records = [
        {
            "id": i + 1,
            "kind": "exfiltration",
            "time": int(t[i]),
            "src": str(net.names[src]),
            "dst": str(net.names[net.exfil_dst]),
            "dport": str(int(dport[i])),
            "packets": int(pk[i]),
            "bytes": int(by[i]),
            "duration": int(dur[i]),
        }
        for i in range(days)
    ]
    return records, block

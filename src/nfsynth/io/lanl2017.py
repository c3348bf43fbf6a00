"""LANL 2017 "Unified Host and Network Dataset" netflow day files (``netflow_day-NN.bz2``).

11 fields, no header: ``Time,Duration,SrcDevice,DstDevice,Protocol,SrcPort,DstPort,
SrcPackets,DstPackets,SrcBytes,DstBytes``. ``Time`` is relative seconds (kept as epoch seconds,
so day 2 is 1970-01-02); ``Src*`` counts become ``packets``/``bytes``, ``Dst*`` counts
``rev_packets``/``rev_bytes``.
"""

from __future__ import annotations

import pyarrow as pa

from nfsynth.io.readers import FlowFormat, Layout, canonical_table


class Lanl2017(FlowFormat):
    name = "lanl2017"
    names = [
        "Time", "Duration", "SrcDevice", "DstDevice", "Protocol", "SrcPort", "DstPort",
        "SrcPackets", "DstPackets", "SrcBytes", "DstBytes",
    ]  # fmt: skip
    kinds = {
        "Time": "epoch", "Duration": "duration", "SrcDevice": "str", "DstDevice": "str",
        "Protocol": "proto_num", "SrcPort": "str", "DstPort": "str", "SrcPackets": "count",
        "DstPackets": "count", "SrcBytes": "count", "DstBytes": "count",
    }  # fmt: skip

    def to_canonical(self, t: pa.Table, layout: Layout) -> pa.Table:
        return canonical_table(
            t["Time"], t["Duration"], t["SrcDevice"], t["DstDevice"], t["Protocol"],
            t["SrcPort"], t["DstPort"], t["SrcPackets"], t["SrcBytes"],
            t["DstPackets"], t["DstBytes"],
        )  # fmt: skip

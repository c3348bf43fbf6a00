"""LANL 2015 "Comprehensive, Multi-Source Cyber-Security Events" ``flows.txt``.

9 fields, no header: time, duration, source computer, source port, destination computer,
destination port, protocol, packet count, byte count. Only one direction's counts: the
``rev_*`` columns are null.
"""

from __future__ import annotations

import pyarrow as pa

from nfsynth.io.readers import FlowFormat, Layout, canonical_table


class Lanl2015(FlowFormat):
    name = "lanl2015"
    names = [
        "time", "duration", "src_computer", "src_port", "dst_computer", "dst_port",
        "protocol", "packet_count", "byte_count",
    ]  # fmt: skip
    kinds = {
        "time": "epoch", "duration": "duration", "src_computer": "str", "src_port": "str",
        "dst_computer": "str", "dst_port": "str", "protocol": "proto_num",
        "packet_count": "count", "byte_count": "count",
    }  # fmt: skip

    def to_canonical(self, t: pa.Table, layout: Layout) -> pa.Table:
        return canonical_table(
            t["time"], t["duration"], t["src_computer"], t["dst_computer"], t["protocol"],
            t["src_port"], t["dst_port"], t["packet_count"], t["byte_count"],
        )  # fmt: skip

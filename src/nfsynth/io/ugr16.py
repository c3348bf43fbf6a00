"""UGR'16 nfdump CSV: ``te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,label``.

The official files have no header; the per-host extracts have one, with the label column spelt
``lable``. ``te`` is the flow's end time (``YYYY-MM-DD HH:MM:SS``, UTC) and ``td`` its duration,
so ``ts = te - td``; ``pr`` is a protocol name mapped by ``schema.PROTO_NUMBERS`` (unknown names
are rejected). Kept beside the canonical columns: ``flags``, ``fwd``, ``tos``, ``label``. A flow
between two extracted hosts stands in both hosts' files: exact duplicates across the files of
one dataset are kept once and counted.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from nfsynth.io.readers import FlowFormat, Layout, canonical_table, proto_numbers
from nfsynth.schema import DICT_STR

_ALIASES = {"lable": "label"}


class Ugr16(FlowFormat):
    name = "ugr16"
    names = ["te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "pkt", "byt", "label"]
    kinds = {
        "te": "datetime", "td": "duration", "sa": "str", "da": "str", "sp": "str", "dp": "str",
        "pr": "proto", "flg": "str", "fwd": "int", "stos": "int", "pkt": "count",
        "byt": "count", "label": "str",
    }  # fmt: skip
    dedupe_across_files = True
    _extras = [
        pa.field("flags", DICT_STR),
        pa.field("fwd", pa.int64()),
        pa.field("tos", pa.int64()),
        pa.field("label", DICT_STR),
    ]

    def layout(self, first_line: str) -> Layout:
        fields = [_ALIASES.get(f.strip().lower(), f.strip().lower()) for f in first_line.split(",")]
        if sorted(fields) == sorted(self.names):
            return Layout(fields, dict(self.kinds), 1)
        return Layout(list(self.names), dict(self.kinds), 0)

    def extra_fields(self, layout: Layout) -> list[pa.Field]:
        return list(self._extras)

    def to_canonical(self, t: pa.Table, layout: Layout) -> pa.Table:
        end_s = pc.divide(pc.cast(pc.cast(t["te"], pa.timestamp("ms")), pa.int64()), 1000.0)
        return canonical_table(
            pc.subtract(end_s, t["td"]), t["td"], t["sa"], t["da"], proto_numbers(t["pr"]),
            t["sp"], t["dp"], t["pkt"], t["byt"],
            extras={"flags": t["flg"], "fwd": t["fwd"], "tos": t["stos"], "label": t["label"]},
            extra_fields=self._extras,
        )  # fmt: skip

"""``nfdump -o csv`` exports.

A header line names the columns (``ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,
in,out,sas,das,...``); after the flows nfdump prints a ``Summary`` block (a blank line, then
``Summary``, a header and one line of totals), which ends the data and is counted with the
header lines. ``ts`` is the start time (``YYYY-MM-DD HH:MM:SS[.fff]``, UTC); ``ipkt``/``ibyt``
(or ``pkt``/``byt``) are the counts sent by ``sa``, ``opkt``/``obyt`` the reverse ones.
Kept beside the canonical columns: ``flags``, ``fwd``, ``tos`` and every other column as text
under its nfdump name (``te`` is dropped: it is ``ts + td``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from nfsynth.io.readers import FlowFormat, Layout, canonical_table, proto_numbers
from nfsynth.schema import CANONICAL_COLUMNS, DICT_STR

_KNOWN = {
    "ts": "datetime", "td": "duration", "sa": "str", "da": "str", "sp": "str", "dp": "str",
    "pr": "proto", "flg": "str", "fwd": "int", "stos": "int", "ipkt": "count", "ibyt": "count",
    "opkt": "count", "obyt": "count", "pkt": "count", "byt": "count",
}  # fmt: skip
_RENAMED = {"flg": ("flags", DICT_STR), "fwd": ("fwd", pa.int64()), "stos": ("tos", pa.int64())}
_USED = {
    "ts",
    "te",
    "td",
    "sa",
    "da",
    "sp",
    "dp",
    "pr",
    "ipkt",
    "ibyt",
    "opkt",
    "obyt",
    "pkt",
    "byt",
}


class NfdumpCsv(FlowFormat):
    name = "nfdump_csv"
    trailer_marker = b"Summary"

    def layout(self, first_line: str) -> Layout:
        names = [f.strip().lower() for f in first_line.split(",")]
        missing = [n for n in ("ts", "td", "sa", "da", "sp", "dp", "pr") if n not in names]
        if "ipkt" not in names and "pkt" not in names:
            missing.append("ipkt")
        if "ibyt" not in names and "byt" not in names:
            missing.append("ibyt")
        if missing:
            raise ValueError(f"nfdump csv header lacks column(s) {missing}: {first_line[:200]!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"nfdump csv header repeats a column name: {first_line[:200]!r}")
        kinds = {n: _KNOWN.get(n, "str") for n in names}
        return Layout(names, kinds, 1)

    def extra_fields(self, layout: Layout) -> list[pa.Field]:
        fields = []
        for n in layout.names:
            if n in _RENAMED:
                fields.append(pa.field(*_RENAMED[n]))
            elif n not in _USED and n not in CANONICAL_COLUMNS and n != "day":
                fields.append(pa.field(n, DICT_STR))
        return fields

    def to_canonical(self, t: pa.Table, layout: Layout) -> pa.Table:
        names = set(layout.names)
        start = pc.divide(pc.cast(t["ts"], pa.int64()), 1000.0)
        packets = t["ipkt"] if "ipkt" in names else t["pkt"]
        bytes_ = t["ibyt"] if "ibyt" in names else t["byt"]
        fields = self.extra_fields(layout)
        by_out = {v[0]: k for k, v in _RENAMED.items()}
        extras = {f.name: t[by_out.get(f.name, f.name)] for f in fields}
        return canonical_table(
            start, t["td"], t["sa"], t["da"], proto_numbers(t["pr"]), t["sp"], t["dp"],
            packets, bytes_, t["opkt"] if "opkt" in names else None,
            t["obyt"] if "obyt" in names else None, extras=extras, extra_fields=fields,
        )  # fmt: skip

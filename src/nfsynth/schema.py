"""The canonical flow table (design §3) and the names every stage shares.

Every reader produces this Arrow schema; every model's ``sample`` returns it (plus the
``user`` and ``direction`` columns that say which synthetic host a flow belongs to).

Columns (units):

- ``ts``: float64, flow start, epoch seconds (UTC).
- ``duration``: float64, seconds, >= 0.
- ``src``, ``dst``: dictionary<string>, device or IP address as the source writes it.
- ``proto``: uint8, IP protocol number.
- ``sport``, ``dport``: dictionary<string>, port as the source writes it (``443``,
  ``Port12345``, ``N10451``).
- ``packets``, ``bytes``: int64, sent by ``src``.
- ``rev_packets``, ``rev_bytes``: int64, nullable, sent by ``dst`` (null where unknown).

Extra columns (``flags``, ``tos``, ``fwd``, ``label``, ...) are kept after these.
The Parquet dataset written by ingest is hive-partitioned by ``day`` (``YYYY-MM-DD``, UTC).
"""

from __future__ import annotations

import pyarrow as pa

DICT_STR = pa.dictionary(pa.int32(), pa.string())

CANONICAL_FIELDS: list[pa.Field] = [
    pa.field("ts", pa.float64(), nullable=False),
    pa.field("duration", pa.float64(), nullable=False),
    pa.field("src", DICT_STR, nullable=False),
    pa.field("dst", DICT_STR, nullable=False),
    pa.field("proto", pa.uint8(), nullable=False),
    pa.field("sport", DICT_STR, nullable=False),
    pa.field("dport", DICT_STR, nullable=False),
    pa.field("packets", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("rev_packets", pa.int64(), nullable=True),
    pa.field("rev_bytes", pa.int64(), nullable=True),
]
CANONICAL_SCHEMA = pa.schema(CANONICAL_FIELDS)
CANONICAL_COLUMNS: list[str] = [f.name for f in CANONICAL_FIELDS]

#: Columns a synthetic sample carries beside the canonical ones.
SAMPLE_EXTRA_FIELDS: list[pa.Field] = [
    pa.field("user", pa.string(), nullable=False),
    pa.field("direction", DICT_STR, nullable=False),
]
SAMPLE_SCHEMA = pa.schema(CANONICAL_FIELDS + SAMPLE_EXTRA_FIELDS)

#: IANA protocol numbers by the names flow exporters write (upper case).
PROTO_NUMBERS: dict[str, int] = {
    "HOPOPT": 0,
    "ICMP": 1,
    "IGMP": 2,
    "IPIP": 4,
    "IPV4": 4,
    "TCP": 6,
    "EGP": 8,
    "IGP": 9,
    "UDP": 17,
    "IPV6": 41,
    "RSVP": 46,
    "GRE": 47,
    "ESP": 50,
    "AH": 51,
    "ICMP6": 58,
    "IPV6-ICMP": 58,
    "ICMPV6": 58,
    "EIGRP": 88,
    "OSPF": 89,
    "OSPFIGP": 89,
    "PIM": 103,
    "VRRP": 112,
    "L2TP": 115,
    "SCTP": 132,
}
PROTO_NAMES: dict[int, str] = {
    1: "ICMP",
    2: "IGMP",
    4: "IPIP",
    6: "TCP",
    17: "UDP",
    41: "IPv6",
    47: "GRE",
    50: "ESP",
    51: "AH",
    58: "ICMPv6",
    89: "OSPF",
    103: "PIM",
    112: "VRRP",
    132: "SCTP",
}

#: Host roles (design §4), from what a selected host does.
ROLES: tuple[str, ...] = ("both", "out_external", "in_external", "internal")
ROLE_DESCRIPTIONS: dict[str, str] = {
    "both": "sends and receives with external peers",
    "out_external": "only sends to external peers",
    "in_external": "only receives from external peers",
    "internal": "talks to internal peers only",
}

SECONDS_PER_DAY = 86400.0


def proto_name(number: int) -> str:
    """Name of an IP protocol number (``6`` -> ``TCP``), or the number as text."""
    return PROTO_NAMES.get(int(number), str(int(number)))


def empty_canonical_table() -> pa.Table:
    """A table with the canonical schema and no rows."""
    return CANONICAL_SCHEMA.empty_table()

"""A batch of simulated flows as parallel numpy arrays (host ids and port tokens, no strings).

A block is a ``dict[str, np.ndarray]`` whose keys are ``FIELDS``, all of shape (n,):

- ``t``: float64 start time, seconds since the start of day 1 (LANL relative time);
- ``dur``: int64 duration, whole seconds;
- ``src``, ``dst``: int64 host ids (indexes into the network's names);
- ``proto``: int64 IP protocol number;
- ``sport``, ``dport``: int32 port tokens (see ``ports``);
- ``pk``, ``by``, ``rpk``, ``rby``: int64 packets and bytes sent by src and by dst.

Strings are made only when rows are written (``to_frame``).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from nfsynth.schema import CANONICAL_COLUMNS
from nfsynth.simulate.ports import port_dictionary, port_dictionary_indices, port_strings

FlowBlock = dict[str, np.ndarray]

FIELDS: tuple[str, ...] = (
    "t",
    "dur",
    "src",
    "dst",
    "proto",
    "sport",
    "dport",
    "pk",
    "by",
    "rpk",
    "rby",
)
_DTYPES = {"t": np.float64, "sport": np.int32, "dport": np.int32}

#: The 11 LANL 2017 netflow fields, in file order (packets before bytes, unlike the canonical
#: table: SrcPackets, DstPackets, SrcBytes, DstBytes = packets, rev_packets, bytes, rev_bytes).
LANL_COLUMNS: tuple[str, ...] = (
    "Time", "Duration", "SrcDevice", "DstDevice", "Protocol", "SrcPort", "DstPort",
    "SrcPackets", "DstPackets", "SrcBytes", "DstBytes",
)  # fmt: skip


def make_block(**arrays: np.ndarray) -> FlowBlock:
    """A block from arrays named by ``FIELDS`` (all given, same length), cast to their dtypes."""
    missing = set(FIELDS) - set(arrays)
    if missing:
        raise ValueError(f"flow block lacks fields {sorted(missing)}")
    n = len(arrays["t"])
    block = {k: np.asarray(arrays[k], dtype=_DTYPES.get(k, np.int64)) for k in FIELDS}
    bad = [k for k, v in block.items() if v.shape != (n,)]
    if bad:
        raise ValueError(f"flow block fields {bad} do not have shape ({n},)")
    return block


def empty_block() -> FlowBlock:
    return {k: np.empty(0, dtype=_DTYPES.get(k, np.int64)) for k in FIELDS}


def concat(blocks: list[FlowBlock]) -> FlowBlock:
    """Rows of ``blocks`` one after the other (order kept: the simulator's tie-break)."""
    blocks = [b for b in blocks if len(b["t"])]
    if not blocks:
        return empty_block()
    return {k: np.concatenate([b[k] for b in blocks]) for k in FIELDS}


def take(block: FlowBlock, idx: np.ndarray) -> FlowBlock:
    """Rows ``idx`` (int indexes or a boolean mask) of a block."""
    return {k: v[idx] for k, v in block.items()}


def n_rows(block: FlowBlock) -> int:
    return len(block["t"])


def to_frame(block: FlowBlock, names: np.ndarray) -> pd.DataFrame:
    """The block as a DataFrame with ``schema.CANONICAL_COLUMNS`` in LANL spelling.

    ``ts`` is float64 seconds holding whole seconds (LANL times are integers), ``duration``
    float64, ``src``/``dst`` host names, ``sport``/``dport`` strings (``443``/``Port02726``),
    ``proto`` uint8, counts int64. ``names``: object array mapping host id to name.
    """
    return pd.DataFrame(
        {
            "ts": np.floor(block["t"]),
            "duration": block["dur"].astype(np.float64),
            "src": names[block["src"]],
            "dst": names[block["dst"]],
            "proto": block["proto"].astype(np.uint8),
            "sport": port_strings(block["sport"]),
            "dport": port_strings(block["dport"]),
            "packets": block["pk"],
            "bytes": block["by"],
            "rev_packets": block["rpk"],
            "rev_bytes": block["rby"],
        },
        columns=CANONICAL_COLUMNS,
    )


def to_lanl_csv(block: FlowBlock, names: np.ndarray) -> bytes:
    """Headerless LANL 2017 lines (``Time,Duration,SrcDevice,...,DstBytes\\n``), ASCII bytes.

    Strings come from Arrow dictionaries (host names, port spellings), so no per-row Python.
    """
    hosts = pa.array(names.tolist(), type=pa.string())
    ports = port_dictionary()

    def dictionary(indices: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), values)

    table = pa.table(
        [
            pa.array(np.floor(block["t"]).astype(np.int64)),
            pa.array(block["dur"]),
            dictionary(block["src"], hosts),
            dictionary(block["dst"], hosts),
            pa.array(block["proto"]),
            dictionary(port_dictionary_indices(block["sport"]), ports),
            dictionary(port_dictionary_indices(block["dport"]), ports),
            pa.array(block["pk"]),
            pa.array(block["rpk"]),
            pa.array(block["by"]),
            pa.array(block["rby"]),
        ],
        names=list(LANL_COLUMNS),
    )
    sink = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(table, sink, options)
    return sink.getvalue()

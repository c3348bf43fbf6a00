"""Parsing chunks of text into typed Arrow tables, with every bad line sent to the rejects.

A format (``lanl2017.py``, ``ugr16.py``, ...) declares its columns and their *kind*; this module
parses a chunk with ``pyarrow.csv`` in two ways:

- fast path: every column read straight to its type (multi-threaded where cores are left
  beside decompression, ``parse_chunk``); then vectorised checks (negative counts, protocol
  range or name) reject single rows;
- slow path, only for a chunk the fast path cannot convert: every column read as text, bad
  field counts caught by pyarrow's invalid-row handler, each field checked with a vectorised
  regular expression, and the good rows cast to their types.

A rejected line gets its 1-based line number in the file, the first bad field in column order
and one reason: ``field_count``, ``non_numeric``, ``negative_count`` (negative counts or
duration), ``unknown_protocol`` (protocol name not in ``schema.PROTO_NUMBERS`` or number
outside 0..255) or ``bad_timestamp`` (a time field that does not parse, or is negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from nfsynth.schema import CANONICAL_SCHEMA, DICT_STR, PROTO_NUMBERS

REASONS = ("field_count", "non_numeric", "negative_count", "unknown_protocol", "bad_timestamp")
REJECT_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)

#: Column kinds: the Arrow type read, and the reason a field that does not parse is rejected.
KIND_TYPES: dict[str, pa.DataType] = {
    "epoch": pa.float64(),  # seconds since the epoch (or relative seconds, LANL)
    "datetime": pa.timestamp("ms"),  # YYYY-MM-DD HH:MM:SS[.fff], UTC
    "duration": pa.float64(),  # seconds >= 0
    "count": pa.int64(),  # packets, bytes >= 0
    "int": pa.int64(),  # any integer (fwd, tos)
    "proto_num": pa.int64(),  # IP protocol number 0..255
    "proto": DICT_STR,  # protocol name (TCP) or number (6)
    "str": DICT_STR,  # text kept as written (hosts, ports, flags, labels)
}
_PARSE_REASON = {
    "epoch": "bad_timestamp",
    "datetime": "bad_timestamp",
    "duration": "non_numeric",
    "count": "non_numeric",
    "int": "non_numeric",
    "proto_num": "non_numeric",
}
_INT_RE = r"^[+-]?[0-9]{1,18}$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATETIME_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?$"
_KIND_RE = {
    "epoch": _FLOAT_RE,
    "duration": _FLOAT_RE,
    "count": _INT_RE,
    "int": _INT_RE,
    "proto_num": _INT_RE,
    "datetime": _DATETIME_RE,
}
_PROTO_BY_NAME = {
    **{k.upper(): v for k, v in PROTO_NUMBERS.items()},
    **{str(i): i for i in range(256)},
}


@dataclass
class Layout:
    """Columns of one input file, in file order, with their kinds."""

    names: list[str]
    kinds: dict[str, str]
    header_lines: int = 0

    def column_types(self) -> dict[str, pa.DataType]:
        return {n: KIND_TYPES[self.kinds[n]] for n in self.names}


@dataclass
class Rejects:
    """Rejected lines of one chunk (parallel lists/arrays)."""

    lines: list[np.ndarray] = field(default_factory=list)
    fields: list[np.ndarray] = field(default_factory=list)
    reasons: list[np.ndarray] = field(default_factory=list)
    raws: list[list[str]] = field(default_factory=list)

    def add(self, lines: np.ndarray, fields, reasons, raws: list[str]) -> None:
        if len(lines):
            n = len(lines)
            self.lines.append(np.asarray(lines, dtype=np.int64))
            self.fields.append(np.broadcast_to(np.asarray(fields, dtype=object), (n,)))
            self.reasons.append(np.broadcast_to(np.asarray(reasons, dtype=object), (n,)))
            self.raws.append(list(raws))

    def table(self, file: str) -> pa.Table:
        """The rejects as a table (``REJECT_SCHEMA``), in line order."""
        if not self.lines:
            return REJECT_SCHEMA.empty_table()
        lines = np.concatenate(self.lines)
        order = np.argsort(lines, kind="stable")
        raws = [r for part in self.raws for r in part]
        return pa.table(
            {
                "file": pa.array(np.full(len(lines), file, dtype=object), pa.string()),
                "line": pa.array(lines[order]),
                "field": pa.array(np.concatenate(self.fields)[order], pa.string()),
                "reason": pa.array(np.concatenate(self.reasons)[order], pa.string()),
                "raw": pa.array(np.asarray(raws, dtype=object)[order], pa.string()),
            },
            schema=REJECT_SCHEMA,
        )


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets (end excludes the newline) of each line of ``data``."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def _raw_lines(data: bytes, idx: np.ndarray, bounds=None) -> list[str]:
    starts, ends = bounds if bounds is not None else _line_bounds(data)
    return [
        data[s:e].rstrip(b"\r").decode("utf-8", errors="replace")
        for s, e in zip(starts[idx], ends[idx], strict=True)
    ]


def _options(layout: Layout, types: dict[str, pa.DataType], threads: bool, handler=None):
    return dict(
        read_options=pa_csv.ReadOptions(
            column_names=layout.names, use_threads=threads, block_size=1 << 22
        ),
        parse_options=pa_csv.ParseOptions(
            quote_char=False, ignore_empty_lines=False, invalid_row_handler=handler
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=types,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            timestamp_parsers=[pa_csv.ISO8601],
        ),
    )


def proto_numbers(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Protocol names or numbers (dictionary strings) to int16 numbers; -1 where unknown."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.dictionary.to_pylist()
    lookup = np.array([_PROTO_BY_NAME.get(v.strip().upper(), -1) for v in values], dtype=np.int16)
    idx = column.indices.to_numpy(zero_copy_only=False)
    return pa.array(lookup[idx] if len(lookup) else np.zeros(0, np.int16))


def _value_checks(table: pa.Table, layout: Layout) -> list[tuple[str, str, np.ndarray]]:
    """Per-field masks of rows whose typed value is out of range: (field, reason, mask)."""
    checks = []
    for name in layout.names:
        kind = layout.kinds[name]
        col = table[name]
        if kind in ("count", "duration"):
            bad = pc.less(col, 0)
            if kind == "duration":
                bad = pc.or_(bad, pc.invert(pc.is_finite(col)))
            checks.append((name, "negative_count", bad))
        elif kind == "epoch":
            bad = pc.or_(pc.less(col, 0), pc.invert(pc.is_finite(col)))
            checks.append((name, "bad_timestamp", bad))
        elif kind == "proto_num":
            checks.append((name, "unknown_protocol", pc.or_(pc.less(col, 0), pc.greater(col, 255))))
        elif kind == "proto":
            checks.append((name, "unknown_protocol", pc.less(proto_numbers(col), 0)))
    out = []
    for name, reason, bad in checks:
        mask = np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool)
        if mask.any():
            out.append((name, reason, mask))
    return out


def _first_failures(n: int, checks: list[tuple[str, str, np.ndarray]]):
    """Each row's first failing check: (bad-row mask, field index array) over ``checks``."""
    first = np.full(n, -1, dtype=np.int64)
    for i in range(len(checks) - 1, -1, -1):
        first[checks[i][2]] = i
    return first >= 0, first


def parse_chunk(
    data: bytes, first_line: int, layout: Layout, rejects: Rejects, threads: bool = True
) -> tuple[pa.Table, np.ndarray]:
    """Parse whole lines ``data`` into a typed table (``layout.column_types()``).

    ``threads``: pyarrow's multi-threaded reader. It lowers the wall time where cores are
    free, but costs more CPU in all (1.47 against 0.88 CPU seconds for 2 million LANL rows,
    the dictionary columns built per block and then unified), so with decompression on the
    same two cores one thread is faster.

    Returns the table of good rows and their 1-based line numbers in the file; bad lines are
    added to ``rejects``.
    """
    types = layout.column_types()
    try:
        table = pa_csv.read_csv(pa.py_buffer(data), **_options(layout, types, threads))
        lines = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
        bounds = None
    except pa.ArrowInvalid:
        table, lines, bounds = _parse_slow(data, first_line, layout, rejects)
    checks = _value_checks(table, layout)
    if checks:
        bad, first = _first_failures(table.num_rows, checks)
        idx = np.flatnonzero(bad)
        raw_idx = lines[idx] - first_line
        raws = _raw_lines(data, raw_idx, bounds)
        rejects.add(
            lines[idx],
            [checks[i][0] for i in first[idx]],
            [checks[i][1] for i in first[idx]],
            raws,
        )
        keep = ~bad
        table = table.filter(pa.array(keep))
        lines = lines[keep]
    return table, lines


def _parse_slow(data: bytes, first_line: int, layout: Layout, rejects: Rejects):
    """Every column as text; field-count, parse and empty-line failures go to ``rejects``."""
    bad_rows: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad_rows.append((row.number, row.text))
        return "skip"

    text_types = {n: pa.string() for n in layout.names}
    table = pa_csv.read_csv(pa.py_buffer(data), **_options(layout, text_types, False, on_invalid))
    bounds = _line_bounds(data)
    n_lines = len(bounds[0])
    skipped = np.array([r[0] - 1 for r in bad_rows], dtype=np.int64)
    keep = np.ones(n_lines, dtype=bool)
    keep[skipped] = False
    row_line_idx = np.flatnonzero(keep)  # 0-based line index in chunk of each parsed row
    rejects.add(
        first_line + skipped,
        "*",
        "field_count",
        [t.rstrip("\r") for _, t in bad_rows],
    )
    # empty lines come back as rows of empty strings: a field_count reject
    empty = (bounds[1] - bounds[0])[row_line_idx] == 0
    checks: list[tuple[str, str, np.ndarray]] = []
    if empty.any():
        checks.append(("*", "field_count", empty))
    for name in layout.names:
        kind = layout.kinds[name]
        if kind not in _KIND_RE:
            continue
        col = table[name]
        ok = pc.match_substring_regex(col, _KIND_RE[kind])
        if kind == "datetime":
            parsed = pc.strptime(
                pc.utf8_slice_codeunits(col, 0, 19).cast(pa.string()),
                format="%Y-%m-%d %H:%M:%S",
                unit="s",
                error_is_null=True,
            )
            ok = pc.and_(ok, pc.is_valid(parsed))
        mask = np.asarray(pc.invert(ok).to_numpy(zero_copy_only=False), dtype=bool)
        if mask.any():
            checks.append((name, _PARSE_REASON[kind], mask))
    lines = first_line + row_line_idx
    if checks:
        bad, first = _first_failures(table.num_rows, checks)
        idx = np.flatnonzero(bad)
        rejects.add(
            lines[idx],
            [checks[i][0] for i in first[idx]],
            [checks[i][1] for i in first[idx]],
            _raw_lines(data, row_line_idx[idx], bounds),
        )
        table = table.filter(pa.array(~bad))
        lines = lines[~bad]
    typed = {}
    for name in layout.names:
        target = KIND_TYPES[layout.kinds[name]]
        col = table[name]
        if pa.types.is_dictionary(target):
            typed[name] = pc.dictionary_encode(col)
        elif layout.kinds[name] == "datetime":
            typed[name] = pc.cast(pc.replace_substring(col, " ", "T"), target)
        else:
            typed[name] = pc.cast(col, target)
    return pa.table(typed), lines, bounds


class FlowFormat:
    """One input format: its columns (``layout``) and the mapping to the canonical table.

    ``dedupe_across_files``: exact duplicate lines of later files are dropped and counted
    (UGR'16 per-host extracts). ``trailer_marker``: a line starting with it ends the data
    (nfdump's ``Summary`` block); it and the lines after it count as header lines.
    """

    name: str = ""
    names: list[str] = []
    kinds: dict[str, str] = {}
    dedupe_across_files: bool = False
    trailer_marker: bytes | None = None

    def layout(self, first_line: str) -> Layout:
        """Columns of a file whose first line is ``first_line`` (header or data)."""
        fields = [f.strip().lower() for f in first_line.split(",")]
        header = len(fields) == len(self.names) and fields == [n.lower() for n in self.names]
        return Layout(list(self.names), dict(self.kinds), 1 if header else 0)

    def extra_fields(self, layout: Layout) -> list[pa.Field]:
        """Columns kept beside the canonical ones."""
        return []

    def to_canonical(self, typed: pa.Table, layout: Layout) -> pa.Table:
        """Canonical table (``schema.CANONICAL_SCHEMA`` plus ``extra_fields``) of good rows."""
        raise NotImplementedError


def canonical_table(
    ts,
    duration,
    src,
    dst,
    proto,
    sport,
    dport,
    packets,
    bytes_,
    rev_packets=None,
    rev_bytes=None,
    extras: dict | None = None,
    extra_fields: list[pa.Field] | None = None,
) -> pa.Table:
    """Assemble the canonical columns (casting to their types) and the extra columns."""
    n = len(ts)
    cols = {
        "ts": pc.cast(ts, pa.float64()),
        "duration": pc.cast(duration, pa.float64()),
        "src": src,
        "dst": dst,
        "proto": pc.cast(proto, pa.uint8()),
        "sport": sport,
        "dport": dport,
        "packets": pc.cast(packets, pa.int64()),
        "bytes": pc.cast(bytes_, pa.int64()),
        "rev_packets": pa.nulls(n, pa.int64())
        if rev_packets is None
        else pc.cast(rev_packets, pa.int64()),
        "rev_bytes": pa.nulls(n, pa.int64())
        if rev_bytes is None
        else pc.cast(rev_bytes, pa.int64()),
    }
    schema = CANONICAL_SCHEMA
    for f in extra_fields or []:
        cols[f.name] = pc.cast((extras or {})[f.name], f.type)
        schema = schema.append(f)
    return pa.table(cols, schema=schema)

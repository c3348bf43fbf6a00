"""The ingest driver: raw flow files to the canonical day-partitioned Parquet dataset.

``ingest(inputs, out_dir, fmt)`` writes ``out_dir/day=YYYY-MM-DD/part-NNNNN.parquet``,
``out_dir/rejects.csv`` (``file, line, field, reason, raw``) and ``out_dir/manifest.json``, and
returns the manifest. Every input line ends in exactly one place, and the manifest adds them up
per input (checked here): ``lines_read == header_lines + rows_written + rejected + duplicates +
truncated_lines``. Memory is bounded by a few chunks of ``chunk_bytes`` decompressed text (plus
8 bytes per row of multi-file UGR'16 inputs, for the cross-file duplicate check).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from nfsynth.io.detect import sniff
from nfsynth.io.errors import IngestError, RejectRatioError
from nfsynth.io.readers import REASONS, REJECT_SCHEMA, FlowFormat, Layout, Rejects, parse_chunk
from nfsynth.io.sources import Chunk, StreamStats, detect_compression, line_chunks
from nfsynth.io.writer import PartitionWriter, clear_partitions
from nfsynth.schema import CANONICAL_SCHEMA

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 16 << 20
DEFAULT_MAX_REJECT_RATIO = 0.01
#: Rejects quoted in the error of a failed ingest.
SHOW_REJECTS = 5
_COUNT_KEYS = (
    "lines_read",
    "header_lines",
    "rows_written",
    "rejected",
    "duplicates",
    "truncated_lines",
)


class _Seen:
    """64-bit row hashes of the files already ingested (sorted), for the cross-file duplicates."""

    def __init__(self) -> None:
        self.sorted = np.empty(0, dtype=np.uint64)
        self.pending: list[np.ndarray] = []

    def duplicates(self, table: pa.Table) -> np.ndarray:
        """Mask of rows of ``table`` equal to a row of an earlier file; remembers the rest."""
        import pandas as pd  # here, not at the top: importing pandas costs 0.4 s of every ingest

        hashes = pd.util.hash_pandas_object(table.to_pandas(), index=False).to_numpy()
        self.pending.append(hashes)
        if not len(self.sorted):
            return np.zeros(len(hashes), dtype=bool)
        pos = np.minimum(np.searchsorted(self.sorted, hashes), len(self.sorted) - 1)
        return self.sorted[pos] == hashes

    def end_file(self) -> None:
        if self.pending:
            merged = np.concatenate([self.sorted, np.sort(np.concatenate(self.pending))])
            self.sorted = np.sort(merged, kind="stable")  # a linear merge of two sorted runs
            self.pending = []


class _FileIngest:
    """Counts and state of one input file while its chunks go through."""

    def __init__(
        self, path: Path, fmt: FlowFormat, layout: Layout, rejects_out, parse_threads: bool
    ) -> None:
        self.path, self.fmt, self.layout = path, fmt, layout
        self.rejects_out = rejects_out
        self.parse_threads = parse_threads
        self.counts = Counter({k: 0 for k in _COUNT_KEYS})
        self.by_reason = Counter({r: 0 for r in REASONS})
        self.first_rejects: list[dict[str, Any]] = []
        self.in_trailer = False
        self.trailer_lines = 0
        self.ts_min = np.inf
        self.ts_max = -np.inf

    def _strip(self, data: bytes, first_line: int) -> tuple[bytes, int]:
        """Drop header lines (first chunk) and the trailer block (nfdump ``Summary``)."""
        if first_line == 1 and self.layout.header_lines:
            cut = 0
            for _ in range(self.layout.header_lines):
                cut = data.find(b"\n", cut) + 1 or len(data)
            self.counts["header_lines"] += self.layout.header_lines
            data, first_line = data[cut:], first_line + self.layout.header_lines
        marker = self.fmt.trailer_marker
        if marker and data:
            pos = 0 if data.startswith(marker) else data.find(b"\n" + marker) + 1
            if pos > 0 or data.startswith(marker):
                while pos > 0 and (pos == 1 or data[pos - 2] == 10):  # blank lines before it
                    pos -= 1
                trailer = data[pos:]
                n = trailer.count(b"\n")
                self.trailer_lines += n
                self.counts["header_lines"] += n
                self.in_trailer = True
                data = data[:pos]
        return data, first_line

    def chunk(self, chunk: Chunk, writer: PartitionWriter, seen: _Seen | None) -> None:
        """Parse one chunk of whole lines and write its good rows."""
        self.counts["lines_read"] += chunk.n_lines
        if self.in_trailer:
            self.trailer_lines += chunk.n_lines
            self.counts["header_lines"] += chunk.n_lines
            return
        data, first_line = self._strip(chunk.data, chunk.first_line)
        if not data:
            return
        rejects = Rejects()
        typed, _ = parse_chunk(data, first_line, self.layout, rejects, self.parse_threads)
        self._rejects(rejects)
        if seen is not None and typed.num_rows:
            dup = seen.duplicates(typed)
            if dup.any():
                self.counts["duplicates"] += int(dup.sum())
                typed = typed.filter(pa.array(~dup))
        table = self.fmt.to_canonical(typed, self.layout)
        if table.num_rows:
            lo, hi = pc.min_max(table["ts"]).values()
            self.ts_min, self.ts_max = min(self.ts_min, lo.as_py()), max(self.ts_max, hi.as_py())
        writer.write(table)
        self.counts["rows_written"] += table.num_rows

    def _rejects(self, rejects: Rejects) -> None:
        table = rejects.table(str(self.path))
        if not table.num_rows:
            return
        self.rejects_out.write_table(table)
        self.counts["rejected"] += table.num_rows
        self.by_reason.update(Counter(table["reason"].to_pylist()))
        room = SHOW_REJECTS - len(self.first_rejects)
        if room > 0:
            self.first_rejects += table.slice(0, room).drop_columns(["file", "raw"]).to_pylist()


def _check_counts(path: Path | str, counts: dict[str, int]) -> None:
    parts = sum(counts[k] for k in _COUNT_KEYS[1:])
    if counts["lines_read"] != parts:
        raise IngestError(
            path,
            f"ingest bug: {counts['lines_read']} lines read but {parts} accounted for ({counts})",
        )


def _ingest_file(
    path: Path,
    fmt: FlowFormat,
    layout: Layout,
    writer: PartitionWriter,
    rejects_out,
    seen: _Seen | None,
    chunk_bytes: int,
    max_reject_ratio: float,
    threads: int,
) -> dict[str, Any]:
    start = time.perf_counter()
    compression = detect_compression(path)
    busy = threads if compression == "bz2" else int(compression == "gz")  # decompressing
    state = _FileIngest(path, fmt, layout, rejects_out, parse_threads(busy))
    stats = StreamStats()
    tail = b""
    for item in line_chunks(path, stats, chunk_bytes, threads):
        if isinstance(item, bytes):
            tail = item
        else:
            state.chunk(item, writer, seen)
            log.debug("%s: %d lines read", path, state.counts["lines_read"])
    if tail.strip(b"\r"):
        if stats.truncated:  # the partial last line of a cut archive
            state.counts["lines_read"] += 1
            state.counts["truncated_lines"] += 1
        else:  # a last line without a newline
            n_before = state.counts["lines_read"]
            state.chunk(Chunk(tail + b"\n", n_before + 1, 1), writer, seen)
    writer.close()
    if seen is not None:
        seen.end_file()
    counts = dict(state.counts)
    _check_counts(path, counts)
    data_lines = counts["lines_read"] - counts["header_lines"] - counts["truncated_lines"]
    if data_lines and counts["rejected"] > max_reject_ratio * data_lines:
        shown = "; ".join(
            f"line {r['line']} field {r['field']}: {r['reason']}" for r in state.first_rejects
        )
        raise RejectRatioError(
            path,
            f"{counts['rejected']} of {data_lines} lines rejected "
            f"({counts['rejected'] / data_lines:.2%} > max_reject_ratio {max_reject_ratio:.2%}); "
            f"first: {shown}",
        )
    seconds = time.perf_counter() - start
    entry = {
        "path": str(path),
        "format": fmt.name,
        "compression": stats.compression,
        "decompressor": stats.decompressor,
        **counts,
        "rejects_by_reason": dict(state.by_reason),
        "trailer_lines": state.trailer_lines,
        "truncated": bool(stats.truncated),
        "bytes_lost_to_truncation": int(stats.bytes_lost_to_truncation),
        "blocks_recovered": stats.blocks_recovered,
        "text_bytes": stats.text_bytes,
        "first_ts": None if counts["rows_written"] == 0 else state.ts_min,
        "last_ts": None if counts["rows_written"] == 0 else state.ts_max,
        "seconds": round(seconds, 3),
    }
    log.info(
        "%s: %s/%s, %d lines read, %d rows written, %d rejected, %d duplicates, "
        "%d truncated lines%s, %.1f s (%.0f rows/s, %.1f MB/s of text)",
        path, fmt.name, stats.compression, counts["lines_read"], counts["rows_written"],
        counts["rejected"], counts["duplicates"], counts["truncated_lines"],
        f" (archive cut: {stats.blocks_recovered} blocks recovered, "
        f"{stats.bytes_lost_to_truncation} compressed bytes lost)" if stats.truncated else "",
        seconds, counts["rows_written"] / max(seconds, 1e-9), stats.text_bytes / 1e6 / max(seconds, 1e-9),
    )  # fmt: skip
    return entry


def parse_threads(decompress_threads: int) -> bool:
    """Whether to parse with pyarrow's thread pool: only where the CPUs this process may use
    leave at least two beside the decompression threads (``lbzip2 -n N`` for bz2, one for
    gzip, none for plain text). Threaded parsing costs 1.7x the CPU of one thread
    (``readers.parse_chunk``): on two cores shared with ``lbzip2 -n 2`` every CPU second
    counts, while plain text on two cores parses faster threaded (1.27 s against 1.6-1.85 s
    for 2 M LANL rows)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= decompress_threads + 2


def _bounded_pool() -> pa.MemoryPool | None:
    """jemalloc, where pyarrow has it: measured flat peak RSS from 1x to 4x input (about
    390 MiB), where the default mimalloc pool kept growing (650 to 750 MiB)."""
    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return None


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Input paths with every directory replaced by its files (sorted by name; hidden files
    left out): a directory of files is one dataset."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(f for f in item.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise IngestError(item, "directory holds no files")
            paths.extend(files)
        else:
            paths.append(item)
    return paths


def ingest(
    inputs: list[Path] | list[str],
    out_dir: Path | str,
    fmt: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
    threads: int = 2,
) -> dict[str, Any]:
    """Ingest flow files into ``out_dir`` as one day-partitioned canonical Parquet dataset.

    Args:
        inputs: files, plain or ``.bz2``/``.gz`` (compression told from the magic bytes).
        out_dir: output folder; old ``day=*`` partitions in it are removed first.
        fmt: ``lanl2017``, ``lanl2015``, ``ugr16``, ``nfdump_csv`` or ``auto`` (per file, from
            the first lines; all files must then give the same columns).
        chunk_bytes: decompressed text parsed per chunk (bounds memory).
        max_reject_ratio: an input with a larger share of its data lines rejected fails the
            ingest (``RejectRatioError``, naming the file and the first bad lines).
        threads: bz2 decompression threads (lbzip2).

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    start = time.perf_counter()
    paths = expand_inputs(inputs)
    if not paths:
        raise IngestError(None, "no input files given")
    for p in paths:
        if not p.is_file():
            raise IngestError(p, "input file not found")
    plans = []
    for p in paths:
        flow_format, first_line = sniff(p, fmt)
        try:
            layout = flow_format.layout(first_line)
        except ValueError as exc:
            raise IngestError(p, str(exc)) from exc
        schema = pa.schema(list(CANONICAL_SCHEMA) + flow_format.extra_fields(layout))
        plans.append((p, flow_format, layout, schema))
    schemas = {str(s) for *_, s in plans}
    if len(schemas) > 1:
        kinds = ", ".join(f"{p.name}: {f.name}" for p, f, *_ in plans)
        raise IngestError(None, f"inputs give different columns, ingest them separately ({kinds})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    removed = clear_partitions(out)
    if removed:
        log.info("%s: removed %d old day partitions", out, removed)
    schema = plans[0][3]
    previous_pool, pool = pa.default_memory_pool(), _bounded_pool()
    if pool is not None:
        pa.set_memory_pool(pool)
    try:
        manifest = _ingest_all(plans, out, schema, fmt, chunk_bytes, max_reject_ratio, threads)
    finally:
        pa.set_memory_pool(previous_pool)
    manifest["seconds"] = round(time.perf_counter() - start, 3)
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / "manifest.json")
    t = manifest["totals"]
    log.info(
        "%s: %d inputs, %d lines, %d rows in %d day partitions, %d rejected, %d duplicates, %.1f s",
        out, len(manifest["inputs"]), t["lines_read"], t["rows_written"],
        len(manifest["rows_by_day"]), t["rejected"], t["duplicates"], manifest["seconds"],
    )  # fmt: skip
    return manifest


def _ingest_all(
    plans,
    out: Path,
    schema: pa.Schema,
    fmt: str,
    chunk_bytes: int,
    max_reject_ratio: float,
    threads: int,
) -> dict[str, Any]:
    """Ingest every planned input into ``out``; the manifest (without its total time)."""
    writer = PartitionWriter(out, schema)
    dedupe = len(plans) > 1 and all(f.dedupe_across_files for _, f, *_ in plans)
    seen = _Seen() if dedupe else None
    entries = []
    options = pa_csv.WriteOptions(quoting_style="needed")
    with pa_csv.CSVWriter(out / "rejects.csv", REJECT_SCHEMA, write_options=options) as rejects_out:
        for p, flow_format, layout, _ in plans:
            entries.append(
                _ingest_file(
                    p, flow_format, layout, writer, rejects_out, seen,
                    chunk_bytes, max_reject_ratio, threads,
                )
            )  # fmt: skip
    writer.close()
    totals: dict[str, Any] = {k: sum(e[k] for e in entries) for k in _COUNT_KEYS}
    _check_counts(out, totals)
    totals["rejects_by_reason"] = {
        r: sum(e["rejects_by_reason"].get(r, 0) for e in entries) for r in REASONS
    }
    totals["bytes_lost_to_truncation"] = sum(e["bytes_lost_to_truncation"] for e in entries)
    totals["truncated_inputs"] = sum(e["truncated"] for e in entries)
    firsts = [e["first_ts"] for e in entries if e["first_ts"] is not None]
    lasts = [e["last_ts"] for e in entries if e["last_ts"] is not None]
    totals["first_ts"] = min(firsts) if firsts else None
    totals["last_ts"] = max(lasts) if lasts else None
    manifest = {
        "format": fmt,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "chunk_bytes": chunk_bytes,
            "max_reject_ratio": max_reject_ratio,
            "threads": threads,
        },
        "columns": schema.names,
        "inputs": entries,
        "totals": totals,
        "rows_by_day": dict(sorted(writer.rows_by_day.items())),
    }
    return manifest

"""Input files as streams of decompressed text, cut into chunks of whole lines.

Compression is told from the magic bytes (``BZh`` bz2, ``1f 8b`` gzip, else plain text); a
file named ``.bz2``/``.gz`` whose bytes say otherwise is an error. Decompression runs in a
background thread (and, for bz2, a parallel ``lbzip2`` process) and hands chunks of about
``chunk_bytes`` decompressed bytes, ending at a newline, through a queue of two, so memory is
bounded by a few chunks whatever the file size, and decompression overlaps parsing.
"""

from __future__ import annotations

import bz2
import queue
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nfsynth.io.bz2recover import Bz2Stats, bz2_pieces
from nfsynth.io.errors import IngestError

COMPRESSIONS = ("none", "bz2", "gz")
_PLAIN_READ = 16 << 20


def detect_compression(path: Path) -> str:
    """``bz2``, ``gz`` or ``none`` from the first bytes; checks them against the file name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise IngestError(path, f"cannot read: {exc.strerror or exc}") from exc
    if head[:3] == b"BZh" and len(head) == 4 and 0x31 <= head[3] <= 0x39:
        kind = "bz2"
    elif head[:2] == b"\x1f\x8b":
        kind = "gz"
    else:
        kind = "none"
    suffix = path.suffix.lower()
    if suffix == ".bz2" and kind != "bz2":
        raise IngestError(path, "named .bz2 but is not a bz2 archive (no 'BZh' header)")
    if suffix in (".gz", ".gzip") and kind != "gz":
        raise IngestError(path, "named .gz but is not a gzip file")
    return kind


@dataclass
class StreamStats:
    """What reading a file found: compression, decompressor, cut archive, blocks, bytes."""

    compression: str = "none"
    decompressor: str = "none"
    truncated: bool = False
    blocks_recovered: int | None = None
    bytes_lost_to_truncation: int = 0
    text_bytes: int = 0
    extra: dict = field(default_factory=dict)


def _plain_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while piece := handle.read(_PLAIN_READ):
            yield piece


def _gzip_pieces(path: Path, stats: StreamStats) -> Iterator[bytes]:
    """gzip (multi-member) decompression; a cut file yields what inflates and sets truncated."""
    decomp = zlib.decompressobj(wbits=31)
    used = False
    with open(path, "rb") as handle:
        while data := handle.read(4 << 20):
            while data:
                try:
                    out = decomp.decompress(data)
                except zlib.error as exc:
                    raise IngestError(path, f"corrupt gzip data: {exc}") from exc
                used = True
                if out:
                    yield out
                if decomp.eof:
                    data = decomp.unused_data
                    decomp = zlib.decompressobj(wbits=31)
                    used = False
                else:
                    data = b""
    rest = decomp.flush()
    if rest:
        yield rest
    stats.truncated = used and not decomp.eof


def raw_pieces(path: Path, stats: StreamStats, threads: int, piece_bytes: int) -> Iterator[bytes]:
    """Decompressed bytes of ``path`` in pieces; fills ``stats`` when exhausted."""
    stats.compression = detect_compression(path)
    if stats.compression == "none":
        yield from _plain_pieces(path)
        return
    if stats.compression == "gz":
        stats.decompressor = "zlib"
        yield from _gzip_pieces(path, stats)
        return
    b = Bz2Stats()
    try:
        yield from bz2_pieces(path, b, threads=threads, piece_bytes=piece_bytes)
    except OSError as exc:
        raise IngestError(path, f"cannot read bz2 data: {exc}") from exc
    stats.decompressor = b.decompressor
    stats.truncated = b.truncated
    stats.blocks_recovered = b.blocks_recovered
    stats.bytes_lost_to_truncation = b.bytes_lost_to_truncation


def head_text(path: Path, max_bytes: int = 1 << 16) -> str:
    """About the first ``max_bytes`` of decompressed text (for detection), cut archives too."""
    kind = detect_compression(path)
    with open(path, "rb") as handle:
        raw = handle.read(max_bytes if kind == "none" else 1 << 20)
    try:
        if kind == "bz2":
            raw = bz2.BZ2Decompressor().decompress(raw, max_length=max_bytes)
        elif kind == "gz":
            raw = zlib.decompressobj(wbits=31).decompress(raw, max_bytes)
    except (OSError, zlib.error) as exc:
        raise IngestError(path, f"cannot decompress the first bytes: {exc}") from exc
    return raw[:max_bytes].decode("utf-8", errors="replace")


@dataclass
class Chunk:
    """Whole lines of text. ``first_line``: 1-based number of its first line in the file."""

    data: bytes
    first_line: int
    n_lines: int


_DONE = object()


def line_chunks(
    path: Path, stats: StreamStats, chunk_bytes: int, threads: int = 2
) -> Iterator[Chunk | bytes]:
    """Chunks of whole lines of ``path``; the last item is the partial last line (``bytes``,
    possibly empty), i.e. the text after the last newline.

    Decompression runs in a background thread, at most two chunks ahead. A single line longer
    than ``16 * chunk_bytes`` is an error (not line-oriented text).
    """
    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            pending: list[bytes] = []
            size = 0
            line = 1
            for piece in raw_pieces(path, stats, threads, chunk_bytes):
                stats.text_bytes += len(piece)
                pending.append(piece)
                size += len(piece)
                if size < chunk_bytes:
                    continue
                buf = b"".join(pending)
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    if size > 16 * chunk_bytes:
                        raise IngestError(path, f"no line break in {size} bytes: not line text")
                    pending = [buf]
                    continue
                data = buf[:cut]
                n = data.count(b"\n")
                pending, size = [buf[cut:]], len(buf) - cut
                while not stop.is_set():
                    try:
                        out.put(Chunk(data, line, n), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
                line += n
            buf = b"".join(pending)
            cut = buf.rfind(b"\n") + 1
            if cut:
                out.put(Chunk(buf[:cut], line, buf.count(b"\n", 0, cut)))
            out.put(buf[cut:])
        except BaseException as exc:  # handed to the consumer
            out.put(exc)
        out.put(_DONE)

    worker = threading.Thread(target=produce, name=f"read-{path.name}", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # consumer stopped early: unblock the producer
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                worker.join(0.05)
        worker.join()

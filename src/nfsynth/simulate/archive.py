"""Writing a day of LANL lines as a bz2 archive, optionally cut short inside its last block.

The real LANL 2017 day files are single-stream bzip2 archives a few KB short: the cut falls
inside the last block, so a reader recovers every complete block (``bz2.BZ2Decompressor`` gives
them and ends with ``eof == False``), about 99.5% of the text, and the last recovered line is
partial.

Python's ``bz2`` fills every block to its capacity (900 kB of text at level 9), so on a
simulated day of a few MB the last block would hold anything up to 900 kB, and cutting it
would lose hours of flows. With ``truncate``, the archive is therefore assembled so that its
last block holds only the last ``TAIL_BYTES`` of text (ending mid-line): the head and the tail
of the text are compressed separately at level 9 and their blocks spliced, bit by bit, into one
stream with one header, the end-of-stream marker and the combined CRC (each bzip2 block is
self-contained; the stream CRC is the rotate-xor fold of the block CRCs). The result is checked
by decompressing it, then cut 1.5-5 KB short (at most 60% of the last block, so always inside
it). Without ``truncate`` the text is compressed as is at level 9.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np

LEVEL = 9
TAIL_BYTES = 12_000  # text in the last block (lost to the cut): ~200 lines, ~0.5% of a day
CUT_BYTES = (1500, 5000)  # range of bytes cut from a truncated archive
_BLOCK_MAGIC = np.unpackbits(np.frombuffer((0x314159265359).to_bytes(6, "big"), np.uint8))
_EOS_MAGIC = np.unpackbits(np.frombuffer((0x177245385090).to_bytes(6, "big"), np.uint8))


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def _end_of_stream(bits: np.ndarray) -> tuple[int, int]:
    """Bit offset of the end-of-stream marker of a one-stream archive, and the stream CRC."""
    for pad in range(8):
        pos = len(bits) - pad - 80
        if (
            pos >= 32
            and np.array_equal(bits[pos : pos + 48], _EOS_MAGIC)
            and not bits[len(bits) - pad :].any()
        ):
            crc = int.from_bytes(np.packbits(bits[pos + 48 : pos + 80]).tobytes(), "big")
            return pos, crc
    raise ValueError("no bzip2 end-of-stream marker at the end of the data")


def _rotl1(x: int) -> int:
    return ((x << 1) | (x >> 31)) & 0xFFFFFFFF


def spliced_compress(head: bytes, tail: bytes) -> bytes:
    """One bzip2 stream (level 9) of ``head + tail`` whose last block holds exactly ``tail``.

    ``tail`` must fit one block (< 900 kB). The result is what ``bz2.decompress`` reads as
    ``head + tail``.
    """
    a, b = _bits(bz2.compress(head, LEVEL)), _bits(bz2.compress(tail, LEVEL))
    end_a, crc_a = _end_of_stream(a)
    end_b, crc_b = _end_of_stream(b)  # one block: its block CRC is the stream CRC
    crc = _rotl1(crc_a) ^ crc_b
    crc_bits = _bits(crc.to_bytes(4, "big"))
    bits = np.concatenate([a[:32], a[32:end_a], b[32:end_b], _EOS_MAGIC, crc_bits])
    return np.packbits(bits).tobytes()  # pads the last byte with zero bits


def block_starts(data: bytes) -> np.ndarray:
    """Bit offsets of the bzip2 block headers in ``data`` (int64, sorted)."""
    bits = _bits(data)
    magic = np.packbits(_BLOCK_MAGIC).tobytes()
    hits: list[int] = []
    for shift in range(8):
        shifted = np.packbits(bits[shift:]).tobytes()
        i = shifted.find(magic)
        while i != -1:
            hits.append(8 * i + shift)
            i = shifted.find(magic, i + 1)
    return np.array(sorted(hits), dtype=np.int64)


def _split_point(text: bytes) -> int:
    """Where the last block starts: ``TAIL_BYTES`` from the end (half the text when short),
    moved one byte back when it would fall right after a newline (the cut line is partial)."""
    split = len(text) - min(TAIL_BYTES, len(text) // 2)
    if split > 1 and text[split - 1 : split] == b"\n":
        split -= 1
    return split


def write_day(path: str | Path, text: bytes, *, truncate: bool, rng: np.random.Generator) -> dict:
    """Compress ``text`` to ``path`` (cut short when ``truncate``); return what was written.

    Returns a dict: ``file``, ``compresslevel``, ``blocks``, ``compressed_bytes`` (before the
    cut), ``cut_bytes`` (0 without truncation), ``text_bytes``, ``recoverable_bytes`` (text a
    block-recovering reader gets), ``tail_partial`` (that text does not end in a newline).
    """
    if not truncate or len(text) < 4:
        data = bz2.compress(text, LEVEL)
        Path(path).write_bytes(data)
        return _info(path, data, block_starts(data), 0, len(text), len(text), False)
    split = _split_point(text)
    data = spliced_compress(text[:split], text[split:])
    if bz2.decompress(data) != text:
        raise RuntimeError(f"{path}: spliced bzip2 stream does not decompress to the day's text")
    starts = block_starts(data)
    last_block_bytes = len(data) - int(starts[-1]) // 8
    cut = max(12, min(int(rng.integers(*CUT_BYTES)), int(0.6 * last_block_bytes)))
    Path(path).write_bytes(data[:-cut])
    recovered = text[:split]
    partial = bool(recovered) and not recovered.endswith(b"\n")
    return _info(path, data, starts, cut, len(text), split, partial)


def _info(
    path,
    data: bytes,
    starts: np.ndarray,
    cut: int,
    text_bytes: int,
    recoverable: int,
    partial: bool,
) -> dict:
    return {
        "file": Path(path).name,
        "compresslevel": LEVEL,
        "blocks": len(starts),
        "compressed_bytes": len(data),
        "cut_bytes": cut,
        "text_bytes": text_bytes,
        "recoverable_bytes": recoverable,
        "tail_partial": partial,
    }

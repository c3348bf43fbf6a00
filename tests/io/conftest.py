"""Shared hand-made inputs for the ingest tests."""

from __future__ import annotations

import bz2

import numpy as np
import pytest


def lanl_lines(n: int, seed: int = 0, start: int = 86400) -> list[bytes]:
    """``n`` LANL-2017 lines with random-ish fields (so bz2 level 1 makes several blocks)."""
    rng = np.random.default_rng(seed)
    t = start + np.sort(rng.integers(0, 86400, n))
    cols = zip(
        t, rng.integers(0, 500, n), rng.integers(0, 99999, n), rng.integers(0, 99999, n),
        rng.choice([6, 17, 1], n), rng.integers(0, 99999, n), rng.choice(["80", "443", "53"], n),
        rng.integers(0, 90, n), rng.integers(0, 90, n), rng.integers(0, 90000, n),
        rng.integers(0, 90000, n), strict=True,
    )  # fmt: skip
    return [
        f"{a},{b},Comp{c:05d},Comp{d:05d},{e},Port{f:05d},{g},{h},{i},{j},{k}\n".encode()
        for a, b, c, d, e, f, g, h, i, j, k in cols
    ]


def truth_decompress(data: bytes) -> tuple[bytes, bool]:
    """What ``bz2.BZ2Decompressor`` recovers from (possibly cut, multi-stream) ``data``:
    the bytes of every complete block, and whether the last stream ended."""
    out, decomp = [], bz2.BZ2Decompressor()
    while data:
        out.append(decomp.decompress(data))
        data = decomp.unused_data if decomp.eof else b""
        if decomp.eof and data:
            decomp = bz2.BZ2Decompressor()
    return b"".join(out), decomp.eof


@pytest.fixture(scope="session")
def lanl_text() -> bytes:
    """About 1.3 MB of LANL text: bz2 level 1 (100k blocks) makes 14 blocks."""
    return b"".join(lanl_lines(20000))


@pytest.fixture(scope="session")
def cut_archive(lanl_text, tmp_path_factory):
    """A LANL .bz2 cut 3,000 bytes before its end (inside the last block), and its truth."""
    full = bz2.compress(lanl_text, 1)
    cut = full[: len(full) - 3000]
    path = tmp_path_factory.mktemp("lanl") / "netflow_day-02.bz2"
    path.write_bytes(cut)
    recovered, eof = truth_decompress(cut)
    assert not eof and 0 < len(recovered) < len(lanl_text)
    return path, recovered

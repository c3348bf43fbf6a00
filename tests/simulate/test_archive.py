"""The day-file writer: a single bzip2 stream whose last block is small, cut inside that block."""

from __future__ import annotations

import bz2
import shutil
import subprocess

import numpy as np
import pytest

from nfsynth.simulate import archive


def _text(n_lines: int) -> bytes:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10**6, (n_lines, 3))
    return "".join(f"{a},{b},Comp{c:06d},443\n" for a, b, c in values).encode()


def test_spliced_stream_decompresses_and_last_block_holds_the_tail():
    text = _text(40_000)  # ~1.1 MB: a full block, a partial one, and the spliced tail
    data = archive.spliced_compress(text[:-5000], text[-5000:])
    assert bz2.decompress(data) == text
    starts = archive.block_starts(data)
    assert len(starts) == 3
    # the last block alone (from its header on) holds the 5000 tail bytes: cutting into it
    # leaves exactly the head for a streaming decompressor
    dec = bz2.BZ2Decompressor()
    assert dec.decompress(data[: int(starts[-1]) // 8 + 50]) == text[:-5000] and not dec.eof


@pytest.mark.skipif(shutil.which("bzip2") is None, reason="bzip2 command not installed")
def test_spliced_stream_passes_bzip2_integrity_test(tmp_path):
    text = _text(8_000)
    path = tmp_path / "x.bz2"
    path.write_bytes(archive.spliced_compress(text[:-3000], text[-3000:]))
    assert subprocess.run(["bzip2", "-t", str(path)], capture_output=True).returncode == 0


def test_write_day_truncated_and_not(tmp_path):
    text = _text(12_000)
    info = archive.write_day(tmp_path / "a.bz2", text, truncate=True, rng=np.random.default_rng(1))
    dec = bz2.BZ2Decompressor()
    got = dec.decompress((tmp_path / "a.bz2").read_bytes())
    assert not dec.eof and got == text[: info["recoverable_bytes"]]
    assert len(text) - len(got) <= archive.TAIL_BYTES + 1
    assert info["tail_partial"] and not got.endswith(b"\n")
    assert 12 <= info["cut_bytes"] <= archive.CUT_BYTES[1]
    info = archive.write_day(tmp_path / "b.bz2", text, truncate=False, rng=np.random.default_rng(1))
    assert bz2.decompress((tmp_path / "b.bz2").read_bytes()) == text and info["cut_bytes"] == 0

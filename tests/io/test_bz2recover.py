import bz2

import pytest

from nfsynth.io.bz2recover import (
    Bz2BlockScanner,
    Bz2Stats,
    lbzip2_available,
    lbzip2_pieces,
    python_bz2_pieces,
)
from nfsynth.io.errors import IngestError

from .conftest import truth_decompress

needs_lbzip2 = pytest.mark.skipif(not lbzip2_available(), reason="lbzip2 not installed")


def _scan(data: bytes) -> tuple[bytes, Bz2Stats]:
    scanner = Bz2BlockScanner()
    out = b"".join(scanner.feed(data[i : i + 65536]) for i in range(0, len(data), 65536))
    return out + scanner.finish(), scanner.stats


def test_scanner_passes_a_complete_archive_through_unchanged(lanl_text):
    full = bz2.compress(lanl_text, 1)
    out, stats = _scan(full)
    assert out == full
    assert not stats.truncated and stats.streams == 1 and stats.bytes_lost_to_truncation == 0
    # level 1: blocks of at most 100,000 bytes of (run-length encoded) text
    assert stats.blocks_recovered == -(-len(lanl_text) // 100000) or (
        len(lanl_text) / 100000 < stats.blocks_recovered < len(lanl_text) / 90000 + 1
    )


def test_scanner_patches_a_cut_archive_into_a_valid_one(cut_archive, lanl_text):
    path, truth = cut_archive
    data = path.read_bytes()
    out, stats = _scan(data)
    assert bz2.decompress(out) == truth  # a valid archive (stream CRC checked) of all blocks
    assert stats.truncated
    _, full_stats = _scan(bz2.compress(lanl_text, 1))
    assert stats.blocks_recovered == full_stats.blocks_recovered - 1  # cut in the last block
    assert 3000 < stats.bytes_lost_to_truncation < len(data)


def test_scanner_handles_several_streams_with_the_last_one_cut(lanl_text):
    first = bz2.compress(lanl_text[:300000], 1)
    second = bz2.compress(lanl_text, 1)
    data = first + second[:-2000]
    truth, eof = truth_decompress(data)
    out, stats = _scan(data)
    assert not eof and bz2.decompress(out) == truth
    assert stats.streams == 2 and stats.truncated


@needs_lbzip2
def test_lbzip2_and_python_fallback_recover_exactly_the_complete_blocks(cut_archive):
    path, truth = cut_archive
    fast, slow = Bz2Stats(), Bz2Stats()
    got_fast = b"".join(lbzip2_pieces(path, fast, threads=2, piece_bytes=1 << 16))
    got_slow = b"".join(python_bz2_pieces(path, slow))
    assert got_fast == truth and got_slow == truth
    assert fast.truncated and slow.truncated
    assert fast.blocks_recovered == slow.blocks_recovered
    assert fast.bytes_lost_to_truncation == slow.bytes_lost_to_truncation


def test_python_fallback_on_a_complete_archive(tmp_path, lanl_text):
    path = tmp_path / "x.bz2"
    path.write_bytes(bz2.compress(lanl_text, 1))
    stats = Bz2Stats()
    assert b"".join(python_bz2_pieces(path, stats)) == lanl_text
    assert not stats.truncated and stats.bytes_lost_to_truncation == 0


def test_garbage_is_not_a_bz2_archive(tmp_path):
    scanner = Bz2BlockScanner(tmp_path / "bad.bz2")
    with pytest.raises(IngestError, match="bad.bz2: not a bz2 archive"):
        scanner.feed(b"hello, world\n" * 10)
    scanner = Bz2BlockScanner(tmp_path / "bad2.bz2")
    scanner.feed(b"BZh9" + b"not compressed at all\n" * 10)
    with pytest.raises(IngestError, match="no complete block"):
        scanner.finish()


@pytest.mark.parametrize("piece", [7, 4099, 1 << 20])
def test_scanner_finds_magics_that_straddle_the_pieces_it_is_fed(cut_archive, piece):
    """A magic cut between two ``feed`` calls (any piece size) is found all the same."""
    path, truth = cut_archive
    data = path.read_bytes()
    scanner = Bz2BlockScanner()
    out = b"".join(scanner.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    out += scanner.finish()
    _, whole = _scan(data)
    assert bz2.decompress(out) == truth
    assert scanner.stats.blocks_recovered == whole.blocks_recovered
    assert scanner.stats.bytes_lost_to_truncation == whole.bytes_lost_to_truncation

"""Port tokens and their LANL 2017 spelling.

LANL 2017 writes a port as its number when it is well known (``443``, ``53``) and otherwise as
an anonymised label ``Port`` + 5 digits (``Port02726``). The simulator carries ports as int32
*tokens*: a token ``>= 0`` is a numeric port written as its number; a token ``< 0`` is the
anonymised label number ``-token - 1`` written ``Port%05d``. Port ``p`` that is not well known
maps to a fixed anonymised label (a seeded permutation of 0..99999), so a port keeps one label
everywhere in a simulation, as in the real data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

#: Ports written as their number (LANL keeps common service ports in clear). 0 is the ICMP port.
WELL_KNOWN_PORTS: tuple[int, ...] = (
    0, 20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 111, 119, 123, 135, 137, 138, 139,
    143, 161, 162, 179, 389, 427, 443, 445, 464, 465, 500, 514, 515, 520, 548, 554, 587, 593,
    631, 636, 873, 902, 989, 990, 993, 995, 1080, 1194, 1433, 1434, 1521, 1701, 1723, 1812,
    1813, 2049, 3268, 3269, 3306, 3389, 4500, 5060, 5061, 5432, 5900, 5985, 5986, 8080, 8443,
    9100,
)  # fmt: skip

#: Well-known ports a `well_known` port scan probes (all of them but the ICMP 0).
SCAN_WELL_KNOWN_PORTS: np.ndarray = np.array([p for p in WELL_KNOWN_PORTS if p > 0], np.int64)

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65536  # client source ports [low, high)

_WELL_KNOWN_MASK = np.zeros(65536, dtype=bool)
_WELL_KNOWN_MASK[list(WELL_KNOWN_PORTS)] = True
_ANON_LABEL = np.random.default_rng(2017).permutation(100000)[:65536].astype(np.int32)


def port_tokens(ports: np.ndarray) -> np.ndarray:
    """Tokens of port numbers: the number itself when well known, else ``-(label + 1)``.

    ``ports``: int array of shape (n,), values 0..65535. Returns int32 of shape (n,).
    """
    ports = np.asarray(ports, dtype=np.int64)
    anon = -(_ANON_LABEL[ports].astype(np.int32) + 1)
    return np.where(_WELL_KNOWN_MASK[ports], ports.astype(np.int32), anon)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    numeric = np.array([str(i) for i in range(65536)], dtype=object)
    anon = np.array([f"Port{i:05d}" for i in range(100000)], dtype=object)
    return numeric, anon


def port_strings(tokens: np.ndarray) -> np.ndarray:
    """LANL spelling of port tokens: ``443`` or ``Port02726``; object array of shape (n,)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    numeric, anon = _tables()
    out = np.empty(tokens.shape, dtype=object)
    pos = tokens >= 0
    out[pos] = numeric[tokens[pos]]
    out[~pos] = anon[-tokens[~pos] - 1]
    return out


@lru_cache(maxsize=1)
def port_dictionary() -> pa.Array:
    """All port spellings as one Arrow string array: numbers 0..65535, then Port00000..Port99999."""
    numeric, anon = _tables()
    return pa.array(np.concatenate([numeric, anon]).tolist(), type=pa.string())


def port_dictionary_indices(tokens: np.ndarray) -> np.ndarray:
    """Positions of port tokens in ``port_dictionary()`` (int32, shape like ``tokens``)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    return np.where(tokens >= 0, tokens, 65536 - tokens - 1).astype(np.int32)


def ephemeral_tokens(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random client source ports (49152..65535) as tokens (all anonymised)."""
    return port_tokens(rng.integers(EPHEMERAL_LOW, EPHEMERAL_HIGH, n))

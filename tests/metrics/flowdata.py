"""Hand-made flow tables with planted structure for the metric tests.

``make_raw`` draws canonical flows (plus ``user``, ``direction``) whose protocol, port and
sizes depend on the hour and on each other, and whose per-host 5-minute activity is bursty
(AR(1) log-rate), so every metric has structure to find. ``user_flows`` derives the user-flow
columns with the same code as the pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfsynth.features.userflows import derive_features

DAY = 86400.0
WIN = 300.0


def make_raw(
    seed: int,
    n_users: int = 12,
    days: float = 1.0,
    rate: float = 1.0,
    prefix="Comp",
    persistence: float = 0.9,
) -> pd.DataFrame:
    """Canonical flows of ``n_users`` hosts over ``days`` days; about ``rate`` flows per
    window on average (mean of a bursty, hour-shaped Poisson rate). ``persistence``: the
    AR(1) coefficient of each host's log-rate per 5-minute window (0: no memory)."""
    rng = np.random.default_rng(seed)
    n_win = int(days * DAY / WIN)
    hour = (np.arange(n_win) * WIN // 3600) % 24
    profile = np.where((hour >= 8) & (hour < 18), 2.0, 0.4)
    ar = np.zeros((n_users, n_win))
    noise = rng.normal(0, 0.5, size=(n_users, n_win))
    for t in range(1, n_win):  # AR(1) over windows, vectorised over users
        ar[:, t] = persistence * ar[:, t - 1] + noise[:, t]
    lam = rate * profile[None, :] * np.exp(ar - 0.5)
    counts = rng.poisson(lam)
    u_idx, w_idx = np.nonzero(counts)
    reps = counts[u_idx, w_idx]
    u = np.repeat(u_idx, reps)
    ts = np.repeat(w_idx, reps) * WIN + rng.uniform(0, WIN, size=reps.sum())
    n = len(ts)
    h = (ts // 3600) % 24
    day = (h >= 8) & (h < 18)
    r = rng.uniform(size=n)
    proto = np.where(day, np.where(r < 0.8, 6, 17), np.where(r < 0.3, 6, np.where(r < 0.8, 17, 1)))
    k = rng.integers(0, 3, size=n)
    dport = np.select(
        [proto == 6, proto == 17],
        [np.array(["443", "80", "445"])[k], np.array(["53", "123", "53"])[k]],
        "0",
    )
    packets = np.where(proto == 6, rng.geometric(0.05, size=n), rng.geometric(0.6, size=n))
    bpp = np.where(proto == 6, rng.uniform(60, 1400, size=n), rng.uniform(40, 120, size=n))
    bytes_ = np.rint(packets * bpp).astype(np.int64)
    duration = packets * 0.02 * rng.exponential(1.0, size=n)
    users = np.array([f"{prefix}{seed:03d}{i:03d}" for i in range(n_users)])
    peers = np.array(["DNS1", "Mail", "EXT1", "EXT2", "EXT3"])[rng.integers(0, 5, size=n)]
    out = rng.uniform(size=n) < 0.7
    frame = pd.DataFrame(
        {
            "ts": ts,
            "duration": duration,
            "src": np.where(out, users[u], peers),
            "dst": np.where(out, peers, users[u]),
            "proto": proto.astype(np.uint8),
            "sport": np.where(out, "Port" + rng.integers(1024, 65535, size=n).astype(str), dport),
            "dport": np.where(out, dport, "Port" + rng.integers(1024, 65535, size=n).astype(str)),
            "packets": packets.astype(np.int64),
            "bytes": bytes_,
            "rev_packets": (packets // 2).astype(np.int64),
            "rev_bytes": (packets // 2 * 60).astype(np.int64),
            "user": users[u],
            "direction": np.where(out, "out", "in"),
        }
    )
    return frame.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)


def user_flows(raw: pd.DataFrame) -> pd.DataFrame:
    """User-flow columns of ``raw`` via ``features.userflows.derive_features``."""
    return derive_features(raw, internal=["Comp*", "DNS*", "Mail"], rolling_seconds=None)


def column_resample(raw: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every field drawn independently (a B1-like stand-in): columns permuted one by one,
    timestamps uniform over each host's day. Users and their flow counts are kept."""
    rng = np.random.default_rng(seed)
    out = raw.copy()
    for col in (
        "duration",
        "proto",
        "sport",
        "dport",
        "packets",
        "bytes",
        "rev_packets",
        "rev_bytes",
        "direction",
    ):
        out[col] = raw[col].to_numpy()[rng.permutation(len(raw))]
    start = np.floor(raw["ts"].min() / DAY) * DAY
    out["ts"] = start + rng.uniform(0, DAY, size=len(raw))
    out["src"] = np.where(out["direction"] == "out", out["user"], "EXT1")
    out["dst"] = np.where(out["direction"] == "out", "EXT1", out["user"])
    return out.sort_values(["user", "ts"], kind="mergesort").reset_index(drop=True)

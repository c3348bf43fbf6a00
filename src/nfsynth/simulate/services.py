"""Services: what a session of flows looks like, and how a host moves between services.

A *session* is a burst of flows of one service (a browsing burst of HTTPS flows, a few
Kerberos/LDAP exchanges, a night backup). ``SERVICES`` gives, per service, the ports and
protocol, the mean flows per session and the gaps between them, and the distributions of
packets (lognormal with a Pareto tail, larger in work hours), packet sizes (bytes per packet,
always within [32, 1500]), the reverse/forward packet ratio and the duration per packet.
Workstations move between their services by an hour-dependent Markov chain
(``transition_matrices``): the service of the next session depends on the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfsynth.simulate.ports import ephemeral_tokens, port_tokens
from nfsynth.simulate.rhythm import is_work_hour

TCP, UDP, ICMP = 6, 17, 1
MIN_PACKET, MAX_PACKET = 32, 1500  # bytes per packet, both directions
MAX_PACKETS = 5_000_000


@dataclass(frozen=True)
class Service:
    """One kind of session. Sizes in bytes per packet, times in seconds."""

    name: str
    choices: tuple[tuple[int, int, float], ...]  # (dport, proto, probability)
    sport: str  # "ephemeral" | "same" (sport = dport) | "zero" (ICMP)
    flows_mean: float  # mean flows per session (geometric, >= 1)
    gap_mean: float  # mean seconds between flows of a session
    pk_mu: float  # log of the median forward packets (off hours)
    pk_sigma: float
    work_boost: float  # added to pk_mu in work hours
    tail_p: float  # share of flows with a Pareto(1.3) packet multiplier
    size_fwd: tuple[int, int]
    size_rev: tuple[int, int]
    rev_ratio: float  # median reverse / forward packets
    p_rev0: float  # share of flows without any reverse packet
    sec_per_packet: float  # median duration per packet (both directions)


SERVICES: tuple[Service, ...] = (
    # Workstation services (the Markov chain states), in this order.
    Service("web", ((443, TCP, 0.8), (80, TCP, 0.2)), "ephemeral", 8, 3, 2.3, 1.1, 0.8, 0.03, (60, 700), (400, 1500), 1.6, 0.04, 0.02),
    Service("mail", ((443, TCP, 0.7), (25, TCP, 0.3)), "ephemeral", 3, 20, 2.5, 1.0, 0.5, 0.02, (80, 1400), (60, 1200), 0.8, 0.02, 0.03),
    Service("smb", ((445, TCP, 0.8), (139, TCP, 0.2)), "ephemeral", 6, 2, 3.0, 1.5, 1.0, 0.05, (100, 1460), (100, 1460), 1.0, 0.03, 0.01),
    Service("auth", ((88, TCP, 0.5), (389, TCP, 0.3), (389, UDP, 0.2)), "ephemeral", 3, 1, 1.5, 0.6, 0.2, 0.0, (60, 600), (60, 1200), 1.0, 0.05, 0.01),
    Service("admin", ((22, TCP, 0.5), (3389, TCP, 0.5)), "ephemeral", 2, 60, 4.0, 1.8, 0.5, 0.05, (40, 300), (60, 1400), 2.0, 0.05, 0.3),
    Service("netbios", ((137, UDP, 0.7), (138, UDP, 0.3)), "same", 2, 5, 0.7, 0.5, 0.0, 0.0, (50, 250), (50, 250), 0.5, 0.6, 0.05),
    Service("ping", ((0, ICMP, 1.0),), "zero", 3, 1, 0.8, 0.4, 0.0, 0.0, (64, 100), (64, 100), 1.0, 0.1, 0.01),
    Service("backup", ((445, TCP, 1.0),), "ephemeral", 1.5, 30, 7.0, 1.0, 0.0, 0.1, (1000, 1460), (40, 120), 0.05, 0.0, 0.01),
    Service("update", ((443, TCP, 0.7), (80, TCP, 0.3)), "ephemeral", 3, 10, 3.5, 1.2, 0.0, 0.05, (60, 400), (1000, 1500), 6.0, 0.02, 0.01),
    Service("dns", ((53, UDP, 0.95), (53, TCP, 0.05)), "ephemeral", 2, 1, 0.0, 0.25, 0.0, 0.0, (60, 120), (80, 480), 1.0, 0.3, 0.005),
    # Server and external services.
    Service("dns_fwd", ((53, UDP, 1.0),), "same", 1, 1, 0.0, 0.2, 0.0, 0.0, (60, 120), (80, 512), 1.0, 0.1, 0.005),
    Service("ext_web", ((443, TCP, 0.9), (80, TCP, 0.1)), "ephemeral", 5, 5, 2.8, 1.2, 0.5, 0.03, (60, 1000), (200, 1500), 1.5, 0.03, 0.02),
    Service("smtp_in", ((25, TCP, 1.0),), "ephemeral", 1.5, 30, 2.8, 1.0, 0.3, 0.03, (100, 1460), (60, 300), 0.6, 0.05, 0.03),
    Service("vpn_in", ((443, TCP, 0.6), (500, UDP, 0.2), (4500, UDP, 0.2)), "ephemeral", 4, 30, 4.0, 1.5, 0.3, 0.05, (100, 1460), (100, 1460), 1.2, 0.02, 0.1),
    Service("remote_in", ((22, TCP, 0.5), (3389, TCP, 0.5)), "ephemeral", 3, 45, 3.8, 1.6, 0.3, 0.05, (40, 400), (60, 1400), 2.0, 0.1, 0.3),
    Service("hosted_in", ((443, TCP, 0.6), (80, TCP, 0.4)), "ephemeral", 4, 4, 2.0, 1.0, 0.4, 0.03, (60, 700), (300, 1500), 2.0, 0.04, 0.02),
    Service("sweep", ((0, ICMP, 0.34), (445, TCP, 0.33), (135, TCP, 0.33)), "ephemeral", 1, 1, 0.0, 0.2, 0.0, 0.0, (40, 64), (40, 64), 1.0, 0.3, 0.0),
    Service("rdp_fwd", ((3389, TCP, 0.7), (445, TCP, 0.3)), "ephemeral", 1, 1, 3.5, 1.4, 0.0, 0.03, (60, 600), (200, 1460), 2.0, 0.05, 0.2),
    Service("gpo", ((445, TCP, 0.6), (135, TCP, 0.4)), "ephemeral", 2, 3, 2.0, 1.0, 0.0, 0.02, (60, 800), (60, 800), 1.0, 0.05, 0.01),
)  # fmt: skip
SVC: dict[str, int] = {s.name: i for i, s in enumerate(SERVICES)}

#: Workstation service codes (the Markov states) and their mix in and out of work hours.
WS_SERVICES: tuple[str, ...] = tuple(s.name for s in SERVICES[:10])
MIX_WORK = np.array([0.36, 0.10, 0.14, 0.10, 0.05, 0.05, 0.03, 0.00, 0.02, 0.15])
MIX_OFF = np.array([0.14, 0.05, 0.04, 0.18, 0.02, 0.12, 0.07, 0.14, 0.14, 0.10])
MARKOV_STAY = 0.35  # weight of repeating the last service
MARKOV_FOLLOW = 0.25  # weight of the last service's typical successor
_FOLLOW = {  # typical successors: login, then shares and mail; backup, then updates; ...
    "web": {"dns": 0.5, "web": 0.3, "mail": 0.2},
    "mail": {"web": 0.6, "auth": 0.4},
    "smb": {"auth": 0.5, "smb": 0.5},
    "auth": {"smb": 0.5, "mail": 0.3, "web": 0.2},
    "admin": {"admin": 0.5, "smb": 0.5},
    "netbios": {"smb": 0.6, "ping": 0.4},
    "ping": {"netbios": 0.5, "admin": 0.5},
    "backup": {"update": 0.6, "backup": 0.4},
    "update": {"backup": 0.5, "auth": 0.5},
    "dns": {"web": 0.8, "mail": 0.2},
}


def transition_matrices() -> np.ndarray:
    """P[g, a, b] = P(next service b | last service a, hour group g); g=0 off, g=1 work.

    Shape (2, 10, 10), rows sum to 1.
    """
    k = len(WS_SERVICES)
    follow = np.zeros((k, k))
    for a, nexts in _FOLLOW.items():
        for b, p in nexts.items():
            follow[WS_SERVICES.index(a), WS_SERVICES.index(b)] = p
    rest = 1.0 - MARKOV_STAY - MARKOV_FOLLOW
    mats = [
        MARKOV_STAY * np.eye(k) + MARKOV_FOLLOW * follow + rest * mix[None, :]
        for mix in (MIX_OFF, MIX_WORK)
    ]
    return np.stack(mats)


def mean_flows_per_session(mix: np.ndarray) -> float:
    """Expected flows per workstation session under a service mix (shape (10,))."""
    return float(mix @ np.array([s.flows_mean for s in SERVICES[:10]]))


def _table(attr: str) -> np.ndarray:
    return np.array([getattr(s, attr) for s in SERVICES], dtype=np.float64)


_FLOWS_MEAN, _GAP = _table("flows_mean"), _table("gap_mean")
_MU, _SIGMA, _BOOST, _TAIL = (
    _table("pk_mu"),
    _table("pk_sigma"),
    _table("work_boost"),
    _table("tail_p"),
)
_RATIO, _PREV0, _SPP = _table("rev_ratio"), _table("p_rev0"), _table("sec_per_packet")
_SIZE = np.array([s.size_fwd + s.size_rev for s in SERVICES], dtype=np.float64)  # (S, 4)


def expand_sessions(
    rng: np.random.Generator, svc: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flows of sessions: a geometric number per session, exponential gaps after its start.

    ``svc``, ``start``: arrays (n_sessions,). Returns ``(session, k, t)`` of shape (n_flows,):
    the session index of each flow, its index within the session (0 = first) and its time.
    """
    n = rng.geometric(1.0 / _FLOWS_MEAN[svc])
    session = np.repeat(np.arange(len(svc)), n)
    first = np.cumsum(n) - n
    k = np.arange(len(session)) - np.repeat(first, n)
    gaps = rng.exponential(_GAP[svc[session]])
    gaps[k == 0] = 0.0
    csum = np.cumsum(gaps)
    t = start[session] + csum - np.repeat(csum[first], n) if len(session) else start[session]
    return session, k, t


def draw_ports(
    rng: np.random.Generator, svc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Protocol and port tokens of flows of services ``svc`` (n,): ``(proto, sport, dport)``.

    Consistent by construction: 80/443/445 only over TCP, ICMP only with ports 0.
    """
    n = len(svc)
    proto = np.zeros(n, np.int64)
    dport = np.zeros(n, np.int64)
    sport = np.zeros(n, np.int32)
    u = rng.uniform(size=n)
    eph = ephemeral_tokens(rng, n)
    for code in np.unique(svc):
        sel = np.flatnonzero(svc == code)
        spec = SERVICES[code]
        cum = np.cumsum([c[2] for c in spec.choices])
        pick = np.minimum(np.searchsorted(cum / cum[-1], u[sel], side="right"), len(cum) - 1)
        dport[sel] = np.array([c[0] for c in spec.choices])[pick]
        proto[sel] = np.array([c[1] for c in spec.choices])[pick]
        if spec.sport == "ephemeral":
            sport[sel] = eph[sel]
        elif spec.sport == "same":
            sport[sel] = port_tokens(dport[sel])
    sport[proto == ICMP] = 0  # ICMP has no ports: LANL writes 0 for both
    dport[proto == ICMP] = 0
    return proto, sport, port_tokens(dport)


def draw_counts(
    rng: np.random.Generator, svc: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Duration and counts of flows of services ``svc`` at times ``t`` (n,).

    Forward packets: lognormal (median larger in work hours) with a Pareto(1.3) tail, >= 1;
    reverse packets: forward x a lognormal ratio, or 0; bytes = packets x an integer packet
    size in the service's range (within [32, 1500]); duration (whole seconds) grows with
    the packets. Returns ``(dur, pk, by, rpk, rby)``, int64 arrays (n,).
    """
    n = len(svc)
    mu = _MU[svc] + _BOOST[svc] * is_work_hour(t)
    pk = np.exp(rng.normal(mu, _SIGMA[svc]))
    tail = rng.uniform(size=n) < _TAIL[svc]
    pk[tail] *= 1.0 + rng.pareto(1.3, tail.sum())
    pk = np.clip(np.rint(pk), 1, MAX_PACKETS).astype(np.int64)
    ratio = _RATIO[svc] * np.exp(rng.normal(0.0, 0.5, n))
    rpk = np.clip(np.rint(pk * ratio), 1, MAX_PACKETS).astype(np.int64)
    rpk[rng.uniform(size=n) < _PREV0[svc]] = 0
    size = _SIZE[svc]
    b = rng.beta(2.0, 2.0, (n, 2))
    fwd = np.rint(size[:, 0] + b[:, 0] * (size[:, 1] - size[:, 0])).astype(np.int64)
    rev = np.rint(size[:, 2] + b[:, 1] * (size[:, 3] - size[:, 2])).astype(np.int64)
    fwd, rev = np.clip(fwd, MIN_PACKET, MAX_PACKET), np.clip(rev, MIN_PACKET, MAX_PACKET)
    dur = np.floor((pk + rpk) * _SPP[svc] * np.exp(rng.normal(0.0, 0.8, n))).astype(np.int64)
    return dur, pk, pk * fwd, rpk, rpk * rev

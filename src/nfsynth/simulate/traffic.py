"""Normal traffic over a time window: workstations, servers and external peers.

Everything is vectorised over flows; the only Python loops run over Markov steps (the n-th
session of every workstation at once), services and server kinds.

Who talks to whom (W = number of workstations; rates are sessions per day):

- workstations start sessions at ``Network.activity`` flows per day, office rhythm, bursty
  (Hawkes), service by the hour-dependent Markov chain (``services``). Web and update sessions
  go to external peers only for workstations whose role sends out (``out_external``, ``both``),
  otherwise to EnterpriseAppServer (intranet, internal mirror). The first flow of a web session
  is its DNS lookup. Mail to Mail, shares and backups to EnterpriseAppServer, Kerberos/LDAP to
  ActiveDirectory, admin/NetBIOS/ping among workstations;
- DNS servers forward 35% of the lookups they receive to external resolvers (UDP 53);
- EnterpriseAppServer calls external web peers (1.5 W, office) and serves external clients
  (1.5 W, office); Mail receives SMTP from external hosts (4 W, flat) and queries AD (0.5 W);
- VPN servers receive remote users (4 W, evening) and forward 60% of those flows to a
  workstation (RDP/SMB);
- `both` workstations receive SSH/RDP from external hosts (6 each, evening); `in_external`
  workstations host a web service for external clients (25 each, flat);
- ActiveDirectory pushes policies to workstations (0.5 W, office); VScanner servers sweep
  every internal host (ICMP, 445, 135) at 01:00, 07:00, 13:00 and 19:00.
"""

from __future__ import annotations

import numpy as np

from nfsynth.simulate.flowblock import FlowBlock, concat, make_block
from nfsynth.simulate.hosts import Network, pick_web_peer
from nfsynth.simulate.rhythm import DAY, PRESENCE_SIGMA, RHYTHMS, is_work_hour, session_times
from nfsynth.simulate.services import (
    MIX_OFF,
    MIX_WORK,
    SVC,
    draw_counts,
    draw_ports,
    expand_sessions,
    mean_flows_per_session,
    transition_matrices,
)

DNS_FORWARD_SHARE = 0.35
VPN_FORWARD_SHARE = 0.6
WEB_OTHER_PEER = 0.25  # share of flows in a web session going to another (embedded) site
SWEEP_HOURS = (1, 7, 13, 19)
SWEEP_FLOWS_PER_TARGET = 3
SERVER_RATES = {  # sessions per day per workstation (or per host for the comps_* entries)
    "eas_out": 1.5,
    "eas_in": 1.5,
    "mail_in": 4.0,
    "mail_ad": 0.5,
    "vpn_in": 4.0,
    "ad_gpo": 0.5,
    "comps_remote_in": 6.0,
    "comps_hosted_in": 25.0,
}


def _flows(
    rng: np.random.Generator, svc: np.ndarray, t: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> FlowBlock:
    """A block of flows of services ``svc`` with fields drawn for them (arrays (n,))."""
    proto, sport, dport = draw_ports(rng, svc)
    dur, pk, by, rpk, rby = draw_counts(rng, svc, t)
    return make_block(
        t=t,
        dur=dur,
        src=src,
        dst=dst,
        proto=proto,
        sport=sport,
        dport=dport,
        pk=pk,
        by=by,
        rpk=rpk,
        rby=rby,
    )


def _other_comp(rng: np.random.Generator, net: Network, host: np.ndarray) -> np.ndarray:
    """A random workstation other than ``host`` (ids (n,)); ``host`` itself if it is alone."""
    n = len(net.comps)
    if n < 2:
        return net.comps[np.zeros(len(host), np.int64)]
    pos = np.searchsorted(net.comps, host)
    pos = np.where(pos < n, pos, 0)
    return net.comps[(pos + 1 + rng.integers(0, n - 1, len(host))) % n]


def _external_client(rng: np.random.Generator, net: Network, n: int) -> np.ndarray:
    pool = net.external[net.external != net.exfil_dst] if len(net.external) > 1 else net.external
    return rng.choice(pool, size=n)


def session_rate(activity: np.ndarray) -> np.ndarray:
    """Sessions per day giving ``activity`` flows per day under the day's average mix."""
    h = np.arange(24) + 0.5
    w = RHYTHMS["office"](h)[:, None]
    work = is_work_hour(h * 3600.0)[:, None]
    mix = (w * np.where(work, MIX_WORK[None, :], MIX_OFF[None, :])).sum(0) / w.sum()
    return np.asarray(activity, dtype=np.float64) / mean_flows_per_session(mix)


def markov_services(
    rng: np.random.Generator, who: np.ndarray, when: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """Services of sessions by the Markov chain, one step per session rank across hosts.

    ``who``, ``when``: (n,) sorted by (who, when); ``last``: (n_hosts,) service of each host's
    previous session, updated in place. Returns service codes (n,).
    """
    n = len(who)
    svc = np.zeros(n, np.int64)
    if n == 0:
        return svc
    cum_p = np.cumsum(transition_matrices(), axis=2)
    work = is_work_hour(when).astype(np.int64)
    first = np.searchsorted(who, np.arange(len(last)))
    rank = np.arange(n) - first[who]
    order = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(rank.max() + 2))
    u = rng.uniform(size=n)
    for j in range(rank.max() + 1):
        idx = order[bounds[j] : bounds[j + 1]]
        host = who[idx]
        s = np.minimum((u[idx, None] > cum_p[work[idx], last[host]]).sum(1), cum_p.shape[2] - 1)
        svc[idx] = s
        last[host] = s
    return svc


def workstation_flows(
    rng: np.random.Generator,
    net: Network,
    hosts: np.ndarray,
    t0: float,
    t1: float,
    last: np.ndarray,
) -> FlowBlock:
    """Flows started by workstations ``hosts`` (positions in ``net.comps``) in ``[t0, t1)``.

    ``last``: (len(net.comps),) each workstation's last service, updated in place. Sessions
    spawned near ``t1`` may run past it.
    """
    rate = session_rate(net.activity[hosts])
    who, when = session_times(rng, rate, RHYTHMS["office"], t0, t1, presence_sigma=PRESENCE_SIGMA)
    who = hosts[who]
    svc = markov_services(rng, who, when, last)
    host = net.comps[who]
    roles = net.roles[host]
    sends_out = (roles == "out_external") | (roles == "both")
    eas, ad = net.server("EnterpriseAppServer"), net.server("ActiveDirectory")
    dst = np.full(len(svc), eas, np.int64)
    u = rng.uniform(size=len(svc))
    ext_web = (svc == SVC["web"]) & sends_out
    dst[ext_web] = pick_web_peer(rng, net, int(ext_web.sum()))
    ext_upd = (svc == SVC["update"]) & sends_out
    dst[ext_upd] = rng.choice(net.update_servers, size=int(ext_upd.sum()))
    dst[svc == SVC["mail"]] = net.server("Mail")
    dst[svc == SVC["auth"]] = ad
    dst[svc == SVC["dns"]] = net.dns_of[who[svc == SVC["dns"]]]
    peer = _other_comp(rng, net, host)
    to_comp = (
        ((svc == SVC["smb"]) & (u < 0.2))
        | ((svc == SVC["admin"]) & (u < 0.6))
        | (svc == SVC["netbios"])
    )
    to_comp |= (svc == SVC["ping"]) & (u < 0.5)
    dst[to_comp] = peer[to_comp]
    dst[(svc == SVC["ping"]) & (u >= 0.8)] = ad

    session, k, t = expand_sessions(rng, svc, when)
    f_svc, f_dst, f_src = svc[session], dst[session], host[session]
    f_ext = ext_web[session] & (k > 0) & (rng.uniform(size=len(k)) < WEB_OTHER_PEER)
    f_dst[f_ext] = pick_web_peer(rng, net, int(f_ext.sum()))
    lookup = (f_svc == SVC["web"]) & (k == 0)
    f_svc[lookup] = SVC["dns"]
    f_dst[lookup] = net.dns_of[who[session[lookup]]]
    return _flows(rng, f_svc, t, f_src, f_dst)


def _process(
    rng: np.random.Generator,
    initiators: np.ndarray,
    rate: float,
    rhythm: str,
    svc_name: str,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sessions of one service from ``initiators`` (ids), ``rate`` sessions per day each.

    Returns per flow ``(initiator, session, t)``.
    """
    if len(initiators) == 0 or rate <= 0:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0)
    who, when = session_times(
        rng, np.full(len(initiators), rate), RHYTHMS[rhythm], t0, t1, eta=0.3, tau=600.0
    )
    session, _, t = expand_sessions(rng, np.full(len(who), SVC[svc_name]), when)
    return initiators[who[session]], session, t


def _inbound(rng, net, targets, rate, rhythm, svc_name, t0, t1) -> FlowBlock:
    """External clients connecting to ``targets`` (one client per session)."""
    target, session, t = _process(rng, targets, rate, rhythm, svc_name, t0, t1)
    n_sessions = int(session.max()) + 1 if len(session) else 0
    client = _external_client(rng, net, n_sessions)[session]
    return _flows(rng, np.full(len(t), SVC[svc_name]), t, client, target)


def server_flows(
    rng: np.random.Generator, net: Network, t0: float, t1: float, ws: FlowBlock
) -> FlowBlock:
    """Flows of servers and external peers over ``[t0, t1)``; ``ws`` are the workstation flows
    of the same window (DNS servers forward some of the lookups in it)."""
    n_ws = len(net.comps)
    r = {k: v * n_ws for k, v in SERVER_RATES.items() if not k.startswith("comps_")}
    eas = net.of_kind("EnterpriseAppServer")
    mail = net.of_kind("Mail")
    vpn = net.of_kind("VPN")
    ad = net.server("ActiveDirectory")
    blocks = []

    is_dns = np.isin(ws["dst"], net.of_kind("DNS")) & (ws["dport"] == 53)
    fwd = np.flatnonzero(is_dns & (rng.uniform(size=len(is_dns)) < DNS_FORWARD_SHARE))
    t = ws["t"][fwd] + rng.integers(0, 2, len(fwd))
    blocks.append(
        _flows(
            rng,
            np.full(len(fwd), SVC["dns_fwd"]),
            t,
            ws["dst"][fwd],
            rng.choice(net.resolvers, len(fwd)),
        )
    )

    src, session, t = _process(rng, eas, r["eas_out"], "office", "ext_web", t0, t1)
    peers = pick_web_peer(rng, net, int(session.max()) + 1 if len(session) else 0)[session]
    blocks.append(_flows(rng, np.full(len(t), SVC["ext_web"]), t, src, peers))
    blocks.append(_inbound(rng, net, eas, r["eas_in"], "office", "hosted_in", t0, t1))
    blocks.append(_inbound(rng, net, mail, r["mail_in"], "flat", "smtp_in", t0, t1))
    src, _, t = _process(rng, mail, r["mail_ad"], "flat", "auth", t0, t1)
    blocks.append(_flows(rng, np.full(len(t), SVC["auth"]), t, src, np.full(len(t), ad)))

    if len(vpn):
        vin = _inbound(rng, net, vpn, r["vpn_in"] / len(vpn), "evening", "vpn_in", t0, t1)
        blocks.append(vin)
        sel = np.flatnonzero(rng.uniform(size=len(vin["t"])) < VPN_FORWARD_SHARE)
        user = net.comps[(vin["src"] * 7919) % n_ws]  # a remote client reaches its own workstation
        t = vin["t"][sel] + rng.integers(0, 3, len(sel))
        blocks.append(_flows(rng, np.full(len(sel), SVC["rdp_fwd"]), t, vin["dst"][sel], user[sel]))

    blocks.append(
        _inbound(
            rng,
            net,
            net.comps_with_role("both"),
            SERVER_RATES["comps_remote_in"],
            "evening",
            "remote_in",
            t0,
            t1,
        )
    )
    blocks.append(
        _inbound(
            rng,
            net,
            net.comps_with_role("in_external"),
            SERVER_RATES["comps_hosted_in"],
            "flat",
            "hosted_in",
            t0,
            t1,
        )
    )
    src, session, t = _process(rng, np.array([ad]), r["ad_gpo"], "office", "gpo", t0, t1)
    dst = net.comps[rng.integers(0, n_ws, int(session.max()) + 1 if len(session) else 0)][session]
    blocks.append(_flows(rng, np.full(len(t), SVC["gpo"]), t, src, dst))
    blocks.append(sweeps(rng, net, t0, t1))
    return concat(blocks)


def sweeps(rng: np.random.Generator, net: Network, t0: float, t1: float) -> FlowBlock:
    """VScanner sweeps starting in ``[t0, t1)``: each internal host probed 3 times, 0.7 s apart."""
    scanners = net.of_kind("VScanner")
    if len(scanners) == 0:
        return concat([])
    targets = net.internal[~np.isin(net.internal, scanners)]
    day0 = np.floor(t0 / DAY) * DAY
    starts = np.array(
        [
            day0 + d * DAY + h * 3600.0
            for d in range(int(np.ceil((t1 - day0) / DAY)))
            for h in SWEEP_HOURS
        ]
    )
    starts = starts[(starts >= t0) & (starts < t1)]
    per_start = len(targets) * SWEEP_FLOWS_PER_TARGET
    n = len(starts) * per_start
    k = np.arange(n) % per_start
    target = targets[k // SWEEP_FLOWS_PER_TARGET]
    src = scanners[(k // SWEEP_FLOWS_PER_TARGET) % len(scanners)]
    t = np.repeat(starts, per_start) + 0.7 * k
    return _flows(rng, np.full(n, SVC["sweep"]), t, src, target)

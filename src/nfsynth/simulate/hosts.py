"""The simulated network: host names, kinds, intended roles and who talks to whom.

Host ids index ``Network.names`` (internal hosts first, then external ``IP......``).
Roles are the ones user selection computes from flows with external peers (``schema.ROLES``):

| host | kind | role |
|---|---|---|
| ActiveDirectory | ActiveDirectory | internal |
| DNS01, DNS02, ... | DNS | out_external (forwards lookups to external resolvers) |
| Mail | Mail | in_external (receives SMTP from external hosts) |
| EnterpriseAppServer | EnterpriseAppServer | both (serves and calls external hosts) |
| VPN01, ... | VPN | in_external (remote users connect in) |
| VScanner01, ... | VScanner | internal (sweeps internal hosts) |
| Comp...... | workstation | cycled by activity rank: out_external, both, internal, in_external |

Servers are taken in the order ActiveDirectory, DNS01, Mail, EnterpriseAppServer, VPN01,
VScanner01, then DNS02, VPN02, VScanner02, DNS03, ... (``servers`` of them). A service whose
server is missing falls back to ActiveDirectory (internal traffic only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SERVER_ORDER = ("ActiveDirectory", "DNS01", "Mail", "EnterpriseAppServer", "VPN01", "VScanner01")
SERVER_KIND = {
    "ActiveDirectory": "ActiveDirectory",
    "Mail": "Mail",
    "EnterpriseAppServer": "EnterpriseAppServer",
}
KIND_ROLE = {
    "ActiveDirectory": "internal",
    "DNS": "out_external",
    "Mail": "in_external",
    "EnterpriseAppServer": "both",
    "VPN": "in_external",
    "VScanner": "internal",
    "workstation": None,
    "external": None,
}
#: Workstation roles by activity rank (busiest first), repeating: every role among the busiest.
WS_ROLE_CYCLE = (
    "out_external", "both", "internal", "in_external", "out_external",
    "both", "internal", "out_external", "in_external", "out_external",
)  # fmt: skip
#: Internal-host name patterns (for `datasets.<name>.internal`).
INTERNAL_PATTERNS = [
    "Comp*",
    "ActiveDirectory",
    "EnterpriseAppServer",
    "DNS*",
    "VPN*",
    "VScanner*",
    "Mail",
]
ACTIVITY_SIGMA = 0.6  # lognormal spread of workstation activity (mean 1)
ZIPF_S = 1.1  # popularity exponent of external web peers


def server_names(n: int) -> list[str]:
    """The first ``n`` server names (see the module doc)."""
    names = list(SERVER_ORDER[:n])
    k = 2
    while len(names) < n:
        for prefix in ("DNS", "VPN", "VScanner"):
            if len(names) < n:
                names.append(f"{prefix}{k:02d}")
        k += 1
    return names


def _kind(name: str) -> str:
    if name in SERVER_KIND:
        return SERVER_KIND[name]
    for prefix in ("VScanner", "DNS", "VPN"):
        if name.startswith(prefix):
            return prefix
    raise ValueError(f"unknown server name {name}")


@dataclass
class Network:
    """Hosts and their parts. Id arrays are int64 indexes into ``names``."""

    names: np.ndarray  # object (n_hosts,)
    kinds: np.ndarray  # object (n_hosts,): workstation, a server kind, or external
    roles: np.ndarray  # object (n_hosts,): intended role, None for external hosts
    comps: np.ndarray  # workstation ids, busiest first
    activity: np.ndarray  # float (n_comps,), flows per day each workstation starts
    external: np.ndarray  # external ids
    web_weights: np.ndarray  # float (n_external,), Zipf popularity of external web peers
    update_servers: np.ndarray  # external ids that serve updates
    resolvers: np.ndarray  # external ids that answer DNS forwards
    exfil_dst: int  # external id receiving the planted exfiltration (no other traffic)
    dns_of: np.ndarray  # (n_comps,) the DNS server id each workstation queries

    def of_kind(self, kind: str) -> np.ndarray:
        return np.flatnonzero(self.kinds == kind)

    def server(self, kind: str) -> int:
        """Id of the first server of ``kind``, or ActiveDirectory's when there is none."""
        ids = self.of_kind(kind)
        return int(ids[0]) if len(ids) else int(self.of_kind("ActiveDirectory")[0])

    @property
    def internal(self) -> np.ndarray:
        return np.flatnonzero(self.kinds != "external")

    def comps_with_role(self, *roles: str) -> np.ndarray:
        return self.comps[np.isin(self.roles[self.comps], roles)]


def _unique_names(rng: np.random.Generator, prefix: str, n: int) -> list[str]:
    numbers = rng.choice(900000, size=n, replace=False) + 100000
    return [f"{prefix}{k:06d}" for k in numbers]


def build_network(
    rng: np.random.Generator,
    workstations: int,
    servers: int,
    external_hosts: int,
    flows_per_workstation_day: float,
) -> Network:
    """Draw names, activities and roles of a network of the given size."""
    activity = rng.lognormal(-0.5 * ACTIVITY_SIGMA**2, ACTIVITY_SIGMA, workstations)
    activity = np.sort(activity / activity.mean())[::-1] * flows_per_workstation_day
    comp_names = _unique_names(rng, "Comp", workstations)
    srv = server_names(servers)
    ext_names = _unique_names(rng, "IP", external_hosts)
    names = np.array(comp_names + srv + ext_names, dtype=object)
    kinds = np.array(
        ["workstation"] * workstations + [_kind(s) for s in srv] + ["external"] * external_hosts,
        dtype=object,
    )
    roles = np.array([KIND_ROLE[k] for k in kinds], dtype=object)
    comps = np.arange(workstations, dtype=np.int64)
    roles[comps] = [WS_ROLE_CYCLE[i % len(WS_ROLE_CYCLE)] for i in range(workstations)]
    external = np.arange(workstations + servers, len(names), dtype=np.int64)
    n_ext = len(external)
    exfil_dst = int(external[-1])
    web = 1.0 / np.arange(1, n_ext + 1) ** ZIPF_S
    if n_ext > 1:
        web[-1] = 0.0  # the exfiltration destination sees no other traffic
    dns_ids = np.flatnonzero(kinds == "DNS")
    dns_of = (
        dns_ids[comps % len(dns_ids)]
        if len(dns_ids)
        else np.full(workstations, np.flatnonzero(kinds == "ActiveDirectory")[0])
    )
    return Network(
        names=names,
        kinds=kinds,
        roles=roles,
        comps=comps,
        activity=activity,
        external=external,
        web_weights=web / web.sum(),
        update_servers=external[1 : 1 + min(3, max(1, n_ext - 2))] if n_ext > 2 else external[:1],
        resolvers=external[: min(4, n_ext)],
        exfil_dst=exfil_dst,
        dns_of=dns_of,
    )


def pick_web_peer(rng: np.random.Generator, net: Network, n: int) -> np.ndarray:
    """``n`` external web peers by Zipf popularity (ids, int64 (n,))."""
    return rng.choice(net.external, size=n, p=net.web_weights)

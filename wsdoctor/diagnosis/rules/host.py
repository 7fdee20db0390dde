"""Host rules: which of the server host's limits stops it first, and how long idle flows live.

From first principles: every WebSocket connection holds one file descriptor in the server
process (RLIMIT_NOFILE), one kernel file handle (fs.file-max) and, where netfilter tracks
connections, one conntrack entry (nf_conntrack_max). The smallest room left among these is the
host's connection limit. Accept queues (somaxconn) and the local port range do not cap open
connections, but decide what a reconnect storm or a proxy's upstream connections can do.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsdoctor.diagnosis.catalogue import finding, remedy_text
from wsdoctor.diagnosis.knowledge import INTERMEDIARIES, heartbeat_interval_for
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import HostFacts, Observations

FD_HEADROOM = 64  # descriptors a server needs for itself when its open count is unknown
RFC5382_ESTABLISHED_S = 7440  # RFC 5382: NATs keep established flows at least 2 h 4 min
MAX_SOMAXCONN = 65535
NOT_PRESENT = "not present"  # probes/hostlimits.py: the error of a file that does not exist


def _nice(count: int) -> int:
    """A round value to set a limit to: the next power of two at or above ``count``, min 1024."""
    value = 1024
    while value < count:
        value *= 2
    return value


def _ints(host: HostFacts) -> dict[str, int]:
    return {limit.name: limit.value for limit in host.limits if isinstance(limit.value, int)}


@dataclass
class Bound:
    """One limit that caps open connections: its value, what is taken, how to raise it.

    ``code`` is its finding in the catalogue, whose remedy says how to raise it (with
    ``{value}`` for the value to set).
    """

    code: str
    label: str
    value: int
    used: int  # taken already, or kept for the process's own use
    evidence: list[str]
    ceiling: int | None = None  # beyond this value, ``over_ceiling`` must be done as well
    over_ceiling: str = ""

    @property
    def allows(self) -> int:
        """How many connections it leaves room for."""
        return max(0, self.value - self.used)

    def needed(self, target: int) -> int:
        """The value that leaves room for ``target`` connections, rounded up."""
        return _nice(self.used + target)

    def remedy(self, target: int) -> str:
        """What to set: a value that leaves room for ``target`` connections."""
        return remedy_text(self.code, **self.remedy_values(target))

    def remedy_values(self, target: int) -> dict[str, object]:
        """The figures of its remedy: the value to set, and what else a ceiling asks."""
        value = self.needed(target)
        extra = self.over_ceiling if self.ceiling is not None and value > self.ceiling else ""
        return {"value": value, "over_ceiling": extra}


def _nofile(host: HostFacts, values: dict[str, int]) -> Bound | None:
    prefix = "server_" if host.pid is not None else ""
    soft = values.get(f"{prefix}nofile_soft")
    if soft is None:
        return None
    hard = next((v.value for v in host.limits if v.name == f"{prefix}nofile_hard"), None)
    used = values.get("server_open_fds") if host.pid is not None else None
    who = (
        f"server process {host.pid}"
        if host.pid is not None
        else "this shell (a server started from here inherits it; pass --pid for a running one)"
    )
    return Bound(
        "host_nofile",
        "RLIMIT_NOFILE",
        soft,
        used if used is not None else FD_HEADROOM,
        [
            f"RLIMIT_NOFILE of {who}: soft {soft}, hard {hard}",
            f"{used} descriptors open in the server now"
            if used is not None
            else f"{FD_HEADROOM} descriptors kept for the server's own files",
        ],
        hard if isinstance(hard, int) else None,
        f" That is above the hard limit ({hard}): raise it as root too (LimitNOFILE= sets both; "
        "or 'nofile' in /etc/security/limits.conf).",
    )


def _file_max(values: dict[str, int]) -> Bound | None:
    file_max = values.get("fs.file-max")
    if file_max is None:
        return None
    allocated = values.get("fs.file-nr", 0)
    return Bound(
        "host_file_max",
        "fs.file-max",
        file_max,
        allocated,
        [f"fs.file-max {file_max}, {allocated} file handles allocated now (fs.file-nr)"],
    )


def _conntrack(values: dict[str, int]) -> Bound | None:
    maximum = values.get("net.netfilter.nf_conntrack_max")
    if maximum is None:
        return None
    count = values.get("net.netfilter.nf_conntrack_count", 0)
    return Bound(
        "host_conntrack_max",
        "nf_conntrack_max",
        maximum,
        count,
        [
            f"nf_conntrack_max {maximum}, {count} entries in use; a full table drops new "
            "connections ('nf_conntrack: table full, dropping packet' in dmesg)"
        ],
    )


def _limit_finding(bound: Bound, target: int) -> Judgement:
    return Judgement(
        finding(
            bound.code,
            [*bound.evidence, f"{target} connections need about {bound.used + target}"],
            allows=bound.allows,
            **bound.remedy_values(target),
        )
    )


def _nr_open(host: HostFacts, values: dict[str, int], nofile: Bound | None) -> Judgement | None:
    nr_open = values.get("fs.nr_open")
    target = host.target_connections
    if nr_open is None or nofile is None or not target:
        return None
    needed = nofile.needed(target)
    if needed <= nr_open:
        return None
    return Judgement(
        finding(
            "host_nr_open",
            [f"fs.nr_open {nr_open}; {target} connections need RLIMIT_NOFILE {needed}"],
            needed=needed,
        )
    )


def _accept_queue(host: HostFacts, values: dict[str, int]) -> Judgement | None:
    somaxconn = values.get("net.core.somaxconn")
    target = host.target_connections
    if somaxconn is None or not target or target <= somaxconn:
        return None
    syn_backlog = values.get("net.ipv4.tcp_max_syn_backlog")
    value = min(_nice(target), MAX_SOMAXCONN)
    return Judgement(
        finding(
            "host_accept_queue",
            [
                f"net.core.somaxconn {somaxconn}"
                + (f", net.ipv4.tcp_max_syn_backlog {syn_backlog}" if syn_backlog else ""),
                "when every client reconnects at once (a restart, a network blip), SYNs beyond "
                "the queue are dropped and retried after 1 s, 3 s, 7 s ...",
            ],
            target=target,
            value=value,
        )
    )


def _port_range(host: HostFacts) -> Judgement | None:
    text = next((v.value for v in host.limits if v.name == "net.ipv4.ip_local_port_range"), None)
    target = host.target_connections
    try:
        low, high = (int(v) for v in str(text).split())
    except ValueError:
        return None
    ports = high - low + 1
    if not target or target <= ports:
        return None
    more = ""
    if target > 65535 - 1024 + 1:
        more = ", and spread upstream connections over several backend addresses or ports"
    return Judgement(
        finding(
            "host_local_ports",
            [
                f"net.ipv4.ip_local_port_range {low}-{high}: {ports} local ports per backend "
                f"address and port; {target} proxied connections need {target}",
                "this matters only for outgoing connections (a reverse proxy or load balancer "
                "on this host)",
            ],
            ports=ports,
            more=more,
        )
    )


def _conntrack_timeout(values: dict[str, int]) -> Judgement | None:
    timeout = values.get("net.netfilter.nf_conntrack_tcp_timeout_established")
    if timeout is None or timeout >= RFC5382_ESTABLISHED_S:
        return None
    return Judgement(
        finding(
            "host_conntrack_timeout",
            [
                f"net.netfilter.nf_conntrack_tcp_timeout_established {timeout} s, below the "
                f"{RFC5382_ESTABLISHED_S} s RFC 5382 asks of NATs (kernel default 432000 s)",
                "after that, packets of an idle connection may be dropped: a silent black hole",
            ],
            timeout=timeout,
            interval=heartbeat_interval_for(timeout),
        )
    )


def _keepalive(values: dict[str, int]) -> Judgement | None:
    first = values.get("net.ipv4.tcp_keepalive_time")
    if first is None:
        return None
    shorter = sorted(
        (i for i in INTERMEDIARIES if i.idle_timeout_s is not None and i.idle_timeout_s < first),
        key=lambda i: -(i.idle_timeout_s or 0),
    )
    if not shorter:
        return None
    examples = ", ".join(f"{i.name} {i.idle_timeout_s:g} s" for i in shorter[:3])
    return Judgement(
        finding(
            "host_tcp_keepalive",
            [
                f"net.ipv4.tcp_keepalive_time {first} s (then "
                f"{values.get('net.ipv4.tcp_keepalive_probes', '?')} probes every "
                f"{values.get('net.ipv4.tcp_keepalive_intvl', '?')} s)",
                f"longer than the default idle timeout of {len(shorter)} known intermediaries, "
                f"e.g. {examples}",
            ],
        )
    )


def _unreadable(host: HostFacts) -> Judgement | None:
    missing = [f"{limit.name}: {limit.error}" for limit in host.limits if limit.error]
    if not missing:
        return None
    if any("nf_conntrack" in limit.name and limit.error == NOT_PRESENT for limit in host.limits):
        missing.append("missing nf_conntrack files mean connection tracking is not loaded here")
    return Judgement(finding("host_unreadable", missing))


def _verdict(host: HostFacts, bounds: list[Bound]) -> Judgement | None:
    if not bounds:
        return None
    first = min(bounds, key=lambda b: b.allows)
    target = host.target_connections
    evidence = [f"{b.label} leaves room for about {b.allows} connections" for b in bounds]
    short = sorted((b for b in bounds if target and b.allows < target), key=lambda b: b.allows)
    if short and target:
        return Judgement(
            finding("host_capacity", evidence, target=target),
            culprit="server_limits",
            hop="server",
            confidence=0.8,
            kind="host_limit",
            summary=f"This host cannot hold {target} WebSocket connections: {first.label} stops it "
            f"first, at about {first.allows}.",
            remedies=[b.remedy(target) for b in short],
            connection_limit=first.allows,
        )
    key = "host_capacity.target_ok" if target else "host_capacity.ok"
    found = finding(key, evidence, target=target, allows=first.allows, label=first.label)
    return Judgement(
        found,
        culprit="none",
        confidence=0.7,
        kind="healthy",
        summary=f"{found.title}; the first one reached is {first.label}, at about {first.allows}.",
        remedies=[found.remedy] if found.remedy else [],
        connection_limit=first.allows,
    )


def judge_host(obs: Observations) -> list[Judgement]:
    """Which host limit stops the server first, with the setting to change; idle lifetimes."""
    host = obs.host
    if host is None:
        return []
    values = _ints(host)
    nofile = _nofile(host, values)
    bounds = [b for b in (nofile, _file_max(values), _conntrack(values)) if b is not None]
    target = host.target_connections
    out = [_limit_finding(b, target) for b in bounds if target and b.allows < target]
    extra = (
        _verdict(host, bounds),
        _nr_open(host, values, nofile),
        _accept_queue(host, values),
        _port_range(host),
        _conntrack_timeout(values),
        _keepalive(values),
        _unreadable(host),
    )
    return out + [j for j in extra if j is not None]

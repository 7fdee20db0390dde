"""Read the limits that decide how many WebSocket connections a host holds, and for how long.

Descriptor limits (RLIMIT_NOFILE of this process and, given a pid, of a running server), the
kernel's file tables, accept queues, local ports, conntrack and TCP keepalive. Everything is read
from files under ``root`` (``/`` on a live machine; a recorded copy shaped like ``/proc`` in
tests). Nothing here judges the values: that is ``diagnosis/rules/host.py``.
"""

from __future__ import annotations

import os
import re

from wsdoctor.observations import HostFacts, HostLimit

SYSCTLS = (
    "fs.file-max",
    "fs.nr_open",
    "fs.file-nr",  # recorded as the first figure: file handles allocated now
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",  # recorded as text: "low high"
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
TEXT_SYSCTLS = {"net.ipv4.ip_local_port_range"}
NOT_PRESENT = "not present"  # the error of a file that does not exist (a module not loaded)
_NOFILE_LINE = re.compile(r"^Max open files\s+(\S+)\s+(\S+)", re.MULTILINE)


def _path(root: str, relative: str) -> str:
    return os.path.join(root, relative)


def _read(path: str) -> tuple[str | None, str | None]:
    """The file's text, or None and why it could not be read."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(), None
    except FileNotFoundError:
        return None, NOT_PRESENT
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"


def _number(text: str) -> int | str:
    return text if text == "unlimited" else int(text)


def read_sysctl(root: str, name: str) -> HostLimit:
    """One sysctl, read from ``<root>/proc/sys/<name with dots as slashes>``."""
    source = _path(root, "proc/sys/" + name.replace(".", "/"))
    text, error = _read(source)
    if text is None:
        return HostLimit(name, None, source, error)
    fields = text.split()
    try:
        value: int | str = " ".join(fields) if name in TEXT_SYSCTLS else int(fields[0])
    except (ValueError, IndexError):
        return HostLimit(name, None, source, f"unexpected content {text.strip()[:40]!r}")
    return HostLimit(name, value, source)


def read_nofile(root: str, who: str, prefix: str) -> list[HostLimit]:
    """RLIMIT_NOFILE soft and hard of ``who`` (``self`` or a pid) from its limits file."""
    source = _path(root, f"proc/{who}/limits")
    text, error = _read(source)
    match = _NOFILE_LINE.search(text) if text is not None else None
    if match is None:
        error = error or "no 'Max open files' line"
        return [
            HostLimit(f"{prefix}nofile_{kind}", None, source, error) for kind in ("soft", "hard")
        ]
    try:
        soft, hard = _number(match.group(1)), _number(match.group(2))
    except ValueError:
        bad = f"unexpected 'Max open files' values {match.group(0)!r}"
        return [HostLimit(f"{prefix}nofile_{kind}", None, source, bad) for kind in ("soft", "hard")]
    return [
        HostLimit(f"{prefix}nofile_soft", soft, source),
        HostLimit(f"{prefix}nofile_hard", hard, source),
    ]


def read_open_fds(root: str, pid: int) -> HostLimit:
    """How many descriptors process ``pid`` has open now."""
    source = _path(root, f"proc/{pid}/fd")
    try:
        return HostLimit("server_open_fds", len(os.listdir(source)), source)
    except OSError as exc:
        return HostLimit("server_open_fds", None, source, f"cannot list: {exc.strerror or exc}")


def process_exists(root: str, pid: int) -> bool:
    """Whether ``<root>/proc/<pid>`` exists."""
    return os.path.isdir(_path(root, f"proc/{pid}"))


def gather_host_facts(
    root: str = "/", pid: int | None = None, target_connections: int | None = None
) -> HostFacts:
    """Every limit this module knows, read under ``root``; with ``pid``, the server's too."""
    limits = read_nofile(root, "self", "")
    if pid is not None:
        limits += read_nofile(root, str(pid), "server_")
        limits.append(read_open_fds(root, pid))
    limits += [read_sysctl(root, name) for name in SYSCTLS]
    return HostFacts(limits=limits, pid=pid, target_connections=target_connections)

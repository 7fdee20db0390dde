"""Which judgement becomes the verdict: one table, strongest first, read by the engine.

Every judgement that proposes a culprit names its kind; the engine takes the judgement whose
kind stands highest here. Kinds on one level are equally strong: then a judgement's own
``order`` (for example the shorter of two idle timeouts, or the more frequent watch drop)
decides, then its confidence. A new rule that proposes a culprit adds its kind here, once.
"""

from __future__ import annotations

PRECEDENCE: tuple[tuple[str, ...], ...] = (
    # Nothing else could be measured when the first handshake failed or never came up.
    ("handshake_failed", "watch_never_up"),
    # A measured limit on connections, from capacity or from the host's own figures.
    ("capacity_limit", "host_limit"),
    # The server broke the protocol: no drop cause can be measured past that.
    ("protocol_error",),
    # Connections end at a fixed age whatever they carry: heartbeats will not help.
    ("lifetime_cap",),
    # The server accepts the upgrade and ends the connection at once.
    ("closed_on_open",),
    # Idle connections are cut at a timeout (the shortest one wins, by ``order``).
    ("idle_timeout",),
    # A message size or message rate ends connections.
    ("message_limit",),
    # One path's handshake failed while another path works; a server restart.
    ("handshake_failed_elsewhere", "restart"),
    # Drops seen by a long watch, the most frequent cause first (by ``order``).
    ("watch_drops",),
    # The server refused some concurrent probe connections.
    ("connections_refused",),
    # Drops, stalls and lost pongs that no idle time or age explains.
    ("network_instability",),
    # Idle connections were cut, too few alike to name a timeout: inconclusive.
    ("idle_drops_unplaced",),
    # What was asked of the path was proven.
    ("healthy",),
    ("stages_ok",),
)

_STRENGTH: dict[str, int] = {
    kind: len(PRECEDENCE) - level for level, kinds in enumerate(PRECEDENCE) for kind in kinds
}


def strength(kind: str) -> int:
    """How strongly a judgement of ``kind`` claims the verdict (higher wins)."""
    try:
        return _STRENGTH[kind]
    except KeyError:
        raise ValueError(f"judgement kind {kind!r} is missing from PRECEDENCE") from None

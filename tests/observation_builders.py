"""Hand-written observations shaped like the ones wsdoctor's probes record, for rule tests.

No network and no clock: each builder lays out, on paper, what ``wsdoctor/probes`` would have
written for a given behaviour of the path (see ``probes/idle.py`` and ``probes/connection.py``):

- rungs stay idle until their planned idle time, then ping once; an answered rung logs
  ``ping_sent`` + ``pong_received`` and is closed on purpose (ending ``local``), as wsdoctor
  0.1 recorded it (reports saved then must still be judged alike; today's probe lets an
  answered rung go quiet again, which ``test_clusters.py`` lays out for fleets);
- a close drop (``eof``, ``reset``, ``close_frame``) at idle T ends every sentinel and every rung
  planned at or above T by that kind, at age and idle T, before they ever pinged;
- a silent drop (a black hole) shows only when a rung above T pings: ``ping_sent`` then
  ``ping_timeout`` after the ping timeout, ending ``silent`` (or ``reset`` right after the ping
  when the box answers data with a RST); sentinels stay ``open``;
- rungs whose turn had not come when the stage ended are ``open`` with no events;
- heartbeat connections ping every ``interval_s`` and traffic connections send a message every
  second: faster than the drop they outlive it (``open`` at the end of the stage, which lasts
  until 1.1 x the drop + 1 s) unless told to die with it.

Times are seconds; ages and idle times count from each connection's handshake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from wsdoctor.observations import (
    ConnectionRecord,
    ConnectionRole,
    Ending,
    Event,
    Fingerprint,
    Handshake,
    HandshakeFailure,
    HandshakeFailureReason,
    LoopLag,
    Observations,
    PathResult,
    RttStats,
    StageResult,
    Step,
)
from wsdoctor.stats import jitter, percentile

DropKind = Literal["eof", "reset", "close_frame", "silent"]

STARTED_AT = "2026-11-02T09:00:00+00:00"
HOST = "ws.example.com"
RTT_S = 0.001  # a loopback-like round trip
PING_TIMEOUT_S = 1.0  # what the runner picks for a fast path (its minimum)
ECHO_PING_TIMEOUT_S = 2.0  # probes/basic.py
TICK_S = 0.05  # the idle stage's control tick
SURVIVAL_MARGIN = 1.1  # probes/idle.py: keepers must reach 1.1 x the drop + 1 s
SURVIVAL_EXTRA_S = 1.0
OPEN_TIMEOUT_S = 10.0  # plan.ConnectOptions.open_timeout_s
TRAFFIC_INTERVAL_S = 1.0
HANDSHAKE_STAGE_S = 0.03
ECHO_STAGE_S = 1.6
QUIET_LAG_MS = 2.0

_DETAIL = {
    "eof": "TCP FIN, no close frame",
    "reset": "TCP RST",
    "silent": "ping unanswered; nothing received",
}


def ladder(
    max_idle_s: float = 120.0, step_s: float = 1.0, until_s: float = 10.0, ratio: float = 1.1
) -> list[float]:
    """Rung idle times: ``step_s`` steps up to ``until_s``, then geometric, ending at max idle.

    A fixed, local ladder (1 .. 10, 11, 12.1, 13.31 ...) so that tests do not move when the
    probe's own plan is retuned.
    """
    rungs: list[float] = []
    value = step_s
    while value < min(until_s, max_idle_s):
        rungs.append(round(value, 3))
        value += step_s
    value = max(value, step_s)
    while value < max_idle_s:
        rungs.append(round(value, 2))
        value *= ratio
    rungs.append(round(max_idle_s, 3))
    return sorted(set(rungs))


def heartbeat_intervals(max_idle_s: float = 120.0) -> list[float]:
    """Protocol-ping intervals 1, 2, 4 ... s below ``max_idle_s`` (as the probe plans them)."""
    count = max(1, int(math.log2(max(max_idle_s, 2.0))))
    return [float(2**i) for i in range(count) if 2**i < max_idle_s] or [1.0]


def survival_age(drop_s: float) -> float:
    """How old keepers must get before the idle stage calls the drop decided."""
    return drop_s * SURVIVAL_MARGIN + SURVIVAL_EXTRA_S


def horizon_for(drop_s: float, ping_timeout_s: float = PING_TIMEOUT_S) -> float:
    """When a path without a drop stops, once another path timed one at ``drop_s``."""
    return round(survival_age(drop_s) + ping_timeout_s + TICK_S, 3)


# --- small pieces --------------------------------------------------------------------------


def loop_lag(max_ms: float = QUIET_LAG_MS, samples: int = 200) -> LoopLag:
    """The probe's own event-loop lag over a stage."""
    return LoopLag(samples=samples, p99_ms=round(max_ms * 0.8, 3), max_ms=max_ms)


def fingerprint(
    name: str,
    kind: Literal["proxy", "load_balancer", "cdn", "paas", "server"] = "proxy",
    header: str = "server",
    value: str | None = None,
    source: Literal["upgrade", "http"] = "upgrade",
) -> Fingerprint:
    """An intermediary recognised from a response header."""
    return Fingerprint(name=name, kind=kind, header=header, value=value or name, source=source)


NGINX = fingerprint("nginx", "proxy", "server", "nginx/1.22.1")
CLOUDFLARE = fingerprint("cloudflare", "cdn", "cf-ray", "8f1c2a3b4d5e6f70-AMS")


def ok_handshake(headers: dict[str, str] | None = None) -> Handshake:
    """A handshake that switched protocols."""
    return Handshake(
        ok=True,
        dns_s=0.0004,
        tcp_s=0.0003,
        tls_s=None,
        upgrade_s=0.0021,
        status=101,
        headers=dict(headers or {"upgrade": "websocket", "connection": "Upgrade"}),
    )


def conn(
    id: str,
    role: ConnectionRole,
    ending: Ending,
    *,
    opened_at: float = 0.0,
    handshake: Handshake | None = None,
    server_ping_interval_s: float | None = None,
    **fields: object,
) -> ConnectionRecord:
    """One connection record; server pings are counted from the age when an interval is set."""
    pings = 0
    if server_ping_interval_s is not None:
        pings = int(ending.age_s // server_ping_interval_s)
    return ConnectionRecord(
        id=id,
        role=role,
        opened_at=round(opened_at, 4),
        handshake=handshake or ok_handshake(),
        ending=ending,
        server_pings=pings,
        server_ping_interval_s=server_ping_interval_s if pings >= 2 else None,
        **fields,  # type: ignore[arg-type]
    )


def _ping(t: float, rtt_s: float = RTT_S) -> list[Event]:
    return [
        Event(t=round(t, 4), kind="ping_sent"),
        Event(t=round(t + rtt_s, 4), kind="pong_received", rtt_ms=round(rtt_s * 1000, 3)),
    ]


def _first_send(interval_s: float, at_s: float, pings: bool) -> float:
    """The first periodic send at or after ``at_s`` (pings start one interval in, messages at 0)."""
    k = max(1 if pings else 0, math.ceil(round(at_s / interval_s, 9)))
    return round(k * interval_s, 4)


def _beats(interval_s: float, until_s: float) -> list[float]:
    """Times of a periodic action every ``interval_s`` strictly before ``until_s``."""
    count = max(0, math.ceil(until_s / interval_s) - 1)
    return [round(interval_s * (k + 1), 4) for k in range(count)]


def ramp_step(
    value: int, answered: int, failures: dict[str, int] | None = None, **more: object
) -> Step:
    """One level of a capacity ramp: ``value`` handshakes sent, ``answered`` of them worked."""
    failures = failures or {}
    fields: dict[str, object] = {"phase": "ramp", **more}
    return Step(
        value=value,
        ok=not failures,
        sent=value,
        answered=answered,
        failed=sum(failures.values()),
        failures=failures,
        **fields,  # type: ignore[arg-type]
    )


# --- stages --------------------------------------------------------------------------------


def handshake_stage(
    *, headers: dict[str, str] | None = None, lag_ms: float = QUIET_LAG_MS
) -> StageResult:
    """One connection that opened and was closed on purpose."""
    ending = Ending(kind="local", age_s=0.003, idle_s=0.0, initiator="client")
    return StageResult(
        name="handshake",
        started_at=0.0,
        duration_s=HANDSHAKE_STAGE_S,
        connections=[conn("handshake-1", "handshake", ending, handshake=ok_handshake(headers))],
        loop_lag=loop_lag(lag_ms),
    )


def _rtt(kind: Literal["protocol", "application"], values: list[float], lost: int) -> RttStats:
    return RttStats(
        kind=kind,
        samples=len(values),
        p50_ms=percentile(values, 0.5),
        p95_ms=percentile(values, 0.95),
        p99_ms=percentile(values, 0.99),
        max_ms=max(values),
        jitter_ms=round(jitter(values), 3),
        lost=lost,
    )


def echo_stage(
    *,
    pings: int = 20,
    lost: int = 0,
    p50_ms: float = 1.0,
    max_ms: float | None = None,
    stalls: int = 2,
    app_echo: bool = True,
    lag_ms: float = QUIET_LAG_MS,
    headers: dict[str, str] | None = None,
) -> StageResult:
    """RTT sampling: ``pings`` protocol pings of which ``lost`` went unanswered.

    Answered pings take about ``p50_ms``, except ``stalls`` of them that take ``max_ms`` when
    it is given.
    Lost pings log ``ping_timeout`` after the echo stage's 2 s and do not end the connection.
    """
    events: list[Event] = []
    rtts: list[float] = []
    t = 0.0
    lost_at = {round((k + 1) * pings / (lost + 1)) for k in range(lost)} if lost else set()
    stall_at = {pings * (k + 1) // (stalls + 1) for k in range(stalls)} - lost_at
    if max_ms is None:
        stall_at = set()
    for index in range(pings):
        events.append(Event(t=round(t, 4), kind="ping_sent"))
        if index in lost_at:
            t += ECHO_PING_TIMEOUT_S
            events.append(Event(t=round(t, 4), kind="ping_timeout"))
        else:
            if max_ms is not None and index in stall_at:
                rtt = max_ms
            else:
                rtt = round(p50_ms + 0.01 * (index % 3), 3)
            t += rtt / 1000
            events.append(Event(t=round(t, 4), kind="pong_received", rtt_ms=rtt))
            rtts.append(rtt)
        t += 0.05
    app: list[float] = []
    if app_echo:
        for _ in range(pings // 2):
            rtt = round(p50_ms + 0.1, 3)
            events.append(Event(t=round(t, 4), kind="message_sent", size=16))
            t += rtt / 1000
            events.append(Event(t=round(t, 4), kind="message_received", size=16, rtt_ms=rtt))
            app.append(rtt)
    ending = Ending(kind="local", age_s=round(t + 0.002, 4), idle_s=0.0, initiator="client")
    stage = StageResult(
        name="echo",
        started_at=HANDSHAKE_STAGE_S,
        duration_s=round(t + 0.01, 4),
        connections=[
            conn(
                "echo-1",
                "echo",
                ending,
                opened_at=HANDSHAKE_STAGE_S,
                handshake=ok_handshake(headers),
                events=events,
            )
        ],
        loop_lag=loop_lag(lag_ms),
        app_echo=app_echo,
        app_heartbeat_answered=False,
    )
    if rtts:
        stage.rtt.append(_rtt("protocol", rtts, lost))
    if app:
        stage.rtt.append(_rtt("application", app, 0))
    return stage


def _stage_end(
    drop_at: float | None,
    how: DropKind,
    reset_on_send: bool,
    rungs: Sequence[float],
    keepers_survive: bool,
    keeper_deaths: list[float],
    ping_timeout_s: float,
    rtt_s: float,
    max_idle_s: float,
) -> float:
    """When the idle stage decides, as ``probes/idle.py`` does."""
    hard_stop = max_idle_s + ping_timeout_s + OPEN_TIMEOUT_S
    bound = detected = None
    if drop_at is not None and how != "silent":
        bound = detected = drop_at
    elif drop_at is not None:
        failing = [r for r in rungs if r >= drop_at]
        if failing:
            first = min(failing)
            bound = first + rtt_s if reset_on_send else first
            detected = first + (rtt_s if reset_on_send else ping_timeout_s)
    if bound is None or detected is None:
        return round(min(hard_stop, max(rungs, default=0.0) + 2 * rtt_s + TICK_S), 3)
    keepers_done = survival_age(bound) if keepers_survive else max(keeper_deaths, default=0.0)
    return round(min(hard_stop, max(detected, keepers_done) + TICK_S), 3)


def _close_ending(
    how: DropKind, age_s: float, idle_s: float, code: int, reason: str | None
) -> Ending:
    if how == "close_frame":
        return Ending(
            kind="close_frame",
            age_s=round(age_s, 4),
            idle_s=round(idle_s, 4),
            code=code,
            reason=reason,
            initiator="server",
        )
    return Ending(kind=how, age_s=round(age_s, 4), idle_s=round(idle_s, 4), detail=_DETAIL[how])


def idle_stages(
    *,
    drop_at: float | None = None,
    how: DropKind = "eof",
    reset_on_send: bool = False,
    max_idle_s: float = 120.0,
    rungs: Sequence[float] | None = None,
    heartbeats: Sequence[float] | None = None,
    traffic_interval_s: float | None = TRAFFIC_INTERVAL_S,
    sentinels: int = 2,
    keepers_die: bool = False,
    heartbeats_die: bool | None = None,
    traffic_dies: bool | None = None,
    close_code: int = 1000,
    close_reason: str | None = None,
    ping_timeout_s: float = PING_TIMEOUT_S,
    rtt_s: float = RTT_S,
    lag_ms: float = QUIET_LAG_MS,
    server_ping_interval_s: float | None = None,
    until: float | None = None,
    interrupted: bool = False,
    headers: dict[str, str] | None = None,
    started_at: float | None = None,
) -> tuple[StageResult, StageResult]:
    """The idle and heartbeat stages of one path, as the probe would record them.

    ``drop_at`` is the idle time T at which the path drops connections (None: never), ``how``
    the way it does so. ``keepers_die`` makes heartbeat and traffic connections end at age T
    too (a lifetime cap); ``heartbeats_die`` / ``traffic_dies`` do so for one kind only (pings
    ignored by the idle timer, or one-way traffic). ``until`` overrides when the stage ended
    (another path's horizon, or an interruption).
    """
    rungs = list(ladder(max_idle_s) if rungs is None else rungs)
    heartbeats = list(heartbeat_intervals(max_idle_s) if heartbeats is None else heartbeats)
    hb_die = keepers_die if heartbeats_die is None else heartbeats_die
    tr_die = keepers_die if traffic_dies is None else traffic_dies
    silent = how == "silent"
    start = started_at if started_at is not None else round(HANDSHAKE_STAGE_S + ECHO_STAGE_S, 4)
    hs = ok_handshake(headers)

    def keeper_death(interval_s: float, dies: bool, pings: bool) -> float | None:
        """When a keeper with this interval is ended by the drop (None: it outlives it)."""
        if drop_at is None:
            return None
        if not silent:
            return drop_at if dies or interval_s >= drop_at else None
        if not pings and not reset_on_send:
            return None  # messages alone never notice a black hole
        if not dies and interval_s < drop_at:
            return None
        return _first_send(interval_s, drop_at, pings) + (
            rtt_s if reset_on_send else ping_timeout_s
        )

    keepers: list[tuple[str, ConnectionRole, float, bool]] = [
        (f"heartbeat-{h:g}s", "heartbeat", h, hb_die) for h in heartbeats
    ]
    if traffic_interval_s is not None:
        keepers.append(("traffic-1", "traffic", traffic_interval_s, tr_die))
    deaths = [keeper_death(i, d, role == "heartbeat") for _, role, i, d in keepers]
    end = until
    if end is None:
        end = _stage_end(
            drop_at,
            how,
            reset_on_send,
            rungs,
            keepers_survive=any(d is None for d in deaths),
            keeper_deaths=[d for d in deaths if d is not None],
            ping_timeout_s=ping_timeout_s,
            rtt_s=rtt_s,
            max_idle_s=max_idle_s,
        )
    closes = drop_at is not None and not silent and drop_at <= end
    order = 0

    def opened() -> float:
        nonlocal order
        order += 1
        return start + 0.002 * order

    def open_ending(last_byte_s: float) -> Ending:
        idle = end - last_byte_s
        if server_ping_interval_s is not None:
            idle = min(idle, end % server_ping_interval_s)
        return Ending(kind="open", age_s=round(end, 4), idle_s=round(idle, 4))

    idle_records: list[ConnectionRecord] = []
    for index in range(sentinels):
        ending = (
            _close_ending(how, drop_at, drop_at, close_code, close_reason)
            if closes and drop_at is not None
            else open_ending(0.0)
        )
        idle_records.append(
            conn(
                f"sentinel-{index + 1}",
                "sentinel",
                ending,
                opened_at=opened(),
                handshake=hs,
                server_ping_interval_s=server_ping_interval_s,
            )
        )
    for rung in rungs:
        events: list[Event] = []
        if closes and drop_at is not None and rung >= drop_at:
            ending = _close_ending(how, drop_at, drop_at, close_code, close_reason)
        elif silent and drop_at is not None and rung >= drop_at and rung < end:
            events.append(Event(t=round(rung, 4), kind="ping_sent"))
            if reset_on_send and rung + rtt_s <= end:
                ending = Ending(
                    kind="reset", age_s=round(rung + rtt_s, 4), idle_s=rtt_s, detail="TCP RST"
                )
            elif not reset_on_send and rung + ping_timeout_s <= end:
                events.append(Event(t=round(rung + ping_timeout_s, 4), kind="ping_timeout"))
                ending = Ending(
                    kind="silent", age_s=round(rung, 4), idle_s=round(rung, 4), detail=_DETAIL[how]
                )
            else:
                ending = open_ending(rung)
        elif rung + rtt_s <= end:
            events = _ping(rung, rtt_s)
            ending = Ending(
                kind="local", age_s=round(rung + 2 * rtt_s, 4), idle_s=0.0, initiator="client"
            )
        elif rung < end:
            events = [Event(t=round(rung, 4), kind="ping_sent")]
            ending = open_ending(rung)
        else:
            ending = open_ending(0.0)
        idle_records.append(
            conn(
                f"rung-{rung:g}s",
                "rung",
                ending,
                opened_at=opened(),
                handshake=hs,
                planned_idle_s=rung,
                events=events,
                server_ping_interval_s=server_ping_interval_s,
            )
        )

    keep_records: list[ConnectionRecord] = []
    for (name, role, interval, _), death in zip(keepers, deaths):
        if death is not None and death > end:
            death = None
        failed_at = None  # the send the black hole swallowed (or answered with a RST)
        if death is not None and silent:
            failed_at = death - (rtt_s if reset_on_send else ping_timeout_s)
        stop = end if death is None else (failed_at if failed_at is not None else death)
        if role == "heartbeat":
            times = _beats(interval, stop)
            events = [e for t in times for e in _ping(t, rtt_s)]
            last = times[-1] + rtt_s if times else 0.0
            if failed_at is not None:
                events.append(Event(t=round(failed_at, 4), kind="ping_sent"))
                if not reset_on_send:
                    events.append(Event(t=round(death, 4), kind="ping_timeout"))  # type: ignore[arg-type]
        else:
            times = [0.0, *_beats(interval, stop)]
            if failed_at is not None:
                times.append(round(failed_at, 4))
            events = [Event(t=t, kind="message_sent", size=15) for t in times]
            last = times[-1]
        if death is None:
            ending = open_ending(last)
        elif failed_at is not None and not reset_on_send:
            ending = Ending(
                kind="silent",
                age_s=round(failed_at, 4),
                idle_s=round(failed_at - last, 4),
                detail=_DETAIL["silent"],
            )
        elif failed_at is not None:
            ending = Ending(kind="reset", age_s=round(death, 4), idle_s=rtt_s, detail="TCP RST")
        else:
            ending = _close_ending(how, death, death - last, close_code, close_reason)
        keep_records.append(
            conn(
                name,
                role,
                ending,
                opened_at=opened(),
                handshake=hs,
                interval_s=interval,
                events=events,
                server_ping_interval_s=server_ping_interval_s,
            )
        )

    common = {
        "started_at": start,
        "duration_s": round(end, 4),
        "ping_timeout_s": ping_timeout_s,
        "max_idle_s": max_idle_s,
        "interrupted": interrupted,
    }
    idle = StageResult(name="idle", connections=idle_records, loop_lag=loop_lag(lag_ms), **common)  # type: ignore[arg-type]
    heartbeat = StageResult(
        name="heartbeat", connections=keep_records, loop_lag=loop_lag(lag_ms), **common
    )  # type: ignore[arg-type]
    return idle, heartbeat


# --- paths and runs ------------------------------------------------------------------------


def idle_path(
    name: str = "direct",
    *,
    url: str | None = None,
    fingerprints: Iterable[Fingerprint] = (),
    echo: StageResult | None = None,
    headers: dict[str, str] | None = None,
    **idle: object,
) -> PathResult:
    """A path whose handshake and echo went fine, then idle and heartbeat stages (see above).

    Keyword arguments other than the path's own go to ``idle_stages``: ``drop_at``, ``how``,
    ``reset_on_send``, ``max_idle_s``, ``rungs``, ``heartbeats``, ``keepers_die`` ...
    """
    stages = [handshake_stage(headers=headers), echo or echo_stage(headers=headers)]
    stages.extend(idle_stages(headers=headers, **idle))  # type: ignore[arg-type]
    return PathResult(
        name=name,
        url=url or _url(name),
        stages=stages,
        fingerprints=list(fingerprints),
    )


_FAILURE_MESSAGES: dict[str, str] = {
    "dns": f"cannot resolve '{HOST}': Name or service not known",
    "refused": f"connection refused by {HOST}:443",
    "timeout": f"TCP connect to {HOST}:443 timed out",
    "tls": f"TLS certificate of {HOST} rejected: certificate has expired",
    "upgrade_not_performed": "upgrade not performed: missing Upgrade header",
    "reset": "connection closed during the upgrade",
    "other": f"cannot connect to {HOST}:443: [Errno 101] Network is unreachable",
}


def failed_handshake_path(
    name: str = "direct",
    reason: HandshakeFailureReason = "refused",
    status: int | None = None,
    *,
    message: str | None = None,
    url: str | None = None,
) -> PathResult:
    """A path whose first handshake failed; the runner then stops that path."""
    if reason == "http_status":
        text = message or f"server answered the upgrade with HTTP {status}"
    else:
        text = message or _FAILURE_MESSAGES[reason]
    timings = {"dns_s": None, "tcp_s": None, "tls_s": None}
    if reason not in ("dns",):
        timings["dns_s"] = 0.0004
    if reason in ("tls", "http_status", "upgrade_not_performed", "reset"):
        timings["tcp_s"] = 0.0003
    headers = {"content-type": "text/html"} if reason == "http_status" else {}
    handshake = Handshake(
        ok=False,
        status=status,
        headers=headers,
        failure=HandshakeFailure(reason=reason, message=text, status=status),
        **timings,
    )
    record = ConnectionRecord(
        id="handshake-1",
        role="handshake",
        opened_at=0.0,
        handshake=handshake,
        ending=Ending(kind="handshake_failed", age_s=0.0, idle_s=0.0, detail=reason),
    )
    stage = StageResult(
        name="handshake",
        started_at=0.0,
        duration_s=0.012,
        connections=[record],
        loop_lag=loop_lag(),
    )
    return PathResult(name=name, url=url or _url(name), stages=[stage])


def _url(name: str) -> str:
    if name == "direct":
        return f"wss://{HOST}/ws"
    return f"wss://{name}.{HOST}/ws"


def observations(*paths: PathResult, interrupted: bool = False) -> Observations:
    """One run over ``paths``; its duration is the longest path's."""
    duration = max(
        (s.started_at + s.duration_s for p in paths for s in p.stages),
        default=0.0,
    )
    return Observations(
        started_at=STARTED_AT,
        duration_s=round(duration, 3),
        paths=list(paths),
        interrupted=interrupted,
    )


# --- a catalogue of runs, one per rule outcome (shared by the schema tests) ------------------


def catalogue() -> dict[str, Callable[[], Observations]]:
    """Named observation sets covering every rule and culprit the rules can reach."""
    runs: dict[str, Callable[[], Observations]] = {
        "healthy": lambda: observations(idle_path()),
        "fin-60": lambda: observations(idle_path(drop_at=60.0)),
        "fin-60-nginx": lambda: observations(idle_path(drop_at=60.0, fingerprints=[NGINX])),
        "rst-60": lambda: observations(idle_path(drop_at=60.0, how="reset")),
        "close-frame-45": lambda: observations(idle_path(drop_at=45.0, how="close_frame")),
        "black-hole": lambda: observations(idle_path(drop_at=11.5, how="silent")),
        "black-hole-rst": lambda: observations(
            idle_path(drop_at=11.5, how="silent", reset_on_send=True)
        ),
        "lifetime-5": lambda: observations(idle_path(drop_at=5.0, keepers_die=True)),
        "pings-ignored": lambda: observations(idle_path(drop_at=60.0, heartbeats_die=True)),
        "one-way-traffic": lambda: observations(idle_path(drop_at=60.0, traffic_dies=True)),
        "compare-proxy": lambda: observations(
            idle_path("direct", until=horizon_for(60.0)), idle_path("via-proxy", drop_at=60.0)
        ),
        "compare-server": lambda: observations(
            idle_path("direct", drop_at=60.0), idle_path("via-proxy", drop_at=60.1)
        ),
        "compare-cdn": lambda: observations(
            idle_path("direct", until=horizon_for(100.0)),
            idle_path("via-proxy", drop_at=100.0, fingerprints=[CLOUDFLARE]),
        ),
        "compare-direct-unreachable": lambda: observations(
            failed_handshake_path("direct", "refused"), idle_path("via-proxy", drop_at=60.0)
        ),
        "server-heartbeat": lambda: observations(
            idle_path(max_idle_s=30.0, server_ping_interval_s=5.0)
        ),
        "lossy-echo": lambda: observations(idle_path(max_idle_s=30.0, echo=echo_stage(lost=3))),
        "stalled-echo": lambda: observations(
            idle_path(max_idle_s=30.0, echo=echo_stage(max_ms=1900.0))
        ),
        "probe-lag": lambda: observations(idle_path(drop_at=11.5, how="silent", lag_ms=900.0)),
        "interrupted-early": lambda: observations(
            idle_path(until=30.0, interrupted=True), interrupted=True
        ),
        "interrupted-after-drop": lambda: observations(
            idle_path(drop_at=20.0, until=22.5, interrupted=True), interrupted=True
        ),
        "no-paths": lambda: observations(),
    }
    for reason in ("dns", "refused", "timeout", "tls", "upgrade_not_performed", "reset", "other"):
        runs[f"handshake-{reason}"] = lambda r=reason: observations(failed_handshake_path(reason=r))
    for status in (200, 400, 401, 403, 404, 426, 429, 503, 505):
        runs[f"handshake-http-{status}"] = lambda s=status: observations(
            failed_handshake_path(reason="http_status", status=s)
        )
    return runs

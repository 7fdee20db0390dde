"""The rules: each declares its code, title, the stages it needs and the findings it reports.

A rule is a pure function from observations to judgements (a finding, and for problems a
candidate verdict). Adding a culprit is adding a rule here, its findings to ``catalogue``, its
judgement kind to ``precedence`` and its facts to ``knowledge``. The engine checks that a rule
reports only the findings it declares.
"""

from __future__ import annotations

from wsdoctor.diagnosis.catalogue import CATALOGUE
from wsdoctor.diagnosis.rules.base import Judgement, Rule
from wsdoctor.diagnosis.rules.capacity import judge_capacity
from wsdoctor.diagnosis.rules.closes import judge_refused_opens, judge_server_closes
from wsdoctor.diagnosis.rules.handshake import judge_handshake
from wsdoctor.diagnosis.rules.health import (
    judge_healthy,
    judge_instability,
    judge_probe_lag,
    judge_server_pings,
)
from wsdoctor.diagnosis.rules.host import judge_host
from wsdoctor.diagnosis.rules.idle import judge_idle
from wsdoctor.diagnosis.rules.limits import judge_message_rate, judge_message_size, judge_stages_ok
from wsdoctor.diagnosis.rules.watch import judge_watch

__all__ = ["RULES", "Judgement", "Rule"]

_WATCH_FINDINGS = tuple(key for key in CATALOGUE if key.startswith("watch_"))

RULES: tuple[Rule, ...] = (
    Rule(
        "handshake",
        "Opening handshake",
        ("handshake",),
        judge_handshake,
        (
            "handshake_rejected",
            "handshake_rejected.redirect",
            "handshake_rejected.tls_on_plain_port",
            "handshake_rejected.not_http",
            "tls_error",
            "rate_limit.handshake",
            "server_limits.handshake",
            "upgrade_blocked",
            "unreachable",
            "unreachable.gateway",
        ),
    ),
    Rule(
        "idle",
        "Idle drops and where they happen",
        ("idle", "heartbeat"),
        judge_idle,
        (
            "lifetime_cap",
            "nat_firewall_idle_drop",
            "server_idle_timeout",
            "proxy_idle_timeout",
            "proxy_idle_timeout.unplaced",
            "proxy_idle_timeout.known",
            "cdn_idle_release",
            "cdn_idle_release.known",
            "pings_ignored",
            "one_way_traffic",
            "mixed_idle_timeouts",
            "idle_drops_unplaced",
        ),
    ),
    Rule(
        "server_closes",
        "Connections the server ends on purpose",
        (),
        judge_server_closes,
        (
            "closed_on_open.server_limits",
            "closed_on_open.restart",
            "closed_on_open.handshake_rejected",
            "server_closed",
            "server_closed.restart",
            "protocol_error",
        ),
    ),
    Rule(
        "refused_opens",
        "Probe connections the server refused",
        (),
        judge_refused_opens,
        ("connections_refused", "connections_refused.rate_limit"),
    ),
    Rule("healthy", "Idle connections survive", ("idle",), judge_healthy, ("idle_ok",)),
    Rule(
        "server_heartbeat",
        "Server heartbeat",
        ("echo", "idle"),
        judge_server_pings,
        ("server_heartbeat", "server_push"),
    ),
    Rule("instability", "Path stability", (), judge_instability, ("network_instability",)),
    Rule(
        "message_size",
        "Message size limit",
        ("size",),
        judge_message_size,
        ("message_size_limit", "size_first_message_closed", "size_ok"),
    ),
    Rule(
        "message_rate",
        "Message rate limit",
        ("rate",),
        judge_message_rate,
        ("rate_limit", "burst_closed", "rate_ok"),
    ),
    Rule("stages_ok", "Requested stages pass", (), judge_stages_ok, ("stages_ok",)),
    Rule("probe_lag", "The probe is not the fault", (), judge_probe_lag, ("probe_stalled",)),
    Rule(
        "capacity",
        "Concurrent connection limits",
        ("capacity",),
        judge_capacity,
        (
            "server_limits.turned_away",
            "server_limits.stopped_accepting",
            "server_limits.shed",
            "connection_rate_limit",
            "client_limit_reached",
            "client_limit_reached.ports",
            "capacity_held",
            "server_not_recovered",
            "reconnect_storm",
            "reconnect_storm.weathered",
        ),
    ),
    Rule(
        "host",
        "Host limits on connections",
        (),
        judge_host,
        (
            "host_nofile",
            "host_file_max",
            "host_conntrack_max",
            "host_nr_open",
            "host_accept_queue",
            "host_local_ports",
            "host_conntrack_timeout",
            "host_tcp_keepalive",
            "host_unreadable",
            "host_capacity",
            "host_capacity.target_ok",
            "host_capacity.ok",
        ),
    ),
    Rule(
        "watch",
        "Drops seen by wsdoctor watch",
        (),
        judge_watch,
        (*_WATCH_FINDINGS, "probe_stalled"),
    ),
)

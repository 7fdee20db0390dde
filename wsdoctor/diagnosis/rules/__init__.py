"""The rules: each declares its code, title and the stages it needs, and judges observations.

A rule is a pure function from observations to judgements (a finding, and for problems a
candidate verdict). Adding a culprit is adding a rule here and its facts to ``knowledge``.
"""

from __future__ import annotations

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

RULES: tuple[Rule, ...] = (
    Rule("handshake", "Opening handshake", ("handshake",), judge_handshake),
    Rule("idle", "Idle drops and where they happen", ("idle", "heartbeat"), judge_idle),
    Rule("server_closes", "Connections the server ends on purpose", (), judge_server_closes),
    Rule("refused_opens", "Probe connections the server refused", (), judge_refused_opens),
    Rule("healthy", "Idle connections survive", ("idle",), judge_healthy),
    Rule("server_heartbeat", "Server heartbeat", ("echo", "idle"), judge_server_pings),
    Rule("instability", "Path stability", (), judge_instability),
    Rule("message_size", "Message size limit", ("size",), judge_message_size),
    Rule("message_rate", "Message rate limit", ("rate",), judge_message_rate),
    Rule("stages_ok", "Requested stages pass", (), judge_stages_ok),
    Rule("probe_lag", "The probe is not the fault", (), judge_probe_lag),
    Rule("capacity", "Concurrent connection limits", ("capacity",), judge_capacity),
    Rule("host", "Host limits on connections", (), judge_host),
    Rule("watch", "Drops seen by wsdoctor watch", (), judge_watch),
)

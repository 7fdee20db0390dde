"""The rules: each declares its code, title and the stages it needs, and judges observations.

A rule is a pure function from observations to judgements (a finding, and for problems a
candidate verdict). Adding a culprit is adding a rule here and its facts to ``knowledge``.
"""

from __future__ import annotations

from wsdoctor.diagnosis.rules.base import Judgement, Rule
from wsdoctor.diagnosis.rules.closes import judge_server_closes
from wsdoctor.diagnosis.rules.handshake import judge_handshake
from wsdoctor.diagnosis.rules.health import (
    judge_healthy,
    judge_instability,
    judge_probe_lag,
    judge_server_pings,
)
from wsdoctor.diagnosis.rules.idle import judge_idle

__all__ = ["RULES", "Judgement", "Rule"]

RULES: tuple[Rule, ...] = (
    Rule("handshake", "Opening handshake", ("handshake",), judge_handshake),
    Rule("idle", "Idle drops and where they happen", ("idle", "heartbeat"), judge_idle),
    Rule("server_closes", "Connections the server ends on purpose", (), judge_server_closes),
    Rule("healthy", "Idle connections survive", ("idle",), judge_healthy),
    Rule("server_heartbeat", "Server heartbeat", ("echo", "idle"), judge_server_pings),
    Rule("instability", "Path stability", ("echo",), judge_instability),
    Rule("probe_lag", "The probe is not the fault", (), judge_probe_lag),
)

"""A real stateful firewall (Linux conntrack + nftables) forgetting idle flows in silence."""

from __future__ import annotations

from labkit import probe_urls, tolerance
from netns import conntrack_black_hole


def test_conntrack_black_hole_is_a_silent_network_drop() -> None:
    with conntrack_black_hole(timeout_s=3) as url:
        run = probe_urls({"direct": url}, max_idle=10.0)
    verdict = run.verdict
    assert verdict.culprit == "nat_firewall_idle_drop"
    assert verdict.hop == "network"
    # conntrack's timers tick in whole jiffies and its expiry is checked lazily, so its
    # "3 s" is itself approximate: hold wsdoctor to the usual max(0.5 s, 5 %).
    assert abs(verdict.idle_timeout_s - 3.0) <= tolerance(3.0)
    assert "silent" in run.endings("direct")

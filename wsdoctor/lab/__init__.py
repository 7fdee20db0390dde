"""Lab tools for reproducing WebSocket drops on loopback: a fault-injecting TCP proxy."""

from wsdoctor.lab.faultproxy import FaultConfig, FaultProxy

__all__ = ["FaultConfig", "FaultProxy"]

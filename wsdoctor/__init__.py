"""wsdoctor: finds out why WebSocket connections drop, and proves it."""

__version__ = "0.1.0"

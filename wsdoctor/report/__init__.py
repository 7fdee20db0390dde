"""Reporters: render one run's observations and diagnosis as terminal text or JSON.

Import the reporter you need (``wsdoctor.report.json_report`` or ``wsdoctor.report.terminal``);
this package imports neither, so the JSON path never pays for importing rich.
"""

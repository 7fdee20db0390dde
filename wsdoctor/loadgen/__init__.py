"""Load generators beyond one asyncio process: ``wsdoctor capacity --engine locust``.

Only ``engine.py`` is imported by wsdoctor's own (asyncio) process; the other modules run in
Locust's gevent processes, which patch the standard library when Locust is imported.
"""

"""Real Apache httpd and Caddy on loopback, beside ``realproxies``' nginx and HAProxy.

Same shape as ``realproxies.nginx``: a configuration written into the test's ``tmp_path`` on a
free loopback port, the proxy in the foreground, stopped afterwards by its own process id. Used
by ``test_lint_real.py``: the files these write are what ``wsdoctor lint`` reads, and a probe
through the running proxy measures what the lint predicts.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from labkit import HOST, require_binary
from realproxies import RealProxy, _running, _with_version

APACHE_MODULES = Path("/usr/lib/apache2/modules")


def apache_conf(root: Path, port: int, backend_port: int, timeout_s: int) -> Path:
    """Write an httpd.conf: ``ProxyPass / ... upgrade=websocket`` with core ``Timeout``."""
    user = ""
    if os.geteuid() == 0:
        user = "User nobody\nGroup nogroup\n"
    modules = "".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so\n"
        for name in ("mpm_event", "authz_core", "proxy", "proxy_http")
    )
    conf = root / "httpd.conf"
    conf.write_text(
        f"""ServerName localhost
ServerRoot {root}
{modules}DefaultRuntimeDir {root}
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
LogLevel info
Listen {HOST}:{port}
{user}Timeout {timeout_s}

<VirtualHost {HOST}:{port}>
    ProxyPass "/" "http://127.0.0.1:{backend_port}/" upgrade=websocket
</VirtualHost>
"""
    )
    return conf


def apache(
    tmp_path: Path, backend_port: int, *, timeout_s: int = 3
) -> AbstractAsyncContextManager[RealProxy]:
    """Apache httpd (event MPM) as a reverse proxy; the core ``Timeout`` times the tunnel."""
    binary = require_binary("apache2")
    root = tmp_path / "apache"
    root.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # workers run as nobody and open nothing under root's tmp dirs
        os.chmod(root, 0o755)

    def launch(port: int) -> tuple[list[str], list[Path]]:
        conf = apache_conf(root, port, backend_port, timeout_s)
        return [binary, "-DFOREGROUND", "-f", str(conf), "-d", str(root)], [root / "error.log"]

    return _with_version(_running("apache", tmp_path, launch, forward=False), binary, "-v")


def caddy_env(root: Path) -> list[str]:
    """``env`` arguments that keep Caddy's data and config under ``root``."""
    return [
        "/usr/bin/env",
        f"HOME={root}",
        f"XDG_DATA_HOME={root}/data",
        f"XDG_CONFIG_HOME={root}/config",
    ]


def caddyfile(root: Path, port: int, backend_port: int, read_timeout_s: int) -> Path:
    """Write a Caddyfile: ``reverse_proxy`` with ``transport http { read_timeout }``."""
    path = root / "Caddyfile"
    path.write_text(
        f"""{{
	admin off
	auto_https off
}}

http://{HOST}:{port} {{
	reverse_proxy 127.0.0.1:{backend_port} {{
		transport http {{
			read_timeout {read_timeout_s}s
		}}
	}}
}}
"""
    )
    return path


def caddy(
    tmp_path: Path, backend_port: int, *, read_timeout_s: int = 3
) -> AbstractAsyncContextManager[RealProxy]:
    """Caddy as a reverse proxy; ``read_timeout`` is reset only by backend-to-client bytes."""
    binary = require_binary("caddy")
    root = tmp_path / "caddy"
    root.mkdir(exist_ok=True)

    def launch(port: int) -> tuple[list[str], list[Path]]:
        path = caddyfile(root, port, backend_port, read_timeout_s)
        argv = [*caddy_env(root), binary, "run", "--config", str(path), "--adapter", "caddyfile"]
        return argv, []

    return _with_version(_running("caddy", tmp_path, launch, forward=False), binary, "version")


def validate(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a proxy's own configuration check (``nginx -t``, ``haproxy -c``...)."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True

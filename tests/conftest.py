"""Make the tests' helper modules importable; fixtures several test files share."""

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wsdoctor.demo import free_port  # noqa: E402 - after the path is set


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """A real `wsdoctor serve` process on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert f":{port}/" in line, line
    yield f"ws://127.0.0.1:{port}/"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0

"""Running the ``affectkit`` command line as users do (a child process in the repository
root), and a free loopback port for the servers and process groups tests start."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "affectkit", *args]


def run_ok(*args: str, timeout: int = 900, env: dict[str, str] | None = None) -> str:
    """Run the CLI (in ``env`` if given); returns stdout, then stderr."""
    result = subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

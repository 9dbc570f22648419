"""Running the ``affectkit`` command line as users do (a child process in the repository
root), a plugin distribution written to disk for those processes, and a free loopback
port for the servers and process groups tests start."""

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


def plugin_distribution(folder: Path, distribution: str, module: str, source: str) -> Path:
    """A one-module distribution with an ``affectkit`` entry point named after ``module``,
    as ``pip install`` would leave it; put ``folder`` on a child's ``PYTHONPATH`` to load it."""
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[affectkit]\n{module.removesuffix('_plugin')} = {module}\n")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

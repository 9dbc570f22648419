"""SHA-256 digests of files: checkpoints and weights cards record them, and every load checks
them, so a damaged or altered file is refused rather than used."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in blocks (weights files are megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

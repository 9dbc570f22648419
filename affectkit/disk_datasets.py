"""What the datasets read from a folder on disk share: their path options, the check of
their root folder, and the messages about files they skip or find twice."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from affectkit.errors import DatasetError


def _resolve(path: Path) -> Path:
    """Resolved where the recipe is read, so workers with another working directory find it."""
    return path.expanduser().resolve()


#: A path option, made absolute (``~`` expanded) when the recipe is read.
ResolvedPath = Annotated[Path, AfterValidator(_resolve)]


def check_root(dataset: str, root: Path) -> None:
    """Raise unless ``root`` is an existing folder; the message names ``dataset``."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"{dataset}: root {str(root)!r} {what}")


def shown(items: list[str], limit: int = 20) -> str:
    """The first ``limit`` items joined by commas, and how many more there are."""
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def warn_skipped(dataset: str, what: str, items: list[str]) -> None:
    """Warn that ``dataset`` skipped ``items``: ``"<dataset>: skipped 2 <what>: a, b"``.

    Called from a dataset's cached index, so the warning points at the caller of the
    method that built the index.
    """
    warnings.warn(f"{dataset}: skipped {len(items)} {what}: {shown(items)}", stacklevel=4)


def found_twice(dataset: str, what: str, root: Path, first: Path, second: Path) -> DatasetError:
    """The error for ``what`` (``"scan F0001_..."``) found at two paths under ``root``."""
    return DatasetError(
        f"{dataset}: {what} appears twice: {first.relative_to(root)} and "
        f"{second.relative_to(root)}; keep one copy under {str(root)!r}"
    )

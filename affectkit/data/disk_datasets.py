"""What the datasets read from a folder on disk share: their path options, the check of
their root folder, walking it, subject ids like ``F0001``, and the messages about files
they skip or find twice. Public for plugin authors."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from affectkit.errors import DatasetError
from affectkit.interfaces import Sample

Files = TypeVar("Files")


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


#: a sex letter and a number: BU-3DFE's F0001, BU-4DFE's M042
_SUBJECT = re.compile(r"^([FM])0*(\d{1,4})$", re.I)


def subject_id(text: str, digits: int) -> str | None:
    """``f1``, ``F0001`` -> ``F0001`` (``digits`` wide); ``None`` if not a sex letter and a number."""
    match = _SUBJECT.match(text.strip())
    if match is None or len(str(int(match[2]))) > digits:
        return None
    return f"{match[1].upper()}{int(match[2]):0{digits}d}"


def subject_ids(texts: list[str], digits: int, dataset: str, examples: str) -> list[str]:
    """:func:`subject_id` of each text; a ``ValueError`` naming ``dataset`` and ``examples``
    (``"F0001 or M0044"``) for the first that is not a subject id."""
    out = []
    for text in texts:
        subject = subject_id(text, digits)
        if subject is None:
            raise ValueError(f"{text!r} is not a {dataset} subject id like {examples}")
        out.append(subject)
    return out


def scans_by_name(
    dataset: str, root: Path, files: Iterable[Path], parse: Callable[[str], dict[str, Any] | None], key: Callable[[dict[str, Any]], str], expected: str
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """``files`` by the key of what their names say (``parse`` of a file's stem, ``None``
    for a name that is not the dataset's): files of other names are skipped with one
    warning (``expected`` says what names look like), two files of one key are an error
    naming both."""
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    unparsed: list[str] = []
    for path in files:
        info = parse(path.stem)
        if info is None:
            unparsed.append(str(path.relative_to(root)))
            continue
        name = key(info)
        if name in found:
            raise found_twice(dataset, f"scan {name}", root, found[name][0], path)
        found[name] = (path, info)
    if unparsed:
        warn_skipped(dataset, expected, unparsed)
    return found


def chosen_subjects(dataset: str, root: Path, found: set[str], asked: list[str] | None) -> set[str]:
    """The subjects a dataset keeps: ``asked`` (its ``subjects`` option), or all it ``found``
    under ``root`` when none are asked for; a subject asked for but not found is a
    :class:`DatasetError` naming it and what there is."""
    if asked is None:
        return found
    missing = sorted(set(asked) - found)
    if missing:
        raise DatasetError(f"{dataset}: subject(s) {', '.join(missing)} not found under {str(root)!r}; found: {shown(sorted(found)) or 'none'}")
    return set(asked)


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following symbolic links to folders (each folder once)."""
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


@dataclass(frozen=True)
class SampleIndex(Generic[Files]):
    """A disk dataset's samples by key, each with the files it is read from (``Files``:
    whatever the dataset needs, e.g. a scan and its landmark file): what ``samples()``,
    ``load()`` and the error for an unknown sample share."""

    dataset: str
    root: Path
    entries: dict[str, tuple[Sample, Files]]

    def samples(self) -> list[Sample]:
        return [sample for sample, _ in self.entries.values()]

    def find(self, sample: Sample) -> tuple[Sample, Files]:
        """The indexed sample with ``sample.key`` and its files; a :class:`DatasetError`
        naming the dataset and its root for a key it does not hold (with these options)."""
        entry = self.entries.get(sample.key)
        if entry is None:
            raise DatasetError(f"{self.dataset}: no sample {sample.key!r} under {str(self.root)!r} with these options")
        return entry

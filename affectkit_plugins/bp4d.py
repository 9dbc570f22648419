"""The ``bp4d`` dataset: BP4D-Spontaneous 4D sequences, one per subject and task.

*Unconfirmed* layout (BP4D cannot be downloaded here): one mesh file per frame, in
``<root>/<subject>/<task>/<frame>.obj`` (``F001/T1/0001.obj``). The reader is tolerant:
it searches ``root`` recursively and takes the subject (``F001``, ``M012``), the task
(``T1`` .. ``T8``) and the frame number (the last all-digit token of the file name) from
any part of the path, so ``F001_T1/F001_T1_0001.obj`` works as well.

Expressions are spontaneous, so labels come per task (:data:`TASK_LABELS`, following
the tasks of the BP4D paper); action units per frame come from optional CSV files under
``au_dir`` (*unconfirmed* layouts, as BP4D's AU coding is distributed):

* occurrence, one file per sequence, ``F001_T1.csv``: a header row of ``frame`` (or the
  first column) and AU columns (``AU12``, ``12``), one row per frame, 1 present, 0 absent,
  9 not coded;
* intensity (where present), one file per sequence and AU, ``F001_T1_AU12.csv``: rows of
  ``frame,intensity`` without a header, 0-5 (FACS A-E as 1-5), 9 not coded. Where a frame
  has both, the intensity (as 0..1) gives the AU's strength.

Each frame's label is :mod:`affectkit.data.action_units`'s ``{AU: (strength, strength)}``: BP4D
codes no side.
"""

from __future__ import annotations

import csv
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from affectkit import hookimpl
from affectkit.data.disk_datasets import SampleIndex, check_root, chosen_subjects, walk_files, warn_skipped
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import load_mesh
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")

#: BP4D's eight tasks -> the emotion each was designed to elicit.
TASK_LABELS: dict[str, str] = {
    "T1": "happiness",  # amusement: talking to the experimenter, joke
    "T2": "sadness",  # watching a documentary of a real emergency
    "T3": "surprise",  # startle: sudden burst of sound
    "T4": "embarrassment",  # improvising a silly song
    "T5": "fear",  # nervous anticipation of a threat (dart throwing)
    "T6": "pain",  # cold pressor: hand in ice water
    "T7": "anger",  # insulted by the experimenter
    "T8": "disgust",  # smelling an unpleasant odour
}

_SUBJECT = re.compile(r"^[FM]\d{3}$", re.I)
_TASK = re.compile(r"^T\d{1,2}$", re.I)
_TOKENS = re.compile(r"[_\-\s.]+")
_AU_COLUMN = re.compile(r"^(?:AU)?\s*0*(\d+)$", re.I)


def locate(relative: Path) -> tuple[str, str, int] | None:
    """``F001/T1/0001.obj`` -> ``("F001", "T1", 1)``; ``None`` when a part is missing."""
    tokens = [t for part in (*relative.parent.parts, relative.stem) for t in _TOKENS.split(part) if t]
    subject = next((t.upper() for t in tokens if _SUBJECT.match(t)), None)
    task = next((t.upper() for t in tokens if _TASK.match(t)), None)
    digits = [t for t in _TOKENS.split(relative.stem) if t.isdigit()]
    if subject is None or task is None or not digits:
        return None
    return subject, task, int(digits[-1])


def select_frames(count: int, most: int | None) -> list[int]:
    """Indices of at most ``most`` evenly spaced frames out of ``count``, first and last kept."""
    if most is None or most >= count:
        return list(range(count))
    if most == 1:
        return [0]
    span = count - 1
    return [(2 * i * span + (most - 1)) // (2 * (most - 1)) for i in range(most)]


def read_au_csv(path: Path) -> dict[int, dict[str, int]]:
    """Read a per-frame action-unit CSV: ``{frame: {"AU1": 0, "AU12": 1, ...}}``.

    *Unconfirmed* format: a header row; the frame column is the one whose header contains
    ``frame`` (else the first); AU columns are headed ``AU12``, ``12`` or ``AU012``; other
    columns are ignored. Values are kept as written (BP4D codes 1 present, 0 absent, 9 not
    coded); empty cells are left out.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read action-unit CSV: {exc}") from None
    if not rows:
        raise DatasetError(f"{path}: empty action-unit CSV (expected a header row of frame and AU columns)")
    header = [cell.strip() for cell in rows[0]]
    frame_col = next((i for i, name in enumerate(header) if "frame" in name.lower()), 0)
    units = {i: f"AU{int(m[1])}" for i, name in enumerate(header) if i != frame_col and (m := _AU_COLUMN.match(name))}
    if not units:
        raise DatasetError(f"{path}: line 1: no action-unit columns (headers like AU12 or 12) in {header}")
    out: dict[int, dict[str, int]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            frame = int(float(row[frame_col]))
            codes = {name: int(float(row[i])) for i, name in units.items() if i < len(row) and row[i].strip()}
        except (ValueError, IndexError):
            raise DatasetError(f"{path}: line {line}: expected a frame number and integer AU codes, got {row}") from None
        out[frame] = codes
    return out


_INTENSITY_FILE = re.compile(r"^(?P<sequence>[FM]\d{3}_T\d{1,2})_AU0*(?P<code>\d+)$", re.I)
#: the value BP4D writes for a frame it did not code
NOT_CODED = 9
INTENSITY_MAX = 5


def read_au_intensity(path: Path) -> dict[int, int]:
    """Read a per-AU intensity CSV: ``{frame: intensity}`` (0-5; 9, not coded, kept)."""
    try:
        rows = list(csv.reader(path.open(newline="", encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read action-unit intensity CSV: {exc}") from None
    out: dict[int, int] = {}
    for line, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) < 2:
                raise ValueError
            frame, value = int(float(row[0])), int(float(row[1]))
            if not (0 <= value <= INTENSITY_MAX or value == NOT_CODED):
                raise ValueError
        except ValueError:
            raise DatasetError(f"{path}: line {line}: expected 'frame,intensity' with an intensity 0-5 (9: not coded), got {row}") from None
        out[frame] = value
    return out


def frame_label(occurrence: dict[str, int] | None, intensities: dict[int, int]) -> dict[int, tuple[float, float]] | None:
    """One frame's AU label from its occurrence codes and intensities (``None``: not coded)."""
    label: dict[int, tuple[float, float]] = {}
    for name, value in (occurrence or {}).items():
        if value in (0, 1):
            label[int(name[2:])] = (float(value), float(value))
    for code, value in intensities.items():
        if value != NOT_CODED:
            label[code] = (value / INTENSITY_MAX,) * 2
    return label or None


class BP4DDataset(Dataset):
    """BP4D-Spontaneous 4D sequences (per-frame meshes), labelled by task; optional per-frame AU codes.

    One sample per subject and task, key ``F001_T1``. Labels come from ``task_labels``
    (default :data:`TASK_LABELS`: T1 happiness, T2 sadness, T3 surprise, T4
    embarrassment, T5 fear, T6 pain, T7 anger, T8 disgust); tasks missing from it are
    skipped, and ``basic_only`` keeps the six basic emotions only. Sequences carry
    ``frame_numbers`` and, with ``au_dir``, ``action_units`` (one dict per frame, ``None``
    where a frame is not coded) in their metadata; each frame's mesh has its own
    ``frame`` and ``action_units``. Attributes: ``task``, ``sex`` (from the subject id),
    ``frames`` (frames loaded), ``frames_total``.
    """

    path_option = "root"

    class Options(Options):
        root: ResolvedPath = Field(description="folder holding the per-frame meshes (searched recursively)")
        subjects: list[str] | None = Field(None, description="subject ids to keep (e.g. F001); all when unset")
        task_labels: dict[str, str] = Field(default_factory=lambda: dict(TASK_LABELS), description="task (T1..T8) -> label")
        basic_only: bool = Field(False, description="keep only tasks labelled with one of the six basic emotions")
        suffix: str = Field(".obj", description="mesh file suffix of the frames (any format load_mesh reads)")
        max_frames: int | None = Field(None, ge=1, description="load at most this many evenly spaced frames per sequence")
        fps: float = Field(25.0, gt=0, description="frame rate of the recordings")
        au_dir: ResolvedPath | None = Field(
            None, description="folder of AU CSV files, searched recursively: occurrence per sequence (F001_T1.csv), intensity per sequence and AU (F001_T1_AU12.csv)"
        )

        @field_validator("subjects")
        @classmethod
        def upper(cls, value: list[str] | None) -> list[str] | None:
            return None if value is None else [s.strip().upper() for s in value]

        @field_validator("task_labels")
        @classmethod
        def tasks(cls, value: dict[str, str]) -> dict[str, str]:
            out = {task.strip().upper(): label.strip() for task, label in value.items()}
            bad = [task for task in out if not _TASK.match(task)]
            if bad:
                raise ValueError(f"tasks must be named T1..T8, got {bad}")
            if not out or not all(out.values()):
                raise ValueError("give a non-empty label for at least one task")
            return out

        @field_validator("suffix")
        @classmethod
        def dotted(cls, value: str) -> str:
            value = value.strip().lower()
            return value if value.startswith(".") else f".{value}"

    options: Options

    @property
    def labels(self) -> tuple[str, ...]:
        used = set(self._tasks.values())
        return tuple(label for label in SIX if label in used) + tuple(sorted(used - set(SIX)))

    def samples(self) -> list[Sample]:
        return self._index.samples()

    def frame_paths(self, sample: Sample) -> list[tuple[int, Path]]:
        """``(frame number, path)`` of the frames :meth:`load` reads for ``sample``, in order."""
        known, frames = self._index.find(sample)
        return [frames[i] for i in select_frames(len(frames), self.options.max_frames)]

    def load(self, sample: Sample) -> MeshSequence:
        known, frames = self._index.find(sample)
        chosen = select_frames(len(frames), self.options.max_frames)
        codes, intensities = self._action_units(known)
        meshes: list[Mesh] = []
        per_frame: list[dict[int, tuple[float, float]] | None] = []
        for index in chosen:
            number, path = frames[index]
            mesh = load_mesh(path)
            label = frame_label(codes.get(number), {au: values[number] for au, values in intensities.items() if number in values})
            mesh.metadata.update({"frame": number, "action_units": label, "subject": known.subject, "label": known.label})
            meshes.append(mesh)
            per_frame.append(label)
        step = (len(frames) - 1) / (len(chosen) - 1) if len(chosen) > 1 else 1.0
        metadata: dict[str, Any] = {
            **known.attributes,
            "label": known.label,
            "subject": known.subject,
            "frame_numbers": [frames[i][0] for i in chosen],
            "action_units": per_frame if any(per_frame) else None,
        }
        return MeshSequence(frames=meshes, fps=self.options.fps / step, metadata=metadata, source=str(frames[0][1].parent))

    # -----------------------------------------------------------------------------------

    @cached_property
    def _tasks(self) -> dict[str, str]:
        tasks = self.options.task_labels
        if self.options.basic_only:
            tasks = {task: label for task, label in tasks.items() if label in SIX}
            if not tasks:
                raise DatasetError(f"bp4d: basic_only leaves no task: task_labels {self.options.task_labels} name none of {', '.join(SIX)}")
        return tasks

    @cached_property
    def _index(self) -> SampleIndex[list[tuple[int, Path]]]:
        """Samples with their ``(frame number, path)`` frames in order."""
        o = self.options
        check_root("bp4d", o.root)
        files = [p for p in walk_files(o.root) if p.suffix.lower() == o.suffix]
        if not files:
            raise DatasetError(f"bp4d: no {o.suffix} files under {str(o.root)!r}")
        sequences: dict[tuple[str, str], dict[int, Path]] = {}
        unparsed: list[str] = []
        for path in files:
            relative = path.relative_to(o.root)
            where = locate(relative)
            if where is None:
                unparsed.append(relative.as_posix())
                continue
            subject, task, number = where
            frames = sequences.setdefault((subject, task), {})
            if number in frames:
                raise DatasetError(
                    f"bp4d: frame {number} of {subject} {task} appears twice: "
                    f"{frames[number].relative_to(o.root).as_posix()} and {relative.as_posix()}"
                )
            frames[number] = path
        if unparsed:
            warn_skipped("bp4d", f"{o.suffix} file(s) whose path names no subject (F001), task (T1) and frame number", unparsed)
        chosen = chosen_subjects("bp4d", o.root, {subject for subject, _ in sequences}, o.subjects)
        out: dict[str, tuple[Sample, list[tuple[int, Path]]]] = {}
        for (subject, task), frames in sorted(sequences.items(), key=lambda item: (item[0][0], int(item[0][1][1:]))):
            if task not in self._tasks or subject not in chosen:
                continue
            ordered = sorted(frames.items())
            attributes = {
                "task": task,
                "sex": subject[0],
                "frames": len(select_frames(len(ordered), o.max_frames)),
                "frames_total": len(ordered),
            }
            key = f"{subject}_{task}"
            out[key] = (Sample(key, self._tasks[task], subject, attributes, is_sequence=True), ordered)
        if not out:
            found = sorted({task for _, task in sequences})
            raise DatasetError(
                f"bp4d: no sequence under {str(o.root)!r} is selected: tasks found {found}, "
                f"tasks labelled {sorted(self._tasks)}, subjects={o.subjects}"
            )
        return SampleIndex("bp4d", o.root, out)

    @cached_property
    def _au_files(self) -> tuple[dict[str, Path], dict[str, dict[int, Path]]]:
        """Occurrence files by sequence key, and intensity files by sequence key and AU."""
        au_dir = self.options.au_dir
        if au_dir is None:
            return {}, {}
        if not au_dir.is_dir():
            raise DatasetError(f"bp4d: au_dir {str(au_dir)!r} is not a folder")
        occurrence: dict[str, Path] = {}
        intensity: dict[str, dict[int, Path]] = {}
        for path in walk_files(au_dir):
            if path.suffix.lower() != ".csv":
                continue
            match = _INTENSITY_FILE.match(path.stem)
            if match:
                intensity.setdefault(match["sequence"].upper(), {})[int(match["code"])] = path
            else:
                occurrence[path.stem.upper()] = path
        return occurrence, intensity

    def _action_units(self, sample: Sample) -> tuple[dict[int, dict[str, int]], dict[int, dict[int, int]]]:
        """(occurrence codes per frame, intensity per AU and frame) of ``sample``; empty without files."""
        occurrence, intensity = self._au_files
        key = sample.key.upper()
        codes = read_au_csv(occurrence[key]) if key in occurrence else {}
        return codes, {au: read_au_intensity(path) for au, path in intensity.get(key, {}).items()}


@hookimpl
def register_datasets(register):
    register("bp4d", BP4DDataset)

"""The ``bu4dfe`` dataset: BU-4DFE 3D video sequences, one VRML ``.wrl`` file per frame
(read by the ``vrml`` plugin)."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator

from affectkit import hookimpl
from affectkit.data.action_units import read_side_file
from affectkit.data.disk_datasets import SampleIndex, check_root, chosen_subjects, found_twice, subject_id, subject_ids, walk_files, warn_skipped
from affectkit.data.facs import CODES, LABELS
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample
from affectkit.render.model_inputs import sample_frames
from affectkit_plugins.bu_layout import bu_subject, loaded_samples, placeholder_attributes, write_record, write_scan
from affectkit_plugins.vrml import read_bnd, read_wrl

#: Expression folder names (lower case) -> canonical labels: BU-4DFE's words, BU-3DFE's
#: two-letter codes and the canonical labels themselves.
FOLDER_NAMES: dict[str, str] = {
    "angry": "anger", "disgust": "disgust", "disgusted": "disgust", "fear": "fear", "fearful": "fear",
    "happy": "happiness", "sad": "sadness", "surprise": "surprise", "surprised": "surprise",
    **{CODES[label].lower(): label for label in LABELS},
    **{label: label for label in LABELS},
}

#: canonical label -> the expression folder BU-4DFE names it by
EXPRESSION_FOLDERS = {
    "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy", "sadness": "Sad", "surprise": "Surprise",
}

_WORDS = re.compile(r"[^A-Za-z0-9]+")
_DIGITS = re.compile(r"\d+")


def expression_of(folder_name: str) -> str | None:
    """``Happy``, ``HA``, ``happiness``, ``F001_Happy`` -> ``happiness``; ``None`` if none."""
    words = [w.lower() for w in _WORDS.split(folder_name) if w]
    found = {FOLDER_NAMES[w] for w in words if w in FOLDER_NAMES}
    return found.pop() if len(found) == 1 else None


def subject_of(folder: Path, root: Path) -> str | None:
    """The subject of a sequence folder: the nearest folder (itself included, up to
    ``root``) named like ``F001`` or starting ``F001_``; ``None`` if there is none."""
    for part in reversed(folder.relative_to(root).parts):
        for word in _WORDS.split(part)[:1]:
            subject = subject_id(word, 3)
            if subject is not None:
                return subject
    return None


class BU4DFEDataset(Dataset):
    """BU-4DFE 3D videos: one sequence per subject and expression, one ``.wrl`` per frame.

    Layout (*unconfirmed*): ``root/F001/Happy/000.wrl``. Any folder under ``root`` that
    holds ``.wrl`` files is a sequence; its name gives the expression (``Angry``,
    ``Disgust``, ``Fear``, ``Happy``, ``Sad``, ``Surprise``, or codes like ``HA``) and the
    nearest folder named like ``F001``/``M042`` gives the subject and sex. Frames are
    ordered by the last number in their names, whatever its padding. Folders that do not
    parse are listed in a warning. ``load`` reads only the frames it returns: all, or
    ``max_frames`` evenly spaced ones (first and last included). A ``.bnd`` file beside a
    frame gives its landmarks.
    """

    path_option = "root"
    layout = "bu4dfe"
    layout_implies = {"sequences": True, "include_neutral": False}

    class Options(Options):
        root: ResolvedPath = Field(description="folder holding the BU-4DFE subject folders (searched recursively)")
        subjects: list[str] | None = Field(None, description="subject ids to keep (e.g. F001, M042); all when unset")
        max_frames: int | None = Field(None, ge=1, description="read at most this many evenly spaced frames per sequence")

        @field_validator("subjects")
        @classmethod
        def canonical(cls, value: list[str] | None) -> list[str] | None:
            return None if value is None else subject_ids(value, 3, "BU-4DFE", "F001 or M042")

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        check_root("bu4dfe", options.root)

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def samples(self) -> list[Sample]:
        return self._index.samples()

    def frame_paths(self, sample: Sample) -> list[Path]:
        """All frame files of ``sample``, in time order."""
        return [path for path, _ in self._index.find(sample)[1]]

    def load(self, sample: Sample) -> MeshSequence:
        known, files = self._index.find(sample)
        frames = [path for path, _ in files]
        chosen = range(len(frames))
        if self.options.max_frames is not None and len(frames) > self.options.max_frames:
            chosen = sample_frames(len(frames), self.options.max_frames, "uniform")
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        meshes = [self._frame(*files[i], {**metadata, "frame": i}) for i in chosen]
        return MeshSequence(frames=meshes, fps=25.0, metadata={**metadata, "frame_indices": list(chosen)},
                            source=str(frames[0].parent))

    def _frame(self, path: Path, landmarks: Path | None, metadata: dict) -> Mesh:
        mesh = read_wrl(path)
        mesh.metadata.update({**metadata, "action_units": read_side_file(path)})
        if landmarks is not None:
            mesh.landmarks = read_bnd(landmarks)
            mesh.metadata["landmark_file"] = str(landmarks)
        return mesh

    @cached_property
    def _index(self) -> SampleIndex[list[tuple[Path, Path | None]]]:
        """Samples with their frame files in time order, each with its ``.bnd`` file (when present)."""
        o = self.options
        folders: dict[Path, list[Path]] = {}
        bnd: dict[tuple[Path, str], Path] = {}
        for path in walk_files(o.root):
            suffix = path.suffix.lower()
            if suffix == ".wrl":
                folders.setdefault(path.parent, []).append(path)
            elif suffix == ".bnd":
                bnd[(path.parent, path.stem.lower())] = path
        sequences: dict[str, tuple[Path, str, str, list[Path]]] = {}
        unparsed: list[str] = []
        unnumbered: list[str] = []
        for folder, files in sorted(folders.items()):
            label, subject = expression_of(folder.name), subject_of(folder, o.root)
            if label is None or subject is None:
                unparsed.append(str(folder.relative_to(o.root)) or ".")
                continue
            numbered = [(int(_DIGITS.findall(p.stem)[-1]), p.name, p) for p in files if _DIGITS.search(p.stem)]
            unnumbered += [str(p.relative_to(o.root)) for p in files if not _DIGITS.search(p.stem)]
            if not numbered:
                continue
            key = f"{subject}_{CODES[label]}"
            if key in sequences:
                raise found_twice("bu4dfe", f"sequence {key}", o.root, sequences[key][0], folder)
            sequences[key] = (folder, label, subject, [p for _, _, p in sorted(numbered)])
        if unparsed:
            warn_skipped(
                "bu4dfe",
                "folder(s) of .wrl files that are not like F001/Happy (subject folder F/M and a number, "
                "expression folder Angry, Disgust, Fear, Happy, Sad, Surprise or a code like HA)",
                unparsed,
            )
        if unnumbered:
            warn_skipped("bu4dfe", ".wrl file(s) without a frame number", unnumbered)
        if not sequences:
            raise DatasetError(f"bu4dfe: no BU-4DFE sequences (like F001/Happy/000.wrl) under {str(o.root)!r}")
        chosen = chosen_subjects("bu4dfe", o.root, {subject for _, _, subject, _ in sequences.values()}, o.subjects)
        order = {label: i for i, label in enumerate(LABELS)}
        entries: dict[str, tuple[Sample, list[tuple[Path, Path | None]]]] = {}
        placeholders = placeholder_attributes(o.root)
        for key, (_, label, subject, paths) in sorted(sequences.items(), key=lambda kv: (kv[1][2], order[kv[1][1]])):
            if subject not in chosen:
                continue
            attributes = {"frames": len(paths)} if "sex" in placeholders else {"sex": subject[0], "frames": len(paths)}
            sample = Sample(key, label, subject, attributes, is_sequence=True)
            entries[key] = (sample, [(path, bnd.get((path.parent, path.stem.lower()))) for path in paths])
        return SampleIndex("bu4dfe", o.root, entries)


    @classmethod
    def write_layout(cls, generated: Dataset, name: str, out_dir: Path) -> Path:
        """``F001/Happy/000.wrl``, one VRML file per frame, with ``.bnd`` landmarks and
        ``.au.json`` AU labels (:mod:`affectkit_plugins.bu_layout`)."""
        for sample, sequence in loaded_samples(generated, name, "bu4dfe", 3, sequences=True):
            folder = out_dir / bu_subject(sample, 3) / EXPRESSION_FOLDERS[sample.label]
            for i, frame in enumerate(sequence.frames):
                write_scan(frame, folder / f"{i:03d}.wrl", f"affectkit {name} {sample.key} frame {i}")
        write_record(generated, name, out_dir, "bu4dfe")
        return out_dir


@hookimpl
def register_datasets(register):
    register("bu4dfe", BU4DFEDataset)

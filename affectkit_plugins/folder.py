"""The ``folder`` dataset: any meshes or mesh sequences listed in a CSV manifest.

Manifest columns: ``path,label,subject[,frame][,action_units][,attributes...]``, one row
per mesh file, ``path`` relative to the manifest's folder (``/`` or ``\\`` separators; it may
not leave that folder). Rows with a ``frame`` value are frames of a sequence: rows of the
same folder, subject and label form one sequence, ordered by frame. ``action_units`` is a
scan's (or frame's) AU label, in FACS notation (``1B+2B+12D``) or JSON (``{"12": [0.8,
0.7]}``), empty where it has none (:mod:`affectkit.data.action_units`). Every other column is an
attribute of the sample (integers and decimals are parsed, empty cells left out). This is
the layout ``affectkit synth`` writes, so a generated dataset written to disk reads back
as the same samples.
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator

from affectkit import hookimpl
from affectkit.data.action_units import parse as parse_action_units
from affectkit.data.action_units import strongest, to_json
from affectkit.data.disk_datasets import SampleIndex
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import landmark_file, load_mesh, read_landmark_file, save_mesh, write_landmark_file
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, ResolvedPath, Sample

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
NEUTRAL = "neutral"
REQUIRED = ("path", "label", "subject")
#: the optional column of AU labels
ACTION_UNITS = "action_units"
MANIFEST = "manifest.csv"
#: the columns :meth:`FolderDataset.write_layout` writes before the samples' attributes
WRITTEN = ("path", "label", "subject", "frame", ACTION_UNITS)

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else stays a string (stripped)."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


@dataclass
class _Row:
    line: int
    path: str  # normalised, relative to the manifest folder
    label: str
    subject: str
    frame: int | None
    attributes: dict[str, Any] = field(default_factory=dict)
    action_units: dict[int, tuple[float, float]] | None = None


class FolderDataset(Dataset):
    """Meshes or sequences on disk listed in a CSV manifest (path,label,subject[,frame][,action_units][,attributes...]).

    Keys are paths without suffix for single meshes (``meshes/S001/S001_HA_4``) and the
    frames' folder for sequences (``meshes/S001/S001_HA``; with the subject and label
    appended when one folder holds several sequences). Sequence attributes come from the
    first frame's row, plus ``frames`` (the number of frames) unless a column gives it;
    every frame's mesh carries its own row's attributes and ``frame``. Landmarks are read
    from a ``.lm.txt`` file beside a mesh when there is one (``metadata["landmark_names"]``).
    """

    path_option = "root"
    layout = "affectkit"

    class Options(Options):
        root: ResolvedPath | None = Field(None, description=f"folder holding {MANIFEST} (paths are relative to it)")
        manifest: ResolvedPath | None = Field(None, description="the manifest CSV itself, instead of root (paths relative to its folder)")
        labels: list[str] | None = Field(
            None, description="class order; default: the six basic emotions (+neutral) when the labels are among them, else sorted"
        )
        fps: float = Field(25.0, gt=0, description="frame rate of sequences")

        @field_validator("labels")
        @classmethod
        def distinct(cls, value: list[str] | None) -> list[str] | None:
            if value is None:
                return None
            value = [v.strip() for v in value]
            repeated = sorted({v for v in value if value.count(v) > 1})
            if repeated or not value or not all(value):
                raise ValueError(f"labels must be distinct non-empty names, got {value}")
            return value

        @model_validator(mode="after")
        def one_source(self):
            if (self.root is None) == (self.manifest is None):
                raise ValueError(f"give exactly one of root (a folder holding {MANIFEST}) or manifest (a CSV file)")
            return self

    options: Options

    def identity(self) -> dict[str, Any]:
        """The folder, or the manifest file itself where one was given instead (two
        manifests in one folder may list different people)."""
        return {"root": str(self.options.root)} if self.options.root is not None else {"manifest": str(self.options.manifest)}

    @property
    def manifest(self) -> Path:
        o = self.options
        return o.manifest if o.manifest is not None else o.root / MANIFEST

    @property
    def root(self) -> Path:
        return self.manifest.parent

    @property
    def labels(self) -> tuple[str, ...]:
        return self._index[0]

    def samples(self) -> list[Sample]:
        return self._index[1].samples()

    def paths(self, sample: Sample) -> list[Path]:
        """The mesh file(s) of ``sample``: one, or the frames of a sequence in order."""
        return [self.root / row.path for row in self._index[1].find(sample)[1]]

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        known, rows = self._index[1].find(sample)
        metadata = {**known.attributes, "label": known.label, "subject": known.subject}
        if not known.is_sequence:
            return self._mesh(rows[0], metadata)
        frames = [self._mesh(row, {**metadata, **row.attributes, "frame": row.frame}) for row in rows]
        return MeshSequence(frames=frames, fps=self.options.fps, metadata=metadata, source=str(self.root / PurePosixPath(known.key)))

    def _mesh(self, row: _Row, metadata: dict[str, Any]) -> Mesh:
        path = self.root / row.path
        mesh = load_mesh(path)
        mesh.metadata.update({**metadata, "action_units": row.action_units})
        landmarks = landmark_file(path)
        if landmarks.is_file():
            mesh.set_landmarks(*read_landmark_file(landmarks))
        return mesh

    # -----------------------------------------------------------------------------------

    @cached_property
    def _index(self) -> tuple[tuple[str, ...], SampleIndex[list[_Row]]]:
        """The labels, and the samples with their manifest rows (one, or a sequence's frames)."""
        rows, columns = self._read_manifest()
        labels = self._labels(rows)
        singles: dict[str, _Row] = {}
        groups: dict[tuple[str, str, str], list[_Row]] = {}
        for row in rows:
            if row.frame is None:
                key = str(PurePosixPath(row.path).with_suffix(""))
                if key in singles:
                    raise DatasetError(f"{self.manifest}: lines {singles[key].line} and {row.line} list the same mesh {row.path!r}")
                singles[key] = row
            else:
                folder = posixpath.dirname(row.path) or "."
                groups.setdefault((folder, row.subject, row.label), []).append(row)
        out: dict[str, tuple[Sample, list[_Row]]] = {}
        for key, row in singles.items():
            out[key] = (Sample(key, row.label, row.subject, dict(row.attributes), action_units=row.action_units), [row])
        per_folder: dict[str, int] = {}
        for folder, _, _ in groups:
            per_folder[folder] = per_folder.get(folder, 0) + 1
        for (folder, subject, label), frames in groups.items():
            frames.sort(key=lambda r: r.frame)
            for before, after in zip(frames, frames[1:]):
                if before.frame == after.frame:
                    raise DatasetError(
                        f"{self.manifest}: lines {before.line} and {after.line} both give frame {after.frame} "
                        f"of the sequence of subject {subject!r}, label {label!r} in {folder!r}"
                    )
            key = folder
            if per_folder[folder] > 1 or key in out or folder == ".":
                key = posixpath.normpath(posixpath.join(folder, f"{subject}_{label}"))
            if key in out:
                raise DatasetError(f"{self.manifest}: line {frames[0].line}: sample key {key!r} is not unique")
            attributes = dict(frames[0].attributes)
            if "frames" not in columns:
                attributes["frames"] = len(frames)
            units = strongest(row.action_units for row in frames)
            out[key] = (Sample(key, label, subject, attributes, is_sequence=True, action_units=units), frames)
        return labels, SampleIndex("folder", self.manifest, out)

    def _labels(self, rows: list[_Row]) -> tuple[str, ...]:
        found = {row.label for row in rows}
        wanted = self.options.labels
        if wanted is not None:
            unknown = {row.label: row.line for row in reversed(rows) if row.label not in wanted}
            if unknown:
                listed = ", ".join(f"{label!r} (line {line})" for label, line in sorted(unknown.items()))
                raise DatasetError(f"{self.manifest}: label(s) {listed} are not in the labels option {wanted}")
            return tuple(wanted)
        if found <= set(SIX) | {NEUTRAL}:
            return SIX + ((NEUTRAL,) if NEUTRAL in found else ())
        return tuple(sorted(found))

    def _read_manifest(self) -> tuple[list[_Row], list[str]]:
        manifest = self.manifest
        try:
            handle = manifest.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise DatasetError(f"{manifest}: cannot open the manifest: {exc.strerror or exc}") from None
        with handle:
            reader = csv.reader(handle)
            try:
                header = [cell.strip() for cell in next(reader)]
            except StopIteration:
                raise DatasetError(f"{manifest}: empty manifest; expected a header row with columns {', '.join(REQUIRED)}") from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DatasetError(f"{manifest}: line 1: cannot parse the header: {exc}") from None
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise DatasetError(
                    f"{manifest}: missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'no columns'} "
                    f"(required: {', '.join(REQUIRED)}[, frame][, attributes...])"
                )
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated or not all(header):
                raise DatasetError(f"{manifest}: line 1: column names must be distinct and non-empty, got {header}")
            rows: list[_Row] = []
            absent: list[str] = []
            try:
                for cells in reader:
                    line = reader.line_num
                    if not any(cell.strip() for cell in cells):
                        continue
                    if len(cells) > len(header):
                        raise DatasetError(f"{manifest}: line {line}: {len(cells)} values for {len(header)} columns")
                    values = dict(zip(header, (cell.strip() for cell in cells)))
                    row = self._row(values, line)
                    if not (self.root / row.path).is_file():
                        absent.append(f"line {line}: {row.path}")
                    rows.append(row)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DatasetError(f"{manifest}: line {reader.line_num}: cannot parse: {exc}") from None
        if absent:
            shown = "; ".join(absent[:20]) + (f"; and {len(absent) - 20} more" if len(absent) > 20 else "")
            raise DatasetError(f"{manifest}: {len(absent)} listed file(s) do not exist under {self.root}: {shown}")
        if not rows:
            raise DatasetError(f"{manifest}: the manifest lists no meshes")
        return rows, header

    def _row(self, values: dict[str, str], line: int) -> _Row:
        manifest = self.manifest
        for name in REQUIRED:
            if not values.get(name):
                raise DatasetError(f"{manifest}: line {line}: empty {name!r}")
        raw = values["path"]
        text = raw.replace("\\", "/")
        normal = posixpath.normpath(text)
        if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or normal == ".." or normal.startswith("../"):
            raise DatasetError(f"{manifest}: line {line}: path {raw!r} leaves the manifest's folder {self.root}")
        frame = None
        if values.get("frame"):
            try:
                frame = int(values["frame"])
            except ValueError:
                raise DatasetError(f"{manifest}: line {line}: frame must be an integer, got {values['frame']!r}") from None
        attributes = {
            name: parse_value(value) for name, value in values.items() if name not in (*REQUIRED, "frame", ACTION_UNITS) and value != ""
        }
        units = parse_action_units(values.get(ACTION_UNITS), f"{manifest}: line {line}")
        return _Row(line, normal, values["label"], values["subject"], frame, attributes, units)

    @classmethod
    def write_layout(cls, generated: Dataset, name: str, out_dir: Path) -> Path:
        """``manifest.csv`` (``path,label,subject,frame,action_units``, then the samples' own
        attributes), ``options.json`` (the generator and options that made it) and
        ``meshes/S001/S001_HA_4.ply`` (or ``meshes/S001/S001_HA/000.ply``, a frame of a
        sequence), each with its landmarks as ``.lm.txt``; the manifest."""
        samples = generated.samples()
        columns = (*WRITTEN, *dict.fromkeys(k for s in samples for k in s.attributes if k != "frames"))
        names = getattr(generated, "landmark_names", ())
        rows: list[dict[str, object]] = []

        def put(mesh: Mesh, relative: Path, sample: Sample, frame: int | str) -> None:
            path = save_mesh(mesh, out_dir / relative)
            if mesh.landmarks is not None and names:
                write_landmark_file(landmark_file(path), names, mesh.landmarks)
            units = mesh.metadata.get("action_units")
            attributes = {k: sample.attributes.get(k, "") for k in columns[len(WRITTEN) :]}
            rows.append({"path": relative.as_posix(), "label": sample.label, "subject": sample.subject, "frame": frame, ACTION_UNITS: to_json(units) if units else "", **attributes})

        for sample in samples:
            loaded = generated.load(sample)
            folder = Path("meshes") / sample.subject
            if isinstance(loaded, MeshSequence):
                for i, frame in enumerate(loaded.frames):
                    put(frame, folder / sample.key / f"{i:03d}.ply", sample, i)
            else:
                put(loaded, folder / f"{sample.key}.ply", sample, "")
        out_dir.mkdir(parents=True, exist_ok=True)
        record = {"dataset": name, "options": generated.options.model_dump(mode="json")}
        (out_dir / "options.json").write_text(json.dumps(record, indent=2) + "\n")
        manifest = out_dir / MANIFEST
        with manifest.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return manifest


@hookimpl
def register_datasets(register):
    register("folder", FolderDataset)

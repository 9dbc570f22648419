"""What the ``bu3dfe`` and ``bu4dfe`` layouts share when ``affectkit synth`` writes a
generated dataset as those datasets lay out their files (their readers read it back).

Subject ``S001`` becomes ``F0001`` or ``M0001`` (``F001``/``M001`` in BU-4DFE) by its sex.
Those names need a sex letter and an ethnicity code that generated faces may not have:
where a sample has no ``sex`` the letter is a placeholder alternating F, M by subject
number, and the ethnicity code always cycles through the codes by subject number. Both
are unrelated to the face, and ``affectkit_synthetic.json`` beside the copy (the dataset
and options that made it) lists them under ``placeholders`` so that the readers drop them.
Each mesh gets an ``.au.json`` side file with its AU label (the BU datasets have none).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from affectkit.data.action_units import write_side_file
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import save_mesh
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Sample

#: the file beside a BU-layout copy that says which generator made it
RECORD = "affectkit_synthetic.json"
#: placeholder BU-3DFE ethnicity codes, cycled by subject number
ETHNICITY_CODES = ("WH", "AE", "BL", "IN", "LA", "AM")
SEX_PLACEHOLDERS = ("F", "M")


def placeholder_attributes(root: Path) -> set[str]:
    """The attributes a BU-layout copy under ``root`` only pretends to have (none for a real dataset)."""
    try:
        record = json.loads((Path(root) / RECORD).read_text())
    except (OSError, ValueError):
        return set()
    return set(record.get("placeholders", ())) if isinstance(record, dict) else set()


def subject_number(sample: Sample) -> int:
    """``S001`` -> 1: generated subjects are numbered."""
    return int(sample.subject[1:])


def bu_subject(sample: Sample, digits: int) -> str:
    """``S001`` (sex F) -> ``F0001`` with 4 digits (BU-3DFE) or ``F001`` with 3 (BU-4DFE);
    without a sex, the placeholder letter of the subject's number."""
    number = subject_number(sample)
    sex = sample.attributes.get("sex") or SEX_PLACEHOLDERS[(number - 1) % len(SEX_PLACEHOLDERS)]
    return f"{sex}{number:0{digits}d}"


def ethnicity_code(sample: Sample) -> str:
    """The placeholder ethnicity code of a generated subject."""
    return ETHNICITY_CODES[(subject_number(sample) - 1) % len(ETHNICITY_CODES)]


def write_scan(mesh: Mesh, path: Path, title: str) -> None:
    """Write a scan in the format of ``path``'s suffix, with its title and AU side file."""
    mesh.metadata["title"] = title
    save_mesh(mesh, path)
    if mesh.metadata.get("action_units"):
        write_side_file(mesh.metadata["action_units"], path)


def loaded_samples(generated: Dataset, name: str, layout: str, digits: int, sequences: bool) -> Iterator[tuple[Sample, Mesh | MeshSequence]]:
    """Every sample of ``generated`` with its geometry, one at a time, each refused unless
    the layout holds it: subjects within ``digits`` digits, static scans or sequences as
    ``sequences`` says, no neutral sequence (a generator's first sample fails as its last would)."""
    samples = generated.samples()
    subjects = {s.subject for s in samples}
    if len(subjects) >= 10**digits:
        raise DatasetError(f"{name}: the {layout} layout numbers subjects with {digits} digits: at most {10**digits - 1} subjects, got {len(subjects)}")
    for sample in samples:
        geometry = generated.load(sample)
        if isinstance(geometry, MeshSequence) != sequences:
            held, other = ("sequences", "bu3dfe") if sequences else ("static scans", "bu4dfe")
            raise DatasetError(f"{name}: the {layout} layout holds {held}; {sample.key} is not one (write it in layout {other!r})")
        if sequences and sample.label == "neutral":
            raise DatasetError(f"{name}: BU-4DFE has no neutral sequences; leave neutral out for the {layout} layout")
        yield sample, geometry


def write_record(generated: Dataset, name: str, out_dir: Path, layout: str) -> None:
    """``affectkit_synthetic.json``: the generator, its options and the placeholder attributes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    has_sex = all("sex" in s.attributes for s in generated.samples())
    placeholders = ["ethnicity"] + ([] if has_sex else ["sex"])
    record = {"dataset": name, "layout": layout, "options": generated.options.model_dump(mode="json"), "placeholders": placeholders}
    (out_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")

"""The ``synthetic`` dataset: resolution, determinism, identities, action units, 4D, writer."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import load_mesh, read_landmark_file
from affectkit.errors import DatasetError, PluginError
from affectkit.interfaces import Sample
from affectkit.registry import registry
from affectkit_plugins.synthetic import LANDMARKS, SyntheticDataset, write_synthetic

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
L = {name: i for i, name in enumerate(LANDMARKS)}


def dataset(**options) -> SyntheticDataset:
    return registry().create("dataset", "synthetic", options)


def scans(subject: str = "S001", **options) -> dict[str, Mesh]:
    """label (or label_intensity) -> mesh for one subject, neutral included."""
    ds = dataset(include_neutral=True, **{"subjects": 3, "intensities": [1, 4], **options})
    out = {}
    for s in ds.samples():
        if s.subject == subject:
            out[s.label if s.label == "neutral" else f"{s.label}_{s.attributes['intensity']}"] = ds.load(s)
    return out


@pytest.fixture(scope="module")
def faces() -> dict[str, dict[str, Mesh]]:
    return {subject: scans(subject) for subject in ("S001", "S002", "S003")}


def lm(mesh: Mesh, name: str) -> np.ndarray:
    return mesh.landmarks[L[name]]


def check_valid(mesh: Mesh) -> None:
    assert np.isfinite(mesh.vertices).all()
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert mesh.colors.shape == mesh.vertices.shape and 0 <= mesh.colors.min() and mesh.colors.max() <= 1
    assert mesh.landmarks.shape == (len(LANDMARKS), 3) and np.isfinite(mesh.landmarks).all()


# ---------------------------------------------------------------------------------------
# Registration, options, samples
# ---------------------------------------------------------------------------------------


def test_registered_with_validated_options():
    info = registry().get("dataset", "synthetic")
    assert info.cls is SyntheticDataset and info.description
    with pytest.raises(PluginError, match="vertices"):
        dataset(vertices=100)
    with pytest.raises(PluginError, match="intensities"):
        dataset(intensities=[5])
    with pytest.raises(PluginError, match="colour"):
        dataset(colour=True)


def test_samples_cover_subjects_expressions_intensities():
    ds = dataset(subjects=4, intensities=[2, 3, 4])
    assert ds.labels == SIX
    samples = ds.samples()
    assert len(samples) == 4 * 6 * 3 and len({s.key for s in samples}) == len(samples)
    assert {s.subject for s in samples} == {"S001", "S002", "S003", "S004"}
    assert {s.attributes["intensity"] for s in samples} == {2, 3, 4}
    for s in samples:
        assert {"sex", "age_group", "intensity"} <= set(s.attributes) and not s.is_sequence
        assert s.attributes["sex"] in ("F", "M") and s.attributes["age_group"] in ("18-29", "30-49", "50+")

    with_neutral = dataset(subjects=4, include_neutral=True)
    assert with_neutral.labels == (*SIX, "neutral")
    neutral = [s for s in with_neutral.samples() if s.label == "neutral"]
    assert len(neutral) == 4 and all(s.attributes["intensity"] == 0 for s in neutral)

    mesh = with_neutral.load(samples[5])
    assert mesh.source == f"synthetic:{samples[5].key}" and mesh.source == "synthetic:S001_DI_4"
    assert mesh.metadata["label"] == "disgust" and mesh.metadata["subject"] == "S001"
    assert mesh.metadata["intensity"] == 4 and mesh.metadata["sex"] == samples[5].attributes["sex"]
    with pytest.raises(DatasetError, match="S999"):
        ds.load(Sample("S999_HA_4", "happiness", "S999"))


def test_default_resolution_and_scaling():
    sizes = {}
    for vertices in (2000, 5000, 20000):
        ds = dataset(subjects=1, vertices=vertices) if vertices != 5000 else dataset(subjects=1)
        mesh = ds.load(ds.samples()[0])
        check_valid(mesh)
        sizes[vertices] = len(mesh.vertices)
        assert vertices <= sizes[vertices] <= vertices * 1.1
    assert sizes[2000] < sizes[5000] < sizes[20000]
    normals = np.cross(*(mesh.vertices[mesh.faces[:, 1:]] - mesh.vertices[mesh.faces[:, :1]]).transpose(1, 0, 2))
    assert normals[:, 2].sum() > 0.5 * np.linalg.norm(normals, axis=1).sum()  # faces look along +z


# ---------------------------------------------------------------------------------------
# Determinism and identities
# ---------------------------------------------------------------------------------------

HASH_SCRIPT = """
from affectkit_plugins.synthetic import SyntheticDataset
ds = SyntheticDataset(SyntheticDataset.Options(subjects=2, seed=7, noise=0.3, holes=0.1))
print(*(ds.load(s).content_hash() for s in ds.samples()[::5]))
"""


def test_same_options_same_meshes_across_processes():
    ds = SyntheticDataset(SyntheticDataset.Options(subjects=2, seed=7, noise=0.3, holes=0.1))
    here = [ds.load(s).content_hash() for s in ds.samples()[::5]]
    again = [SyntheticDataset(ds.options).load(s).content_hash() for s in ds.samples()[::5]]
    there = subprocess.run([sys.executable, "-c", HASH_SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    assert here == again == there
    other_seed = SyntheticDataset(SyntheticDataset.Options(subjects=2, seed=8, noise=0.3, holes=0.1))
    assert other_seed.load(other_seed.samples()[0]).content_hash() != here[0]


def test_subjects_differ_in_shape_and_metadata():
    ds = dataset(subjects=20, include_neutral=True)
    neutral = [ds.load(s) for s in ds.samples() if s.label == "neutral"]
    eye_spacing = [np.linalg.norm(lm(m, "left_eye_outer") - lm(m, "right_eye_outer")) for m in neutral]
    face_length = [lm(m, "nasion")[1] - lm(m, "chin")[1] for m in neutral]
    nose = [lm(m, "nose_tip")[2] - lm(m, "left_eye_inner")[2] for m in neutral]
    for values in (eye_spacing, face_length, nose):
        assert np.std(values) > 1.0  # millimetres
    assert np.abs(neutral[0].vertices - neutral[1].vertices).mean() > 1.0
    assert np.abs(neutral[0].colors - neutral[1].colors).mean() > 0.01 or neutral[0].metadata["skin_tone"] == neutral[1].metadata["skin_tone"]
    attrs = [m.metadata for m in neutral]
    assert {a["sex"] for a in attrs} == {"F", "M"} and len({a["age_group"] for a in attrs}) >= 2
    assert all(np.array_equal(m.faces, neutral[0].faces) for m in neutral)  # shared topology


# ---------------------------------------------------------------------------------------
# Action units in the right places
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_face_models() -> dict[str, dict[str, Mesh]]:
    """S002-S004 of a population over four face models: each on a face model of its own."""
    return {subject: scans(subject, subjects=4, face_models=4) for subject in ("S002", "S003", "S004")}


def test_expressions_move_the_right_regions(faces):
    check_expressions(faces)


def check_expressions(faces: dict[str, dict[str, Mesh]], least: float = 1.0) -> None:
    """Each emotion moves its regions the way its action units say, by at least ``least``
    times the base face model's travel (a face model may show a unit weaker)."""
    for subject, f in faces.items():
        ne = f["neutral"]

        def dy(label, name):
            return lm(f[label], name)[1] - lm(ne, name)[1]

        def moved(label, name):
            return np.linalg.norm(lm(f[label], name) - lm(ne, name))

        corners, brows = ("left_mouth_corner", "right_mouth_corner"), ("left_brow_middle", "right_brow_middle")
        # happiness: mouth corners up, eyes narrower, brows still
        assert min(dy("happiness_4", c) for c in corners) > 3.0 * least, subject
        assert all(moved("happiness_4", b) < 0.5 / least for b in brows), subject
        # sadness: mouth corners down, inner brows up relative to the outer ones
        assert max(dy("sadness_4", c) for c in corners) < -2.5 * least, subject
        assert dy("sadness_4", "left_brow_inner") > dy("sadness_4", "left_brow_outer"), subject
        # surprise: jaw drops (lower lip down), brows up, eyes wide
        assert dy("surprise_4", "lower_lip_inner") < -8.0 * least and dy("surprise_4", "chin") < -8.0 * least, subject
        assert min(dy("surprise_4", b) for b in brows) > 4.0 * least, subject
        aperture = {k: lm(f[k], "left_eye_upper")[1] - lm(f[k], "left_eye_lower")[1] for k in ("neutral", "surprise_4", "happiness_4")}
        assert aperture["surprise_4"] > aperture["neutral"] + 2.0 * least > aperture["happiness_4"] + 2.0 * least, subject
        # anger: brows down, lips closed
        assert max(dy("anger_4", b) for b in brows) < -2.5 * least, subject
        gap = lm(f["anger_4"], "upper_lip_inner")[1] - lm(f["anger_4"], "lower_lip_inner")[1]
        assert 0 < gap < 1.0, subject
        # fear: brows up, mouth wider (lip stretcher), lips part
        width = {k: lm(f[k], "left_mouth_corner")[0] - lm(f[k], "right_mouth_corner")[0] for k in ("neutral", "fear_4")}
        assert width["fear_4"] > width["neutral"] + 4.0 * least, subject
        assert min(dy("fear_4", b) for b in brows) > 1.5 * least and dy("fear_4", "lower_lip_inner") < -2.0 * least, subject
        # disgust: lower lip pulled down, upper face mostly still
        assert dy("disgust_4", "lower_lip_inner") < -3.0 * least and dy("disgust_4", "lower_lip_bottom") < -3.0 * least, subject


def test_higher_intensity_displaces_more_and_visibly(faces):
    for f in faces.values():
        ne = f["neutral"].vertices
        for label in SIX:
            low = np.linalg.norm(f[f"{label}_1"].vertices - ne, axis=1)
            high = np.linalg.norm(f[f"{label}_4"].vertices - ne, axis=1)
            assert high.mean() > 1.8 * low.mean(), label
            assert high.max() > 6.0, label  # millimetres: a clear change in shaded renders


def test_no_fold_overs_at_full_intensity(faces):
    check_no_fold_overs(faces)


def check_no_fold_overs(faces: dict[str, dict[str, Mesh]]) -> None:
    def normals(mesh):
        v, t = mesh.vertices, mesh.faces
        n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    from affectkit_plugins.synthetic.head import template

    for f in faces.values():
        tmpl = template(len(f["neutral"].vertices))
        seam = np.isin(tmpl.faces, tmpl.band[:, 1:-1]).any(axis=1)  # the mouth cavity turns by design
        rest = normals(f["neutral"])
        for label in SIX:
            flipped = (normals(f[f"{label}_4"]) * rest).sum(axis=1) < 0
            assert not (flipped & ~seam).any(), label


# ---------------------------------------------------------------------------------------
# Face models
# ---------------------------------------------------------------------------------------


def test_every_face_model_shows_each_emotion_the_way_its_labels_say(other_face_models):
    check_expressions(other_face_models, least=0.5)
    check_no_fold_overs(other_face_models)


def test_face_models_shape_the_same_action_units_their_own_way(faces, other_face_models):
    spread = dataset(subjects=4, face_models=4, include_neutral=True)
    first = {s.key: s for s in spread.samples() if s.subject == "S001"}
    base = dataset(subjects=4, include_neutral=True)
    for key, sample in first.items():  # face model 0 is the base one: the same meshes
        assert np.array_equal(spread.load(sample).vertices, base.load(sample).vertices), key
    # the same person on another face model: another mesh density, and other displacements
    # for the same action units (the landmarks' travel from neutral to apex)
    for subject, own in other_face_models.items():
        mine = scans(subject, subjects=4)
        assert len(own["neutral"].vertices) != len(mine["neutral"].vertices), subject
        for label in SIX:
            travel = [f[f"{label}_4"].landmarks - f["neutral"].landmarks for f in (own, mine)]
            assert np.abs(travel[0] - travel[1]).max() > 1.0, (subject, label)
    # the face models come from the population seed: another seed, other face models
    again = dataset(subjects=4, face_models=4, include_neutral=True)
    apex = next(s for s in again.samples() if s.subject == "S002" and s.label == "happiness" and s.attributes["intensity"] == 4)
    assert np.array_equal(again.load(apex).vertices, other_face_models["S002"]["happiness_4"].vertices)
    elsewhere = dataset(subjects=4, face_models=4, seed=1)
    assert elsewhere.face_model(1) != spread.face_model(1) and spread.face_model(0) is None


# ---------------------------------------------------------------------------------------
# 4D
# ---------------------------------------------------------------------------------------


def test_sequences_go_neutral_apex_neutral():
    ds = dataset(subjects=2, sequences=True, frames=15, include_neutral=True, vertices=2000)
    samples = ds.samples()
    assert len(samples) == 2 * 7 and all(s.is_sequence for s in samples)
    assert samples[0].key == "S001_AN" and samples[0].attributes["frames"] == 15
    neutral = ds.load(next(s for s in samples if s.label == "neutral")).frames[0].vertices
    for sample in samples[:6]:
        seq = ds.load(sample)
        assert isinstance(seq, MeshSequence) and len(seq) == 15 and seq.source == f"synthetic:{sample.key}"
        assert seq.metadata["label"] == sample.label and seq.frames[3].metadata["frame"] == 3
        disp = np.array([np.linalg.norm(frame.vertices - neutral, axis=1).mean() for frame in seq.frames])
        assert disp[0] < 1e-4 and disp[-1] < 1e-4, sample.key
        peak = int(np.argmax(disp))
        assert 3 <= peak <= 11 and disp[peak] > 0.5, sample.key
        assert np.all(np.diff(disp[: peak + 1]) >= -1e-3) and np.all(np.diff(disp[peak:]) <= 1e-3), sample.key
        assert all(np.array_equal(frame.faces, seq.frames[0].faces) for frame in seq.frames)


# ---------------------------------------------------------------------------------------
# Scan imperfections
# ---------------------------------------------------------------------------------------


def test_noise_and_holes_take_effect():
    clean = dataset(subjects=1)
    sample = clean.samples()[7]
    base = clean.load(sample)
    noisy = dataset(subjects=1, noise=0.5).load(sample)
    assert 0.4 < np.std(noisy.vertices - base.vertices) < 0.6
    assert np.array_equal(noisy.faces, base.faces)
    holed = dataset(subjects=1, holes=0.2).load(sample)
    assert len(holed.vertices) == len(base.vertices) and np.array_equal(holed.vertices, base.vertices)
    assert 0.7 * len(base.faces) < len(holed.faces) < 0.9 * len(base.faces)
    check_valid(holed)
    check_valid(noisy)


# ---------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------


def read_manifest(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == ("path", "label", "subject", "frame", "action_units", "sex", "age_group", "skin_tone", "intensity")
        return list(reader)


def test_writer_static_scans(tmp_path):
    options = SyntheticDataset.Options(subjects=2, intensities=[4], vertices=2000, include_neutral=True)
    manifest = write_synthetic(tmp_path, options)
    assert manifest == tmp_path / "manifest.csv"
    rows = read_manifest(manifest)
    ds = SyntheticDataset(options)
    samples = ds.samples()
    assert len(rows) == len(samples)
    for row, sample in zip(rows, samples):
        assert row["path"] == f"meshes/{sample.subject}/{sample.key}.ply" and row["frame"] == ""
        assert (row["label"], row["subject"]) == (sample.label, sample.subject)
        assert (row["sex"], row["age_group"], int(row["intensity"])) == (
            sample.attributes["sex"], sample.attributes["age_group"], sample.attributes["intensity"],
        )
    expected = ds.load(samples[3])
    mesh = load_mesh(tmp_path / rows[3]["path"])
    assert mesh.vertices.shape == expected.vertices.shape and np.allclose(mesh.vertices, expected.vertices, atol=1e-3)
    assert mesh.colors is not None and np.allclose(mesh.colors, expected.colors, atol=1 / 255 + 1e-6)
    names, points = read_landmark_file((tmp_path / rows[3]["path"]).with_suffix(".lm.txt"))
    assert names == list(LANDMARKS)
    assert np.allclose(points, expected.landmarks, atol=1e-3)


def test_writer_sequences(tmp_path):
    options = SyntheticDataset.Options(subjects=1, sequences=True, frames=3, vertices=2000)
    rows = read_manifest(write_synthetic(tmp_path, options))
    assert len(rows) == 6 * 3
    happy = [r for r in rows if r["label"] == "happiness"]
    assert [r["path"] for r in happy] == [f"meshes/S001/S001_HA/{i:03d}.ply" for i in range(3)]
    assert [r["frame"] for r in happy] == ["0", "1", "2"]
    for row in happy:
        assert len(load_mesh(tmp_path / row["path"]).vertices) >= 2000
        assert (tmp_path / row["path"]).with_suffix(".lm.txt").is_file()


def test_face_picks_one_subject_expression_and_intensity():
    dataset = SyntheticDataset(SyntheticDataset.Options(subjects=3, intensities=[2], include_neutral=True))
    face = dataset.face(3, "surprise", 2)
    assert face.source == "synthetic:S003_SU_2" and face.metadata["intensity"] == 2
    assert np.array_equal(face.vertices, dataset.load(next(s for s in dataset.samples() if s.key == "S003_SU_2")).vertices)
    assert dataset.face(1, "neutral").source == "synthetic:S001_NE_0"
    sequences = SyntheticDataset(SyntheticDataset.Options(subjects=1, sequences=True, frames=4))
    assert len(sequences.face(1, "fear")) == 4
    with pytest.raises(DatasetError, match=r"no subject 4 showing 'surprise' at intensity 2; these options have subjects 1..3"):
        dataset.face(4, "surprise", 2)

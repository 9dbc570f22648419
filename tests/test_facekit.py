"""The ``facekit`` dataset: the shipped ICT-FaceKit model, emotions measured on the
geometry, determinism, every scan-realism option, 4D, and writing it to disk."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import DatasetError
from affectkit.registry import create, face_generators
from affectkit_plugins.facekit import LANDMARKS, FaceKitDataset
from affectkit_plugins.facekit import model as face_model
from tests.cli_runs import command, run_ok

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
CLEAN = {"realism": False}
#: every realism effect off; a test turns on the one it checks
NONE = {"crop": False, "resolution": None, "smoothing": 0, "noise": 0.0, "holes": 0.0, "pose": 0.0, "scale": 0.0, "eyes": 1.0, "mouth_interior": 1.0}


def dataset(**options) -> FaceKitDataset:
    return create("dataset", "facekit", {"subjects": 3, "intensities": [4], "include_neutral": True, **options})


def scan(label: str = "happiness", subject: str = "S001", **options) -> Mesh:
    ds = dataset(**options)
    (sample,) = [s for s in ds.samples() if s.subject == subject and s.label == label]
    return ds.load(sample)


# ---------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------


def test_model_file_is_the_recorded_one_and_small():
    blob = face_model.MODEL_FILE.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == face_model.MODEL_SHA256
    assert len(blob) <= 10_000_000
    assert (face_model.MODEL_FILE.parent / "LICENSE-ICT-FaceKit").read_text().startswith("MIT License")


def test_damaged_model_file_is_refused_naming_it(tmp_path):
    damaged = tmp_path / "ict_face_model.npz"
    blob = bytearray(face_model.MODEL_FILE.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    damaged.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match=r"ict_face_model.npz.*SHA-256.*reinstall"):
        face_model.load_face_model(damaged)
    with pytest.raises(DatasetError, match="cannot read the face model"):
        face_model.load_face_model(tmp_path / "missing.npz")


def test_model_has_the_ict_topology_modes_and_landmarks():
    model = face_model.load_face_model()
    assert model.neutral.shape == (18054, 3) and model.identity_modes.shape == (100, 18054, 3)
    assert len(model.expression_names) == 53 and "mouthSmile_L" in model.expression_names
    assert model.part_mask("face").sum() == 9409  # ICT-FaceKit's face area
    assert len(model.landmarks) == len(LANDMARKS) == 68
    # every AU of the emotion prototypes drives shapes the model has
    names = set(model.expression_names)
    for shapes in face_model.AU_BLENDSHAPES.values():
        for shape, _ in shapes:
            assert shape in names or {f"{shape}_L", f"{shape}_R"} <= names


# ---------------------------------------------------------------------------------------
# Faces
# ---------------------------------------------------------------------------------------


def test_clean_face_has_model_vertices_finite_coordinates_and_landmarks_in_place():
    mesh = scan("neutral", **CLEAN)
    model = face_model.load_face_model()
    assert mesh.vertices.shape == (18054, 3) and np.isfinite(mesh.vertices).all()
    assert np.array_equal(mesh.faces, model.triangles)
    assert np.allclose(mesh.landmarks, mesh.vertices[model.landmarks])
    lm = mesh.landmarks
    nose, chin = lm[face_model.NOSE_TIP], lm[face_model.CHIN]
    assert nose[2] == lm[:, 2].max()  # the nose tip is the landmark nearest the camera
    assert chin[1] == lm[:17, 1].min()  # the chin is the lowest jaw-line point
    assert lm[face_model.LEFT_EYE_OUTER, 0] > 25 > -25 > lm[face_model.RIGHT_EYE_OUTER, 0]  # left at +x, in mm
    assert 80 < np.ptp(mesh.vertices[:, 0]) < 300  # a human head in millimetres


def test_identities_differ_with_the_pca_spread():
    a, b = scan("neutral", "S001", **CLEAN), scan("neutral", "S002", **CLEAN)
    moved = np.linalg.norm(a.vertices - b.vertices, axis=1)
    assert 1.0 < moved.mean() < 15.0  # different people, same species


def test_warp_reshapes_each_identity_smoothly_and_the_expressions_move_it_as_before():
    """``warp``: each person's face reshaped beyond the PCA span by a smooth, symmetric
    field of a few mm, the same field under every expression of that person."""
    from affectkit_plugins.facekit.warp import smooth_warp

    plain = {label: scan(label, "S002", **CLEAN) for label in ("neutral", "happiness")}
    warped = {label: scan(label, "S002", **CLEAN, warp=6.0) for label in ("neutral", "happiness")}
    moved = warped["neutral"].vertices - plain["neutral"].vertices
    assert 0.3 < np.linalg.norm(moved, axis=1).mean() < 8.0
    np.testing.assert_allclose(
        warped["happiness"].vertices - warped["neutral"].vertices, plain["happiness"].vertices - plain["neutral"].vertices, atol=1e-4
    )
    other = scan("neutral", "S003", **CLEAN, warp=6.0).vertices - scan("neutral", "S003", **CLEAN).vertices
    assert not np.allclose(moved, other)  # every person draws their own
    assert np.array_equal(scan("happiness", "S002", warp=0.0).vertices, scan("happiness", "S002").vertices)  # 0: off, as before
    points = np.random.default_rng(0).uniform(-100, 100, (500, 3))
    field = smooth_warp(points, np.random.default_rng(1), 5.0)
    mirrored = smooth_warp(points * [-1, 1, 1], np.random.default_rng(1), 5.0)
    np.testing.assert_allclose(mirrored, field * [-1, 1, 1], atol=1e-12)  # the left half is the right half's mirror
    step = smooth_warp(points + [1.0, 0.0, 0.0], np.random.default_rng(1), 5.0) - field
    assert np.abs(step).max() < 1.0  # smooth: 1 mm further on, under 1 mm more


def test_rig_shapes_each_persons_action_units_their_own_way_and_keeps_their_labels():
    """``rig``: the same person performing the same AUs moves their face along a field of
    their own (not the model's), symmetric, of the same size; neutral faces and AU labels
    do not change, and 0 is the model's rig bit for bit."""
    plain = {label: scan(label, "S002", **CLEAN) for label in ("neutral", "happiness")}
    varied = {label: scan(label, "S002", **CLEAN, rig=1.0) for label in ("neutral", "happiness")}
    assert np.array_equal(varied["neutral"].vertices, plain["neutral"].vertices)
    moved, model_moved = (faces["happiness"].vertices - faces["neutral"].vertices for faces in (varied, plain))
    size, model_size = np.linalg.norm(moved, axis=1), np.linalg.norm(model_moved, axis=1)
    assert 0.5 < size.max() / model_size.max() < 2.0  # a smile of a human size
    assert np.linalg.norm(moved - model_moved, axis=1).mean() > 0.05 * model_size.mean()  # shaped otherwise
    other = scan("happiness", "S003", **CLEAN, rig=1.0).vertices - scan("happiness", "S003", **CLEAN).vertices
    assert not np.allclose(moved - model_moved, other)  # every person draws their own
    ds = dataset(realism=False, rig=1.0)
    assert [s.action_units for s in ds.samples()] == [s.action_units for s in dataset(realism=False).samples()]
    assert np.array_equal(scan("happiness", "S002", rig=0.0).vertices, scan("happiness", "S002").vertices)  # 0: off, as before
    # left-right symmetric: a symmetric performance stays as symmetric as the model's rig leaves it
    lm = {name: faces["happiness"].landmarks for name, faces in (("varied", varied), ("plain", plain))}
    corners = [face_model.MOUTH_LEFT, face_model.MOUTH_RIGHT]
    lift = {name: points[corners, 1] - plain["neutral"].landmarks[corners, 1] for name, points in lm.items()}
    assert abs(lift["varied"][0] - lift["varied"][1]) < abs(lift["plain"][0] - lift["plain"][1]) + 1.0


def displacement(label: str, subject: str, rows) -> np.ndarray:
    """Mean landmark displacement (mm) of ``rows`` from neutral to ``label`` at intensity 4."""
    neutral, face = scan("neutral", subject, **CLEAN), scan(label, subject, **CLEAN)
    return (face.landmarks[list(rows)] - neutral.landmarks[list(rows)]).mean(axis=0)


def width(mesh: Mesh) -> float:
    return float(mesh.landmarks[face_model.MOUTH_LEFT, 0] - mesh.landmarks[face_model.MOUTH_RIGHT, 0])


@pytest.mark.parametrize("subject", ["S001", "S002", "S003"])
def test_each_emotion_moves_its_regions(subject):
    corners = (face_model.MOUTH_RIGHT, face_model.MOUTH_LEFT)
    brows, inner_brows = face_model.BROWS, (21, 22)
    lower_lip, nostrils = (face_model.LOWER_LIP,), range(31, 36)
    # happiness (AU6+12): mouth corners up and out
    assert displacement("happiness", subject, corners)[1] > 2.0
    assert width(scan("happiness", subject, **CLEAN)) > width(scan("neutral", subject, **CLEAN)) + 2.0
    # surprise (AU1+2+5+26): jaw drops, brows rise
    assert displacement("surprise", subject, lower_lip)[1] < -5.0
    assert displacement("surprise", subject, brows)[1] > 1.5
    # sadness (AU1+4+15): inner brows rise, mouth corners fall
    assert displacement("sadness", subject, inner_brows)[1] > 0.5
    assert displacement("sadness", subject, corners)[1] < -0.5
    # anger (AU4+5+7+23): brows come down
    assert displacement("anger", subject, brows)[1] < -1.0
    # disgust (AU9+15+16): the nose wrinkles up
    assert displacement("disgust", subject, nostrils)[1] > 1.0
    # fear (AU1+2+4+5+20+26): lips stretched wide, the jaw a little open
    assert width(scan("fear", subject, **CLEAN)) > width(scan("neutral", subject, **CLEAN)) + 1.0
    assert displacement("fear", subject, lower_lip)[1] < -1.0


def test_intensity_scales_the_expression():
    ds = dataset(intensities=[1, 2, 3, 4], **CLEAN)
    neutral = ds.face(1, "neutral")
    drops = [float(neutral.landmarks[face_model.LOWER_LIP, 1] - ds.face(1, "surprise", level).landmarks[face_model.LOWER_LIP, 1]) for level in (1, 2, 3, 4)]
    assert drops == sorted(drops) and drops[0] > 0


def test_subjects_perform_emotions_in_their_own_way():
    model = face_model.load_face_model()
    from affectkit.data.performances import activations

    weights = [model.blendshape_weights(activations(0, i, "happiness", 4, 0.25)) for i in range(6)]
    assert len({w.round(3).tobytes() for w in weights}) == 6
    asymmetric = [abs(w[model.expression_names.index("mouthSmile_L")] - w[model.expression_names.index("mouthSmile_R")]) for w in weights]
    assert max(asymmetric) > 0.02


def test_same_options_same_meshes_in_another_process_other_seed_other_faces():
    ds = dataset()
    hashes = [ds.load(s).content_hash() for s in ds.samples()[::4]]
    code = (
        "from affectkit.registry import create\n"
        "ds = create('dataset', 'facekit', {'subjects': 3, 'intensities': [4], 'include_neutral': True})\n"
        "print(' '.join(ds.load(s).content_hash() for s in ds.samples()[::4]))\n"
    )
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert again == hashes
    other = dataset(seed=1)
    assert not set(hashes) & {other.load(s).content_hash() for s in other.samples()[::4]}


def test_samples_have_no_invented_attributes():
    ds = dataset(intensities=[3, 4])
    assert {tuple(sorted(s.attributes)) for s in ds.samples()} == {("intensity",)}
    assert ds.labels == (*SIX, "neutral")
    assert len(ds.samples()) == 3 * (6 * 2 + 1)
    assert "facekit" in face_generators()


def test_unknown_face_is_one_clear_error():
    with pytest.raises(DatasetError, match=r"facekit: no subject 9 .*subjects 1\.\.3"):
        dataset().face(9, "happiness")


# ---------------------------------------------------------------------------------------
# Scan realism: each option changes what it says
# ---------------------------------------------------------------------------------------


def test_realism_is_on_by_default_and_makes_each_scan_different():
    ds = dataset()
    a, b = ds.face(1, "happiness"), ds.face(2, "happiness")
    assert len(a.vertices) != 18054 and len(a.vertices) != len(b.vertices)


def test_crop_keeps_the_face_and_drops_the_back_of_the_head():
    full, cropped = scan(**NONE), scan(**{**NONE, "crop": True})
    assert len(cropped.vertices) < 0.8 * len(full.vertices)
    nose_z = full.landmarks[face_model.NOSE_TIP, 2]
    assert cropped.vertices[:, 2].min() >= nose_z - 131 > full.vertices[:, 2].min()
    spans = [np.ptp(scan(label, **{**NONE, "crop": True}).vertices, axis=0) for label in SIX]
    assert len({tuple(np.round(s)) for s in spans}) == len(SIX)  # a random extent per scan


def test_resolution_resamples_the_surface():
    n = len(scan(**NONE).vertices)
    coarse = len(scan(**{**NONE, "resolution": (0.3, 0.31)}).vertices)
    fine = len(scan(**{**NONE, "resolution": (3.0, 3.01)}).vertices)
    assert coarse < 0.5 * n and fine > 1.5 * n  # about the asked density: clustering is coarse-grained


def roughness(mesh: Mesh) -> float:
    from affectkit_plugins.facekit.scan import neighbour_mean

    return float(np.linalg.norm(neighbour_mean(mesh.vertices, mesh.faces) - mesh.vertices, axis=1).mean())


def test_noise_roughens_and_smoothing_smooths():
    clean = [scan(label, **NONE) for label in SIX]
    noisy = [scan(label, **{**NONE, "noise": 0.5}) for label in SIX]
    smoothed = [scan(label, **{**NONE, "smoothing": 6}) for label in SIX]
    for a, b in zip(clean, noisy, strict=True):
        assert len(a.vertices) == len(b.vertices) and 0 < np.abs(a.vertices - b.vertices).max() < 5.0
    assert np.mean([roughness(m) for m in noisy]) > np.mean([roughness(m) for m in clean]) > np.mean([roughness(m) for m in smoothed])


def surface(mesh: Mesh) -> float:
    c = mesh.vertices[mesh.faces]
    return float(np.linalg.norm(np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0]), axis=1).sum() / 2)


def test_holes_remove_at_most_about_their_fraction():
    whole = scan(**NONE)
    lost = [1 - surface(scan(label, **{**NONE, "holes": 0.1})) / surface(whole) for label in SIX]
    assert all(0 < x < 0.2 for x in lost)


def test_pose_and_scale_jitter_within_their_bounds():
    rest = scan(**NONE)
    def eye_axis(mesh):
        v = mesh.landmarks[face_model.LEFT_EYE_OUTER] - mesh.landmarks[face_model.RIGHT_EYE_OUTER]
        return v
    posed = [scan(label, **{**NONE, "pose": 8.0}) for label in SIX]
    tilts = [np.degrees(np.arctan2(abs(eye_axis(m)[1]), eye_axis(m)[0])) for m in posed]
    assert max(tilts) > 1.0 and max(tilts) < 8.5 + np.degrees(np.arctan2(abs(eye_axis(rest)[1]), eye_axis(rest)[0]))
    scaled = [np.linalg.norm(eye_axis(scan(label, **{**NONE, "scale": 0.1}))) / np.linalg.norm(eye_axis(scan(label, **NONE))) for label in SIX]
    assert all(0.9 - 1e-4 <= s <= 1.1 + 1e-4 for s in scaled) and np.ptp(scaled) > 0.02

    def proportions(mesh):  # face height over face width
        lm = mesh.landmarks
        return np.linalg.norm(lm[face_model.CHIN] - lm[list(face_model.BROWS)].mean(0)) / np.linalg.norm(eye_axis(mesh))

    rest_proportions = [proportions(scan(label, **NONE)) for label in SIX]
    jittered = [proportions(scan(label, **{**NONE, "scale": 0.1})) / r for label, r in zip(SIX, rest_proportions, strict=True)]
    assert np.ptp(jittered) > 0.03 and all(0.8 < j < 1.25 for j in jittered)  # each axis on its own


def test_eyes_and_mouth_interior_are_kept_or_dropped():
    model = face_model.load_face_model()
    everything = len(scan(**NONE).vertices)
    no_eyes = len(scan(**{**NONE, "eyes": 0.0}).vertices)
    no_mouth = len(scan(**{**NONE, "mouth_interior": 0.0}).vertices)
    assert everything - no_eyes == model.part_mask("eyeball_left", "eyeball_right").sum()
    assert everything - no_mouth == model.part_mask("mouth_socket", "teeth_upper", "teeth_lower").sum()


# ---------------------------------------------------------------------------------------
# 4D
# ---------------------------------------------------------------------------------------


def test_sequences_run_neutral_onset_apex_offset():
    ds = create("dataset", "facekit", {"subjects": 1, "sequences": True, "frames": 12, **CLEAN})
    (sample,) = [s for s in ds.samples() if s.label == "surprise"]
    sequence = ds.load(sample)
    assert isinstance(sequence, MeshSequence) and len(sequence) == 12 and sample.attributes == {"intensity": 4, "frames": 12}
    neutral = scan("neutral", **CLEAN)
    drop = [float(neutral.landmarks[face_model.LOWER_LIP, 1] - f.landmarks[face_model.LOWER_LIP, 1]) for f in sequence.frames]
    assert abs(drop[0]) < 1e-3 and abs(drop[-1]) < 1e-3
    apex = int(np.argmax(drop))
    assert 0 < apex < 11 and drop[apex] > 5.0
    realistic = create("dataset", "facekit", {"subjects": 1, "sequences": True, "frames": 3}).load(sample)
    assert all(f.metadata["frame"] == i for i, f in enumerate(realistic.frames))


# ---------------------------------------------------------------------------------------
# On disk, through the CLI
# ---------------------------------------------------------------------------------------


def test_synth_writes_facekit_in_the_bu3dfe_layout_without_placeholder_attributes(tmp_path):
    out = tmp_path / "BU-3DFE"
    run_ok("synth", "--dataset", "facekit", "--out", str(out), "--subjects", "2", "--intensities", "4", "--no-neutral", "--layout", "bu3dfe")
    read = create("dataset", "bu3dfe", {"root": str(out), "intensities": [4]})
    samples = read.samples()
    assert len(samples) == 12 and {s.label for s in samples} == set(SIX)
    assert all("sex" not in s.attributes and "ethnicity" not in s.attributes for s in samples)
    mesh = read.load(samples[0])
    assert mesh.landmarks.shape == (68, 3) and len(mesh.vertices) > 1000


def test_synth_writes_facekit_manifest_with_landmark_names(tmp_path):
    from affectkit.data.mesh_formats import read_landmark_file

    run_ok("synth", "--dataset", "facekit", "--out", str(tmp_path), "--subjects", "1", "--intensities", "4", "--no-neutral")
    header = (tmp_path / "manifest.csv").read_text().splitlines()[0]
    assert header == "path,label,subject,frame,action_units,intensity"
    names, _ = read_landmark_file(next((tmp_path / "meshes/S001").glob("*.lm.txt")))
    assert names == list(LANDMARKS)
    folder = create("dataset", "folder", {"root": str(tmp_path)})
    assert len(folder.samples()) == 6


def test_synth_writes_facekit_sequences_in_the_bu4dfe_layout(tmp_path):
    run_ok("synth", "--dataset", "facekit", "--out", str(tmp_path), "--subjects", "1", "--frames", "3", "--layout", "bu4dfe")
    read = create("dataset", "bu4dfe", {"root": str(tmp_path)})
    samples = read.samples()
    assert len(samples) == 6 and all(s.attributes == {"frames": 3} for s in samples)
    assert len(read.load(samples[0])) == 3


def test_synth_refuses_options_that_do_not_apply(tmp_path):
    done = subprocess.run(command("synth", "--dataset", "facekit", "--vertices", "3000", "--out", str(tmp_path)), capture_output=True, text=True)
    assert done.returncode == 2 and "--vertices applies to generators with a mesh resolution of their own; facekit faces have" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(command("synth", "--dataset", "bu3dfe", "--out", str(tmp_path)), capture_output=True, text=True)
    assert done.returncode == 2 and "not a face generator; allowed: facekit, synthetic" in done.stderr


@pytest.mark.parametrize("resolution", [[2.0, 1.0], [0.0, 1.0], [1.0, 9.0]])
def test_bad_resolution_is_refused_naming_the_field(resolution):
    from affectkit.errors import PluginError

    with pytest.raises(PluginError, match=r"invalid options for dataset 'facekit': resolution"):
        create("dataset", "facekit", {"resolution": resolution})


def test_synth_refuses_intensities_that_are_not_numbers(tmp_path):
    done = subprocess.run(command("synth", "--out", str(tmp_path), "--intensities", "a,4"), capture_output=True, text=True)
    assert done.returncode == 2 and "give intensities as numbers 1..4" in done.stderr and "Traceback" not in done.stderr



def test_attribute_prompts_of_facekit_samples_describe_only_the_intensity():
    augmenter = create("prompt_augmenter", "attributes")
    for sample in dataset(intensities=[2, 4]).samples()[:13]:
        for prompt in augmenter.prompts(sample.label, sample.attributes):
            assert "  " not in prompt and prompt == prompt.strip()
            assert not {"woman", "man", "female", "male", "young", "older"} & set(prompt.split())


"""The ``folder`` dataset: CSV manifests, sequences, attributes, clear errors, and reading
back what ``affectkit synth`` writes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from dataset_files import tetrahedron, write_obj

from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import DatasetError, PluginError
from affectkit.interfaces import Sample
from affectkit.registry import registry
from affectkit_plugins.folder import FolderDataset, parse_value
from affectkit_plugins.synthetic import SyntheticDataset, write_synthetic

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


def dataset(**options) -> FolderDataset:
    return registry().create("dataset", "folder", options)


def write_manifest(root, text: str, meshes=()) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text(text)
    for i, name in enumerate(meshes):
        write_obj(root / name, *tetrahedron(offset=i))


# ---------------------------------------------------------------------------------------
# Reading back affectkit synth
# ---------------------------------------------------------------------------------------


def synth_round_trip(tmp_path, **options):
    synth = SyntheticDataset(SyntheticDataset.Options(subjects=2, vertices=2000, **options))
    manifest = write_synthetic(tmp_path / "synth", synth.options)
    with manifest.open() as handle:
        columns = set(next(csv.reader(handle)))
    folder = dataset(root=str(tmp_path / "synth"))
    return synth, folder, columns


def check_same_mesh(a: Mesh, b: Mesh) -> None:
    assert np.allclose(a.vertices, b.vertices, atol=1e-5)
    assert np.array_equal(a.faces, b.faces)
    assert np.allclose(a.colors, b.colors, atol=1 / 255 + 1e-6)
    assert np.allclose(a.landmarks, b.landmarks, atol=1e-4)


def test_reads_back_a_synthetic_dataset(tmp_path):
    synth, folder, columns = synth_round_trip(tmp_path, intensities=[2, 4], include_neutral=True)
    assert folder.labels == synth.labels
    read = {s.key.rsplit("/", 1)[-1]: s for s in folder.samples()}
    written = {s.key: s for s in synth.samples()}
    assert read.keys() == written.keys()
    for key, want in written.items():
        got = read[key]
        assert (got.label, got.subject, got.is_sequence) == (want.label, want.subject, False)
        assert got.attributes == {k: v for k, v in want.attributes.items() if k in columns}
    sample = next(s for s in synth.samples() if s.label == "happiness")
    got = folder.load(read[sample.key])
    check_same_mesh(got, synth.load(sample))
    assert got.metadata["landmark_names"] and got.metadata["label"] == "happiness"


def test_reads_back_synthetic_sequences(tmp_path):
    synth, folder, columns = synth_round_trip(tmp_path, sequences=True, frames=3, intensities=[4])
    read = {s.key.rsplit("/", 1)[-1]: s for s in folder.samples()}
    written = {s.key: s for s in synth.samples()}
    assert read.keys() == written.keys() and folder.labels == synth.labels
    for key, want in written.items():
        got = read[key]
        assert (got.label, got.subject, got.is_sequence) == (want.label, want.subject, True)
        assert got.attributes == {k: v for k, v in want.attributes.items() if k in columns | {"frames"}}
    sample = next(iter(written.values()))
    got, want = folder.load(read[sample.key]), synth.load(sample)
    assert isinstance(got, MeshSequence) and len(got) == len(want) == 3
    for a, b in zip(got.frames, want.frames):
        check_same_mesh(a, b)
    assert [f.metadata["frame"] for f in got.frames] == [0, 1, 2]


# ---------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------


def test_attributes_and_default_label_order(tmp_path):
    write_manifest(
        tmp_path,
        "path,label,subject,age,sex,score,note\n"
        "a/one.obj,pain,P1,23,F,0.5,\n"
        "a/two.obj,happiness,P2,-4,M,1e-3,tired\n",
        ["a/one.obj", "a/two.obj"],
    )
    ds = dataset(root=tmp_path)
    assert ds.labels == ("happiness", "pain")  # not all basic emotions: sorted
    one, two = ds.samples()
    assert (one.key, one.label, one.subject) == ("a/one", "pain", "P1")
    assert one.attributes == {"age": 23, "sex": "F", "score": 0.5}
    assert two.attributes == {"age": -4, "sex": "M", "score": 0.001, "note": "tired"}
    mesh = ds.load(two)
    assert isinstance(mesh, Mesh) and mesh.vertices[0].tolist() == [1.0, 1.0, 1.0]
    assert mesh.metadata["note"] == "tired" and mesh.landmarks is None
    assert ds.paths(one) == [tmp_path / "a" / "one.obj"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["fear", "anger"], SIX),
        (["neutral", "surprise"], (*SIX, "neutral")),
        (["Happy", "anger"], ("Happy", "anger")),
    ],
)
def test_six_basic_emotions_order_when_labels_are_among_them(tmp_path, labels, expected):
    rows = "".join(f"m{i}.obj,{label},S{i}\n" for i, label in enumerate(labels))
    write_manifest(tmp_path, "path,label,subject\n" + rows, [f"m{i}.obj" for i in range(len(labels))])
    assert dataset(root=tmp_path).labels == expected


def test_labels_option_sets_the_order_and_must_cover_the_manifest(tmp_path):
    write_manifest(tmp_path, "path,label,subject\nm0.obj,fear,S1\nm1.obj,joy,S2\nm2.obj,joy,S3\n", ["m0.obj", "m1.obj", "m2.obj"])
    assert dataset(root=tmp_path, labels=["joy", "fear", "calm"]).labels == ("joy", "fear", "calm")
    with pytest.raises(DatasetError, match=r"manifest\.csv: label\(s\) 'joy' \(line 3\) are not in the labels option"):
        dataset(root=tmp_path, labels=["fear"]).samples()
    with pytest.raises(PluginError, match="labels must be distinct"):
        dataset(root=tmp_path, labels=["fear", "fear"])


def test_frames_group_into_sequences_ordered_by_frame(tmp_path):
    write_manifest(
        tmp_path,
        "path,label,subject,frame,intensity\n"
        "seq/2.obj,happiness,S1,2,4\n"
        "seq/0.obj,happiness,S1,0,4\n"
        "seq/1.obj,happiness,S1,1,4\n"
        "mixed/a0.obj,fear,S1,0,\n"
        "mixed/a1.obj,fear,S1,1,\n"
        "mixed/b0.obj,anger,S2,0,\n"
        "still.obj,sadness,S2,,3\n"
        "f0.obj,surprise,S3,0,\n",
        ["seq/0.obj", "seq/1.obj", "seq/2.obj", "mixed/a0.obj", "mixed/a1.obj", "mixed/b0.obj", "still.obj", "f0.obj"],
    )
    ds = dataset(root=tmp_path, fps=30)
    by_key = {s.key: s for s in ds.samples()}
    assert sorted(by_key) == ["S3_surprise", "mixed/S1_fear", "mixed/S2_anger", "seq", "still"]
    assert by_key["seq"].is_sequence and by_key["seq"].attributes == {"intensity": 4, "frames": 3}
    assert not by_key["still"].is_sequence and by_key["still"].attributes == {"intensity": 3}
    seq = ds.load(by_key["seq"])
    assert isinstance(seq, MeshSequence) and seq.fps == 30
    assert [f.metadata["frame"] for f in seq.frames] == [0, 1, 2]
    assert [float(f.vertices[0, 0]) for f in seq.frames] == [0.0, 1.0, 2.0]  # tetrahedra offset by write order
    assert [p.name for p in ds.paths(by_key["mixed/S1_fear"])] == ["a0.obj", "a1.obj"]


def test_manifest_option_and_backslashes(tmp_path):
    (tmp_path / "lists").mkdir()
    write_manifest(tmp_path / "lists", "path,label,subject\nsub\\x.obj,fear,S1\n", ["sub/x.obj"])
    (tmp_path / "lists" / "manifest.csv").rename(tmp_path / "lists" / "train.csv")
    ds = dataset(manifest=tmp_path / "lists" / "train.csv")
    assert [s.key for s in ds.samples()] == ["sub/x"]
    assert len(ds.load(ds.samples()[0]).faces) == 4


def test_parse_value():
    assert parse_value("12") == 12 and parse_value(" -3 ") == -3 and parse_value("2.5") == 2.5
    assert parse_value("18-29") == "18-29" and parse_value("nan") == "nan" and parse_value("F") == "F"


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,subject\nm.obj,S1\n", r"missing column\(s\) label; the header has path, subject"),
        ("file,emotion\nm.obj,fear\n", r"missing column\(s\) path, label, subject"),
        ("", r"empty manifest"),
        ("path,label,subject\n", r"the manifest lists no meshes"),
        ("path,label,subject\nm.obj,fear,S1\n../outside.obj,fear,S1\n", r"line 3: path '\.\./outside\.obj' leaves the manifest's folder"),
        ("path,label,subject\na/../../x.obj,fear,S1\n", r"line 2: path 'a/\.\./\.\./x\.obj' leaves"),
        ("path,label,subject\n/etc/x.obj,fear,S1\n", r"line 2: path '/etc/x\.obj' leaves"),
        ("path,label,subject\nC:\\data\\x.obj,fear,S1\n", r"line 2: path 'C:\\\\data\\\\x\.obj' leaves"),
        ("path,label,subject\nm.obj,,S1\n", r"line 2: empty 'label'"),
        ("path,label,subject,frame\nm.obj,fear,S1,first\n", r"line 2: frame must be an integer, got 'first'"),
        ("path,label,subject\nm.obj,fear,S1,extra\n", r"line 2: 4 values for 3 columns"),
        ("path,label,subject,path\nm.obj,fear,S1,m.obj\n", r"line 1: column names must be distinct"),
        ("path,label,subject\nm.obj,fear,S1\nm.obj,fear,S2\n", r"lines 2 and 3 list the same mesh 'm\.obj'"),
        ("path,label,subject,frame\nm.obj,fear,S1,0\nn.obj,fear,S1,0\n", r"lines 2 and 3 both give frame 0"),
    ],
)
def test_bad_manifests_name_file_and_line(tmp_path, text, message):
    write_manifest(tmp_path, text, ["m.obj", "n.obj"])
    with pytest.raises(DatasetError, match=rf"manifest\.csv: .*{message}"):
        dataset(root=tmp_path).samples()


def test_missing_files_are_listed_with_lines(tmp_path):
    write_manifest(tmp_path, "path,label,subject\nm.obj,fear,S1\ngone.obj,fear,S1\nsub/also.obj,anger,S2\n", ["m.obj"])
    with pytest.raises(DatasetError, match=r"2 listed file\(s\) do not exist under .*: line 3: gone\.obj; line 4: sub/also\.obj"):
        dataset(root=tmp_path).samples()


def test_source_options_and_missing_manifest(tmp_path):
    with pytest.raises(PluginError, match="exactly one of root"):
        dataset()
    with pytest.raises(PluginError, match="exactly one of root"):
        dataset(root=tmp_path, manifest=tmp_path / "manifest.csv")
    with pytest.raises(DatasetError, match=r"manifest\.csv: cannot open the manifest"):
        dataset(root=tmp_path / "nowhere").samples()
    write_manifest(tmp_path, "path,label,subject\nm.obj,fear,S1\n", ["m.obj"])
    with pytest.raises(DatasetError, match=r"no sample 'other'"):
        dataset(root=tmp_path).load(Sample("other", "fear", "S1"))

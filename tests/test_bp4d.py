"""BP4D-Spontaneous: sequences per subject and task, task labels, frame selection, AU CSVs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from dataset_files import bp4d_tree, tetrahedron, write_obj

from affectkit.data.mesh import MeshSequence
from affectkit.errors import DatasetError, PluginError
from affectkit.interfaces import Sample
from affectkit.registry import registry
from affectkit_plugins.bp4d import TASK_LABELS, BP4DDataset, locate, read_au_csv, select_frames

SIX = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


def dataset(**options) -> BP4DDataset:
    return registry().create("dataset", "bp4d", options)


def test_default_task_labels_are_bp4d_tasks():
    assert TASK_LABELS == {
        "T1": "happiness", "T2": "sadness", "T3": "surprise", "T4": "embarrassment",
        "T5": "fear", "T6": "pain", "T7": "anger", "T8": "disgust",
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("F001/T1/0001.obj", ("F001", "T1", 1)),
        ("m012/t8/123.obj", ("M012", "T8", 123)),
        ("BP4D/3D/F001_T2/F001_T2_0042.obj", ("F001", "T2", 42)),
        ("F001/T3/frame_0007.obj", ("F001", "T3", 7)),
        ("F001/0001.obj", None),
        ("T1/0001.obj", None),
        ("F001/T1/mesh.obj", None),
    ],
)
def test_locate(path, expected):
    from pathlib import Path

    assert locate(Path(path)) == expected


@pytest.mark.parametrize(("count", "most"), [(10, 4), (100, 7), (5, 2), (3, 3), (3, 10), (1000, 999), (7, 1)])
def test_select_frames_evenly_spaced(count, most):
    chosen = select_frames(count, most)
    assert len(chosen) == min(count, most) and chosen == sorted(set(chosen))
    assert chosen[0] == 0 and (most == 1 or chosen[-1] == count - 1)
    if len(chosen) > 2:
        gaps = np.diff(chosen)
        assert gaps.max() - gaps.min() <= 1
    assert select_frames(count, None) == list(range(count))


def test_one_sequence_per_subject_and_task(tmp_path):
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1", "T2", "T4"))
    ds = dataset(root=str(root))
    assert ds.labels == (*SIX, "embarrassment", "pain")
    samples = ds.samples()
    assert [s.key for s in samples] == ["F001_T1", "F001_T2", "F001_T4", "M002_T1", "M002_T2", "M002_T4"]
    s = samples[0]
    assert s.is_sequence and s.label == "happiness" and s.subject == "F001"
    assert s.attributes == {"task": "T1", "sex": "F", "frames": 3, "frames_total": 3}
    assert samples[3].attributes["sex"] == "M"
    assert {x.key: x.label for x in samples}["M002_T4"] == "embarrassment"

    basic = dataset(root=root, basic_only=True)
    assert basic.labels == SIX
    assert [x.key for x in basic.samples()] == ["F001_T1", "F001_T2", "M002_T1", "M002_T2"]


def test_frames_load_in_numeric_order(tmp_path):
    root = tmp_path / "BP4D"
    for number in (10, 2, 1, 100):
        write_obj(root / "F001" / "T1" / f"{number}.obj", *tetrahedron(offset=number))
    write_obj(root / "M001" / "T1" / "1.obj", *tetrahedron())
    ds = dataset(root=root)
    seq = ds.load(ds.samples()[0])
    assert isinstance(seq, MeshSequence) and len(seq) == 4
    assert seq.metadata["frame_numbers"] == [1, 2, 10, 100]
    assert [float(f.vertices[0, 0]) for f in seq.frames] == [1.0, 2.0, 10.0, 100.0]
    assert [f.metadata["frame"] for f in seq.frames] == [1, 2, 10, 100]
    assert seq.metadata["label"] == "happiness" and seq.metadata["action_units"] is None
    assert seq.fps == 25.0


def test_max_frames_selects_evenly(tmp_path):
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1",), frames=10)
    ds = dataset(root=root, max_frames=4)
    sample = ds.samples()[0]
    assert sample.attributes["frames"] == 4 and sample.attributes["frames_total"] == 10
    seq = ds.load(sample)
    assert seq.metadata["frame_numbers"] == [0, 3, 6, 9]
    assert len(seq) == 4 and seq.fps == pytest.approx(25.0 / 3)
    assert [p.name for _, p in ds.frame_paths(sample)] == ["0000.obj", "0003.obj", "0006.obj", "0009.obj"]
    with pytest.raises(PluginError, match="max_frames"):
        dataset(root=root, max_frames=0)


def test_custom_task_labels(tmp_path):
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1", "T2", "T8"))
    ds = dataset(root=root, task_labels={"t1": "amusement", "T8": "disgust"})
    assert ds.labels == ("disgust", "amusement")
    assert sorted({(s.attributes["task"], s.label) for s in ds.samples()}) == [("T1", "amusement"), ("T8", "disgust")]
    with pytest.raises(PluginError, match=r"task_labels.*T1\.\.T8"):
        dataset(root=root, task_labels={"task1": "happiness"})
    with pytest.raises(DatasetError, match="basic_only leaves no task"):
        dataset(root=root, task_labels={"T1": "amusement"}, basic_only=True).samples()


def test_action_units_from_csv(tmp_path):
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1", "T2"), frames=4)
    au_dir = tmp_path / "AUCoding" / "AU_OCC"
    au_dir.mkdir(parents=True)
    (au_dir / "F001_T1.csv").write_text("Frame,AU1,AU2,AU12,notes\n0,0,1,1,x\n1,0,0,9,\n3,1,1,0,y\n")
    (au_dir / "M002_T1.csv").write_text("0,1,2,12\n0,1,1,1\n1,0,0,0\n2,1,0,1\n3,0,1,0\n")  # BP4D style: AU numbers as headers
    ds = dataset(root=root, au_dir=tmp_path / "AUCoding")
    by_key = {s.key: s for s in ds.samples()}
    seq = ds.load(by_key["F001_T1"])
    on, off = (1.0, 1.0), (0.0, 0.0)
    # frame 1 does not code AU12 (9), frame 2 is not in the file at all
    assert seq.metadata["action_units"] == [{1: off, 2: on, 12: on}, {1: off, 2: off}, None, {1: on, 2: on, 12: off}]
    assert seq.frames[3].metadata["action_units"] == {1: on, 2: on, 12: off}
    assert ds.load(by_key["M002_T1"]).metadata["action_units"][2] == {1: on, 2: off, 12: on}
    assert ds.load(by_key["F001_T2"]).metadata["action_units"] is None  # no CSV for this sequence


def test_action_unit_intensity_files_give_strength(tmp_path):
    """BP4D's intensity layout (F001_T1_AU12.csv, rows frame,intensity 0-5, 9 not coded)
    beside the occurrence file: the intensity, as 0..1, is the AU's strength."""
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1",), frames=4)
    occurrence, intensity = tmp_path / "AU" / "AU_OCC", tmp_path / "AU" / "AU_INT" / "AU12"
    occurrence.mkdir(parents=True)
    intensity.mkdir(parents=True)
    (occurrence / "F001_T1.csv").write_text("frame,AU6,AU12\n0,0,0\n1,1,1\n2,1,1\n3,0,0\n")
    (intensity / "F001_T1_AU12.csv").write_text("0,0\n1,2\n2,5\n3,9\n")
    seq = dataset(root=root, au_dir=tmp_path / "AU").load(next(s for s in dataset(root=root).samples() if s.key == "F001_T1"))
    strengths = [{au: value[0] for au, value in frame.metadata["action_units"].items()} for frame in seq.frames]
    assert strengths == [{6: 0.0, 12: 0.0}, {6: 1.0, 12: 0.4}, {6: 1.0, 12: 1.0}, {6: 0.0, 12: 0.0}]


def test_bad_au_intensity_file_names_file_and_line(tmp_path):
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1",), frames=2)
    (tmp_path / "AU").mkdir()
    (tmp_path / "AU" / "F001_T1_AU12.csv").write_text("0,1\n1,7\n")
    ds = dataset(root=root, au_dir=tmp_path / "AU")
    with pytest.raises(DatasetError, match=r"F001_T1_AU12.csv: line 2: expected 'frame,intensity' with an intensity 0-5"):
        ds.load(ds.samples()[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty action-unit CSV"),
        ("frame,notes\n0,x\n", r"line 1: no action-unit columns"),
        ("frame,AU1\n0,1\nzero,1\n", r"line 3: expected a frame number and integer AU codes"),
        ("frame,AU1\n0,yes\n", r"line 2: expected a frame number"),
    ],
)
def test_bad_au_csv_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "F001_T1.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=rf"F001_T1\.csv: {message}"):
        read_au_csv(path)


def test_tolerant_layout_and_unparseable_files(tmp_path):
    root = tmp_path / "BP4D"
    for subject in ("F003", "M004"):
        for frame in range(2):
            write_obj(root / "3D" / f"{subject}_T5" / f"{subject}_T5_{frame:04d}.obj", *tetrahedron())
    write_obj(root / "3D" / "readme_mesh.obj", *tetrahedron())
    ds = dataset(root=root)
    with pytest.warns(UserWarning, match=r"skipped 1 \.obj file.*3D/readme_mesh\.obj"):
        samples = ds.samples()
    assert [(s.key, s.label, s.attributes["frames"]) for s in samples] == [("F003_T5", "fear", 2), ("M004_T5", "fear", 2)]


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"bp4d: root .*nowhere.* does not exist"):
        dataset(root=tmp_path / "nowhere").samples()
    root = bp4d_tree(tmp_path / "BP4D", tasks=("T1",), frames=2)
    with pytest.raises(DatasetError, match=r"no \.ply files under"):
        dataset(root=root, suffix="ply").samples()
    with pytest.raises(DatasetError, match=r"subject\(s\) F099 not found .*found: F001, M002"):
        dataset(root=root, subjects=["f099"]).samples()
    assert [s.key for s in dataset(root=root, subjects=["f001"]).samples()] == ["F001_T1"]
    with pytest.raises(DatasetError, match=r"no sequence .* is selected: tasks found \['T1'\], tasks labelled \['T2'\]"):
        dataset(root=root, task_labels={"T2": "sadness"}).samples()
    with pytest.raises(DatasetError, match=r"au_dir .*missing.* is not a folder"):
        ds = dataset(root=root, au_dir=tmp_path / "missing")
        ds.load(ds.samples()[0])
    with pytest.raises(DatasetError, match=r"no sample 'F001_T9'"):
        dataset(root=root).load(Sample("F001_T9", "fear", "F001"))
    write_obj(root / "F001" / "T1" / "extra" / "0001.obj", *tetrahedron())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatasetError, match=r"frame 1 of F001 T1 appears twice: F001/T1/0001\.obj and F001/T1/extra/0001\.obj"):
            dataset(root=root).samples()

"""Fuzzing every reader of user files: targets, inputs and the rule they must obey.

A *target* is a reader with a small valid file of its format (the seed). Inputs are random
bytes or the seed mutated (bytes flipped, cut, inserted, repeated, numbers swapped for
extreme ones). The rule, checked by :func:`run_one`: the reader returns, or raises an
:class:`~affectkit.errors.AffectkitError` whose message names the file; anything else
(another exception, a numeric RuntimeWarning such as numpy's overflow warning, or a peak
allocation above :data:`ALLOCATION_CAP`) is a failure.
tests/test_fuzz.py runs a few hundred inputs per target; benchmarks/fuzz.py runs 10,000
and reports the counts.
"""

from __future__ import annotations

import io
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dataset_files
import numpy as np
import PIL.Image
import torch
import trimesh
from affectkit_apps.uploads import UploadLimits, read_upload
from hypothesis import strategies as st

from affectkit.data.mesh import Mesh
from affectkit.data.mesh_formats import load_mesh
from affectkit.errors import AffectkitError
from affectkit.factory import build_model
from affectkit.model.checkpoint import META_FILE, CheckpointMeta, save_checkpoint
from affectkit.recipe import load_recipe
from affectkit.serve.inference import Predictor
from affectkit_plugins.bnt import read_bnt, read_lm3
from affectkit_plugins.folder import FolderDataset
from affectkit_plugins.vrml import read_bnd, read_wrl, write_wrl

ROOT = Path(__file__).parent.parent

#: No input of these few-kilobyte files may make a reader allocate more than this.
ALLOCATION_CAP = 64 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    file: str  # the fuzzed file's path in the target's folder; errors must name its first part
    seed: Callable[[Path], bytes]  # writes what the file needs beside it; returns the file's bytes
    read: Callable[[Path], object]


def _small_mesh() -> Mesh:
    sphere = trimesh.creation.icosphere(subdivisions=1)
    colors = np.linspace(0.0, 1.0, len(sphere.vertices) * 3).reshape(-1, 3)
    return Mesh(sphere.vertices, sphere.faces, colors=colors)


def _trimesh_bytes(file_type: str) -> Callable[[Path], bytes]:
    def seed(folder: Path) -> bytes:
        mesh = _small_mesh()
        colors = (mesh.colors * 255).astype(np.uint8)
        exported = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=colors, process=False).export(file_type=file_type)
        return exported.encode() if isinstance(exported, str) else exported

    return seed


def _wrl(folder: Path) -> bytes:
    return write_wrl(_small_mesh(), folder / "seed.wrl").read_bytes()


def _bnt(folder: Path) -> bytes:
    return dataset_files.write_bnt(folder / "seed.bnt", dataset_files.grid_planes(dataset_files.sphere_cap(5, 5))).read_bytes()


def _lm3(folder: Path) -> bytes:
    return dataset_files.write_lm3(folder / "seed.lm3", ["Nose tip", "Chin middle"], np.array([[4, -4, 10], [4, -8, 6]])).read_bytes()


def _bnd(folder: Path) -> bytes:
    return "".join(f"{i} {x:.4f} {y:.4f} {z:.4f}\n" for i, (x, y, z) in enumerate(np.random.default_rng(0).normal(size=(8, 3)))).encode()


def _manifest(folder: Path) -> bytes:
    return (dataset_files.folder_tree(folder) / "manifest.csv").read_bytes()


def _read_manifest(path: Path) -> object:
    dataset = FolderDataset(FolderDataset.Options(manifest=path))
    return [dataset.load(sample) for sample in dataset.samples()]


def _recipe(folder: Path) -> bytes:
    return (ROOT / "recipes" / "quick.yaml").read_bytes()


def _upload(suffix: str) -> Callable[[Path], bytes]:
    """An app upload: a mesh with a texture (GLB), an OFF file, or a zip of three PLY frames."""

    def seed(folder: Path) -> bytes:
        mesh = _small_mesh()
        if suffix == ".glb":
            uv = (mesh.vertices[:, :2] + 1) / 2
            texture = PIL.Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3))
            visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
            return trimesh.Trimesh(mesh.vertices, mesh.faces, visual=visual, process=False).export(file_type="glb")
        if suffix == ".off":
            return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(file_type="off").encode()
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as frames:
            for index in range(3):
                moved = trimesh.Trimesh(mesh.vertices * (1 + 0.05 * index), mesh.faces, process=False)
                frames.writestr(f"frames/{index:03d}.ply", moved.export(file_type="ply"))
        return archive.getvalue()

    return seed


def _read_upload(path: Path) -> object:
    return read_upload(path.name, path.read_bytes(), UploadLimits())


def _checkpoint(folder: Path) -> bytes:
    """A small model's folder (weights, prompt features, digests); its checkpoint.json is fuzzed."""
    recipe = load_recipe(ROOT / "recipes" / "quick.yaml", ["render.size=32", "render.cache_dir=null"])
    torch.manual_seed(0)
    model = build_model(recipe.model, num_views=3, in_channels=3)
    labels = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    meta = CheckpointMeta.for_recipe(recipe, labels, [[f"a {label} face"] for label in labels], 3, 3, 1, {"val_accuracy": 0.5}, [])
    return (save_checkpoint(folder / "fuzzed-model", model, meta) / META_FILE).read_bytes()


def _read_checkpoint(path: Path) -> object:
    return Predictor.from_checkpoint(path.parent)


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("ply", "input.ply", _trimesh_bytes("ply"), load_mesh),
        Target("obj", "input.obj", _trimesh_bytes("obj"), load_mesh),
        Target("wrl", "input.wrl", _wrl, read_wrl),
        Target("bnt", "input.bnt", _bnt, read_bnt),
        Target("lm3", "input.lm3", _lm3, read_lm3),
        Target("bnd", "input.bnd", _bnd, read_bnd),
        Target("manifest", "input.csv", _manifest, _read_manifest),
        Target("recipe", "input.yaml", _recipe, load_recipe),
        Target("upload-zip", "upload.zip", _upload(".zip"), _read_upload),
        Target("upload-off", "upload.off", _upload(".off"), _read_upload),
        Target("upload-glb", "upload.glb", _upload(".glb"), _read_upload),
        Target("checkpoint", f"fuzzed-model/{META_FILE}", _checkpoint, _read_checkpoint),
    )
}

def alias_bomb() -> str:
    """Under 1 KB of YAML whose aliases expand to about 10^9 values."""
    text, previous = 'name: x\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n', "a"
    for key in "bcdefghi":
        text += f"{key}: &{key} [{', '.join([f'*{previous}'] * 9)}]\n"
        previous = key
    return text + "train: {epochs: *i}\n"


EXTREME_NUMBERS = [b"0", b"-1", b"-0", b"1e308", b"-1e308", b"nan", b"inf", b"4294967295", b"4294967296", b"99999999999999999999", b"2147483648", b"0x10", b"1.5"]


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with one to five random edits."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "delete", "repeat", "number"]))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * draw(st.integers(1, 8))
        elif edit == "number":
            digits = [i for i in range(len(data)) if 48 <= data[i] <= 57]
            if digits:
                start = end = draw(st.sampled_from(digits))
                while end < len(data) and (48 <= data[end] <= 57 or data[end] in b".-e"):
                    end += 1
                data[start:end] = draw(st.sampled_from(EXTREME_NUMBERS))
    return bytes(data)


def inputs(seed: bytes) -> st.SearchStrategy[bytes]:
    """Mostly mutated seeds, some plain random bytes."""
    return st.one_of(mutations(seed), mutations(seed), mutations(seed), st.binary(max_size=4096))


class FuzzFailure(AssertionError):
    """A reader broke the rule on one input."""


def run_one(target: Target, folder: Path, data: bytes) -> str:
    """``""`` if the input was read, else the affectkit error's message; raises
    :class:`FuzzFailure` for anything else."""
    path = folder / target.file
    path.write_bytes(data)
    named = Path(target.file).parts[0]
    tracemalloc.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            target.read(path)
            message = ""
        except AffectkitError as exc:
            message = str(exc)
            if named not in message:
                raise FuzzFailure(f"{target.name}: the error does not name the file: {exc}") from exc
        except Exception as exc:
            raise FuzzFailure(f"{target.name}: unhandled {type(exc).__name__}: {exc}") from exc
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    numeric = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if numeric:
        raise FuzzFailure(f"{target.name}: the reader let a warning through: {numeric[0].message}")
    if peak > ALLOCATION_CAP:
        raise FuzzFailure(f"{target.name}: {len(data)} bytes made the reader allocate {peak / 2**20:.0f} MiB")
    return message


def seeded_folder(target: Target, folder: Path) -> tuple[Path, bytes]:
    """``folder`` (empty, the caller's to remove) with whatever the target's seed needs, and
    the seed's bytes; the seed is read once untraced, so that modules a reader imports lazily
    count for nothing."""
    seed = target.seed(folder)
    path = folder / target.file
    path.write_bytes(seed)
    target.read(path)
    return folder, seed

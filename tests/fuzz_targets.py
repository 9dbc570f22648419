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

import tempfile
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dataset_files
import numpy as np
import trimesh
from hypothesis import strategies as st

from affectkit.errors import AffectkitError
from affectkit.mesh import Mesh
from affectkit.mesh_formats import load_mesh
from affectkit.recipe import load_recipe
from affectkit_plugins.bnt import read_bnt, read_lm3
from affectkit_plugins.folder import FolderDataset
from affectkit_plugins.vrml import read_bnd, read_wrl, write_wrl

#: No input of these few-kilobyte files may make a reader allocate more than this.
ALLOCATION_CAP = 64 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    name: str
    suffix: str
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
    return (Path(__file__).parent.parent / "recipes" / "quick.yaml").read_bytes()


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("ply", ".ply", _trimesh_bytes("ply"), load_mesh),
        Target("obj", ".obj", _trimesh_bytes("obj"), load_mesh),
        Target("wrl", ".wrl", _wrl, read_wrl),
        Target("bnt", ".bnt", _bnt, read_bnt),
        Target("lm3", ".lm3", _lm3, read_lm3),
        Target("bnd", ".bnd", _bnd, read_bnd),
        Target("manifest", ".csv", _manifest, _read_manifest),
        Target("recipe", ".yaml", _recipe, load_recipe),
    )
}

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
    path = folder / f"input{target.suffix}"
    path.write_bytes(data)
    tracemalloc.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            target.read(path)
            message = ""
        except AffectkitError as exc:
            message = str(exc)
            if path.name not in message:
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


def seeded_folder(target: Target) -> tuple[Path, bytes]:
    """A fresh folder holding whatever the target's seed needs, and the seed's bytes; the
    seed is read once untraced, so that modules a reader imports lazily count for nothing."""
    folder = Path(tempfile.mkdtemp(prefix=f"affectkit-fuzz-{target.name}-"))
    seed = target.seed(folder)
    path = folder / f"input{target.suffix}"
    path.write_bytes(seed)
    target.read(path)
    return folder, seed

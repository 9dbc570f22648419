"""Build affectkit's compact ICT-FaceKit model file from the ICT-FaceKit repository.

ICT-FaceKit (USC Institute for Creative Technologies, MIT licence) ships its morphable
model as 155 OBJ files: a generic neutral head, 100 identity PCA modes and 53 ARKit-named
expression blendshapes, each a full 26,719-vertex mesh in centimetres. This script keeps
the parts a 3D scanner sees (the face area, head and neck, mouth socket, the front teeth
and the eyeballs), turns every mode into a displacement from the neutral head in
millimetres, quantises each mode to int8 with a scale of its own, and writes one .npz
archive with fixed zip timestamps, so the same sources give the same bytes::

    python tools/build_facekit_model.py PATH/TO/ICT-FaceKit [--out affectkit_plugins/facekit/ict_face_model.npz]

It prints the file's SHA-256, which ``affectkit_plugins.facekit.model.MODEL_SHA256``
records. The source repository is https://github.com/ICT-VGL/ICT-FaceKit (any checkout
or archive of it: only ``FaceXModel/`` is read).
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from affectkit.model.digests import file_sha256

#: (name, first vertex, end vertex) of the parts kept, in ICT-FaceKit's vertex numbering
#: (its README's "Face Model Topology" and "Teeth Details" tables).
PARTS: tuple[tuple[str, int, int], ...] = (
    ("face", 0, 9409),
    ("head_neck", 9409, 11248),
    ("mouth_socket", 11248, 13294),
    ("teeth_upper", 17730, 18556),  # 1st bicuspid upper left .. 1st bicuspid upper right
    ("teeth_lower", 19952, 20746),  # 1st bicuspid lower left .. 1st bicuspid lower right
    ("eyeball_left", 21451, 23021),
    ("eyeball_right", 23021, 24591),
)
IDENTITY_MODES = 100
CM_TO_MM = 10.0
EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: reproducible bytes


def read_vertices(path: Path) -> np.ndarray:
    """The ``v x y z`` rows of an OBJ file, ``[N, 3]`` float64."""
    rows = [line[2:] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(" ".join(rows).split(), dtype=np.float64).reshape(-1, 3)


def read_triangles(path: Path) -> np.ndarray:
    """The OBJ's polygons (``f a/t b/t ...``, 1-based) fanned into triangles, ``[F, 3]``."""
    triangles = []
    for line in path.read_text().splitlines():
        if line.startswith("f "):
            corners = [int(token.split("/")[0]) - 1 for token in line.split()[1:]]
            triangles += [(corners[0], corners[i], corners[i + 1]) for i in range(1, len(corners) - 1)]
    return np.array(triangles, dtype=np.int64)


def quantise(modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[K, N, 3]`` float -> int8 codes and a float32 scale per mode (code * scale = mm)."""
    scale = np.abs(modes).reshape(len(modes), -1).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    codes = np.round(modes / scale[:, None, None]).clip(-127, 127).astype(np.int8)
    return codes, scale


def build(source: Path) -> dict[str, np.ndarray]:
    folder = source / "FaceXModel"
    config = json.loads((folder / "vertex_indices.json").read_text())
    neutral = read_vertices(folder / "generic_neutral_mesh.obj")
    keep = np.concatenate([np.arange(start, end) for _, start, end in PARTS])
    new_index = np.full(len(neutral), -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    triangles = new_index[read_triangles(folder / "generic_neutral_mesh.obj")]
    triangles = triangles[(triangles >= 0).all(axis=1)]
    part = np.concatenate([np.full(end - start, i) for i, (_, start, end) in enumerate(PARTS)])

    def modes(names: list[str]) -> np.ndarray:
        return np.stack([(read_vertices(folder / f"{name}.obj") - neutral)[keep] * CM_TO_MM for name in names])

    identity_codes, identity_scale = quantise(modes([f"identity{i:03d}" for i in range(IDENTITY_MODES)]))
    expression_names = list(config["expressions"])
    expression_codes, expression_scale = quantise(modes(expression_names))
    landmarks = new_index[np.array(config["idx_to_landmark_verts"])]
    assert (landmarks >= 0).all(), "a Multi-PIE landmark lies outside the kept parts"
    return {
        "neutral": (neutral[keep] * CM_TO_MM).astype(np.float32),
        "triangles": triangles.astype(np.uint16),
        "part": part.astype(np.uint8),
        "part_names": np.array([name for name, _, _ in PARTS]),
        "identity_codes": identity_codes,
        "identity_scale": identity_scale,
        "expression_names": np.array(expression_names),
        "expression_codes": expression_codes,
        "expression_scale": expression_scale,
        "landmarks": landmarks.astype(np.int32),
    }


def write_npz(arrays: dict[str, np.ndarray], out: Path) -> str:
    """Write ``arrays`` as a deflated .npz with fixed timestamps; return its SHA-256."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    return file_sha256(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a checkout of github.com/ICT-VGL/ICT-FaceKit")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "affectkit_plugins/facekit/ict_face_model.npz")
    args = parser.parse_args()
    arrays = build(args.source)
    digest = write_npz(arrays, args.out)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, {len(arrays['neutral'])} vertices, "
          f"{len(arrays['triangles'])} triangles, sha256 {digest}")


if __name__ == "__main__":
    main()

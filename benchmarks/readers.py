"""Time the VRML reader against trimesh's OBJ loader on a BU-4DFE-sized synthetic face.

Writes one synthetic face (about 35,000 vertices, 70,000 triangles) as ``.wrl`` (per-vertex
colours, as the synthetic BU-3DFE layout has it), as a textured ``.wrl`` (``texCoord`` +
``texCoordIndex`` + a PNG, as real BU-3DFE scans have it), as a worst case where every
face corner has its own texture coordinate (every vertex is split), and as ``.obj``; reads
each ``--runs`` times and prints the best time per reader as JSON::

    .venv/bin/python benchmarks/readers.py [--vertices 35000] [--runs 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh

from affectkit.data.mesh import Mesh
from affectkit_plugins.synthetic import SyntheticDataset
from affectkit_plugins.vrml import format_wrl, read_wrl, write_wrl


def per_corner_uv_wrl(textured: Mesh, path: Path) -> Path:
    """``textured`` with one texture coordinate per face corner (``texCoordIndex`` 0, 1, 2, -1, ...)."""
    text = format_wrl(textured, texture_url=path.with_suffix(".png").name)
    head = text[: text.index("        texCoord TextureCoordinate {")]
    tail = text[text.rindex("      }\n    }\n  ]\n}") :]  # the end of the IndexedFaceSet onwards
    corners = textured.uv[textured.faces.ravel()] + 0.25 / 512  # all distinct from the per-vertex ones
    index = np.concatenate([np.arange(len(corners)).reshape(-1, 3), np.full((len(textured.faces), 1), -1)], axis=1)
    uv_rows = ",\n".join(f"{u:.6f} {v:.6f}" for u, v in corners)
    index_rows = ",\n".join(", ".join(map(str, row)) for row in index.tolist())
    path.write_text(
        head + f"        texCoord TextureCoordinate {{ point [\n{uv_rows}\n] }}\n"
        f"        texCoordIndex [\n{index_rows}\n]\n" + tail
    )
    return path


def best_of(runs: int, read: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=35000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()

    dataset = SyntheticDataset(SyntheticDataset.Options(subjects=1, intensities=[4], vertices=args.vertices))
    face = dataset.load(dataset.samples()[0])
    xy = face.vertices[:, :2]
    uv = (xy - xy.min(0)) / np.ptp(xy, axis=0)
    image = (np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8)
    textured = Mesh(face.vertices, face.faces, uv=uv, texture=image)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "wrl_colours": write_wrl(face, folder / "face_colours.wrl"),
            "wrl_textured": write_wrl(textured, folder / "face_textured.wrl", texture_name="face_textured.png"),
            "wrl_per_corner_uv": per_corner_uv_wrl(textured, folder / "face_textured_corners.wrl"),
            "obj": folder / "face.obj",
        }
        (folder / "face_textured_corners.png").write_bytes((folder / "face_textured.png").read_bytes())
        trimesh.Trimesh(face.vertices, face.faces, process=False).export(str(files["obj"]))
        readers: dict[str, Callable[[], object]] = {
            "read_wrl(wrl_colours)": lambda: read_wrl(files["wrl_colours"]),
            "read_wrl(wrl_textured)": lambda: read_wrl(files["wrl_textured"]),
            "read_wrl(wrl_per_corner_uv)": lambda: read_wrl(files["wrl_per_corner_uv"]),
            "trimesh.load(obj)": lambda: trimesh.load(str(files["obj"])),
            "trimesh.load(obj, process=False)": lambda: trimesh.load(str(files["obj"]), process=False, force="mesh"),
        }
        check = read_wrl(files["wrl_textured"])
        assert check.vertices.shape == face.vertices.shape and check.uv is not None and check.texture is not None
        split = read_wrl(files["wrl_per_corner_uv"])
        assert split.uv is not None and len(split.faces) == len(face.faces)
        seconds = {name: round(best_of(args.runs, read), 4) for name, read in readers.items()}
        report = {
            "vertices": int(len(face.vertices)),
            "vertices_after_split_per_corner_uv": int(len(split.vertices)),
            "faces": int(len(face.faces)),
            "runs": args.runs,
            "file_bytes": {name: path.stat().st_size for name, path in files.items()},
            "best_seconds": seconds,
            "wrl_vs_obj": round(seconds["read_wrl(wrl_colours)"] / seconds["trimesh.load(obj)"], 3),
            "numpy": np.__version__,
            "trimesh": trimesh.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

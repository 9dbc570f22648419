"""A hostile user's session, replayed: every case is a CLI call as a user would type it, as JSON.

Each case writes a bad input (a mesh that renders blank or has no face's size, a damaged or
oversized file, a hostile recipe or override, a tampered model folder) and runs
``affectkit``. A case passes when the command exits 1 or 2 with one ``error:`` line and no
traceback, and gives no label (``--json`` output holds none). docs/reliability.md has the
table::

    .venv/bin/python benchmarks/probe.py > benchmarks/results/probe.json
"""

from __future__ import annotations

import hashlib
import json
import platform
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh

from affectkit.data.mesh import Mesh, save_mesh
from affectkit.registry import create
from affectkit.serve.hub import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_targets import alias_bomb  # noqa: E402  (the hostile recipe the tests use)

QUICK = str(ROOT / "recipes" / "quick.yaml")


def face() -> Mesh:
    dataset = create("dataset", "facekit", {"subjects": 1, "seed": 4321, "intensities": [4]})
    return dataset.load(dataset.samples()[0])


def write_mesh(folder: Path, name: str, vertices: np.ndarray, faces: np.ndarray) -> str:
    return str(save_mesh(Mesh(vertices, faces), folder / name))


def write_bytes(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


def glb(mesh: Mesh) -> bytes:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(file_type="glb")


def tampered_model(folder: Path, name: str, edit: Callable[[Path, dict], None]) -> str:
    """A copy of the shipped model with ``edit`` applied to its folder and checkpoint.json."""
    import shutil

    copy = folder / name
    shutil.copytree(DEFAULT_MODEL, copy)
    document = json.loads((copy / "checkpoint.json").read_text())
    edit(copy, document)
    (copy / "checkpoint.json").write_text(json.dumps(document))
    return str(copy)


def nan_weights(copy: Path, document: dict) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(copy / "model.safetensors"))
    state["logit_scale"] = state["logit_scale"] * float("nan")
    save_file(state, str(copy / "model.safetensors"))
    document["sha256"]["model.safetensors"] = hashlib.sha256((copy / "model.safetensors").read_bytes()).hexdigest()


def cases(folder: Path) -> dict[str, list[str]]:
    """Case name -> the CLI arguments."""
    scan = face()
    v, f = scan.vertices, scan.faces
    outlier = v.copy()
    outlier[0] = 1e30
    big_chunk = bytearray(glb(scan))
    struct.pack_into("<I", big_chunk, 20 + struct.unpack_from("<I", big_chunk, 12)[0], 2_000_000_000)
    two_meshes = trimesh.Scene([trimesh.creation.box(), trimesh.creation.icosphere()]).export(file_type="glb")
    deep = "name: x\nmodel: " + "[" * 5000 + "]" * 5000 + "\n"
    (folder / "empty").mkdir()
    not_a_folder = write_bytes(folder, "notes.txt", b"a file, not a folder")
    predict = ["predict", "--json"]
    good = write_mesh(folder, "good.ply", v, f)

    def with_model(name: str, edit: Callable[[Path, dict], None]) -> list[str]:
        """Predict a good scan with a tampered copy of the shipped model."""
        return [*predict, "--model", tampered_model(folder, name, edit), good]

    return {
        "mesh: every vertex at one point": [*predict, write_mesh(folder, "point.ply", np.ones_like(v), f)],
        "mesh: one vertex at 1e30": [*predict, write_mesh(folder, "outlier.ply", outlier, f)],
        "mesh: scaled by 1e-30": [*predict, write_mesh(folder, "tiny.ply", v * 1e-30, f)],
        "mesh: scaled by 1e30": [*predict, write_mesh(folder, "huge.ply", v * 1e30, f)],
        "mesh: a face 50 times its size": [*predict, write_mesh(folder, "giant.ply", v * 50.0, f)],
        "mesh: a mm face read as metres": [*predict, "--units", "m", good],
        "mesh: random bytes": [*predict, write_bytes(folder, "noise.ply", np.random.default_rng(0).bytes(4096))],
        "mesh: OFF header with a non-ASCII digit": [*predict, write_bytes(folder, "bad.off", "OFF\n3\u00b2 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n".encode())],
        "mesh: GLB chunk claiming 2 GB": [*predict, write_bytes(folder, "chunk.glb", bytes(big_chunk))],
        "mesh: glTF scene of two meshes": [*predict, write_bytes(folder, "scene.glb", two_meshes)],
        "mesh: a folder of no frames": [*predict, str(folder / "empty")],
        "mesh: no such file": [*predict, str(folder / "missing.ply")],
        "model: digests deleted": with_model("nodigest", lambda c, d: d.pop("sha256")),
        "model: NaN weights": with_model("nan", nan_weights),
        "model: labels and prompts disagree": with_model("labels", lambda c, d: d["inference"]["labels"].append("contempt")),
        "model: embed_dim 10^8": with_model("dim", lambda c, d: d["inference"]["architecture"].update(embed_dim=10**8)),
        "model: weights truncated": with_model("cut", lambda c, d: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes()[:1000])),
        "model: unknown encoder name": with_model("enc", lambda c, d: d["inference"]["architecture"]["image_encoder"]["options"].update(model="resnet10x")),
        "model: unknown view": with_model("view", lambda c, d: d["inference"]["input"].update(views=["front", "sideways", "right"])),
        "recipe: YAML alias bomb": ["recipe", "validate", write_bytes(folder, "bomb.yaml", alias_bomb().encode())],
        "recipe: 5,000 nested brackets": ["recipe", "validate", write_bytes(folder, "deep.yaml", deep.encode())],
        "recipe: a folder": ["recipe", "validate", str(folder)],
        "recipe: not UTF-8": ["recipe", "validate", write_bytes(folder, "latin.yaml", "name: caf\xe9\n".encode("latin-1"))],
        "recipe: lr .inf": ["recipe", "validate", QUICK, "--set", "train.lr=.inf"],
        "recipe: views [.nan]": ["recipe", "validate", QUICK, "--set", "render.views=[.nan]"],
        "recipe: embed_dim 1e8": ["recipe", "validate", QUICK, "--set", "model.embed_dim=100000000"],
        "recipe: unknown timm model": ["recipe", "validate", QUICK, "--set", "model.image_encoder.options.model=resnet10x"],
        "override: a name as a list index": ["recipe", "validate", QUICK, "--set", "render.views.x=front"],
        "override: list index out of range": ["recipe", "validate", QUICK, "--set", "render.views.7=front"],
        "run: output folder inside a file": ["run", QUICK, "--set", f"output.dir={not_a_folder}/runs", "render.cache_dir=null"],
    }


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="affectkit-probe-") as tmp:
        for name, args in cases(Path(tmp)).items():
            done = subprocess.run([sys.executable, "-m", "affectkit", *args], capture_output=True, text=True, timeout=600, cwd=tmp)
            records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            result = {
                "exit": done.returncode,
                "traceback": "Traceback" in done.stderr + done.stdout,
                "labels": sum("label" in record for record in records),
                "message": next((r["error"] for r in records if "error" in r), errors[0] if errors else "")[:300].replace(tmp, "$TMP").replace(str(ROOT), "$REPO"),
            }
            result["passed"] = result["exit"] in (1, 2) and not result["traceback"] and not result["labels"] and bool(result["message"])
            results[name] = result
    print(
        json.dumps(
            {
                "cases": len(results),
                "passed": sum(r["passed"] for r in results.values()),
                "tracebacks": sum(r["traceback"] for r in results.values()),
                "labels_given": sum(r["labels"] for r in results.values()),
                "results": results,
                "python": platform.python_version(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

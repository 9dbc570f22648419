"""Scans as they come: accuracy against head pose, units and up axis, and the aligner's error.

Two parts, as JSON (``benchmarks/results/pose.json``) and a plot (``docs/pose.png``):

* **the aligner** (:func:`affectkit.data.face_frame.find_frame`): each scan is turned by a random
  known rotation (yaw ±45°, pitch ±30°, roll ±30°; half of them exported Z-up) and written
  in a random unit; the angle between the turn undone by the aligner and the scan's own
  upright frame is its error (median and 95th percentile), with and without landmarks, and
  how often the unit was right. On facekit people generated without pose jitter the
  upright frame is known exactly, so their absolute error (the turn the aligner puts on an
  upright face of a new person) is reported too.
* **accuracy** of each model given (``--model``, default the shipped one; ``--before``, a
  model that takes scans as they come, for comparison) on held-out people of both face
  generators (facekit and synthetic, population seed 1000, no model trained on either),
  upright and turned one axis at a time, in each unit and Z-up::

    .venv/bin/python benchmarks/pose.py --before /tmp/before-model --before-name "..."
    .venv/bin/python benchmarks/pose.py --keep-before   # the before rows of the last run kept
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from affectkit.data.face_frame import UNITS, find_frame, head_rotation
from affectkit.data.mesh import Mesh
from affectkit.errors import AffectkitError
from affectkit.factory import build_dataset
from affectkit.recipe import ComponentRef
from affectkit.serve.inference import Predictor

#: a scan exported Z-up: its +y (up) becomes +z, its +z (facing) becomes -y
Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
POSES = {
    "yaw": (-45, -30, -15, 15, 30, 45),
    "pitch": (-30, -15, 15, 30),
    "roll": (-30, -15, 15, 30),
}
SETS = {
    "facekit (new people)": ComponentRef(name="facekit", options={"subjects": 10, "intensities": [4], "seed": 1000}),
    "synthetic (another face generator)": ComponentRef(name="synthetic", options={"subjects": 10, "intensities": [4], "seed": 1000}),
}


def as_scanned(mesh: Mesh, rotation: np.ndarray, unit: str = "mm", landmarks: bool = True) -> Mesh:
    """``mesh`` (mm) turned by ``rotation`` and written in ``unit``."""
    marks = None if mesh.landmarks is None or not landmarks else (mesh.landmarks @ rotation.T) / UNITS[unit]
    return Mesh((mesh.vertices @ rotation.T) / UNITS[unit], mesh.faces, landmarks=marks, source=mesh.source)


def degrees_between(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip((np.trace(a @ b.T) - 1) / 2, -1.0, 1.0))))


def variants() -> dict[str, tuple[np.ndarray, str]]:
    """Name -> (rotation, unit) of every variant the accuracy table has."""
    found = {"upright": (np.eye(3), "mm")}
    for axis, angles in POSES.items():
        for angle in angles:
            found[f"{axis} {angle:+d}°"] = (head_rotation(*[angle if a == axis else 0 for a in POSES]), "mm")
    for unit in ("m", "cm", "inch"):
        found[f"in {unit}"] = (np.eye(3), unit)
    found["Z-up"] = (Z_UP, "mm")
    return found


def aligner_errors(scans: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rows: dict = {}
    for name, options in (("facekit", {"pose": 0.0}), ("synthetic", {})):
        dataset = build_dataset(ComponentRef(name=name, options={"subjects": 10, "intensities": [3, 4], "seed": 1000, **options}))
        samples = dataset.samples()[:: max(1, len(dataset.samples()) // scans)][:scans]
        errors: dict[str, list[float]] = {"with landmarks": [], "without landmarks": []}
        absolute, units_right, seconds = [], 0, []
        for sample in samples:
            face = dataset.load(sample)
            upright = find_frame(Mesh(face.vertices, face.faces))
            if name == "facekit":
                absolute.append(degrees_between(np.asarray(upright.rotation), np.eye(3)))
            rotation = head_rotation(*(rng.uniform(-1, 1, 3) * (45, 30, 30)))
            rotation = rotation @ Z_UP if rng.uniform() < 0.5 else rotation
            unit = str(rng.choice(list(UNITS)))
            for which, marks in (("with landmarks", True), ("without landmarks", False)):
                if which == "with landmarks" and (face.landmarks is None or len(face.landmarks) != 68):
                    continue  # the fit starts from landmarks in the 68-point Multi-PIE layout only
                start = time.perf_counter()
                frame = find_frame(as_scanned(face, rotation, unit, marks))
                seconds.append(time.perf_counter() - start)
                errors[which].append(degrees_between(np.asarray(frame.rotation) @ rotation, np.asarray(upright.rotation)))
                units_right += frame.units == unit and which == "without landmarks"
        rows[name] = {
            **{
                which: {"scans": len(e), "median_deg": round(float(np.median(e)), 2), "p95_deg": round(float(np.percentile(e, 95)), 2), "over_20_deg": int(np.sum(np.array(e) > 20))}
                for which, e in errors.items()
                if e
            },
            "units_right": f"{units_right}/{len(samples)}",
            "seconds_per_scan": round(float(np.median(seconds)), 3),
            **(
                {"absolute_upright": {"median_deg": round(float(np.median(absolute)), 2), "p95_deg": round(float(np.percentile(absolute, 95)), 2)}}
                if absolute
                else {}
            ),
        }
    return rows


def labels_of(predictor: Predictor, scans: list[Mesh]) -> list[str | None]:
    """The predicted label of each scan (rendered 16 at a time, as training renders them;
    None for a scan the predictor refuses, which counts as wrong)."""
    found: list[str | None] = []
    for start in range(0, len(scans), 16):
        batch = scans[start : start + 16]
        try:
            rendered = [predictor.cache.render(batch)]
        except AffectkitError:
            rendered = []
            for scan in batch:
                try:
                    rendered.append(predictor.cache.render([scan]))
                except AffectkitError:
                    rendered.append(None)
        for views in rendered:
            if views is None:
                found.append(None)
                continue
            stacked = views.stack(predictor.inputs.maps).unsqueeze(1)  # [B, 1, V, C, H, W]
            _, logits = predictor.model.classify(stacked, predictor.classes.class_embeddings)
            found.extend(predictor.labels[i] for i in logits.argmax(-1).tolist())
    return found


@torch.no_grad()
def accuracies(model: str | None) -> dict:
    predictor = Predictor.from_pretrained(model)
    rows: dict = {}
    for set_name, ref in SETS.items():
        dataset = build_dataset(ref)
        samples = dataset.samples()
        faces = [dataset.load(sample) for sample in samples]
        rows[set_name] = {}
        for name, (rotation, unit) in variants().items():
            labels = labels_of(predictor, [as_scanned(face, rotation, unit) for face in faces])
            rows[set_name][name] = round(sum(label == s.label for label, s in zip(labels, samples, strict=True)) / len(samples), 4)
        rows[set_name]["scans"] = len(samples)
    return rows


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    for axis, ax in zip(POSES, axes, strict=True):
        angles = sorted((*POSES[axis], 0))
        for model, rows in results["accuracy"].items():
            for set_name, row in rows.items():
                ys = [row["upright"] if a == 0 else row[f"{axis} {a:+d}°"] for a in angles]
                ax.plot(angles, [100 * y for y in ys], marker="o", linestyle="-" if model == "after" else "--", label=f"{model}: {set_name.split(' ')[0]}")
        ax.set_xlabel(f"{axis} (degrees)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy against head pose, held-out people (seed 1000)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="the model to measure (default: the shipped one)")
    parser.add_argument("--before", default=None, help="a model to compare with, e.g. one that takes scans as they come")
    parser.add_argument("--before-name", default=None, help="what to call it in the table (default: its path)")
    parser.add_argument(
        "--keep-before",
        action="store_true",
        help="keep the before rows of --out instead of measuring --before again (right for a model that takes scans as they come: no aligner change moves its rows)",
    )
    parser.add_argument("--scans", type=int, default=60, help="scans per generator for the aligner's error")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pose.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/pose.png"))
    args = parser.parse_args()
    if args.keep_before and args.before:
        parser.error("--keep-before keeps the before rows of --out; --before would measure them again: give one")
    kept = json.loads(args.out.read_text()) if args.keep_before and args.out.is_file() else None
    if args.keep_before and (kept is None or "before" not in kept.get("accuracy", {})):
        parser.error(f"--keep-before: {args.out} has no before rows to keep; measure them with --before")
    results = {"machine": platform.machine(), "aligner": aligner_errors(args.scans), "accuracy": {}}
    models = {"after": args.model, **({"before": args.before} if args.before else {})}
    for name, model in models.items():
        results["accuracy"][name] = accuracies(model)
        results.setdefault("models", {})[name] = (args.before_name if name == "before" else None) or model or "the shipped model"
    if kept is not None:
        results["accuracy"]["before"], results["models"]["before"] = kept["accuracy"]["before"], kept["models"]["before"]
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.plot)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Cold start: ``affectkit predict`` of one ~35,000-vertex scan in a fresh process, as a
ratio to the wall time of ``python -c "import torch"`` measured in the same run (the
machine's floor), and the time :meth:`Predictor.from_pretrained` takes in a process that
has imported torch. Commands alternate, so load on the machine hits all of them alike.
The model is the one shipped with affectkit unless ``--model``. Prints JSON::

    .venv/bin/python benchmarks/startup.py [--runs 7] > benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from affectkit.data.mesh import save_mesh
from affectkit_plugins.synthetic import SyntheticDataset

LOAD_SCRIPT = """
import sys, time
import torch
started = time.perf_counter()
from affectkit.serve.inference import Predictor
Predictor.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else None)
print(time.perf_counter() - started)
"""


def wall(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout


def stats(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(values), 3), "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0, "min": round(min(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model folder or hub id (default: the shipped model)")
    parser.add_argument("--vertices", type=int, default=35000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    model_args = ["--model", args.model] if args.model else []
    times: dict[str, list[float]] = {"import torch": [], "affectkit predict": [], "Predictor load": []}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = SyntheticDataset(SyntheticDataset.Options(subjects=1, vertices=args.vertices, intensities=[4]))
        face = dataset.load(dataset.samples()[0])
        scan = save_mesh(face, Path(tmp) / "face.ply")
        predict = [sys.executable, "-m", "affectkit", "predict", *model_args, str(scan)]
        load = [sys.executable, "-c", LOAD_SCRIPT, *([args.model] if args.model else [])]
        wall(predict)  # warm the file cache once: cold process, not cold disk
        for _ in range(args.runs):
            times["import torch"].append(wall([sys.executable, "-c", "import torch"])[0])
            times["affectkit predict"].append(wall(predict)[0])
            times["Predictor load"].append(float(wall(load)[1].strip().splitlines()[-1]))
    ratios = [p / t for p, t in zip(times["affectkit predict"], times["import torch"], strict=True)]
    print(
        json.dumps(
            {
                "model": args.model or "shipped (affectvlm-facekit)",
                "scan_vertices": len(face.vertices),
                "runs": args.runs,
                "seconds": {name: stats(values) for name, values in times.items()},
                "predict_over_import_torch": stats(ratios),
                "targets": {"predict_over_import_torch": 3.0, "predictor_load_seconds": 2.0},
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

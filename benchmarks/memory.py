"""Memory: peak resident set size of a training run, as JSON.

Runs ``affectkit run RECIPE`` in a subprocess and samples the resident memory of its whole
process tree (the driver, the Ray processes it starts and the Ray Train worker) every
``--interval`` seconds, as PSS (each shared page counted once, split among the processes
that map it, so the sum is what the machine spends). Reports the peak of the sum over the
tree, each kind of process's share at that moment, and the resident peaks the run itself
records (``ru_maxrss`` of the driver and the worker, in ``compute.json``)::

    .venv/bin/python benchmarks/memory.py [--recipe recipes/quick.yaml] > benchmarks/results/memory.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

MB = 1024 * 1024


def role(process: psutil.Process) -> str:
    """A short name for a process of the tree: driver, worker, or the Ray process's name."""
    try:
        title = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    if "affectkit" in title and "run" in title and "ray::" not in title:
        return "driver"
    if "RayTrainWorker" in title:
        return "train worker"
    return "ray: " + (process.name() or "other")


def sample_tree(root: psutil.Process) -> dict[str, float]:
    """PSS in MB per role of ``root`` and all its descendants, now."""
    usage: Counter[str] = Counter()
    for process in [root, *root.children(recursive=True)]:
        try:
            usage[role(process)] += process.memory_full_info().pss / MB
        except psutil.Error:
            continue
    return dict(usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/quick.yaml"))
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--set", dest="sets", nargs="*", default=[], help="recipe overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output.dir={tmp}/runs", f"render.cache_dir={tmp}/cache", *args.sets]
        command = [sys.executable, "-m", "affectkit", "run", str(args.recipe), "--set", *overrides]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        root = psutil.Process(child.pid)
        peak_total, at_peak = 0.0, {}
        while child.poll() is None:
            usage = sample_tree(root)
            if sum(usage.values()) > peak_total:
                peak_total, at_peak = sum(usage.values()), usage
            time.sleep(args.interval)
        if child.returncode:
            raise SystemExit(f"affectkit run exited {child.returncode}")
        (compute_file,) = Path(tmp, "runs").glob("*/2*/compute.json")
        compute = json.loads(compute_file.read_text())
    result = {
        "recipe": str(args.recipe),
        "overrides": args.sets,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "peak_tree_pss_mb": round(peak_total),
        "at_peak_pss_mb": {name: round(mb) for name, mb in sorted(at_peak.items(), key=lambda item: -item[1])},
        "peak_driver_rss_mb": round(compute["peak_rss_mb_driver"]),
        "peak_worker_rss_mb": round(compute["peak_rss_mb_worker"]),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

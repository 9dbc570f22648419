"""Run every benchmark, write its JSON to benchmarks/results/ and the tables into docs.

Each benchmark runs in its own process (its own thread settings and Ray session), one
after another so that none competes with another for the CPU; its log goes to
benchmarks/logs/NAME.log. Then benchmarks/report.py rewrites the tables in
docs/benchmarks.md and docs/cluster.md. ``make benchmarks`` installs the benchmark extra and runs this::

    .venv/bin/python benchmarks/run_all.py [--only render,overhead]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from report import DOCS, RESULTS, ROOT, write

BENCHMARKS: dict[str, list[str]] = {
    "readers": ["--runs", "7"],
    "render": ["--runs", "20"],
    "inference": ["--runs", "10"],
    "startup": ["--runs", "7"],
    "overhead": ["--epochs", "4"],
    "encoders": ["--rounds", "3"],
    "memory": [],
    "scaling": ["--layouts", "1x1,2x1,1x2", "--epochs", "3"],
    # on the procedural faces, where every loss reaches the target: speed of learning, not quality
    "convergence": ["--set", "render.size=32", "train.epochs=12", "data.dataset={name: synthetic, options: {subjects: 24}}"],
    "pose": [],
    "ablations": [],
    "transfer": ["--seeds", "0,1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    logs = ROOT / "benchmarks" / "logs"
    logs.mkdir(exist_ok=True)
    seconds: dict[str, float] = {}
    for name in chosen:
        started = time.perf_counter()
        print(f"benchmark {name} ...", flush=True)
        with (logs / f"{name}.log").open("w") as log:
            done = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *BENCHMARKS[name]],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        if done.returncode:
            sys.exit(f"benchmark {name} failed (exit {done.returncode}); see {logs / f'{name}.log'}")
        (RESULTS / f"{name}.json").write_text(done.stdout)
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"benchmark {name}: {seconds[name]:.0f} s", flush=True)
    if chosen == list(BENCHMARKS):
        summary = {"seconds": seconds, "total_seconds": round(sum(seconds.values()), 1)}
        (RESULTS / "run_all.json").write_text(json.dumps(summary, indent=2) + "\n")
    write(RESULTS)
    print(f"all done in {sum(seconds.values()) / 60:.1f} min; tables written to {', '.join(str(d.relative_to(ROOT)) for d in DOCS)}")


if __name__ == "__main__":
    main()

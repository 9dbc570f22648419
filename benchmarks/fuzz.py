"""Fuzz every reader of user files with many inputs and count what happened, as JSON.

The targets, inputs and rule are those of tests/test_fuzz.py (tests/fuzz_targets.py): the
reader returns, or raises an affectkit error naming the file, and never allocates more than
the cap. Here each target gets ``--inputs`` inputs from a fresh random seed, and every
failure is recorded instead of stopping the run::

    .venv/bin/python benchmarks/fuzz.py [--inputs 10000] > benchmarks/results/fuzz.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz_targets import (  # noqa: E402
    ALLOCATION_CAP,
    TARGETS,
    FuzzFailure,
    Target,
    inputs,
    run_one,
    seeded_folder,
)
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

POSITION = re.compile(r"\b(line|byte|offset|row|column|vertex|face|landmark|field)\b|:\d+", re.IGNORECASE)


def fuzz(name: str, count: int, random_seed: int) -> dict[str, object]:
    target = TARGETS[name]
    with tempfile.TemporaryDirectory(prefix=f"affectkit-fuzz-{name}-") as empty:
        return fuzz_target(target, count, random_seed, Path(empty))


def fuzz_target(target: Target, count: int, random_seed: int, empty: Path) -> dict[str, object]:
    """Fuzz ``target`` in the ``empty`` folder its files are written to."""
    folder, seed_bytes = seeded_folder(target, empty)
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    with_position = 0

    @seed(random_seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs(seed_bytes))
    def one(data: bytes) -> None:
        nonlocal with_position
        try:
            message = run_one(target, folder, data)
        except FuzzFailure as failure:
            failures[str(failure).split(":", 2)[1].strip()[:120]] += 1
            outcomes["failure"] += 1
            return
        outcomes["rejected" if message else "read"] += 1
        with_position += bool(message and POSITION.search(message.split(Path(target.file).name, 1)[-1]))

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one()
    return {
        "inputs": sum(outcomes.values()),
        "read": outcomes["read"],
        "rejected_with_affectkit_error": outcomes["rejected"],
        "rejections_naming_a_position": with_position,
        "failures": outcomes["failure"],
        "failure_kinds": dict(failures),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per reader")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random one, recorded)")
    args = parser.parse_args()
    random_seed = args.seed if args.seed is not None else random.randrange(2**32)
    readers = {name: fuzz(name, args.inputs, random_seed) for name in args.targets.split(",")}
    result = {
        "inputs_per_reader": args.inputs,
        "seed": random_seed,
        "allocation_cap_mib": ALLOCATION_CAP // 2**20,
        "readers": readers,
        "total_inputs": sum(r["inputs"] for r in readers.values()),
        "total_failures": sum(r["failures"] for r in readers.values()),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Every reader of user files, fuzzed (see tests/fuzz_targets.py for the rule).

A few hundred derandomised inputs per reader here; benchmarks/fuzz.py runs 10,000 per
reader and docs/reliability.md reports them.
"""

from __future__ import annotations

import pytest
from fuzz_targets import TARGETS, inputs, run_one, seeded_folder
from hypothesis import HealthCheck, given, settings

EXAMPLES = 150


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_reader_reads_its_seed_and_survives_fuzzed_inputs(name, tmp_path):
    target = TARGETS[name]
    folder, seed = seeded_folder(target, tmp_path)
    assert run_one(target, folder, seed) == ""  # the seed itself reads

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(inputs(seed))
    def survives(data: bytes) -> None:
        run_one(target, folder, data)

    survives()

"""The local Ray instance a run starts (``affectkit.train.ray_cluster``)."""

from __future__ import annotations

import subprocess
import sys

from cli_runs import ROOT


def test_the_setup_hook_of_a_local_instance_costs_its_processes_no_pytorch():
    """Every process of a local instance imports the module of its setup hook, and of the
    processes a run starts only the controller and the training workers use PyTorch: in the
    four others (Ray Train's helper actors) it cost each about 2 s of CPU and 600 MB."""
    probe = "import sys, affectkit.train.ray_cluster; print(sorted({'torch', 'pydantic', 'affectkit.recipe'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

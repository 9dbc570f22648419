"""The embedded default dataset: procedural synthetic 3D/4D facial expression scans.

No external face model and no licensed data: a procedural head (:mod:`.head`) is deformed
by FACS action units (:mod:`.action_units`) combined into the six basic expressions
(:mod:`.expressions`), served by the ``synthetic`` dataset (:mod:`.dataset`) and written
to disk by :func:`write_synthetic`.
"""

from pathlib import Path

from affectkit import hookimpl
from affectkit.registry import write_generated
from affectkit_plugins.synthetic.dataset import SyntheticDataset
from affectkit_plugins.synthetic.head import LANDMARKS

__all__ = ["LANDMARKS", "SyntheticDataset", "write_synthetic"]


@hookimpl
def register_datasets(register):
    register("synthetic", SyntheticDataset)


def write_synthetic(out_dir: Path, options: SyntheticDataset.Options, layout: str = "affectkit") -> Path:
    """Write ``SyntheticDataset(options)`` under ``out_dir`` (:func:`affectkit.registry.write_generated`)."""
    return write_generated(SyntheticDataset(options), "synthetic", out_dir, layout)

"""The embedded default dataset: procedural synthetic 3D/4D facial expression scans.

No external face model and no licensed data: a procedural head (:mod:`.head`) is deformed
by FACS action units (:mod:`.action_units`) combined into the six basic expressions
(:mod:`.expressions`), served by the ``synthetic`` dataset (:mod:`.dataset`) and written
to disk by :func:`.writer.write_synthetic`.
"""

from affectkit import hookimpl
from affectkit_plugins.synthetic.dataset import SyntheticDataset
from affectkit_plugins.synthetic.head import LANDMARKS
from affectkit_plugins.synthetic.writer import write_synthetic

__all__ = ["LANDMARKS", "SyntheticDataset", "write_synthetic"]


@hookimpl
def register_datasets(register):
    register("synthetic", SyntheticDataset)

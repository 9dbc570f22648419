"""The ``facekit`` dataset: realistic 3D/4D expression scans from a scan-based face model.

ICT-FaceKit (USC Institute for Creative Technologies, MIT licence; ``LICENSE-ICT-FaceKit``)
is a morphable model learnt from light-stage scans. Its identities (:mod:`.model`) show the
six basic emotions composed from FACS action units (:mod:`affectkit.data.facs`), and a scanner
simulation (:mod:`.scan`) makes them look like scans of different devices. Served by the
``facekit`` dataset (:mod:`.dataset`).
"""

from affectkit import hookimpl
from affectkit_plugins.facekit.dataset import FaceKitDataset
from affectkit_plugins.facekit.model import LANDMARKS

__all__ = ["LANDMARKS", "FaceKitDataset"]


@hookimpl
def register_datasets(register):
    register("facekit", FaceKitDataset)

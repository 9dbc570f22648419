"""The ``mixture`` dataset: several datasets read as one, e.g. both face generators.

Pretraining on many kinds of faces (``recipes/pretrain-faces.yaml``) needs scans of more
than one face model in one run. Each part is any registered dataset with its options;
every part must have the same labels in the same order. Sample keys and subject ids get the
part's index as a prefix (``0:S001``), so people of different parts never merge, and a
subject-independent split keeps every person on one side.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from affectkit import hookimpl
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, Sample
from affectkit.recipe import ComponentRef
from affectkit.registry import registry


class MixtureDataset(Dataset):
    """The samples of every part, one after another."""

    class Options(Options):
        parts: list[ComponentRef] = Field(min_length=1, description="the datasets to mix, each {name, options}")

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        reg = registry()
        self.parts = [reg.create("dataset", part.name, part.options) for part in options.parts]
        first = self.parts[0].labels
        for ref, part in zip(options.parts, self.parts, strict=True):
            if part.labels != first:
                raise DatasetError(
                    f"mixture: part {ref.name!r} has labels {', '.join(part.labels)}, the first part "
                    f"{', '.join(first)}; every part needs the same labels in the same order"
                )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.parts[0].labels

    def identity(self) -> dict[str, Any]:
        """Each part's name and identity, in order (subject ids carry the part's index)."""
        return {"parts": [{"name": ref.name, **part.identity()} for ref, part in zip(self.options.parts, self.parts, strict=True)]}

    def samples(self) -> list[Sample]:
        return [
            Sample(f"{i}:{s.key}", s.label, f"{i}:{s.subject}", {**s.attributes, "part": self.options.parts[i].name}, s.is_sequence)
            for i, part in enumerate(self.parts)
            for s in part.samples()
        ]

    def load(self, sample: Sample) -> Mesh | MeshSequence:
        index, _, key = sample.key.partition(":")
        _, _, subject = sample.subject.partition(":")
        inner = Sample(key, sample.label, subject, {k: v for k, v in sample.attributes.items() if k != "part"}, sample.is_sequence)
        return self.parts[int(index)].load(inner)


@hookimpl
def register_datasets(register):
    register("mixture", MixtureDataset)

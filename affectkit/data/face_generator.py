"""The base of datasets that make their faces rather than read them (``facekit``, ``synthetic``).

A generator has a population of numbered subjects (``S001``, ``S002``, ...) drawn from a
seed; every subject shows every emotion of :mod:`affectkit.data.facs` at every requested
intensity, or one sequence per emotion. This base lists those samples and finds any
subject's face; a generator implements :meth:`FaceGenerator.load` (and may describe its
subjects with :meth:`FaceGenerator.subject_attributes`). ``affectkit synth`` writes any
registered generator to disk in the file layout of a dataset that reads it back
(:func:`affectkit.registry.write_generated`), and the app's face controls draw from them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, ClassVar

from pydantic import Field

from affectkit.data.action_units import coded
from affectkit.data.facs import CODES, GENERATED_AUS, LABELS, NEUTRAL, label_index
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.performances import MAX_ACTIVATION, TAG_STRENGTH, Activations, Performances, activations, seeded_rng, timeline  # fmt: skip
from affectkit.errors import DatasetError
from affectkit.interfaces import Dataset, Options, Sample


def subject_name(index: int) -> str:
    """Subject number ``index + 1``: ``S001``."""
    return f"S{index + 1:03d}"


def subject_index(name: str) -> int:
    """``S001`` -> 0."""
    return int(name[1:]) - 1


def scaled(acts: Activations, factor: float) -> Activations:
    """``acts`` ``factor`` times as strong, within :data:`~affectkit.data.performances.MAX_ACTIVATION` per side."""
    if factor == 1.0:
        return acts
    return {au: (min(MAX_ACTIVATION, right * factor), min(MAX_ACTIVATION, left * factor)) for au, (right, left) in acts.items()}


class FaceGenerator(Dataset):
    """A dataset that makes its faces: any subject showing any expression, on demand."""

    #: how messages name this generator (its registered name)
    generator: ClassVar[str] = "generator"
    #: probability that a subject leaves out one secondary AU of an emotion's prototype
    missing_au_p: ClassVar[float] = 0.0

    class Options(Options):
        subjects: int = Field(20, ge=1, le=10000, description="number of subjects")
        seed: int = Field(0, ge=0, description="population seed: identities, performances and scans")
        intensities: list[Annotated[int, Field(ge=1, le=4)]] = Field(
            default_factory=lambda: [3, 4], min_length=1, description="expression intensities 1..4 (sequences peak at the highest)"
        )
        include_neutral: bool = Field(False, description="add one neutral scan (or sequence) per subject")
        sequences: bool = Field(False, description="4D: one sequence per subject and expression")
        frames: int = Field(25, ge=2, le=1000, description="frames per sequence")
        performances: Performances = Field(
            "prototypes",
            description="how subjects perform the emotions: one prototype each, or each subject its own "
            "EMFACS-7 prototype or major variant (docs/datasets.md)",
        )
        strength_jitter: float = Field(
            0.0, ge=0.0, le=0.9,
            description="each scan (or sequence) shows its expression this fraction stronger or weaker, drawn per scan (0: as the intensity says)",
        )  # fmt: skip

    options: Options

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS + ((NEUTRAL,) if self.options.include_neutral else ())

    def identity(self) -> dict[str, Any]:
        """The population seed: subject ``S001`` is the same person however many subjects,
        intensities or performances a run asks for."""
        return {"seed": self.options.seed}

    @property
    def landmark_names(self) -> tuple[str, ...]:
        """Names of the rows of every mesh's ``landmarks``."""
        raise NotImplementedError

    def subject_attributes(self, index: int) -> dict[str, Any]:
        """What the generator knows of subject ``index`` (sex, age group, ...): nothing by default."""
        return {}

    def subject_ids(self) -> list[str]:
        return [subject_name(i) for i in range(self.options.subjects)]

    def samples(self) -> list[Sample]:
        return list(self._samples.values())

    @cached_property
    def _samples(self) -> dict[str, Sample]:
        o = self.options
        intensities = sorted(set(o.intensities))
        out: dict[str, Sample] = {}
        for index, subject in enumerate(self.subject_ids()):
            attributes = self.subject_attributes(index)
            for label in self.labels:
                levels = [0] if label == NEUTRAL else intensities
                if o.sequences:  # labelled with its apex, which every sequence reaches
                    key = f"{subject}_{CODES[label]}"
                    units = self.action_units(index, label, levels[-1])
                    out[key] = Sample(key, label, subject, {**attributes, "intensity": levels[-1], "frames": o.frames}, is_sequence=True, action_units=units)
                    continue
                for level in levels:
                    key = f"{subject}_{CODES[label]}_{level}"
                    out[key] = Sample(key, label, subject, {**attributes, "intensity": level}, action_units=self.action_units(index, label, level))
        return out

    def activations(self, sample: Sample) -> Activations | list[Activations]:
        """The AU activations ``sample`` is made of: one set for a scan, one per frame of a sequence."""
        o, index = self.options, subject_index(sample.subject)
        level = int(sample.attributes["intensity"])
        factor = self.strength(index, sample.label, level)
        if sample.is_sequence:
            return [scaled(frame, factor) for frame in timeline(o.seed, index, sample.label, o.frames, level, self.missing_au_p, o.performances)]
        return scaled(activations(o.seed, index, sample.label, level, self.missing_au_p, o.performances), factor)

    def strength(self, index: int, label: str, level: int) -> float:
        """How strongly subject ``index`` shows ``label`` at ``level`` in its scan (or
        sequence): 1, or drawn within ``strength_jitter`` of it."""
        jitter = self.options.strength_jitter
        if jitter == 0 or label == NEUTRAL:
            return 1.0
        return 1.0 + jitter * (2.0 * seeded_rng(self.options.seed, TAG_STRENGTH, index, label_index(label), level).random() - 1.0)

    def action_units(self, index: int, label: str, level: int) -> dict[int, tuple[float, float]]:
        """The AU label of subject ``index`` showing ``label`` at ``level``: every AU a
        generator moves, coded (:func:`affectkit.data.action_units.coded`)."""
        o = self.options
        apex = activations(o.seed, index, label, level, self.missing_au_p, o.performances)
        return coded(scaled(apex, self.strength(index, label, level)), GENERATED_AUS)

    def known(self, sample: Sample) -> Sample:
        """This generator's own record of ``sample`` (by key), or one clear error."""
        found = self._samples.get(sample.key)
        if found is None:
            raise DatasetError(f"{self.generator}: no sample {sample.key!r} with these options (e.g. {next(iter(self._samples))!r})")
        return found

    def face(self, subject: int, label: str, intensity: int = 4) -> Mesh | MeshSequence:
        """Subject number ``subject`` (1-based) showing ``label`` at ``intensity`` (a
        sequence peaking at the options' highest intensity when they ask for sequences)."""
        level = 0 if label == NEUTRAL else intensity
        name, code = subject_name(subject - 1), CODES.get(label, "?")
        found = self._samples.get(f"{name}_{code}" if self.options.sequences else f"{name}_{code}_{level}")
        if found is None:
            raise DatasetError(
                f"{self.generator}: no subject {subject} showing {label!r} at intensity {intensity}; these options have "
                f"subjects 1..{self.options.subjects}, expressions {', '.join(self.labels)}, intensities {sorted(set(self.options.intensities))}"
            )
        return self.load(found)


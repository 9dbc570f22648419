"""How generated subjects perform the emotions: one prototype each (the default), or each
subject its own EMFACS-7 prototype or major variant (``performances: emfacs``), and how
strongly (``strength_jitter``), in both generators, through the datasets' AU labels, their
meshes and ``affectkit synth``."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from cli_runs import ROOT, command, run_ok

from affectkit.data.action_units import PRESENT, strength
from affectkit.data.facs import EMFACS_DROPPABLE, EMFACS_OPTIONAL, EMFACS_VARIANTS, LABELS, PROTOTYPES
from affectkit.data.performances import MAX_ACTIVATION
from affectkit.factory import build_dataset
from affectkit.recipe import ComponentRef

SUBJECTS = 60


def shown(generator: str, performances: str) -> dict[str, dict[str, frozenset[int]]]:
    """label -> subject -> the AUs present at intensity 4 (from the samples' AU labels)."""
    options = {"subjects": SUBJECTS, "intensities": [4], "seed": 3, "performances": performances}
    dataset = build_dataset(ComponentRef(name=generator, options=options))
    out: dict[str, dict[str, frozenset[int]]] = defaultdict(dict)
    for sample in dataset.samples():
        out[sample.label][sample.subject] = frozenset(au for au, value in sample.action_units.items() if strength(value) >= PRESENT)
    return out


@pytest.mark.parametrize("generator", ["facekit", "synthetic"])
def test_each_subject_draws_one_emfacs_variant_and_no_single_cue_decides_an_emotion(generator):
    performed = shown(generator, "emfacs")
    for label in LABELS:
        droppable, optional = set(EMFACS_DROPPABLE.get(label, ())), set(EMFACS_OPTIONAL.get(label, ()))
        for subject, units in performed[label].items():
            core = units - optional  # a weak optional AU may fall under PRESENT: not counted either way
            fits = [v for v, _ in EMFACS_VARIANTS[label] if core <= set(v) and len(set(v) - core) <= 1 and set(v) - core <= droppable]
            assert fits, (label, subject, sorted(units))
        assert len(set(performed[label].values())) >= 3, label  # 60 subjects show at least three ways
    # the cues a prototype model keys on are absent in some subjects and present in others
    for label, cue in (("happiness", 6), ("fear", 20), ("sadness", 1), ("surprise", 5), ("disgust", 9), ("anger", 10)):
        present = [cue in units for units in performed[label].values()]
        assert any(present) and not all(present), (label, cue)


@pytest.mark.parametrize("generator", ["facekit", "synthetic"])
def test_the_default_is_one_prototype_per_emotion(generator):
    performed = shown(generator, "prototypes")
    for label in LABELS:
        for units in performed[label].values():
            assert set(PROTOTYPES[label]) - units <= {au for au in PROTOTYPES[label]}  # at most secondary AUs left out
            assert len(set(PROTOTYPES[label]) - units) <= 1, (label, sorted(units))


def test_the_option_reaches_the_meshes_and_synth_writes_it(tmp_path):
    """A subject whose EMFACS happiness has no cheek raising gets another mesh than its
    prototype (6 + 12); ``affectkit synth --performances emfacs`` writes the AU labels the
    dataset gives; a wrong value is one clear error naming the allowed ones."""
    emfacs = build_dataset(ComponentRef(name="facekit", options={"subjects": 12, "intensities": [4], "performances": "emfacs"}))
    prototypes = build_dataset(ComponentRef(name="facekit", options={"subjects": 12, "intensities": [4]}))
    happy = [s for s in emfacs.samples() if s.label == "happiness"]
    plain = next(s for s in happy if strength(s.action_units[6]) < PRESENT)
    mine, prototype = emfacs.load(plain).vertices, prototypes.load(plain).vertices
    assert mine.shape != prototype.shape or not (mine == prototype).all()  # scan holes follow the surface, so counts may differ

    out = tmp_path / "faces"
    manifest = Path(run_ok("synth", "--out", str(out), "--subjects", "12", "--intensities", "4", "--no-neutral", "--performances", "emfacs").strip())
    rows = {row["path"].split("/")[-1].split(".")[0]: row for row in csv.DictReader(manifest.open())}
    for sample in happy:
        written = json.loads(rows[sample.key]["action_units"])
        assert {int(code): value[0] for code, value in written.items()} == pytest.approx(
            {code: value[0] for code, value in sample.action_units.items()}, abs=1e-3
        )
    result = subprocess.run(command("synth", "--out", str(out), "--subjects", "1", "--performances", "emfacts"), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "performances" in result.stderr and "'emfacs'" in result.stderr, result.stderr


@pytest.mark.parametrize("generator", ["facekit", "synthetic"])
def test_strength_jitter_makes_each_scan_stronger_or_weaker_than_its_intensity(generator):
    """Every AU of a scan scaled by one factor within the jitter, drawn per scan; the meshes
    follow; 0 is the default."""
    base = {"subjects": 6, "intensities": [3], "seed": 2}
    plain = build_dataset(ComponentRef(name=generator, options=base))
    jittered = build_dataset(ComponentRef(name=generator, options={**base, "strength_jitter": 0.4}))
    factors = []
    for a, b in zip(plain.samples(), jittered.samples(), strict=True):
        units = [(au, value[0]) for au, value in a.action_units.items() if value[0] > 0.05]
        ratios = {au: round(b.action_units[au][0] / value, 3) for au, value in units}
        factor = max(ratios.values())  # one factor for the whole scan, or the most an AU can show
        assert all(r == factor or b.action_units[au][0] == pytest.approx(MAX_ACTIVATION) for au, r in ratios.items()), ratios
        factors.append(factor)
    assert all(0.6 - 1e-3 <= f <= 1.4 + 1e-3 for f in factors) and len(set(factors)) > len(factors) // 2
    assert min(factors) < 0.9 and max(factors) > 1.1
    sample = next(s for s in plain.samples() if s.label == "surprise")
    assert plain.load(sample).vertices.shape != jittered.load(sample).vertices.shape or not (
        plain.load(sample).vertices == jittered.load(sample).vertices
    ).all()
    default = build_dataset(ComponentRef(name=generator, options={**base, "strength_jitter": 0.0}))
    assert [s.action_units for s in default.samples()] == [s.action_units for s in plain.samples()]

"""``affectkit adapt``: a model's normalisation statistics re-estimated on unlabelled scans of
a new source, written as a new model folder that predicts, evaluates and says what it was
adapted on; every learnt weight unchanged; bad requests refused with one line, nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_runs import ROOT, command, run_ok

from affectkit.errors import AffectkitError
from affectkit.factory import build_dataset, build_model, build_render_cache
from affectkit.model.adaptation import MIN_SCANS, adapt_normalisation, normalisation_layers
from affectkit.model.checkpoint import load_checkpoint
from affectkit.recipe import ComponentRef, load_recipe
from affectkit.render.pipeline import render_samples
from affectkit.serve.hub import resolve_model

NEW_SOURCE = "synthetic:subjects=2,intensities=[3,4],seed=2000"  # 24 scans of another face model


def fails(*args: str) -> str:
    result = subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapt") / "adapted"
    printed = run_ok("adapt", "--data", NEW_SOURCE, "--out", str(out))
    assert "on 24 scans of synthetic" in printed and str(out) in printed
    return out


def test_the_statistics_are_those_of_the_new_scans_and_every_learnt_weight_is_kept(adapted):
    before, meta = load_checkpoint(resolve_model())
    after, _ = load_checkpoint(adapted)
    statistics = {name for name, _ in before.named_buffers() if name.endswith(("running_mean", "running_var"))}
    old, new = before.state_dict(), after.state_dict()
    assert statistics and set(old) == set(new)
    for name in old:
        if name in statistics:
            assert not torch.allclose(old[name], new[name]), name
        elif name.endswith("num_batches_tracked"):
            continue
        else:
            assert torch.equal(old[name], new[name]), f"{name} changed"
    # the first layer's statistics are those of its input on the 24 scans' views (every view counted)
    data = build_dataset(ComponentRef(name="synthetic", options={"subjects": 2, "intensities": [3, 4], "seed": 2000}))
    views = render_samples(meta.inference.input, data, data.samples(), build_render_cache(meta.inference.input))
    first = normalisation_layers(before)[0]
    seen: list[torch.Tensor] = []
    first.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    with torch.no_grad():
        before.encode_views(views.views.float())
    inputs = torch.cat(seen)
    layer = normalisation_layers(after)[0]
    torch.testing.assert_close(layer.running_mean, inputs.mean((0, 2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.running_var, inputs.var((0, 2, 3)), atol=1e-3, rtol=1e-3)


def test_the_adapted_model_predicts_and_says_what_it_was_adapted_on(adapted, tmp_path):
    card = (adapted / "README.md").read_text()
    assert "## Adaptation" in card and "24 unlabelled scans of synthetic" in card and "affectvlm-facekit" in card
    record = json.loads((adapted / "checkpoint.json").read_text())["provenance"]["adaptation"]
    assert record["scans"] == 24 and record["layers"] > 0 and len(record["signatures"]) == 24
    on_its_scans = run_ok("eval", str(adapted), "--data", NEW_SOURCE)
    assert "adapted without labels on 24 scans" in on_its_scans and "24 of them among these: a transductive figure" in on_its_scans
    on_others = run_ok("eval", str(adapted), "--data", "synthetic:subjects=1,intensities=[4],seed=2001")
    assert "adapted without labels on 24 scans" in on_others and "among these" not in on_others
    report = tmp_path / "report"
    transductive = run_ok("eval", str(resolve_model()), "--data", NEW_SOURCE, "--adapt", "--out", str(report))
    assert "adapted without labels on these 24 scans first: a transductive figure" in transductive
    assert "(transductive)" in json.loads((report / "report.json").read_text())["about"]["adaptation"]
    assert "statistics of fewer than 20 are noise" in fails("eval", str(adapted), "--data", "synthetic:subjects=1,intensities=[4],seed=2001", "--adapt")
    run_ok("synth", "--dataset", "synthetic", "--subjects", "1", "--intensities", "4", "--no-neutral", "--out", str(tmp_path / "scans"))
    scan = sorted((tmp_path / "scans").rglob("*.ply"))[0]
    predicted = json.loads(run_ok("predict", str(scan), "--model", str(adapted), "--json").splitlines()[-1])
    assert predicted["label"] in predicted["probabilities"]


def test_mesh_files_adapt_too_and_a_bad_one_is_named_with_nothing_written(tmp_path):
    run_ok("synth", "--dataset", "synthetic", "--subjects", "2", "--intensities", "3,4", "--no-neutral", "--out", str(tmp_path / "scans"))
    scans = sorted((tmp_path / "scans").rglob("*.ply"))
    assert len(scans) >= MIN_SCANS
    out = tmp_path / "adapted"
    printed = run_ok("adapt", *map(str, scans[:MIN_SCANS]), "--out", str(out))
    assert f"on {MIN_SCANS} scans of {MIN_SCANS} files" in printed
    load_checkpoint(out)
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    error = fails("adapt", str(broken), *map(str, scans[:MIN_SCANS]), "--out", str(tmp_path / "never"))
    assert str(broken) in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_too_few_scans_an_existing_folder_or_two_sources_are_refused(tmp_path):
    error = fails("adapt", "--data", "synthetic:subjects=1,intensities=[4],seed=2000", "--out", str(tmp_path / "few"))
    assert f"6 scans; statistics of fewer than {MIN_SCANS} are noise" in error and not (tmp_path / "few").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    error = fails("adapt", "--data", NEW_SOURCE, "--out", str(taken))
    assert "already exists and is not an empty folder" in error and (taken / "notes.txt").read_text() == "mine"
    error = fails("adapt", str(tmp_path / "a.ply"), "--data", NEW_SOURCE, "--out", str(tmp_path / "both"))
    assert "either as mesh files and folders or as --data, not both" in error
    assert "not both" in fails("adapt", "--out", str(tmp_path / "neither"))


def test_an_encoder_without_batch_normalisation_has_nothing_to_adapt():
    config = load_recipe(ROOT / "recipes" / "affectvlm.yaml", ["model.image_encoder.options.model=convnext_atto"]).model
    model = build_model(config, num_views=3, in_channels=3, text_dim=384, weights_follow=True)
    with pytest.raises(AffectkitError, match="has no batch normalisation layers: nothing to adapt"):
        adapt_normalisation(model, torch.zeros(MIN_SCANS, 1, 3, 3, 32, 32))

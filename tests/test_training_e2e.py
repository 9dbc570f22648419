"""End to end through Ray Train on CPU, each test its own run: two workers, stopping and
resuming, other datasets and towers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runs import ROOT, command, run_ok

from affectkit.errors import CheckpointError
from affectkit.model.checkpoint import load_checkpoint, read_meta

pytestmark = pytest.mark.slow

#: what a console line that looks like trouble starts with or holds: a traceback, a Python
#: warning, a Ray log line at WARNING or ERROR level (``[date time E pid tid]``), an error
TROUBLE = re.compile(r"Traceback|Warning:|WARNING|\[\d{4}-\d\d-\d\d [\d:,.]+ [EW] \d+|ERROR|^error", re.M)


#: a process holding a Ray instance of its own until it is terminated (then shut down cleanly)
OTHER_RAY_INSTANCE = (
    "import ray, signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
    "ray.init(address='local', include_dashboard=False); print('up', flush=True); time.sleep(600)"
)


def test_a_two_worker_run_is_live_in_tensorboard_logs_to_mlflow_stops_early_and_prints_no_warning(tmp_path):
    """The first epoch's scalars can be read from the event files while the run still
    trains; the MLflow run is in the local SQLite store afterwards; the console holds no
    traceback or warning, with another Ray instance on the machine (as on a shared server).
    The learning rate peaks after the warm-up epoch, so early stopping on it with patience 7
    stops both workers after epoch 8 of 12, and the run exports epoch 8."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["run", "recipes/quick.yaml", "--set", "scaling.num_workers=2", "train.epochs=12", "render.size=32", "data.dataset.options.subjects=6",
            "data.dataset.options.intensities=[4]", f"output.dir={tmp_path / 'runs'}", "logging.loggers=[tensorboard, mlflow]",
            "train.callbacks=[{name: early_stopping, options: {monitor: train/lr, patience: 7}}]"]  # fmt: skip
    other = subprocess.Popen([command()[0], "-c", OTHER_RAY_INSTANCE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert other.stdout.readline().strip() == "up"
    process = subprocess.Popen(command(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen_live = None
        deadline = time.time() + 600
        while seen_live is None and time.time() < deadline and process.poll() is None:
            for events in (tmp_path / "runs" / "quick").glob("2*/tensorboard"):
                accumulator = EventAccumulator(str(events)).Reload()
                if "train/loss" in accumulator.Tags()["scalars"]:
                    seen_live = (accumulator, process.poll() is None)
            time.sleep(0.5)
        out, _ = process.communicate(timeout=600)
    finally:
        process.kill()
        other.terminate()
        other.wait(timeout=60)
    assert process.returncode == 0, out[-3000:]
    trouble = [line for line in out.splitlines() if TROUBLE.search(line)]
    assert not trouble, "\n".join(trouble)
    assert seen_live is not None and seen_live[1], "no epoch scalars while the run was still training"
    assert "stopped by train.callbacks.0 (early_stopping)" in out
    accumulator = seen_live[0]
    assert accumulator.Scalars("train/loss")[0].step == 1
    (run_dir,) = (tmp_path / "runs" / "quick").glob("2*")
    final = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    tags = set(final.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/accuracy", "val/loss", "model/temperature", "model/view_weight/front"} <= tags
    assert any(t.startswith("loss/") for t in tags) and "val/confusion" in final.Tags()["images"]
    assert [e.step for e in final.Scalars("val/accuracy")] == list(range(1, 9))
    assert read_meta(run_dir / "model")[0].epoch == 7
    assert json.loads((run_dir / "compute.json").read_text())["stopped_by"] == "train.callbacks.0 (early_stopping)"
    log = (run_dir / "train.log").read_text()
    assert log.startswith("python: 3.") and "torch: " in log and log.count("\n") >= 8 + 10

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    assert run.info.run_name == run_dir.name and run.data.params["train.epochs"] == "12"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val.accuracy")] == list(range(1, 9))


def stop_at_a_new_checkpoint(args: list[str], runs: Path, stop: signal.Signals, stored_before: int) -> dict[int, list[dict]]:
    """Start ``affectkit run ARGS``, send ``stop`` once it has stored an epoch after
    ``stored_before`` (Ctrl-C to its process group as a terminal does, ``kill -9`` to the
    driver alone), check that no Ray process of it outlives it by 15 s (Ray's agents used to
    linger 30 to 60 s after a kill -9), and return the complete checkpoints: epoch -> history."""
    import os

    from affectkit.train.ray_reaper import ray_descendants

    def stored() -> dict[int, list[dict]]:
        found = {}
        for meta_file in runs.glob("resumable/*/ray/*/checkpoint_*/checkpoint.json"):
            try:
                meta, _ = read_meta(meta_file.parent)
            except CheckpointError:
                continue  # a half-written checkpoint: resume must pass it over
            found[meta.epoch] = meta.history
        return found

    process = subprocess.Popen(command("run", *args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and max(stored(), default=-1) <= stored_before:
        time.sleep(0.2)
    assert max(stored(), default=-1) > stored_before, "no new checkpoint appeared"
    ray_processes = ray_descendants(process.pid)
    assert any("RayTrainWorker" in p.cmdline()[0] for p in ray_processes.values()), ray_processes
    if stop == signal.SIGINT:
        os.killpg(process.pid, stop)
    else:
        os.kill(process.pid, stop)
    process.wait(timeout=120)
    stopped = time.time()
    while time.time() < stopped + 15 and any(p.is_running() and p.create_time() == t for (_, t), p in ray_processes.items()):
        time.sleep(0.2)
    left = [p.cmdline()[0] for (_, t), p in ray_processes.items() if p.is_running() and p.create_time() == t]
    assert not left, f"Ray processes outlived the driver by 15 s: {left}"
    time.sleep(2)  # let a killed run's last writes land (or not)
    return stored()


def test_a_stopped_run_resumes_from_its_newest_complete_checkpoint(tmp_path):
    """A run stopped by Ctrl-C, then resumed and stopped by ``kill -9``, then resumed to the
    end: each ``--resume`` starts after the newest complete epoch and does not train the
    stored epochs again (their recorded losses come back unchanged); the weight average over
    all but the first step goes on across the stops."""
    EPOCHS = 16  # an epoch here takes well under a second, and Ctrl-C's Ray shutdown a few: room for both stops
    runs = tmp_path / "runs"
    args = ["recipes/quick.yaml", "--set", f"output.dir={runs}", "data.dataset.options.subjects=4", "render.size=32", f"train.epochs={EPOCHS}",
            f"train.weight_averaging={(EPOCHS - 1) / EPOCHS}", "name=resumable"]  # fmt: skip
    newest = -1
    for stop, resume in ((signal.SIGINT, []), (signal.SIGKILL, ["--resume"])):
        stored = stop_at_a_new_checkpoint([*args, *resume], runs, stop, newest)
        (run_dir,) = (runs / "resumable").glob("2*")
        assert not (run_dir / "metrics.jsonl").exists(), "the run finished before it was stopped"
        newest = max(stored)
        assert newest < EPOCHS - 1, "every epoch was stored before the stop took effect"

    out = run_ok("run", *args, "--resume")
    assert f"resuming {run_dir} from " in out and f"(epoch {newest + 1})" in out, out[-2000:]
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == list(range(EPOCHS))
    assert [m["train_loss"] for m in history[: newest + 1]] == [m["train_loss"] for m in stored[newest]]  # restored, not trained again
    assert history[newest + 1]["restarts"] >= 2
    # one step an epoch (3 training people's 36 scans, batches of 32); both stops came after
    # the average began, at the second step
    assert "averaged_steps" not in history[0] and history[-1]["averaged_steps"] == history[-1]["steps"] - 1 == EPOCHS - 1


def test_quick_recipe_trains_through_the_bu3dfe_reader_and_evaluates_across_datasets(tmp_path):
    """The facekit set written in the BU-3DFE layout (VRML + BND), read back by ``bu3dfe``;
    then the model is evaluated on another dataset (folder manifest with neutral scans)."""
    bu = tmp_path / "BU-3DFE"
    run_ok("synth", "--out", str(bu), "--subjects", "6", "--intensities", "3,4", "--no-neutral", "--layout", "bu3dfe")
    assert len(list(bu.glob("*/*_F3D.wrl"))) == 6 * 12
    run_ok(
        "run", "recipes/quick.yaml", "--set", f"output.dir={tmp_path / 'runs'}", "render.size=32", "train.epochs=2",
        f"data.dataset={{name: bu3dfe, options: {{root: {bu}}}}}", "name=quick-bu3dfe",
    )  # fmt: skip  (that the pipeline learns is the quick run's test; this one is the reader's path)
    (run_dir,) = (tmp_path / "runs" / "quick-bu3dfe").glob("2*")
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert report["samples"] == 24 and len({p["subject"] for p in report["predictions"]}) == 2  # 6 people, a quarter held out
    # the sex letters and ethnicity codes in the file names are placeholders: not reported
    assert "intensity" in report["by_attribute"] and not {"sex", "ethnicity"} & set(report["by_attribute"])
    for info in report["by_attribute"].values():
        assert sum(g["samples"] for g in info["groups"].values()) == report["samples"]

    other = tmp_path / "other"
    run_ok("synth", "--out", str(other), "--subjects", "2", "--intensities", "4", "--seed", "7")
    out = run_ok("eval", str(run_dir / "model"), "--data", f"folder:{other}")
    assert "left out the scans labelled neutral" in out
    assert "samples 12 " in out


def test_the_papers_clip_recipe_trains_offline_on_a_local_clip(tmp_path, tiny_clip):
    """recipes/affectvlm-clip.yaml's whole path (CLIP towers, RGB views at 224 px, the
    multiview loss, both augmentations) with a tiny random CLIP folder in place of the hub
    name; offline, the hub name itself is one clear error, at once."""
    args = ["recipes/affectvlm-clip.yaml", "--set", f"output.dir={tmp_path / 'runs'}"]
    small = ["data.dataset.options.subjects=4", "train.epochs=1"]
    towers = [f"model.image_encoder.options.model={tiny_clip}", f"model.text_encoder.options.model={tiny_clip}"]
    out = run_ok("run", *args, *small, *towers)
    model, meta = load_checkpoint(tmp_path / "runs" / "affectvlm-clip" / "model")
    assert meta.inference.input.size == 224 and meta.inference.input.maps == ["rgb"]
    assert type(model.image_encoder).__name__ == "CLIPImageEncoder" and "accuracy" in out

    offline = subprocess.run(command("run", *args, *small), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert offline.returncode != 0 and "Traceback" not in offline.stderr
    assert "openai/clip-vit-base-patch32" in offline.stderr and "download" in offline.stderr

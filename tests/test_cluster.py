"""Ray clusters for real: a worker killed mid-run, a job submitted to a head node, a
multi-node cluster without shared storage, a cluster some earlier ``ray start`` left on
record, another cluster's dashboard where a local instance looks for its own. Each test trains a cut-down quick recipe."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_runs import ROOT, command, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SMALL = ["render.size=32", "data.dataset.options.subjects=12", "data.dataset.options.intensities=[4]"]


def stored_epochs(runs: Path) -> list[int]:
    """Epochs of the checkpoints Ray Train has stored so far (skipping files mid-copy)."""
    epochs = []
    for meta in runs.glob("quick/*/ray/*/checkpoint_*/checkpoint.json"):
        try:
            epochs.append(json.loads(meta.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(epochs)


def train_workers(driver: int) -> list[int]:
    """The Ray Train workers under ``driver`` (its local Ray instance's raylet starts them),
    not those of any other Ray on the machine."""
    listing = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    rows = [line.split(maxsplit=2) for line in listing.splitlines()]
    parent = {int(pid): int(ppid) for pid, ppid, *_ in rows}

    def under_driver(pid: int) -> bool:
        while pid > 1 and pid != driver:
            pid = parent.get(pid, 1)
        return pid == driver

    return [int(pid) for pid, _, *args in rows if args and "RayTrainWorker" in args[0] and under_driver(int(pid))]


def history(runs: Path) -> list[dict]:
    (metrics,) = runs.glob("quick/2*/metrics.jsonl")
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def test_a_killed_worker_is_replaced_and_the_run_resumes_from_its_last_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    sets = [f"output.dir={runs}", "scaling.num_workers=2", "scaling.max_failures=1", "train.epochs=6", *SMALL]
    log = tmp_path / "run.log"
    process = subprocess.Popen(command("run", "recipes/quick.yaml", "--set", *sets), cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not stored_epochs(runs) or max(stored_epochs(runs)) < 1:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no second epoch checkpoint within 10 minutes"
        time.sleep(0.2)
    committed = max(stored_epochs(runs))
    time.sleep(1.0)  # the controller has collected that report by now
    workers = train_workers(process.pid)
    assert len(workers) == 2, workers
    last_stored = max(stored_epochs(runs))
    os.kill(workers[1], signal.SIGKILL)
    assert process.wait(timeout=900) == 0, log.read_text()[-3000:]

    epochs = history(runs)
    assert [m["epoch"] for m in epochs] == list(range(6))  # the configured count, each epoch once
    restarts = [m["restarts"] for m in epochs]
    assert restarts[0] == 0 and restarts[-1] == 1
    resumed_at = restarts.index(1)
    assert committed + 1 <= resumed_at <= last_stored + 1  # at most the epoch in progress was lost
    assert all(m["world_size"] == 2 for m in epochs)
    # the epoch's held-out accuracy is reduced over both workers' slices: it equals the
    # driver's evaluation of the exported (last) checkpoint on every held-out scan
    report = json.loads(next(runs.glob("quick/2*/eval/report.json")).read_text())
    assert epochs[-1]["val_accuracy"] == pytest.approx(report["accuracy"])


def stop_cluster(temp_dir: str, port: int) -> None:
    """Stop the Ray processes of one cluster (those naming its temp folder or its GCS port,
    and theirs): ``ray stop`` would stop every Ray instance on the machine, the developer's
    own jobs included."""
    import psutil

    from affectkit.train.ray_reaper import ray_descendants, stop

    ours = {}
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            args = process.cmdline()
            if any(temp_dir in arg or arg.endswith(f":{port}") for arg in args):
                ours[(process.pid, process.create_time())] = process
                ours.update(ray_descendants(process.pid))
        except psutil.Error:
            continue
    stop(ours)


@pytest.fixture
def head_node(tmp_path):
    """``ray start --head`` on loopback with a dashboard (the job server) and token
    authentication (Ray's default); stopped afterwards."""
    port, dashboard, agent = free_port(), free_port(), free_port()
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {**os.environ, **token, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="ak", dir="/tmp") as temp_dir:  # Ray's socket paths must stay short
        start = [str(BIN / "ray"), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2", f"--temp-dir={temp_dir}",
                 "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--disable-usage-stats",
                 f"--dashboard-agent-listen-port={agent}"]  # fmt: skip  # the job agent: its default port may be another Ray's on this machine
        started = subprocess.run(start, capture_output=True, text=True, env=env, timeout=180)
        try:
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
            yield f"http://127.0.0.1:{dashboard}", env
        finally:
            stop_cluster(temp_dir, port)


def test_ray_job_submit_runs_a_recipe_on_the_cluster(head_node, tmp_path):
    address, env = head_node
    runs = tmp_path / "runs"
    submit = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".", "--",
              "affectkit", "run", "recipes/quick.yaml", "--set", f"output.dir={runs}", "train.epochs=3", *SMALL]  # fmt: skip
    deadline = time.monotonic() + 180  # the head's job agent starts after `ray start` returns (later on a loaded machine): Ray says to try again
    while True:
        result = subprocess.run(submit, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
        out = result.stdout + result.stderr
        if "No available agent to submit job" not in out or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert result.returncode == 0 and "succeeded" in out, out[-3000:]
    assert "held-out accuracy" in out
    assert [m["epoch"] for m in history(runs)] == [0, 1, 2]
    assert (runs / "quick" / "model" / "checkpoint.json").is_file()


def test_a_multi_node_cluster_needs_shared_storage_and_then_trains_across_nodes(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        sets = [f"output.dir={tmp_path / 'runs'}", f"scaling.address={cluster.address}", "scaling.num_workers=2", "train.epochs=1", *SMALL]
        result = subprocess.run(command("run", "recipes/quick.yaml", "--set", *sets), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
        assert "scaling.storage_path" in result.stderr and "2 nodes" in result.stderr
        assert "Traceback" not in result.stderr

        shared = tmp_path / "shared"
        result = subprocess.run(command("run", "recipes/quick.yaml", "--set", *sets, f"scaling.storage_path={shared}"), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert [m["world_size"] for m in history(tmp_path / "runs")] == [2]
        assert list(shared.glob("quick-*/checkpoint_*/checkpoint.json"))  # on the shared storage, not in the run folder
    finally:
        cluster.shutdown()


def test_a_run_without_an_address_starts_its_own_ray_even_when_ray_start_left_a_cluster_on_record(tmp_path):
    # what a ``ray start`` (or a test cluster) stopped without ``ray stop`` leaves behind; Ray
    # itself would try to join it, and refuse the local instance's CPU count
    with tempfile.TemporaryDirectory(prefix="ak", dir="/tmp") as short:  # Ray's socket paths must stay short
        (Path(short) / "ray").mkdir()
        (Path(short) / "ray" / "ray_current_cluster").write_text("192.0.2.2:46241")
        env = {**os.environ, "RAY_TMPDIR": short}
        env.pop("RAY_ADDRESS", None)
        sets = [f"output.dir={tmp_path / 'runs'}", "train.epochs=1", *SMALL]
        result = subprocess.run(command("run", "recipes/quick.yaml", "--set", *sets), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Connecting to existing Ray cluster" not in result.stderr
    assert [m["epoch"] for m in history(tmp_path / "runs")] == [0]


class StateApiKnowingNoActor(BaseHTTPRequestHandler):
    """Another Ray cluster's dashboard, without token authentication, on the port a local
    instance records as its own State API: every actor asked about is unknown to it."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"result": True, "msg": "", "data": {"result": {"result": [], "total": 0}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_another_clusters_dashboard_on_the_default_port_does_not_stop_a_local_run(tmp_path):
    """Ray Train's placement-group cleaner asks the State API, every second, whether the run's
    controller is alive; a local instance records 127.0.0.1:8265 for it, where it serves
    nothing, so a cluster that started its dashboard there mid-run answered no, and the
    cleaner stopped the healthy run."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", 8265), StateApiKnowingNoActor)
    except OSError as error:
        pytest.skip(f"port 8265 is taken on this machine ({error.strerror}): the other cluster cannot be played")
    runs = tmp_path / "runs"
    sets = [f"output.dir={runs}", "train.epochs=10", *SMALL]
    process = subprocess.Popen(command("run", "recipes/quick.yaml", "--set", *sets), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 600
        while not stored_epochs(runs) and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        threading.Thread(target=server.serve_forever, daemon=True).start()  # the other cluster comes up mid-run
        out, _ = process.communicate(timeout=600)
    finally:
        process.kill()
        server.shutdown()
        server.server_close()
    assert process.returncode == 0, out[-3000:]
    assert [m["epoch"] for m in history(runs)] == list(range(10))

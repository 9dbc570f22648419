"""Stop a local Ray instance's processes within seconds of its driver's death, however it died.

Ray fate-shares its raylet and GCS with the driver that started them, but the raylet's
agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) notice the raylet is gone only
after several checks and then try to report it to the GCS, which is gone too: after a
``kill -9`` of the driver they lived on for 30 to 60 s. The reaper is a small process in
its own session, so a signal to the driver's process group does not reach it. It keeps a
list of the driver's Ray descendants (refreshed every second) and, once the driver is
gone (its end of a pipe closes), stops those still running: SIGTERM, then SIGKILL after
two seconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import psutil

#: how often the list of the driver's Ray processes is refreshed, in seconds
REFRESH_S = 1.0
#: how long stopped processes get to exit on SIGTERM before SIGKILL, in seconds
GRACE_S = 2.0

_reapers: list[subprocess.Popen[bytes]] = []


def start_reaper() -> None:
    """Watch this process: its Ray descendants are stopped when it exits or is killed."""
    reaper = subprocess.Popen(
        [sys.executable, "-m", "affectkit.train.ray_reaper", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _reapers.append(reaper)  # its stdin, our end of the pipe, stays open while we live


def is_ray_process(process: psutil.Process) -> bool:
    """Ray's own processes: named ``ray::...`` by Ray, or run from the ``ray`` package."""
    try:
        command = process.cmdline()
    except (psutil.Error, OSError):
        return False
    return bool(command) and (command[0].startswith("ray::") or any(f"{os.sep}ray{os.sep}" in part for part in command))


def ray_descendants(pid: int) -> dict[tuple[int, float], psutil.Process]:
    """The Ray processes below ``pid``, keyed by (pid, start time) so that a reused pid is
    never mistaken for one of them."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    found = {}
    for child in children:
        try:
            if is_ray_process(child):
                found[(child.pid, child.create_time())] = child
        except psutil.Error:
            continue
    return found


def stop(processes: dict[tuple[int, float], psutil.Process]) -> None:
    """SIGTERM the processes still running (the same pid and start time), then SIGKILL."""
    alive = []
    for (pid, started), process in processes.items():
        try:
            if process.create_time() == started and process.pid == pid:
                process.send_signal(signal.SIGTERM)
                alive.append(process)
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue


def main(driver: int) -> None:
    known: dict[tuple[int, float], psutil.Process] = {}
    while True:
        known.update(ray_descendants(driver))
        readable, _, _ = select.select([sys.stdin], [], [], REFRESH_S)
        if readable and not os.read(sys.stdin.fileno(), 1024):  # the driver's end closed: it is gone
            break
    time.sleep(0.2)  # a driver that exits cleanly has just shut Ray down itself
    stop(known)


if __name__ == "__main__":
    main(int(sys.argv[1]))

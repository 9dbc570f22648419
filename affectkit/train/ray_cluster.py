"""Which Ray cluster a run uses: ``scaling.address``, ``RAY_ADDRESS``, or a local instance,
checked before any work starts, with Ray's notices that need nothing from the user hushed."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from affectkit.errors import AffectkitError
from affectkit.train.ray_reaper import start_reaper

if TYPE_CHECKING:  # every process of a local instance imports this module for its setup hook: no PyTorch
    from affectkit.recipe import Recipe


def connect_ray(recipe: Recipe) -> None:
    """Join ``scaling.address`` / ``RAY_ADDRESS``, or start a local Ray instance (stopped
    with this process, however it ends: :mod:`affectkit.train.ray_reaper`).

    Without an address, Ray itself would join whichever cluster the last ``ray start`` on
    this machine recorded (``/tmp/ray/ray_current_cluster``), even one stopped or left by
    someone else; ``address="local"`` keeps to what the recipe says.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = recipe.scaling.address or os.environ.get("RAY_ADDRESS")
    if address:
        source = "scaling.address" if recipe.scaling.address else "RAY_ADDRESS"
        refuse_unreachable(address, source)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as error:  # "auto" with no cluster started on this machine
            raise AffectkitError(f"{source}={address!r}: {error}") from None
    else:
        needed = recipe.scaling.num_workers * recipe.scaling.cpus_per_worker
        quiet_local_instance_notices()
        ray.init(
            address="local",
            num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)),
            include_dashboard=False,
            log_to_driver=True,
            runtime_env={"worker_process_setup_hook": setup_local_worker, "env_vars": local_instance_env()},
        )
        start_reaper()  # the instance is ours: nothing of it outlives this process by more than seconds


def refuse_unreachable(address: str, source: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) no server answers at: Ray would retry
    it for minutes, printing a warning every few seconds."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto" or "local": Ray looks on this machine itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise AffectkitError(
            f"{source}={address!r}: no Ray cluster answers there ({error.strerror or error}); start one with "
            f"`ray start --head`, give the address of a running head node, or unset {source} to train in a local Ray instance"
        ) from None


#: Ray Train's preemption watcher follows nodes a cluster drains (spot instances, autoscaler
#: scale-down): nothing drains a local instance, and its actor logs an error line about its
#: restart arguments on every run. RAY_TRAIN_ENABLE_PREEMPTION_WATCHER is Ray's switch for it.
#:
#: Ray Train's placement-group cleaner asks the State API whether the run's controller is
#: still alive, and removes the run's workers when the answer is no. A local instance has no
#: State API, yet records the dashboard's default address (127.0.0.1:8265): another Ray
#: cluster on the machine with its dashboard there (and no token authentication) answers that
#: it knows no such controller, and the cleaner stops a healthy run. RAY_API_SERVER_ADDRESS
#: (Ray's override of that address) points its workers at a port nothing can listen on, so
#: the question fails at once, as it does when nothing answers; the instance stops with this
#: process anyway (:mod:`affectkit.train.ray_reaper`).
LOCAL_INSTANCE_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_API_SERVER_ADDRESS": "http://127.0.0.1:0"}
#: how often (s) Ray Train's controller collects the workers' reports on a local instance
#: (Ray's default 2 s cost a 1 s epoch almost 2 s more; a value set in the environment wins)
LOCAL_HEALTH_CHECK = ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


def local_instance_env() -> dict[str, str]:
    name, default = LOCAL_HEALTH_CHECK
    return {**LOCAL_INSTANCE_ENV, name: os.environ.get(name, default)}


def quiet_local_instance_notices() -> None:
    """Silence what Ray prints on every run of a local instance with nothing for the user to
    do; called in the driver and, as the setup hook, in each worker.

    - Ray Train's placement-group cleaner (workers) asks Ray's State API, every few seconds,
      whether the train controller is alive; without the dashboard, which the local instance
      leaves out, every check fails and warns.
    - The driver announces that Ray enabled token authentication, its default for a new
      instance (``RAY_AUTH_MODE=disabled`` still opts out).
    - Ray Train's controller asks the autoscaling coordinator for the run's resources every
      20 s with a 5 s timeout; on a busy machine the answer comes late and it warns with a
      traceback that Ray itself calls safe to ignore. A local instance has no autoscaler.

    A filter, not a level: the controller configures ``ray.train``'s loggers after this
    hook ran, and ``logging.config.dictConfig`` resets the levels of child loggers.
    """
    for name in (
        "ray.train.v2._internal.execution.controller.placement_group_cleaner",
        "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client",
        "ray._private.authentication.authentication_token_setup",
    ):
        logging.getLogger(name).addFilter(errors_only)


def errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def setup_local_worker() -> None:
    """Each worker process of a local instance: quiet, and pinned to this instance. Ray
    Train's placement-group cleaner asks the State API, which without an address looks for
    *the* Ray instance on the machine; with a second one running (another user's, another
    run's) it raised and printed a traceback every run."""
    import ray

    quiet_local_instance_notices()
    os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)


def check_cluster(recipe: Recipe) -> None:
    """Join the cluster, and refuse a multi-node one without shared checkpoint storage:
    each node would keep its own checkpoints and a restored worker could not find them."""
    import ray

    connect_ray(recipe)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) > 1 and not recipe.scaling.storage_path:
        raise AffectkitError(
            f"scaling.storage_path: this Ray cluster has {len(nodes)} nodes, so checkpoints need storage every node "
            "can reach; set scaling.storage_path to a shared folder (NFS) or a URI such as s3://bucket/affectkit"
        )

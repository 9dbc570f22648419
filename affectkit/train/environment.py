"""The software and hardware a run or a bug report happened on: ``affectkit env`` prints it,
every run writes it at the top of its ``train.log``."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata
from typing import Any

#: distributions whose versions change results or behaviour (absent ones are "not installed")
PACKAGES = (
    "affectkit", "torch", "torchvision", "numpy", "timm", "transformers", "huggingface_hub", "safetensors", "ray", "pydantic", "pluggy",
    "trimesh", "streamlit", "onnxruntime", "kaolin", "mlflow", "mlflow-skinny", "tensorboard",
)  # fmt: skip
ENV_VARS = ("AFFECTKIT_PLUGINS", "AFFECTKIT_CACHE_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", "CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Each distribution's installed version (``None`` where it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    """Versions, devices, registered plugins and the environment variables affectkit reads."""
    import torch

    versions = {name: version or "not installed" for name, version in installed_versions(PACKAGES).items()}
    cuda = torch.cuda.is_available()
    devices = {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "cuda_version": torch.version.cuda,
        "mps": torch.backends.mps.is_available(),
    }
    from affectkit.registry import failed_plugins, registry

    origins = sorted({info.origin if info.version is None else f"{info.origin} {info.version}" for info in registry().all()})
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "devices": devices,
        "plugins": origins,
        "plugins_skipped": [failure.describe() for failure in failed_plugins()],
        "environment": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def environment_report() -> str:
    """:func:`environment` as ``key: value`` lines."""
    info = environment()
    lines = [f"python: {info['python']}", f"platform: {info['platform']}"]
    lines += [f"{name}: {version}" for name, version in info["packages"].items()]
    lines += [f"{name}: {value}" for name, value in info["devices"].items()]
    lines.append(f"plugins from: {', '.join(info['plugins'])}")
    lines += [f"plugin skipped: {failure}" for failure in info["plugins_skipped"]]
    lines += [f"${name}={value}" for name, value in info["environment"].items()]
    return "\n".join(lines)

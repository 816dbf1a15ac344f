"""Connecting to Ray: the one place that imports it, a one-line error without it, and the cores it offers."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

from winner.errors import WinnerError

EXTRA_HINT = 'needs Ray: pip install "winner[ray]"'


def require_ray() -> None:
    """A one-line error naming the extra when Ray is not installed, without the cost of importing it."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except ImportError:  # an import hook that refuses it
        found = False
    if not found:
        raise WinnerError(f"--workers, --address and `winner sweep` {EXTRA_HINT}")


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise WinnerError(f"--workers, --address and `winner sweep` {EXTRA_HINT}") from None
    return ray


def connect(address: str | None, workers: int | None) -> tuple[ModuleType, int, bool]:
    """Ray, started locally with `workers` CPUs (all cores when None) or joined at `address`; the CPUs it has;
    and whether this call started or joined it (so the caller is the one to shut it down)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise WinnerError(f"could not start or reach Ray at {address or 'this machine'}: {e}") from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < 1:
        raise WinnerError("the Ray cluster offers no CPUs")
    return ray, cpus, started


def threads_per_worker(cpus: int, workers: int) -> int:
    """Threads each worker may use so that workers x threads never exceed the cluster's CPUs."""
    if workers > cpus:
        raise WinnerError(f"--workers {workers} needs {workers} CPUs, the Ray cluster has {cpus}")
    return max(1, cpus // workers)

"""Refuse an allocation that cannot fit before making it.

numpy raises MemoryError only for sizes the kernel refuses outright; a model a few times larger than memory is
allocated lazily and then killed by the OOM killer halfway through training. So the sizes a user chooses
(hidden layers, the character filters, the batch) are checked against the memory available first.
"""

from __future__ import annotations

import os

from winner.errors import WinnerError


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable (Linux), else the physical memory; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def require_memory(needed: int, what: str, smaller: str) -> None:
    """Raise a one-line WinnerError if `needed` bytes for `what` exceed the memory available; `smaller` says
    which settings make it smaller."""
    available = available_bytes()
    if available is not None and needed > available:
        raise WinnerError(f"{what} needs {format_bytes(needed)} of memory, more than the {format_bytes(available)} "
                          f"available; {smaller}")

"""The one initialisation of the numerical core: BLAS symbols, numba's threading layer, thread counts.

`init()` must run before the first kernel call of a process; every model (`WindowMLP`) calls it, so the
library, the CLI and the heads never need to think about it. It is idempotent and cheap after the first call.
Nothing here runs when a module is imported: a bad WINNER_BLAS or WINNER_THREADS is reported when the core is
first used, as a one-line SettingError.

Why the threading layer is launched here: numba's cache outlives the process. A cached kernel that calls a
`parallel=True` kernel (every matrix product reaches one through the one-row product) carries no instruction
to start numba's threading layer when it is loaded from the cache by a process that compiled it over a
parallel kernel which was itself loaded from the cache; such a process then calls through a null pointer and
dies with a segmentation fault (numba issues #8578 and #4807; the fix, numba PR #9950, is not released).
Launching the layer explicitly, before any kernel can be loaded, makes every order in which processes fill the
cache safe, and keeps the parallel kernels cached (compiling them in every process would cost seconds).
"""

from __future__ import annotations

import ctypes
import glob
import os

import numba
import numpy as np
import threadpoolctl
from llvmlite import binding

from winner.errors import SettingError

_state: dict[str, object] = {"ready": False, "blas": None}


def init() -> None:
    """Make the core ready in this process: register the BLAS, launch numba's threads, keep the BLAS on one
    thread (gemm shares a large product's parts over numba's threads itself), apply WINNER_THREADS."""
    if _state["ready"]:
        return
    _state["blas"] = _register_blas()
    _launch_threading_layer()
    threadpoolctl.threadpool_limits(1, user_api="blas")
    _threads_from_environment()
    _state["ready"] = True


def blas_library() -> str:
    """'numpy' (numpy's bundled OpenBLAS) or 'scipy' (the adapter over scipy's BLAS) once init() has run."""
    init()
    return str(_state["blas"])


def _launch_threading_layer() -> None:
    numba.get_num_threads()  # launches the threading layer (numba.np.ufunc.parallel._launch_threads)


def _numpy_cblas() -> tuple[int, int] | None:
    """Addresses of cblas_sgemm/dgemm in numpy's bundled OpenBLAS, or None if this numpy has none."""
    root = os.path.dirname(np.__file__)
    for pattern in (os.path.join(root, os.pardir, "numpy.libs", "libscipy_openblas64_*"),
                    os.path.join(root, ".dylibs", "libscipy_openblas64_*")):
        for path in sorted(glob.glob(pattern)):
            try:
                lib = ctypes.CDLL(path)
                sgemm, dgemm = lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_
            except (OSError, AttributeError):
                continue
            return ctypes.cast(sgemm, ctypes.c_void_p).value, ctypes.cast(dgemm, ctypes.c_void_p).value
    return None


def _register_blas() -> str:
    """Register winner_cblas_sgemm/dgemm with LLVM, the names every cached kernel links to.

    numpy's own OpenBLAS where it can be found (newer and faster for the few-row products of minibatches),
    else the adapter over scipy's; WINNER_BLAS=scipy chooses scipy's on purpose. Never both: two OpenBLAS
    thread pools spinning side by side collapse 2-thread training.
    """
    choice = os.environ.get("WINNER_BLAS", "").strip().lower()
    if choice not in ("", "numpy", "scipy"):
        raise SettingError(f"WINNER_BLAS must be numpy or scipy, got {choice!r}")
    found = None if choice == "scipy" else _numpy_cblas()
    if found is None:
        from winner.core import scipy_blas  # compiled, or loaded from numba's cache, only when needed

        found = scipy_blas.sgemm_rowmajor.address, scipy_blas.dgemm_rowmajor.address
        library = "scipy"
    else:
        library = "numpy"
    binding.add_symbol("winner_cblas_sgemm", found[0])
    binding.add_symbol("winner_cblas_dgemm", found[1])
    return library


def _threads_from_environment() -> None:
    """WINNER_THREADS=n limits every command to n cores."""
    value = os.environ.get("WINNER_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise SettingError(f"WINNER_THREADS must be a whole number >= 1, got {value!r}")
        _apply_threads(int(value))


def set_threads(n: int | None = None) -> int:
    """Cores the core may use (numba's parallel loops, which also share a large matrix product's parts); None =
    all. Results do not depend on it: parallel loops split independent rows and parts fixed by the data's shape.
    Returns the number set.
    """
    init()
    return _apply_threads(n)


def _apply_threads(n: int | None) -> int:
    n = numba.config.NUMBA_NUM_THREADS if n is None else max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    threadpoolctl.threadpool_limits(1, user_api="blas")  # also a BLAS loaded since init (scipy's, say)
    return n

"""A row-major cblas_sgemm/dgemm over numba's BLAS entry point (scipy's OpenBLAS, Fortran ?gemm).

runtime.init() registers these under the names blas.py's cached kernels link to when numpy's own OpenBLAS
cannot be found (or WINNER_BLAS=scipy), so that the kernels stay the same code whichever library is behind them.
Row-major C is column-major C.T = op(B).T @ op(A).T: BLAS gets the operands swapped.
"""

from __future__ import annotations

import numba.np.linalg
import numpy as np
from numba import cfunc, types

from winner.core.cblas import CBLAS_TRANS, cblas_signature


def _xxgemm_signature(t):
    p = types.CPointer(t)
    return types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                      p, p, types.intp, p, types.intp, p, p, types.intp)


# numba_xxgemm(kind, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc), column-major
_XXGEMM_S = types.ExternalFunction("numba_xxgemm", _xxgemm_signature(types.float32))
_XXGEMM_D = types.ExternalFunction("numba_xxgemm", _xxgemm_signature(types.float64))
numba.np.linalg.ensure_blas()


# Two spelled-out functions rather than one factory: numba does not find a closure's cfunc in its cache
# again (a factory recompiled both on every import, 0.34 s).
@cfunc(cblas_signature(types.float32), cache=True)
def sgemm_rowmajor(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_sgemm for order = row-major (the only order blas.gemm passes)."""
    ab = np.empty(2, np.float32)
    ab[0] = alpha
    ab[1] = beta
    _XXGEMM_S(ord("s"), 116 if trans_b == CBLAS_TRANS else 110, 116 if trans_a == CBLAS_TRANS else 110, n, m, k,
              ab.ctypes, B, ldb, A, lda, ab[1:].ctypes, C, ldc)


@cfunc(cblas_signature(types.float64), cache=True)
def dgemm_rowmajor(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_dgemm for order = row-major."""
    ab = np.empty(2, np.float64)
    ab[0] = alpha
    ab[1] = beta
    _XXGEMM_D(ord("d"), 116 if trans_b == CBLAS_TRANS else 110, 116 if trans_a == CBLAS_TRANS else 110, n, m, k,
              ab.ctypes, B, ldb, A, lda, ab[1:].ctypes, C, ldc)

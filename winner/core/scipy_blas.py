"""A row-major cblas_sgemm/dgemm over numba's BLAS entry point (scipy's OpenBLAS, Fortran ?gemm).

runtime.init() registers these under the names blas.py's cached kernels link to when numpy's own OpenBLAS
cannot be found (or WINNER_BLAS=scipy), so that the kernels stay the same code whichever library is behind them.
Row-major C is column-major C.T = op(B).T @ op(A).T: BLAS gets the operands swapped.
"""

from __future__ import annotations

import numba.np.linalg
import numpy as np
from numba import cfunc, types
from numba.extending import overload

from winner.core.cblas import CBLAS_TRANS, cblas_signature
from winner.core.fastmath import KERNEL_FLAGS


def _xxgemm_signature(t):
    p = types.CPointer(t)
    return types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                      p, p, types.intp, p, types.intp, p, p, types.intp)


# numba_xxgemm(kind, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc), column-major
_XXGEMM_S = types.ExternalFunction("numba_xxgemm", _xxgemm_signature(types.float32))
_XXGEMM_D = types.ExternalFunction("numba_xxgemm", _xxgemm_signature(types.float64))
numba.np.linalg.ensure_blas()


def column_major_gemm(ab, trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc):
    """numba_xxgemm on the swapped operands; ab = [alpha, beta] in the operands' dtype. Jitted code only."""
    raise TypeError("scipy_blas.column_major_gemm is only callable from jitted code")


@overload(column_major_gemm, jit_options=KERNEL_FLAGS)
def _column_major_gemm_overload(ab, trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc):
    xxgemm, kind = (_XXGEMM_S, ord("s")) if ab.dtype == types.float32 else (_XXGEMM_D, ord("d"))

    def impl(ab, trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc):
        xxgemm(kind, 116 if trans_b == CBLAS_TRANS else 110, 116 if trans_a == CBLAS_TRANS else 110, n, m, k,
               ab.ctypes, B, ldb, A, lda, ab[1:].ctypes, C, ldc)

    return impl


# Two spelled-out functions rather than one factory: numba does not find a closure's cfunc in its cache
# again (a factory recompiled both on every import).
@cfunc(cblas_signature(types.float32), cache=True)
def sgemm_rowmajor(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_sgemm for order = row-major (the only order blas.gemm passes)."""
    column_major_gemm(np.array([alpha, beta], np.float32), trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc)


@cfunc(cblas_signature(types.float64), cache=True)
def dgemm_rowmajor(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_dgemm for order = row-major."""
    column_major_gemm(np.array([alpha, beta], np.float64), trans_a, trans_b, m, n, k, A, lda, B, ldb, C, ldc)

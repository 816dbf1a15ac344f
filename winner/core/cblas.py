"""The C interface of a row-major cblas_?gemm as numba types: what blas.gemm calls and what a library
(numpy's OpenBLAS, or scipy_blas's adapter) must provide."""

from __future__ import annotations

from numba import types

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112


def cblas_signature(t):
    """cblas_?gemm(order, trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc) with 64-bit sizes."""
    p = types.CPointer(t)
    return types.void(types.intc, types.intc, types.intc, types.int64, types.int64, types.int64, t, p, types.int64,
                      p, types.int64, t, p, types.int64)

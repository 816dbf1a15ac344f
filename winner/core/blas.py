"""Matrix products of the kernels: `gemm` over the one cblas_?gemm binding, and the one-row products.

Every product goes through cblas_?gemm under a fixed name, so that numba's cached kernels link to it whichever
library is behind it; winner.core.runtime.init() registers the name (numpy's OpenBLAS or scipy's) and must
run before the first kernel call of a process. A one-row product is a plain loop instead of a BLAS call.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from winner.core.cblas import CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS, cblas_signature
from winner.core.fastmath import FAST, KERNEL_FLAGS, cast_like, fixed_row_dot

_CBLAS = {types.float32: types.ExternalFunction("winner_cblas_sgemm", cblas_signature(types.float32)),
          types.float64: types.ExternalFunction("winner_cblas_dgemm", cblas_signature(types.float64))}

ROWS_TIMES_VECTOR_BLOCK = 2048  # a block of out stays in L1 while every row of W passes over it
# From this many weights on (a language model's output layer), threads split out's blocks: one row times the
# matrix streams it from memory once, which one core cannot do at full bandwidth.
ROWS_TIMES_VECTOR_SPLIT = 2_000_000


@njit(cache=True, fastmath=FAST, error_model="numpy")
def scale_rows(C, beta):
    """C = beta * C, with beta = 0 writing zeros (BLAS's rule: C's old values may be NaN)."""
    m, n = C.shape
    for i in range(m):
        for j in range(n):
            C[i, j] = beta * C[i, j] if beta != 0.0 else 0.0


# A product of at least 2 * GEMM_PART_WORK multiply-adds is cut into parts of C, fixed by its shape alone, that
# numba's threads share, one single-threaded BLAS call each. Each part re-reads (and the BLAS re-packs) the operand
# the cut does not split, so:
# - a wide product (a language model's vocabulary as C's columns) is cut along its columns into 2, 4 or 8 parts
#   (the largest count that leaves each part GEMM_PART_WORK), each re-reading only the small left operand;
# - a sum over a vocabulary (k >= GEMM_WIDE: a language model's gradient into its hidden layer and its context),
#   whose operands are too large for the caches, is cut in two along C's longer side, so that the smaller operand
#   is the one read twice, and a 64-window batch still uses two threads;
# - any other product along its rows, into 2, 4 or 8 parts of at least GEMM_MIN_ROWS rows (narrower parts, or
#   column parts, slowed the tagger's one-thread training: see the README).
# Parts are whole multiples of GEMM_PART_ALIGN and differ by at most one multiple, so two threads get equal work.
GEMM_PART_WORK = 1 << 20
GEMM_MAX_PARTS = 8
GEMM_PART_ALIGN = 16
GEMM_MIN_ROWS = 64
GEMM_WIDE = 1024


@njit(cache=True, fastmath=FAST, error_model="numpy")
def gemm_parts(m, n, k):
    """How blas.gemm cuts an (m, n) result summed over k: (along_rows, parts); parts == 1 is one call. A
    one-row product is never cut: its own loop shares a large matrix over the threads (rows_times_vector)."""
    if n >= GEMM_WIDE and n > m:
        along_rows, side, least, most = False, n, GEMM_PART_ALIGN, GEMM_MAX_PARTS
    elif k >= GEMM_WIDE:
        along_rows = m >= n
        side, least, most = (m if along_rows else n), GEMM_MIN_ROWS // 2, 2
    else:
        along_rows, side, least, most = True, m, GEMM_MIN_ROWS, GEMM_MAX_PARTS
    parts = 1
    if m == 1:
        return along_rows, parts
    while parts < most and m * n * k >= 2 * parts * GEMM_PART_WORK and side >= 2 * parts * least:
        parts *= 2
    return along_rows, parts


@njit(cache=True, inline="always")
def part_bounds(side, parts, i):
    """First and end index of part i of `parts` along a side of `side` entries, cut at multiples of
    GEMM_PART_ALIGN; the last part ends at `side`."""
    units = (side + GEMM_PART_ALIGN - 1) // GEMM_PART_ALIGN
    lo = (i * units // parts) * GEMM_PART_ALIGN
    hi = side if i == parts - 1 else ((i + 1) * units // parts) * GEMM_PART_ALIGN
    return lo, hi


def gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """C = alpha * op(A) @ op(B) + beta * C, op(X) = X.T when trans_x; callable from jitted code only.

    A, B, C: 2-D arrays of one float dtype whose rows are contiguous (row stride may be larger). The BLAS runs on
    one thread (winner.core.runtime.init); a large product is cut into parts fixed by its shape alone
    (gemm_parts), which numba's threads share, so the bits never depend on the thread count (a BLAS's own
    threads may cut a sum at other points on other thread counts).
    """
    raise TypeError("blas.gemm is only callable from jitted code")


@overload(gemm, jit_options=KERNEL_FLAGS)
def _gemm_overload(trans_a, trans_b, alpha, A, B, beta, C):
    def impl(trans_a, trans_b, alpha, A, B, beta, C):
        m, n = C.shape
        k = A.shape[0] if trans_a else A.shape[1]
        along_rows, parts = gemm_parts(m, n, k)
        if parts > 1:
            gemm_in_parts(trans_a, trans_b, alpha, A, B, beta, C, along_rows, parts)
        else:
            gemm_one_call(trans_a, trans_b, alpha, A, B, beta, C)

    return impl


# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, error_model="numpy", fastmath=FAST)
def gemm_in_parts(trans_a, trans_b, alpha, A, B, beta, C, along_rows, parts):
    """gemm as `parts` BLAS calls on parts of C's rows (along_rows) or columns (part_bounds). The parts are
    independent, so threads take them in any order."""
    m, n = C.shape
    for i in prange(parts):
        if along_rows:
            r0, r1 = part_bounds(m, parts, i)
            gemm_one_call(trans_a, trans_b, alpha, A[:, r0:r1] if trans_a else A[r0:r1], B, beta, C[r0:r1])
        else:
            c0, c1 = part_bounds(n, parts, i)
            gemm_one_call(trans_a, trans_b, alpha, A, B[c0:c1] if trans_b else B[:, c0:c1], beta, C[:, c0:c1])


def gemm_one_call(trans_a, trans_b, alpha, A, B, beta, C):
    """gemm as one BLAS call (a one-row product: a plain loop); callable from jitted code only."""
    raise TypeError("blas.gemm_one_call is only callable from jitted code")


@overload(gemm_one_call, jit_options=KERNEL_FLAGS)
def _gemm_one_call_overload(trans_a, trans_b, alpha, A, B, beta, C):
    cblas = _CBLAS[A.dtype]
    dt = np.float32 if A.dtype == types.float32 else np.float64

    def impl(trans_a, trans_b, alpha, A, B, beta, C):
        m, n = C.shape
        k = A.shape[0] if trans_a else A.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:
            scale_rows(C, beta)
            return
        if m == 1:  # a vector times a matrix: a plain loop beats BLAS here
            vector_times_matrix(trans_a, trans_b, alpha, A, B, beta, C[0])
            return
        ta = CBLAS_TRANS if trans_a else CBLAS_NO_TRANS
        tb = CBLAS_TRANS if trans_b else CBLAS_NO_TRANS
        lda, ldb, ldc = A.strides[0] // A.itemsize, B.strides[0] // B.itemsize, C.strides[0] // C.itemsize
        cblas(CBLAS_ROW_MAJOR, ta, tb, m, n, k, dt(alpha), A.ctypes, lda, B.ctypes, ldb, dt(beta), C.ctypes, ldc)

    return impl


# ---------------------------------------------------------------- one-row products


@njit(cache=True, fastmath=FAST, error_model="numpy")
def rows_times_vector(W, a, out):
    """out += a @ W, four rows per sweep over a block of out. W: (n, m); a: (n,); out: (m,). (No row views:
    in a hot loop each view costs reference counting.) Large W: rows_times_vector_split."""
    n, m = W.shape
    if n * m >= ROWS_TIMES_VECTOR_SPLIT:
        rows_times_vector_split(W, a, out)
        return
    for j0 in range(0, m, ROWS_TIMES_VECTOR_BLOCK):
        _rows_times_block(W, a, out, j0, min(m, j0 + ROWS_TIMES_VECTOR_BLOCK))


# Cached parallel kernels are safe only because winner.core.runtime.init() launches numba's threading layer before
# any kernel is loaded: a cached caller of this kernel does not launch it (numba #8578), see runtime.py.
@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def rows_times_vector_split(W, a, out):
    """rows_times_vector with threads taking out's blocks: each output sums the same terms in the same order,
    so the result does not depend on the thread count."""
    m = W.shape[1]
    n_blocks = (m + ROWS_TIMES_VECTOR_BLOCK - 1) // ROWS_TIMES_VECTOR_BLOCK
    for blk in prange(n_blocks):
        j0 = blk * ROWS_TIMES_VECTOR_BLOCK
        _rows_times_block(W, a, out, j0, min(m, j0 + ROWS_TIMES_VECTOR_BLOCK))


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def _rows_times_block(W, a, out, j0, j1):
    """out[j0:j1] += a @ W[:, j0:j1]. Row and column indices are unsigned on purpose: numba checks a signed
    computed index (i + 1) for negative wraparound, and that check kept the sweep from vectorising."""
    n = W.shape[0]
    lo, hi = np.uint64(j0), np.uint64(j1)
    i = 0
    while i + 4 <= n:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        r0, r1, r2, r3 = np.uint64(i), np.uint64(i + 1), np.uint64(i + 2), np.uint64(i + 3)
        for j in range(lo, hi):
            out[j] += a0 * W[r0, j] + a1 * W[r1, j] + a2 * W[r2, j] + a3 * W[r3, j]
        i += 4
    while i < n:
        ai = a[i]
        r0 = np.uint64(i)
        for j in range(lo, hi):
            out[j] += ai * W[r0, j]
        i += 1


@njit(cache=True, fastmath=FAST, error_model="numpy")
def vector_times_matrix(trans_a, trans_b, alpha, A, B, beta, c):
    """c = alpha * op(A)[0] @ op(B) + beta * c for a one-row op(A): gemm's m == 1 case. c: (n,)."""
    if not trans_a and alpha == 1.0:  # the common case: A's row as it is, no scaled copy
        _row_times_matrix(A[0], trans_b, B, beta, c)
        return
    k = A.shape[0] if trans_a else A.shape[1]
    a = np.empty(k, c.dtype)
    al = cast_like(alpha, c)
    for i in range(k):
        a[i] = al * (A[i, 0] if trans_a else A[0, i])
    _row_times_matrix(a, trans_b, B, beta, c)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _row_times_matrix(a, trans_b, B, beta, c):
    """c = a @ op(B) + beta * c. a: (k,); c: (n,)."""
    n = c.shape[0]
    k = a.shape[0]
    if beta == 0.0:
        c[:] = 0.0
    elif beta != 1.0:
        be = cast_like(beta, c)
        for j in range(n):
            c[j] *= be
    if not trans_b:
        rows_times_vector(B, a, c)
    else:
        for j in range(n):
            c[j] += fixed_row_dot(B, j, a, k)
